"""Resuming an interrupted training from its checkpoints gives the uninterrupted result."""

import json
import logging
import signal
import subprocess
import sys
import time

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
from helpers import FAST, Crash, assert_same_result, assert_unchanged, snapshot

import atlasclust as ac


@pytest.fixture(scope="module")
def cells():
    return ac.datasets.simulate(300, 200, 3, n_markers=20, random_state=0)


# 300 cells in batches of 128 give 3 steps per epoch; 6 epochs: 3 pretraining, 3 clustering
@pytest.mark.parametrize(
    "crash_after",
    [5, 10, 13],
    ids=["mid-pretraining", "first-clustering-step", "mid-clustering"],
)
def test_bgformer_resumes_to_the_uninterrupted_result(cells, tmp_path, crash_after):
    expected = ac.tl.bgformer(cells, 3, copy=True, **FAST)
    interrupted = cells.copy()
    before = snapshot(interrupted)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ac.tl.bgformer(interrupted, 3, checkpoint_dir=tmp_path, callbacks=[Crash(crash_after)], **FAST)
    assert_unchanged(interrupted, before)
    assert (tmp_path / "pretrain" / "last.ckpt").is_file()
    assert (tmp_path / "cluster" / "last.ckpt").is_file() == (crash_after > 12)

    ac.tl.bgformer(interrupted, 3, checkpoint_dir=tmp_path, **FAST)
    assert_same_result(interrupted, expected, "bgformer")
    assert list(interrupted.uns["bgformer"]["history"]["phase"]) == ["pretrain"] * 3 + ["cluster"] * 3


def test_checkpoints_are_written_without_lightnings_notice_at_every_epoch(cells, tmp_path):
    # Lightning 2.6 logged "`weights_only` was not set, defaulting to `False`" at each epoch's save
    messages = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    lightning_logger = logging.getLogger("lightning.pytorch")  # it does not propagate to the root
    level, verbosity = lightning_logger.level, sc.settings.verbosity
    lightning_logger.addHandler(handler)
    lightning_logger.setLevel(logging.INFO)
    sc.settings.verbosity = "info"  # Lightning's info lines show from there on
    try:
        ac.tl.bgformer(cells.copy(), 3, checkpoint_dir=tmp_path, **FAST)
    finally:
        lightning_logger.removeHandler(handler)
        lightning_logger.setLevel(level)
        sc.settings.verbosity = verbosity
    assert (tmp_path / "cluster" / "last.ckpt").exists()
    assert messages  # the handler did hear Lightning
    assert not [m for m in messages if "weights_only" in m]


def test_scrcl_resumes_to_the_uninterrupted_result(cells, tmp_path):
    options = {"n_top_genes": 150, "max_epochs": 6, "batch_size": 100, "enable_progress_bar": False}
    expected = ac.tl.scrcl(cells, 3, copy=True, **options)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ac.tl.scrcl(cells, 3, checkpoint_dir=tmp_path, callbacks=[Crash(11)], copy=True, **options)
    result = ac.tl.scrcl(cells, 3, checkpoint_dir=tmp_path, copy=True, **options)
    assert_same_result(result, expected, "scrcl")
    assert len(result.uns["scrcl"]["history"]) == 6


def test_scrcl_resumes_with_another_readout(cells, tmp_path):
    # the readout is chosen after training, so the interrupted run's checkpoint still applies
    options = {"n_top_genes": 150, "max_epochs": 6, "batch_size": 100, "enable_progress_bar": False}
    expected = ac.tl.scrcl(cells, 3, representation="refined", copy=True, **options)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ac.tl.scrcl(cells, 3, checkpoint_dir=tmp_path, callbacks=[Crash(11)], copy=True, **options)
    result = ac.tl.scrcl(cells, 3, representation="refined", checkpoint_dir=tmp_path, copy=True, **options)
    assert_same_result(result, expected, "scrcl")


def test_a_finished_run_is_restored_without_training(cells, tmp_path):
    first = ac.tl.bgformer(cells, 3, checkpoint_dir=tmp_path, copy=True, **FAST)
    crash = Crash(1)  # any training step would raise
    again = ac.tl.bgformer(cells, 3, checkpoint_dir=tmp_path, copy=True, callbacks=[crash], **FAST)
    assert crash.steps == 0
    assert_same_result(again, first, "bgformer")


