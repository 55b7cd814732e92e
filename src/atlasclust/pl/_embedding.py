"""UMAP of a method's embedding, computed under its own keys and drawn by scanpy."""

from __future__ import annotations

import anndata as ad
import scanpy as sc

from atlasclust._keys import neighbors_key, umap_key

from ._utils import require_result


def embedding(adata: ad.AnnData, key: str = "bgformer", *, color: str | list[str] | None = None, **kwargs):
    """UMAP of ``obsm["X_<key>"]``, coloured by the predicted clusters by default.

    Neighbours and UMAP of the embedding are computed when missing and stored under their own
    keys (``uns["<key>_neighbors"]``, ``obsp["<key>_neighbors_connectivities"]``,
    ``obsp["<key>_neighbors_distances"]``, ``obsm["X_<key>_umap"]``), so the user's
    ``neighbors`` and ``X_umap`` are never overwritten. They are computed from the embedding
    alone: the counts are neither read nor copied, and a backed AnnData works as well. scanpy
    also records the UMAP's parameters in ``uns["X_<key>_umap"]``.

    Parameters
    ----------
    adata
        AnnData on which ``ac.tl.<method>(…, key_added=key)`` was run.
    key
        The ``key_added`` of that run.
    color
        ``obs`` columns or genes to colour by; defaults to the predicted labels ``obs[key]``.
    **kwargs
        Passed to :func:`scanpy.pl.embedding` (``ax``, ``show``, ``save``, ``return_fig``, …).

    Returns
    -------
    Whatever :func:`scanpy.pl.embedding` returns for these arguments.
    """
    require_result(adata, key, obsm=True)
    basis = umap_key(key)
    if basis not in adata.obsm:
        _store_umap(adata, key)
    return sc.pl.embedding(adata, basis=basis, color=key if color is None else color, **kwargs)


def _store_umap(adata: ad.AnnData, key: str) -> None:
    """Neighbours and UMAP of ``obsm["X_<key>"]`` by scanpy, under keys of their own.

    ``neighbors_key`` and ``key_added`` keep the user's ``neighbors`` and ``X_umap`` (and the results
    in ``uns[key]``, and scRCL's ``obsp`` graph) as they are; only the embedding is read.
    """
    neighbors = neighbors_key(key)
    sc.pp.neighbors(adata, use_rep=f"X_{key}", key_added=neighbors)
    sc.tl.umap(adata, neighbors_key=neighbors, key_added=umap_key(key))
