import tracemalloc

import numpy as np
import pytest
import scanpy as sc
import torch
from helpers import SCRCL_TRAIN as TRAIN
from helpers import small_scrcl as _model
from sklearn.cluster import KMeans

import atlasclust as ac
from atlasclust.data import scaled_log_features, training_view
from atlasclust.data._graphs import expression_graph, gcn_normalize
from atlasclust.models import SCRCL
from atlasclust.scrcl import _data as scrcl_data
from atlasclust.scrcl import _module as scrcl_module
from atlasclust.train import _base as train_base


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
    components = data.mlp_features + model.module.input_center.numpy()  # the origin moved (input_center)
    # the three components that separate the four groups agree up to their sign (the later ones
    # are noise of nearly equal variance, whose order a randomised solver may change)
    np.testing.assert_allclose(np.abs(components[:, :3]), np.abs(expected), atol=1e-2 * np.abs(expected).max())
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
    dense = model._components(counts, original_log_features(model, counts)) - model.module.input_center.numpy()
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


def _dominant_type(counts):
    """``counts`` with one type kept whole and 15 cells of each other: about 77 % of the cells are one type."""
    types = counts.obs["cell_type"].to_numpy()
    keep = np.concatenate([np.flatnonzero(types == t)[: None if t == types[0] else 15] for t in np.unique(types)])
    return counts[np.sort(keep)].copy()


def test_balanced_input_center_moves_the_origin_out_of_the_largest_type(counts):
    adata = _dominant_type(counts)
    largest = (adata.obs["cell_type"] == adata.obs["cell_type"].iloc[0]).to_numpy()
    assert largest.mean() > 0.7
    inputs = {}
    for center in ("balanced", "mean"):
        model = _model(adata, n_descriptors=20, input_center=center)
        model._fit_input_transform(0)
        inputs[center] = (model, model._graph_data_for(None).mlp_features)
    mean_model, mean_input = inputs["mean"]
    balanced_model, balanced_input = inputs["balanced"]
    assert not mean_model.module.input_center.any()  # "mean": the components as they are
    # the origin is the coordinate-wise median of the centres of k-means at n_refined (4) clusters
    components = mean_input.astype(np.float64)
    centers = KMeans(n_clusters=4, n_init=10, random_state=0).fit(components).cluster_centers_
    np.testing.assert_allclose(balanced_model.module.input_center.numpy(), np.median(centers, axis=0), atol=1e-4)
    np.testing.assert_allclose(balanced_input, components - np.median(centers, axis=0), atol=1e-4)

    def origin_depth(features):
        """Distance from the origin to the largest type's centre, in units of that type's spread."""
        group = features[largest]
        spread = np.sqrt(((group - group.mean(axis=0)) ** 2).sum(axis=1).mean())
        return np.linalg.norm(group.mean(axis=0)) / spread

    # at the mean cell the origin lies near the largest type's centre; the balanced origin at its edge
    # (0.18 and 0.83 of its spread over all 20 components, most of them noise)
    assert origin_depth(mean_input) < 0.3
    assert origin_depth(balanced_input) > 0.6


@pytest.mark.parametrize(("fit_max_cells", "projected"), [(50_000, [600]), (250, [250, 600])])
def test_the_origin_and_the_views_share_one_projection_of_the_cells(counts, monkeypatch, fit_max_cells, projected):
    # when every cell is in the sample the axes come from, the components found for the origin
    # are the views' input; above it the sample and then all cells are projected once each
    monkeypatch.setattr(scrcl_data, "PCA_FIT_MAX_CELLS", fit_max_cells)
    model = _model(counts, n_descriptors=20)
    rows = []
    original = type(model)._components

    def recording(self, adata, *args, **kwargs):
        result = original(self, adata, *args, **kwargs)
        rows.append(len(result))
        return result

    monkeypatch.setattr(type(model), "_components", recording)
    model._fit_input_transform(0)
    assert rows == projected
    dense = original(model, counts, original_log_features(model, counts)) - model.module.input_center.numpy()
    np.testing.assert_allclose(model._graph_data_for(None).mlp_features, dense, rtol=1e-4, atol=1e-4)


def test_each_cluster_of_the_components_weighs_alike_among_the_negatives(counts, monkeypatch):
    adata = _dominant_type(counts)
    model = _model(adata, n_descriptors=20, input_center="mean")
    model._fit_input_transform(0)
    data = model._graph_data_for(None)
    # the same k-means as the balanced origin's: n_refined (4) clusters of the training components
    labels = KMeans(n_clusters=4, n_init=10, random_state=0).fit_predict(data.mlp_features.astype(np.float64))
    sizes = np.bincount(labels)
    np.testing.assert_allclose(data.negative_weight, adata.n_obs / 4 / sizes[labels], rtol=1e-5)
    assert data.negative_weight.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(np.bincount(labels, weights=data.negative_weight), adata.n_obs / 4, rtol=1e-5)
    # the largest type weighs less per cell than the others
    largest = (adata.obs["cell_type"] == adata.obs["cell_type"].iloc[0]).to_numpy()
    assert data.negative_weight[largest].mean() < 0.5 * data.negative_weight[~largest].mean()
    assert "negative_weight" in data.batch(np.arange(10), "cpu")
    # the loss during training reads them
    seen = []
    original = scrcl_module.ndc_loss

    def recording(*args, negative_weight=None, **kwargs):
        seen.append(negative_weight is not None)
        return original(*args, negative_weight=negative_weight, **kwargs)

    monkeypatch.setattr(scrcl_module, "ndc_loss", recording)
    model.train(**(TRAIN | {"max_epochs": 2}))
    assert seen and all(seen)
    for options in ({"balance_negatives": False}, {"input_features": "scaled"}):
        other = _model(adata, n_descriptors=20, **options)
        other._fit_input_transform(0)
        assert other._graph_data_for(None).negative_weight is None
        assert "negative_weight" not in other._graph_data_for(None).batch(np.arange(10), "cpu")


def test_input_center_applies_to_the_components_only(counts):
    model = _model(counts, input_features="scaled")
    model._fit_input_transform(0)
    assert not model.module.input_center.any()
    with pytest.raises(ValueError, match="input_center"):
        _model(counts, input_center="median")


def test_input_features_auto_reads_expression_with_spot_coordinates():
    tissue = ac.datasets.simulate_tissue(10, 10, 2, 100, random_state=0)
    view = training_view(tissue, obsm_keys=("spatial",))
    SCRCL.setup_anndata(view, spatial_key="spatial")
    assert SCRCL(view, 2, n_top_genes=50).input_features == "scaled"
    assert SCRCL(view, 2, n_top_genes=50, input_features="pca").input_features == "pca"


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
