"""Train the sample models in sample_models/ and write their files, configs and README.

Run from the repository root with `make sample-models`. Training is on the CPU, single-threaded and
seeded, so a rerun reproduces the same weights and accuracies. For each model NAME it writes
NAME.ts.pt (TorchScript, with the architecture in the extra file `splinetool.json`), NAME.state.pt
(state dict), configs/arch/NAME.toml (rebuilds the module with `splinetool.frontends.families.build`)
and, for the MLPs, NAME.pt2 (torch.export, batch dimension dynamic).

It also writes the training trajectory in digits-mlp-trajectory/ (one TorchScript file per saved
step, and a README with the accuracy at each). `--trajectory` makes only that trajectory.

The generators for `splinetool debias-sample` (gmm-wgan, digits-decoder) are trained last;
`--generators` makes only them and rewrites only their section of the README.
"""

from __future__ import annotations

import argparse
import copy
import json
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from splinetool.data.generators import generate
from splinetool.frontends.families import build

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
ARCH = HERE.parent / "configs" / "arch"


@dataclass(frozen=True)
class Sample:
    name: str
    family: str
    options: dict
    data: str
    epochs: int
    lr: float
    batch_size: int
    export: bool = False


DIGITS = "8x8 UCI digits (`data/digits.npz`, 1347 train / 450 test)"
SAMPLES = [
    Sample(
        "moons-mlp",
        "mlp",
        {"input_shape": [2], "outputs": 1, "widths": [20, 20, 20, 20]},
        "two moons, noise 0.1 (`data/moons.npz`, 1000 train / 500 test)",
        epochs=200,
        lr=3e-3,
        batch_size=50,
        export=True,
    ),
    Sample(
        "digits-mlp",
        "mlp",
        {"input_shape": [64], "outputs": 10, "widths": [200, 200, 200, 200]},
        DIGITS,
        epochs=60,
        lr=1e-3,
        batch_size=64,
        export=True,
    ),
    Sample(
        "digits-convnet",
        "convnet",
        {"input_shape": [1, 8, 8], "outputs": 10, "channels": [16, 32], "batch_norm": True, "pool": "max"},
        DIGITS,
        epochs=40,
        lr=3e-3,
        batch_size=64,
    ),
    Sample(
        "digits-resnet",
        "resnet",
        {"input_shape": [1, 8, 8], "outputs": 10, "stem_channels": 8, "stages": [8, 16]},
        DIGITS,
        epochs=40,
        lr=3e-3,
        batch_size=64,
    ),
]


@dataclass(frozen=True)
class Trajectory:
    """A model saved at log-spaced steps from initialisation, through interpolation, to long training."""

    name: str
    options: dict
    lr: float
    batch_size: int
    steps: tuple[int, ...]


TRAJECTORY = Trajectory(
    "digits-mlp-trajectory",
    {"input_shape": [64], "outputs": 10, "widths": [100, 100, 100]},
    lr=1e-3,
    batch_size=64,
    steps=(0, 10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000),
)


@dataclass(frozen=True)
class GeneratorSample:
    """A generator z -> x: an MLP from its latent to its output, linear output layer."""

    name: str
    options: dict
    data: str
    recipe: str
    family: str = "mlp"
    export: bool = False


