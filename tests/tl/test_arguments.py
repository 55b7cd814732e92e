"""Arguments taken from numpy (a sweep over ``np.arange``) work as Python numbers do."""

import numpy as np
import pytest
from helpers import FAST

import atlasclust as ac

OPTIONS = {"bgformer": FAST, "scrcl": {"n_top_genes": 150, "n_hidden": 64, "enable_progress_bar": False}}


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_numpy_integers_give_the_python_int_result(counts, method):
    run = getattr(ac.tl, method)
    options = OPTIONS[method] | {"max_epochs": 3, "batch_size": 128, "random_state": 2}
    reference = run(counts, 4, copy=True, **options)
    numpy_options = options | {key: np.int64(options[key]) for key in ("max_epochs", "batch_size", "random_state")}
    result = run(counts, np.int64(4), copy=True, **numpy_options)
    np.testing.assert_array_equal(result.obs[method], reference.obs[method])
    params = result.uns[method]["params"]
    assert params["max_epochs"] == 3 and type(params["max_epochs"]) is int  # stored as a number, not its repr


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_fractional_epochs_are_refused_by_name(counts, method):
    with pytest.raises(TypeError, match="max_epochs must be an integer, got 2.5"):
        getattr(ac.tl, method)(counts, 4, copy=True, **(OPTIONS[method] | {"max_epochs": 2.5}))
