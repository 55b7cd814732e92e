"""Simulated labelled counts: negative binomial groups with varied library sizes."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from atlasclust._docs import doc_params

_CHUNK_CELLS = 20_000


@doc_params()
def simulate(
    n_cells: int = 1000,
    n_genes: int = 500,
    n_groups: int = 5,
    *,
    n_markers: int = 20,
    fold_change: float = 4.0,
    mean_counts: float = 0.5,
    dispersion: float = 0.5,
    library_size_sd: float = 0.4,
    random_state: int = 0,
) -> ad.AnnData:
    """Simulate raw counts of ``n_groups`` cell types.

    Each gene has a base mean drawn from a gamma distribution; each group up-regulates its own
    ``n_markers`` genes by ``fold_change``. Cells get log-normal library-size factors, and counts are
    negative binomial with the given ``dispersion`` (variance ``mu + dispersion * mu**2``).

    Parameters
    ----------
    n_cells
        Number of cells.
    n_genes
        Number of genes (at least ``n_groups * n_markers``).
    n_groups
        Number of cell types.
    n_markers
        Marker genes per group.
    fold_change
        Up-regulation of a group's markers.
    {doc_count_noise}

    Returns
    -------
    AnnData with sparse CSR counts (float32) in ``X`` and the truth in ``obs["cell_type"]``
    (categorical ``'type_0'``, …). Every cell and gene has at least one count.
    """
    _check_marker_room(n_genes, n_groups, n_markers)
    rng = np.random.default_rng(random_state)
    groups = rng.integers(n_groups, size=n_cells)
    counts = _group_counts(
        rng,
        groups,
        n_genes,
        n_markers=n_markers,
        fold_change=fold_change,
        mean_counts=mean_counts,
        dispersion=dispersion,
        library_size_sd=library_size_sd,
    )
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical([f"type_{g}" for g in groups], categories=[f"type_{g}" for g in range(n_groups)])},
        index=_names("cell", n_cells),
    )
    var = pd.DataFrame(index=_names("gene", n_genes))
    return ad.AnnData(X=counts, obs=obs, var=var)


@doc_params()
def simulate_tissue(
    n_rows: int = 40,
    n_cols: int = 40,
    n_layers: int = 4,
    n_genes: int = 300,
    *,
    n_markers: int = 20,
    fold_change: float = 1.5,
    mean_counts: float = 0.5,
    dispersion: float = 0.5,
    library_size_sd: float = 0.4,
    random_state: int = 0,
) -> ad.AnnData:
    """Simulate a layered tissue: spots on a grid, layers as wavy horizontal bands.

    Layers differ only weakly in expression (``fold_change`` on their own markers), so expression
    alone separates them poorly while the spot coordinates make the layers plain.

    Parameters
    ----------
    n_rows, n_cols
        Grid of spots.
    n_layers
        Number of layers (bands along the rows).
    n_genes
        Number of genes (at least ``n_layers * n_markers``).
    n_markers
        Marker genes per layer.
    fold_change
        Up-regulation of a layer's markers.
    {doc_count_noise}

    Returns
    -------
    AnnData with sparse counts in ``X``, coordinates in ``obsm["spatial"]`` and the truth in
    ``obs["layer"]`` (categorical ``'layer_0'``, …).
    """
    _check_marker_room(n_genes, n_layers, n_markers)
    rng = np.random.default_rng(random_state)
    row, col = np.divmod(np.arange(n_rows * n_cols), n_cols)
    wave = 0.06 * n_rows * np.sin(2 * np.pi * col / n_cols)
    layers = np.clip(((row + wave) / n_rows * n_layers).astype(int), 0, n_layers - 1)
    counts = _group_counts(
        rng,
        layers,
        n_genes,
        n_markers=n_markers,
        fold_change=fold_change,
        mean_counts=mean_counts,
        dispersion=dispersion,
        library_size_sd=library_size_sd,
    )
    names = [f"layer_{g}" for g in range(n_layers)]
    obs = pd.DataFrame(
        {"layer": pd.Categorical([names[g] for g in layers], categories=names)},
        index=_names("spot", len(layers)),
    )
    var = pd.DataFrame(index=_names("gene", n_genes))
    spatial = np.column_stack([col, row]).astype(np.float64)
    return ad.AnnData(X=counts, obs=obs, var=var, obsm={"spatial": spatial})


def _names(prefix: str, n: int) -> pd.Index:
    # object dtype: with pandas 3 a list of str becomes a string array, which anndata 0.12 refuses to write
    return pd.Index([f"{prefix}_{i}" for i in range(n)], dtype=object)


def _check_marker_room(n_genes: int, n_groups: int, n_markers: int) -> None:
    if n_genes < n_groups * n_markers:
        msg = f"n_genes={n_genes} must be at least n_groups * n_markers = {n_groups * n_markers}."
        raise ValueError(msg)


def _group_counts(
    rng: np.random.Generator,
    groups: np.ndarray,
    n_genes: int,
    *,
    n_markers: int,
    fold_change: float,
    mean_counts: float,
    dispersion: float,
    library_size_sd: float,
) -> sp.csr_matrix:
    """NB counts (cells x genes, CSR float32) where each group up-regulates its own markers; no empty cell or gene."""
    n_cells, n_groups = len(groups), int(groups.max()) + 1
    base = rng.gamma(shape=1.0, scale=mean_counts, size=n_genes) + 0.02
    means = np.tile(base, (n_groups, 1))
    for group in range(n_groups):
        markers = slice(group * n_markers, (group + 1) * n_markers)
        means[group, markers] *= fold_change
    library = np.exp(rng.normal(0.0, library_size_sd, size=n_cells))
    # NB as a gamma-Poisson mixture, drawn in chunks of cells so that 10^6 cells never sit densely in memory
    chunks = []
    for start in range(0, n_cells, _CHUNK_CELLS):
        rows = slice(start, start + _CHUNK_CELLS)
        mu = means[groups[rows]] * library[rows, None]
        chunks.append(sp.csr_matrix(rng.poisson(rng.gamma(1.0 / dispersion, mu * dispersion)).astype(np.float32)))
    counts = sp.vstack(chunks, format="csr")
    empty_cells = np.flatnonzero(counts.getnnz(axis=1) == 0)
    fill = sp.csr_matrix(
        (np.ones(len(empty_cells), np.float32), (empty_cells, np.full(len(empty_cells), rng.integers(n_genes)))),
        shape=counts.shape,
    )
    counts = counts + fill
    empty_genes = np.flatnonzero(counts.getnnz(axis=0) == 0)
    fill = sp.csr_matrix(
        (np.ones(len(empty_genes), np.float32), (np.full(len(empty_genes), rng.integers(n_cells)), empty_genes)),
        shape=counts.shape,
    )
    return (counts + fill).tocsr()
