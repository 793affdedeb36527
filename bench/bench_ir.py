"""Cost of the PLNet against the cheapest possible work: one forward pass of the original model.

For each sample model, over all 1,797 digits (or 1,000 moons): the original model's forward pass,
the PLNet's forward pass, activation codes, and local affine maps (against the obvious approach:
torch.autograd.functional.jacobian one point at a time, timed on 50 points and scaled).

    .venv/bin/python bench/bench_ir.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

import splinetool
from splinetool.engine.jacobian import affine_maps

ROOT = Path(__file__).resolve().parent.parent
MODELS = {
    "moons-mlp": "moons.npz",
    "digits-mlp": "digits.npz",
    "digits-convnet": "digits.npz",
    "digits-resnet": "digits.npz",
}


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(name: str, data: str, dtype: torch.dtype) -> str:
    loaded = splinetool.load_model(ROOT / "sample_models" / f"{name}.ts.pt")
    net = splinetool.lower(loaded).to(dtype=dtype)
    x = torch.as_tensor(np.load(ROOT / "sample_models" / "data" / data)["x"], dtype=dtype)
    x = x.reshape(len(x), *net.input_shape)
    model = loaded.module.to(dtype)
    forward = best_of(lambda: model(x))
    plnet = best_of(lambda: net(x))
    codes = best_of(lambda: net.codes(x))
    few = x[:50]
    with torch.enable_grad():
        affine = best_of(lambda: affine_maps(net, x), repeats=3)
        loop = best_of(lambda: [torch.autograd.functional.jacobian(model, p[None]) for p in few], repeats=1)
    loop *= len(x) / len(few)
    return (
        f"{name:16} {len(x):6d} {forward * 1e3:7.1f}ms {plnet / forward:6.2f}x {codes / forward:6.2f}x "
        f"{affine / forward:7.1f}x {loop / affine:8.1f}x faster"
    )


def main() -> None:
    torch.set_grad_enabled(False)
    header = ("model", "points", "forward", "PLNet", "codes", "affine", "jac loop")
    print("{:16} {:>6} {:>9} {:>7} {:>7} {:>8} {:>9}".format(*header))
    for name, data in MODELS.items():
        print(measure(name, data, torch.float64))
    print(
        "ratios: PLNet, codes and affine maps relative to the model's forward pass; "
        "last column: per-point jacobian loop time / batched affine maps time"
    )


if __name__ == "__main__":
    main()
