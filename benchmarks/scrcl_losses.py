"""What each scRCL loss does to the clusters: the default against the losses switched off by weight.

For each scRNA-seq dataset and seed, ``tl.scrcl`` is trained at its defaults (K = the true number of
labels) and with ``alpha=0`` (no neighbourhood contrast, L_NDC), ``beta=0`` (no cross-view
consistency, L_CVC) and both (L_HEA alone), the same budget each time, and its labels are scored.
The column ``input`` is the reference point: the same k-means (10 starts, unit rows) on the features
the views read, before any training (the selected genes, normalised to the median library size,
``log1p``, divided by each gene's standard deviation, clipped at 10). Labels are read only to score.

Writes ``benchmarks/results/scrcl_losses.md`` and ``.json``.

Usage: ``python benchmarks/scrcl_losses.py [--seeds 3] [--datasets zeisel,pbmc3k]``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _seeded import dataset_table, seeded_main, unit_rows

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
RESULTS = HERE / "results"
#: Loss weights per configuration (L = L_HEA + alpha L_NDC + beta L_CVC; the defaults are 100 and 1).
CONFIGS = {"default": {}, "alpha=0": {"alpha": 0.0}, "beta=0": {"beta": 0.0}, "HEA only": {"alpha": 0.0, "beta": 0.0}}
SCRNA = ["baron_mouse", "mouse_bladder", "pbmc3k", "pbmc_10x", "pollen", "worm_neuron", "zeisel"]


def _input_kmeans(adata, genes: np.ndarray, k: int, seed: int, truth: np.ndarray) -> float:
    """ARI of k-means on the views' input features, computed with scanpy."""
    import scanpy as sc
    from sklearn.cluster import KMeans

    import atlasclust as ac

    features = adata.copy()
    sc.pp.normalize_total(features, target_sum=float(np.median(np.asarray(features.X.sum(1)))))
    sc.pp.log1p(features)
    features = features[:, genes].copy()
    sc.pp.scale(features, zero_center=False, max_value=10)
    x = np.asarray(features.X.todense() if hasattr(features.X, "todense") else features.X)
    return ac.metrics.evaluate(truth, KMeans(k, n_init=10, random_state=seed).fit_predict(unit_rows(x)))["ARI"]


def run_one(dataset: str, seed: int) -> dict:
    """Train scRCL on ``dataset`` once per configuration and score its labels and its input."""
    import anndata as ad

    import atlasclust as ac

    adata = ad.read_h5ad(DATA / f"{dataset}.h5ad")
    truth = adata.obs.pop("cell_type").to_numpy()
    k = len(np.unique(truth))
    row = {"dataset": dataset, "seed": seed}
    for name, weights in CONFIGS.items():
        result, model = ac.tl.scrcl(
            adata, k, n_top_genes=min(2000, adata.n_vars), random_state=seed, enable_progress_bar=False,
            copy=True, return_model=True, **weights,
        )  # fmt: skip
        row[name] = ac.metrics.evaluate(truth, result.obs["scrcl"])["ARI"]
    row["input"] = _input_kmeans(adata, model.selected_genes_, k, seed, truth)
    return row


def write_table(rows: list[dict]) -> str:
    """Markdown: mean ± sd ARI per dataset and configuration."""
    columns = [*CONFIGS, "input"]
    lines, _ = dataset_table(
        "# scRCL: what each loss does to the clusters",
        "`python benchmarks/scrcl_losses.py`: `tl.scrcl`, K = true number of labels, default budget, with "
        "loss weights switched off (`alpha` weighs L_NDC, default 100; `beta` weighs L_CVC, default 1; "
        "L_HEA has weight 1). `input`: k-means (10 starts, unit rows) on the features the views read, before "
        "training. ARI, mean ± sd over seeds.",
        rows,
        columns,
    )
    return "\n".join(lines)


def main() -> None:
    """Run the comparison and write the table (runs already in the results are skipped)."""
    seeded_main(__doc__, out=RESULTS / "scrcl_losses", datasets=SCRNA, run_one=run_one, write_table=write_table)


if __name__ == "__main__":
    main()
