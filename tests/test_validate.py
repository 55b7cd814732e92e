import numpy as np
import pytest

from atlasclust._validate import as_int, check_choice, check_fraction, check_non_negative, check_positive


@pytest.mark.parametrize("value", [5, np.int64(5), np.int32(5), np.uint16(5)])
def test_integers_of_any_kind_become_python_ints(value):
    converted = as_int(value, "max_epochs")
    assert converted == 5 and type(converted) is int


def test_none_stays_none():
    assert as_int(None, "batch_size") is None


@pytest.mark.parametrize("value", [5.0, np.float64(5), "5", True])
def test_other_values_are_refused_by_name(value):
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        as_int(value, "batch_size")


def test_weights_and_temperatures_accept_finite_numbers_of_any_kind():
    check_non_negative(dec_weight=0, anchor_weight=np.float32(0.5), input_noise=1.0)
    check_positive(temperature=np.float64(0.1), resolution=2)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), "0.1", None, True])
def test_bad_weights_are_refused_by_name(value):
    with pytest.raises(ValueError, match="dec_weight=.* must be a finite number of at least 0"):
        check_non_negative(anchor_weight=1.0, dec_weight=value)


@pytest.mark.parametrize("value", [0, -0.5, float("nan"), float("inf")])
def test_temperatures_must_be_above_zero(value):
    with pytest.raises(ValueError, match="temperature=.* must be a finite number above 0"):
        check_positive(temperature=value)


def test_integers_below_their_minimum_are_refused_by_name():
    assert as_int(np.int64(0), "num_workers", minimum=0) == 0
    with pytest.raises(ValueError, match="batch_size=0 must be at least 1"):
        as_int(0, "batch_size", minimum=1)


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), None])
def test_fractions_must_lie_between_zero_and_one(value):
    check_fraction(pretrain_fraction=0.0)
    check_fraction(pretrain_fraction=np.float32(1.0))
    with pytest.raises(ValueError, match="pretrain_fraction=.* must be a number from 0 to 1"):
        check_fraction(pretrain_fraction=value)


def test_a_choice_outside_the_list_names_the_argument_and_the_list():
    check_choice("mode", None, (None, "a"))  # None can be a valid choice
    with pytest.raises(ValueError, match=r"mode='b' must be one of \(None, 'a'\)"):
        check_choice("mode", "b", (None, "a"))
