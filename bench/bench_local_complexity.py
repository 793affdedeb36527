"""Cost of local complexity against the cheapest possible work: one forward pass over the same vertices.

For digits-mlp and digits-resnet, LC around all 1,797 digits (P = 25 directions, so 2P·N = 89,850
vertices; default radius; float64) is timed against the original TorchScript model's forward pass over
those same vertices (built beforehand, fed in the same chunks). Peak memory is measured in a fresh
process per run (Linux), as the rise of its peak resident set size over its size before the run: with
the automatic chunking it stays flat as the number of points grows, unlike one batch of all vertices.

    .venv/bin/python bench/bench_local_complexity.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import splinetool  # noqa: E402
from splinetool.analyses import local_complexity as lc  # noqa: E402
from splinetool.engine.memory import auto_chunk  # noqa: E402

MODELS = ("digits-mlp", "digits-resnet")
DIRECTIONS = 25


def best_of_each(first, second, repeats: int = 5) -> tuple[float, float]:
    """Best times of two functions, run in turns so that a busy spell of the machine hits both."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, log in zip((first, second), times):
            start = time.perf_counter()
            fn()
            log.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def digits(copies: int = 1) -> np.ndarray:
    x = np.load(ROOT / "sample_models" / "data" / "digits.npz")["x"].astype(np.float64)
    # more points for the memory runs: the digits again, nudged so no two points coincide
    noise = np.random.default_rng(0).normal(scale=1e-3, size=(copies - 1, *x.shape))
    return np.concatenate([x, *(x + n for n in noise)])


def load(name: str):
    loaded = splinetool.load_model(ROOT / "sample_models" / f"{name}.ts.pt")
    return loaded, splinetool.lower(loaded).to(dtype=torch.float64)


def timing(name: str) -> dict:
    loaded, net = load(name)
    x = digits()
    points = [lc.PointSet("digits", x)]
    result = lc.run(net, points, lc.LCOptions(directions=DIRECTIONS))
    chunk = auto_chunk(net, 2 * DIRECTIONS, lc.CPU_BATCH_VERTICES)
    frame = torch.as_tensor(result.frame_vectors) * result.radius
    xt = torch.as_tensor(x)
    vertices = [
        (part[:, None, :] + torch.cat([frame, -frame])).reshape(-1, *net.input_shape)
        for part in xt.split(chunk)
    ]
    model = loaded.module.to(torch.float64)
    forward, measured = best_of_each(
        lambda: [model(v) for v in vertices], lambda: lc.run(net, points, lc.LCOptions(directions=DIRECTIONS))
    )
    return {
        "model": name,
        "points": len(x),
        "vertices": len(x) * 2 * DIRECTIONS,
        "chunk": chunk,
        "forward_s": forward,
        "lc_s": measured,
        "ratio": measured / forward,
        "lc_mean": result.stats(0)["lc_mean"],
    }


def peak_memory(name: str, copies: int, chunk: int | None) -> float:
    """MiB by which one LC run raises the peak resident set size of a fresh process."""
    args = ["--memory", name, str(copies), "-" if chunk is None else str(chunk)]
    # glibc's adaptive mmap threshold lets freed large buffers stay in the heap, so without a fixed
    # threshold the resident size wanders by hundreds of MiB from run to run, whatever the work
    env = os.environ | {"MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True, env=env
    )
    return float(done.stdout.strip().splitlines()[-1])


def measure_memory(name: str, copies: int, chunk: int | None) -> float:
    _, net = load(name)
    points = [lc.PointSet("digits", digits(copies))]
    lc.run(
        net, [lc.PointSet("digits", digits()[:10])], lc.LCOptions(directions=DIRECTIONS)
    )  # load kernels, warm allocators
    before = _status_mib("VmRSS")
    # reset the kernel's peak-RSS mark (Linux >= 4.0): a child process inherits its parent's
    # getrusage() peak, so that would measure the parent
    Path("/proc/self/clear_refs").write_text("5")
    lc.run(net, points, lc.LCOptions(directions=DIRECTIONS, batch_size=chunk))
    return _status_mib("VmHWM") - before


def _status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {key} in /proc/self/status")


def main() -> None:
    torch.set_grad_enabled(False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64, P = {DIRECTIONS}")
    header = ("model", "points", "vertices", "chunk", "forward", "LC", "ratio", "LC mean")
    print("{:14} {:>6} {:>9} {:>6} {:>9} {:>9} {:>6} {:>8}".format(*header))
    for name in MODELS:
        t = timing(name)
        print(
            f"{t['model']:14} {t['points']:6d} {t['vertices']:9,d} {t['chunk']:6d} {t['forward_s']:8.2f}s "
            f"{t['lc_s']:8.2f}s {t['ratio']:5.2f}x {t['lc_mean']:8.2f}"
        )
    print("ratio: LC time / the TorchScript model's forward pass over the same 2P·N vertices, same chunks")
    print()
    print("peak memory above the process's size before the run (MiB):")
    print("{:14} {:>14} {:>14} {:>22}".format("model", "N = 1,797", "N = 7,188", "N = 1,797, one batch"))
    for name in MODELS:
        one, four = peak_memory(name, 1, None), peak_memory(name, 4, None)
        whole = peak_memory(name, 1, 1797)
        print(f"{name:14} {one:14.0f} {four:14.0f} {whole:22.0f}")
    print("automatic chunks: about 1,000 vertices on a CPU; one batch: all 2P·N = 89,850 vertices at once")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory"]:
        name, copies, chunk = sys.argv[2:5]
        print(measure_memory(name, int(copies), None if chunk == "-" else int(chunk)))
    else:
        main()
