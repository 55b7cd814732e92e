"""Top marker genes of each predicted cluster, as a scanpy dot plot."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from atlasclust.data import counts_matrix

from ._utils import finish, markers_key, require_result


def marker_dotplot(
    adata: ad.AnnData,
    key: str = "bgformer",
    *,
    n_genes: int = 3,
    groupby: str | None = None,
    layer: str | None = None,
    method: str = "wilcoxon",
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
    **kwargs,
):
    """Dot plot of the top ``n_genes`` marker genes of each cluster found by ``tl.<method>``.

    Markers come from :func:`scanpy.tl.rank_genes_groups` on log-normalised counts
    (``normalize_total`` then ``log1p``, computed on a copy; ``adata.X`` is not changed) and are
    stored in ``adata.uns["rank_genes_groups_" + key]`` so that the user's own
    ``uns["rank_genes_groups"]`` is never overwritten. They are reused on a second call with the
    same column, the same groups in it (not after clusters were renamed or merged) and the same test.

    Parameters
    ----------
    adata
        AnnData (in memory) on which :func:`atlasclust.tl.bgformer` or :func:`atlasclust.tl.scrcl` ran.
    key
        The ``key_added`` of that run.
    n_genes
        Marker genes per cluster.
    groupby
        ``obs`` column to rank genes for; the predicted clusters ``obs[key]`` by default.
    layer
        Layer with raw counts; by default the layer the ``tl`` run used.
    method
        Test of :func:`scanpy.tl.rank_genes_groups`.
    show
        Show the figure (scanpy's default when ``None``).
    save
        ``True`` or a file-name suffix: write the figure to ``sc.settings.figdir`` as scanpy does.
    return_fig
        Return the :class:`scanpy.pl.DotPlot`.
    **kwargs
        Passed to :func:`scanpy.pl.rank_genes_groups_dotplot`. Its default ``dendrogram=True``
        orders the clusters by a dendrogram of their mean ``obsm["X_" + key]`` embedding, the
        space the clusters were found in (scanpy alone would run a PCA of every gene for it).

    Returns
    -------
    The :class:`scanpy.pl.DotPlot` when ``return_fig=True``, else ``None``.
    """
    require_result(adata, key, obs=True)
    groupby = key if groupby is None else groupby
    if groupby not in adata.obs:
        msg = f"groupby={groupby!r} is not a column of adata.obs."
        raise KeyError(msg)
    if adata.isbacked:
        msg = "marker_dotplot needs the expression in memory: use adata.to_memory() (or read the file without backed=)."
        raise ValueError(msg)
    if layer is None:
        layer = adata.uns.get(key, {}).get("params", {}).get("layer")
    lognorm = _log_normalised(adata, layer, groupby)
    stored = markers_key(key)
    previous = adata.uns.get(stored)
    if not _reusable(previous, groupby=groupby, method=method, groups=lognorm.obs[groupby]):
        sc.tl.rank_genes_groups(lognorm, groupby, method=method, key_added=stored)
        adata.uns[stored] = lognorm.uns[stored]
    else:
        lognorm.uns[stored] = previous
    embedding = f"X_{key}"
    if kwargs.get("dendrogram", True) is True and embedding in adata.obsm:
        # scanpy would otherwise fall back to a PCA of all genes, with a warning, on every call
        lognorm.obsm[embedding] = np.asarray(adata.obsm[embedding])
        sc.tl.dendrogram(lognorm, groupby, use_rep=embedding)
    plot = sc.pl.rank_genes_groups_dotplot(
        lognorm, n_genes=n_genes, key=stored, groupby=groupby, show=False, return_fig=True, **kwargs
    )
    if return_fig:
        return plot
    plot.make_figure()
    return finish(plot.fig, f"marker_dotplot_{key}", show=show, save=save, return_fig=False)


def _reusable(previous: dict | None, *, groupby: str, method: str, groups: pd.Series) -> bool:
    """Whether stored markers are those of ``groups`` as they are now (not before a rename or merge)."""
    if previous is None or previous["params"].get("groupby") != groupby or previous["params"].get("method") != method:
        return False
    categories = {str(c) for c in groups.astype("category").cat.categories}
    return set(previous["names"].dtype.names) == categories


def _log_normalised(adata: ad.AnnData, layer: str | None, groupby: str) -> ad.AnnData:
    """A new AnnData with ``log1p(normalize_total(counts))`` and only the ``groupby`` column."""
    counts = counts_matrix(adata, layer)
    counts = sp.csr_matrix(counts, dtype=np.float32) if sp.issparse(counts) else np.asarray(counts, dtype=np.float32)
    lognorm = ad.AnnData(counts, obs=adata.obs[[groupby]].copy(), var=adata.var[[]].copy())
    sc.pp.normalize_total(lognorm)
    sc.pp.log1p(lognorm)
    return lognorm
