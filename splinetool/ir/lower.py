"""Lower a traced ATen graph to a PLNet, one registered handler per op family."""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx

from splinetool.errors import UnsupportedModelError, UsageError, is_out_of_memory
from splinetool.ir.context import Dyn, LoweringContext, NotLowerable, is_dyn
from splinetool.ir.plnet import PLNet
from splinetool.ir.registry import HANDLERS, supported_ops
from splinetool.ir.step import needed_steps
from splinetool.ir.trace import TracedGraph, trace


class _Blocked:
    """The value of a node that could not be lowered (so its users are skipped, not reported twice)."""


def lower(model: Any, input_shape: tuple[int, ...] | None = None) -> PLNet:
    """Lower an nn.Module, TorchScript module or ExportedProgram to a PLNet.

    Raises UnsupportedModelError listing every operation that is not piecewise-linear, and UsageError
    for weights holding NaN or inf.
    """
    source = "the model"
    if hasattr(model, "module") and hasattr(model, "input_shape"):  # a frontends.LoadedModel
        source = f"checkpoint {model.path}"
        model, input_shape = model.module, input_shape or model.input_shape
    _refuse_non_finite(model, source)
    traced = model if isinstance(model, TracedGraph) else trace(model, input_shape, source)
    supported = supported_ops()
    ctx = LoweringContext(traced.example)
    values: dict[str, Any] = {traced.input_node.name: ctx.input}
    unsupported: list[tuple[str, str, str]] = []
    taken: set[str] = set()
    output_node = next(n for n in traced.graph.nodes if n.op == "output")
    for node in _needed_nodes(traced.graph, output_node):
        if node.op == "placeholder":
            if node.name not in values:
                values[node.name] = traced.constants.get(node.name)
            continue
        if node.op == "get_attr":
            values[node.name] = traced.constants[node.name]
            continue
        if node.op != "call_function":
            unsupported.append((node.name, str(node.target), f"{node.op} nodes are not supported"))
            values[node.name] = _Blocked()
            continue
        args = _resolve(node.args, values)
        kwargs = {k: _resolve(v, values) for k, v in node.kwargs.items()}
        if _contains_blocked((args, kwargs)):
            values[node.name] = _Blocked()
            continue
        op = _op_name(node.target)
        fn = node.target
        if op.endswith("_") and op[:-1] in HANDLERS:
            op, fn = op[:-1], _out_of_place(node.target)
        if not is_dyn((args, tuple(kwargs.values()))):
            values[node.name] = node.target(*args, **kwargs)  # constant folding: weight.t() and the like
            continue
        if op in ("sym_size", "size") and isinstance(args[0], Dyn):
            values[node.name] = args[0].example.shape[args[1]]  # only reshapes use it; they are rebuilt
            continue
        if node.target is operator.getitem:
            values[node.name] = _getitem(node, args, unsupported)
            continue
        ctx.name = unique_name(traced.names.get(node.name, node.name), taken)
        ctx.op = op
        handler = HANDLERS.get(op)
        try:
            if handler is None:
                raise NotLowerable("")
            values[node.name] = handler(ctx, fn, args, kwargs)
        except NotLowerable as err:
            unsupported.append((ctx.name, op, str(err)))
            values[node.name] = _stand_in(ctx, fn, args, kwargs)
    result = _single_output(output_node.args[0], values, unsupported)
    unsupported += [
        (s.name, s.op, "accepted only at the output") for s in _inner_transforms(ctx.steps, result.index)
    ]
    if unsupported:
        raise UnsupportedModelError(unsupported, supported)
    net = PLNet.from_steps(ctx.steps, result.index, tuple(traced.example.shape[1:]))
    _check_batch_independent(net, traced.example)
    return net


def _refuse_non_finite(model: Any, source: str) -> None:
    """Refuse NaN or inf weights first: a network computing NaN has no tiles to measure, and the checks
    after lowering would otherwise blame something else (the batch size, the reference output)."""
    for kind, name, tensor in _named_tensors(model):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UsageError(
                f"{source}: {kind} {name!r} holds NaN or inf values; the geometry of such a network is "
                "undefined"
            )


