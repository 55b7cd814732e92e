import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import (
    BAD_BATCH_KEYS,
    BAD_INPUTS,
    FAST,
    assert_unchanged,
    check_bad_batch_key_refused,
    check_batch_key_recovers_types,
    shared_dataset,
    snapshot,
)

import atlasclust as ac
from atlasclust.tl._bgformer import grown_cluster_warning

#: ARI the small model must reach on the simulated counts (it reaches 0.88): among 150 of 500 genes,
#: BGFormer's deviance ranking keeps fewer of the simulated markers than Seurat's would (docs/accuracy.md,
#: "Which genes, and how many"), since every simulated gene is over-dispersed alike
SIMULATED_ARI = 0.85


def test_recovers_simulated_groups(clustered):
    adata, _ = clustered
    assert ac.metrics.evaluate(adata.obs["cell_type"], adata.obs["bgformer"])["ARI"] >= SIMULATED_ARI


def test_output_contract(clustered):
    adata, model = clustered
    assert adata.obsm["X_bgformer"].shape == (600, 32)
    assert adata.obsm["X_bgformer"].dtype == np.float32
    labels = adata.obs["bgformer"]
    assert isinstance(labels.dtype, pd.CategoricalDtype)
    assert list(labels.cat.categories) == [str(k) for k in range(len(labels.cat.categories))]
    confidence = adata.obs["bgformer_confidence"].to_numpy()
    assert ((confidence > 0) & (confidence <= 1)).all()
    uns = adata.uns["bgformer"]
    assert uns["params"]["n_clusters"] == 4
    assert uns["params"]["random_state"] == 0
    assert uns["params"]["layer"] is None
    assert uns["params"]["n_anchors"] == 16
    assert {"scvi-tools", "torch", "atlasclust"} <= set(uns["params"]["versions"])
    assert uns["attention"].shape == (len(labels.cat.categories), 4, 16)
    np.testing.assert_allclose(uns["attention"].sum(axis=-1), 1.0, rtol=1e-4)
    per_cell = adata.obsm["bgformer_attention"]  # store_attention=True in the fixture
    assert per_cell.shape == (600, 4 * 16) and per_cell.dtype == np.float16
    np.testing.assert_allclose(per_cell.reshape(600, 4, 16).astype(np.float32).sum(axis=-1), 1.0, atol=1e-2)
    assert uns["anchors"].shape == (16, 32)
    assert uns["anchor_usage"].shape == (16,)
    assert uns["anchor_usage"].sum() == pytest.approx(1.0, rel=1e-5)
    history = uns["history"]
    assert len(history) == FAST["max_epochs"]
    assert set(history["phase"]) == {"pretrain", "cluster"}
    assert np.isfinite(history["train_loss"].to_numpy(dtype=float)).all()
    assert len(uns["genes"]) == FAST["n_top_genes"]
    assert "_indices" not in adata.obs and "_scvi_uuid" not in adata.uns


def test_result_survives_h5ad_round_trip(clustered, tmp_path):
    adata, _ = clustered
    adata.write_h5ad(tmp_path / "out.h5ad")
    back = ad.read_h5ad(tmp_path / "out.h5ad")
    assert back.obs["bgformer"].equals(adata.obs["bgformer"])
    assert back.uns["bgformer"]["params"]["layer"] is None


def test_copy_returns_new_object_and_leaves_input(counts):
    before = snapshot(counts)
    result = ac.tl.bgformer(counts, 4, copy=True, key_added="bg", **FAST)
    assert_unchanged(counts, before)
    assert "bg" in result.obs and "X_bg" in result.obsm and "bg_confidence" in result.obs and "bg" in result.uns
    assert "bg_attention" not in result.obsm  # per-cell attention only on request


def test_return_model_and_copy_together(counts):
    result, model = ac.tl.bgformer(counts, 4, copy=True, return_model=True, **FAST)
    np.testing.assert_array_equal(model.predict(counts).astype(str), result.obs["bgformer"].to_numpy())


def test_same_seed_same_labels_other_seed_other_run(counts):
    first = ac.tl.bgformer(counts, 4, copy=True, random_state=3, **FAST)
    second = ac.tl.bgformer(counts, 4, copy=True, random_state=3, **FAST)
    third = ac.tl.bgformer(counts, 4, copy=True, random_state=4, **FAST)
    np.testing.assert_array_equal(first.obs["bgformer"], second.obs["bgformer"])
    np.testing.assert_array_equal(first.obsm["X_bgformer"], second.obsm["X_bgformer"])
    assert not np.array_equal(first.obsm["X_bgformer"], third.obsm["X_bgformer"])


@pytest.mark.parametrize("stored", [sp.csr_matrix, sp.csc_matrix, lambda x: x.toarray()])
def test_backed_and_in_memory_runs_agree(counts, tmp_path, stored):
    # dense rows in a file are read through h5py, which refuses rows out of order
    ad.AnnData(X=stored(counts.X), obs=counts.obs, var=counts.var).write_h5ad(tmp_path / "counts.h5ad")
    backed = ad.read_h5ad(tmp_path / "counts.h5ad", backed="r")
    ac.tl.bgformer(backed, 4, **FAST)
    ac.tl.bgformer(counts, 4, **FAST)
    np.testing.assert_array_equal(backed.obs["bgformer"], counts.obs["bgformer"])
    np.testing.assert_allclose(backed.obsm["X_bgformer"], counts.obsm["X_bgformer"], atol=1e-5)
    assert backed.isbacked


