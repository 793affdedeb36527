"""Open a checkpoint file as a model, whatever its format.

Formats are told apart by content, not by extension: TorchScript and torch.export archives are
zip files with their own layouts; a safetensors file starts with its JSON header's length; anything
else goes through torch.load(weights_only=True), which cannot run code. A file that needs full
unpickling is refused unless trusted, because unpickling runs whatever code the file names.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import pickletools
import re
import struct
import tomllib
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from splinetool.errors import CheckpointError, UnsafeCheckpointError, UsageError
from splinetool.frontends.factories import call_factory, importable_from_cwd, imports_code
from splinetool.frontends.families import VECTOR_INPUT_FAMILIES, build, load_arch_toml
from splinetool.frontends.matching import NoFit, first_items, fit_state, input_width
from splinetool.quiet import torch_notices_hidden

EXTRA_FILE = "splinetool.json"  # metadata stored inside TorchScript archives (input shape, family)
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")
# torch.export archive layout: where compiled code lives, and constants stored as pickled objects
AOTINDUCTOR_DIR = "data/aotinductor/"
PICKLED_CONSTANT_PREFIXES = ("custom_obj_", "opaque_obj_")


@dataclass
class LoadedModel:
    module: Any  # nn.Module, ScriptModule or torch.export.ExportedProgram
    input_shape: tuple[int, ...] | None
    format: str  # torchscript | export | state_dict | safetensors | pickle
    path: Path
    sha256: str
    arch: str | None = None
    recorded: dict = field(default_factory=dict)  # a TorchScript archive's splinetool.json
    # checkpoint tensor name -> architecture parameter name, for every tensor loaded under another name
    renamed: dict[str, str] = field(default_factory=dict)

    def parameter_count(self) -> int:
        if self.format == "export":
            names = self.module.graph_signature.parameters
            return sum(self.module.state_dict[n].numel() for n in names)
        return sum(p.numel() for p in self.module.parameters())

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The original model's output on x (for checking the lowering), computed in x's dtype, or
        in the model's own where it holds tensors that .to() cannot convert (plain tensor attributes
        of a scripted module): the result's dtype says which."""
        if self.format == "export":
            return self._exported_reference(x)
        with torch.no_grad():
            try:
                return copy.deepcopy(self.module).to(dtype=x.dtype).eval()(x)
            except RuntimeError:
                module = copy.deepcopy(self.module).eval()
                own = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
                return module(x.to(own))

    def _exported_reference(self, x: torch.Tensor) -> torch.Tensor:
        # an exported graph is specialised to the batch size it was exported with
        with torch_notices_hidden():
            module = copy.deepcopy(self.module.module()).to(dtype=x.dtype)
        batch = _exported_batch(self.module)
        outputs = []
        with torch.no_grad():
            for chunk in x.split(batch):
                padded = torch.cat([chunk, chunk.new_zeros((batch - len(chunk), *chunk.shape[1:]))])
                outputs.append(module(padded)[: len(chunk)])
        return torch.cat(outputs)


def load_model(
    path: str | Path,
    arch: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    trust: bool = False,
) -> LoadedModel:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: not a file (expected a checkpoint file, got a directory?)")
    digest = _sha256(path)
    shape = tuple(int(s) for s in input_shape) if input_shape else None
    layout = _zip_names(path)
    if any("/code/__torch__" in n for n in layout):
        if not trust:
            _refuse_unsafe(path, _script_code_on_load(path), "TorchScript archive")
        module, stored_shape, recorded = _load_torchscript(path)
        shape = shape or stored_shape or linear_input_shape(module)
        return LoadedModel(module, shape, "torchscript", path, digest, recorded=recorded)
    if any(n.endswith("/archive_format") or n == "archive_format" for n in layout):
        if not trust:
            _refuse_unsafe(path, _export_code_on_load(path), "torch.export archive")
        program = _load_export(path)
        recorded = _exported_shape(program)
        if shape is not None and recorded is not None and shape != recorded:
            raise CheckpointError(
                f"checkpoint {path} was exported for inputs of shape {recorded}, not `input_shape` {shape}"
            )
        return LoadedModel(program, recorded, "export", path, digest)
    if _is_safetensors(path):
        state, kind, ordered = _load_safetensors(path), "safetensors", False
    else:
        content = _load_weights_only(path, trust)
        if isinstance(content, dict) and isinstance(content.get("model"), torch.nn.Module):
            content = content["model"]  # a trusted training checkpoint holding the whole module
        if isinstance(content, torch.nn.Module):
            shape = shape or _declared_shape(content) or linear_input_shape(content)
            return LoadedModel(content.eval(), shape, "pickle", path, digest)
        state, kind, ordered = _state_dict_of(content, path), "state_dict", True
    if arch is None:
        raise CheckpointError(
            f"checkpoint {path} holds a state dict (weights only): pass `arch` with a TOML file "
            "(e.g. configs/arch/mlp.toml), a built-in family such as 'mlp{widths=[20,20], outputs=1, "
            "input_shape=[2]}', or package.module:factory"
        )
    module, arch_shape = build_arch(arch, input_width(state, ordered))
    renamed = _load_state(module, state, path, arch, ordered)
    shape = shape or arch_shape or linear_input_shape(module)
    return LoadedModel(module.eval(), shape, kind, path, digest, arch, renamed=renamed)


