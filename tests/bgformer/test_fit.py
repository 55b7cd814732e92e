import pytest
import scvi
from helpers import FAST
from helpers import FAST_MODEL as MODEL
from helpers import FAST_TRAIN as TRAIN

from atlasclust.data import training_view
from atlasclust.models import BGFormer


def test_training_further_appends_to_the_history(counts):
    scvi.settings.seed = 0
    view = training_view(counts)
    BGFormer.setup_anndata(view)
    model = BGFormer(view, 4, **MODEL)
    model.train(**TRAIN)
    model.train(**(TRAIN | {"max_epochs": 4}))
    assert len(model.history_) == FAST["max_epochs"] + 4
    assert list(model.history_["phase"]) == ["pretrain"] * 3 + ["cluster"] * 3 + ["pretrain"] * 2 + ["cluster"] * 2


def test_block_shuffling_on_the_device_is_refused_before_any_training(counts):
    view = training_view(counts)
    BGFormer.setup_anndata(view)
    model = BGFormer(view, 4, **MODEL)
    with pytest.raises(ValueError, match="shuffle_block_size > 1 works on one device"):
        model.train(**TRAIN, shuffle_block_size=8, data_on_device=True)
    assert not model.is_prepared_ and not model.is_trained_  # nothing was learned


def test_the_dec_centres_start_from_the_pre_trained_embedding(clustered):
    _, model = clustered
    # one centre per cluster, in the embedding's width, and the shares of cells nearest each when set
    assert model.module.centers.shape == (model.n_clusters_, MODEL["n_latent"])
    fractions = model.cluster_start_fractions()
    assert fractions.shape == (model.n_clusters_,) and abs(fractions.sum() - 1) < 1e-6
    assert model.center_start_["start"] in ("kmeans", "merged")
