"""What a notebook shows while the tools train: no warnings that only alarm the reader."""

import subprocess
import sys

import pytest

#: Warnings torch and Lightning raised on every first run: torch's at the first sparse CSR batch
#: (warned once per process, so the check runs in a fresh one), Lightning's when an epoch has fewer
#: batches than its logging interval (scRCL's full batch is one), and torch's deprecation of the
#: ``LeafSpec`` that Lightning 2.6 uses at every fit.
ALARMS = (
    "Sparse invariant checks",
    "Sparse CSR tensor support is in beta",
    "smaller than the logging interval",
    "isinstance(treespec, LeafSpec)",
)

SCRIPT = """
import warnings
warnings.simplefilter("default")
import scanpy as sc
import scipy.sparse as sp
import atlasclust as ac
sc.settings.verbosity = {verbosity!r}
adata = ac.datasets.simulate(200, 90, 3, random_state=0)
adata.X = sp.csr_matrix(adata.X)
ac.tl.{method}(adata, 3, n_top_genes=None, max_epochs=2, enable_progress_bar=False)
print("finished")
"""


#: Lightning's info lines at every fit, shown only from scanpy's verbosity "info" on.
LIGHTNING_INFO = ("GPU available", "TPU available", "litlogger", "`Trainer.fit` stopped", "Seed set to")


def run_tool(method: str, verbosity: str) -> subprocess.CompletedProcess:
    script = SCRIPT.format(method=method, verbosity=verbosity)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert "finished" in run.stdout
    return run


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_training_on_sparse_counts_raises_no_alarming_warnings(method):
    run = run_tool(method, "warning")  # scanpy's default
    for alarm in ALARMS:
        assert alarm not in run.stderr
    for line in LIGHTNING_INFO:
        assert line not in run.stderr + run.stdout


def test_lightning_info_lines_return_at_scanpy_info_verbosity():
    output = (run := run_tool("bgformer", "info")).stderr + run.stdout
    for line in LIGHTNING_INFO:
        assert (line in output) == (line != "litlogger")  # the cloud logger's tip never
