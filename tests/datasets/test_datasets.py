import numpy as np
import pytest
import scipy.sparse as sp

import atlasclust as ac


def test_zeisel_is_labelled_raw_counts():
    adata = ac.datasets.zeisel()
    assert adata.shape == (3005, 2000)
    assert sp.issparse(adata.X) and adata.X.dtype == np.float32
    assert np.array_equal(adata.X.data, np.round(adata.X.data)) and adata.X.data.min() > 0
    assert adata.obs["cell_type"].nunique() == 7
    assert "Zeisel" in adata.uns["source"]


def test_pbmc3k_has_gene_symbols_and_integer_counts():
    adata = ac.datasets.pbmc3k()
    assert adata.shape == (2638, 13713)
    assert sp.isspmatrix_csr(adata.X) and adata.X.dtype == np.float32 and adata.X.indices.dtype == np.int32
    assert np.array_equal(adata.X.data, np.round(adata.X.data)) and adata.X.data.min() > 0
    assert {"CD3E", "MS4A1", "LYZ", "NKG7", "PPBP"} <= set(adata.var_names)  # the tutorial's markers
    assert adata.obs["cell_type"].nunique() == 9 and "10x Genomics" in adata.uns["source"]
    # B cells express MS4A1 (CD20) far above the other cells: symbols and labels line up
    is_b = (adata.obs["cell_type"] == "B").to_numpy()
    ms4a1 = adata[:, "MS4A1"].X.toarray().ravel()
    assert ms4a1[is_b].mean() > 10 * ms4a1[~is_b].mean()


def test_simulate_gives_reproducible_labelled_counts():
    first = ac.datasets.simulate(300, 100, 3, n_markers=10, random_state=1)
    second = ac.datasets.simulate(300, 100, 3, n_markers=10, random_state=1)
    assert (first.X != second.X).nnz == 0
    assert first.obs["cell_type"].nunique() == 3
    assert (np.asarray(first.X.sum(axis=1)) > 0).all() and (np.asarray(first.X.sum(axis=0)) > 0).all()
    # markers of type_0 are higher in type_0 cells
    is_zero = (first.obs["cell_type"] == "type_0").to_numpy()
    markers = first.X[:, :10].toarray()
    assert markers[is_zero].mean() > 2 * markers[~is_zero].mean()


def test_simulate_rejects_too_few_genes_for_markers():
    with pytest.raises(ValueError, match="n_genes"):
        ac.datasets.simulate(100, 10, 3, n_markers=5)


def test_simulate_tissue_has_layers_on_a_grid():
    tissue = ac.datasets.simulate_tissue(12, 10, 3, 100, random_state=0)
    assert tissue.shape == (120, 100)
    assert tissue.obsm["spatial"].shape == (120, 2)
    assert list(tissue.obs["layer"].cat.categories) == ["layer_0", "layer_1", "layer_2"]
    # layers are bands along the rows: the mean row of each layer increases
    rows = tissue.obsm["spatial"][:, 1]
    means = [rows[tissue.obs["layer"] == name].mean() for name in tissue.obs["layer"].cat.categories]
    assert means == sorted(means)
    assert (np.asarray(tissue.X.sum(axis=1)).ravel() > 0).all()
