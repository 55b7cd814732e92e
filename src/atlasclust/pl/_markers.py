"""Top marker genes of each predicted cluster, as a scanpy dot plot."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from atlasclust._keys import markers_key
from atlasclust._validate import as_int
from atlasclust.data import counts_matrix

from ._utils import finish, require_result

#: Cells per group read from a backed file when ``max_cells_per_group`` is not given: enough for
#: the top markers of each group, without loading an atlas into memory.
BACKED_CELLS_PER_GROUP = 1000


def marker_dotplot(
    adata: ad.AnnData,
    key: str = "bgformer",
    *,
    n_genes: int = 3,
    groupby: str | None = None,
    layer: str | None = None,
    method: str = "wilcoxon",
    max_cells_per_group: int | None = None,
    random_state: int = 0,
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
    same column, the same groups in it (not after clusters were renamed or merged), the same test
    and the same cells.

    On a file opened with ``backed="r"``, only the counts of a random sample of cells (at most
    1,000 per group unless ``max_cells_per_group`` says otherwise) are read from disk, so an atlas
    is never loaded whole.

    Parameters
    ----------
    adata
        AnnData, in memory or backed, on which :func:`atlasclust.tl.bgformer` or
        :func:`atlasclust.tl.scrcl` ran.
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
    max_cells_per_group
        Rank genes on a random sample of at most this many cells of each group (all of a smaller
        group); the dots show the same cells. ``None``: every cell of an AnnData in memory, at most
        1,000 per group of a backed one.
    random_state
        Seed of that sample.
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
    The :class:`scanpy.pl.DotPlot` when ``return_fig=True``; with ``show=False`` the dict of its
    Axes (``"mainplot_ax"``, ``"size_legend_ax"``, …), as :func:`scanpy.pl.dotplot` returns;
    otherwise ``None``.
    """
    require_result(adata, key, obs=True)
    groupby = key if groupby is None else groupby
    if groupby not in adata.obs:
        msg = f"groupby={groupby!r} is not a column of adata.obs."
        raise KeyError(msg)
    if max_cells_per_group is None and adata.isbacked:
        max_cells_per_group = BACKED_CELLS_PER_GROUP
    max_cells_per_group = as_int(max_cells_per_group, "max_cells_per_group", minimum=1)
    rows = _sampled_rows(adata.obs[groupby], max_cells_per_group, random_state=random_state)
    sample = {} if rows is None else {"max_cells_per_group": max_cells_per_group, "random_state": random_state}
    if layer is None:
        layer = adata.uns.get(key, {}).get("params", {}).get("layer")
    lognorm = _log_normalised(adata, layer, groupby, rows)
    stored = markers_key(key)
    previous = adata.uns.get(stored)
    if not _reusable(previous, groupby=groupby, method=method, groups=lognorm.obs[groupby], sample=sample):
        sc.tl.rank_genes_groups(lognorm, groupby, method=method, key_added=stored)
        lognorm.uns[stored]["params"].update(sample)
        adata.uns[stored] = lognorm.uns[stored]
    else:
        lognorm.uns[stored] = previous
    embedding = f"X_{key}"
    if kwargs.get("dendrogram", True) is True and embedding in adata.obsm:
        # scanpy would otherwise fall back to a PCA of all genes, with a warning, on every call
        latent = np.asarray(adata.obsm[embedding])
        lognorm.obsm[embedding] = latent if rows is None else latent[rows]
        sc.tl.dendrogram(lognorm, groupby, use_rep=embedding)
    plot = sc.pl.rank_genes_groups_dotplot(
        lognorm, n_genes=n_genes, key=stored, groupby=groupby, show=False, return_fig=True, **kwargs
    )
    if return_fig:
        return plot
    plot.make_figure()
    return finish(plot.fig, f"marker_dotplot_{key}", show=show, save=save, return_fig=False, axes=plot.get_axes())


def _reusable(previous: dict | None, *, groupby: str, method: str, groups: pd.Series, sample: dict) -> bool:
    """Whether stored markers are those of ``groups`` as they are now (not before a rename or merge).

    ``sample`` holds ``max_cells_per_group`` and ``random_state`` when the cells were sampled.
    """
    if previous is None:
        return False
    params = previous["params"]
    if params.get("groupby") != groupby or params.get("method") != method:
        return False
    if {name: params.get(name) for name in ("max_cells_per_group", "random_state") if name in params} != sample:
        return False
    categories = {str(c) for c in groups.astype("category").cat.categories}
    return set(previous["names"].dtype.names) == categories


def _sampled_rows(groups: pd.Series, max_cells_per_group: int | None, *, random_state: int) -> np.ndarray | None:
    """Sorted rows of a random sample of at most ``max_cells_per_group`` cells per group; ``None``: every cell.

    Rows come sorted, as a backed file reads them. Cells without a group (NaN) are sampled as one more group.
    """
    if max_cells_per_group is None:
        return None
    codes = pd.Categorical(groups).codes
    sizes = np.bincount(codes + 1)
    if sizes.max() <= max_cells_per_group:
        return None
    rng = np.random.default_rng(random_state)
    picked = [
        rng.choice(members, size=max_cells_per_group, replace=False) if len(members) > max_cells_per_group else members
        for members in (np.flatnonzero(codes == code) for code in range(-1, len(sizes) - 1))
    ]
    return np.sort(np.concatenate(picked))


def _log_normalised(adata: ad.AnnData, layer: str | None, groupby: str, rows: np.ndarray | None) -> ad.AnnData:
    """A new AnnData with ``log1p(normalize_total(counts))`` of ``rows`` (all: ``None``) and the ``groupby`` column.

    Only those rows are read, also from a backed file.
    """
    counts = counts_matrix(adata, layer)
    obs = adata.obs[[groupby]]
    if rows is not None:
        counts, obs = counts[rows], obs.iloc[rows]
    elif adata.isbacked:
        counts = counts[:]  # every cell asked for: read the whole matrix
    counts = sp.csr_matrix(counts, dtype=np.float32) if sp.issparse(counts) else np.asarray(counts, dtype=np.float32)
    # categorical, as scanpy's dendrogram and dot plot need (a mapped column holds plain strings), without
    # the groups that have no cells (an annotation with a fixed list of types), which rank_genes_groups cannot rank
    groups = pd.Categorical(obs[groupby]).remove_unused_categories()
    obs = pd.DataFrame({groupby: groups}, index=obs.index)
    lognorm = ad.AnnData(counts, obs=obs, var=adata.var[[]].copy())
    sc.pp.normalize_total(lognorm)
    sc.pp.log1p(lognorm)
    return lognorm
