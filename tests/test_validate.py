import numpy as np
import pytest

from atlasclust._validate import as_int


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
