import numpy as np
import pytest

import atlasclust as ac
from atlasclust.data import scan_counts, select_top_genes
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


@pytest.mark.parametrize(("method", "flavor"), [("bgformer", "deviance"), ("scrcl", "seurat")])
def test_each_model_ranks_genes_its_own_way_without_a_selection(method, flavor):
    model_class = {"bgformer": ac.models.BGFormer, "scrcl": ac.models.SCRCL}[method]
    assert model_class.gene_flavor == flavor
    adata = ac.datasets.simulate(300, 200, 3, random_state=4)
    model_class.setup_anndata(adata)
    model = model_class(adata, 3, n_top_genes=40)
    statistics = scan_counts(adata.X)
    ranked = {name: select_top_genes(statistics, 40, flavor=name) for name in ("deviance", "seurat")}
    assert len(set(ranked["deviance"]) ^ set(ranked["seurat"])) > 0  # the two rankings differ here
    if method == "scrcl":
        model._fit_input_transform(random_state=0)
    else:
        model._fit_input_transform()
    np.testing.assert_array_equal(model.module.gene_index.numpy(), ranked[flavor])
