import tracemalloc

import numpy as np
import pytest
import scanpy as sc
import scvi
import torch

import atlasclust as ac
from atlasclust.data import scaled_log_features, training_view
from atlasclust.data._graphs import expression_graph, gcn_normalize
from atlasclust.models import SCRCL
from atlasclust.scrcl import _data as scrcl_data
from atlasclust.train import _base as train_base

OPTIONS = {"n_top_genes": 150, "n_hidden": 64}
TRAIN = {"max_epochs": 20, "enable_progress_bar": False}


def _model(adata, **options) -> SCRCL:
    scvi.settings.seed = 0
    view = training_view(adata)
    SCRCL.setup_anndata(view)
    return SCRCL(view, 4, **(OPTIONS | options))


@torch.no_grad()
def _losses(model, batches) -> dict[str, float]:
    module = model.module
    data = model._graph_data_for(None)
    module.graph_data = data
    module.eval()
    totals = {"hea": 0.0, "ndc": 0.0, "cvc": 0.0}
    for seeds in batches:
        output = module.loss(None, module.inference(data.batch(seeds, "cpu")), {})
        for name in totals:
            totals[name] += float(output.extra_metrics[name]) / len(batches)
    return totals


def test_mini_batch_losses_estimate_the_full_batch_losses(counts):
    model = _model(counts)
    model._fit_input_transform(0)
    cells = np.random.default_rng(0).permutation(counts.n_obs)
    full = _losses(model, [cells])
    mini = _losses(model, np.array_split(cells, 6))
    assert mini["ndc"] == pytest.approx(full["ndc"], rel=0.05)
    assert mini["cvc"] == pytest.approx(full["cvc"], rel=0.1)
    # the global alignment term takes each batch as its population: same scale, not the same value
    assert mini["hea"] == pytest.approx(full["hea"], rel=0.5)


def test_mini_batch_training_clusters_like_full_batch(counts):
    full = _model(counts)
    full.train(**(TRAIN | {"max_epochs": 150, "lr": 1e-3}))
    mini = _model(counts)
    mini.train(**(TRAIN | {"max_epochs": 40, "batch_size": 128, "lr": 1e-3}))
    assert len(mini.history_) == 40
    truth = counts.obs["cell_type"]
    ari_full = ac.metrics.evaluate(truth, full.predict())["ARI"]
    ari_mini = ac.metrics.evaluate(truth, mini.predict())["ARI"]
    assert ari_mini > 0.8 and ari_full > 0.8, (ari_mini, ari_full)


def test_batches_hold_only_the_seeds_neighbourhood(counts):
    model = _model(counts)
    model._fit_input_transform(0)
    data = model._graph_data_for(None)
    seeds = np.arange(10)
    batch = data.batch(seeds, "cpu")
    neighbours = np.unique(np.concatenate([data.adjacency[s].indices for s in seeds]))
    assert set(batch["nodes"].numpy()) == set(seeds) | set(neighbours)
    np.testing.assert_array_equal(batch["nodes"].numpy()[:10], seeds)
    assert batch["propagation"].shape == (10, len(batch["nodes"]))


def test_batches_gathered_from_a_kept_copy_equal_those_copied_from_the_host(counts):
    model = _model(counts)
    model._fit_input_transform(0)
    data = model._graph_data_for(None)
    seeds = np.random.default_rng(0).choice(counts.n_obs, 50, replace=False)
    from_host = data.batch(seeds, "cpu")
    data.keep_on("cpu")  # on a GPU the copy lives there; the gathering code is the same
    kept = data.batch(seeds, "cpu")
    data.release()
    assert not data.on_device
    assert from_host.keys() == kept.keys()
    for key in ("mlp_features", "propagated_features", "node_degree", "nodes"):
        torch.testing.assert_close(kept[key], from_host[key], rtol=0, atol=0)


def test_embedding_batches_skip_what_only_the_losses_need(counts):
    model = _model(counts)
    model._fit_input_transform(0)
    data = model._graph_data_for(None)
    seeds = np.arange(20, 60)
    full, embed = data.batch(seeds, "cpu"), data.batch(seeds, "cpu", embed_only=True)
    assert "pairs" not in embed and "node_degree" not in embed
    torch.testing.assert_close(embed["mlp_features"], full["mlp_features"][: len(seeds)], rtol=0, atol=0)
    torch.testing.assert_close(embed["propagated_features"], full["propagated_features"], rtol=0, atol=0)
    model.module.eval()
    with torch.no_grad():
        a, b = model.module.inference(full), model.module.inference(embed)
    torch.testing.assert_close(b["mlp_refined"], a["mlp_refined"][: len(seeds)])
    torch.testing.assert_close(b["gcn_refined"], a["gcn_refined"])


