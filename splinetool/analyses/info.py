"""What a checkpoint lowers to, and whether the lowering reproduces the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from splinetool.engine.store import check_memory
from splinetool.errors import UsageError
from splinetool.frontends.loading import LoadedModel
from splinetool.ir import PLNet, lower

# float64 reproduces the model up to rounding in the last bits; float32 to a few ulps of the logits
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}


@dataclass
class NodeSummary:
    position: int  # from 1, in the order the network computes them: a gate file's `node 3`
    name: str
    kind: str
    neurons: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    code_bits: int


@dataclass
class InfoResult:
    checkpoint: str
    format: str
    sha256: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    output_transforms: list[str]
    parameters: int
    steps: int
    nodes: list[NodeSummary]
    check_inputs: int
    check_dtype: str
    max_abs_diff: float
    tolerance: float
    passed: bool
    unsupported: list[str] = field(default_factory=list)
    # checkpoint tensor -> architecture parameter, where a state dict was loaded under other names
    renamed: dict[str, str] = field(default_factory=dict)

    @property
    def neurons(self) -> int:
        return sum(n.neurons for n in self.nodes)

    def summary(self) -> dict:
        return {**asdict(self), "neurons": self.neurons}


@dataclass(frozen=True)
class InfoOptions:
    """Where the lowering is checked, and on how many random inputs; the defaults are the command's."""

    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float64
    seed: int = 0  # of the random inputs
    samples: int = 8  # random inputs the PLNet and the model are compared on

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise UsageError(f"`samples` {self.samples}: expected a positive number of inputs")


def run(loaded: LoadedModel, options: InfoOptions = InfoOptions()) -> InfoResult:
    """Lower `loaded` and compare the PLNet's outputs with the model's on random inputs."""
    dtype, samples = options.dtype, options.samples
    net: PLNet = lower(loaded).to(device=options.device, dtype=dtype)
    # the inputs and every PL node's values, in ours and in the original model
    per_sample = (net.input_dim + sum(n.neurons for n in net.pl_nodes)) * torch.finfo(dtype).bits // 8
    check_memory(4 * samples * per_sample, f"`samples` {samples:,} checks", "check fewer `samples`")
    generator = torch.Generator().manual_seed(options.seed)
    x = torch.randn((samples, *net.input_shape), generator=generator, dtype=dtype)
    with torch.no_grad():
        ours = net.apply_output_transforms(net(x.to(options.device))).cpu()
        theirs = loaded.reference(x)
    scale = max(1.0, float(theirs.abs().max()))
    diff = float((ours - theirs.reshape(ours.shape).to(dtype)).abs().max()) if ours.numel() else 0.0
    # the check is as precise as the coarser of the two computations
    checked = torch.float32 if torch.float32 in (dtype, theirs.dtype) else dtype
    return InfoResult(
        checkpoint=str(loaded.path),
        format=loaded.format,
        sha256=loaded.sha256,
        input_shape=net.input_shape,
        output_shape=net.output_shape,
        output_transforms=[s.op for s in net.output_transforms],
        parameters=loaded.parameter_count(),
        steps=len(net.steps),
        nodes=[
            NodeSummary(k, n.name, n.kind, n.neurons, n.in_shape, n.out_shape, n.code_bits)
            for k, n in enumerate(net.pl_nodes, start=1)
        ],
        check_inputs=samples,
        check_dtype=str(checked).removeprefix("torch."),
        max_abs_diff=diff,
        tolerance=TOLERANCE[checked] * scale,
        passed=diff <= TOLERANCE[checked] * scale,
        renamed=dict(loaded.renamed),
    )
