"""Streaming checks and statistics over a count matrix, in memory or backed.

Every function here reads the matrix in row chunks, so a backed ``.h5ad`` is never loaded or
densified as a whole; in-memory and backed inputs go through the same code and give the same
numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from atlasclust._constants import GENE_FLAVORS
from atlasclust._validate import check_choice

#: Elements (rows x genes) read per chunk when a chunk is dense.
_CHUNK_ELEMENTS = 20_000_000


def _chunk_rows(n_vars: int) -> int:
    return int(np.clip(_CHUNK_ELEMENTS // max(n_vars, 1), 256, 10_000))


def sample_rows(n_obs: int, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Increasing row indices: all ``n_obs`` rows, or a random ``max_rows`` of them when there are more."""
    if n_obs <= max_rows:
        return np.arange(n_obs)
    return np.sort(rng.choice(n_obs, max_rows, replace=False))


def iter_row_chunks(matrix, *, chunk_size: int | None = None) -> Iterator[tuple[int, int, sp.csr_matrix]]:
    """Yield ``(start, stop, chunk)`` with each chunk as a CSR matrix of float64."""
    n_obs, n_vars = matrix.shape
    chunk_size = chunk_size or _chunk_rows(n_vars)
    for start in range(0, n_obs, chunk_size):
        stop = min(start + chunk_size, n_obs)
        chunk = matrix[start:stop]
        # float64 before CSR: scipy.sparse holds no float16
        chunk = sp.csr_matrix(chunk) if sp.issparse(chunk) else sp.csr_matrix(np.asarray(chunk, dtype=np.float64))
        yield start, stop, chunk.astype(np.float64)


@dataclass(frozen=True)
class CountStatistics:
    """What one streaming pass learns about a count matrix.

    Attributes
    ----------
    library_size
        Total counts of each cell over all genes.
    n_cells_per_gene
        Number of cells in which each gene is detected.
    normalized_mean
        Per-gene mean of library-size-normalised counts (each cell scaled to the median library).
    normalized_var
        Per-gene variance (``ddof=1``) of the same values.
    gene_total
        Total counts of each gene over all cells.
    log_share_sum
        Per-gene sum over cells of ``x log(x / library)``, the one term of a gene's Poisson
        deviance (:func:`poisson_deviance`) that needs every count.
    """

    library_size: np.ndarray
    n_cells_per_gene: np.ndarray
    normalized_mean: np.ndarray
    normalized_var: np.ndarray
    gene_total: np.ndarray
    log_share_sum: np.ndarray

    @property
    def median_library_size(self) -> float:
        """Median library size, the target of the normalisation."""
        return float(np.median(self.library_size))


class NotCountsError(ValueError):
    """The matrix given as counts holds negative or non-integer values."""


def _check_chunk(values: np.ndarray, *, source: str) -> None:
    if not np.all(np.isfinite(values)):
        msg = f"{source} contains NaN or infinite values. Remove or repair those entries before clustering."
        raise ValueError(msg)
    if np.any(values < 0):
        msg = (
            f"{source} contains negative values, so it does not hold raw counts. "
            "Pass the layer that holds raw counts, e.g. `layer='counts'`."
        )
        raise NotCountsError(msg)
    if np.any(values != np.round(values)):
        msg = (
            f"{source} contains non-integer values (normalised or log-transformed data?). "
            "These methods model raw counts: pass the layer that holds them, e.g. `layer='counts'`."
        )
        raise NotCountsError(msg)


