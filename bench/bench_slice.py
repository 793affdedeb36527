"""Exact planar slices: tiles, seconds, peak memory, and cost relative to one forward pass.

Cases (each in a fresh process so that its peak memory is its own):
  random-mlp  a random 2 -> 64x4 -> 1 ReLU MLP (seed 0) on [-1, 1]^2
  moons-mlp   the sample model over its data's bounding box
  digits-mlp  the sample model through three training digits (margin 1.25)

For each: the partition alone (tiles), the whole analysis (codes, affine maps, Jacobian norms,
decision boundary), and one forward pass of the network over the final vertex set, which is the
least any exact method must do.

    .venv/bin/python bench/bench_slice.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
CASES = ("random-mlp", "moons-mlp", "digits-mlp")


def setup(case: str):
    import splinetool
    from splinetool.analyses.plane import anchor_plane, input_plane

    if case == "random-mlp":
        torch.manual_seed(0)
        layers = [torch.nn.Linear(2, 64), torch.nn.ReLU()]
        for _ in range(3):
            layers += [torch.nn.Linear(64, 64), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(64, 1))
        net = splinetool.lower(torch.nn.Sequential(*layers), (2,))
        return net.to(dtype=torch.float64), input_plane(2, (-1.0, 1.0, -1.0, 1.0))
    loaded = splinetool.load_model(ROOT / "sample_models" / f"{case}.ts.pt")
    net = splinetool.lower(loaded).to(dtype=torch.float64)
    if case == "moons-mlp":
        x = np.load(ROOT / "sample_models" / "data" / "moons.npz")["x"]
        lo, hi = x.min(axis=0), x.max(axis=0)
        pad = 0.1 * (hi - lo)
        return net, input_plane(2, (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1]))
    digits = np.load(ROOT / "sample_models" / "data" / "digits.npz")["x_train"][:3]
    return net, anchor_plane(torch.as_tensor(digits, dtype=torch.float64))


def measure(case: str) -> dict:
    from splinetool.analyses import slice as analysis
    from splinetool.engine.planar import partition

    torch.set_grad_enabled(False)
    net, plane = setup(case)
    start = time.perf_counter()
    part = partition(net, plane.origin, plane.directions, plane.domain)
    engine = time.perf_counter() - start
    x = plane.to_input(part.coords).reshape(len(part.coords), *net.input_shape)
    start = time.perf_counter()
    net(x)
    forward = time.perf_counter() - start
    start = time.perf_counter()
    result = analysis.run(net, plane)
    whole = time.perf_counter() - start
    return {
        "case": case,
        "tiles": result.regions,
        "vertices": len(part.coords),
        "partition_s": engine,
        "analysis_s": whole,
        "forward_s": forward,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    if len(sys.argv) == 2:
        print(json.dumps(measure(sys.argv[1])))
        return
    print(f"{'case':11} {'tiles':>7} {'partition':>10} {'analysis':>9} {'vs forward':>11} {'peak MiB':>9}")
    for case in CASES:
        done = subprocess.run([sys.executable, __file__, case], capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{row['case']:11} {row['tiles']:7d} {row['partition_s']:9.2f}s {row['analysis_s']:8.2f}s "
            f"{row['partition_s'] / row['forward_s']:10.1f}x {row['peak_mib']:9.0f}"
        )
    print("vs forward: partition time / one forward pass over the final vertex set")


if __name__ == "__main__":
    main()