def _named_tensors(model: Any) -> list[tuple[str, str, torch.Tensor]]:
    """(kind, qualified name, tensor) for the parameters, buffers and constants of any model object."""
    if isinstance(model, torch.export.ExportedProgram):
        signature = model.graph_signature
        kinds = {name: "parameter" for name in signature.parameters}
        kinds |= {name: "buffer" for name in signature.buffers}
        state = {**model.state_dict, **model.constants}  # constants may hold script objects too
        return [(kinds.get(n, "constant"), n, t) for n, t in state.items() if isinstance(t, torch.Tensor)]
    if isinstance(model, TracedGraph):
        return [("constant", n, t) for n, t in model.constants.items() if isinstance(t, torch.Tensor)]
    if isinstance(model, torch.nn.Module):  # ScriptModules too
        return [("parameter", n, t) for n, t in model.named_parameters()] + [
            ("buffer", n, t) for n, t in model.named_buffers()
        ]
    return []


def _check_batch_independent(net: PLNet, example: torch.Tensor) -> None:
    """Tensors built from the batch size (expand(x.size(0), ...)) were frozen at the example's size."""
    x = torch.cat([example, example[:1]])  # a batch size the graph was not recorded with
    try:
        together = net.to(dtype=torch.float64)(x.double())
        alone = net.to(dtype=torch.float64)(x[:1].double())
        ok = together.shape[0] == x.shape[0] and torch.allclose(together[:1], alone, rtol=1e-9, atol=1e-9)
    except RuntimeError as err:
        if is_out_of_memory(err):
            raise
        ok = False
    if not ok:
        raise UnsupportedModelError(
            [("model", "batch size", "builds tensors from the batch size (e.g. expand(x.size(0), ...))")],
            supported_ops(),
        )


def _inner_transforms(steps: list, output_index: int) -> list:
    """Softmax, log-softmax or sigmoid anywhere but at the end of the network."""
    while output_index > 0 and steps[output_index - 1].output_only:
        output_index = steps[output_index - 1].inputs[0]
    return [steps[i] for i in needed_steps(steps, output_index) if steps[i].output_only]


def _stand_in(ctx: LoweringContext, fn: Any, args: tuple, kwargs: dict) -> Any:
    """Keep lowering past an unsupported op so that every other unsupported op is found too."""
    for pick in (None, 0):  # ops returning (values, indices) stand in with their first result
        try:
            return ctx.add(fn, args, kwargs, pick=pick)
        except Exception:  # noqa: BLE001 - the op is already reported; its users are skipped
            continue
    return _Blocked()


def _needed_nodes(graph: torch.fx.Graph, output: torch.fx.Node) -> list[torch.fx.Node]:
    """Nodes the output depends on, in graph order (dead code such as detach() is dropped)."""
    needed = {output}
    for node in reversed(list(graph.nodes)):
        if node in needed:
            needed.update(node.all_input_nodes)
    return [n for n in graph.nodes if n in needed and n is not output]


def _out_of_place(target: Any) -> Any:
    """relu_ -> relu: recorded graphs refer to an in-place op's result, so the pure op computes the same."""
    packet = getattr(torch.ops.aten, _op_name(target)[:-1])
    return getattr(packet, target._overloadname, packet.default)


def _op_name(target: Any) -> str:
    schema = getattr(target, "_schema", None)
    if schema is not None:
        return schema.name.split("::")[-1]
    return getattr(target, "__name__", str(target))


def _resolve(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, torch.fx.Node):
        return values[value.name]
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(v, values) for v in value)
    return value


def _contains_blocked(value: Any) -> bool:
    if isinstance(value, _Blocked):
        return True
    if isinstance(value, (list, tuple)):
        return any(_contains_blocked(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_blocked(v) for v in value.values())
    return False


def _getitem(node: torch.fx.Node, args: tuple, unsupported: list) -> Any:
    source, index = args
    if isinstance(source, Dyn) and source.tuple_result and index == 0:
        return source
    unsupported.append((node.name, "getitem", "uses a secondary result (indices or statistics) of an op"))
    return _Blocked()


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name_1`, `name_2`, ... the first not in `taken` (which then holds it)."""
    candidate, k = name, 1
    while candidate in taken:
        candidate, k = f"{name}_{k}", k + 1
    taken.add(candidate)
    return candidate


def _single_output(value: Any, values: dict[str, Any], unsupported: list) -> Dyn:
    resolved = _resolve(value, values)
    while isinstance(resolved, (list, tuple)) and len(resolved) == 1:
        resolved = resolved[0]
    if not isinstance(resolved, Dyn):
        if not isinstance(resolved, _Blocked):
            unsupported.append(
                ("output", "output", "the model must return one tensor that depends on its input")
            )
        raise UnsupportedModelError(unsupported, supported_ops())
    return resolved
