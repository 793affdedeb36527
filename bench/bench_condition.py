"""Cost of `condition` on digits-mlp against the J products it needs, and against one forward pass.

Every parameterised layer of digits-mlp (4 hidden layers of 200 and the output, 135,610 parameters) on
all 1,797 digits, float64, the top and bottom 20 eigenvalues of each layer's Hessian (Lanczos for the
hidden layers, the dense JᵀJ for the 2,010-parameter output layer). The work a layer cannot avoid is
one product J v and one Jᵀ u per Lanczos step; the ratio divides the layer's whole time (its setup,
the products, the full reorthogonalisation and the tridiagonal eigensolves) by that many product
pairs, each timed alone (best of five).

    .venv/bin/python bench/bench_condition.py [--lanczos-steps N]
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
from splinetool.analyses import condition  # noqa: E402
from splinetool.engine.layer_jacobian import LayerJacobian, parameter_layers  # noqa: E402

K = 20


def best(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lanczos-steps", type=int, default=condition.DEFAULT_LANCZOS_STEPS)
    args = parser.parse_args()
    net = splinetool.lower(splinetool.load_model(ROOT / "sample_models" / "digits-mlp.ts.pt"))
    net = net.to(dtype=torch.float64)
    x = torch.as_tensor(np.load(ROOT / "sample_models" / "data" / "digits.npz")["x"], dtype=torch.float64)
    forward = best(lambda: net(x))
    print(f"digits-mlp, {len(x)} digits, k = {K}, at most {args.lanczos_steps} Lanczos steps, float64")
    print(f"one forward pass over the digits: {forward * 1e3:.1f} ms\n")
    print(f"{'layer':18}{'params':>8}  {'method':11}{'steps':>6}{'time':>9}{'J pair':>10}{'ratio':>7}"
          f"{'κ':>11}  converged")  # fmt: skip
    total = 0.0
    for layer in parameter_layers(net):
        start = time.perf_counter()
        spectrum = condition.layer_spectrum(net, layer, x, k=K, lanczos_steps=args.lanczos_steps)
        seconds = time.perf_counter() - start
        total += seconds
        jac = LayerJacobian(net, layer, x, len(x))
        v = torch.randn(jac.params, dtype=torch.float64)
        pair = best(lambda jac=jac, v=v: jac.vjp(jac.jvp(v)))
        steps = spectrum.lanczos_steps
        ratio = f"{seconds / (steps * pair):.2f}x" if steps else "–"
        print(f"{layer.name:18}{layer.params:>8,}  {spectrum.method:11}{steps:>6}{seconds:>8.2f}s"
              f"{pair * 1e3:>8.1f}ms{ratio:>7}{spectrum.condition_number:>11.3g}  "
              f"{'exact' if spectrum.exact else spectrum.converged}")  # fmt: skip
    print(f"\nall layers: {total:.1f} s (target: under 60 s)")
    print("ratio: the layer's time / (Lanczos steps × one J v and Jᵀ u pair timed alone)")


if __name__ == "__main__":
    main()
