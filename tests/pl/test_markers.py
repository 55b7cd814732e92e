import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt
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
    figure_axes = ac.pl.marker_dotplot(adata, groupby="cell_type", n_genes=1, show=False)
    assert figure_axes is None
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
