"""Training on two CPU processes with Lightning's DDP (gloo), as on several GPUs."""

import subprocess
import sys

import numpy as np
import pytest
from lightning.pytorch.callbacks import Callback

import atlasclust as ac
from atlasclust.train._plan import TrainingPlan

SCRIPT = """
import sys
import numpy as np
import pandas as pd
import atlasclust as ac

method = sys.argv[1]
adata = ac.datasets.simulate(400, 100, 3, n_markers=20, random_state=0)
model = getattr(ac.tl, method)(
    adata, 3, n_top_genes=80, max_epochs=4, enable_progress_bar=False,
    accelerator="cpu", devices=2, strategy="ddp", return_model=True,
)
trainer = model.trainer
state = {}
if method == "bgformer":
    state = {"anchors": model.module.codebook.anchors.detach().numpy(), "centers": model.module.centers.detach().numpy()}
np.savez(
    f"rank{trainer.global_rank}.npz",
    world_size=trainer.world_size,
    embedding=adata.obsm["X_" + method],
    labels=adata.obs[method].to_numpy().astype(str),
    categorical=isinstance(adata.obs[method].dtype, pd.CategoricalDtype),
    history_rows=len(adata.uns[method]["history"]),
    **state,
)
"""


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_ddp_on_two_cpu_processes_keeps_every_process_in_step(method, tmp_path):
    # Lightning starts the second process by running the same script file again
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    subprocess.run([sys.executable, str(script), method], cwd=tmp_path, check=True, capture_output=True, timeout=600)
    first, second = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    assert first["world_size"] == second["world_size"] == 2
    # the output contract, on the first process (the one that writes results)
    assert first["embedding"].shape[0] == 400
    assert first["embedding"].dtype == np.float32 and np.isfinite(first["embedding"]).all()
    assert first["categorical"] and len(set(first["labels"])) == 3
    assert first["history_rows"] == 4
    # anchors re-seeded in place and DEC centres stay the same on both processes, and so do the results
    for key in ("anchors", "centers", "embedding", "labels"):
        if key in first:
            np.testing.assert_array_equal(first[key], second[key], err_msg=key)


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_optimiser_uses_fused_kernels_on_the_cpu(method):
    adata = ac.datasets.simulate(120, 60, 2, n_markers=10, random_state=0)
    model = getattr(ac.tl, method)(
        adata, 2, n_top_genes=40, max_epochs=2, enable_progress_bar=False, copy=True, return_model=True
    )[1]
    assert model.trainer.optimizers[0].defaults["fused"] is True


class _StepLosses(Callback):
    """Each training step's loss and number of cells."""

    def __init__(self):
        self.steps: list[tuple[int, float, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.steps.append((trainer.current_epoch, float(loss), len(batch["ind_x"])))


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_training_metrics_are_logged_once_per_epoch_as_cell_weighted_means(method, monkeypatch):
    adata = ac.datasets.simulate(300, 60, 2, n_markers=10, random_state=0)
    calls = []
    log = TrainingPlan.log
    monkeypatch.setattr(TrainingPlan, "log", lambda self, name, *a, **k: calls.append(name) or log(self, name, *a, **k))
    steps = _StepLosses()
    model = getattr(ac.tl, method)(
        adata,
        2,
        n_top_genes=40,
        max_epochs=3,
        batch_size=128,
        enable_progress_bar=False,
        callbacks=[steps],
        copy=True,
        return_model=True,
    )[1]
    # 3 steps per epoch (300 cells in batches of 128), yet each metric is logged once per epoch
    assert len(steps.steps) == 9
    assert calls.count("train_loss") == 3
    epochs = np.array([epoch for epoch, _, _ in steps.steps])
    losses = np.array([loss for _, loss, _ in steps.steps])
    cells = np.array([n for _, _, n in steps.steps])
    # BGFormer's two fits count epochs from 0 each: the history rows follow the order of the steps
    order = np.cumsum(np.r_[True, np.diff(epochs) != 0]) - 1
    expected = [np.average(losses[order == row], weights=cells[order == row]) for row in range(3)]
    np.testing.assert_allclose(model.history_["train_loss"].to_numpy(dtype=float), expected, rtol=1e-5)
    # every fit's epochs were timed
    assert sum(len(fit) for fit in model.epoch_seconds_) == 3
    assert all(seconds > 0 for fit in model.epoch_seconds_ for seconds in fit)
