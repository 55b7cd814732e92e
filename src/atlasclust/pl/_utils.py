"""What every ``pl`` helper shares: checking that ``tl`` ran, and scanpy's save/show/return rules."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from scanpy import logging as logg
from scanpy import settings

#: Endings of ``save`` that set the file type, as in scanpy.
FIGURE_EXTENSIONS = (".svg", ".pdf", ".png")


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

    ``save``: ``True`` writes ``settings.figdir / (writekey + "." + settings.file_format_figs)``; a
    string is appended to ``writekey`` (its ending ``.png``, ``.pdf`` or ``.svg`` sets the file
    type); ``None`` follows ``settings.autosave``. Written here with ``Figure.savefig``, not
    through scanpy's private helper, whose ``save`` is deprecated in scanpy 1.12.
    Returns the figure with ``return_fig``; ``axes`` (what was drawn) when the figure is not shown
    (``show=False``, or scanpy's ``autoshow`` off); ``None`` once it was shown.
    """
    do_save = settings.autosave if save is None else bool(save) or isinstance(save, str)
    if do_save:
        _save(figure, writekey, save if isinstance(save, str) else "")
    shown = not return_fig and (settings.autoshow if show is None else show)
    if shown:
        plt.show()
    if do_save:
        plt.close(figure)
    if return_fig:
        return figure
    return None if shown else axes


def _save(figure: Figure, writekey: str, suffix: str) -> None:
    extension = settings.file_format_figs
    for ending in FIGURE_EXTENSIONS:
        if suffix.endswith(ending):
            extension, suffix = ending[1:], suffix[: -len(ending)]
            break
    folder = Path(settings.figdir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{writekey}{suffix}{settings.plot_suffix}.{extension}"
    logg.warning(f"saving figure to file {path}")  # at warning level, as scanpy says it
    figure.savefig(path, bbox_inches="tight")  # at rcParams["savefig.dpi"], which sc.set_figure_params(dpi_save=) sets
