import numpy as np
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
