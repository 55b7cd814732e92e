"""Cell and gene graphs, sparse from end to end: no N x N dense array is ever formed."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

from atlasclust._constants import GRAPH_NORMALIZATIONS
from atlasclust._validate import check_choice


def binary_symmetric(graph: sp.spmatrix, *, name: str = "graph") -> sp.csr_matrix:
    """Union-symmetrised binary adjacency (float32 CSR) without self loops."""
    graph = sp.csr_matrix(graph, dtype=np.float32)
    if graph.shape[0] != graph.shape[1]:
        msg = f"{name} must be square (cells x cells), got shape {graph.shape}."
        raise ValueError(msg)
    if graph.nnz and not np.all(np.isfinite(graph.data)):
        msg = f"{name} contains NaN or infinite weights."
        raise ValueError(msg)
    graph.data = (graph.data != 0).astype(np.float32)
    graph.eliminate_zeros()
    graph = graph.maximum(graph.T).tocsr()
    graph.setdiag(0)
    graph.eliminate_zeros()
    graph.sort_indices()
    return graph


def expression_graph(
    coordinates: np.ndarray, *, n_neighbors: int = 15, metric: str = "euclidean", random_state: int = 0
) -> sp.csr_matrix:
    """Binary kNN graph of cells from ``coordinates`` (e.g. PCA), as :func:`scanpy.pp.neighbors` builds it.

    scanpy's connectivities (:func:`neighbor_connectivities`) are binarised: any weight above zero
    is an edge. ``metric`` is any of scikit-learn's and scanpy's.
    """
    return binary_symmetric(
        neighbor_connectivities(coordinates, n_neighbors=n_neighbors, metric=metric, random_state=random_state)
    )


def neighbor_connectivities(
    coordinates: np.ndarray, *, n_neighbors: int = 15, metric: str = "euclidean", random_state: int = 0
) -> sp.csr_matrix:
    """The weighted kNN graph of ``coordinates`` that :func:`scanpy.pp.neighbors` builds (its ``connectivities``).

    Where scanpy searches neighbours exactly (:data:`EXACT_KNN_MAX_CELLS`), the same weights come
    from :func:`knn_connectivities`, without UMAP's compiling in every new process; above, from
    :func:`scanpy.pp.neighbors` itself (pynndescent).
    """
    n_obs = len(coordinates)
    if n_obs < (EXACT_KNN_MAX_CELLS if metric == "euclidean" else EXACT_KNN_MAX_CELLS // 2):
        return knn_connectivities(coordinates, n_neighbors=n_neighbors, metric=metric)
    holder = ad.AnnData(obs=pd.DataFrame(index=np.arange(n_obs).astype(str)), obsm={"X_coords": coordinates})
    with sc.settings.verbosity.override("warning"):  # an internal step: scanpy's "computing neighbors" would mislead
        sc.pp.neighbors(
            holder,
            n_neighbors=min(n_neighbors, n_obs - 1),
            use_rep="X_coords",
            metric=metric,
            random_state=random_state,
        )
    return sp.csr_matrix(holder.obsp["connectivities"])


#: Cells below which scanpy's ``pp.neighbors`` searches neighbours exactly (scikit-learn's brute force)
#: for the euclidean metric, and half as many for the others; above, pynndescent approximates them.
EXACT_KNN_MAX_CELLS = 8192

#: UMAP's tolerance of its bandwidth search and floor of a cell's bandwidth (share of its mean distance).
_BANDWIDTH_TOLERANCE = 1e-5
_MIN_BANDWIDTH_SCALE = 1e-3


def knn_connectivities(coordinates: np.ndarray, *, n_neighbors: int = 15, metric: str = "euclidean") -> sp.csr_matrix:
    """Exact kNN graph of cells weighted as :func:`scanpy.pp.neighbors` weights it (UMAP's fuzzy union).

    The same ``connectivities`` as ``sc.pp.neighbors(transformer="sklearn")`` (to float32 rounding):
    each cell's ``n_neighbors - 1`` nearest other cells get ``exp(-(d - rho) / sigma)``, ``rho`` its
    distance to the nearest, ``sigma`` such that the weights sum to ``log2(n_neighbors)``; then the
    fuzzy union ``A + A.T - A * A.T``. Written out in numpy because UMAP compiles its numba kernels
    in every new Python process, 10 to 25 s on two cores: longer than the whole start on small data.
    """
    n_obs = len(coordinates)
    k = min(n_neighbors, n_obs - 1)
    distances, indices = _exact_neighbors(coordinates, k, metric=metric)
    distances = distances.astype(np.float32)
    sigma, rho = _fuzzy_bandwidths(distances, k)
    excess = distances - rho[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        weights = np.exp(-(excess / sigma[:, None]), dtype=np.float32)
    weights = np.where((excess <= 0) | (sigma[:, None] == 0), np.float32(1), weights)
    weights[indices == np.arange(n_obs)[:, None]] = 0  # no self loops
    graph = sp.coo_matrix((weights.ravel(), (np.repeat(np.arange(n_obs), k), indices.ravel())), shape=(n_obs, n_obs))
    graph.eliminate_zeros()
    transpose = graph.transpose()
    union = (graph + transpose - graph.multiply(transpose)).tocsr()
    union.eliminate_zeros()
    return union


def _exact_neighbors(coordinates: np.ndarray, k: int, *, metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of each row's ``k`` nearest rows, itself usually first, as scanpy finds them exactly.

    scanpy's brute-force transformer returns ``k + 1`` and keeps the first ``k``: among tied rows
    (duplicates) that order, not ``k``'s, decides which are kept.
    """
    search = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric=metric).fit(coordinates)
    distances, indices = search.kneighbors(coordinates)
    # float32 rounding leaves a row's distance to itself slightly above zero (UMAP would take it as the
    # nearest neighbour's); scanpy zeroes the diagonal in place, in the very array its weights read
    distances[indices == np.arange(len(coordinates))[:, None]] = 0
    return distances[:, :k], indices[:, :k]