def scan_counts(matrix, *, source: str = "adata.X", chunk_size: int | None = None) -> CountStatistics:
    """Validate raw counts and compute library sizes and normalised per-gene moments in one pass.

    Parameters
    ----------
    matrix
        Cells x genes counts: dense, scipy sparse or a backed anndata dataset.
    source
        How the user refers to ``matrix``, used in error messages.
    chunk_size
        Rows read at a time.

    Returns
    -------
    The statistics; raises :class:`ValueError` naming the problem and the fix when the matrix is
    not a valid count matrix (NaN/inf, negative, non-integer, cells without counts). Genes without
    counts are allowed (``n_cells_per_gene`` is 0): ``choose_genes`` leaves them out.
    """
    n_obs, n_vars = matrix.shape
    library_size = np.zeros(n_obs, dtype=np.float64)
    n_cells = np.zeros(n_vars, dtype=np.int64)
    # sums of x / library and (x / library)^2: the median is only known at the end, and
    # normalised counts are x * median / library, so the moments factor.
    sum_scaled = np.zeros(n_vars, dtype=np.float64)
    sum_scaled_sq = np.zeros(n_vars, dtype=np.float64)
    gene_total = np.zeros(n_vars, dtype=np.float64)
    log_share_sum = np.zeros(n_vars, dtype=np.float64)
    for start, stop, chunk in iter_row_chunks(matrix, chunk_size=chunk_size):
        _check_chunk(chunk.data, source=source)
        chunk.eliminate_zeros()
        lib = np.asarray(chunk.sum(axis=1)).ravel()
        library_size[start:stop] = lib
        if np.any(lib == 0):
            msg = (
                f"{source} has cells with no counts (e.g. row {start + int(np.argmax(lib == 0))}). "
                "Remove them first, e.g. `sc.pp.filter_cells(adata, min_counts=1)`."
            )
            raise ValueError(msg)
        n_cells += np.bincount(chunk.indices, minlength=n_vars)
        # each stored count's share of its cell's library, once, for every per-gene sum below
        share = chunk.data / np.repeat(lib, np.diff(chunk.indptr))
        sum_scaled += np.bincount(chunk.indices, weights=share, minlength=n_vars)
        sum_scaled_sq += np.bincount(chunk.indices, weights=share * share, minlength=n_vars)
        gene_total += np.bincount(chunk.indices, weights=chunk.data, minlength=n_vars)
        log_share_sum += np.bincount(chunk.indices, weights=chunk.data * np.log(share), minlength=n_vars)
    median = float(np.median(library_size))
    mean = median * sum_scaled / n_obs
    second_moment = median**2 * sum_scaled_sq / n_obs
    var = np.maximum(second_moment - mean**2, 0.0) * n_obs / max(n_obs - 1, 1)
    return CountStatistics(library_size, n_cells, mean, var, gene_total, log_share_sum)


def seurat_dispersion_rank(statistics: CountStatistics, *, n_bins: int = 20) -> np.ndarray:
    """Normalised dispersion of each gene, as scanpy's ``flavor="seurat"`` computes it.

    This is the same computation as :func:`scanpy.pp.highly_variable_genes` with the Seurat
    flavour on median-normalised, log1p data, done from streamed moments so that it also works
    on backed data (a test checks it against scanpy).
    """
    mean = statistics.normalized_mean.copy()
    mean[mean == 0] = 1e-12
    dispersion = statistics.normalized_var / mean
    dispersion[dispersion == 0] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = np.log(dispersion)
    frame = pd.DataFrame({"means": np.log1p(mean), "dispersions": dispersion})
    frame["mean_bin"] = pd.cut(frame["means"], bins=n_bins)
    stats = frame.groupby("mean_bin", observed=True)["dispersions"].agg(avg="mean", dev="std")
    # a bin with one gene has no std: scanpy gives such genes a normalised dispersion of 1
    single = stats["dev"].isnull()
    stats.loc[single, "dev"] = stats.loc[single, "avg"]
    stats.loc[single, "avg"] = 0
    per_gene = stats.loc[frame["mean_bin"]].to_numpy()
    return (frame["dispersions"].to_numpy() - per_gene[:, 0]) / per_gene[:, 1]


def poisson_deviance(statistics: CountStatistics) -> np.ndarray:
    """Each gene's Poisson deviance from a constant share of every cell's counts (Townes et al., 2019).

    A gene whose counts follow the library sizes has a deviance near 0; one that is high in some
    cells and absent from others, a large one. Computed from :func:`scan_counts`' one pass as
    ``2 (sum_c x log(x / n_c) - X log(X / N))`` (``n_c`` a cell's library size, ``X`` the gene's
    total, ``N`` all counts), since the term ``sum_c (x - n_c X / N)`` is 0. It ranks genes as
    the binomial deviance of scry's ``devianceFeatureSelection`` does (counts are a small share of
    each library). Genes without counts get 0.
    """
    total = statistics.gene_total
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_term = np.where(total > 0, total * np.log(total / total.sum()), 0.0)
    return 2.0 * (statistics.log_share_sum - expected_term)


def select_top_genes(
    statistics: CountStatistics, n_top_genes: int, *, flavor: str = "seurat", min_cells: int = 3
) -> np.ndarray:
    """Indices (sorted) of the ``n_top_genes`` genes ranked first by ``flavor``.

    ``"seurat"``: the most variable genes by normalised dispersion (:func:`seurat_dispersion_rank`);
    ``"deviance"``: the largest :func:`poisson_deviance`. Genes detected in fewer than ``min_cells``
    cells come last: their dispersion is extreme but carries no population structure, and once
    z-scored they dominate the network input (the usual ``sc.pp.filter_genes(min_cells=3)``
    before HVG selection does the same).
    """
    check_choice("flavor", flavor, GENE_FLAVORS)
    score = seurat_dispersion_rank(statistics) if flavor == "seurat" else poisson_deviance(statistics)
    score = np.nan_to_num(score, nan=-np.inf)
    score[statistics.n_cells_per_gene < min_cells] = -np.inf
    order = np.argsort(-score, kind="stable")
    return np.sort(order[:n_top_genes])


