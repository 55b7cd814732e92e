"""UMAP of a method's embedding, computed under its own keys and drawn by scanpy."""

from __future__ import annotations

import anndata as ad
import scanpy as sc


def embedding(adata: ad.AnnData, key: str = "bgformer", *, color: str | list[str] | None = None, **kwargs):
    """UMAP of ``obsm["X_<key>"]``, coloured by the predicted clusters by default.

    Neighbours and UMAP of the embedding are computed when missing and stored under their own
    keys (``obsp["<key>_connectivities"]``, ``obsm["X_<key>_umap"]``), so the user's
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
    if f"X_{key}" not in adata.obsm:
        msg = f"adata.obsm['X_{key}'] not found: run ac.tl.bgformer(adata, key_added={key!r}) first."
        raise KeyError(msg)
    umap_key = f"X_{key}_umap"
    if umap_key not in adata.obsm:
        sc.pp.neighbors(adata, use_rep=f"X_{key}", key_added=key)
        umap = sc.tl.umap(adata, neighbors_key=key, copy=True).obsm["X_umap"]
        adata.obsm[umap_key] = umap
    return sc.pl.embedding(adata, basis=umap_key, color=key if color is None else color, **kwargs)
