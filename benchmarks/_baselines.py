"""The baselines' scanpy pipeline, shared by the benchmark scripts: scaled PCA, kNN graphs, Leiden at K, spatial smoothing.

As in ``../shared/data/baselines.md``; the accuracy benchmark's baseline columns are built from these.
"""

from __future__ import annotations

import numpy as np


def scaled_pca(adata, *, n_top_genes: int | None, n_comps: int, seed: int) -> None:
    """The baselines' scanpy pipeline, in place: ``obsm["X_pca"]`` of the scaled log expression.

    Genes in fewer than 3 cells dropped, counts normalised to 10,000 and ``log1p``-transformed, the
    ``n_top_genes`` most variable genes kept (``None``: all), scaled (clipped at 10), ``n_comps`` components.
    """
    import scanpy as sc

    sc.pp.filter_genes(adata, min_cells=3)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    if n_top_genes is not None:
        sc.pp.highly_variable_genes(adata, n_top_genes=min(n_top_genes, adata.n_vars), subset=True)
    sc.pp.scale(adata, max_value=10)
    sc.pp.pca(adata, n_comps=min(n_comps, adata.n_obs - 1, adata.n_vars - 1), random_state=seed)


def knn_graph(matrix: np.ndarray):
    """An AnnData of ``matrix``'s rows whose ``obsp["connectivities"]`` is their kNN graph (15 neighbours).

    Weighted as ``sc.pp.neighbors`` weights it (:func:`atlasclust.data.knn_connectivities`); pass it
    to :func:`leiden_with_k` with ``adjacency=graph.obsp["connectivities"]``.
    """
    import anndata as ad

    from atlasclust.data import knn_connectivities

    graph = ad.AnnData(obs={"row": np.arange(len(matrix))})
    graph.obsp["connectivities"] = knn_connectivities(np.asarray(matrix, dtype=np.float32))
    return graph


def leiden_on_graph(graph, k: int, seed: int) -> np.ndarray:
    """:func:`leiden_with_k` on a :func:`knn_graph`."""
    return leiden_with_k(graph, k, seed, adjacency=graph.obsp["connectivities"])


def leiden_with_k(adata, k: int, seed: int, neighbors_key: str | None = None, adjacency=None) -> np.ndarray:
    """Leiden at the resolution (bisection on [0.01, 5]) whose cluster count is closest to k.

    ``adjacency`` (a weighted graph of the cells) replaces the kNN graph of ``neighbors_key``.
    """
    import scanpy as sc

    low, high, best = 0.01, 5.0, None
    for _ in range(20):
        resolution = (low + high) / 2
        sc.tl.leiden(
            adata, resolution=resolution, flavor="igraph", n_iterations=2, random_state=seed,
            neighbors_key=neighbors_key, adjacency=adjacency, key_added="_k",
        )  # fmt: skip
        n = adata.obs["_k"].nunique()
        if best is None or abs(n - k) < abs(best[0] - k):
            best = (n, adata.obs["_k"].to_numpy().copy())
        if n == k:
            break
        low, high = (resolution, high) if n < k else (low, resolution)
    return best[1]


def spatial_mean(adata, *, n_neighbors: int, times: int) -> np.ndarray:
    """PCA scores with each spot replaced ``times`` times by the mean of its nearest other spots."""
    import scipy.sparse as sp
    from sklearn.neighbors import NearestNeighbors

    neighbors = NearestNeighbors(n_neighbors=n_neighbors).fit(adata.obsm["spatial"]).kneighbors(return_distance=False)
    n = len(neighbors)
    rows = np.repeat(np.arange(n), n_neighbors)
    mean = sp.csr_matrix((np.full(rows.size, 1 / n_neighbors), (rows, neighbors.ravel())), shape=(n, n))
    scores = adata.obsm["X_pca"]
    for _ in range(times):
        scores = mean @ scores
    return scores