def _fuzzy_bandwidths(distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """UMAP's ``smooth_knn_dist`` for all cells at once, in float32 as UMAP computes it: ``(sigma, rho)``."""
    target = np.log2(k)
    positive = np.where(distances > 0, distances, np.inf)
    rho = positive.min(axis=1)
    rho = np.where(np.isfinite(rho), rho, 0).astype(np.float32)
    low = np.zeros(len(distances), dtype=np.float32)
    high = np.full(len(distances), np.inf, dtype=np.float32)
    mid = np.ones(len(distances), dtype=np.float32)
    searching = np.ones(len(distances), dtype=bool)
    excess = distances[:, 1:] - rho[:, None]
    for _ in range(64):
        with np.errstate(divide="ignore", over="ignore"):
            terms = np.where(excess > 0, np.exp(-(excess / mid[:, None]), dtype=np.float32), np.float32(1))
        total = np.cumsum(terms, axis=1, dtype=np.float32)[:, -1]  # in order, as UMAP's loop adds them
        searching &= np.abs(total.astype(np.float64) - target) >= _BANDWIDTH_TOLERANCE
        if not searching.any():
            break
        above = searching & (total > target)
        below = searching & ~(total > target)
        high[above] = mid[above]
        low[below] = mid[below]
        mid = np.where(above | (below & np.isfinite(high)), (low + high) / np.float32(2), mid)
        mid = np.where(below & ~np.isfinite(high), mid * np.float32(2), mid)
    floor = np.where(rho > 0, distances.mean(axis=1), distances.mean()).astype(np.float32) * _MIN_BANDWIDTH_SCALE
    return np.maximum(mid, floor), rho


def check_coordinates(coordinates, *, key: str, n_obs: int) -> np.ndarray:
    """``obsm[key]`` as a float array of ``n_obs`` rows and 2 or 3 finite columns, or a clear error."""
    coordinates = np.asarray(coordinates, dtype=np.float64)
    if coordinates.ndim != 2 or coordinates.shape[0] != n_obs or coordinates.shape[1] not in (2, 3):
        msg = f"obsm[{key!r}] must hold 2D or 3D coordinates (cells x 2 or cells x 3), got shape {coordinates.shape}."
        raise ValueError(msg)
    if not np.all(np.isfinite(coordinates)):
        msg = f"obsm[{key!r}] contains NaN or infinite coordinates; remove those spots first."
        raise ValueError(msg)
    return coordinates


def spatial_graph(coordinates: np.ndarray, *, n_neighbors: int = 15, groups: np.ndarray | None = None) -> sp.csr_matrix:
    """Binary kNN graph of spots from their coordinates (KD-tree), symmetrised by union.

    With ``groups`` (each spot's slice), spots are joined only within their own group: slices
    share a coordinate frame, but a spot of one is no neighbour of a spot of another.
    """
    if groups is not None:
        return _within_groups(spatial_graph, coordinates, groups, n_neighbors=n_neighbors)
    # each spot is usually its own first neighbour; dropping the diagonal removes it
    return binary_symmetric(_knn_matrix(coordinates, coordinates, n_neighbors + 1, algorithm="kd_tree"))


def _within_groups(build, coordinates: np.ndarray, groups: np.ndarray, **options) -> sp.csr_matrix:
    """``build(coordinates of a group, **options)`` for each group, assembled block-diagonally in spot order."""
    groups = np.asarray(groups)
    rows, columns = [], []
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        block = build(coordinates[members], **options).tocoo()
        rows.append(members[block.row])
        columns.append(members[block.col])
    rows, columns = np.concatenate(rows), np.concatenate(columns)
    n_obs = len(coordinates)
    graph = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, columns)), shape=(n_obs, n_obs))
    graph.sort_indices()
    return graph