GMM_WEIGHTS = [0.4, 0.25, 0.15, 0.1, 0.06, 0.04]
GMM = {"weights": GMM_WEIGHTS, "radius": 2.0, "std": 0.1}
WGAN_STEPS, WGAN_CRITIC_STEPS, WGAN_BATCH, WGAN_PENALTY = 1500, 5, 256, 0.1
VAE_EPOCHS, VAE_BATCH, VAE_VARIANCE = 150, 64, 0.05
GENERATORS = [
    GeneratorSample(
        "gmm-wgan",
        {"input_shape": [2], "outputs": 2, "widths": [64, 64]},
        f"20,000 points of `gaussian-mixture` (6 components on a circle of radius 2, std 0.1, weights "
        f"{', '.join(map(str, GMM_WEIGHTS))})",
        f"WGAN-GP (Gulrajani et al. 2017): latent N(0, I_2); critic 2 → 128 → 128 → 1 ReLU; "
        f"{WGAN_STEPS:,} generator steps, {WGAN_CRITIC_STEPS} critic steps each, batch {WGAN_BATCH}, "
        f"gradient penalty weight {WGAN_PENALTY:g}, Adam (lr 0.001, betas 0.5, 0.9) for both",
    ),
    GeneratorSample(
        "digits-decoder",
        {"input_shape": [8], "outputs": 64, "widths": [64, 128]},
        "8x8 UCI digits (`data/digits.npz`, the 1347 training digits, pixels in [0, 1])",
        f"decoder of a VAE: encoder 64 → 128 → 2 × 8 ReLU (mean, log-variance), latent N(0, I_8), "
        f"Gaussian likelihood with variance {VAE_VARIANCE:g} (squared error / {2 * VAE_VARIANCE:g}) plus "
        f"the KL term; {VAE_EPOCHS} epochs, batch {VAE_BATCH}, Adam (lr 0.001)",
    ),
]


def train_gmm_wgan(sample: GeneratorSample) -> nn.Module:
    """WGAN-GP on an unequal-weight Gaussian mixture: the generator keeps thin filaments between modes."""
    x, _ = generate("gaussian-mixture", 20_000, seed=0, **GMM)
    data = torch.as_tensor(x, dtype=torch.float32)
    torch.manual_seed(0)
    generator = build(sample.family, sample.options)
    critic = nn.Sequential(nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 1))
    adam = {"lr": 1e-3, "betas": (0.5, 0.9)}
    g_optimiser = torch.optim.Adam(generator.parameters(), **adam)
    c_optimiser = torch.optim.Adam(critic.parameters(), **adam)
    draws = torch.Generator().manual_seed(0)
    for _ in range(WGAN_STEPS):
        for _ in range(WGAN_CRITIC_STEPS):
            real = data[torch.randint(len(data), (WGAN_BATCH,), generator=draws)]
            fake = generator(torch.randn(WGAN_BATCH, 2, generator=draws)).detach()
            t = torch.rand(WGAN_BATCH, 1, generator=draws)
            between = (t * real + (1 - t) * fake).requires_grad_(True)
            (slope,) = torch.autograd.grad(critic(between).sum(), between, create_graph=True)
            penalty = ((slope.norm(dim=1) - 1) ** 2).mean()
            loss = critic(fake).mean() - critic(real).mean() + WGAN_PENALTY * penalty
            c_optimiser.zero_grad()
            loss.backward()
            c_optimiser.step()
        loss = -critic(generator(torch.randn(WGAN_BATCH, 2, generator=draws))).mean()
        g_optimiser.zero_grad()
        loss.backward()
        g_optimiser.step()
    return generator.eval()


def train_digits_decoder(sample: GeneratorSample, digits: dict[str, np.ndarray]) -> nn.Module:
    """A small VAE on the training digits; only its decoder is kept."""
    x = torch.as_tensor(digits["x_train"], dtype=torch.float32)
    latent = sample.options["input_shape"][0]
    torch.manual_seed(0)
    decoder = build(sample.family, sample.options)
    encoder = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 2 * latent))
    optimiser = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    draws = torch.Generator().manual_seed(0)
    for _ in range(VAE_EPOCHS):
        for batch in torch.randperm(len(x), generator=draws).split(VAE_BATCH):
            mean, log_var = encoder(x[batch]).chunk(2, dim=1)
            z = mean + torch.exp(0.5 * log_var) * torch.randn(mean.shape, generator=draws)
            reconstruction = ((decoder(z) - x[batch]) ** 2).sum(dim=1) / (2 * VAE_VARIANCE)
            kl = 0.5 * (mean**2 + log_var.exp() - 1 - log_var).sum(dim=1)
            optimiser.zero_grad()
            (reconstruction + kl).mean().backward()
            optimiser.step()
    return decoder.eval()


