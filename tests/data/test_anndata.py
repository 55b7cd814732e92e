import pandas as pd
import pytest

from atlasclust.data import training_view
from atlasclust.data._anndata import check_same_genes


def test_training_view_shares_counts_and_leaves_the_original_alone(counts):
    counts.layers["counts"] = counts.X.copy()
    view = training_view(counts, "counts")
    assert view.layers["counts"] is counts.layers["counts"]
    view.obs["added"] = 1
    view.uns["added"] = 1
    assert "added" not in counts.obs and "added" not in counts.uns
    assert list(view.obs["_indices"]) == list(range(counts.n_obs))


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
