import anndata as ad
import numpy as np
import pytest
from helpers import FAST

import atlasclust as ac
from atlasclust.data import resolve_data_on_device


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
    # the copy on the device is freed after training although the trainer keeps its data module
    assert model.trainer.datamodule.train_tensor_dict is None
    # the same data through scvi-tools' usual loader give the same partition
    usual = ac.tl.bgformer(adata, 4, data_on_device=False, copy=True, **options)
    assert ac.metrics.evaluate(usual.obs["bgformer"], adata.obs["bgformer"])["ARI"] > 0.9
