"""How much memory the engine may use: the process's real limits, not the host's free pages."""

import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from splinetool.engine import memory
from splinetool.ir import lower
from tests.zoo import mlp

GIB = 1 << 30
V1_UNLIMITED = 9223372036854771712  # what cgroup v1 writes for "no limit"


def fake_proc(tmp_path: Path, mounts: list[str], cgroups: list[str], status="", meminfo="") -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text("".join(line + "\n" for line in mounts))
    (proc / "self" / "cgroup").write_text("".join(line + "\n" for line in cgroups))
    (proc / "self" / "status").write_text(status)
    (proc / "meminfo").write_text(meminfo)
    return proc


def write(folder: Path, **files: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text + "\n")


def v2(tmp_path: Path, path: str = "/job/step") -> tuple[Path, Path]:
    mount = tmp_path / "cgroup2"
    proc = fake_proc(tmp_path, [f"40 31 0:38 / {mount} rw,nosuid - cgroup2 cgroup2 rw"], [f"0::{path}"])
    return proc, mount


def v1(tmp_path: Path, path: str = "/slurm/job") -> tuple[Path, Path]:
    mount = tmp_path / "memory"
    proc = fake_proc(
        tmp_path,
        [f"35 31 0:32 / {mount} rw - cgroup cgroup rw,memory", "41 31 0:39 / /x rw - cgroup2 cgroup2 rw"],
        ["5:cpu,cpuacct:/slurm/job", f"4:memory:{path}", "0::/"],
    )
    return proc, mount


def test_cgroup_v2_limit_minus_usage_with_inactive_cache_counted_as_room(tmp_path):
    proc, mount = v2(tmp_path)
    write(mount / "job" / "step", memory_max=str(4 * GIB), memory_current=str(3 * GIB))
    (mount / "job" / "step" / "memory.stat").write_text(f"anon 100\nfile 5\ninactive_file {GIB // 2}\n")
    assert memory.cgroup_left(proc) == GIB + GIB // 2


def test_cgroup_v2_max_reads_as_no_limit_and_a_parent_limit_applies(tmp_path):
    proc, mount = v2(tmp_path)
    write(mount / "job" / "step", memory_max="max", memory_current=str(GIB))
    write(mount / "job", memory_max=str(2 * GIB), memory_current=str(GIB + 12345))
    assert memory.cgroup_left(proc) == GIB - 12345
    write(mount / "job", memory_max="max", memory_current=str(GIB))
    assert memory.cgroup_left(proc) is None


def test_cgroup_v1_limit_and_its_unlimited_sentinel(tmp_path):
    proc, mount = v1(tmp_path)
    leaf = mount / "slurm" / "job"
    write(leaf, memory_limit_in_bytes=str(V1_UNLIMITED), memory_usage_in_bytes=str(GIB))
    assert memory.cgroup_left(proc) is None
    write(leaf, memory_limit_in_bytes=str(3 * GIB), memory_usage_in_bytes=str(GIB))
    (leaf / "memory.stat").write_text(f"cache 7\ninactive_file 1\ntotal_inactive_file {GIB // 4}\n")
    assert memory.cgroup_left(proc) == 2 * GIB + GIB // 4


def test_cgroup_mounted_at_the_container_own_cgroup(tmp_path):
    # without a cgroup namespace the mount's root is the container's cgroup, named in full in /proc
    mount = tmp_path / "cgroup2"
    mounts = [f"40 31 0:38 /docker/abc {mount} rw - cgroup2 cgroup2 rw"]
    proc = fake_proc(tmp_path, mounts, ["0::/docker/abc"])
    write(mount, memory_max=str(2 * GIB), memory_current=str(GIB))
    assert memory.cgroup_left(proc) == GIB


def test_missing_files_mean_no_limit(tmp_path):
    proc, _ = v2(tmp_path)  # the cgroup's folder does not exist
    assert memory.cgroup_left(proc) is None
    nothing = tmp_path / "nothing"
    assert memory.cgroup_left(nothing) is None
    assert memory.rlimit_left(nothing) is None
    assert memory.host_available(nothing) == memory.host_available(tmp_path / "other")  # the sysconf fallback


