"""What BGFormer's clustering (DEC) phase does to clusters that are there at its start, on simulated counts.

``tl.bgformer`` trains in two phases: the embedding alone, then the embedding and the DEC head,
whose centres start as k-means (K = the true number of groups) of the embedding after the first
phase. This records, for each setting of ``dec_weight`` (0.1 the default; 0 keeps the centres
where they started and labels each cell by the nearest), the ARI of

- ``start``: the clusters the DEC phase starts from (each cell's nearest starting centre, on the
  embedding after the first phase);
- ``final``: the labels ``tl.bgformer`` writes;

their agreement with each other (``start vs final``, an ARI that needs no labels) and the share of
cells in the largest cluster at the start and at the end, and whether ``tl.bgformer`` warned of a
grown cluster; and, as references, ``tl.scrcl`` at its defaults and k-means on 50 principal
components of the scaled genes after scanpy's default ``normalize_total`` (to the median library size). The
accuracy benchmark's ``kmeans_pca`` normalises to 10,000 counts instead, as ``baselines.md`` does;
on these cells of about 650 counts that scales each count twelvefold before the ``log1p``, and
k-means then finds little (ARI 0.02 and 0.28 on seed 0).

Data: ``ac.datasets.simulate(10_000, 2000, 20, fold_change=3.0)`` with 20 (``weak``) or 40
(``moderate``) marker genes per group; 20 groups of about 500 cells. Seeds vary the models, not
the data. Labels only score the results.

Writes ``benchmarks/results/dec_phase.md`` and ``.json``.

Usage: ``python benchmarks/dec_phase.py [--seeds 1]``
"""

from __future__ import annotations

from pathlib import Path

from _seeded import mean_sd, seeded_main

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
#: Dataset name -> ``ac.datasets.simulate`` arguments (cells, genes, groups, keywords).
DATASETS = {
    "weak": (10_000, 2000, 20, {"n_markers": 20, "fold_change": 3.0}),
    "moderate": (10_000, 2000, 20, {"n_markers": 40, "fold_change": 3.0}),
}
DEC_WEIGHTS = (0.1, 0.01, 0.0)


def run_one(dataset: str, seed: int) -> dict:
    """k-means on PCA, then BGFormer once per DEC weight, recording the clusters at the DEC phase's start."""
    import numpy as np
    import scanpy as sc
    import torch
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    import atlasclust as ac
    from atlasclust.bgformer._model import BGFormer
    from atlasclust.tl._bgformer import grown_cluster_warning

    n_cells, n_genes, n_groups, options = DATASETS[dataset]
    adata = ac.datasets.simulate(n_cells, n_genes, n_groups, random_state=0, **options)
    truth = adata.obs.pop("cell_type").to_numpy()
    row = {"dataset": dataset, "seed": seed}

    reference = adata.copy()
    sc.pp.normalize_total(reference)
    sc.pp.log1p(reference)
    sc.pp.scale(reference, max_value=10)
    sc.pp.pca(reference, n_comps=50, random_state=seed)
    kmeans = KMeans(n_groups, n_init=10, random_state=seed).fit_predict(reference.obsm["X_pca"])
    row["kmeans_pca"] = adjusted_rand_score(truth, kmeans)
    # the other method of the package, at its defaults: what a user could turn to when BGFormer collapses
    scrcl = ac.tl.scrcl(adata, n_groups, random_state=seed, enable_progress_bar=False, copy=True)
    row["scrcl"] = adjusted_rand_score(truth, scrcl.obs["scrcl"].to_numpy())

    start = {}
    initialize = BGFormer._initialize_clusters

    def recording_initialize(model, cells, batch_size, random_state):
        # the nearest starting centre of each cell (what k-means assigned), read before the DEC phase moves them
        initialize(model, cells, batch_size, random_state)
        latent = torch.as_tensor(model.get_latent_representation(indices=cells, batch_size=batch_size))
        start["cells"] = cells
        start["labels"] = torch.cdist(latent, model.module.centers.detach().cpu()).argmin(dim=1).numpy()

    BGFormer._initialize_clusters = recording_initialize
    try:
        for dec_weight in DEC_WEIGHTS:
            result, model = ac.tl.bgformer(
                adata,
                n_groups,
                dec_weight=dec_weight,
                random_state=seed,
                enable_progress_bar=False,
                copy=True,
                return_model=True,
            )
            final = result.obs["bgformer"].cat.codes.to_numpy()
            cells = start["cells"]
            start_fractions = model.module.start_fractions.cpu().numpy()
            row[f"dec_weight={dec_weight:g}"] = {
                "start": adjusted_rand_score(truth[cells], start["labels"]),
                "final": adjusted_rand_score(truth, final),
                "start_vs_final": adjusted_rand_score(start["labels"], final[cells]),
                "largest_start": float(start_fractions.max()),
                "largest": float(np.bincount(final).max() / len(final)),
                # what tl.bgformer logged: the label-free check of a cluster grown by the DEC phase
                "warned": float(grown_cluster_warning(start_fractions, final, "bgformer") is not None),
            }
    finally:
        BGFormer._initialize_clusters = initialize
    return row


def write_table(rows: list[dict]) -> str:
    """Markdown: one line per dataset and DEC weight (mean ± sd over seeds)."""
    lines = [
        "# BGFormer: what the DEC phase does to the clusters it starts from",
        "",
        "`python benchmarks/dec_phase.py`: `tl.bgformer` (K = 20, the true number of groups, default settings "
        "but `dec_weight`) on `ac.datasets.simulate(10_000, 2000, 20, n_markers=M, fold_change=3.0)`, "
        "M = 20 (weak) or 40 (moderate). ARI against the groups of: the clusters at the start of the DEC "
        "phase (k-means of the first phase's embedding), the final labels, and k-means on 50 principal "
        "components of the scaled genes (scanpy's default normalisation, to the median library size), and `tl.scrcl` at its defaults; `start vs final` is the ARI between the first two (no labels "
        "needed); `largest` the share of cells in the largest cluster at the DEC start and at the end (about 0.05 "
        "for these groups); `warned` the runs in which `tl.bgformer` warned that one cluster had grown "
        "(at least 30% of the cells and twice the largest at the start). "
        "Seeds: "
        + ", ".join(sorted({f"{r['dataset']} {sum(q['dataset'] == r['dataset'] for q in rows)}" for r in rows}))
        + ".",
        "",
        "| data | dec_weight | ARI at the DEC start | ARI final | start vs final | largest at start | largest "
        "| warned | k-means on PCA | tl.scrcl |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in DATASETS:
        chosen = [r for r in rows if r["dataset"] == dataset]
        if not chosen:
            continue
        for dec_weight in DEC_WEIGHTS:
            runs = [r[f"dec_weight={dec_weight:g}"] for r in chosen]
            cells = " | ".join(
                mean_sd(run[field] for run in runs)
                for field in ("start", "final", "start_vs_final", "largest_start", "largest")
            )
            cells += f" | {sum(run['warned'] for run in runs):.0f} of {len(runs)}"
            references = " | ".join(mean_sd(r[field] for r in chosen) for field in ("kmeans_pca", "scrcl"))
            lines.append(f"| {dataset} | {dec_weight:g} | {cells} | {references} |")
    return "\n".join(lines)


def main() -> None:
    """Run the settings and write the table (seeds already in the results are skipped)."""
    seeded_main(
        __doc__, out=RESULTS / "dec_phase", datasets=DATASETS, run_one=run_one, write_table=write_table, seeds=1
    )


if __name__ == "__main__":
    main()
