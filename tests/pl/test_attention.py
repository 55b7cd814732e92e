import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

import atlasclust as ac
from atlasclust.pl._attention import anchor_order


def _heatmaps(figure):
    return [ax for ax in figure.axes if ax.images]


def _row_labels(figure):
    """The group names along the rows, on the strip of group colours."""
    strip = next(ax for ax in figure.axes if ax.patches and not ax.images)
    return [t.get_text() for t in strip.get_yticklabels()]


def test_one_panel_per_head_rows_are_clusters(clustered, tmp_path):
    adata, _ = clustered
    figure = ac.pl.attention_heatmap(adata, show=False, return_fig=True)
    panels = _heatmaps(figure)
    assert len(panels) == 4  # heads
    n_clusters = len(adata.obs["bgformer"].cat.categories)
    assert panels[0].images[0].get_array().shape == (n_clusters, 16)
    # the drawn rows are the stored means, anchors permuted
    drawn = np.asarray(panels[1].images[0].get_array())
    stored = adata.uns["bgformer"]["attention"][:, 1]
    np.testing.assert_allclose(np.sort(drawn, axis=1), np.sort(stored, axis=1), rtol=1e-6)
    figure.savefig(tmp_path / "attention.png")
    plt.close(figure)
    assert (tmp_path / "attention.png").stat().st_size > 5_000


def test_selected_heads_and_given_axes(clustered):
    adata, _ = clustered
    figure = ac.pl.attention_heatmap(adata, heads=[0, 2], show=False, return_fig=True)
    assert [ax.get_title() for ax in _heatmaps(figure)] == ["head 0", "head 2"]
    plt.close(figure)
    _, ax = plt.subplots()
    ac.pl.attention_heatmap(adata, heads=[3], ax=ax, show=False)
    assert ax.images and ax.get_title() == "head 3"
    plt.close("all")
    with pytest.raises(ValueError, match="one panel"):
        ac.pl.attention_heatmap(adata, ax=ax, show=False)
    with pytest.raises(ValueError, match="heads must be"):
        ac.pl.attention_heatmap(adata, heads=[7], show=False)


def test_groupby_from_stored_attention_matches_the_model(clustered):
    adata, model = clustered
    from_stored = ac.pl.attention_heatmap(adata, groupby="cell_type", show=False, return_fig=True)
    without = adata.copy()
    del without.obsm["bgformer_attention"]
    from_model = ac.pl.attention_heatmap(without, groupby="cell_type", model=model, show=False, return_fig=True)
    for a, b in zip(_heatmaps(from_stored), _heatmaps(from_model), strict=True):
        assert a.images[0].get_array().shape == (adata.obs["cell_type"].nunique(), 16)
        np.testing.assert_allclose(a.images[0].get_array(), b.images[0].get_array(), atol=2e-3)
    assert _row_labels(from_stored) == sorted(adata.obs["cell_type"].unique())
    plt.close("all")
    with pytest.raises(KeyError, match="store_attention=True"):
        ac.pl.attention_heatmap(without, groupby="cell_type", show=False)


def test_save_writes_into_figdir(clustered, tmp_path):
    import scanpy as sc

    adata, _ = clustered
    figdir = sc.settings.figdir
    sc.settings.figdir = tmp_path
    try:
        ac.pl.attention_heatmap(adata, save="_test.png", show=False)
    finally:
        sc.settings.figdir = figdir
    assert (tmp_path / "attention_heatmap_bgformer_test.png").stat().st_size > 5_000


def test_missing_results_are_named(counts, clustered):
    with pytest.raises(KeyError, match="run ac.tl.bgformer"):
        ac.pl.attention_heatmap(counts)
    adata, _ = clustered
    with pytest.raises(KeyError, match="not a column"):
        ac.pl.attention_heatmap(adata, groupby="tissue")


def test_anchor_order_puts_similar_anchors_together():
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(2, 8))
    anchors = np.concatenate([directions[[0, 1, 0, 1, 0, 1]] + 0.01 * rng.normal(size=(6, 8))])
    order = anchor_order(anchors)
    assert sorted(order) == list(range(6))
    sides = [i % 2 for i in order]
    assert sides in ([0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0])


@pytest.mark.parametrize(("standard_scale", "axis"), [("anchor", 0), ("group", 1)])
def test_standard_scale_spans_each_anchor_or_group_from_0_to_1(clustered, standard_scale, axis):
    adata, _ = clustered
    figure = ac.pl.attention_heatmap(adata, standard_scale=standard_scale, show=False, return_fig=True)
    order = anchor_order(np.asarray(adata.uns["bgformer"]["anchors"]))
    for head, panel in enumerate(_heatmaps(figure)):
        stored = np.asarray(adata.uns["bgformer"]["attention"][:, head], dtype=np.float64)
        low, high = stored.min(axis=axis, keepdims=True), stored.max(axis=axis, keepdims=True)
        expected = (stored - low) / (high - low)
        np.testing.assert_allclose(np.asarray(panel.images[0].get_array()), expected[:, order], rtol=1e-6, atol=1e-9)
    assert figure.axes[-1].get_ylabel() == f"mean attention, scaled per {standard_scale}"
    plt.close(figure)
    with pytest.raises(ValueError, match="standard_scale='var'"):
        ac.pl.attention_heatmap(adata, standard_scale="var", show=False)


