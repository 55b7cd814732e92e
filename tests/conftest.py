import logging
import warnings

import anndata as ad
import pytest
import torch
from helpers import FAST

import atlasclust as ac


def pytest_configure(config):
    warnings.filterwarnings("ignore", module="lightning")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.set_num_threads(2)


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def counts() -> ad.AnnData:
    """600 cells, 200 genes, 4 well separated simulated cell types."""
    return ac.datasets.simulate(600, 200, 4, n_markers=25, random_state=0)


@pytest.fixture(scope="session")
def clustered():
    """One trained run shared by the tests that only read its output: (adata, model)."""
    adata = ac.datasets.simulate(600, 200, 4, n_markers=25, random_state=0)
    model = ac.tl.bgformer(adata, 4, return_model=True, store_attention=True, **FAST)
    return adata, model


@pytest.fixture
def two_batches() -> ad.AnnData:
    """Two batches of the same 3 cell types (same markers), every gene's base level redrawn per batch."""
    parts = [ac.datasets.simulate(300, 200, 3, random_state=seed) for seed in (0, 1)]
    return ad.concat(parts, label="batch", keys=["b0", "b1"], index_unique="-")
