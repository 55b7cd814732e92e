import numpy as np
import pytest
from helpers import assert_unchanged, snapshot

import atlasclust as ac
from atlasclust.models import BGFormer
from atlasclust.train import load_saved_model

SMALL = {"n_top_genes": 40, "n_latent": 8, "n_anchors": 4, "n_heads": 2, "n_ffn": 16}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    adata = ac.datasets.simulate(120, 60, 2, random_state=0)
    adata.obs["batch"] = np.where(np.arange(adata.n_obs) % 2, "a", "b")
    _, model = ac.tl.bgformer(
        adata, 2, batch_key="batch", max_epochs=2, enable_progress_bar=False, return_model=True, copy=True, **SMALL
    )
    folder = tmp_path_factory.mktemp("model")
    model.save(folder, overwrite=True, save_anndata=True)
    return adata, folder, model.predict()


def test_loading_for_a_users_anndata_leaves_it_untouched_and_predicts_the_same(saved):
    adata, folder, predicted = saved
    before = snapshot(adata)
    model = load_saved_model(BGFormer, folder, adata)
    assert_unchanged(adata, before)
    np.testing.assert_array_equal(model.predict(), predicted)
    assert load_saved_model(BGFormer, folder, None).adata.n_obs == adata.n_obs  # the data saved with it


def test_other_genes_or_unknown_batches_are_refused_with_what_differs(saved):
    adata, folder, _ = saved
    with pytest.raises(ValueError, match="gene"):
        load_saved_model(BGFormer, folder, adata[:, ::-1].copy())
    other = adata.copy()
    other.obs["batch"] = "c"
    with pytest.raises(ValueError, match="'c'"):
        load_saved_model(BGFormer, folder, other)
