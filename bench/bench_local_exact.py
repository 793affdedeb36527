"""Exact local counts (`local-complexity --exact-planes`) on digits-mlp, against the vertex proxy.

Around the first 1,000 digits (default radius, float64), the tiles meeting the disc of radius r on
K = 4 random planes through each point are counted by the planar engine (256 planes per sweep,
`local_exact.PLANES_AT_ONCE`); printed with the tiles partitioned per second, the seconds, and the
seconds of the vertex proxy (P = 25 directions) over the same points, measured in the same run.

    .venv/bin/python bench/bench_local_exact.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import splinetool  # noqa: E402
from splinetool.analyses import local_complexity as lc  # noqa: E402

POINTS, PLANES = 1000, 4


def main() -> None:
    net = splinetool.lower(splinetool.load_model(ROOT / "sample_models" / "digits-mlp.ts.pt"))
    net = net.to(dtype=torch.float64)
    x = np.load(ROOT / "sample_models" / "data" / "digits.npz")["x"][:POINTS]
    points = [lc.PointSet("digits", x)]
    result = lc.run(net, points, lc.LCOptions(exact_planes=PLANES))
    proxy_seconds = result.seconds - result.exact_seconds  # the rest of the run: LC and accuracy
    planes = POINTS * PLANES
    stats = result.stats(0)
    print(
        f"digits-mlp, {POINTS:,} points, K = {PLANES} planes each: {planes:,} planes, "
        f"radius {result.radius:.6g}"
    )
    print(
        f"exact: {result.exact_tiles:,} tiles partitioned in {result.exact_seconds:.1f} s: "
        f"{result.exact_tiles / result.exact_seconds:,.0f} tiles/s, "
        f"{1000 * result.exact_seconds / planes:.1f} ms and {result.exact_tiles / planes:.1f} tiles per plane"
    )
    ratio = result.exact_seconds / proxy_seconds
    print(
        f"vertex proxy (P = 25) over the same points: {proxy_seconds:.2f} s; "
        f"the exact counts cost {ratio:,.0f}x that"
    )
    print(
        f"mean LC {stats['lc_mean']:.3f}, mean exact count {stats['exact_mean']:.3f}, "
        f"Spearman rho {stats['exact_spearman']:.3f}"
    )


if __name__ == "__main__":
    main()