def build_arch(spec: str, input_width: int | None = None) -> tuple[torch.nn.Module, tuple[int, ...] | None]:
    """An architecture from a TOML file, 'family{options}', or 'package.module:factory(key=value)'.
    `input_width`: what the checkpoint's first weight matrix says, the input shape of a family that
    reads a vector when its options give none."""
    found = arch_family(spec)
    if found is None:
        module = call_factory(spec)
        return module, _declared_shape(module)
    family, options = found
    if family in VECTOR_INPUT_FAMILIES and "input_shape" not in options and input_width is not None:
        options = {**options, "input_shape": [input_width]}
    shape = options.get("input_shape")
    try:
        module = build(family, options)
    except UsageError as err:
        raise type(err)(f"`arch` {spec}: {err}") from None
    return module, tuple(shape) if shape else None


def _parse_inline(spec: str) -> tuple[str, dict]:
    family, brace, rest = spec.partition("{")
    if not brace:
        return spec.strip(), {}
    try:
        options = tomllib.loads(f"options = {{{rest}")["options"]
    except tomllib.TOMLDecodeError as err:
        raise UsageError(
            f"`arch` {spec!r}: options must be a TOML inline table, e.g. "
            f"mlp{{widths=[20,20], outputs=1, input_shape=[2]}} ({err})"
        ) from None
    return family.strip(), options


def _declared_shape(module: Any) -> tuple[int, ...] | None:
    shape = getattr(module, "input_shape", None)
    return tuple(int(s) for s in shape) if shape else None


def linear_input_shape(module: Any) -> tuple[int, ...] | None:
    """`(in,)` where the module's first layer with parameters is a `Linear(in, ...)` (a module or a
    scripted one) and the module takes such inputs; None otherwise (a convolution first, say, whose
    spatial size nothing records)."""
    for layer in module.modules():
        own = dict(layer.named_parameters(recurse=False))
        if not own:
            continue
        linear = isinstance(layer, torch.nn.Linear) or getattr(layer, "original_name", None) == "Linear"
        weight = own.get("weight")
        if not (linear and weight is not None and weight.dim() == 2):
            return None
        # layers are listed in the order they were declared, which need not be the order they run in
        return (int(weight.shape[1]),) if _takes(module, weight.new_zeros(1, weight.shape[1])) else None
    return None


def _takes(module: Any, x: torch.Tensor) -> bool:
    try:
        with torch.no_grad():
            module(x)
    except Exception:  # noqa: BLE001 - any failure means: not this shape
        return False
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _zip_names(path: Path) -> list[str]:
    """The members of a zip archive (every checkpoint format but the legacy pickle is one), after
    checking every member's CRC: torch reads members without checking them, so a damaged archive would
    otherwise load as a model with damaged weights."""
    if not zipfile.is_zipfile(path):
        return []
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                _read_checked(archive, member, path)
            return archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"checkpoint {path}: a damaged zip archive ({err})") from None