class LogMoments(NamedTuple):
    """Per-gene moments of the log-normalised counts (see :func:`log_normalized_moments`)."""

    mean: np.ndarray
    std: np.ndarray
    #: per-group means (``groups x genes``), or ``None`` when no groups were given
    group_mean: np.ndarray | None = None


def log_normalized_moments(
    matrix,
    library_size: np.ndarray,
    gene_index: np.ndarray,
    *,
    target_sum: float,
    groups: np.ndarray | None = None,
    n_groups: int = 0,
    chunk_size: int | None = None,
) -> LogMoments:
    """Per-gene mean and std (``ddof=1``) of ``log1p(x * target_sum / library)`` on the chosen genes.

    With ``groups`` (each cell's group code, ``0 <= code < n_groups``) the same pass also gives each
    group's per-gene means; a group without cells gets zeros.
    """
    n_obs = matrix.shape[0]
    total = np.zeros(len(gene_index))
    total_sq = np.zeros(len(gene_index))
    group_total = None if groups is None else np.zeros((n_groups, len(gene_index)))
    for start, stop, chunk in iter_row_chunks(matrix, chunk_size=chunk_size):
        sub = chunk[:, gene_index]
        sub = sp.diags(target_sum / library_size[start:stop]) @ sub
        sub.data = np.log1p(sub.data)
        total += np.asarray(sub.sum(axis=0)).ravel()
        total_sq += np.asarray(sub.multiply(sub).sum(axis=0)).ravel()
        if group_total is not None:
            codes = np.asarray(groups[start:stop]).ravel()
            membership = sp.csr_matrix(
                (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_groups, len(codes))
            )
            group_total += np.asarray((membership @ sub).todense())
    mean = total / n_obs
    var = np.maximum(total_sq / n_obs - mean**2, 0.0) * n_obs / max(n_obs - 1, 1)
    std = np.sqrt(var)
    std[std == 0] = 1.0
    group_mean = None
    if group_total is not None:
        sizes = np.bincount(np.asarray(groups).ravel(), minlength=n_groups)
        group_mean = group_total / np.maximum(sizes, 1)[:, None]
    return LogMoments(mean, std, group_mean)


def scaled_log_features(
    matrix,
    library_size: np.ndarray,
    gene_index: np.ndarray,
    *,
    target_sum: float,
    std: np.ndarray,
    max_value: float = 10.0,
    rows: np.ndarray | None = None,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Dense float32 ``log1p(x * target_sum / library) / std`` on the chosen genes, clipped at ``max_value``.

    Like ``sc.pp.scale(zero_center=False, max_value=10)`` after ``normalize_total`` and ``log1p``
    (scRCL's spatial preprocessing), with the statistics given so new cells get the same transform.
    ``rows`` (sorted indices) keeps only those cells.
    """
    n_rows = matrix.shape[0] if rows is None else len(rows)
    features = np.empty((n_rows, len(gene_index)), dtype=np.float32)
    filled = 0
    for start, stop, chunk in iter_row_chunks(matrix, chunk_size=chunk_size):
        library = library_size[start:stop]
        if rows is not None:
            local = rows[(rows >= start) & (rows < stop)] - start
            chunk, library = chunk[local], library[local]
        sub = sp.diags(target_sum / library) @ chunk[:, gene_index]
        sub.data = np.log1p(sub.data)
        features[filled : filled + sub.shape[0]] = np.minimum(sub.toarray() / std, max_value)
        filled += sub.shape[0]
    return features


def projected_log_features(
    matrix,
    library_size: np.ndarray,
    gene_index: np.ndarray,
    *,
    target_sum: float,
    std: np.ndarray,
    center: np.ndarray,
    axes: np.ndarray,
    group_shift: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Float32 coordinates ``(scaled_log_features - center) @ axes.T`` of every cell, read in row chunks.

    Only ``cells x len(axes)`` is kept, never the ``cells x genes`` matrix. With ``group_shift``
    (``groups x genes``) and ``groups`` (each cell's group code), each cell's features are first
    shifted by its group's row.
    """
    coordinates = np.empty((matrix.shape[0], len(axes)), dtype=np.float32)
    for start, stop, chunk in iter_row_chunks(matrix, chunk_size=chunk_size):
        features = scaled_log_features(chunk, library_size[start:stop], gene_index, target_sum=target_sum, std=std)
        if group_shift is not None:
            features -= group_shift[groups[start:stop]]
        coordinates[start:stop] = (features - center) @ axes.T
    return coordinates


def selected_counts(matrix, gene_index: np.ndarray, *, chunk_size: int | None = None) -> np.ndarray:
    """Dense float32 counts of the chosen genes, read in chunks of rows (scRCL's reference input)."""
    counts = np.empty((matrix.shape[0], len(gene_index)), dtype=np.float32)
    for start, stop, chunk in iter_row_chunks(matrix, chunk_size=chunk_size):
        counts[start:stop] = chunk[:, gene_index].toarray()
    return counts
