import subprocess
import sys

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

import atlasclust as ac

RUN = """
import sys
import numpy as np
import atlasclust as ac

method, out = sys.argv[1], sys.argv[2]
adata = ac.datasets.simulate(400, 100, 3, n_markers=20, random_state=0)
# default model sizes: some CPU kernels only add in parallel (in no fixed order) above a size
getattr(ac.tl, method)(adata, 3, n_top_genes=80, max_epochs=4, enable_progress_bar=False, random_state=7)
np.savez(out, embedding=adata.obsm["X_" + method], labels=adata.obs[method].to_numpy().astype(str))
"""


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_same_seed_gives_identical_results_in_separate_processes(method, tmp_path):
    results = []
    for run in range(2):
        out = tmp_path / f"{run}.npz"
        subprocess.run([sys.executable, "-c", RUN, method, str(out)], check=True, capture_output=True)
        results.append(np.load(out))
    np.testing.assert_array_equal(results[0]["embedding"], results[1]["embedding"])
    np.testing.assert_array_equal(results[0]["labels"], results[1]["labels"])


class RecordMode(Callback):
    """Record whether PyTorch's deterministic mode is on when training starts."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.mode = torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_deterministic_mode_is_on_during_the_call_only(method):
    adata = ac.datasets.simulate(200, 100, 3, n_markers=20, random_state=0)
    options = {"n_top_genes": 80, "max_epochs": 3, "enable_progress_bar": False, "copy": True}
    record = RecordMode()
    tl = getattr(ac.tl, method)
    result = tl(adata, 3, deterministic=True, callbacks=[record], **options)
    assert record.mode is True
    assert not torch.are_deterministic_algorithms_enabled()
    # on the CPU the default kernels are deterministic already: same result either way
    np.testing.assert_array_equal(result.obsm[f"X_{method}"], tl(adata, 3, **options).obsm[f"X_{method}"])


def test_deterministic_mode_keeps_the_users_own_setting():
    adata = ac.datasets.simulate(200, 100, 3, n_markers=20, random_state=0)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        ac.tl.bgformer(adata, 3, n_top_genes=80, max_epochs=2, enable_progress_bar=False, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
