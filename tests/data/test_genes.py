import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from atlasclust._constants import HIGHLY_VARIABLE_IF_PRESENT
from atlasclust.data import choose_genes, default_mask_var, gene_mask, planned_gene_count, scan_counts, select_top_genes
from atlasclust.data._genes import with_chosen_genes


def _statistics(n_cells=200, n_genes=50, empty=(), seed=0):
    x = np.random.default_rng(seed).poisson(2.0, size=(n_cells, n_genes)).astype(float)
    x[:, list(empty)] = 0
    return scan_counts(sp.csr_matrix(x))


def test_the_default_mask_is_the_highly_variable_column_when_there_is_one():
    var = pd.DataFrame({"highly_variable": [True, False, True]})
    assert default_mask_var(var, HIGHLY_VARIABLE_IF_PRESENT) == "highly_variable"
    assert default_mask_var(var.drop(columns="highly_variable"), HIGHLY_VARIABLE_IF_PRESENT) is None
    assert default_mask_var(var, None) is None  # an explicit None: no selection
    np.testing.assert_array_equal(gene_mask(var, "highly_variable"), [True, False, True])


def test_a_mask_given_as_an_array_or_a_nullable_boolean_column():
    var = pd.DataFrame({"keep": pd.array([True, False, True], dtype="boolean")})
    np.testing.assert_array_equal(gene_mask(var, "keep"), [True, False, True])
    np.testing.assert_array_equal(gene_mask(var, np.array([False, True, True])), [False, True, True])
    var.loc[1, "keep"] = pd.NA
    with pytest.raises(ValueError, match="without missing values"):
        gene_mask(var, "keep")


def test_genes_without_counts_are_left_out_not_refused():
    statistics = _statistics(empty=(3, 7))
    assert statistics.n_cells_per_gene[3] == 0  # the scan accepts them
    chosen = choose_genes(statistics, None, None)
    np.testing.assert_array_equal(chosen, np.setdiff1d(np.arange(50), [3, 7]))
    mask = np.zeros(50, dtype=bool)
    mask[[1, 3, 5]] = True
    np.testing.assert_array_equal(choose_genes(statistics, mask, 2000), [1, 5])
    mask[:] = False
    mask[3] = True
    with pytest.raises(ValueError, match="no counts in any cell"):
        choose_genes(statistics, mask, None)


def test_n_top_genes_is_at_most_the_genes_there_are():
    statistics = _statistics(empty=(3,))
    assert len(choose_genes(statistics, None, 2000)) == 49
    top = choose_genes(statistics, None, 10)
    np.testing.assert_array_equal(top, select_top_genes(statistics, 10))  # unchanged where there are enough
    assert planned_gene_count(50, None, 2000) == 50 and planned_gene_count(50, None, 10) == 10
    assert planned_gene_count(50, np.arange(50) < 7, 2000) == 7  # a mask: all of its genes


def test_a_mask_is_used_whole_whatever_n_top_genes_says():
    mask = np.arange(50) % 2 == 0
    np.testing.assert_array_equal(choose_genes(_statistics(), mask, 5), np.flatnonzero(mask))


def test_chosen_genes_replace_the_selection_in_saved_parameters():
    params = {"non_kwargs": {"n_top_genes": 2000, "mask_var": None, "n_clusters": 3}, "kwargs": {}}
    updated = with_chosen_genes(params, np.array([0, 2]), 4)
    np.testing.assert_array_equal(updated["non_kwargs"]["mask_var"], [True, False, True, False])
    assert updated["non_kwargs"]["n_top_genes"] is None and updated["non_kwargs"]["n_clusters"] == 3
    assert params["non_kwargs"]["mask_var"] is None  # the original is left as it was