def make_generators(digits: dict[str, np.ndarray]) -> list[str]:
    """Train and save the generators; their README rows."""
    trainers = {"gmm-wgan": train_gmm_wgan, "digits-decoder": lambda s: train_digits_decoder(s, digits)}
    rows = []
    for sample in GENERATORS:
        started = time.perf_counter()
        model = trainers[sample.name](sample)
        files = save(model, sample)
        params = sum(p.numel() for p in model.parameters())
        print(f"{sample.name}: {params} parameters, {time.perf_counter() - started:.0f} s")
        widths = " → ".join(map(str, [*sample.options["input_shape"], *sample.options["widths"]]))
        listing = ", ".join(f"`{f}`" for f in files)
        rows.append(
            f"| {sample.name} | {widths} → {sample.options['outputs']} (ReLU, linear output) | "
            f"{sample.data} | {params:,} | {sample.recipe} | {listing} |"
        )
    return rows


def generators_section(rows: list[str]) -> str:
    return f"""## Generators

For `splinetool debias-sample`: generators G: z → x whose latent is the model's input. Both are trained
single-threaded and seeded on the CPU (about a minute each); they are small, not good generative models.

| name | architecture | data | parameters | training | files |
|---|---|---|---|---|---|
{chr(10).join(rows)}

`gmm-wgan` puts about the mixture's weights into each mode but, being continuous, also leaves thin
filaments between the modes (a GAN's usual artefact): polarity sampling with ρ > 0 goes there, ρ < 0
into the modes. `digits-decoder` outputs 64 pixels (draw them with `--output-shape 1,8,8`).
"""


def replace_section(text: str, header: str, section: str, before: str = "## Regenerating") -> str:
    """`text` with its markdown section starting at `header` (up to the next `## `) replaced, or the
    section inserted ahead of `before` when there is none yet."""
    if header not in text:
        start = text.index(before)
        return text[:start] + section + "\n" + text[start:]
    start = text.index(header)
    end = text.find("\n## ", start + len(header))
    return text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "")


def moons_data() -> dict[str, np.ndarray]:
    x, y = generate("moons", 1500, seed=0, noise=0.1)
    return {"x": x, "y": y, "x_train": x[:1000], "y_train": y[:1000], "x_test": x[1000:], "y_test": y[1000:]}


def tensors(arrays: dict, split: str, input_shape: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(arrays[f"x_{split}"], dtype=torch.float32).reshape(-1, *input_shape)
    return x, torch.as_tensor(arrays[f"y_{split}"], dtype=torch.int64)


def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # A single output is a binary logit; more outputs are class logits.
    if logits.shape[1] == 1:
        return nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y.float())
    return nn.functional.cross_entropy(logits, y)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    logits = model(x)
    predicted = (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(dim=1)
    return (predicted == y).double().mean().item()


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sample: Sample) -> None:
    order = torch.Generator().manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=sample.lr)
    model.train()
    for _ in range(sample.epochs):
        for batch in torch.randperm(len(x), generator=order).split(sample.batch_size):
            optimiser.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimiser.step()
    model.eval()


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def save(model: nn.Module, sample: Sample | GeneratorSample) -> list[str]:
    meta = {"input_shape": sample.options["input_shape"], "family": sample.family, "options": sample.options}
    files = [f"{sample.name}.ts.pt", f"{sample.name}.state.pt"]
    scripted = torch.jit.script(model)
    torch.jit.save(scripted, HERE / files[0], _extra_files={"splinetool.json": json.dumps(meta)})
    torch.save(model.state_dict(), HERE / files[1])
    if sample.export:
        # Batch size 2 rather than 1 so that export can keep the batch dimension symbolic.
        example = torch.zeros(2, *sample.options["input_shape"])
        batch = {0: torch.export.Dim("batch")}
        program = torch.export.export(model, (example,), dynamic_shapes=(batch,))
        files.append(f"{sample.name}.pt2")
        torch.export.save(program, HERE / files[-1])
    lines = [f"# Architecture of sample_models/{sample.name}.*, written by sample_models/make_samples.py."]
    lines += [f'family = "{sample.family}"']
    lines += [f"{key} = {toml_value(value)}" for key, value in sample.options.items()]
    (ARCH / f"{sample.name}.toml").write_text("\n".join(lines) + "\n")
    return files + [f"configs/arch/{sample.name}.toml"]