def mutual_neighbors(coordinates: np.ndarray, groups: np.ndarray, *, n_neighbors: int) -> sp.csr_matrix:
    """Binary symmetric graph joining cells of different groups that are mutual nearest neighbours.

    For each pair of groups, cell ``i`` of one and cell ``j`` of the other are joined when ``j`` is
    among the ``n_neighbors`` cells of ``j``'s group nearest to ``i`` (in ``coordinates``, e.g.
    principal components) and ``i`` among the ``n_neighbors`` of ``i``'s group nearest to ``j``:
    the mutual nearest neighbours that batch-correction methods pair across batches.
    """
    groups = np.asarray(groups)
    members = [np.flatnonzero(groups == group) for group in np.unique(groups)]
    # one search index per group, queried by every other group
    searches = [_knn_search(coordinates[one], n_neighbors) for one in members]
    rows, columns = [], []
    for first, one in enumerate(members):
        for second in range(first + 1, len(members)):
            other = members[second]
            forward = _knn_query(searches[second], coordinates[one])  # one x other
            backward = _knn_query(searches[first], coordinates[other])  # other x one
            mutual = forward.multiply(backward.T).tocoo()
            rows.append(one[mutual.row])
            columns.append(other[mutual.col])
    n_obs = len(coordinates)
    rows = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    columns = np.concatenate(columns) if columns else np.empty(0, dtype=np.int64)
    graph = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, columns)), shape=(n_obs, n_obs))
    return binary_symmetric(graph)


def _knn_matrix(
    reference: np.ndarray, queries: np.ndarray, n_neighbors: int, *, algorithm: str = "auto"
) -> sp.csr_matrix:
    """Binary ``queries x reference`` matrix of each query's nearest reference points (scikit-learn's ``algorithm``)."""
    return _knn_query(_knn_search(reference, n_neighbors, algorithm=algorithm), queries)


def _knn_search(reference: np.ndarray, n_neighbors: int, *, algorithm: str = "auto") -> NearestNeighbors:
    """A nearest-neighbour index of ``reference`` answering ``n_neighbors`` (at most all its points)."""
    return NearestNeighbors(n_neighbors=min(n_neighbors, len(reference)), algorithm=algorithm).fit(reference)


def _knn_query(search: NearestNeighbors, queries: np.ndarray) -> sp.csr_matrix:
    """Binary ``queries x reference`` matrix of each query's nearest points in ``search``'s reference."""
    neighbors = search.kneighbors(queries, return_distance=False)
    k = neighbors.shape[1]
    rows = np.repeat(np.arange(len(queries)), k)
    shape = (len(queries), search.n_samples_fit_)
    return sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, neighbors.ravel())), shape=shape)


def spatial_majority_vote(
    labels: np.ndarray, coordinates: np.ndarray, *, n_neighbors: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Each spot takes the most common label among itself and its ``n_neighbors`` nearest spots.

    With ``groups`` (each spot's slice), only spots of the same group vote.
    """
    labels = np.asarray(labels)
    if groups is not None:
        groups = np.asarray(groups)
        smoothed = labels.copy()
        for group in np.unique(groups):
            members = np.flatnonzero(groups == group)
            smoothed[members] = spatial_majority_vote(labels[members], coordinates[members], n_neighbors=n_neighbors)
        return smoothed
    k = min(n_neighbors + 1, len(labels))
    _, neighbors = NearestNeighbors(n_neighbors=k, algorithm="kd_tree").fit(coordinates).kneighbors(coordinates)
    names, codes = np.unique(labels, return_inverse=True)
    votes = np.zeros((len(labels), len(names)), dtype=np.int32)
    np.add.at(votes, (np.repeat(np.arange(len(labels)), k), codes[neighbors.ravel()]), 1)
    # ties keep the spot's own label when it is among the winners
    own = votes[np.arange(len(labels)), codes] == votes.max(axis=1)
    return np.where(own, labels, names[votes.argmax(axis=1)])


def gene_graph(descriptors: np.ndarray, *, n_neighbors: int = 5) -> sp.csr_matrix:
    """Directed kNN graph of genes (each row: the gene itself and its nearest genes), as in scRCL."""
    k = min(n_neighbors, len(descriptors))
    graph = NearestNeighbors(n_neighbors=k).fit(descriptors).kneighbors_graph(descriptors, mode="connectivity")
    graph = sp.csr_matrix(graph, dtype=np.float32)
    graph.setdiag(1)  # the gene itself, even when duplicates tie with it
    graph.sort_indices()
    return graph


def gcn_normalize(adjacency: sp.spmatrix, *, normalization: str = "symmetric") -> sp.csr_matrix:
    """The GCN propagation matrix of ``adjacency`` (self loops added where missing).

    ``normalization="symmetric"`` gives ``D^-1/2 (A + I) D^-1/2``, ``"mean"`` gives ``D^-1 (A + I)``
    (rows sum to one), where ``D`` holds the degrees of ``A + I``.
    """
    check_choice("normalization", normalization, GRAPH_NORMALIZATIONS)
    adjacency = sp.csr_matrix(adjacency, dtype=np.float32)
    adjacency = adjacency.tolil()
    adjacency.setdiag(1)
    adjacency = adjacency.tocsr()
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    if normalization == "mean":
        normalized = (sp.diags(1 / degree).astype(np.float32) @ adjacency).tocsr()
    else:
        scale = sp.diags(1 / np.sqrt(degree)).astype(np.float32)
        normalized = (scale @ adjacency @ scale).tocsr()
    normalized.sort_indices()
    return normalized