def test_meminfo_available_is_preferred_to_free_pages(tmp_path):
    proc = fake_proc(tmp_path, [], [], meminfo="MemTotal: 9000 kB\nMemFree: 100 kB\nMemAvailable: 5000 kB\n")
    assert memory.host_available(proc) == 5000 * 1024


def test_address_space_limit_minus_the_virtual_size(tmp_path, monkeypatch):
    proc = fake_proc(tmp_path, [], [], status="Name:\tpython\nVmSize:\t 2097152 kB\nVmData:\t 1048576 kB\n")
    limits = {resource.RLIMIT_AS: (5 * GIB, 5 * GIB), resource.RLIMIT_DATA: (resource.RLIM_INFINITY,) * 2}
    monkeypatch.setattr(memory.resource, "getrlimit", lambda which: limits[which])
    assert memory.rlimit_left(proc) == 3 * GIB
    limits[resource.RLIMIT_DATA] = (2 * GIB, resource.RLIM_INFINITY)
    assert memory.rlimit_left(proc) == GIB
    limits[resource.RLIMIT_AS] = limits[resource.RLIMIT_DATA] = (resource.RLIM_INFINITY,) * 2
    assert memory.rlimit_left(proc) is None


ARCH = "mlp{widths=[512, 512, 512, 512, 512, 512], outputs=1, input_shape=[2]}"
# the CLI, started once torch and the modules `slice` loads are imported (the command line imports
# them only when a command runs), under RLIMIT_AS = that virtual size + headroom
UNDER_LIMIT = textwrap.dedent(
    """
    import resource, sys
    import splinetool.cli, splinetool.analyses.slice, splinetool.frontends.loading, splinetool.io.hdf5
    size = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
    limit = size + int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.argv = ["splinetool", *sys.argv[2:]]
    splinetool.cli.main()
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_slice_under_an_address_space_limit_splits_its_work_or_stops_cleanly(tmp_path):
    """A batch job's `ulimit -v`: 512 MiB over the size after imports.

    Sized by free pages, the engine held this plane's 17,112 tiles in one group and died in the
    allocator (exit 1, a traceback); under the limit it splits the plane into groups that fit.
    """
    from splinetool.frontends.families import build

    torch.manual_seed(0)
    checkpoint = tmp_path / "mlp.pt"
    torch.save(build("mlp", {"widths": [512] * 6, "outputs": 1, "input_shape": [2]}).state_dict(), checkpoint)
    args = ["slice", checkpoint, "--arch", ARCH, "--bounds=-0.125,0.125,-0.125,0.125", "--json"]
    done = subprocess.run(
        [sys.executable, "-c", UNDER_LIMIT, str(512 << 20), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode in (0, 2), done.stderr[-3000:]
    if done.returncode == 2:
        assert "GiB" in done.stderr and "memory" in done.stderr, done.stderr
    else:
        assert json.loads(done.stdout)["regions"] == 17112


KEEP = "from splinetool.engine.memory import keep_freed_memory; print(keep_freed_memory())"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_kept_unless_the_user_chose_otherwise():
    def kept(**env: str) -> str:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
        return subprocess.run(
            [sys.executable, "-c", KEEP], capture_output=True, text=True, env=environ, check=True
        ).stdout.strip()

    assert kept() == "True"
    assert kept(MALLOC_TRIM_THRESHOLD_="0") == "False"
    assert kept(MALLOC_MMAP_THRESHOLD_="131072") == "False"


def test_auto_chunk_keeps_the_rows_of_a_chunk_within_the_cpu_batch_and_the_budget():
    net = lower(mlp((3, 10, 10, 7)), (3,)).to(dtype=torch.float64)
    assert memory.auto_chunk(net, 50, 1024) == 1024 // 50
    # each row holds four values of the widest step (10 floats of 8 bytes): 320 bytes
    assert memory.auto_chunk(net, 2, 10**6, budget=320 * 2 * 7) == 7
    assert memory.auto_chunk(net, 2, 10**6, budget=1) == 1
