import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.sparse as sp

import atlasclust as ac


def test_embedding_draws_umap_without_touching_user_keys(clustered, tmp_path):
    adata, _ = clustered
    adata = adata.copy()
    adata.obsm["X_umap"] = np.zeros((adata.n_obs, 2))
    results = set(adata.uns["bgformer"])
    figure = ac.pl.embedding(adata, color=["bgformer", "cell_type"], show=False, return_fig=True)
    assert len([ax for ax in figure.axes if ax.get_title()]) == 2
    figure.savefig(tmp_path / "umap.png")
    plt.close(figure)
    assert (tmp_path / "umap.png").stat().st_size > 10_000
    assert (adata.obsm["X_umap"] == 0).all() and "neighbors" not in adata.uns
    assert adata.obsm["X_bgformer_umap"].shape == (adata.n_obs, 2)
    assert set(adata.uns["bgformer"]) == results  # the results survive
    assert "bgformer_neighbors_connectivities" in adata.obsp


def test_embedding_keeps_scrcl_graph(counts):
    adata = counts[:200].copy()
    adata.obsm["X_scrcl"] = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    adata.obs["scrcl"] = adata.obs["cell_type"]
    adata.obsp["scrcl_connectivities"] = graph = sp.eye(200, format="csr")
    ac.pl.embedding(adata, key="scrcl", show=False)
    plt.close("all")
    assert (adata.obsp["scrcl_connectivities"] != graph).nnz == 0


def test_embedding_names_the_missing_run(counts):
    with pytest.raises(KeyError, match="run ac.tl.bgformer"):
        ac.pl.embedding(counts)


def test_embedding_of_a_backed_result_copies_nothing(clustered, tmp_path, monkeypatch):
    # an atlas user: tl.bgformer on a backed file, then the UMAP, without the counts read or copied
    import anndata as ad

    adata, _ = clustered
    in_memory = adata.copy()
    adata.write_h5ad(tmp_path / "result.h5ad")
    backed = ad.read_h5ad(tmp_path / "result.h5ad", backed="r")

    def no_copy(self, *args, **kwargs):
        raise AssertionError("the user's AnnData was copied")

    monkeypatch.setattr(ad.AnnData, "copy", no_copy)
    ac.pl.embedding(in_memory, show=False)
    ac.pl.embedding(backed, show=False)
    plt.close("all")
    np.testing.assert_allclose(backed.obsm["X_bgformer_umap"], in_memory.obsm["X_bgformer_umap"])
    assert backed.isbacked and "bgformer_neighbors_connectivities" in backed.obsp
