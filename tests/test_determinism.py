import subprocess
import sys

import numpy as np
import pytest

RUN = """
import sys
import numpy as np
import atlasclust as ac

method, out = sys.argv[1], sys.argv[2]
adata = ac.datasets.simulate(300, 100, 3, n_markers=20, random_state=0)
options = {"n_latent": 16, "n_anchors": 8, "batch_size": 64} if method == "bgformer" else {"n_hidden": 32}
getattr(ac.tl, method)(adata, 3, n_top_genes=80, max_epochs=4, enable_progress_bar=False, random_state=7, **options)
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