def test_save_load_and_predict_on_held_back_cells(counts, tmp_path):
    train, held_back = counts[:500].copy(), counts[500:].copy()
    model = _model(train)
    model.train(**(TRAIN | {"max_epochs": 150, "lr": 1e-3}))
    model.save(tmp_path / "model")
    with pytest.raises(ValueError, match="already exists"):
        model.save(tmp_path / "model")
    loaded = SCRCL.load(tmp_path / "model", train)
    # same weights and graph; only float summation order may differ
    np.testing.assert_allclose(loaded.get_latent_representation(), model.get_latent_representation(), atol=1e-5)
    np.testing.assert_array_equal(loaded.predict(held_back), model.predict(held_back))
    assert "_indices" not in train.obs
    # new cells land in the clusters of their type
    truth = held_back.obs["cell_type"]
    assert ac.metrics.evaluate(truth, loaded.predict(held_back))["ARI"] > 0.8
    soft = loaded.predict(held_back, soft=True)
    assert soft.shape == (100, 4) and list(soft.index) == list(held_back.obs_names)


def test_counts_input_feeds_the_raw_counts_to_both_views(counts, tmp_path):
    train, held_back = counts[:500].copy(), counts[500:].copy()
    model = _model(train, input_features="counts")
    model.train(**(TRAIN | {"max_epochs": 150, "lr": 1e-3}))
    genes = model.module.gene_index.numpy()
    data = model._graph_data_for(None)
    np.testing.assert_array_equal(data.mlp_features, train.X[:, genes].toarray())
    # the graph is the expression kNN graph of the log features, whatever the views read
    log_model = _model(train, input_features="log")
    log_model._fit_input_transform(0)
    assert (data.adjacency != log_model._graph_data_for(None).adjacency).nnz == 0
    assert not np.array_equal(log_model._graph_data_for(None).mlp_features, data.mlp_features)
    assert ac.metrics.evaluate(train.obs["cell_type"], model.predict())["ARI"] > 0.8
    model.save(tmp_path / "model")
    loaded = SCRCL.load(tmp_path / "model", train)
    assert loaded.input_features == "counts"
    np.testing.assert_array_equal(loaded.predict(held_back), model.predict(held_back))
    assert ac.metrics.evaluate(held_back.obs["cell_type"], loaded.predict(held_back))["ARI"] > 0.8
    # new cells are checked as the training cells were
    negative = held_back.copy()
    negative.X = negative.X.toarray()
    negative.X[0, 0] = -1
    with pytest.raises(ValueError, match="negative"):
        loaded.predict(negative)


def test_scaled_input_centres_each_gene_on_its_training_mean(counts, tmp_path):
    train, held_back = counts[:500].copy(), counts[500:].copy()
    model = _model(train, input_features="scaled")
    model.train(**(TRAIN | {"max_epochs": 150, "lr": 1e-3}))
    genes = model.module.gene_index.numpy()
    # the same transform written with scanpy: median library size, log1p, per-gene mean and std
    expected = train.copy()
    expected.X = expected.X.astype(np.float64)
    sc.pp.normalize_total(expected, target_sum=float(np.median(np.asarray(train.X.sum(axis=1)))))
    sc.pp.log1p(expected)
    log = expected.X[:, genes].toarray()
    mean, std = log.mean(axis=0), log.std(axis=0, ddof=1)
    std[std == 0] = 1
    expected = np.clip(np.minimum(log / std, 10) - mean / std, -10, 10)
    data = model._graph_data_for(None)
    np.testing.assert_allclose(data.mlp_features, expected, atol=1e-4)
    # new cells are centred on the training means, not on their own
    loaded = _check_graph_and_new_cells(model, train, held_back, tmp_path)
    torch.testing.assert_close(loaded.module.gene_mean, model.module.gene_mean)


