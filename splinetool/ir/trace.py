"""Turn any supported model object into one ATen-level torch.fx graph.

nn.Modules go through torch.export (which keeps module paths for naming), ExportedPrograms are
read as saved, and TorchScript modules, which torch.fx cannot trace, are recorded op by op as
they run on an example batch (make_fx sees every ATen call the TorchScript interpreter makes).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.fx
from torch.func import functionalize
from torch.fx.experimental.proxy_tensor import make_fx

from splinetool.errors import UnsupportedModelError, UsageError, is_out_of_memory
from splinetool.ir.registry import OpFamily, piecewise_family, supported_ops
from splinetool.quiet import torch_notices_hidden

EXAMPLE_BATCH = 2

# Ops that only compute on sizes, Python scalars or constant tensors (weight.t() and the like): the
# lowering folds them, and none touches a file, the network's inputs or the outside world.
PURE_HELPERS = frozenset(
    {
        "__getitem__",
        "__is__",
        "__isnot__",
        "__not__",
        "__and__",
        "__or__",
        "__contains__",
        "eq",
        "ne",
        "lt",
        "gt",
        "le",
        "ge",
        "len",
        "size",
        "sym_size",
        "sym_numel",
        "sym_stride",
        "dim",
        "numel",
        "format",
        "Int",
        "Float",
        "Bool",
        "floordiv",
        "remainder",
        "floor",
        "ceil",
        "warn",
        "list",
        "append",
        "ScalarImplicit",
        "getitem",
        "t",
        "expand",
        "_to_copy",
        "to",
        "type_as",
    }
)
# TorchScript's own plumbing: constants, attribute reads, control flow and containers
SCRIPT_PRIMS = frozenset(
    {
        "Constant",
        "GetAttr",
        "If",
        "Loop",
        "ListConstruct",
        "ListUnpack",
        "TupleConstruct",
        "TupleUnpack",
        "TupleIndex",
        "DictConstruct",
        "RaiseException",
        "Uninitialized",
        "unchecked_cast",
        "NumToTensor",
        "dtype",
        "device",
        "shape",
        "layout",
        "requires_grad",
        "is_cuda",
        "min",
        "max",
        "isinstance",
    }
)


# Ops that torch rewrites in Python as they pass through autograd while a graph is traced again
# (softshrink into abs, gt, sign and where, none of which lowers); the lowering takes them whole.
KEPT_WHOLE = (torch.ops.aten.softshrink.default,)


@contextmanager
def _kept_whole() -> Iterator[None]:
    """Hide the Python autograd rewrites of KEPT_WHOLE for the duration (the way torch.export
    overrides decompositions itself), so that the traced graph keeps those ops."""
    hidden = {op: op.py_kernels.pop(torch._C.DispatchKey.Autograd, None) for op in KEPT_WHOLE}
    for op in hidden:
        op._dispatch_cache.clear()
    try:
        yield
    finally:
        for op, kernel in hidden.items():
            if kernel is not None:
                op.py_kernels[torch._C.DispatchKey.Autograd] = kernel
            op._dispatch_cache.clear()


@dataclass
class TracedGraph:
    graph: torch.fx.Graph
    input_node: torch.fx.Node
    constants: dict[str, object]  # node name -> tensor (parameters, buffers, lifted constants)
    example: torch.Tensor  # an input batch whose size matches any batch size baked into the graph
    names: dict[str, str] = field(default_factory=dict)  # node name -> qualified name


@torch_notices_hidden()
def trace(model: object, input_shape: tuple[int, ...] | None, source: str = "the model") -> TracedGraph:
    """The ATen graph of a model; `source` names it in messages (e.g. "checkpoint PATH")."""
    if isinstance(model, torch.export.ExportedProgram):
        _refuse_unknown_ops(
            (_fx_op(node.target), node.name) for node in model.graph.nodes if node.op == "call_function"
        )
        return _from_exported(model, source)
    if isinstance(model, torch.jit.ScriptModule):
        return _from_script(model, _require_shape(input_shape))
    if isinstance(model, torch.nn.Module):
        return _from_module(model, _require_shape(input_shape))
    raise UsageError(f"cannot analyse an object of type {type(model).__name__}; expected a torch.nn.Module")


def _require_shape(input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    if input_shape is None:
        raise UsageError(
            "the model's input shape is unknown: pass `input_shape` (per-sample, e.g. 1,8,8 or 64)"
        )
    return tuple(int(s) for s in input_shape)


def _example(input_shape: tuple[int, ...], dtype: torch.dtype, batch: int = EXAMPLE_BATCH) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn((batch, *input_shape), generator=generator, dtype=torch.float64).to(dtype)


def _param_dtype(model: torch.nn.Module) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _from_module(model: torch.nn.Module, input_shape: tuple[int, ...]) -> TracedGraph:
    was_training = model.training
    model.eval()
    try:
        example = _example(input_shape, _param_dtype(model))
        _check_accepts(model, example)
        try:
            program = torch.export.export(model, (example,), strict=False)
        except Exception:  # noqa: BLE001 - export refuses some Python; recording the ops still works
            return _from_recorded(model, example)
        return _from_exported(program)
    finally:
        model.train(was_training)


def _check_accepts(model: torch.nn.Module, example: torch.Tensor) -> None:
    try:
        with torch.no_grad():
            model(example)
    except Exception as err:  # noqa: BLE001 - whatever the model raises, the input shape is the cause to name
        shape = ",".join(map(str, example.shape[1:]))
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(
            f"the model does not accept inputs of per-sample shape {shape} ({first_line}); "
            "check `input_shape` or the architecture's input_shape"
        ) from None


def _from_exported(program: torch.export.ExportedProgram, source: str = "the model") -> TracedGraph:
    # an empty decomposition table only functionalises: in-place ops such as relu_ become pure
    try:
        with _kept_whole():
            program = program.run_decompositions({})
    except Exception as err:  # noqa: BLE001 - torch.export's own checks fail with many types
        # e.g. an integer constant (not a buffer) that forward updates in place
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UsageError(
            f"{source}: torch.export cannot make its graph free of in-place updates ({type(err).__name__}: "
            f"{reason}); export the model again in eval mode, with any state that forward updates "
            "registered as a buffer"
        ) from None
    signature = program.graph_signature
    sources = {
        **signature.inputs_to_parameters,
        **signature.inputs_to_buffers,
        **signature.inputs_to_lifted_tensor_constants,
    }
    state = {**program.state_dict, **program.constants}
    constants = {node: state[key] for node, key in sources.items()}
    user_inputs = [
        n for n in program.graph.nodes if n.op == "placeholder" and n.name in signature.user_inputs
    ]
    if len(user_inputs) != 1:
        raise UsageError(
            f"the exported program takes {len(user_inputs)} inputs; splinetool needs exactly one"
        )
    value = user_inputs[0].meta.get("val")
    if value is None or not hasattr(value, "shape"):
        raise UsageError("the exported program does not record its input shape")
    shape = tuple(int(s) for s in value.shape)
    example = _example(shape[1:], value.dtype, batch=shape[0])
    _check_runs(program, example, source)
    names = {}
    for node in program.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if stack:
            path, module_type = list(stack.values())[-1]
            names[node.name] = _node_name(path, _is_leaf(module_type), _short_op_name(node.target))
    return TracedGraph(program.graph, user_inputs[0], constants, example, names)


def _node_name(path: str, leaf: bool, op: str) -> str:
    """The name every frontend gives an op run by the module at `path`: the path itself for a torch.nn
    module (`stem.1` for a ReLU), else the path and the op (`blocks.0.relu`, or `relu` at the top);
    the lowering numbers repeats (`relu`, `relu_1`). Built from what TorchScript records too, so that
    one model has the same node names whichever way it was saved."""
    return path if leaf and path else ".".join(p for p in (path, op) if p)


def _check_runs(program: torch.export.ExportedProgram, example: torch.Tensor, source: str) -> None:
    """Run the program once on an input of its own shape: export records some graphs that cannot run
    (an integer constant multiplying a float matrix), and lowering would fail inside torch on them."""
    try:
        with torch.no_grad():
            program.module()(example)
    except Exception as err:  # noqa: BLE001 - whatever it raises, the program itself is at fault
        if is_out_of_memory(err):
            raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        shape = ",".join(map(str, example.shape))
        raise UsageError(
            f"{source}: the exported program fails on an input of its own shape [{shape}] "
            f"({type(err).__name__}: {reason}); export it again from a model that runs"
        ) from None


def _is_leaf(module_type: object) -> bool:
    text = module_type if isinstance(module_type, str) else getattr(module_type, "__module__", "")
    return str(text).startswith("torch.nn.modules")


def _from_script(model: torch.jit.ScriptModule, input_shape: tuple[int, ...]) -> TracedGraph:
    _refuse_unknown_ops((node.kind(), _script_source(node)) for node in _script_nodes(model.inlined_graph))
    was_training = model.training
    model.eval()
    try:
        example = _example(input_shape, _param_dtype(model))
        _check_accepts(model, example)
        traced = _from_recorded(model, example)
    finally:
        model.train(was_training)
    traced.names.update(_script_pl_names(model, traced.graph))
    return traced


def _script_pl_names(model: torch.jit.ScriptModule, recorded: torch.fx.Graph) -> dict[str, str]:
    """Names of the recorded PL ops, from the module hierarchy TorchScript keeps for every op.

    The scripted graph and the recorded one run the same PL ops in the same order, one for one
    (relu6 is recorded as hardtanh, prelu as _prelu_kernel: the same family), so the k-th of each
    pair up. Where they do not (a PL op under control flow, which runs only sometimes, or families
    that differ), the names taken from parameter owners stay.
    """
    graph = model.inlined_graph  # held: its nodes are invalid once it is freed
    scripted = []
    for node in _executed(graph):
        if any(_piecewise(inner.kind()) for block in node.blocks() for inner in _script_nodes(block)):
            return {}
        if _piecewise(node.kind()) is not None:
            scripted.append(node)
    ops = [node for node in recorded.nodes if node.op == "call_function" and _piecewise(_fx_op(node.target))]
    if [_piecewise(n.kind()) for n in scripted] != [_piecewise(_fx_op(n.target)) for n in ops]:
        return {}
    names = {}
    for script_node, node in zip(scripted, ops):
        found = _module_of(model, script_node.getModuleHierarchy())
        if found is not None:
            names[node.name] = _node_name(*found, _short_name(script_node.kind()))
    return names


def _executed(block) -> Iterator[torch._C.Node]:
    """A scripted graph's nodes in the order they run, into the branch an If with a constant condition
    takes (F.relu(x) is scripted as `if inplace: relu_(x) else: relu(x)`); other control flow as is."""
    for node in block.nodes():
        condition = node.inputsAt(0).toIValue() if node.kind() == "prim::If" else None
        if isinstance(condition, bool):
            yield from _executed(list(node.blocks())[0 if condition else 1])
        else:
            yield node


def _piecewise(op: str) -> OpFamily | None:
    """The PL op family of a qualified op name (aten::relu_, aten::_prelu_kernel), else None."""
    namespace, _, name = op.rpartition("::")
    return piecewise_family(name) if namespace == "aten" else None


# one frame of TorchScript's module hierarchy, "instance(Type)": "stem(Sequential).1(ReLU)"
HIERARCHY_FRAME = re.compile(r"(\w*)\((\w*)\)")
# frames that are no submodule: a scripted function, a method of the module itself
NOT_A_SUBMODULE = frozenset({"", "UNKNOWN_INSTANCE", "SELF"})
CONTAINERS = frozenset({"ModuleList", "ModuleDict"})


def _module_of(model: torch.jit.ScriptModule, hierarchy: str) -> tuple[str, bool] | None:
    """(module path, whether it is a torch.nn module) of the module that runs an op, or None where
    the hierarchy's instance names do not lead to exactly one submodule."""
    module, path = model, []
    for instance, type_name in HIERARCHY_FRAME.findall(hierarchy):
        if instance in NOT_A_SUBMODULE:
            continue
        found = _submodule(module, instance, type_name)
        if found is None:
            return None
        names, module = found
        path += names
    return ".".join(path), _script_type(module).startswith("torch.nn.modules.")


