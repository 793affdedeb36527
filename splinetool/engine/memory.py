"""Bytes this process may still allocate on the CPU, and how many points a chunk of work may take.

The host's free memory is not what a batch job may use. Its memory cgroup (Slurm, Kubernetes, Docker)
or an address-space limit (`ulimit -v`, RLIMIT_AS) stops it long before, and a tensor allocated past
that dies in the allocator instead of the engine splitting its work or saying what it needs. Free
pages (SC_AVPHYS_PAGES) also undercount: the kernel hands back the page cache on demand, and
MemAvailable counts it. Each reader returns None where its limit does not apply: a missing file, "max",
an unlimited value, a system without /proc.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from splinetool.ir import PLNet
from splinetool.ir.ops.conv import CONV
from splinetool.ir.registry import family_of
from splinetool.ir.step import Step

try:
    import resource
except ImportError:  # not a Unix
    resource = None

NO_LIMIT = 1 << 60  # larger values are "unlimited" sentinels (cgroup v1 writes 2**63 - 4096)
PROC = Path("/proc")


def memory_left(proc: Path = PROC) -> int | None:
    """The least of the host's available memory, the rlimit headroom and the cgroup headroom."""
    found = [host_available(proc), rlimit_left(proc), cgroup_left(proc)]
    found = [v for v in found if v is not None]
    return max(0, min(found)) if found else None


def host_available(proc: Path = PROC) -> int | None:
    """MemAvailable (free pages plus what the kernel can reclaim), else the free pages."""
    for line in _read(proc / "meminfo").splitlines():
        fields = line.split()
        if fields[:1] == ["MemAvailable:"] and len(fields) > 1 and fields[1].isdigit():
            return int(fields[1]) * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def rlimit_left(proc: Path = PROC) -> int | None:
    """Headroom under RLIMIT_AS (against VmSize) and RLIMIT_DATA (against VmData)."""
    if resource is None:
        return None
    status = dict(line.split(":", 1) for line in _read(proc / "self" / "status").splitlines() if ":" in line)
    left = []
    for limit, field in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
        if not hasattr(resource, limit):
            continue
        soft = resource.getrlimit(getattr(resource, limit))[0]
        used = (status.get(field, "").split() or [""])[0]
        if soft == resource.RLIM_INFINITY or soft < 0 or soft >= NO_LIMIT or not used.isdigit():
            continue
        left.append(soft - int(used) * 1024)
    return min(left) if left else None


def cgroup_left(proc: Path = PROC) -> int | None:
    """Headroom of this process's memory cgroup and of every cgroup above it (v2 or v1).

    Usage counts the page cache; the inactive part of it is handed back before the cgroup runs out,
    so it counts as room (as `docker stats` does).
    """
    mounts = {}  # "v2" / "v1": (root of the hierarchy that is mounted, mount point)
    for line in _read(proc / "self" / "mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields, fs = left.split(), right.split()
        if len(fields) < 5 or len(fs) < 3:
            continue
        if fs[0] == "cgroup2":
            mounts.setdefault("v2", (fields[3], fields[4]))
        elif fs[0] == "cgroup" and "memory" in fs[2].split(","):
            mounts.setdefault("v1", (fields[3], fields[4]))
    files = {
        "v2": ("memory.max", "memory.current", "inactive_file"),
        "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
    }
    left = []
    for line in _read(proc / "self" / "cgroup").splitlines():
        parts = line.split(":", 2)
        if len(parts) < 3:
            continue
        controllers = parts[1].split(",")
        version = "v2" if parts[0] == "0" and parts[1] == "" else "v1" if "memory" in controllers else None
        if version not in mounts:
            continue
        root, mount = mounts[version]
        path = parts[2]
        # inside a container the mount may already be this cgroup: its path is then not under the root
        under = root == "/" or path.startswith(root.rstrip("/") + "/")
        rel = path[len(root) :] if under and ".." not in path else ""
        limit_file, usage_file, cache_key = files[version]
        here = Path(mount, rel.lstrip("/"))
        for folder in [here, *here.parents]:
            if not folder.is_relative_to(mount):
                break
            limit, usage = _number(folder / limit_file), _number(folder / usage_file)
            if limit is not None and usage is not None and limit < NO_LIMIT:
                left.append(limit - usage + min(_stat(folder / "memory.stat", cache_key), usage))
    return min(left) if left else None


def _number(path: Path) -> int | None:
    text = _read(path).strip()
    return int(text) if text.isdigit() else None  # "max", empty or missing: no limit


def _stat(path: Path, key: str) -> int:
    for line in _read(path).splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""


# glibc's mallopt parameters
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# measured on the digits-mlp plane (bench_slice.py), the whole slice took 1.53 s keeping up to 1 GiB
# and 2.12 s keeping 256 MiB (its engine's temporaries reach hundreds of MiB); the price is resident
# memory: the digits-resnet `slice --verify` peaked at 3.96 GiB, against 3.4 GiB before
KEPT_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks of up to KEPT_BYTES for reuse instead of returning them.

    The planar engine allocates and frees tables of tens of MiB at every cut round. By default glibc
    maps each block over 32 MiB afresh and unmaps it when freed, so every round faults its pages in
    again: measured, the whole `slice` of the 64 -> 200x4 MLP's plane took 2.34 s with the default
    and 1.69 s with this (bench/README.md). A process-wide choice, so the command line makes it, not
    the library; variables a user set (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) win. False
    where it does not apply (not glibc, or already set).
    """
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, ImportError):  # no C library with mallopt in this process
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEPT_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEPT_BYTES))


# -- chunks of points -----------------------------------------------------------------------------------

MEMORY_BUDGET = 512 * 2**20  # bytes one chunk of work may hold: activations, Jacobians, suffix products


def auto_chunk(net: PLNet, rows_per_point: int, cpu_rows: int, budget: int = MEMORY_BUDGET) -> int:
    """Points per chunk when each point sends `rows_per_point` rows through the network at once (the
    vertices around it, or one tangent per direction): the chunk's activations fit `budget`, and on a
    CPU its batch stays at `cpu_rows` rows, a cache-sized batch that runs fastest (bench/README.md)."""
    widest = max(
        [net.input_dim, net.output_dim]
        + [math.prod(s.out_shape) for s in net.steps]
        + [n.units * n.pl.values_per_unit() for n in net.pl_nodes]
    )
    itemsize = torch.finfo(net.dtype).bits // 8
    # about four values of the widest size are live at once (a step's input and output, a node's
    # boundary values with their min/max), plus the column buffer a convolution unfolds its input into
    per_row = itemsize * (4 * widest + max([_conv_columns(s) for s in net.steps], default=0))
    points = budget // (per_row * rows_per_point)
    if net.device.type == "cpu":
        points = min(points, cpu_rows // rows_per_point)
    return max(1, points)


def _conv_columns(step: Step) -> int:
    if family_of(step.op) is not CONV:
        return 0
    weight = next((t for t in step.call.constants() if t.dim() >= 3), None)
    return 0 if weight is None else math.prod(weight.shape[1:]) * math.prod(step.out_shape[1:])