def train_trajectory(digits: dict[str, np.ndarray], recipe: Trajectory = TRAJECTORY) -> None:
    """Adam on the training digits, one optimiser step per mini-batch, saving a checkpoint at each of
    `recipe.steps` (step 0 is the initialisation); the batches are the training set reshuffled every epoch.
    """
    folder = HERE / recipe.name
    folder.mkdir(exist_ok=True)
    for old in folder.glob("step-*.ts.pt"):
        old.unlink()
    shape = recipe.options["input_shape"]
    x_train, y_train = tensors(digits, "train", shape)
    x_test, y_test = tensors(digits, "test", shape)
    torch.manual_seed(0)
    model = build("mlp", recipe.options)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    order = torch.Generator().manual_seed(0)
    meta = json.dumps({"input_shape": shape, "family": "mlp", "options": recipe.options})
    rows, step, batches = [], 0, iter(())
    while True:
        if step in recipe.steps:
            saved = copy.deepcopy(model).eval()
            name = f"step-{step:06d}.ts.pt"
            torch.jit.save(torch.jit.script(saved), folder / name, _extra_files={"splinetool.json": meta})
            train_acc, test_acc = accuracy(saved, x_train, y_train), accuracy(saved, x_test, y_test)
            rows.append(f"| {step:,} | `{name}` | {train_acc:.1%} | {test_acc:.1%} |")
            print(f"{recipe.name} step {step}: train {train_acc:.2%}, test {test_acc:.2%}")
        if step == recipe.steps[-1]:
            break
        batch = next(batches, None)
        if batch is None:
            batches = iter(torch.randperm(len(x_train), generator=order).split(recipe.batch_size))
            batch = next(batches)
        model.train()
        optimiser.zero_grad()
        loss_fn(model(x_train[batch]), y_train[batch]).backward()
        optimiser.step()
        step += 1
    (folder / "README.md").write_text(trajectory_readme(recipe, rows))


def trajectory_readme(recipe: Trajectory, rows: list[str]) -> str:
    return f"""# {recipe.name}

{trajectory_recipe(recipe)}

| step | file | train accuracy | test accuracy |
|---|---|---|---|
{chr(10).join(rows)}

Each file is a TorchScript archive whose extra file `splinetool.json` records the input shape and
architecture. Written by `python sample_models/make_samples.py --trajectory`.
"""


def trajectory_recipe(recipe: Trajectory = TRAJECTORY, lead: str = "") -> str:
    """The exact recipe, as one paragraph wrapped for the READMEs (after `lead`, if any)."""
    widths = recipe.options["widths"]
    saved = ", ".join(f"{s:,}" for s in recipe.steps)
    return textwrap.fill(
        lead
        + f"""A digits MLP (ReLU, hidden widths {widths}, 10 class logits) saved at {len(recipe.steps)} \
log-spaced training steps, from its initialisation through interpolation to long training, for the LC \
curve of `splinetool local-complexity`. Recipe: PyTorch's default \
initialisation after `torch.manual_seed(0)`; Adam, learning rate {recipe.lr:g}, no weight decay; \
cross-entropy on mini-batches of {recipe.batch_size} of the 1,347 training digits, reshuffled every epoch \
(`torch.randperm` with a generator seeded 0); one step per mini-batch; CPU, one thread, \
deterministic algorithms. Saved steps: {saved}.""",
        width=104,
    )


