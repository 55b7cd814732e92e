"""Both methods on a CUDA device: the output contract, accuracy, determinism and resume (skipped without one)."""

import numpy as np
import pytest
import torch
from helpers import FAST, Crash, assert_same_result

import atlasclust as ac

pytestmark = pytest.mark.gpu

SCRCL_FAST = {"n_top_genes": 150, "enable_progress_bar": False}  # default epochs: 500 full-batch steps


@pytest.fixture(scope="module")
def cells():
    return ac.datasets.simulate(2000, 300, 4, n_markers=25, random_state=0)


def _check_output(adata, key: str, n_clusters: int) -> None:
    assert adata.obs[key].dtype == "category"
    assert adata.obs[key].nunique() == n_clusters
    assert np.isfinite(adata.obsm[f"X_{key}"]).all()
    assert ac.metrics.evaluate(adata.obs["cell_type"], adata.obs[key])["ARI"] > 0.9


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_trains_on_the_gpu_and_writes_the_contract(cells, method):
    adata = cells.copy()
    options = FAST if method == "bgformer" else SCRCL_FAST
    model = getattr(ac.tl, method)(adata, 4, accelerator="gpu", return_model=True, **options)
    assert next(model.module.parameters()).device.type == "cuda"
    _check_output(adata, method, 4)
    assert np.isfinite(adata.uns[method]["history"]["train_loss"]).all()


def test_gpu_and_cpu_embeddings_agree_on_the_clusters(cells):
    on_gpu = ac.tl.bgformer(cells, 4, accelerator="gpu", copy=True, **FAST)
    on_cpu = ac.tl.bgformer(cells, 4, accelerator="cpu", copy=True, **FAST)
    # floating-point order differs between devices, so the runs are not bitwise equal; the partitions are
    assert ac.metrics.evaluate(on_cpu.obs["bgformer"], on_gpu.obs["bgformer"])["ARI"] > 0.95


def test_deterministic_scrcl_is_bitwise_reproducible_on_the_gpu(cells):
    options = SCRCL_FAST | {"accelerator": "gpu", "deterministic": True}
    first = ac.tl.scrcl(cells, 4, copy=True, **options)
    second = ac.tl.scrcl(cells, 4, copy=True, **options)
    assert_same_result(second, first, "scrcl")


def _assert_close_result(result, expected, key: str) -> None:
    np.testing.assert_allclose(result.obsm[f"X_{key}"], expected.obsm[f"X_{key}"], atol=1e-3)
    assert ac.metrics.evaluate(expected.obs[key], result.obs[key])["ARI"] > 0.99


DETERMINISTIC_GPU = FAST | {"accelerator": "gpu", "deterministic": True}


@pytest.fixture(scope="module")
def deterministic_bgformer_runs(cells):
    """Two deterministic BGFormer runs on the GPU with the same seed, shared by the tests below."""
    return tuple(ac.tl.bgformer(cells, 4, copy=True, **DETERMINISTIC_GPU) for _ in range(2))


def test_deterministic_bgformer_runs_agree_on_the_gpu(deterministic_bgformer_runs):
    first, second = deterministic_bgformer_runs
    _assert_close_result(second, first, "bgformer")


@pytest.mark.xfail(
    strict=False,
    reason="known gap: on an H100 two deterministic BGFormer runs once differed by 4e-5 (docs/reproducibility.md)",
)
def test_deterministic_bgformer_is_bitwise_reproducible_on_the_gpu(deterministic_bgformer_runs):
    first, second = deterministic_bgformer_runs
    assert_same_result(second, first, "bgformer")


def test_resume_on_the_gpu_ends_at_the_uninterrupted_result(cells, deterministic_bgformer_runs, tmp_path):
    expected = deterministic_bgformer_runs[0]  # an uninterrupted run of the same settings
    steps_per_epoch = -(-cells.n_obs // FAST["batch_size"])
    with pytest.raises(RuntimeError, match="simulated crash"):
        crash = Crash(4 * steps_per_epoch + 2)  # inside the clustering phase
        ac.tl.bgformer(cells, 4, checkpoint_dir=tmp_path, callbacks=[crash], copy=True, **DETERMINISTIC_GPU)
    resumed = ac.tl.bgformer(cells, 4, checkpoint_dir=tmp_path, copy=True, **DETERMINISTIC_GPU)
    # bit for bit on the CPU (tests/test_checkpoints.py); on the GPU within 5e-5 as measured
    _assert_close_result(resumed, expected, "bgformer")
    assert list(resumed.uns["bgformer"]["history"]["phase"]) == ["pretrain"] * 3 + ["cluster"] * 3


def test_a_model_trained_on_the_gpu_predicts_on_the_cpu(cells):
    adata = cells.copy()
    model = ac.tl.bgformer(adata, 4, accelerator="gpu", return_model=True, **FAST)
    model.module.to("cpu")
    assert (model.predict() == adata.obs["bgformer"].cat.codes.to_numpy()).mean() > 0.99
    assert torch.cuda.memory_allocated() < 2**30


def test_data_are_kept_on_the_gpu_by_default_and_freed_after_training(cells):
    from atlasclust.data import DeviceDataSplitter

    adata = cells.copy()
    model = ac.tl.bgformer(adata, 4, accelerator="gpu", return_model=True, **FAST)
    assert isinstance(model.trainer.datamodule, DeviceDataSplitter)
    assert model.trainer.datamodule.train_tensor_dict is None  # the copy on the GPU was released
    assert model._device_rows is None
    _check_output(adata, "bgformer", 4)
    on_host = ac.tl.bgformer(cells, 4, accelerator="gpu", data_on_device=False, copy=True, **FAST)
    assert ac.metrics.evaluate(on_host.obs["bgformer"], adata.obs["bgformer"])["ARI"] > 0.95


def test_inference_from_the_copy_kept_on_the_gpu_matches_reading_from_the_host(cells):
    from atlasclust.models import BGFormer

    adata = cells.copy()
    BGFormer.setup_anndata(adata)
    model = BGFormer(adata, 4, n_top_genes=FAST["n_top_genes"], n_latent=32, n_anchors=16)
    model.train(4, batch_size=128, accelerator="gpu", enable_progress_bar=False)
    assert model._device_rows is not None and model._device_rows.device.type == "cuda"
    kept = model.summarize()
    model.release_device_data()
    read = model.summarize()
    np.testing.assert_allclose(kept["latent"], read["latent"], atol=1e-4)
    assert (kept["soft"].argmax(1) == read["soft"].argmax(1)).mean() > 0.99
    np.testing.assert_allclose(kept["anchor_usage"], read["anchor_usage"], atol=1e-3)


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_batch_key_on_the_gpu(two_batches, method):
    # BGFormer keeps the batch codes with the counts on the GPU; scRCL's centring happens on the host
    options = (FAST | {"max_epochs": 10} if method == "bgformer" else SCRCL_FAST) | {"n_top_genes": None}
    result = getattr(ac.tl, method)(two_batches, 3, batch_key="batch", accelerator="gpu", copy=True, **options)
    assert ac.metrics.evaluate(two_batches.obs["cell_type"], result.obs[method])["ARI"] >= 0.9
