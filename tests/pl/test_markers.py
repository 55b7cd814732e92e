import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scanpy as sc

import atlasclust as ac


def test_dotplot_of_cluster_markers_under_its_own_key(clustered, tmp_path):
    adata, _ = clustered
    adata = adata.copy()
    counts_before = adata.X.copy()
    plot = ac.pl.marker_dotplot(adata, n_genes=2, return_fig=True)
    assert isinstance(plot, sc.pl.DotPlot)
    n_clusters = len(adata.obs["bgformer"].cat.categories)
    assert len(plot.var_names) == 2 * n_clusters  # two genes per cluster, grouped
    plot.savefig(tmp_path / "markers.png")
    plt.close("all")
    assert (tmp_path / "markers.png").stat().st_size > 5_000
    assert "rank_genes_groups" not in adata.uns and "rank_genes_groups_bgformer" in adata.uns
    assert (adata.X != counts_before).nnz == 0  # counts untouched
    # each cluster's top marker is more expressed in it than in the other cells
    names = adata.uns["rank_genes_groups_bgformer"]["names"]
    for cluster in adata.obs["bgformer"].cat.categories:
        inside = (adata.obs["bgformer"] == cluster).to_numpy()
        column = sc.get.obs_df(adata, [names[cluster][0]]).iloc[:, 0].to_numpy()
        assert column[inside].mean() > 2 * column[~inside].mean()


def test_groupby_any_column_and_missing_keys(clustered, counts):
    adata, _ = clustered
    adata = adata.copy()
    axes = ac.pl.marker_dotplot(adata, groupby="cell_type", n_genes=1, show=False)
    assert "mainplot_ax" in axes and axes["mainplot_ax"].figure is not None  # what scanpy's dot plot returns
    assert adata.uns["rank_genes_groups_bgformer"]["params"]["groupby"] == "cell_type"
    plt.close("all")
    with pytest.raises(KeyError, match="run ac.tl.bgformer or ac.tl.scrcl"):
        ac.pl.marker_dotplot(counts)
    with pytest.raises(KeyError, match="not a column"):
        ac.pl.marker_dotplot(adata, groupby="tissue")


def test_dendrogram_orders_clusters_by_the_embedding_without_a_pca_of_all_genes(clustered, monkeypatch):
    adata, _ = clustered
    adata = adata.copy()

    def no_pca(*args, **kwargs):
        raise AssertionError("a PCA of all genes was computed for the dendrogram")

    monkeypatch.setattr(sc.pp, "pca", no_pca)
    monkeypatch.setattr(sc.preprocessing, "pca", no_pca)
    used = {}
    dendrogram = sc.tl.dendrogram

    def recording_dendrogram(data, groupby, **kwargs):
        used["rep"] = kwargs.get("use_rep")
        return dendrogram(data, groupby, **kwargs)

    monkeypatch.setattr(sc.tl, "dendrogram", recording_dendrogram)
    plot = ac.pl.marker_dotplot(adata, n_genes=1, return_fig=True)
    assert used["rep"] == "X_bgformer"
    plot.make_figure()
    plt.close("all")
    assert "dendrogram_bgformer" not in adata.uns  # drawn on the plot's own copy


def test_markers_are_ranked_again_after_the_clusters_are_renamed_or_merged(clustered):
    adata, _ = clustered
    adata = adata.copy()
    ac.pl.marker_dotplot(adata, n_genes=1, show=False)
    # plain strings, as a map leaves them
    adata.obs["bgformer"] = adata.obs["bgformer"].astype(str).map({"0": "T", "1": "T", "2": "B", "3": "Mono"})
    plot = ac.pl.marker_dotplot(adata, n_genes=1, return_fig=True)
    plt.close("all")
    assert set(adata.uns["rank_genes_groups_bgformer"]["names"].dtype.names) == {"B", "Mono", "T"}
    assert len(plot.var_names) == 3
    # drawn again from the stored markers: the plain-string column still makes a dendrogram and a plot
    stored = adata.uns["rank_genes_groups_bgformer"]
    again = ac.pl.marker_dotplot(adata, n_genes=1, return_fig=True)
    plt.close("all")
    assert adata.uns["rank_genes_groups_bgformer"] is stored
    assert list(again.var_names) == list(plot.var_names)


def _recorded_group_sizes(monkeypatch) -> list:
    """Patch ``sc.tl.rank_genes_groups`` to record the group sizes it ranks genes on."""
    calls = []
    rank = sc.tl.rank_genes_groups

    def recording_rank(data, groupby, **kwargs):
        calls.append(data.obs[groupby].value_counts().to_dict())
        return rank(data, groupby, **kwargs)

    monkeypatch.setattr(sc.tl, "rank_genes_groups", recording_rank)
    return calls


