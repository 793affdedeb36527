"""Start-up of the command line: what a user waits for before anything is computed.

Each case runs in a fresh process, as a shell starts it (`python -m splinetool ...`), best of several
runs, in wall time and in CPU time (user + system of the process: what the start costs on an idle
machine, where the wall time of a busy one is inflated by waiting for a core): `--help`, a command's
`--help`, a usage error (an unknown option), and a real small command (`info` on the moons sample,
which loads torch, lowers the model and checks the lowering). The cheapest possible work is an
interpreter that imports nothing; `import torch` alone is timed too, and its share of the real command
printed: the part of a run's start that lazy imports cannot remove.

    .venv/bin/python bench/bench_startup.py
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOONS = str(ROOT / "sample_models" / "moons-mlp.ts.pt")
CLI = [sys.executable, "-m", "splinetool"]
CASES = {
    "python (nothing imported)": [sys.executable, "-c", "pass"],
    "import torch": [sys.executable, "-c", "import torch"],
    "splinetool --help": [*CLI, "--help"],
    "splinetool slice --help": [*CLI, "slice", "--help"],
    "usage error (exit 2)": [*CLI, "slice", MOONS, "--no-such-option"],
    "splinetool info moons-mlp": [*CLI, "info", MOONS],
}
# usage errors exit 2; the others succeed
EXIT_CODES = {"usage error (exit 2)": 2}


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def best_of(command: list[str], expected: int, repeats: int) -> tuple[float, float]:
    """The least wall time and the least CPU time of `repeats` runs, in seconds."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), children_cpu()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
        wall.append(time.perf_counter() - start)
        cpu.append(children_cpu() - start_cpu)
        if done.returncode != expected:
            raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode()}")
    return min(wall), min(cpu)


def main(repeats: int = 5) -> None:
    seconds = {name: best_of(command, EXIT_CODES.get(name, 0), repeats) for name, command in CASES.items()}
    print(f"{'case':<28} {'wall s':>8} {'CPU s':>8}")
    for name, (wall, cpu) in seconds.items():
        print(f"{name:<28} {wall:>8.3f} {cpu:>8.3f}")
    bare = seconds["python (nothing imported)"][1]
    torch_share = (seconds["import torch"][1] - bare) / (seconds["splinetool info moons-mlp"][1] - bare)
    print(f"import torch is {torch_share:.0%} of the real command's CPU time over bare python")


if __name__ == "__main__":
    main()
