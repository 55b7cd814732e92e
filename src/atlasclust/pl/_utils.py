"""What every ``pl`` helper shares: checking that ``tl`` ran, and scanpy's save/show/return rules."""

from __future__ import annotations

import anndata as ad
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from scanpy import settings
from scanpy.pl._utils import savefig_or_show


def require_result(
    adata: ad.AnnData, key: str, *, obsm: bool = False, obs: bool = False, uns: str | None = None
) -> None:
    """Raise a ``KeyError`` that says which ``tl`` call to run when a result of ``key`` is missing."""
    missing = []
    if obsm and f"X_{key}" not in adata.obsm:
        missing.append(f"adata.obsm['X_{key}']")
    if obs and key not in adata.obs:
        missing.append(f"adata.obs[{key!r}]")
    if uns is not None and uns not in adata.uns.get(key, {}):
        missing.append(f"adata.uns[{key!r}][{uns!r}]")
    if missing:
        results = _result_keys(adata)
        if uns == "attention" and key in results:  # a scRCL result: running BGFormer over it is not the fix
            msg = f"the result under key {key!r} has no attention: only ac.tl.bgformer writes one (scRCL has none)."
        else:
            method = "ac.tl.bgformer" if uns == "attention" else "ac.tl.bgformer or ac.tl.scrcl"
            msg = f"{', '.join(missing)} not found: run {method}(adata, key_added={key!r}) first."
        if others := [name for name in results if uns is None or uns in adata.uns[name]]:
            msg += f" Results are stored under key_added {others}: pass key= one of them."
        raise KeyError(msg)


def _result_keys(adata: ad.AnnData) -> list[str]:
    """The ``key_added`` of the ``tl`` runs whose embedding, labels and ``uns`` entry are in ``adata``."""
    return [
        name
        for name, entry in adata.uns.items()
        if isinstance(entry, dict) and "params" in entry and f"X_{name}" in adata.obsm and name in adata.obs
    ]


def finish(figure: Figure, writekey: str, *, show: bool | None, save: bool | str | None, return_fig: bool, axes):
    """Save and/or show ``figure`` as scanpy does, and return what scanpy's plots return.

    The figure with ``return_fig``; ``axes`` (what was drawn) when the figure is not shown
    (``show=False``, or scanpy's ``autoshow`` off); ``None`` once it was shown.
    """
    plt.figure(figure.number)  # scanpy saves the current figure
    savefig_or_show(writekey, show=False if return_fig else show, save=save)
    if return_fig:
        return figure
    return None if (settings.autoshow if show is None else show) else axes
