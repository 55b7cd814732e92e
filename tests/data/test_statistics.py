import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp

import atlasclust as ac
from atlasclust.data import (
    log_normalized_moments,
    poisson_deviance,
    projected_log_features,
    sample_rows,
    scaled_log_features,
    scan_counts,
    select_top_genes,
    selected_counts,
)


def test_scan_matches_direct_computation(counts):
    x = counts.X.toarray().astype(np.float64)
    stats = scan_counts(counts.X, chunk_size=70)  # several chunks, the last one short
    library = x.sum(axis=1)
    normalized = x * np.median(library) / library[:, None]
    np.testing.assert_allclose(stats.library_size, library)
    np.testing.assert_allclose(stats.normalized_mean, normalized.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(stats.normalized_var, normalized.var(axis=0, ddof=1), rtol=1e-8)
    np.testing.assert_array_equal(stats.n_cells_per_gene, (x > 0).sum(axis=0))


def test_poisson_deviance_matches_direct_computation_and_ranks_markers_first(counts):
    x = counts.X.toarray().astype(np.float64)
    x[:, 13] = 0  # a gene without counts
    stats = scan_counts(sp.csr_matrix(x), chunk_size=70)
    library, total = x.sum(axis=1), x.sum(axis=0)
    expected = library[:, None] * total[None, :] / x.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(x > 0, x * np.log(x / expected), 0.0) - (x - expected)
    deviance = poisson_deviance(stats)
    np.testing.assert_allclose(deviance, 2 * terms.sum(axis=0), rtol=1e-8, atol=1e-6)
    assert deviance[13] == 0
    # a gene that follows the library sizes exactly has no deviance; a marker has much
    follower = sp.csr_matrix(np.column_stack([x, np.round(library * 0.1)]))
    assert poisson_deviance(scan_counts(follower))[-1] < 0.01 * np.median(deviance)
    markers = np.arange(20)  # simulate(): the first group's markers are the first 20 genes
    assert np.median(deviance[markers]) > np.median(deviance[100:])


def test_deviance_and_seurat_rankings_both_select_and_the_flavor_is_checked(counts):
    stats = scan_counts(counts.X)
    for flavor in ("deviance", "seurat"):
        chosen = select_top_genes(stats, 30, flavor=flavor)
        assert len(chosen) == 30 and np.all(np.diff(chosen) > 0)
    with pytest.raises(ValueError, match="flavor='pearson' must be one of"):
        select_top_genes(stats, 30, flavor="pearson")


def test_group_means_match_direct_computation(counts, tmp_path):
    x = counts.X.toarray().astype(np.float64)
    library = x.sum(axis=1)
    genes = np.array([5, 0, 17, 120])
    groups = np.random.default_rng(0).integers(3, size=counts.n_obs)  # group 3 of 4 has no cell
    logged = np.log1p(x[:, genes] * 50.0 / library[:, None])
    expected = np.stack([logged[groups == g].mean(axis=0) for g in range(3)] + [np.zeros(len(genes))])
    counts.write_h5ad(tmp_path / "c.h5ad")
    backed = ad.read_h5ad(tmp_path / "c.h5ad", backed="r")
    for matrix in (counts.X, x, backed.X):
        moments = log_normalized_moments(
            matrix, library, genes, target_sum=50.0, groups=groups, n_groups=4, chunk_size=70
        )
        np.testing.assert_allclose(moments.group_mean, expected, rtol=1e-12)
        np.testing.assert_allclose(moments.mean, logged.mean(axis=0), rtol=1e-12)  # the same pass
    assert log_normalized_moments(counts.X, library, genes, target_sum=50.0).group_mean is None


def test_dense_sparse_and_backed_give_identical_statistics(counts, tmp_path):
    counts.write_h5ad(tmp_path / "c.h5ad")
    backed = ad.read_h5ad(tmp_path / "c.h5ad", backed="r")
    reference = scan_counts(counts.X)
    for matrix in (counts.X.toarray(), sp.csc_matrix(counts.X), sp.csr_array(counts.X), backed.X):
        other = scan_counts(matrix, chunk_size=128)
        np.testing.assert_allclose(other.normalized_var, reference.normalized_var, rtol=1e-12)
        np.testing.assert_array_equal(other.library_size, reference.library_size)


def test_float16_counts_give_the_float32_statistics(counts):
    # scipy.sparse holds no float16: the chunks are converted before they become CSR
    half = scan_counts(counts.X.toarray().astype(np.float16), chunk_size=128)
    reference = scan_counts(counts.X)
    np.testing.assert_array_equal(half.library_size, reference.library_size)
    np.testing.assert_allclose(half.normalized_var, reference.normalized_var, rtol=1e-12)


def test_top_genes_match_scanpy_seurat_flavour():
    adata = ac.datasets.simulate(800, 600, 5, random_state=3)
    stats = scan_counts(adata.X)
    ours = select_top_genes(stats, 150)
    lognorm = adata.copy()
    sc.pp.normalize_total(lognorm)
    sc.pp.log1p(lognorm)
    sc.pp.highly_variable_genes(lognorm, n_top_genes=150, flavor="seurat")
    theirs = np.flatnonzero(lognorm.var["highly_variable"].to_numpy())
    # scanpy round-trips the values through float32 log1p/expm1: allow a tie or two at the cut
    assert len(ours) == 150
    assert len(np.intersect1d(ours, theirs)) >= 147


def test_log_normalized_moments_match_scanpy_scale(counts):
    stats = scan_counts(counts.X)
    genes = np.arange(0, 200, 3)
    mean, std, _ = log_normalized_moments(counts.X, stats.library_size, genes, target_sum=stats.median_library_size)
    lognorm = counts[:, :].copy()
    sc.pp.normalize_total(lognorm)
    sc.pp.log1p(lognorm)
    x = lognorm.X[:, genes].toarray().astype(np.float64)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std, x.std(axis=0, ddof=1), rtol=1e-4)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda x: x.__setitem__((3, 5), np.nan), "NaN or infinite"),
        (lambda x: x.__setitem__((3, 5), np.inf), "NaN or infinite"),
        (lambda x: x.__setitem__((3, 5), -2), "negative"),
        (lambda x: x.__setitem__((3, 5), 0.5), "non-integer"),
        (lambda x: x.__setitem__((7, slice(None)), 0), "cells with no counts"),
    ],
)
def test_invalid_counts_raise_with_the_fix(counts, edit, message):
    x = counts.X.toarray()
    edit(x)
    with pytest.raises(ValueError, match=message) as error:
        scan_counts(sp.csr_matrix(x), source="adata.layers['counts']")
    assert "adata.layers['counts']" in str(error.value)


