"""UMAP of a method's embedding, computed under its own keys and drawn by scanpy."""

from __future__ import annotations

import anndata as ad
import scanpy as sc

from ._utils import require_result


def embedding(adata: ad.AnnData, key: str = "bgformer", *, color: str | list[str] | None = None, **kwargs):
    """UMAP of ``obsm["X_<key>"]``, coloured by the predicted clusters by default.

    Neighbours and UMAP of the embedding are computed when missing and stored under their own
    keys (``uns["<key>_neighbors"]``, ``obsp["<key>_neighbors_connectivities"]``,
    ``obsp["<key>_neighbors_distances"]``, ``obsm["X_<key>_umap"]``), so the user's
    ``neighbors`` and ``X_umap`` are never overwritten.

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
    umap_key = f"X_{key}_umap"
    if umap_key not in adata.obsm:
        # own neighbours key: key_added=key would replace uns[key] (the results) and scRCL's obsp graph
        sc.pp.neighbors(adata, use_rep=f"X_{key}", key_added=f"{key}_neighbors")
        umap = sc.tl.umap(adata, neighbors_key=f"{key}_neighbors", copy=True).obsm["X_umap"]
        adata.obsm[umap_key] = umap
    return sc.pl.embedding(adata, basis=umap_key, color=key if color is None else color, **kwargs)
