import numpy as np
import pytest
import torch
from helpers import SCRCL_TRAIN as TRAIN
from helpers import small_scrcl as _model

import atlasclust as ac


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


def test_training_further_appends_to_the_history(counts):
    model = _model(counts)
    model.train(max_epochs=3, enable_progress_bar=False)
    model.train(max_epochs=2, enable_progress_bar=False)
    assert len(model.history_) == 5
    assert np.isfinite(model.history_["train_loss"].to_numpy()).all()
