import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from atlasclust.data import as_sparse_matrix, training_view
from atlasclust.data._anndata import check_same_genes


def test_training_view_shares_counts_and_leaves_the_original_alone(counts):
    counts.layers["counts"] = counts.X.copy()
    view = training_view(counts, "counts")
    assert view.layers["counts"] is counts.layers["counts"]
    view.obs["added"] = 1
    view.uns["added"] = 1
    assert "added" not in counts.obs and "added" not in counts.uns
    assert list(view.obs["_indices"]) == list(range(counts.n_obs))


@pytest.mark.parametrize(("array", "matrix"), [(sp.csr_array, sp.csr_matrix), (sp.csc_array, sp.csc_matrix)])
def test_sparse_arrays_become_matrices_sharing_their_data(counts, array, matrix):
    counts.X = array(counts.X)
    view = training_view(counts)
    assert type(view.X) is matrix
    assert np.shares_memory(view.X.data, counts.X.data)  # nothing copied
    assert type(counts.X) is array
    dense = np.arange(6.0).reshape(2, 3)
    assert as_sparse_matrix(dense) is dense


def test_backed_dense_rows_come_in_the_order_asked(counts, tmp_path):
    dense = counts.X.toarray()
    ad.AnnData(X=dense, obs=counts.obs, var=counts.var).write_h5ad(tmp_path / "dense.h5ad")
    backed = ad.read_h5ad(tmp_path / "dense.h5ad", backed="r")
    view = training_view(backed)
    rows = [7, 2, 2, 590, 0]
    np.testing.assert_array_equal(view.X[rows], dense[rows])
    np.testing.assert_array_equal(view.X[np.array(rows)], dense[rows])
    np.testing.assert_array_equal(view.X[3:9], dense[3:9])


def test_missing_layer_names_the_available_ones(counts):
    counts.layers["raw"] = counts.X
    with pytest.raises(KeyError, match="'counts' not found.*'raw'"):
        training_view(counts, "counts")


def test_gene_mismatch_lists_the_difference(counts):
    expected = pd.Index(counts.var_names.tolist()[:-1] + ["gene_X"])
    with pytest.raises(ValueError, match=r"missing: \['gene_X'\].*not in the model: \['gene_199'\]"):
        check_same_genes(expected, counts)
    with pytest.raises(ValueError, match="another order"):
        check_same_genes(counts.var_names[::-1], counts)
    check_same_genes(counts.var_names.copy(), counts)
