"""Fixed-seed runs give the labels recorded before a refactoring: a redesign must not move behaviour.

``tests/golden/labels.json`` holds the labels and a fingerprint of the embedding of each case (its
projection on three fixed random directions), recorded with ``python tests/test_behaviour_unchanged.py``
(run it again only when a change is *meant* to move results, and say so in the commit). The runs
are small and short; what they check is that the same arithmetic happens in the same order, on
the CPU stack CI tests (Python 3.11, torch 2.13). Labels must match exactly; the fingerprint within
:data:`FINGERPRINT_ATOL`, because the last bits of float32 sums differ between CPUs (an exact digest
of the embedding, recorded on one machine, failed on another with the same labels).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import atlasclust as ac

GOLDEN = Path(__file__).parent / "golden" / "labels.json"
#: Largest difference allowed in the embedding's fingerprint: far above float32 noise between CPUs,
#: far below what any change of the method moves (tenths)
FINGERPRINT_ATOL = 1e-3
BGFORMER = {"n_top_genes": 80, "n_latent": 16, "n_anchors": 8, "max_epochs": 4, "batch_size": 64}
SCRCL = {"n_top_genes": 80, "n_hidden": 32, "max_epochs": 10}

#: case: (tool, data, options)
CASES = {
    "bgformer": ("bgformer", "cells", BGFORMER),
    "bgformer_backed": ("bgformer", "cells_backed", BGFORMER),
    "bgformer_batch": ("bgformer", "batches", BGFORMER | {"batch_key": "batch"}),
    "bgformer_leiden": ("bgformer", "cells", BGFORMER | {"n_clusters": None}),
    "scrcl": ("scrcl", "cells", SCRCL),
    "scrcl_backed": ("scrcl", "cells_backed", SCRCL),
    "scrcl_batch": ("scrcl", "batches", SCRCL | {"batch_key": "batch"}),
    "scrcl_spatial": ("scrcl", "tissue", SCRCL | {"n_top_genes": None, "spatial_key": "spatial", "smooth_labels": 4}),
}


def _data(kind: str, folder: Path, name: str) -> ad.AnnData:
    if kind == "tissue":
        return ac.datasets.simulate_tissue(16, 16, 3, n_genes=100, random_state=0)
    if kind == "batches":
        parts = [ac.datasets.simulate(150, 100, 3, random_state=seed) for seed in (0, 1)]
        return ad.concat(parts, label="batch", keys=["b0", "b1"], index_unique="-")
    adata = ac.datasets.simulate(300, 100, 3, random_state=0)
    if kind == "cells_backed":
        adata.write_h5ad(folder / f"{name}.h5ad")
        return ad.read_h5ad(folder / f"{name}.h5ad", backed="r")
    return adata


def run_case(name: str, folder: Path) -> dict:
    tool, kind, options = CASES[name]
    adata = _data(kind, folder, name)
    options = {"n_clusters": 3} | options
    getattr(ac.tl, tool)(adata, random_state=3, enable_progress_bar=False, **options)
    embedding = np.asarray(adata.obsm[f"X_{tool}"], dtype=np.float64)
    directions = np.random.default_rng(0).standard_normal((embedding.shape[1], 3)) / np.sqrt(embedding.shape[1])
    return {
        "labels": adata.obs[tool].astype(str).tolist(),
        "embedding_fingerprint": (embedding @ directions).round(6).tolist(),
    }


@pytest.mark.parametrize("name", list(CASES))
def test_fixed_seed_runs_give_the_recorded_labels(name, tmp_path):
    recorded = json.loads(GOLDEN.read_text())[name]
    result = run_case(name, tmp_path)
    assert result["labels"] == recorded["labels"]
    np.testing.assert_allclose(
        result["embedding_fingerprint"], recorded["embedding_fingerprint"], rtol=0, atol=FINGERPRINT_ATOL
    )


if __name__ == "__main__":  # record: python tests/test_behaviour_unchanged.py
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        results = {name: run_case(name, Path(folder)) for name in CASES}
    GOLDEN.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {GOLDEN}", file=sys.stderr)
