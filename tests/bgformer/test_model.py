import numpy as np
import pytest
import scipy.sparse as sp
import scvi
from helpers import FAST

import atlasclust as ac
from atlasclust.bgformer._defaults import default_max_epochs
from atlasclust.data import training_view
from atlasclust.models import BGFormer
from atlasclust.train._assign import leiden_on_embedding

MODEL = {k: FAST[k] for k in ("n_top_genes", "n_latent", "n_anchors", "n_heads")}
TRAIN = {k: FAST[k] for k in ("max_epochs", "batch_size", "enable_progress_bar")}


def test_save_load_gives_identical_embeddings_and_labels(clustered, tmp_path):
    adata, model = clustered
    model.save(tmp_path / "model")
    loaded = BGFormer.load(tmp_path / "model", adata=adata)
    np.testing.assert_array_equal(loaded.get_latent_representation(), model.get_latent_representation())
    np.testing.assert_array_equal(loaded.predict(), model.predict())
    assert "_indices" not in adata.obs  # loading registers a view, not the user's object


def test_start_of_the_dec_phase_is_kept_with_the_weights(clustered, tmp_path):
    adata, model = clustered
    start = model.module.start_fractions.cpu().numpy()
    assert start.shape == (model.n_clusters_,)
    np.testing.assert_allclose(start.sum(), 1.0, rtol=1e-5)
    assert (start > 0).all()  # k-means on these well separated groups leaves no centre without cells
    model.save(tmp_path / "model")
    loaded = BGFormer.load(tmp_path / "model", adata=adata)
    np.testing.assert_array_equal(loaded.module.start_fractions.cpu().numpy(), start)
    # a model saved before the start was recorded loads, with the start unknown
    old = {k: v for k, v in model.module.state_dict().items() if k != "start_fractions"}
    loaded.module.load_state_dict(old)
    assert np.isnan(loaded.module.start_fractions.cpu().numpy()).all()
    np.testing.assert_array_equal(loaded.module.centers.detach().cpu(), model.module.centers.detach().cpu())


def test_save_refuses_to_overwrite(clustered, tmp_path):
    _, model = clustered
    model.save(tmp_path / "model")
    with pytest.raises(ValueError, match="already exists"):
        model.save(tmp_path / "model")
    model.save(tmp_path / "model", overwrite=True)


def test_load_with_other_genes_lists_the_difference(clustered, tmp_path):
    adata, model = clustered
    model.save(tmp_path / "model")
    other = adata[:, 5:].copy()
    with pytest.raises(ValueError, match=r"missing: \['gene_0'"):
        BGFormer.load(tmp_path / "model", adata=other)


def test_predict_on_cells_never_seen_in_training():
    adata = ac.datasets.simulate(700, 200, 4, n_markers=25, random_state=5)
    train, held_out = adata[:550].copy(), adata[550:].copy()
    scvi.settings.seed = 0
    BGFormer.setup_anndata(train)
    model = BGFormer(train, 4, **MODEL)
    model.train(**TRAIN)
    labels = model.predict(held_out)
    soft = model.predict(held_out, soft=True)
    assert labels.shape == (150,)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-5)
    assert list(soft.index) == list(held_out.obs_names)
    np.testing.assert_array_equal(soft.to_numpy().argmax(axis=1), labels)
    assert ac.metrics.evaluate(held_out.obs["cell_type"], labels)["ARI"] > 0.9
    # the same cells give the same labels whether or not they come with others
    np.testing.assert_array_equal(model.predict(held_out[:40].copy()), labels[:40])


def test_attention_per_cell_and_per_group(clustered):
    adata, model = clustered
    weights = model.get_attention(indices=np.arange(50))
    assert weights.shape == (50, 4, 16)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    groups = adata.obs["cell_type"].to_numpy()[:50]
    means = model.get_attention(indices=np.arange(50), groups=groups)
    for name, mean in means.items():
        np.testing.assert_allclose(mean, weights[groups == name].mean(axis=0), rtol=1e-5)


def test_leiden_on_more_than_4096_cells():
    # scanpy 1.11 with pynndescent 0.7.0 crashed in sc.pp.neighbors above 4096 cells
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 10, size=(3, 8))
    latent = np.concatenate([c + rng.normal(size=(1700, 8)) for c in centers]).astype(np.float32)
    groups = leiden_on_embedding(latent, resolution=0.1, random_state=0)
    truth = np.repeat(np.arange(3), 1700)
    assert ac.metrics.evaluate(truth, groups)["ARI"] > 0.99


def test_sparse_array_counts_are_read_as_the_sparse_matrix(clustered, counts):
    adata, model = clustered
    held = adata.copy()
    held.X = sp.csr_array(held.X)
    np.testing.assert_array_equal(model.predict(held), model.predict())  # through a view: held untouched
    assert isinstance(held.X, sp.csr_array)
    user = counts.copy()
    user.layers["counts"] = sp.csc_array(user.X)
    BGFormer.setup_anndata(user, layer="counts")  # registers the user's object: same data, matrix type
    assert isinstance(user.layers["counts"], sp.csc_matrix)
    assert (user.layers["counts"] != counts.X).nnz == 0
    BGFormer(user, n_clusters=4, **MODEL).train(**TRAIN)  # scvi-tools' loaders read it


def test_setup_anndata_with_missing_layer_raises(counts):
    with pytest.raises(KeyError, match="Layer 'counts' not found"):
        BGFormer.setup_anndata(counts, layer="counts")


def test_training_further_appends_to_the_history(counts):
    scvi.settings.seed = 0
    view = training_view(counts)
    BGFormer.setup_anndata(view)
    model = BGFormer(view, 4, **MODEL)
    model.train(**TRAIN)
    model.train(**(TRAIN | {"max_epochs": 4}))
    assert len(model.history_) == FAST["max_epochs"] + 4
    assert list(model.history_["phase"]) == ["pretrain"] * 3 + ["cluster"] * 3 + ["pretrain"] * 2 + ["cluster"] * 2


def test_sparse_counts_are_densified_on_the_host_for_inference_on_the_cpu(clustered):
    adata, model = clustered
    assert sp.issparse(adata.X)
    asked = []
    make_loader = model._make_data_loader
    model._make_data_loader = lambda *args, **kwargs: (
        asked.append(kwargs["load_sparse_tensor"]) or make_loader(*args, **kwargs)
    )
    try:
        latent = model.get_latent_representation()
    finally:
        del model._make_data_loader  # the class's method again (a session-wide fixture)
    assert asked == [False]  # scipy densifies on the CPU several times faster than torch's sparse tensors
    dense = adata.copy()
    dense.X = dense.X.toarray()
    np.testing.assert_array_equal(model.get_latent_representation(dense), latent)


def test_default_epochs_count_steps_of_the_batch_used():
    # the default batch of 256: 15 epochs on large data, more on small data for about 300 steps
    assert default_max_epochs(50_000) == 15
    assert default_max_epochs(1_000) == 77
    # a batch of 16,384 takes 4 steps per epoch on 50,000 cells: 99 epochs make 396 steps
    assert default_max_epochs(50_000, 16_384) == 99
    assert default_max_epochs(1_000_000, 16_384) == 15
    # a batch as large as the data: one step per epoch, at most 300 epochs
    assert default_max_epochs(1_000, 4_096) == 300
