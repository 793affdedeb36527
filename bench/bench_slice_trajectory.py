"""Cost of slicing a training trajectory against slicing its checkpoints one at a time.

Ten checkpoints of sample_models/digits-mlp-trajectory (steps 10 to 300,000) on the plane through
training digits 0, 1 and 2 (square domain, `--margin` times the farthest anchor's distance): the
trajectory (`TrajectoryJob.compute`: load the checkpoints, slice those of one graph in one sweep of
the engine, place each) against ten single slices (load and `slice.run` each, what a user would
otherwise script) and against the trajectory sliced a checkpoint per sweep (the obvious way). All
load the same TorchScript files the same way; the placement numbers (analyses/tile_placement.py)
are timed apart too, since the single slices do not compute them. Runs alternate, best of
`--repeats`. With `--cli`, also the command line: ten `splinetool slice` processes against one over
the ten checkpoints.

    .venv/bin/python bench/bench_slice_trajectory.py [--margin 1.1] [--repeats 1] [--cli]
"""

from __future__ import annotations

import argparse
import subprocess
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
    parser.add_argument("--cli", action="store_true", help="also time the command line, fresh processes")
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

    def one_at_a_time():
        # the trajectory as it was sliced before checkpoints of one graph were swept together
        at_once, analysis.CHECKPOINTS_AT_ONCE = analysis.CHECKPOINTS_AT_ONCE, 1
        try:
            return job.compute()
        finally:
            analysis.CHECKPOINTS_AT_ONCE = at_once

    works = {"trajectory": job.compute, "singles": singles, "one at a time": one_at_a_time}
    best = dict.fromkeys(works, np.inf)
    for _ in range(args.repeats):
        for name, work in works.items():
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
    labels = {
        "singles": "10 single slices",
        "trajectory": "trajectory (slices + placement)",
        "one at a time": "  the same, a checkpoint a sweep",
    }
    for name, label in labels.items():
        print(f"{label:<34}{best[name]:>9.2f}{tiles / best[name]:>10,.0f}")
    print(f"{'placement alone':<34}{placing:>9.2f}")
    ratio = best["trajectory"] / best["singles"]
    slicing = (best["trajectory"] - placing) / best["singles"]
    print(f"ratio trajectory / singles: {ratio:.2f}x; without the placement numbers: {slicing:.2f}x")
    if args.cli:
        command_line(paths, args.margin, args.repeats)


def command_line(paths: list[Path], margin: float, repeats: int) -> None:
    """What a user pays at the shell: ten `splinetool slice` commands against one over the ten
    checkpoints (wall time of fresh processes, start-up included)."""
    cli = str(Path(sys.executable).parent / "splinetool")
    data = ["--data", str(ROOT / "sample_models" / "data" / "digits.npz"), "--split", "train"]
    common = [*data, "--anchor-index", "0,1,2", "--margin", str(margin), "--json"]
    best = {"singles": np.inf, "trajectory": np.inf}
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            subprocess.run([cli, "slice", str(path), *common], check=True, capture_output=True)
        best["singles"] = min(best["singles"], time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([cli, "slice", *map(str, paths), *common], check=True, capture_output=True)
        best["trajectory"] = min(best["trajectory"], time.perf_counter() - start)
    print(f"command line: 10 `slice` commands {best['singles']:.1f} s, one over the trajectory ", end="")
    print(f"{best['trajectory']:.1f} s ({best['trajectory'] / best['singles']:.2f}x)")


if __name__ == "__main__":
    main()