def _read_checked(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> None:
    """Read a member to its end, which makes zipfile check its CRC."""
    try:
        with archive.open(member) as handle:
            while handle.read(1 << 20):
                pass
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise CheckpointError(
            f"checkpoint {path}: archive member {member.filename} is damaged ({err}); "
            "the file was corrupted after it was saved"
        ) from None


def _refuse_unsafe(path: Path, entries: list[str], kind: str) -> None:
    if entries:
        raise UnsafeCheckpointError(
            f"checkpoint {path} is a {kind} whose loading would run code from the file: "
            f"{first_items(entries)}. Pass `trust` only if you trust where this file came from."
        )


def _script_code_on_load(path: Path) -> list[str]:
    """TorchScript classes that define __setstate__, which torch.jit.load runs while unpickling."""
    with zipfile.ZipFile(path) as archive:
        return [
            f"{name} (defines __setstate__)"
            for name in archive.namelist()
            if "/code/" in name and name.endswith(".py") and b"def __setstate__(" in archive.read(name)
        ]


def _export_code_on_load(path: Path) -> list[str]:
    """The members of a .pt2 archive that torch.export.load would unpickle or load as compiled code.

    torch.export.load unpickles payloads its configs mark `use_pickle`, custom and opaque objects
    among the constants, and any .pt member (sample inputs, legacy weights) that its safe loader
    refuses; it loads AOTInductor members as shared libraries. Everything else is JSON or raw bytes.
    """
    found = []
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            inner = name.partition("/")[2] if "/" in name else name
            if inner.startswith(AOTINDUCTOR_DIR):
                found.append(f"{name} (compiled code)")
            elif inner.endswith(("_weights_config.json", "_constants_config.json")):
                found += [f"{entry} in {name}" for entry in _pickled_payloads(archive.read(name))]
            elif name.endswith(".pt") and not _loads_weights_only(archive.read(name)):
                found.append(f"{name} (a pickle)")
    return found


def _pickled_payloads(config: bytes) -> list[str]:
    try:
        entries = json.loads(config).get("config", {})
    except (ValueError, AttributeError):
        return ["an unreadable payload config"]
    if not isinstance(entries, dict):
        return ["an unreadable payload config"]
    return [
        f"{fqn} (pickled)"
        for fqn, meta in entries.items()
        if not isinstance(meta, dict)
        or meta.get("use_pickle")
        or str(meta.get("path_name", "")).startswith(PICKLED_CONSTANT_PREFIXES)
    ]


def _loads_weights_only(payload: bytes) -> bool:
    try:
        torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - whatever the safe loader refuses counts as unsafe
        return False
    return True


def _load_torchscript(path: Path) -> tuple[torch.jit.ScriptModule, tuple[int, ...] | None, dict]:
    extra = {EXTRA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as err:  # noqa: BLE001 - torch raises many types for broken archives
        raise CheckpointError(f"checkpoint {path}: not a readable TorchScript archive ({err})") from None
    recorded = {}
    if extra[EXTRA_FILE]:
        try:
            recorded = json.loads(extra[EXTRA_FILE])
        except json.JSONDecodeError:
            recorded = {}
    recorded = recorded if isinstance(recorded, dict) else {}
    shape = recorded.get("input_shape")
    return module, tuple(shape) if shape else None, recorded


def recorded_architecture(loaded: LoadedModel) -> tuple[str, dict] | None:
    """The built-in family and options a checkpoint was built from, where it says so: a TorchScript
    archive's splinetool.json, or the `arch` (TOML file or inline family) a state dict was loaded with."""
    if isinstance(loaded.recorded.get("family"), str) and isinstance(loaded.recorded.get("options"), dict):
        return loaded.recorded["family"], dict(loaded.recorded["options"])
    return arch_family(loaded.arch) if loaded.arch is not None else None


def arch_family(spec: str) -> tuple[str, dict] | None:
    """(family, options) of an `arch` TOML file or inline family; None for a package.module:factory."""
    if imports_code(spec):
        return None
    if spec.endswith(".toml") or Path(spec).is_file():
        return load_arch_toml(spec)
    return _parse_inline(spec)


def _load_export(path: Path) -> torch.export.ExportedProgram:
    # torch logs its own traceback for a broken archive before raising; the message below is enough
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        return torch.export.load(str(path))
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"checkpoint {path}: not a readable torch.export archive ({err})") from None
    finally:
        logger.setLevel(level)


def _exported_input_shape(program: torch.export.ExportedProgram) -> tuple[int, ...] | None:
    user = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user and hasattr(node.meta.get("val"), "shape"):
            return tuple(int(s) for s in node.meta["val"].shape)
    return None


def _exported_shape(program: torch.export.ExportedProgram) -> tuple[int, ...] | None:
    shape = _exported_input_shape(program)
    return shape[1:] if shape else None


def _exported_batch(program: torch.export.ExportedProgram) -> int:
    shape = _exported_input_shape(program)
    return shape[0] if shape else 1


def _load_weights_only(path: Path, trust: bool) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        # a pickle that torch's safe unpickler refuses needs full unpickling; anything else is not ours
        refused = str(err)
        if "Unsupported global" not in refused and not _starts_like_pickle(path):
            raise CheckpointError(
                f"checkpoint {path}: not a PyTorch checkpoint, TorchScript archive, .pt2 export or "
                "safetensors file (torch.load cannot read it)"
            ) from None
    if not trust:
        _refuse_pickled(path, refused)
    try:
        with importable_from_cwd():  # the classes a trusted pickle names, as `python` run here finds them
            return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001
        hint = ""
        if isinstance(err, (ImportError, AttributeError)):
            hint = (
                "; the classes it names must be importable: run from the folder holding their .py file, "
                "or install their package"
            )
        raise CheckpointError(f"checkpoint {path}: cannot be unpickled ({err}){hint}") from None


def _refuse_pickled(path: Path, refused: str) -> None:
    """Refuse a pickle the safe loader cannot read, naming what it holds."""
    names = re.findall(r"GLOBAL ([\w.]+)", refused)
    found = f" (it names {first_items(sorted(set(names)))})" if names else ""
    if _pickled_dict(path):
        raise UnsafeCheckpointError(
            f"checkpoint {path} is a training checkpoint (a dict, such as a Lightning .ckpt) holding Python "
            f"objects besides tensors that the safe loader (torch.load with weights_only=True) cannot "
            f"read{found}. Unpickling them executes whatever code the file names. Save the state dict "
            "alone (torch.save(model.state_dict(), path)), or pass `trust` if you trust where this file "
            "came from."
        )
    raise UnsafeCheckpointError(
        f"checkpoint {path} is a pickled Python object (e.g. a whole nn.Module saved with torch.save)"
        f"{found}. Loading it executes whatever code the file names, so a malicious file could run "
        "anything. Save the state dict, a TorchScript archive or a torch.export .pt2 instead, or pass "
        "`trust` if you trust where this file came from."
    )


def _pickled_dict(path: Path) -> bool:
    """Whether a torch.save zip archive pickles a dict at its top, read from its opcodes without
    unpickling anything."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        members = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        payload = archive.read(members[0]) if members else b""
    try:
        for opcode, _, _ in pickletools.genops(payload):
            if opcode.name not in ("PROTO", "FRAME"):
                return opcode.name == "EMPTY_DICT"
    except ValueError:  # not a pickle
        return False
    return False


SAFETENSORS_MAX_HEADER = 100_000_000  # bytes: the safetensors format refuses longer headers


def _is_safetensors(path: Path) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then that many bytes of JSON (or a
    file named so, whatever it holds, so that a damaged one is reported as what it was meant to be)."""
    if path.suffix.lower() == ".safetensors":
        return True
    length, opening = _safetensors_head(path)
    return opening == b"{" and 2 <= length <= SAFETENSORS_MAX_HEADER


def _safetensors_head(path: Path) -> tuple[int, bytes]:
    """The header length a safetensors file declares, and the header's first byte."""
    with path.open("rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return -1, b""
    return struct.unpack("<Q", head[:8])[0], head[8:9]


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if zipfile.is_zipfile(path):
        # torch.load itself reads any file named .safetensors as one, so this name cannot stay
        raise CheckpointError(
            f"checkpoint {path}: named .safetensors but saved by torch.save; rename it (e.g. to .pt)"
        )
    length, _ = _safetensors_head(path)
    size = path.stat().st_size
    if length < 0:
        raise CheckpointError(f"checkpoint {path}: {size} bytes, too short for a safetensors file")
    if length > size - 8:
        raise CheckpointError(
            f"checkpoint {path}: a safetensors file cut short (its header declares {length:,} bytes, "
            f"the whole file holds {size:,})"
        )
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: not a readable safetensors file ({err})") from None
    if not state:
        raise CheckpointError(f"checkpoint {path}: a safetensors file holding no tensors")
    return state


def _starts_like_pickle(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(1) == b"\x80"  # the PROTO opcode that opens every pickle since protocol 2


def _state_dict_of(content: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(content, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(content.get(key), dict):
                content = content[key]
                break
        if content and all(isinstance(v, torch.Tensor) for v in content.values()):
            return content
    raise CheckpointError(
        f"checkpoint {path}: expected a state dict (names -> tensors) or a dict holding one under "
        f"{', '.join(repr(k) for k in STATE_DICT_KEYS)}; found {type(content).__name__}"
    )


def _load_state(
    module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str, ordered: bool
) -> dict[str, str]:
    """Load `state` into `module`, fitted to its names (see `matching`); the names it changed."""
    expected = module.state_dict()
    try:
        fitted = fit_state(state, expected, ordered)
    except NoFit as err:
        unfit = str(err)
    else:
        module.load_state_dict(fitted.state)
        return fitted.renamed
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing from the checkpoint: {first_items(missing)}")
    if unexpected:
        parts.append(f"not in the architecture: {first_items(unexpected)}")
    if mismatched:
        parts.append(f"shape mismatch (checkpoint vs architecture): {first_items(mismatched)}")
    raise CheckpointError(
        f"checkpoint {path} does not fit `arch` {arch}: "
        + "; ".join(parts)
        + f". Checkpoint keys start: {first_items(list(state))}; "
        + f"architecture keys start: {first_items(list(expected))}. "
        + f"Matching by shapes in order failed too: {unfit}"
    )