def test_pca_input_feeds_the_principal_components_the_graph_is_built_on(counts, tmp_path):
    train, held_back = counts[:500].copy(), counts[500:].copy()
    model = _model(train, n_descriptors=20)
    assert model.input_features == "pca"  # "auto" without spot coordinates
    model.train(**(TRAIN | {"max_epochs": 150, "lr": 1e-3}))
    assert model.module.mlp.in_features == 20 and model.module.gcn_first.linear.in_features == 20
    assert model.module.projector.out_features == 150  # the refinement still maps to the genes
    # the same components written with numpy: scaled log expression (uncentred, clipped at 10), SVD
    genes = model.module.gene_index.numpy()
    log = train.X[:, genes].toarray().astype(np.float64)
    library = np.asarray(train.X.sum(axis=1)).ravel()
    log = np.log1p(log * np.median(library) / library[:, None])
    std = log.std(axis=0, ddof=1)
    std[std == 0] = 1
    scaled = np.minimum(log / std, 10)
    centred = scaled - scaled.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ axes[:3].T
    data = model._graph_data_for(None)
    assert data.mlp_features.shape == (500, 20)
    # the three components that separate the four groups agree up to their sign (the later ones
    # are noise of nearly equal variance, whose order a randomised solver may change)
    np.testing.assert_allclose(np.abs(data.mlp_features[:, :3]), np.abs(expected), atol=1e-2 * np.abs(expected).max())
    # new cells are projected on the training axes
    _check_graph_and_new_cells(model, train, held_back, tmp_path, n_descriptors=20)


def _check_graph_and_new_cells(model, train, held_back, tmp_path, **options) -> SCRCL:
    """The graph is the log features' kNN graph whatever the views read; a reloaded model predicts new cells."""
    log_model = _model(train, input_features="log", **options)
    log_model._fit_input_transform(0)
    assert (model._graph_data_for(None).adjacency != log_model._graph_data_for(None).adjacency).nnz == 0
    assert ac.metrics.evaluate(train.obs["cell_type"], model.predict())["ARI"] > 0.8
    model.save(tmp_path / "model")
    loaded = SCRCL.load(tmp_path / "model", train)
    assert loaded.input_features == model.input_features
    np.testing.assert_array_equal(loaded.predict(held_back), model.predict(held_back))
    assert ac.metrics.evaluate(held_back.obs["cell_type"], loaded.predict(held_back))["ARI"] > 0.8
    return loaded


def test_pca_input_of_large_data_never_forms_the_cells_by_genes_matrix(counts, monkeypatch):
    # above PCA_FIT_MAX_CELLS cells the axes come from a sample and every cell is projected in chunks
    monkeypatch.setattr(scrcl_data, "PCA_FIT_MAX_CELLS", 250)
    formed = []
    original = scrcl_data.scaled_log_features

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        formed.append(result.shape[0])
        return result

    monkeypatch.setattr(scrcl_data, "scaled_log_features", recording)
    scans = []
    original_scan = scrcl_data.scan_counts
    for module in (scrcl_data, train_base):  # the model's own pass is the base's, later ones scRCL's
        monkeypatch.setattr(module, "scan_counts", lambda *a, **k: scans.append(1) or original_scan(*a, **k))
    model = _model(counts, n_descriptors=20)
    model.train(**(TRAIN | {"max_epochs": 150, "lr": 1e-3}))
    assert formed == [250]  # the sample the axes were learned from, and nothing of all 600 cells
    assert len(scans) == 1  # one validating pass over the counts, reused for the projection
    data = model._graph_data_for(None)
    assert data.mlp_features.shape == (600, 20)
    dense = model._components(counts, original_log_features(model, counts))
    np.testing.assert_allclose(data.mlp_features, dense, rtol=1e-4, atol=1e-4)
    assert ac.metrics.evaluate(counts.obs["cell_type"], model.predict())["ARI"] > 0.8


def original_log_features(model, adata):
    """The dense scaled log features of all cells, computed without the model's shortcuts."""
    library = np.asarray(adata.X.sum(axis=1)).ravel()
    return scaled_log_features(
        adata.X,
        library,
        model.module.gene_index.numpy(),
        target_sum=float(model.module.median_library_size),
        std=model.module.gene_std.numpy(),
    )


def test_input_features_auto_reads_expression_with_spot_coordinates():
    tissue = ac.datasets.simulate_tissue(10, 10, 2, 100, random_state=0)
    view = training_view(tissue, obsm_keys=("spatial",))
    SCRCL.setup_anndata(view, spatial_key="spatial")
    assert SCRCL(view, 2, n_top_genes=50).input_features == "scaled"
    assert SCRCL(view, 2, n_top_genes=50, input_features="pca").input_features == "pca"