def test_genes_without_counts_pass_the_scan_with_a_count_of_zero(counts):
    x = counts.X.toarray()
    x[:, 11] = 0
    statistics = scan_counts(sp.csr_matrix(x))
    assert statistics.n_cells_per_gene[11] == 0 and statistics.normalized_mean[11] == 0


def test_genes_seen_in_fewer_than_three_cells_are_not_selected():
    adata = ac.datasets.simulate(400, 300, 4, random_state=2)
    x = adata.X.toarray()
    x[:, 5] = 0
    x[0, 5] = 500  # one cell with a huge count: extreme dispersion, no population structure
    stats = scan_counts(sp.csr_matrix(x))
    assert 5 not in select_top_genes(stats, 50)
    assert 5 in select_top_genes(stats, 50, min_cells=1)


def test_selected_counts_read_in_chunks_equal_the_dense_columns(counts, tmp_path):
    genes = np.array([5, 0, 17, 3])
    expected = counts.X[:, genes].toarray()
    np.testing.assert_array_equal(selected_counts(counts.X, genes, chunk_size=7), expected)
    counts.write_h5ad(tmp_path / "counts.h5ad")
    backed = ad.read_h5ad(tmp_path / "counts.h5ad", backed="r")
    result = selected_counts(backed.X, genes, chunk_size=64)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, expected)


def test_scaled_rows_and_projected_features_read_in_chunks_equal_the_dense_computation(counts, tmp_path):
    genes = np.arange(0, 200, 3)
    library = np.asarray(counts.X.sum(axis=1)).ravel()
    std = np.linspace(0.5, 2.0, len(genes))
    log = np.log1p(counts.X[:, genes].toarray() * 1000.0 / library[:, None])
    expected = np.minimum(log / std, 10)
    options = {"target_sum": 1000.0, "std": std}
    full = scaled_log_features(counts.X, library, genes, **options, chunk_size=64)
    np.testing.assert_allclose(full, expected, rtol=1e-6)
    # a sorted subset of rows spread over several chunks
    rows = np.array([0, 3, 63, 64, 65, 200, 599])
    np.testing.assert_array_equal(
        scaled_log_features(counts.X, library, genes, **options, rows=rows, chunk_size=64), full[rows]
    )
    # coordinates on given axes, without the cells x genes matrix, from memory or a backed file
    axes = np.random.default_rng(0).normal(size=(5, len(genes)))
    center = expected.mean(axis=0)
    counts.write_h5ad(tmp_path / "counts.h5ad")
    backed = ad.read_h5ad(tmp_path / "counts.h5ad", backed="r")
    for matrix in (counts.X, backed.X):
        projected = projected_log_features(matrix, library, genes, **options, center=center, axes=axes, chunk_size=64)
        assert projected.shape == (600, 5) and projected.dtype == np.float32
        np.testing.assert_allclose(projected, (expected - center) @ axes.T, rtol=1e-4, atol=1e-4)
    # each cell first shifted by its group's row
    shift = np.random.default_rng(1).normal(size=(3, len(genes)))
    groups = np.arange(600) % 3
    shifted = projected_log_features(
        counts.X, library, genes, **options, center=center, axes=axes, group_shift=shift, groups=groups, chunk_size=64
    )
    np.testing.assert_allclose(shifted, (expected - shift[groups] - center) @ axes.T, rtol=1e-4, atol=1e-4)


def test_sample_rows_takes_all_rows_up_to_the_limit_then_a_sorted_random_subset():
    np.testing.assert_array_equal(sample_rows(5, 5, np.random.default_rng(0)), np.arange(5))
    rows = sample_rows(1000, 100, np.random.default_rng(0))
    assert len(rows) == len(np.unique(rows)) == 100
    assert np.all(np.diff(rows) > 0) and rows.min() >= 0 and rows.max() < 1000
    np.testing.assert_array_equal(rows, sample_rows(1000, 100, np.random.default_rng(0)))  # the generator decides
    assert not np.array_equal(rows, sample_rows(1000, 100, np.random.default_rng(1)))
