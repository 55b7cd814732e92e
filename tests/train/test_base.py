import pytest

import atlasclust as ac
from atlasclust.train import MIN_CELLS, ClusteringModel


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_both_models_share_the_base_and_its_minimum_of_cells(method):
    model_class = {"bgformer": ac.models.BGFormer, "scrcl": ac.models.SCRCL}[method]
    assert issubclass(model_class, ClusteringModel)
    tiny = ac.datasets.simulate(MIN_CELLS - 1, 40, 2, n_markers=5, random_state=0)
    with pytest.raises(ValueError, match=f"needs at least {MIN_CELLS} cells"):
        getattr(ac.tl, method)(tiny, 2, enable_progress_bar=False)


def test_a_model_without_its_own_module_builder_says_so():
    from types import SimpleNamespace

    with pytest.raises(NotImplementedError):
        ClusteringModel._new_module(SimpleNamespace(), 10)
