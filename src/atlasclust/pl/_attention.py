"""Class-level cell-to-anchor attention of a BGFormer result, one heatmap per head."""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scanpy as sc
from scipy.cluster.hierarchy import leaves_list, linkage

from atlasclust._validate import check_choice

from ._utils import finish, require_result


def attention_heatmap(
    adata: ad.AnnData,
    key: str = "bgformer",
    *,
    groupby: str | None = None,
    heads: Sequence[int] | None = None,
    model=None,
    standard_scale: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    figsize: tuple[float, float] | None = None,
    ax: plt.Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
):
    """Mean cell-to-anchor attention per group of cells, one panel per attention head.

    Rows are groups of cells, columns are anchors, ordered by hierarchical clustering of the
    anchor vectors (cosine distance) so that similar anchors sit together. As in Fig. 5 of the
    BGFormer paper :cite:p:`Liang2026`, clusters whose cells read the same anchors look alike.

    Parameters
    ----------
    adata
        AnnData on which :func:`atlasclust.tl.bgformer` ran.
    key
        The ``key_added`` of that run.
    groupby
        ``obs`` column whose groups form the rows. ``None`` uses the predicted clusters and the
        attention stored in ``uns[key]["attention"]``. Any other column, and the clusters once
        renamed or merged in ``obs[key]``, needs the per-cell attention:
        ``obsm[key + "_attention"]`` (written by ``tl.bgformer(…, store_attention=True)``) or the
        trained ``model``.
    heads
        Heads to draw; all by default.
    model
        The trained :class:`~atlasclust.models.BGFormer` (``return_model=True``), used to compute
        attention for ``groupby`` when it was not stored.
    standard_scale
        As in scanpy's heatmaps: ``"anchor"`` scales each anchor's column to 0–1 over the groups
        (within each head), which shows which groups read an anchor most even where every group's
        attention is close to uniform; ``"group"`` scales each row to 0–1 over the anchors;
        ``None`` draws the mean attention itself.
    vmin, vmax
        Ends of the colour scale, shared by the panels; by default the lowest and highest value
        drawn (mean attention rarely comes near zero, so a scale forced to start there would hide
        the differences).
    cmap
        Colour map of the heatmaps.
    figsize
        Figure size; by default grows with the number of heads and groups.
    ax
        Axes to draw into (only when one head is drawn).
    show
        Show the figure (scanpy's default when ``None``).
    save
        ``True`` or a file-name suffix such as ``"_zeisel.png"``: write the figure to
        ``sc.settings.figdir`` as scanpy does.
    return_fig
        Return the :class:`~matplotlib.figure.Figure`.

    Returns
    -------
    The figure when ``return_fig=True``; with ``show=False`` a dict of its Axes, as
    :func:`scanpy.pl.heatmap` returns: ``"head_0"``, ``"head_1"``, … (the heatmaps),
    ``"groupby_ax"`` (the strip of group colours, which carries the group names) and
    ``"colorbar_ax"``; otherwise ``None``.

    A strip along the rows shows each group's colour, from ``adata.uns[groupby + "_colors"]``
    when scanpy has set them (as its plots of that column do), else scanpy's default palette.
    """
    require_result(adata, key, obs=True, uns="attention")
    result = adata.uns[key]
    groupby = key if groupby is None else groupby
    if groupby == key and _labels_unchanged(adata, key):
        groups = list(pd.Categorical(adata.obs[key]).categories)
        attention = np.asarray(result["attention"], dtype=np.float64)
    else:  # another grouping, or the clusters were renamed or merged since tl.bgformer ran
        groups, attention = _attention_by(adata, key, groupby, model)
    title = groupby
    n_heads = attention.shape[1]
    heads = list(range(n_heads)) if heads is None else list(heads)
    if not heads or any(not 0 <= h < n_heads for h in heads):
        msg = f"heads must be a non-empty subset of 0..{n_heads - 1}, got {heads}."
        raise ValueError(msg)
    if ax is not None and len(heads) != 1:
        msg = f"ax= takes one panel; pass heads=[h] or leave ax=None to draw {len(heads)} heads."
        raise ValueError(msg)
    check_choice("standard_scale", standard_scale, (None, "group", "anchor"))
    shown = attention if standard_scale is None else _scaled(attention, axis=0 if standard_scale == "anchor" else 2)
    order = anchor_order(np.asarray(result["anchors"]) if "anchors" in result else attention.mean(axis=(0, 1))[:, None])

    if ax is None:
        size = figsize or (3.2 * len(heads) + 1.6, 0.25 * len(groups) + 1.8)
        figure = plt.figure(figsize=size, layout="constrained")
        grid = figure.add_gridspec(1, len(heads) + 1, width_ratios=[0.12] + [3.2] * len(heads))
        strip = figure.add_subplot(grid[0, 0])
        panels = [figure.add_subplot(grid[0, i + 1], sharey=strip) for i in range(len(heads))]
    else:
        figure, panels = ax.figure, [ax]
        strip = ax.inset_axes((-0.06, 0.0, 0.04, 1.0), sharey=ax)
    drawn = shown[:, heads]
    vmin = float(drawn.min()) if vmin is None else vmin
    vmax = float(drawn.max()) if vmax is None else vmax
    for panel, head in zip(panels, heads, strict=True):
        image = panel.imshow(
            shown[:, head][:, order], aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
        )
        panel.set_title(f"head {head}")
        panel.set_xlabel("anchors (similar ones together)")
        panel.set_xticks([])
        panel.tick_params(axis="y", left=False, labelleft=False)
    _group_strip(strip, groups, _group_colors(adata, groupby, groups))
    strip.set_ylabel(title)
    label = "mean attention" + ("" if standard_scale is None else f", scaled per {standard_scale}")
    colorbar = figure.colorbar(image, ax=panels, label=label, shrink=0.8)
    axes = {f"head_{head}": panel for head, panel in zip(heads, panels, strict=True)}
    axes |= {"groupby_ax": strip, "colorbar_ax": colorbar.ax}
    return finish(figure, f"attention_heatmap_{key}", show=show, save=save, return_fig=return_fig, axes=axes)