def test_marker_dotplot_of_a_backed_result_reads_only_a_sample_of_cells(clustered, tmp_path, monkeypatch):
    # an atlas user: tl.bgformer on a backed file, then the markers, without loading the file whole
    import anndata as ad

    adata, _ = clustered
    in_memory = adata.copy()
    adata.write_h5ad(tmp_path / "result.h5ad")
    backed = ad.read_h5ad(tmp_path / "result.h5ad", backed="r")
    read = []
    dataset = type(backed.X)
    getitem = dataset.__getitem__

    def recording_getitem(self, rows):
        read.append(len(np.arange(backed.n_obs)[rows]))
        return getitem(self, rows)

    monkeypatch.setattr(dataset, "__getitem__", recording_getitem)
    for method in ("to_memory", "copy"):
        monkeypatch.setattr(ad.AnnData, method, lambda *a, **k: pytest.fail("the backed AnnData was loaded"))
    calls = _recorded_group_sizes(monkeypatch)

    plot = ac.pl.marker_dotplot(backed, n_genes=2, max_cells_per_group=60, return_fig=True)
    plot.make_figure()
    plt.close("all")
    assert backed.isbacked
    assert read == [60 * 4]  # one read of the sampled rows: 60 of each of the 4 clusters
    assert calls == [dict.fromkeys(adata.obs["bgformer"].cat.categories, 60)]
    assert backed.uns["rank_genes_groups_bgformer"]["params"]["max_cells_per_group"] == 60
    # the same sample, in memory, gives the same markers
    ac.pl.marker_dotplot(in_memory, n_genes=2, max_cells_per_group=60, show=False)
    plt.close("all")
    for field in ("names", "scores"):
        assert list(in_memory.uns["rank_genes_groups_bgformer"][field]) == list(
            backed.uns["rank_genes_groups_bgformer"][field]
        )

    # by default a backed file with groups of fewer than 1,000 cells is read whole: the markers of every cell
    del backed.uns["rank_genes_groups_bgformer"], in_memory.uns["rank_genes_groups_bgformer"]
    ac.pl.marker_dotplot(backed, n_genes=2, show=False)
    ac.pl.marker_dotplot(in_memory, n_genes=2, show=False)
    plt.close("all")
    assert calls[-1] == calls[-2] == adata.obs["bgformer"].value_counts().to_dict()
    assert list(backed.uns["rank_genes_groups_bgformer"]["names"]) == list(
        in_memory.uns["rank_genes_groups_bgformer"]["names"]
    )
    assert "max_cells_per_group" not in backed.uns["rank_genes_groups_bgformer"]["params"]


def test_marker_dotplot_samples_cells_per_group_and_reuses_only_the_same_sample(clustered, monkeypatch):
    adata, _ = clustered
    adata = adata.copy()
    # one small group: all its cells are kept while the others are cut to 40
    adata.obs["groups"] = adata.obs["bgformer"].astype(str)
    adata.obs.iloc[:10, adata.obs.columns.get_loc("groups")] = "small"
    calls = _recorded_group_sizes(monkeypatch)
    ac.pl.marker_dotplot(adata, groupby="groups", n_genes=1, max_cells_per_group=40, show=False)
    assert calls[-1]["small"] == 10
    assert all(size == 40 for group, size in calls[-1].items() if group != "small")
    ac.pl.marker_dotplot(adata, groupby="groups", n_genes=1, max_cells_per_group=40, show=False)
    assert len(calls) == 1  # the same sample: reused
    ac.pl.marker_dotplot(adata, groupby="groups", n_genes=1, max_cells_per_group=40, random_state=1, show=False)
    ac.pl.marker_dotplot(adata, groupby="groups", n_genes=1, max_cells_per_group=50, show=False)
    ac.pl.marker_dotplot(adata, groupby="groups", n_genes=1, show=False)  # every cell
    plt.close("all")
    assert len(calls) == 4
    assert calls[-1] == adata.obs["groups"].value_counts().to_dict()


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-5, ValueError), (2.5, TypeError), (True, TypeError), ("all", TypeError)]
)
def test_marker_dotplot_rejects_a_bad_sample_size(clustered, value, error):
    # as for epochs and batch sizes: a number that is not an integer is a TypeError, too small a ValueError
    adata, _ = clustered
    adata = adata.copy()
    uns = set(adata.uns)
    with pytest.raises(error, match="max_cells_per_group"):
        ac.pl.marker_dotplot(adata, max_cells_per_group=value)
    assert set(adata.uns) == uns


def test_marker_dotplot_with_a_category_that_has_no_cells(clustered):
    # annotation with a fixed list of known types, one of them absent from these cells
    adata, _ = clustered
    adata = adata.copy()
    known = ["T", "B", "Mono", "NK", "DC"]
    names = {"0": "T", "1": "B", "2": "Mono", "3": "NK"}
    adata.obs["bgformer"] = pd.Categorical(adata.obs["bgformer"].astype(str).map(names), categories=known)
    plot = ac.pl.marker_dotplot(adata, n_genes=1, return_fig=True)
    plt.close("all")
    assert set(adata.uns["rank_genes_groups_bgformer"]["names"].dtype.names) == {"T", "B", "Mono", "NK"}
    assert len(plot.var_names) == 4
    assert list(adata.obs["bgformer"].cat.categories) == known  # the user's column is left as it was