def test_layer_and_dense_input(counts):
    dense = ad.AnnData(X=np.log1p(counts.X.toarray()), obs=counts.obs, var=counts.var)
    dense.layers["counts"] = counts.X.toarray()
    ac.tl.bgformer(dense, 4, layer="counts", **FAST)
    assert ac.metrics.evaluate(dense.obs["cell_type"], dense.obs["bgformer"])["ARI"] >= SIMULATED_ARI
    assert dense.uns["bgformer"]["params"]["layer"] == "counts"


def test_number_of_clusters_found_by_leiden(counts):
    ac.tl.bgformer(counts, None, **FAST)
    found = counts.uns["bgformer"]["params"]["n_clusters_found"]
    assert 3 <= found <= 6
    assert counts.obs["bgformer"].nunique() <= found
    assert ac.metrics.evaluate(counts.obs["cell_type"], counts.obs["bgformer"])["NMI"] > 0.8


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_clearly_and_changes_nothing(counts, case):
    edit, options, error, message = BAD_INPUTS[case]
    if edit is not None:
        x = counts.X.toarray()
        edit(x)
        counts.X = sp.csr_matrix(x)
    before = snapshot(counts)
    arguments = FAST | {"n_clusters": 4} | options
    with pytest.raises(error, match=message):
        ac.tl.bgformer(counts, **arguments)
    assert_unchanged(counts, before)


def test_merged_centre_initialisation(counts):
    ac.tl.bgformer(counts, 4, center_init="merged", **FAST)
    assert counts.uns["bgformer"]["params"]["center_init"] == "merged"
    assert ac.metrics.evaluate(counts.obs["cell_type"], counts.obs["bgformer"])["ARI"] >= SIMULATED_ARI


def test_default_centre_start_is_chosen_and_recorded(counts):
    model = ac.tl.bgformer(counts, 4, return_model=True, **FAST)
    params = counts.uns["bgformer"]["params"]
    assert model.center_init == "auto"
    assert params["center_start"] == model.center_start_["start"] in ("kmeans", "merged")
    scores = model.center_start_["modularity"]
    assert max(scores, key=scores.get) == params["center_start"]


def test_unknown_centre_initialisation_is_refused(counts):
    before = snapshot(counts)
    with pytest.raises(ValueError, match="center_init='ward' must be one of"):
        ac.tl.bgformer(counts, 4, center_init="ward", **FAST)
    assert_unchanged(counts, before)


def test_too_few_cells_to_train():
    tiny = ac.datasets.simulate(8, 40, 2, n_markers=5)
    with pytest.raises(ValueError, match="at least 10 cells"):
        ac.tl.bgformer(tiny, 2, **(FAST | {"n_top_genes": None}))


@pytest.mark.slow
def test_zeisel_smoke_reaches_near_benchmark_accuracy():
    # best baseline on this dataset is ARI 0.75 (baselines.md); BGFormer reaches ~0.74 in the benchmark
    adata = ac.datasets.zeisel()
    ac.tl.bgformer(adata, 7, max_epochs=10, enable_progress_bar=False)
    scores = ac.metrics.evaluate(adata.obs["cell_type"], adata.obs["bgformer"])
    assert scores["ARI"] > 0.6, scores


@pytest.mark.slow
def test_real_shared_dataset_read_backed(tmp_path):
    # a real file from ../shared/data, read backed as atlas users do
    path = tmp_path / "pbmc.h5ad"
    shared_dataset("pbmc_10x").write_h5ad(path)
    adata = ad.read_h5ad(path, backed="r")
    ac.tl.bgformer(adata, 8, max_epochs=6, enable_progress_bar=False)
    assert adata.isbacked
    assert ac.metrics.evaluate(adata.obs["cell_type"], adata.obs["bgformer"])["ARI"] > 0.5


def test_early_stopping_on_unsupervised_validation_loss(counts):
    # an improvement no epoch can reach: each phase stops after 1 + patience epochs
    options = FAST | {"max_epochs": 20, "early_stopping_patience": 1, "early_stopping_min_delta": 1e9}
    ac.tl.bgformer(counts, 4, early_stopping=True, **options)
    history = counts.uns["bgformer"]["history"]
    assert len(history) == 4
    assert np.isfinite(history["validation_loss"].to_numpy(dtype=float)).all()
    assert list(history["phase"]) == ["pretrain", "pretrain", "cluster", "cluster"]


def test_batch_key_keeps_the_clusters_off_the_batches(two_batches):
    options = FAST | {"n_top_genes": None, "max_epochs": 10}
    _, result = check_batch_key_recovers_types(ac.tl.bgformer, two_batches, "bgformer", options)
    assert list(result.obs.columns) == ["cell_type", "batch", "bgformer", "bgformer_confidence"]


