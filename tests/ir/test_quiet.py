"""Torch's notices about its own internals stay off stderr; every other warning still shows."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from splinetool.analyses import info
from splinetool.frontends.loading import load_model
from splinetool.ir import lower
from splinetool.quiet import torch_notices_hidden
from tests.conftest import ARCHS, ROOT, SAMPLES


def recorded_warnings(work) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        work()
    return caught


@pytest.mark.parametrize(
    "loaded",
    [
        lambda: load_model(SAMPLES / "moons-mlp.pt2"),
        lambda: load_model(SAMPLES / "moons-mlp.state.pt", arch=str(ARCHS / "moons-mlp.toml")),
    ],
    ids=["pt2", "state-dict"],
)
def test_lowering_and_checking_an_exported_graph_warn_nothing(loaded):
    model = loaded()
    caught = recorded_warnings(lambda: (lower(model), info.run(model)))
    assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == []


def test_only_torchs_own_notices_are_hidden():
    def warn_both():
        with torch_notices_hidden():
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use", FutureWarning, stacklevel=1)
            warnings.warn("`radius` will change its default", FutureWarning, stacklevel=1)
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", UserWarning, stacklevel=1)

    caught = recorded_warnings(warn_both)
    assert [(w.category, str(w.message)) for w in caught] == [
        (FutureWarning, "`radius` will change its default"),
        (UserWarning, "`isinstance(treespec, LeafSpec)` is deprecated"),
    ]


def test_the_command_line_prints_its_own_warnings_and_not_torchs():
    # a state dict is traced by torch.export, whose treespec notice printed on every run
    command = [sys.executable, "-m", "splinetool", "debias-sample", str(SAMPLES / "gmm-wgan.state.pt")]
    command += ["--arch", str(ARCHS / "gmm-wgan.toml"), "--pool", "40", "--n", "8", "--json"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # Python's default filters
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "LeafSpec" not in done.stderr
    assert "warning: ρ = 1: effective sample size" in done.stderr