def test_checkpoints_of_other_settings_are_refused(cells, tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        ac.tl.bgformer(cells, 3, checkpoint_dir=tmp_path, callbacks=[Crash(4)], copy=True, **FAST)
    adata = cells.copy()
    adata.obs["sample"] = np.repeat(["s1", "s2"], adata.n_obs // 2)
    before = snapshot(adata)
    with pytest.raises(
        ValueError, match=r"other settings \(max_epochs, pretrain_epochs differ\).*empty checkpoint_dir"
    ):
        ac.tl.bgformer(adata, 3, checkpoint_dir=tmp_path, **(FAST | {"max_epochs": 8}))
    with pytest.raises(ValueError, match=r"random_state differ"):
        ac.tl.bgformer(adata, 3, checkpoint_dir=tmp_path, random_state=1, **FAST)
    # every setting of the model counts, not only those in its summary
    with pytest.raises(ValueError, match=r"\(dec_weight differ\)"):
        ac.tl.bgformer(adata, 3, checkpoint_dir=tmp_path, dec_weight=0.5, **FAST)
    with pytest.raises(ValueError, match=r"\(batch_key differ\)"):
        ac.tl.bgformer(adata, 3, checkpoint_dir=tmp_path, batch_key="sample", **FAST)
    assert_unchanged(adata, before)


def test_scrcl_checkpoints_of_other_loss_weights_are_refused(cells, tmp_path):
    options = {"n_top_genes": 150, "max_epochs": 6, "batch_size": 100, "enable_progress_bar": False}
    with pytest.raises(RuntimeError, match="simulated crash"):
        ac.tl.scrcl(cells, 3, checkpoint_dir=tmp_path, callbacks=[Crash(4)], copy=True, **options)
    with pytest.raises(ValueError, match=r"\(alpha differ\)"):
        ac.tl.scrcl(cells, 3, checkpoint_dir=tmp_path, alpha=10.0, copy=True, **options)
    batched = cells.copy()
    batched.obs["sample"] = np.repeat(["s1", "s2"], batched.n_obs // 2)
    with pytest.raises(ValueError, match=r"\(batch_key differ\)"):
        ac.tl.scrcl(batched, 3, checkpoint_dir=tmp_path, batch_key="sample", copy=True, **options)


def test_scrcl_checkpoints_of_other_slices_are_refused(tmp_path):
    tissue = ac.datasets.simulate_tissue(20, 20, 3, n_genes=120, random_state=0)
    tissue.obs["slice"] = np.where(tissue.obsm["spatial"][:, 0] < 10, "left", "right")
    options = {"spatial_key": "spatial", "max_epochs": 6, "n_top_genes": None, "enable_progress_bar": False}
    with pytest.raises(RuntimeError, match="simulated crash"):
        ac.tl.scrcl(tissue, 3, checkpoint_dir=tmp_path, callbacks=[Crash(4)], copy=True, **options)
    with pytest.raises(ValueError, match=r"\(library_key differ\)"):
        ac.tl.scrcl(tissue, 3, checkpoint_dir=tmp_path, library_key="slice", copy=True, **options)


def test_cli_killed_during_training_resumes_to_the_uninterrupted_result(tmp_path):
    source = tmp_path / "in.h5ad"
    ac.datasets.simulate(400, 100, 3, n_markers=20).write_h5ad(source)
    command = [sys.executable, "-m", "atlasclust.cli", "bgformer", str(source), "--max-epochs", "30", "--quiet"]
    checkpoints = tmp_path / "checkpoints"
    process = subprocess.Popen(
        [*command, "-o", str(tmp_path / "out.h5ad"), "--checkpoint-dir", str(checkpoints)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:  # kill it once the clustering phase has saved an epoch: both phases' resume paths then run
        deadline = time.monotonic() + 180
        while not (checkpoints / "cluster" / "last.ckpt").exists() and time.monotonic() < deadline:
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert (checkpoints / "cluster" / "last.ckpt").exists(), "no clustering epoch was saved in 180 s"
    assert not (tmp_path / "out.h5ad").exists()

    subprocess.run([*command, "-o", str(tmp_path / "out.h5ad"), "--checkpoint-dir", str(checkpoints)], check=True)
    subprocess.run([*command, "-o", str(tmp_path / "uninterrupted.h5ad")], check=True)
    resumed, uninterrupted = ad.read_h5ad(tmp_path / "out.h5ad"), ad.read_h5ad(tmp_path / "uninterrupted.h5ad")
    assert_same_result(resumed, uninterrupted, "bgformer")


def test_numpy_and_python_numbers_give_the_same_fingerprint(cells):
    from atlasclust.models import BGFormer
    from atlasclust.train._checkpoints import training_settings

    adata = cells.copy()
    BGFormer.setup_anndata(adata)
    as_numpy = BGFormer(adata, np.int64(3), n_top_genes=100)
    as_python = BGFormer(adata, 3, n_top_genes=100)
    assert json.dumps(training_settings(as_numpy)) == json.dumps(training_settings(as_python))
