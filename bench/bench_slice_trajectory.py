"""Cost of slicing a training trajectory against slicing its checkpoints one at a time.

Ten checkpoints of sample_models/digits-mlp-trajectory (steps 10 to 300,000) on the plane through
training digits 0, 1 and 2 (square domain, `--margin` times the farthest anchor's distance): the
trajectory (`TrajectoryJob.compute`: load, slice and place each checkpoint) against ten single
slices (load and `slice.run` each, what a user would otherwise script). Both load the same
TorchScript files the same way; the placement numbers (analyses/tile_placement.py) are timed apart
too, since the single slices do not compute them. Runs alternate, best of `--repeats`.

    .venv/bin/python bench/bench_slice_trajectory.py [--margin 1.1] [--repeats 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from splinetool.analyses import slice as analysis  # noqa: E402
from splinetool.analyses.plane import PlaneOptions  # noqa: E402
from splinetool.analyses.tile_placement import Placer  # noqa: E402
from splinetool.data.loading import load_data  # noqa: E402
from splinetool.frontends.loading import load_model  # noqa: E402
from splinetool.ir import lower  # noqa: E402

TRAJECTORY = ROOT / "sample_models" / "digits-mlp-trajectory"


def load(path: Path):
    loaded = load_model(path)
    return loaded, lower(loaded).to(dtype=torch.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--margin", type=float, default=1.1)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    paths = sorted(TRAJECTORY.glob("step-*.ts.pt"))[1:]  # the ten after initialisation
    steps = [int(p.name.split(".")[0].split("-")[1]) for p in paths]
    dataset = load_data(str(ROOT / "sample_models" / "data" / "digits.npz"), split="train")
    _, first = load(paths[0])
    (plane,), _ = PlaneOptions(anchor_index="0,1,2", margin=args.margin).planes(first.input_shape, dataset)
    points, _ = analysis.points_in_plane(plane, dataset, project=False)
    job = analysis.TrajectoryJob(load, paths, steps, plane, points)

    def singles():
        return [analysis.run(load(path)[1], plane) for path in paths]

    best = {"trajectory": np.inf, "singles": np.inf}
    for _ in range(args.repeats):
        for name, work in (("trajectory", job.compute), ("singles", singles)):
            start = time.perf_counter()
            result = work()
            best[name] = min(best[name], time.perf_counter() - start)
            if name == "trajectory":
                trajectory = result
    start = time.perf_counter()
    analysis.place_all(Placer(plane.domain.numpy(), points), trajectory.slices)
    placing = time.perf_counter() - start
    tiles = sum(one.regions for one in trajectory.slices)
    span = f"steps {steps[0]:,} to {steps[-1]:,}"
    print(f"{len(paths)} checkpoints, {span}, margin {args.margin:g}: {tiles:,} tiles")
    print(f"{'work':<34}{'seconds':>9}{'tiles/s':>10}")
    for name, label in (("singles", "10 single slices"), ("trajectory", "trajectory (slices + placement)")):
        print(f"{label:<34}{best[name]:>9.2f}{tiles / best[name]:>10,.0f}")
    print(f"{'of which placement':<34}{placing:>9.2f}")
    ratio = best["trajectory"] / best["singles"]
    slicing = (best["trajectory"] - placing) / best["singles"]
    print(f"ratio trajectory / singles: {ratio:.2f}x; without the placement numbers: {slicing:.2f}x")


if __name__ == "__main__":
    main()
