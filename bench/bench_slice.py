"""Exact planar slices: `splinetool slice` against `splinetool count-regions` and Regioncam.

For each case, on identical weights and the identical plane, three tools in turns, each run in a
fresh process: the whole `splinetool slice` command and `splinetool count-regions` (the CLI with
`--json`: its `regions` and `seconds`, the work inside the process), and Regioncam (the `regioncam`
package, installed only in the benchmark environment: its own calls from an empty square through
every layer, timed inside its process; it computes in float32, splinetool in float64). Best of 3
repetitions, or 1 when a run takes over a minute; peak resident memory of each process (its own
rusage); a run that fails or passes `--timeout` is reported, not raised.

Cases (`--cases`, comma-separated, or `all`; default random-mlp,digits-mlp):
  random-mlp      a random 2 -> 128x4 -> 1 ReLU MLP (seed 0, default init) on [-1, 1]^2
  digits-mlp      sample model (64 -> 200x4 -> 10), plane through train digits 0, 1, 2 (margin 1.25)
  digits-convnet  sample model, planes through train digits 0, 1, 2 and 3, 4, 5 (splinetool only)
  digits-resnet   sample model, same planes (splinetool only)
  resnet18-cifar  family `resnet` at ResNet-18 widths with ResNet-18's stem (7x7 stride-2 conv,
                  3x3 stride-2 max-pool) on 3x32x32 inputs, random weights (seed 0), plane through
                  three random inputs x0 + 0.01 e_i (x0, e_i N(0, 1), seed 0), margin 1.01
                  (splinetool only)

Regioncam receives the network on plane coordinates: the plane's map t -> origin + t @ directions is
folded into the first linear layer (in float64, then rounded to float32), and its square is the
slice's domain.

    make bench-env && bench/.venv/bin/python bench/bench_slice.py [--cases all] [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "sample_models" / "data" / "digits.npz"
DEFAULT_CASES = ("random-mlp", "digits-mlp")
ALL_CASES = (*DEFAULT_CASES, "digits-convnet", "digits-resnet", "resnet18-cifar")
TOOLS = ("slice", "count-regions", "regioncam")
REPEATS, SLOW_S = 3, 60.0
TARGETS = {"random-mlp": (3.0, 1.3), "digits-mlp": (3.0, 1.3)}  # Regioncam / slice >=, slice / count <=


# --- in a child process: build the case's files (torch, numpy and splinetool are imported here only)


def prepare(case: str, folder: Path) -> list[dict]:
    """The planes of a case: the CLI's arguments and, where Regioncam can run it, its weights file."""
    import numpy as np
    import torch

    from splinetool.analyses.plane import anchor_plane
    from splinetool.frontends.families import build

    def save(model, options: dict, family: str) -> str:
        path = folder / f"{case}.ts.pt"
        meta = {"input_shape": options["input_shape"], "family": family, "options": options}
        torch.jit.save(
            torch.jit.script(model.eval()), path, _extra_files={"splinetool.json": json.dumps(meta)}
        )
        return str(path)

    def regioncam_file(state: dict, origin, directions, half: float) -> str:
        """Linear layers as x @ w + b in float32, the first one on plane coordinates."""
        weights = [v.double() for k, v in state.items() if k.endswith(".weight")]
        biases = [v.double() for k, v in state.items() if k.endswith(".bias")]
        biases[0] = biases[0] + weights[0] @ origin
        weights[0] = weights[0] @ directions.T
        layers = {f"w{i}": w.T.float().numpy() for i, w in enumerate(weights)}
        layers |= {f"b{i}": b.float().numpy() for i, b in enumerate(biases)}
        path = folder / f"{case}.npz"
        np.savez(path, half=half, **layers)
        return str(path)

    data = ["--data", str(DIGITS), "--split", "train"]
    if case == "random-mlp":
        options = {"input_shape": [2], "outputs": 1, "widths": [128] * 4}
        torch.manual_seed(0)
        model = build("mlp", options)
        rc = regioncam_file(
            model.state_dict(), torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64), 1.0
        )
        return [
            {"label": case, "args": [save(model, options, "mlp"), "--bounds", "-1,1,-1,1"], "regioncam": rc}
        ]
    if case == "digits-mlp":
        model = ROOT / "sample_models" / "digits-mlp.ts.pt"
        plane = anchor_plane(torch.as_tensor(np.load(DIGITS)["x_train"][[0, 1, 2]]))
        half = float(plane.domain[:, 0].max())
        rc = regioncam_file(torch.jit.load(model).state_dict(), plane.origin, plane.directions, half)
        return [{"label": case, "args": [str(model), *data, "--anchor-index", "0,1,2"], "regioncam": rc}]
    if case in ("digits-convnet", "digits-resnet"):
        model = str(ROOT / "sample_models" / f"{case}.ts.pt")
        return [
            {"label": f"{case} {rows}", "args": [model, *data, "--anchor-index", rows], "regioncam": None}
            for rows in ("0,1,2", "3,4,5")
        ]
    if case == "resnet18-cifar":
        options = {
            "input_shape": [3, 32, 32],
            "outputs": 10,
            "stem_channels": 64,
            "stages": [64, 128, 256, 512],
            "blocks_per_stage": 2,
            "stem": "imagenet",
        }
        torch.manual_seed(0)
        model = save(build("resnet", options), options, "resnet")
        # three random inputs near one another: x0 + 0.01 e_i, with x0 and e_i N(0, 1) (seed 0); the
        # plane through three unrelated inputs spans distances near 80, where a random ResNet-18 has
        # far more tiles than this CPU can cut in minutes
        anchors = folder / "anchors.npy"
        rng = np.random.default_rng(0)
        x0 = rng.standard_normal((3, 32, 32))
        np.save(anchors, x0 + 0.01 * rng.standard_normal((3, 3, 32, 32)))
        return [
            {"label": case, "args": [model, "--anchors", str(anchors), "--margin", "1.01"], "regioncam": None}
        ]
    raise SystemExit(f"unknown case {case!r}; cases: {', '.join(ALL_CASES)}")


