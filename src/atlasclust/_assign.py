"""Cluster centres on a learned embedding (k-means or Leiden), and training history, for both methods."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from sklearn.cluster import AgglomerativeClustering, KMeans


def leiden_on_embedding(
    latent: np.ndarray, *, resolution: float, random_state: int, n_neighbors: int = 15
) -> np.ndarray:
    """Leiden clusters (integer codes) of a kNN graph of ``latent``, through scanpy."""
    embedded = ad.AnnData(obs=pd.DataFrame(index=np.arange(len(latent)).astype(str)), obsm={"X_latent": latent})
    sc.pp.neighbors(
        embedded, n_neighbors=min(n_neighbors, len(latent) - 1), use_rep="X_latent", random_state=random_state
    )
    sc.tl.leiden(embedded, resolution=resolution, flavor="igraph", n_iterations=2, random_state=random_state)
    return embedded.obs["leiden"].cat.codes.to_numpy()


def cluster_centers(
    latent: np.ndarray, n_clusters: int | None, *, resolution: float, random_state: int, merge: bool = False
) -> np.ndarray:
    """Centres of k-means with ``n_clusters`` (at most the number of distinct rows), or of Leiden's clusters.

    With ``merge``, the k-means clusters come from :func:`merged_kmeans_labels`.
    """
    if n_clusters is not None:
        n_clusters = min(n_clusters, len(np.unique(latent, axis=0)))
        if not merge:
            return KMeans(n_clusters=n_clusters, n_init=10, random_state=random_state).fit(latent).cluster_centers_
        groups = merged_kmeans_labels(latent, n_clusters, random_state=random_state)
    else:
        groups = leiden_on_embedding(latent, resolution=resolution, random_state=random_state)
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
