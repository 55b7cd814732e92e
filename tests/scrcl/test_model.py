import numpy as np
import pytest
import torch
from helpers import SCRCL_TRAIN as TRAIN
from helpers import small_scrcl as _model

import atlasclust as ac
from atlasclust.models import SCRCL


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
    # as documented: the hard label is the nearest centre (Euclidean) to the unit rows beside the
    # components the views read, each divided by its training spread; soft is the cosine
    unit = loaded.get_latent_representation(held_back)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    components = loaded._components(held_back) - loaded.module.input_center.numpy()
    torch.testing.assert_close(loaded.module.cluster_scales, model.module.cluster_scales)
    embedding_scale, component_scale = loaded.module.cluster_scales.numpy()
    rows = np.hstack([unit / embedding_scale, components / component_scale])
    centers = loaded.module.cluster_centers.numpy()
    assert centers.shape == (4, unit.shape[1] + components.shape[1])
    nearest = ((rows[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(loaded.predict(held_back), nearest)
    unit_rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cosine = unit_rows @ (centers / np.linalg.norm(centers, axis=1, keepdims=True)).T
    np.testing.assert_allclose(soft.to_numpy(), cosine, atol=1e-5)


def test_the_components_are_clustered_beside_the_embedding_each_at_its_spread(counts):
    model = _model(counts)
    model.train(**TRAIN)
    unit = model.get_latent_representation()
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    components = model._graph_data_for(None).components
    # the training spread: the root mean squared distance of the rows from their mean
    spread = [np.sqrt(((x - x.mean(0)) ** 2).sum(1).mean()) for x in (unit, components)]
    np.testing.assert_allclose(model.module.cluster_scales.numpy(), spread, rtol=1e-4)
    assert components.shape == (counts.n_obs, model.n_descriptors)
    # alone: the unit rows of the embedding, centres as wide as it, no scales
    alone = _model(counts, cluster_components=False)
    alone.train(**TRAIN)
    assert len(alone.module.cluster_scales) == 0 and alone._graph_data_for(None).components is None
    assert alone.module.cluster_centers.shape[1] == unit.shape[1]
    # without n_clusters Leiden clusters the embedding alone, whatever the option says
    found = SCRCL(alone.adata, None, n_top_genes=150, n_hidden=64)
    found.train(**TRAIN)
    assert len(found.module.cluster_scales) == 0
    assert found.module.cluster_centers.shape[1] == unit.shape[1]
    # the spatial input (centred genes) has no components to add
    scaled = _model(counts, input_features="scaled")
    scaled.train(**TRAIN)
    assert len(scaled.module.cluster_scales) == 0


def test_models_saved_before_cluster_components_cluster_the_embedding_alone(counts, tmp_path):
    model = _model(counts, cluster_components=False)
    model.train(**TRAIN)
    older = _reloaded_without(model, "cluster_scales", counts, tmp_path, option="cluster_components")
    assert older.cluster_components is False
    assert older.init_params_["non_kwargs"]["cluster_components"] is False
    np.testing.assert_array_equal(older.predict(), model.predict())


def test_models_saved_without_gene_means_still_load(counts, tmp_path):
    # models saved before input_features="scaled" existed read uncentred features
    model = _model(counts, input_features="log")
    model.train(**TRAIN)
    # a checkpoint from before input_features="scaled" has no gene_mean buffer
    loaded = _reloaded_without(model, "gene_mean", counts, tmp_path)
    np.testing.assert_array_equal(loaded.predict(), model.predict())


def _reloaded_without(model, buffer: str, adata, tmp_path, *, option: str | None = None):
    """``model`` saved, its ``buffer`` (and constructor ``option``) deleted from the checkpoint, as older versions wrote it, and loaded."""
    model.save(tmp_path / "model", overwrite=True)
    path = tmp_path / "model" / "model.pt"
    saved = torch.load(path, weights_only=False)
    del saved["model_state_dict"][buffer]
    if option is not None:
        del saved["attr_dict"]["init_params_"]["non_kwargs"][option]
    torch.save(saved, path)
    return SCRCL.load(tmp_path / "model", adata)


def test_models_saved_without_input_center_still_load(counts, tmp_path):
    # models saved before input_center="balanced" read the components as they are
    model = _model(counts, input_center="mean")
    model.train(**TRAIN)
    loaded = _reloaded_without(model, "input_center", counts, tmp_path, option="input_center")
    assert not loaded.module.input_center.any()
    np.testing.assert_array_equal(loaded.predict(), model.predict())
    # and says so, although the constructor's default filled the option in
    assert loaded.input_center == "mean"
    assert loaded.init_params_["non_kwargs"]["input_center"] == "mean"
    # a model saved with the balanced origin keeps it for new cells
    balanced = _model(counts)
    balanced.train(**TRAIN)
    assert balanced.module.input_center.abs().sum() > 0
    balanced.save(tmp_path / "balanced")
    reloaded = SCRCL.load(tmp_path / "balanced", counts)
    torch.testing.assert_close(reloaded.module.input_center, balanced.module.input_center)
    np.testing.assert_array_equal(reloaded.predict(), balanced.predict())


def test_the_contrastive_weights_come_back_with_a_saved_model(counts, tmp_path):
    # a further fit of a loaded model weighs the cells as the first fit did
    model = _model(counts)
    model.train(**(TRAIN | {"max_epochs": 2}))
    weights = model._graph_data_for(None).negative_weight
    assert weights is not None and weights.std() > 0
    model.save(tmp_path / "balanced")
    loaded = SCRCL.load(tmp_path / "balanced", counts)
    torch.testing.assert_close(loaded.module.negative_centers, model.module.negative_centers)
    np.testing.assert_array_equal(loaded._graph_data_for(None).negative_weight, weights)
    # models saved before the weights existed weigh every cell alike
    older = _reloaded_without(model, "negative_centers", counts, tmp_path, option="balance_negatives")
    assert older._graph_data_for(None).negative_weight is None
    assert older.balance_negatives is False
    assert older.init_params_["non_kwargs"]["balance_negatives"] is False
    assert loaded.balance_negatives is True
    np.testing.assert_array_equal(older.predict(), model.predict())


def test_load_refuses_other_genes(counts, tmp_path):
    model = _model(counts)
    model.train(**(TRAIN | {"max_epochs": 2}))
    model.save(tmp_path / "model")
    with pytest.raises(ValueError, match="Genes do not match"):
        SCRCL.load(tmp_path / "model", counts[:, :150].copy())
