import warnings

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt
import pytest
import scanpy as sc

import atlasclust as ac
from atlasclust.pl._utils import finish


@pytest.mark.parametrize("helper", ["embedding", "attention_heatmap", "marker_dotplot"])
def test_every_helper_returns_what_it_drew_with_show_false_as_scanpy_does(clustered, helper):
    adata, _ = clustered
    drawn = getattr(ac.pl, helper)(adata.copy(), show=False)
    axes = drawn.values() if isinstance(drawn, dict) else drawn if isinstance(drawn, list) else [drawn]
    assert axes and all(isinstance(ax, plt.Axes) for ax in axes)
    plt.close("all")


def test_finish_returns_the_figure_the_axes_or_nothing_once_shown(monkeypatch):
    figure, ax = plt.subplots()
    assert finish(figure, "x", show=False, save=None, return_fig=True, axes=ax) is figure
    assert finish(figure, "x", show=False, save=None, return_fig=False, axes=ax) is ax
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: None)
    assert finish(figure, "x", show=True, save=None, return_fig=False, axes=ax) is None
    autoshow = sc.settings.autoshow
    sc.settings.autoshow = False  # scanpy's autoshow off: nothing shown, the axes back
    try:
        assert finish(figure, "x", show=None, save=None, return_fig=False, axes=ax) is ax
    finally:
        sc.settings.autoshow = autoshow
    plt.close("all")


def test_save_writes_where_scanpy_would_without_scanpys_deprecated_helper(tmp_path):
    figdir, file_format = sc.settings.figdir, sc.settings.file_format_figs
    sc.settings.figdir, sc.settings.file_format_figs = tmp_path / "figures", "png"
    try:
        _save_two_figures()
    finally:
        sc.settings.figdir, sc.settings.file_format_figs = figdir, file_format
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["heat.png", "heat_b.pdf"]
    assert not plt.get_fignums()  # a saved figure is closed, as scanpy does


def _save_two_figures():
    plt.close("all")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scanpy 1.12 warns when its own helper is given save=
        figure, ax = plt.subplots()
        assert finish(figure, "heat", show=False, save=True, return_fig=False, axes=ax) is ax
        figure, ax = plt.subplots()
        finish(figure, "heat", show=False, save="_b.pdf", return_fig=False, axes=ax)
