"""UMAP of a method's embedding, computed under its own keys and drawn by scanpy."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc

from ._utils import neighbors_key, require_result, umap_key


def embedding(adata: ad.AnnData, key: str = "bgformer", *, color: str | list[str] | None = None, **kwargs):
    """UMAP of ``obsm["X_<key>"]``, coloured by the predicted clusters by default.

    Neighbours and UMAP of the embedding are computed when missing and stored under their own
    keys (``uns["<key>_neighbors"]``, ``obsp["<key>_neighbors_connectivities"]``,
    ``obsp["<key>_neighbors_distances"]``, ``obsm["X_<key>_umap"]``), so the user's
    ``neighbors`` and ``X_umap`` are never overwritten. They are computed from the embedding
    alone: the counts are neither read nor copied, and a backed AnnData works as well.

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
    """Neighbours and UMAP of ``obsm["X_<key>"]``, computed on an AnnData holding only the embedding.

    scanpy's UMAP writes ``obsm["X_umap"]`` unless it works on a copy, and a copy of the user's
    object would hold all its counts (and fails on a backed one); the light object holds none.
    """
    # own neighbours key: key_added=key would replace uns[key] (the results) and scRCL's obsp graph
    neighbors = neighbors_key(key)
    light = ad.AnnData(
        obs=pd.DataFrame(index=pd.RangeIndex(adata.n_obs).astype(str)),
        obsm={"X_embedding": np.asarray(adata.obsm[f"X_{key}"])},
    )
    sc.pp.neighbors(light, use_rep="X_embedding", key_added=neighbors)
    sc.tl.umap(light, neighbors_key=neighbors)
    adata.uns[neighbors] = light.uns[neighbors]
    for name in ("connectivities", "distances"):
        adata.obsp[f"{neighbors}_{name}"] = light.obsp[f"{neighbors}_{name}"]
    adata.obsm[umap_key(key)] = light.obsm["X_umap"]