def _group_colors(adata: ad.AnnData, groupby: str, groups: list) -> list:
    """A colour per group: scanpy's ``uns[groupby + "_colors"]`` when it matches the column, else its default palette."""
    stored = adata.uns.get(f"{groupby}_colors")
    categories = list(pd.Categorical(adata.obs[groupby]).categories) if groupby in adata.obs else groups
    if stored is not None and len(stored) == len(categories):
        by_group = dict(zip(map(str, categories), stored, strict=True))
    else:
        palette = sc.pl.palettes.default_20 if len(categories) <= 20 else sc.pl.palettes.default_102
        by_group = {str(c): palette[i % len(palette)] for i, c in enumerate(categories)}
    return [by_group.get(str(g), "lightgray") for g in groups]


def _group_strip(strip: plt.Axes, groups: list, colors: list) -> None:
    """One coloured cell per row (drawn as bars, so that the heatmaps stay the figure's only images)."""
    strip.barh(range(len(groups)), 1.0, height=1.0, color=colors)
    strip.set_xlim(0, 1)
    strip.set_ylim(len(groups) - 0.5, -0.5)  # first group on top, as imshow draws rows
    strip.set_xticks([])
    strip.set_yticks(range(len(groups)), labels=[str(g) for g in groups])
    for side in ("top", "right", "bottom"):
        strip.spines[side].set_visible(False)


def _scaled(attention: np.ndarray, *, axis: int) -> np.ndarray:
    """``attention`` (groups x heads x anchors) min-max scaled to 0-1 along ``axis``; constant lines become 0."""
    low = attention.min(axis=axis, keepdims=True)
    span = attention.max(axis=axis, keepdims=True) - low
    return np.divide(attention - low, span, out=np.zeros_like(attention), where=span > 0)


def anchor_order(vectors: np.ndarray) -> np.ndarray:
    """Leaf order of average-linkage clustering of anchors (cosine distance; Euclidean for 1-D)."""
    if len(vectors) < 3:
        return np.arange(len(vectors))
    metric = "cosine" if vectors.shape[1] > 1 and (np.linalg.norm(vectors, axis=1) > 0).all() else "euclidean"
    return leaves_list(linkage(vectors, method="average", metric=metric))


def _labels_unchanged(adata: ad.AnnData, key: str) -> bool:
    """Whether ``obs[key]`` still has the clusters whose mean attention ``uns[key]`` holds, in its row order."""
    categories = [str(c) for c in pd.Categorical(adata.obs[key]).categories]  # strings too, once re-mapped
    stored = adata.uns[key].get("attention_clusters")
    if stored is None:  # results written before the row labels were stored: the row count is all there is
        return len(categories) == len(adata.uns[key]["attention"])
    return categories == [str(c) for c in stored]


def _attention_by(adata: ad.AnnData, key: str, groupby: str, model) -> tuple[list, np.ndarray]:
    """Mean attention (groups x heads x anchors) for the groups of ``obs[groupby]``."""
    if groupby not in adata.obs:
        msg = f"groupby={groupby!r} is not a column of adata.obs (columns: {list(adata.obs.columns)})."
        raise KeyError(msg)
    labels = pd.Categorical(adata.obs[groupby])  # keeps the order of a categorical column
    codes = labels.codes
    present = [i for i in range(len(labels.categories)) if (codes == i).any()]
    stored = f"{key}_attention"
    if stored in adata.obsm:
        n_heads = int(adata.uns[key]["params"]["n_heads"])
        per_cell = np.asarray(adata.obsm[stored], dtype=np.float64).reshape(adata.n_obs, n_heads, -1)
        means = np.stack([per_cell[codes == i].mean(axis=0) for i in present])
    elif model is not None:
        by_group = model.get_attention(adata, groups=codes)
        means = np.stack([by_group[str(i)] for i in present])
    else:
        why = (
            f"obs[{key!r}] is not what ac.tl.bgformer wrote (renamed or merged clusters), so"
            if groupby == key
            else f"groupby={groupby!r}"
        )
        msg = (
            f"{why} needs the per-cell attention: pass model= (ac.tl.bgformer(…, return_model=True)) "
            f"or run ac.tl.bgformer(…, store_attention=True), which writes adata.obsm[{stored!r}]."
        )
        raise KeyError(msg)
    return [labels.categories[i] for i in present], means
