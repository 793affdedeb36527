import pytest
import torch

from splinetool import parsing
from splinetool.errors import UsageError


def test_numbers_are_read_in_order():
    assert parsing.numbers("1,-2.5,3e2", 3, "bounds") == (1.0, -2.5, 300.0)
    assert parsing.numbers("4,5,6", 3, "anchor_index", int) == (4, 5, 6)
    assert parsing.numbers(None, 3, "bounds") is None


@pytest.mark.parametrize("text", ["1,2", "1,2,x", "1,2,nan", "1,2,inf", "", "1,,2"])
def test_numbers_refuse_the_wrong_count_and_non_finite_values(text):
    with pytest.raises(UsageError, match=r"^`bounds` .*: expected 3 numbers separated by commas$"):
        parsing.numbers(text, 3, "bounds")


def test_integers_say_integers():
    with pytest.raises(UsageError, match="expected 3 integers"):
        parsing.numbers("1,2,3.5", 3, "anchor_index", int)


def test_shapes_take_commas_or_x():
    assert parsing.shape("1x8x8") == (1, 8, 8)
    assert parsing.shape("64") == (64,)
    assert parsing.shape(None) is None
    for bad in ("0,3", "a", "", "-1"):
        with pytest.raises(UsageError, match="^`output_shape` "):
            parsing.shape(bad, "output_shape")


def test_devices_and_dtypes():
    assert parsing.device("cpu") == torch.device("cpu")
    assert parsing.dtype("float32") is torch.float32
    assert parsing.dtype("float64") is torch.float64
    with pytest.raises(UsageError, match="^`device` 'tpu': expected auto, cpu, cuda or cuda:N$"):
        parsing.device("tpu")
    with pytest.raises(UsageError, match="^`dtype` 'half': expected one of float64, float32$"):
        parsing.dtype("half")
