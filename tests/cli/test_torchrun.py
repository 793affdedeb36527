"""Under torchrun: two gloo ranks on the CPU give the single-process numbers; a failing rank fails the run."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
from typer.testing import CliRunner

from splinetool.cli import app
from splinetool.parallel import TORCHRUN_VARIABLES
from tests.cluster_helpers import ANCHORS, MOONS, TRAJECTORY, assert_same_file, small_digits
from tests.conftest import ROOT


def torchrun(*args, ranks=2):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks)]
    command += ["--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "splinetool"]
    return subprocess.run(
        command + [str(a) for a in args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def alone(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_local_complexity_of_a_trajectory_on_two_ranks_equals_one_process(tmp_path):
    data = small_digits(tmp_path / "digits.npz")
    args = ["local-complexity", *TRAJECTORY, "--data", data, "--split", "train,test", "--random", "5"]
    args += ["--frame", "per-point", "--directions", "8", "--seed", "3", "--json"]
    two = torchrun(*args, "-o", tmp_path / "two.h5")
    assert two.returncode == 0, two.stderr
    one = alone(*args, "-o", tmp_path / "one.h5")
    assert_same_file(tmp_path / "two.h5", tmp_path / "one.h5")
    # one JSON payload on stdout (rank 1 prints nothing), the same as one process's but for the time
    payloads = [json.loads(r.stdout) for r in (two, one)]
    for payload in payloads:
        payload.pop("seconds")
    assert payloads[0] == payloads[1] and len(payloads[0]["checkpoints"]) == 3


def test_slice_of_a_plane_list_on_two_ranks_equals_one_process(tmp_path):
    anchors = tmp_path / "anchors.npy"
    np.save(anchors, ANCHORS)
    args = ["slice", MOONS, "--anchors-list", anchors, "--json"]
    two = torchrun(*args, "-o", tmp_path / "two.h5")
    assert two.returncode == 0, two.stderr
    alone(*args, "-o", tmp_path / "one.h5")
    assert_same_file(tmp_path / "two.h5", tmp_path / "one.h5")
    assert [s["regions"] for s in json.loads(two.stdout)["slices"]] == [207, 1596, 268]


def test_a_failing_rank_fails_the_run_and_writes_nothing(tmp_path):
    anchors = tmp_path / "anchors.npy"
    np.save(anchors, ANCHORS[:2])  # rank 0 slices the small plane, rank 1 the one over the limit
    out = tmp_path / "out.h5"
    run = torchrun("slice", MOONS, "--anchors-list", anchors, "--max-regions", "1000", "-o", out)
    assert run.returncode != 0 and run.stdout == ""
    assert "rank 1 failed: the slice has more than --max-regions 1000 regions" in run.stderr
    assert "rank 0 failed" not in run.stderr
    # the ranks leave with the usage error's exit code, which torchrun's failure summary shows
    assert "exitcode  : 2" in run.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [anchors]