def test_clusters_renamed_or_merged_after_the_run_are_averaged_again(clustered):
    # annotating clusters (a map to cell-type names, some merged) reorders and shrinks the categories:
    # the stored rows, one per original cluster, no longer match them
    adata, model = clustered
    adata = adata.copy()
    names = {"0": "T", "1": "T", "2": "B", "3": "Mono"}
    adata.obs["bgformer"] = adata.obs["bgformer"].astype(str).map(names)  # plain strings, as a map leaves them
    figure = ac.pl.attention_heatmap(adata, show=False, return_fig=True)
    panel = _heatmaps(figure)[0]
    assert _row_labels(figure) == ["B", "Mono", "T"]
    per_cell = adata.obsm["bgformer_attention"].astype(np.float64).reshape(adata.n_obs, 4, 16)[:, 0]
    order = anchor_order(np.asarray(adata.uns["bgformer"]["anchors"]))
    for row, name in enumerate(["B", "Mono", "T"]):
        expected = per_cell[(adata.obs["bgformer"] == name).to_numpy()].mean(axis=0)[order]
        np.testing.assert_allclose(panel.images[0].get_array()[row], expected, rtol=1e-6)
    plt.close(figure)
    del adata.obsm["bgformer_attention"]
    with pytest.raises(KeyError, match="renamed or merged"):
        ac.pl.attention_heatmap(adata, show=False)
    ac.pl.attention_heatmap(adata, model=model, show=False)  # the model recomputes it
    plt.close("all")


def test_a_result_under_another_key_is_named(clustered):
    adata, _ = clustered
    adata = adata.copy()
    # as if run with key_added="bg"
    adata.obsm["X_bg"] = adata.obsm.pop("X_bgformer")
    adata.obs["bg"] = adata.obs.pop("bgformer")
    adata.uns["bg"] = adata.uns.pop("bgformer")
    with pytest.raises(KeyError, match=r"key_added \['bg'\]: pass key= one of them"):
        ac.pl.attention_heatmap(adata, show=False)
    with pytest.raises(KeyError, match=r"key_added \['bg'\]"):
        ac.pl.embedding(adata, show=False)
    ac.pl.attention_heatmap(adata, key="bg", show=False)
    plt.close("all")


def test_a_result_without_attention_is_named_as_such(clustered):
    adata, _ = clustered
    adata = adata.copy()
    # as a tl.scrcl run under key "rcl" leaves it: embedding, labels, params, no attention
    adata.obsm["X_rcl"] = adata.obsm["X_bgformer"].copy()
    adata.obs["rcl"] = adata.obs["bgformer"].copy()
    adata.uns["rcl"] = {"params": {}}
    with pytest.raises(KeyError, match=r"'rcl' has no attention: only ac.tl.bgformer.*key_added \['bgformer'\]"):
        ac.pl.attention_heatmap(adata, key="rcl", show=False)


def test_show_false_returns_the_axes_and_rows_carry_group_colours(clustered):
    adata, _ = clustered
    adata = adata.copy()
    types = sorted(adata.obs["cell_type"].unique())
    adata.uns["cell_type_colors"] = ["#ff0000", "#00ff00", "#0000ff", "#000000"][: len(types)]  # as scanpy sets them
    axes = ac.pl.attention_heatmap(adata, groupby="cell_type", heads=[0, 2], show=False)
    assert set(axes) == {"head_0", "head_2", "groupby_ax", "colorbar_ax"}
    assert axes["head_2"].get_title() == "head 2"
    strip = axes["groupby_ax"]
    assert [t.get_text() for t in strip.get_yticklabels()] == types
    drawn = [matplotlib.colors.to_hex(bar.get_facecolor()) for bar in strip.patches]
    assert drawn == adata.uns["cell_type_colors"]
    plt.close("all")
    one = ac.pl.attention_heatmap(adata, heads=[1], show=False)  # scanpy's palette without stored colours
    assert len(one["groupby_ax"].patches) == adata.obs["bgformer"].nunique()
    plt.close("all")


def test_colour_scale_spans_the_values_drawn_unless_given(clustered):
    adata, _ = clustered
    axes = ac.pl.attention_heatmap(adata, show=False)
    images = [axes[f"head_{h}"].images[0] for h in range(4)]
    values = np.concatenate([np.asarray(image.get_array()).ravel() for image in images])
    assert images[0].get_clim() == pytest.approx((values.min(), values.max()))
    assert values.min() > 0  # mean attention: a scale forced to start at 0 would waste most of it
    plt.close("all")
    axes = ac.pl.attention_heatmap(adata, vmin=0.0, vmax=0.5, show=False)
    assert axes["head_0"].images[0].get_clim() == (0.0, 0.5)
    plt.close("all")