def test_models_saved_without_gene_means_still_load(counts, tmp_path):
    # models saved before input_features="scaled" existed read uncentred features
    model = _model(counts, input_features="log")
    model.train(**TRAIN)
    model.save(tmp_path / "model")
    # a checkpoint from before input_features="scaled" has no gene_mean buffer
    path = tmp_path / "model" / "model.pt"
    saved = torch.load(path, weights_only=False)
    del saved["model_state_dict"]["gene_mean"]
    torch.save(saved, path)
    loaded = SCRCL.load(tmp_path / "model", counts)
    np.testing.assert_array_equal(loaded.predict(), model.predict())


def test_graph_normalization_chooses_the_gcn_propagation(counts, tmp_path, monkeypatch):
    # "auto" keeps the reference's symmetric normalisation on data trained full batch
    model = _model(counts)
    assert model.graph_normalization == "symmetric"
    model._fit_input_transform(0)
    data = model._graph_data_for(None)
    np.testing.assert_allclose(data.propagation.toarray(), gcn_normalize(data.adjacency).toarray())
    np.testing.assert_allclose(data.propagated_features, data.propagation @ data.mlp_features, rtol=1e-5, atol=1e-6)
    # "mean": each cell averages itself and its neighbours
    mean = _model(counts, graph_normalization="mean")
    mean._fit_input_transform(0)
    mean_data = mean._graph_data_for(None)
    assert (mean_data.adjacency != data.adjacency).nnz == 0
    np.testing.assert_allclose(np.asarray(mean_data.propagation.sum(axis=1)).ravel(), 1, rtol=1e-5)
    with pytest.raises(ValueError, match="graph_normalization"):
        _model(counts, graph_normalization="row")
    # above the full-batch size "auto" takes the mean; a model loaded with fewer cells keeps it
    monkeypatch.setattr("atlasclust.scrcl._model.FULL_BATCH_MAX_CELLS", 500)
    large = _model(counts)
    assert large.graph_normalization == "mean"
    large.train(**(TRAIN | {"max_epochs": 1}))
    large.save(tmp_path / "model")
    assert SCRCL.load(tmp_path / "model", counts[:100].copy()).graph_normalization == "mean"


def test_metric_chooses_the_expression_graph(counts):
    model = _model(counts, metric="cosine")
    model._fit_input_transform(0)
    data = model._graph_data_for(None)
    log_features = model._log_features(model.adata)  # the graph reads the uncentred log features
    coordinates = (log_features - model.module.pca_mean.numpy()) @ model.module.pca_components.numpy().T
    assert model.n_neighbors == 10  # the default for expression graphs
    expected = expression_graph(coordinates, n_neighbors=10, metric="cosine")
    assert (data.adjacency != expected).nnz == 0
    euclidean = _model(counts)
    euclidean._fit_input_transform(0)
    assert (euclidean._graph_data_for(None).adjacency != data.adjacency).nnz > 0
    with pytest.raises(ValueError, match="metric='cosinus'"):
        _model(counts, metric="cosinus")


def test_load_refuses_other_genes(counts, tmp_path):
    model = _model(counts)
    model.train(**(TRAIN | {"max_epochs": 2}))
    model.save(tmp_path / "model")
    with pytest.raises(ValueError, match="Genes do not match"):
        SCRCL.load(tmp_path / "model", counts[:, :150].copy())


def test_training_further_appends_to_the_history(counts):
    model = _model(counts)
    model.train(max_epochs=3, enable_progress_bar=False)
    model.train(max_epochs=2, enable_progress_bar=False)
    assert len(model.history_) == 5
    assert np.isfinite(model.history_["train_loss"].to_numpy()).all()


def test_components_of_given_log_features_are_projected_chunk_by_chunk(counts, monkeypatch):
    model = _model(counts)
    model.train(**(TRAIN | {"max_epochs": 1}))
    rng = np.random.default_rng(0)
    log_features = rng.normal(size=(4000, 150)).astype(np.float32)
    center, axes = model.module.pca_mean.numpy(), model.module.pca_components.numpy()
    expected = (log_features.astype(np.float64) - center) @ axes.T.astype(np.float64)
    monkeypatch.setattr(scrcl_data, "_CHUNK_ROWS", 300)
    tracemalloc.start()
    try:
        components = model._components(counts, log_features)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(components, expected, rtol=1e-4, atol=1e-4)
    # the result and one chunk: no centred copy of all 4000 x 150 features (2.4 MB)
    assert peak < components.nbytes + 0.25 * log_features.nbytes