def run_regioncam(path: str) -> dict:
    """Regioncam's tiles of the plane, timed inside this process (numpy and regioncam only)."""
    import numpy as np
    import regioncam

    saved = np.load(path)
    layers = [(saved[f"w{i}"], saved[f"b{i}"]) for i in range(len(saved.files) // 2)]
    start = time.perf_counter()
    cam = regioncam.Regioncam(float(saved["half"]))
    per_layer = []
    for i, (weight, bias) in enumerate(layers):
        cam.linear(weight, bias)
        if i < len(layers) - 1:
            cam.relu()
            per_layer.append(cam.num_faces)
    seconds = time.perf_counter() - start
    return {"regions": cam.num_faces, "seconds": seconds, "per_layer": per_layer}


# --- in the parent: only the standard library, so that no child starts from a large peak


def measure(command: list[str], timeout: float) -> dict:
    """One run in a fresh process: its JSON, wall time and peak RSS, or why it gave none."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        if wall >= timeout:
            return {"failed": f"timeout ({timeout:.0f} s)"}
        last = (stderr.strip().splitlines() or ["no message"])[-1]
        return {"failed": f"exit {proc.returncode}: {last[:100]}"}
    return json.loads(stdout) | {"wall": wall, "peak_mib": usage.ru_maxrss / 1024}


def commands(row: dict) -> dict[str, list[str] | None]:
    cli = str(Path(sys.executable).parent / "splinetool")
    rc = [sys.executable, __file__, "--regioncam", row["regioncam"]] if row["regioncam"] else None
    return {
        "slice": [cli, "slice", *row["args"], "--json"],
        "count-regions": [cli, "count-regions", *row["args"], "--json"],
        "regioncam": rc,
    }


def bench_row(row: dict, timeout: float) -> dict[str, dict]:
    """The tools in turns; best of REPEATS by `seconds`, a single round when one run is slow."""
    runs = {tool: [] for tool, command in commands(row).items() if command}
    for repeat in range(REPEATS):
        if repeat and any("failed" in r[0] or r[0]["wall"] > SLOW_S for r in runs.values()):
            break
        for tool, command in commands(row).items():
            if command:
                runs[tool].append(measure(command, timeout))
    best = {tool: min(done, key=lambda r: r.get("seconds", float("inf"))) for tool, done in runs.items()}
    return {tool: best[tool] | {"repeats": len(runs[tool])} for tool in best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", default=",".join(DEFAULT_CASES), help=f"comma-separated, or all: {ALL_CASES}"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for one run")
    parser.add_argument("--prepare", nargs=2, metavar=("CASE", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--regioncam", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        print(json.dumps(prepare(args.prepare[0], Path(args.prepare[1]))))
        return
    if args.regioncam:
        print(json.dumps(run_regioncam(args.regioncam)))
        return
    cases = ALL_CASES if args.cases == "all" else tuple(args.cases.split(","))
    if unknown := sorted(set(cases) - set(ALL_CASES)):
        parser.error(f"unknown case(s) {', '.join(unknown)}; cases: {', '.join(ALL_CASES)}")

    print(f"{os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.2f}; {sys.executable}")
    columns = f"{'tiles':>10}{'seconds':>10}{'tiles/s':>10}{'peak MiB':>9}{'wall s':>8}  runs"
    print(f"{'case':<22}{'tool':<15}{columns}")
    summaries = []
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            prep = subprocess.run(
                [sys.executable, __file__, "--prepare", case, folder], capture_output=True, text=True
            )
            if prep.returncode != 0:
                print(f"{case:<22}preparation failed: {(prep.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
            for row in json.loads(prep.stdout):
                result = bench_row(row, args.timeout)
                for tool in TOOLS:
                    print(f"{row['label']:<22}{tool:<15}" + cells(result.get(tool)), flush=True)
                summaries.append((case, row["label"], result))
    print()
    print(f"{'case':<22}{'Regioncam / slice':>26}{'slice / count-regions':>28}  tiles")
    for case, label, result in summaries:
        print(f"{label:<22}" + ratios(case, result))
    print(f"load average at the end (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("seconds: work inside each process (the CLI's JSON `seconds`, Regioncam's calls timed in its")
    print("process); wall s: the whole process; splinetool in float64, Regioncam in float32")
    for _, label, result in summaries:
        tiles = {tool: r["regions"] for tool, r in result.items() if "regions" in r}
        if len(set(tiles.values())) > 1:
            print(
                f"WARNING {label}: tile counts differ: " + ", ".join(f"{t} {n:,}" for t, n in tiles.items())
            )
            for tool, r in result.items():
                layers = r.get("per_layer") or list(r.get("tiles_per_node", {}).values())
                print(f"  {tool} after each PL node: {', '.join(f'{n:,}' for n in layers)}")


def cells(r: dict | None) -> str:
    if r is None:
        return f"{'n/a: Regioncam has no convolution layer':>57}"
    if "failed" in r:
        return f"{r['failed']:>57}"
    rate = r["regions"] / r["seconds"]
    return (
        f"{r['regions']:>10,}{r['seconds']:>9.2f}s{rate:>10,.0f}{r['peak_mib']:>9.0f}{r['wall']:>8.1f}"
        f"  {r['repeats']}"
    )


def ratios(case: str, result: dict) -> str:
    def ratio(top: str, bottom: str, target: float | None, at_least: bool) -> str:
        a, b = result.get(top, {}), result.get(bottom, {})
        if "seconds" not in a or "seconds" not in b:
            return "–"
        value = a["seconds"] / b["seconds"]
        if target is None:
            return f"{value:.2f}x"
        met = value >= target if at_least else value <= target
        return f"{value:.2f}x ({'>=' if at_least else '<='} {target}x: {'met' if met else 'MISSED'})"

    rc_target, count_target = TARGETS.get(case, (None, None))
    tiles = {r["regions"] for r in result.values() if "regions" in r}
    agree = "agree" if len(tiles) == 1 else ("–" if not tiles else "DIFFER")
    return (
        f"{ratio('regioncam', 'slice', rc_target, True):>26}"
        f"{ratio('slice', 'count-regions', count_target, False):>28}  {agree}"
    )


if __name__ == "__main__":
    main()
