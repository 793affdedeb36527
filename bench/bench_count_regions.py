"""Exact region counts along segments and on planes, against one forward pass and the plain alternatives.

Cases:
  tent-20        the depth-20 tent-map network on [0, 1]: 2^20 pieces
  digits-pairs   1,000 random segments between training digits through digits-mlp (seed 0)
  moons-plane    the tiles of moons-mlp on [-2, 2]^2
  digits-plane   the tiles of digits-mlp on the plane through three training digits, margin 4

Segments: seconds for the exact count (best of 3), one forward pass of the network over every
breakpoint found (the least any exact method must evaluate), and the plain approach a user would
otherwise write: activation codes on a dense grid along each segment (8 points per exact piece),
counting code changes, which is slower and still only a lower bound. Planes: the count, which drops
tiles once counted, against the whole slice analysis, which keeps every tile with its affine map, in
seconds and peak resident memory (each in a fresh process).

    .venv/bin/python bench/bench_count_regions.py
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
sys.path.insert(0, str(ROOT))

import splinetool  # noqa: E402
from splinetool.analyses import count_regions  # noqa: E402
from splinetool.analyses.plane import anchor_plane, input_plane  # noqa: E402
from tests.zoo import tent_network  # noqa: E402

REPEATS = 3
DENSE_PER_PIECE = 8


def best(work) -> tuple[float, object]:
    times, result = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), result


def dense_changes(net, starts, ends, per_segment: int) -> tuple[float, int]:
    """Code changes seen on a uniform grid of `per_segment` points along each segment."""
    start = time.perf_counter()
    t = torch.linspace(0, 1, per_segment, dtype=torch.float64)
    changes = 0
    for s in range(len(starts)):
        for chunk in t.split(1 << 16):
            x = starts[s] + chunk[:, None] * (ends[s] - starts[s])
            codes = net.codes(x.reshape(len(x), *net.input_shape))
            changes += int((codes[1:] != codes[:-1]).any(dim=1).sum())
    return time.perf_counter() - start, changes + len(starts)


def segments_case(name: str, net, starts, ends) -> None:
    seconds, result = best(lambda: count_regions.run(net, count_regions.Segments(starts, ends)))
    segment = torch.repeat_interleave(torch.arange(len(starts)), torch.as_tensor(np.diff(result.offsets)))
    t = torch.as_tensor(result.breakpoints)
    x = starts[segment] + t[:, None] * (ends - starts)[segment]
    forward, _ = best(lambda: net(x.reshape(len(x), *net.input_shape)))
    pieces = int(result.pieces.sum())
    per_segment = max(2, DENSE_PER_PIECE * pieces // len(starts))
    dense_s, found = dense_changes(net, starts, ends, per_segment)
    print(
        f"{name:<14}{pieces:>10,} pieces{seconds:>9.2f}s{seconds / forward:>10.1f}x"
        f"{dense_s:>10.2f}s{found:>12,} ({found / pieces:.1%}){dense_s / seconds:>9.1f}x"
    )


def main() -> None:
    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64")
    # a child process starts from its parent's peak memory: the planes run before the parent grows
    print("planes (each in a fresh process, for its own peak memory):")
    print(f"{'case':<14}{'tiles':>10}{'count':>9}{'peak MiB':>10}{'slice':>9}{'peak MiB':>10}")
    for case in PLANES:
        rows = []
        for how in ("count", "slice"):
            done = subprocess.run(
                [sys.executable, __file__, case, how], capture_output=True, text=True, check=False
            )
            lines = done.stdout.strip().splitlines()
            rows.append(json.loads(lines[-1]) if done.returncode == 0 and lines else None)
        count, sliced = rows
        slice_cells = (
            f"{sliced['seconds']:>8.2f}s{sliced['peak_mib']:>10.0f}" if sliced else f"{'failed':>19}"
        )
        print(
            f"{case:<14}{count['tiles']:>10,}{count['seconds']:>8.2f}s{count['peak_mib']:>10.0f}{slice_cells}"
        )
    print("segments:")
    print(
        f"{'case':<14}{'count':>17}{'exact':>10}{'vs forward':>11}{'dense':>10}{'dense finds':>20}"
        f"{'exact faster':>13}"
    )
    tent = splinetool.lower(tent_network(20), (1,)).to(dtype=torch.float64)
    segments_case(
        "tent-20", tent, torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)
    )

    digits = splinetool.lower(splinetool.load_model(ROOT / "sample_models" / "digits-mlp.ts.pt"))
    digits = digits.to(dtype=torch.float64)
    x = torch.as_tensor(
        np.load(ROOT / "sample_models" / "data" / "digits.npz")["x_train"], dtype=torch.float64
    )
    rng = np.random.default_rng(0)
    first = rng.integers(0, len(x), 1000)
    second = (first + rng.integers(1, len(x), 1000)) % len(x)
    segments_case("digits-pairs", digits, x[first], x[second])


def plane_case(case: str, how: str) -> dict:
    """One plane counted (tiles dropped once counted) or sliced (every tile kept, with its maps)."""
    torch.set_grad_enabled(False)
    net, plane = PLANES[case]()
    start = time.perf_counter()
    if how == "count":
        tiles = count_regions.run(net, count_regions.Planes((plane,))).regions
    else:
        tiles = splinetool.slice(net, plane).regions
    return {
        "tiles": tiles,
        "seconds": time.perf_counter() - start,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def moons_plane():
    moons = splinetool.lower(splinetool.load_model(ROOT / "sample_models" / "moons-mlp.pt2"))
    return moons.to(dtype=torch.float64), input_plane(2, (-2.0, 2.0, -2.0, 2.0))


def digits_plane():
    digits = splinetool.lower(splinetool.load_model(ROOT / "sample_models" / "digits-mlp.ts.pt"))
    anchors = np.load(ROOT / "sample_models" / "data" / "digits.npz")["x_train"][:3]
    return digits.to(dtype=torch.float64), anchor_plane(torch.as_tensor(anchors, dtype=torch.float64), 4.0)


PLANES = {"moons-plane": moons_plane, "digits-plane": digits_plane}


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(json.dumps(plane_case(*sys.argv[1:])))
    else:
        main()
