import anndata as ad
import numpy as np
import pytest
import torch
from helpers import FAST
from scvi import REGISTRY_KEYS

import atlasclust as ac
from atlasclust.data import DeviceRows, resolve_data_on_device
from atlasclust.models import BGFormer


def test_data_stay_on_the_host_by_default_without_a_gpu(counts):
    assert resolve_data_on_device(None, counts, accelerator="cpu", devices="auto", strategy="auto") is False
    assert resolve_data_on_device(True, counts, accelerator="cpu", devices=1, strategy="auto") is True


@pytest.mark.parametrize(
    ("devices", "strategy", "message"),
    [(2, "ddp", "one device only"), (1, "ddp_spawn", "one device only"), (2, "auto", "one device only")],
)
def test_data_on_device_refuses_several_devices(counts, devices, strategy, message):
    with pytest.raises(ValueError, match=message):
        resolve_data_on_device(True, counts, accelerator="cpu", devices=devices, strategy=strategy)


def test_data_on_device_refuses_backed_data(counts, tmp_path):
    counts.write_h5ad(tmp_path / "counts.h5ad")
    backed = ad.read_h5ad(tmp_path / "counts.h5ad", backed="r")
    assert resolve_data_on_device(None, backed, accelerator="cpu", devices="auto", strategy="auto") is False
    with pytest.raises(ValueError, match="in memory"):
        resolve_data_on_device(True, backed, accelerator="cpu", devices="auto", strategy="auto")


def test_bgformer_trains_from_data_kept_on_the_device():
    # 1001 cells in batches of 100: the last training batch of one cell must be dropped (BatchNorm)
    adata = ac.datasets.simulate(1001, 200, 4, n_markers=25, random_state=0)
    options = FAST | {"batch_size": 100}
    model = ac.tl.bgformer(adata, 4, data_on_device=True, return_model=True, **options)
    assert ac.metrics.evaluate(adata.obs["cell_type"], adata.obs["bgformer"])["ARI"] > 0.9
    assert len(adata.uns["bgformer"]["history"]) == FAST["max_epochs"]
    assert np.isfinite(adata.uns["bgformer"]["history"]["train_loss"]).all()
    # the copy on the device is freed after tl.bgformer although the trainer keeps its data module
    assert model.trainer.datamodule.train_tensor_dict is None
    assert model._device_rows is None
    # the same data through scvi-tools' usual loader give the same partition
    usual = ac.tl.bgformer(adata, 4, data_on_device=False, copy=True, **options)
    assert ac.metrics.evaluate(usual.obs["bgformer"], adata.obs["bgformer"])["ARI"] > 0.9


def test_device_rows_gather_any_cells_in_the_order_asked():
    counts = torch.arange(12.0).reshape(6, 2)
    cells = torch.tensor([3, 0, 5, 1, 4, 2])  # rows of a shuffled split: row r holds cell cells[r]
    rows = DeviceRows({REGISTRY_KEYS.X_KEY: counts, REGISTRY_KEYS.INDICES_KEY: cells[:, None]}, 6)
    batches = list(rows.batches(np.array([2, 3, 4]), batch_size=2))
    assert [batch.tolist() for _, batch, _ in batches] == [[2, 3], [4]]
    gathered = torch.cat([x for x, _, _ in batches])
    assert torch.equal(gathered, counts[[5, 0, 4]])
    assert all(codes is None for _, _, codes in batches)
    # registered batch codes travel with their cells
    codes = (cells * 10)[:, None]
    with_codes = DeviceRows(
        {REGISTRY_KEYS.X_KEY: counts, REGISTRY_KEYS.INDICES_KEY: cells[:, None], REGISTRY_KEYS.BATCH_KEY: codes}, 6
    )
    assert torch.cat([c for _, _, c in with_codes.batches(np.array([2, 3, 4]), batch_size=2)]).ravel().tolist() == [
        20,
        30,
        40,
    ]
    with pytest.raises(ValueError, match="every registered cell"):
        DeviceRows({REGISTRY_KEYS.X_KEY: counts[:5], REGISTRY_KEYS.INDICES_KEY: cells[:5, None]}, 6)


def _outputs(model):
    summary = model.summarize(batch_size=96)
    return summary | {
        "latent_some": model.get_latent_representation(indices=[5, 0, 77, 3], batch_size=2),
        "predict": model.predict(batch_size=96),
        "attention": model.get_attention(indices=np.arange(50), batch_size=16),
    }


def test_inference_reads_the_copy_kept_on_the_device_and_gives_the_same_results():
    adata = ac.datasets.simulate(401, 150, 3, n_markers=25, random_state=1)
    BGFormer.setup_anndata(adata)
    model = BGFormer(adata, 3, n_top_genes=100, n_latent=32, n_anchors=16)
    model.train(4, batch_size=100, data_on_device=True, enable_progress_bar=False)
    assert model._device_rows is not None  # kept for inference: every cell was trained on
    loader_calls = []
    make_loader = model._make_data_loader
    model._make_data_loader = lambda *args, **kwargs: loader_calls.append(1) or make_loader(*args, **kwargs)
    kept = _outputs(model)
    assert not loader_calls  # nothing read from the AnnData
    model.release_device_data()
    assert model._device_rows is None
    read = _outputs(model)
    assert loader_calls
    for name, value in kept.items():
        np.testing.assert_array_equal(value, read[name], err_msg=name)


def test_no_copy_is_kept_when_some_cells_were_held_out():
    adata = ac.datasets.simulate(300, 150, 3, n_markers=25, random_state=1)
    BGFormer.setup_anndata(adata)
    model = BGFormer(adata, 3, n_top_genes=100, n_latent=32, n_anchors=16)
    model.train(2, batch_size=100, data_on_device=True, train_size=0.9, enable_progress_bar=False)
    assert model._device_rows is None
    assert model.get_latent_representation().shape == (300, 32)