def test_batch_key_backed_saved_and_predicted(two_batches, tmp_path):
    options = FAST | {"n_top_genes": None}
    two_batches.write_h5ad(tmp_path / "batches.h5ad")
    backed = ad.read_h5ad(tmp_path / "batches.h5ad", backed="r")
    model = ac.tl.bgformer(backed, 3, batch_key="batch", return_model=True, **options)
    ac.tl.bgformer(two_batches, 3, batch_key="batch", **options)
    np.testing.assert_array_equal(backed.obs["bgformer"], two_batches.obs["bgformer"])
    # the training data kept on the device (here the CPU) carry their batches too
    on_device = ac.tl.bgformer(two_batches, 3, batch_key="batch", data_on_device=True, copy=True, **options)
    assert ac.metrics.evaluate(on_device.obs["bgformer"], two_batches.obs["bgformer"])["ARI"] > 0.9
    model.save(tmp_path / "model")
    new_cells = two_batches[::7].copy()
    loaded = ac.models.BGFormer.load(tmp_path / "model", adata=new_cells)
    np.testing.assert_array_equal(loaded.predict(new_cells), model.predict(new_cells))
    np.testing.assert_array_equal(loaded.predict(new_cells).astype(str), two_batches.obs["bgformer"].to_numpy()[::7])
    elsewhere = new_cells.copy()
    elsewhere.obs["batch"] = "b2"
    with pytest.raises(ValueError, match=r"batches the model was not trained on: \['b2'\]"):
        model.predict(elsewhere)


@pytest.mark.parametrize("case", BAD_BATCH_KEYS)
def test_bad_batch_key_raises_clearly_and_changes_nothing(counts, case):
    check_bad_batch_key_refused(ac.tl.bgformer, counts, case, FAST)


def test_a_new_run_under_the_same_key_drops_what_the_plots_derived_from_the_old_one(counts):
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    adata = counts.copy()
    ac.tl.bgformer(adata, 4, store_attention=True, random_state=0, **FAST)
    ac.pl.embedding(adata, show=False)
    ac.pl.marker_dotplot(adata, show=False)
    plt.close("all")
    old_umap = adata.obsm["X_bgformer_umap"].copy()
    derived = ["X_bgformer_umap", "bgformer_neighbors", "rank_genes_groups_bgformer"]
    assert all(name in adata.obsm or name in adata.uns for name in derived)
    ac.tl.bgformer(adata, 3, random_state=1, **FAST)  # another run, no per-cell attention this time
    assert "X_bgformer_umap" not in adata.obsm and "bgformer_attention" not in adata.obsm
    assert "bgformer_neighbors" not in adata.uns and "rank_genes_groups_bgformer" not in adata.uns
    assert not any(name.startswith("bgformer_neighbors") for name in adata.obsp)
    ac.pl.embedding(adata, show=False)  # now drawn from the new embedding
    ac.pl.marker_dotplot(adata, show=False)
    plt.close("all")
    assert not np.allclose(adata.obsm["X_bgformer_umap"], old_umap)
    assert set(adata.uns["rank_genes_groups_bgformer"]["names"].dtype.names) == set(
        adata.obs["bgformer"].cat.categories
    )


def test_grown_cluster_warning_names_the_cluster_and_both_shares():
    start = np.full(4, 0.25)
    codes = np.repeat([0, 1, 2, 3], [10, 10, 70, 10])
    message = grown_cluster_warning(start, codes, "bgformer")
    assert "cluster '2' holds 70% of the cells" in message
    assert "no cluster held more than 25%" in message
    assert "obsm['X_bgformer']" in message


@pytest.mark.parametrize(
    ("start", "sizes"),
    [
        ([0.5, 0.5], [60, 40]),  # grew, but less than twofold
        ([0.05] * 20, [20] + [80 // 19 + 1] * 19),  # twofold and more, but a fifth of the cells at most
        ([0.4, 0.3, 0.3], [35, 35, 30]),  # a large cluster from the start
        ([np.nan, np.nan], [90, 10]),  # start unknown (a model saved before it was recorded)
    ],
)
def test_grown_cluster_warning_stays_silent(start, sizes):
    codes = np.repeat(np.arange(len(sizes)), sizes)
    assert grown_cluster_warning(np.asarray(start), codes, "bgformer") is None


def test_a_grown_cluster_is_reported_by_the_tool(counts, monkeypatch):
    from scanpy import logging as logg

    messages = []
    monkeypatch.setattr(logg, "warning", lambda message, *args, **kwargs: messages.append(message))
    ac.tl.bgformer(counts, 4, **FAST)
    assert not [m for m in messages if "holds" in m]  # four separated groups: no cluster grows
    monkeypatch.setattr("atlasclust.tl._bgformer.GROWN_CLUSTER_SHARE", 0.0)
    monkeypatch.setattr("atlasclust.tl._bgformer.GROWN_CLUSTER_FACTOR", 0.0)
    ac.tl.bgformer(counts, 4, **FAST)
    assert [m for m in messages if "holds" in m and "when the clustering (DEC) phase began" in m]
