"""Cost of debias-sample's per-latent volumes against one forward pass and a per-latent Jacobian loop.

For gmm-wgan (d = 2 → D = 2) and digits-decoder (d = 8 → D = 64), 100,000 latents from N(0, I),
float64. `measure` is step 2 of the analysis (batched Jacobians by forward-mode products, singular
values, log-volumes, tile codes); `run` is the whole analysis (pool, measure, weights, 1,000 draws and
their outputs). They are timed against the original model's forward pass over the same 100,000 latents
(the least any method must do) and against the loop a user would write, `torch.autograd.functional
.jacobian` one latent at a time followed by `torch.linalg.svdvals`: that loop is timed on the first
`LOOP_LATENTS` latents and extrapolated linearly to 100,000.

One thread by default (`--threads N` to change): on a shared 2-core machine, two threads per process
wait on each other whenever another process takes a core, which slows the batched work by up to 10×
and the Python-bound loop hardly at all.

    .venv/bin/python bench/bench_debias_sample.py [--threads 1]
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

import splinetool  # noqa: E402
from splinetool.analyses import debias_sample as ds  # noqa: E402

MODELS = ("gmm-wgan", "digits-decoder")
POOL = 100_000
LOOP_LATENTS = 1_000


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def per_latent_loop(model: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """The plain approach: one dense Jacobian per latent, then its singular values."""
    logs = []
    for z in latents:
        jac = torch.autograd.functional.jacobian(lambda v: model(v[None])[0], z)
        logs.append(torch.log(torch.linalg.svdvals(jac)).sum())
    return torch.stack(logs)


def timing(name: str) -> dict:
    loaded = splinetool.load_model(ROOT / "sample_models" / f"{name}.ts.pt")
    net = splinetool.lower(loaded).to(dtype=torch.float64)
    model = loaded.module.to(torch.float64)
    latents = ds.draw_pool("normal", POOL, net.input_dim, seed=0)
    z = torch.as_tensor(latents)
    chunk = 4096

    def forward():
        with torch.no_grad():
            for part in z.split(chunk):
                model(part)

    forward_s = best_of(forward)
    measure_s = best_of(lambda: ds.measure(net, latents), repeats=2)
    run_s = best_of(lambda: ds.run(net, ds.DebiasOptions(n=1000, pool=POOL)), repeats=1)
    measured = ds.measure(net, latents[:LOOP_LATENTS])
    start = time.perf_counter()
    looped = per_latent_loop(model, z[:LOOP_LATENTS])
    loop_s = (time.perf_counter() - start) * POOL / LOOP_LATENTS
    agree = float(np.abs(looped.numpy() - measured.log_volume).max())
    return {
        "model": name,
        "dims": f"{net.input_dim} → {net.output_dim}",
        "forward_s": forward_s,
        "measure_s": measure_s,
        "run_s": run_s,
        "loop_s": loop_s,
        "agree": agree,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    torch.set_num_threads(parser.parse_args().threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64, {POOL:,} latents")
    header = (
        "model",
        "d → D",
        "forward",
        "measure",
        "vs fwd",
        "run",
        "loop (est.)",
        "loop/measure",
        "max |Δ|",
    )
    print("{:15} {:>8} {:>9} {:>9} {:>7} {:>8} {:>12} {:>13} {:>9}".format(*header))
    for name in MODELS:
        t = timing(name)
        print(
            f"{t['model']:15} {t['dims']:>8} {t['forward_s']:8.3f}s {t['measure_s']:8.2f}s "
            f"{t['measure_s'] / t['forward_s']:6.0f}x {t['run_s']:7.2f}s {t['loop_s']:11.0f}s "
            f"{t['loop_s'] / t['measure_s']:12.0f}x {t['agree']:9.1e}"
        )
    print(
        f"forward: the TorchScript model over the {POOL:,} latents (chunks of 4,096); measure: Jacobians,\n"
        "singular values, log-volumes and tile codes of every latent; run: the whole analysis, n = 1,000;\n"
        f"loop: torch.autograd.functional.jacobian + svdvals latent by latent, timed on {LOOP_LATENTS:,}\n"
        f"latents and scaled to {POOL:,}; max |Δ|: largest log-volume difference between the two"
    )


if __name__ == "__main__":
    main()
