"""Throughput of local complexity over all 1,797 digits with 1 and 2 processes (torchrun, gloo, CPU).

digits-mlp, P = 25 directions (89,850 vertices), default radius, float64. Each configuration runs the
CLI as a user would: one process with torch's default threads, one process with one thread, and
`torchrun --nproc-per-node 2` (one thread per rank, torchrun's default). Two times per run: the wall
time of the whole command (Python and torch start-up, loading, gather, writing the file) and the
LC work itself (the result's `seconds`: the longest share). Best of three, runs taken in turns.

    .venv/bin/python bench/bench_parallel.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "sample_models" / "digits-mlp.ts.pt"
DATA = ROOT / "sample_models" / "data" / "digits.npz"
POINTS = 1797
REPEATS = 3


def command(ranks: int) -> list[str]:
    if ranks == 1:
        return [sys.executable, "-m", "splinetool"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks)] + [
        "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "splinetool",
    ]  # fmt: skip


def run(ranks: int, threads: int | None, folder: Path) -> tuple[float, float]:
    out = folder / f"lc-{ranks}-{threads}.h5"
    env = {
        k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")
    }
    env["PYTHONPATH"] = str(ROOT)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    args = ["local-complexity", str(MODEL), "--data", str(DATA), "--device", "cpu", "-q", "-o", str(out)]
    start = time.perf_counter()
    subprocess.run(command(ranks) + args, cwd=ROOT, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    with h5py.File(out, "r") as f:
        return wall, float(f["local-complexity"].attrs["seconds"])


def main() -> None:
    configurations = {
        "1 process, default threads": (1, None),
        "1 process, 1 thread": (1, 1),
        "torchrun, 2 ranks x 1 thread": (2, None),
    }
    best = {name: (float("inf"), float("inf")) for name in configurations}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(REPEATS):
            for name, (ranks, threads) in configurations.items():
                wall, work = run(ranks, threads, Path(folder))
                best[name] = (min(best[name][0], wall), min(best[name][1], work))
    print(f"LC over {POINTS:,} digits, digits-mlp, 25 directions, float64; cores: {os.cpu_count()}")
    print(f"{'':32}{'wall s':>9}{'points/s':>10}{'LC work s':>11}{'points/s':>10}")
    for name, (wall, work) in best.items():
        print(f"{name:32}{wall:9.2f}{POINTS / wall:10.0f}{work:11.2f}{POINTS / work:10.0f}")
    base_wall, base_work = best["1 process, default threads"]
    wall, work = best["torchrun, 2 ranks x 1 thread"]
    print(
        f"throughput, 2 ranks / 1 process: {base_wall / wall:.2f}x (wall), {base_work / work:.2f}x (LC work)"
    )


if __name__ == "__main__":
    main()
