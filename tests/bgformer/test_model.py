import numpy as np
import pytest
import scipy.sparse as sp
from helpers import FAST_MODEL as MODEL
from helpers import FAST_TRAIN as TRAIN

import atlasclust as ac
from atlasclust.models import BGFormer
from atlasclust.train._assign import leiden_on_embedding


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


def test_leiden_on_more_than_4096_cells():
    # scanpy 1.11 with pynndescent 0.7.0 crashed in sc.pp.neighbors above 4096 cells
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 10, size=(3, 8))
    latent = np.concatenate([c + rng.normal(size=(1700, 8)) for c in centers]).astype(np.float32)
    groups = leiden_on_embedding(latent, resolution=0.1, random_state=0)
    truth = np.repeat(np.arange(3), 1700)
    assert ac.metrics.evaluate(truth, groups)["ARI"] > 0.99


# CSC counts on purpose: scvi-tools suggests CSR when it registers them
@pytest.mark.filterwarnings("ignore:Training will be faster when sparse matrix is formatted as CSR:UserWarning")
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
