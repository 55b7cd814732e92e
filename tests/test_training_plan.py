"""Training on two CPU processes with Lightning's DDP (gloo), as on several GPUs."""

import subprocess
import sys

import numpy as np
import pytest

import atlasclust as ac

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