def _submodule(
    module: torch.nn.Module, instance: str, type_name: str
) -> tuple[list[str], torch.nn.Module] | None:
    """The child called `instance`; a ModuleList or ModuleDict has no forward of its own, so calls
    skip it in the hierarchy (`0(Residual)` is `blocks.0`): it is searched through too."""
    children = dict(module.named_children())
    if instance in children:
        return [instance], children[instance]
    found = []
    for name, child in children.items():
        if getattr(child, "original_name", None) in CONTAINERS:
            inner = _submodule(child, instance, type_name)
            if inner is not None and getattr(inner[1], "original_name", None) == type_name:
                found.append(([name, *inner[0]], inner[1]))
    return found[0] if len(found) == 1 else None


def _script_type(module: torch.jit.ScriptModule) -> str:
    """The Python class a scripted module came from, e.g. torch.nn.modules.activation.ReLU."""
    return module._c._type().qualified_name().removeprefix("__torch__.")


def _refuse_unknown_ops(ops: Iterator[tuple[str, str]]) -> None:
    """Refuse, before anything runs, a graph read from a file that calls an op the lowering does not know.

    Recording a TorchScript module means running it, and the lowering folds ops on constants by
    calling them; a graph can name any ATen op (from_file reads and writes files, for one). Checking
    the (qualified op, where) pairs first means no such op ever runs.
    """
    supported = set(supported_ops())
    refused: dict[str, str] = {}
    for op, where in ops:
        namespace, _, name = op.rpartition("::")
        if namespace == "prim":
            known = name in SCRIPT_PRIMS
        else:
            known = namespace in ("aten", "") and (
                name in supported or name.removesuffix("_") in supported or name in PURE_HELPERS
            )
        if not known:
            refused.setdefault(op, where)
    if refused:
        raise UnsupportedModelError(
            [(where, op, "refused before running the model") for op, where in refused.items()], supported
        )


