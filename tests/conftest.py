"""Shared fixtures: the shipped sample models and the repository's folders."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
ARCHS = ROOT / "configs" / "arch"
SAMPLE_NAMES = ["moons-mlp", "digits-mlp", "digits-convnet", "digits-resnet", "gmm-wgan", "digits-decoder"]


@pytest.fixture
def samples() -> Path:
    return SAMPLES
