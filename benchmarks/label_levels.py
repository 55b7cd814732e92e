"""Zeisel at K = 7: what the clusters split and join, read against the authors' 48 fine types (issue 40).

Zeisel's file carries, beside its 7 labels (``obs["cell_type"]``), the study's 48 fine types
(``obs["cell_type_fine"]``). The accuracy benchmark scores 7 clusters against the 7 labels; this
script reruns five of its columns on Zeisel exactly as it does (``accuracy.cluster``: same call,
genes, K and seeds; the runs see neither label column) and describes where each one's clusters
depart from the labels:

- ``ari`` against the 7 labels (the accuracy table's number) and ``ari_fine`` against the 48 fine types;
- ``ca1_clusters``: how many clusters hold at least 20 % of the pyramidal CA1 cells (the largest type);
- ``ca1_subtype_ari``: among the cells of the fine types CA1Pyr1 and CA1Pyr2 (the two largest parts
  of CA1), the ARI between the clusters and those two subtypes: near 1 when the clusters cut CA1
  along them, near 0 when they keep it whole;
- ``microglia_share``: the share of microglia among the cells of the cluster holding most of them
  (1 when they form a cluster of their own);
- the second table lists, run by run, the labels that are the majority of two or more clusters
  (split) and those that are the majority of none, with the label whose cluster took most of them
  (joined).

Labels are read only to describe the clusters. Writes ``benchmarks/results/label_levels.md`` and ``.json``.

Usage: ``python benchmarks/label_levels.py [--seeds 5]``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _seeded import mean_sd, seeded_main

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
METHODS = ["bgformer", "scrcl", "scrcl_merged", "kmeans_pca", "leiden_trueK"]
METRICS = ["ari", "ari_fine", "ca1_clusters", "ca1_subtype_ari", "microglia_share"]
CA1, MICROGLIA, CA1_SUBTYPES = "pyramidal CA1", "microglia", ("CA1Pyr1", "CA1Pyr2")


def _majority(labels: np.ndarray, truth: np.ndarray) -> dict:
    """Each cluster's most frequent label."""
    out = {}
    for cluster in np.unique(labels):
        names, counts = np.unique(truth[labels == cluster], return_counts=True)
        out[cluster] = names[counts.argmax()]
    return out


def departures(labels: np.ndarray, truth: np.ndarray) -> tuple[list[str], list[str]]:
    """Labels that are the majority of two or more clusters, and those of none (``name → where most went``)."""
    majority = _majority(labels, truth)
    names, counts = np.unique(list(majority.values()), return_counts=True)
    split = sorted(str(n) for n, c in zip(names, counts, strict=True) if c > 1)
    joined = []
    for name in sorted(set(np.unique(truth)) - set(names)):
        clusters, sizes = np.unique(labels[truth == name], return_counts=True)
        joined.append(f"{name} → {majority[clusters[sizes.argmax()]]}")
    return split, joined


def describe(labels: np.ndarray, truth: np.ndarray, fine: np.ndarray) -> dict:
    """The metrics of the module docstring for one run's clusters."""
    from sklearn.metrics import adjusted_rand_score

    ca1 = truth == CA1
    _, ca1_counts = np.unique(labels[ca1], return_counts=True)
    microglia = truth == MICROGLIA
    clusters, sizes = np.unique(labels[microglia], return_counts=True)
    in_microglia_cluster = labels == clusters[sizes.argmax()]
    subtypes = np.isin(fine, CA1_SUBTYPES)
    split, joined = departures(labels, truth)
    return {
        "ari": adjusted_rand_score(truth, labels),
        "ari_fine": adjusted_rand_score(fine, labels),
        "ca1_clusters": int((ca1_counts >= 0.2 * ca1.sum()).sum()),
        "ca1_subtype_ari": adjusted_rand_score(fine[subtypes], labels[subtypes]),
        "microglia_share": float(microglia[in_microglia_cluster].mean()),
        "split": split,
        "joined": joined,
    }


def run_one(dataset: str, seed: int) -> dict:
    """Every method of :data:`METHODS` on ``dataset`` with ``seed``, described."""
    import anndata as ad
    from accuracy import DATA, cluster

    fine = ad.read_h5ad(DATA / f"{dataset}.h5ad").obs["cell_type_fine"].astype(str).to_numpy()
    row = {"dataset": dataset, "seed": seed}
    for method in METHODS:
        truth, labels, _, _ = cluster(dataset, method, seed)
        described = describe(labels, np.asarray(truth).astype(str), fine)
        row |= {f"{method}_{key}": value for key, value in described.items()}
    return row


def write_table(rows: list[dict]) -> str:
    """The per-method table (mean ± sd over seeds) and the run-by-run departures."""
    lines = [
        "# Zeisel's clusters against its fine types",
        "",
        "`python benchmarks/label_levels.py`: five columns of the accuracy benchmark rerun on Zeisel as it "
        "runs them (K = 7, same calls and seeds), described against the 7 labels and the authors' 48 fine "
        "types (`obs['cell_type_fine']`). Columns are described in the script's docstring. Generated on the "
        "2-core CPU machine.",
        "",
        f"Seeds: {len(rows)}.",
        "",
        "| method | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for method in METHODS:
        cells = [mean_sd(r[f"{method}_{metric}"] for r in rows) for metric in METRICS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Labels split and joined, run by run",
        "",
        "| method | seed | ari | split | joined |",
        "|---|---|---|---|---|",
    ]
    for method in METHODS:
        for r in sorted(rows, key=lambda r: r["seed"]):
            split = ", ".join(r[f"{method}_split"]) or "—"
            joined = ", ".join(r[f"{method}_joined"]) or "—"
            lines.append(f"| {method} | {r['seed']} | {r[f'{method}_ari']:.3f} | {split} | {joined} |")
    return "\n".join(lines)


def main() -> None:
    """Run what is missing and write the tables."""
    seeded_main(
        __doc__, out=RESULTS / "label_levels", datasets=["zeisel"], run_one=run_one, write_table=write_table, seeds=5
    )


if __name__ == "__main__":
    main()
