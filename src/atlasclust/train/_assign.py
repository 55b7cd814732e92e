"""Cluster centres on a learned embedding (k-means, merged k-means or Leiden), and training history, for both methods."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from sklearn.cluster import AgglomerativeClustering, KMeans

from atlasclust.data import knn_connectivities, neighbor_connectivities, sample_rows

#: Resolution of the modularity that ``"auto"`` compares. At 1 (Newman's), modularity shares
#: k-means' taste for clusters of equal size and keeps k-means where it cut Baron's beta cells
#: and Zeisel's oligodendrocytes; lower values weigh that less. Chosen once from 1, 0.5, 0.25
#: and 0 on BGFormer's pre-trained embeddings of the 12 shared datasets (seeds 0 and 1), with the
#: Seurat genes of the time; the Accuracy page ("Where the DEC centres start") has those numbers
#: beside today's (benchmarks/results/first_partition.md).
AUTO_RESOLUTION = 0.25

#: Cells ``"auto"`` measures modularity on (a random subset above it, the same for both candidates).
#: Its kNN graph is exact (scikit-learn's brute force, what scanpy uses below 8,192 cells anyway),
#: which at 50,000 cells takes seconds where pynndescent took about 30 (benchmarks/results/start_cost.md),
#: weighted as scanpy weights it (:func:`atlasclust.data.knn_connectivities`).
AUTO_MAX_CELLS = 50_000


def leiden_on_embedding(
    latent: np.ndarray, *, resolution: float, random_state: int, n_neighbors: int = 15
) -> np.ndarray:
    """Leiden clusters (integer codes) of scanpy's kNN graph of ``latent``, through scanpy."""
    graph = neighbor_connectivities(latent, n_neighbors=n_neighbors, random_state=random_state)
    embedded = ad.AnnData(obs=pd.DataFrame(index=np.arange(len(latent)).astype(str)))
    sc.tl.leiden(
        embedded,
        resolution=resolution,
        adjacency=graph,
        flavor="igraph",
        n_iterations=2,
        directed=False,
        random_state=random_state,
    )
    return embedded.obs["leiden"].cat.codes.to_numpy()


def modularity(connectivities: sp.spmatrix, labels: np.ndarray, *, resolution: float = 1.0) -> float:
    """Modularity of ``labels`` (integer codes) on a weighted, symmetric graph of the same cells.

    The share of edge weight inside clusters minus ``resolution`` times the share expected of a
    random graph with the same weighted degrees (Newman's at 1; the quality Leiden maximises at
    that resolution). It needs no labels and no N x N matrix.
    """
    n_groups = int(labels.max()) + 1
    membership = sp.csr_matrix((np.ones(len(labels)), (np.arange(len(labels)), labels)), shape=(len(labels), n_groups))
    between = (membership.T @ sp.csr_matrix(connectivities) @ membership).toarray()  # groups x groups edge weight
    total = between.sum()
    degree = between.sum(axis=1)
    return float(np.trace(between) / total - resolution * (degree**2).sum() / total**2)


def cluster_centers(
    latent: np.ndarray, n_clusters: int | None, *, resolution: float, random_state: int, init: str = "kmeans"
) -> tuple[np.ndarray, dict]:
    """Centres of the starting clusters, and how they were found.

    With ``n_clusters`` (at most the number of distinct rows), the clusters are k-means',
    :func:`merged_kmeans_labels`' or, with ``init="auto"``, whichever of the two has the higher
    :func:`modularity` (at :data:`AUTO_RESOLUTION`) on the exact kNN graph of ``latent`` (of a
    random :data:`AUTO_MAX_CELLS` of its rows, when it has more); without, Leiden's at ``resolution``.

    Returns
    -------
    The centres (clusters x features) and ``{"start": "kmeans" | "merged" | "leiden"}``, with
    ``init="auto"`` also ``"modularity"``: each candidate's.
    """
    if n_clusters is None:
        groups = leiden_on_embedding(latent, resolution=resolution, random_state=random_state)
        return _group_means(latent, groups), {"start": "leiden"}
    n_clusters = min(n_clusters, len(np.unique(latent, axis=0)))
    if init != "merged":
        kmeans = KMeans(n_clusters=n_clusters, n_init=10, random_state=random_state).fit(latent)
        if init == "kmeans":
            return kmeans.cluster_centers_, {"start": "kmeans"}
    merged = merged_kmeans_labels(latent, n_clusters, random_state=random_state)
    if init == "merged":
        return _group_means(latent, merged), {"start": "merged"}
    rows = sample_rows(len(latent), AUTO_MAX_CELLS, np.random.default_rng(random_state))
    graph = knn_connectivities(latent[rows])
    scores = {
        name: modularity(graph, labels[rows], resolution=AUTO_RESOLUTION)
        for name, labels in (("kmeans", kmeans.labels_), ("merged", merged))
    }
    if scores["merged"] > scores["kmeans"]:
        return _group_means(latent, merged), {"start": "merged", "modularity": scores}
    return kmeans.cluster_centers_, {"start": "kmeans", "modularity": scores}


def _group_means(latent: np.ndarray, groups: np.ndarray) -> np.ndarray:
    return np.stack([latent[groups == g].mean(axis=0) for g in np.unique(groups)])


def merged_kmeans_labels(latent: np.ndarray, n_clusters: int, *, random_state: int, oversplit: int = 2) -> np.ndarray:
    """``n_clusters`` groups: k-means with ``oversplit * n_clusters`` clusters, merged by Ward linkage of their centres.

    k-means at the number of cell types tends to cut a large type in two and to join two small
    ones; splitting finer first and then joining the closest sub-clusters keeps large types whole
    more often.
    """
    n_fine = min(oversplit * n_clusters, len(np.unique(latent, axis=0)))
    fine = KMeans(n_clusters=n_fine, n_init=10, random_state=random_state).fit(latent)
    if n_fine == n_clusters:
        return fine.labels_
    merged = AgglomerativeClustering(n_clusters=n_clusters, linkage="ward").fit_predict(fine.cluster_centers_)
    return merged[fine.labels_]


def history_frame(history: dict | None) -> pd.DataFrame:
    """Per-epoch metrics of scvi-tools' history (a frame per metric) as one frame."""
    frames = [frame for key, frame in (history or {}).items() if not key.startswith("kl_")]
    if not frames:
        return pd.DataFrame()
    # scvi-tools keeps object columns; h5ad needs plain floats
    return pd.concat(frames, axis=1).reset_index(drop=True).apply(pd.to_numeric).astype(np.float64)


def set_aside_history(model) -> pd.DataFrame | None:
    """Before a further fit, take the frame of earlier fits out of scvi-tools' way.

    scvi-tools appends a new fit's metrics only to its own dict history; ours is a frame. The
    model is marked untrained so that scvi-tools starts a fresh history, which
    :func:`join_history` then appends to the earlier frame.
    """
    previous = model.history_ if isinstance(model.history_, pd.DataFrame) else None
    if previous is not None:
        model.history_ = None
        model.is_trained_ = False
    return previous


def join_history(previous: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Earlier fits' epochs followed by the new fit's."""
    return new if previous is None else pd.concat([previous, new], ignore_index=True)