def readme(rows: list[str], generator_rows: list[str]) -> str:
    training = "\n".join(
        f"- {s.name}: {s.epochs} epochs, batch size {s.batch_size}, learning rate {s.lr:g}" for s in SAMPLES
    )
    return f"""# Sample models

Small trained networks for trying splinetool and for its tests. All are plain ReLU networks built from
the built-in families in `splinetool/frontends/families.py`.

| name | architecture | data | parameters | train accuracy | test accuracy | files |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Training: Adam from PyTorch's default initialisation (seed 0), cross-entropy on the class logits
(binary cross-entropy on the single moons logit), models saved in eval mode.

{training}

Each model comes as:

- `NAME.ts.pt`: TorchScript archive; its extra file `splinetool.json` records `input_shape`, `family`
  and `options`.
- `NAME.state.pt`: state dict (`torch.load(..., weights_only=True)`), to be paired with the
  architecture file `configs/arch/NAME.toml`.
- `NAME.pt2` (MLPs only): `torch.export` program with a dynamic batch dimension.

Digit images are stored flattened, `[N, 64]`; the ConvNet and ResNet take them as `[N, 1, 8, 8]`.

## Training trajectory

{trajectory_recipe(lead=f"`{TRAJECTORY.name}/step-NNNNNN.ts.pt`: ")}
Accuracies at each step are in `{TRAJECTORY.name}/README.md`.

{generators_section(generator_rows)}
## Regenerating

`make sample-models` retrains every model and rewrites these files, the configs and this README (and
`python sample_models/make_samples.py --trajectory` remakes only the training trajectory, `--generators`
only the generators). It is
seeded and single-threaded, so the weights and accuracies come out the same on a rerun (TorchScript
archives still differ byte for byte, because each gets a fresh serialization id).
`data/digits.npz` is made once by `sample_models/make_digits_data.py`, the only code here that needs
scikit-learn; `data/moons.npz` is written by `make sample-models`.

## Data licence

`data/digits.npz` is derived from the UCI ML hand-written digits data set (E. Alpaydin and C. Kaynak,
1998), licensed CC BY 4.0; see `data/LICENSE-digits.txt`. The moons data is generated by splinetool.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectory", action="store_true", help="make only the training trajectory")
    parser.add_argument("--generators", action="store_true", help="make only the debias-sample generators")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()
    with np.load(DATA / "digits.npz") as f:
        digits = dict(f)
    if args.trajectory:
        train_trajectory(digits)
        print(f"done in {time.perf_counter() - started:.0f} s")
        return
    if args.generators:
        text = (HERE / "README.md").read_text()
        section = generators_section(make_generators(digits))
        (HERE / "README.md").write_text(replace_section(text, "## Generators", section))
        print(f"done in {time.perf_counter() - started:.0f} s")
        return
    moons = moons_data()
    np.savez(DATA / "moons.npz", **moons)
    ARCH.mkdir(parents=True, exist_ok=True)

    rows = []
    for sample in SAMPLES:
        arrays = moons if sample.name.startswith("moons") else digits
        shape = sample.options["input_shape"]
        torch.manual_seed(0)
        model = build(sample.family, sample.options)
        x_train, y_train = tensors(arrays, "train", shape)
        train(model, x_train, y_train, sample)
        train_acc = accuracy(model, x_train, y_train)
        test_acc = accuracy(model, *tensors(arrays, "test", shape))
        params = sum(p.numel() for p in model.parameters())
        files = save(model, sample)
        print(f"{sample.name}: {params} parameters, train {train_acc:.2%}, test {test_acc:.2%}")
        shape_free = {k: v for k, v in sample.options.items() if k not in ("input_shape", "outputs")}
        architecture = sample.family + "".join(f", {k} = {toml_value(v)}" for k, v in shape_free.items())
        listing = ", ".join(f"`{f}`" for f in files)
        rows.append(
            f"| {sample.name} | {architecture} | {sample.data} | {params:,} | {train_acc:.1%} | "
            f"{test_acc:.1%} | {listing} |"
        )
    generator_rows = make_generators(digits)
    (HERE / "README.md").write_text(readme(rows, generator_rows))
    train_trajectory(digits)
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