def _fx_op(target: object) -> str:
    schema = getattr(target, "_schema", None)
    return schema.name if schema is not None else getattr(target, "__name__", str(target))


def _script_nodes(block) -> Iterator[torch._C.Node]:
    for node in block.nodes():
        yield node
        for inner in node.blocks():
            yield from _script_nodes(inner)


def _script_source(node: torch._C.Node) -> str:
    """Where in the scripted code a node comes from (first line of its source range), or "forward"."""
    text = node.sourceRange().strip().splitlines()
    return text[0].strip() if text else "forward"


def _short_op_name(target: object) -> str:
    schema = getattr(target, "_schema", None)
    return _short_name(schema.name if schema is not None else getattr(target, "__name__", "op"))


def _short_name(qualified: str) -> str:
    """aten::max_pool2d_with_indices -> max_pool2d, aten::relu_ -> relu."""
    return qualified.split("::")[-1].removesuffix("_with_indices").strip("_")


def _from_recorded(model: torch.nn.Module, example: torch.Tensor) -> TracedGraph:
    try:
        with torch.no_grad():
            # functionalize turns in-place ops (relu_, out += identity) into pure ones, so no step
            # ever overwrites a value that a pre-activation or a residual still refers to; a few
            # in-place ops (relu6_) refuse it, and are then recorded as they are and made pure
            # when lowered
            try:
                module = make_fx(functionalize(model))(example)
            except RuntimeError:
                module = make_fx(model)(example)
    except Exception as err:  # noqa: BLE001 - anything that cannot be recorded op by op
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnsupportedModelError(
            [("model", "forward", f"cannot be recorded as a fixed sequence of operations ({reason})")],
            supported_ops(),
        ) from None
    owners = {}
    for qualified, tensor in [*model.named_parameters(), *model.named_buffers()]:
        owners[(tensor.data_ptr(), tuple(tensor.shape))] = qualified.rpartition(".")[0]
    constants, names, modules = {}, {}, {}
    constant_nodes = set()
    for node in module.graph.nodes:
        if node.op == "get_attr":
            tensor = getattr(module, node.target)
            constants[node.name] = tensor
            constant_nodes.add(node)
            owner = owners.get((tensor.data_ptr(), tuple(tensor.shape)))
            if owner is not None:
                names[node.name] = owner
        elif node.op == "call_function":
            sources = node.all_input_nodes
            owner = next((names[a.name] for a in sources if a in constant_nodes and a.name in names), None)
            if owner is not None:
                names[node.name] = owner
                modules[node.name] = owner
            elif sources and all(a in constant_nodes for a in sources):
                constant_nodes.add(node)
            else:
                # a recorded graph has lost module paths: name a parameter-free op (relu, add, pool)
                # after the module whose output it follows, e.g. "hidden.0.linear.relu"
                after = next((modules[a.name] for a in sources if a.name in modules), None)
                if after is not None:
                    modules[node.name] = after
                    if node.target is not operator.getitem:
                        names[node.name] = f"{after}.{_short_op_name(node.target)}"
    input_node = next(n for n in module.graph.nodes if n.op == "placeholder")
    return TracedGraph(module.graph, input_node, constants, example, names)
