"""Accuracy benchmark: ``tl.bgformer`` and ``tl.scrcl`` against what a scanpy user runs instead.

Protocol (as in ``../shared/data/baselines.md``): every labelled dataset in ``../shared/data``,
K = the true number of labels, several seeds, a fixed training budget (the library default), no
label used except to score. scRCL uses the spot coordinates (``spatial_key="spatial"``) where a
dataset has them and the expression kNN graph otherwise. Baselines: k-means on 50 PCs of 2000 HVGs, Leiden at resolution 1,
Leiden at the resolution that gives K, scVI latent + Leiden at K, and on datasets
with spot coordinates the spatial baseline of ``baselines.md``: 30 PCs of the scaled 2000 HVGs,
each spot replaced 3 times by the mean of its 6 nearest other spots, then k-means at K. Without K,
``bgformer_noK`` and ``scrcl_noK`` (``n_clusters=None``, Leiden on their embedding) compare with Leiden at
resolution 1, and each run records the number of clusters it found.

Each run happens in its own process so that its wall time and peak memory (max RSS) are its own.
Writes ``benchmarks/results/accuracy.md`` and ``accuracy.json``.

Usage: ``python benchmarks/accuracy.py [--seeds 5] [--datasets zeisel,pbmc_10x] [--methods bgformer,kmeans_pca]``
(all methods by default; runs already in ``accuracy.json`` are kept, not repeated).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _baselines import leiden_with_k, scaled_pca, spatial_mean
from _seeded import mean_sd, quiet

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
RESULTS = HERE / "results"
METHODS = [
    "bgformer",
    "bgformer_kmeans",
    "bgformer_merged",
    "bgformer_batch",
    "bgformer_noK",
    "scrcl",
    "scrcl_merged",
    "scrcl_auto",
    "scrcl_batch",
    "scrcl_noK",
    "kmeans_pca",
    "leiden_res1",
    "leiden_trueK",
    "scvi_leiden_trueK",
    "scvi_batch_leiden_trueK",
    "spatial_kmeans_pca",
]
#: Baselines that need spot coordinates (``obsm["spatial"]``); skipped on other datasets.
SPATIAL_METHODS = {"spatial_kmeans_pca"}
#: Methods that read each cell's batch (``obs`` column named in BATCH_COLUMNS); skipped on other datasets.
BATCH_METHODS = {"bgformer_batch", "scrcl_batch", "scvi_batch_leiden_trueK"}
#: obs columns taken as a dataset's batches (metadata recorded with the data, not labels), first found wins.
BATCH_COLUMNS = ("batch", "donor", "sample")
#: Methods of this package (the others are baselines).
OURS = {m for m in METHODS if m.startswith(("bgformer", "scrcl"))}
#: ``center_init`` of the runs that set it: BGFormer's two fixed starts, between which its default
#: (``"auto"``) chooses without labels, and scRCL's other two (its default is ``"kmeans"``).
STARTS = {"bgformer_kmeans": "kmeans", "bgformer_merged": "merged", "scrcl_merged": "merged", "scrcl_auto": "auto"}
#: Columns of the better of two fixed starts, seed by seed (they read the labels: references, never run),
#: each with the runs it chooses between (k-means' first, merged k-means' second).
ORACLES = {
    "bgformer_oracle": ("bgformer_kmeans", "bgformer_merged"),
    "scrcl_oracle": ("scrcl", "scrcl_merged"),
}
#: Runs of the label-free choice between each oracle's two starts.
CHOOSERS = {"bgformer_oracle": "bgformer", "scrcl_oracle": "scrcl_auto"}
#: Table order: each oracle right after the last of its starts and its chooser.
TABLE_METHODS = [
    column
    for method in METHODS
    for column in (
        method,
        *(o for o, runs in ORACLES.items() if method == max((*runs, CHOOSERS[o]), key=METHODS.index)),
    )
]
#: Methods told no number of clusters: ours with ``n_clusters=None`` (Leiden on the embedding at each method's
#: default resolution: BGFormer 1, scRCL 0.25), compared with ``leiden_res1``.
WITHOUT_K = {"bgformer_noK", "scrcl_noK", "leiden_res1"}


def _has_spatial(dataset: str) -> bool:
    import h5py

    with h5py.File(DATA / f"{dataset}.h5ad", "r") as file:
        return "obsm" in file and "spatial" in file["obsm"]


def _batch_column(dataset: str) -> str | None:
    import anndata as ad

    obs = ad.read_h5ad(DATA / f"{dataset}.h5ad", backed="r").obs
    return next((column for column in BATCH_COLUMNS if column in obs and obs[column].nunique() > 1), None)


def cluster(dataset: str, method: str, seed: int) -> tuple[np.ndarray, np.ndarray, float, str | None]:
    """Run one method on one dataset with one seed, as the table's column does.

    Returns the labels (``obs["cell_type"]``), the method's clusters, its wall time in seconds and,
    for our methods' runs, how their clusters started (``center_start``; otherwise ``None``).
    """
    quiet()
    import anndata as ad
    import scanpy as sc

    import atlasclust as ac

    adata = ad.read_h5ad(DATA / f"{dataset}.h5ad")
    truth = adata.obs["cell_type"].to_numpy()
    k = adata.obs["cell_type"].nunique()
    for column in [c for c in adata.obs if c.startswith("cell_type")]:  # nothing below may see the labels
        del adata.obs[column]
    batch_key = _batch_column(dataset) if method in BATCH_METHODS else None
    start = time.perf_counter()
    center_start = None  # how the clusters started (kmeans, merged or leiden), for our methods' runs
    if method in OURS:
        tool = method.split("_")[0]  # bgformer_merged -> tl.bgformer, scrcl_noK -> tl.scrcl
        options = {"center_init": STARTS[method]} if method in STARTS else {}
        if tool == "scrcl":
            options["spatial_key"] = "spatial" if "spatial" in adata.obsm else None
        getattr(ac.tl, tool)(
            adata,
            None if method in WITHOUT_K else k,
            n_top_genes=min(2000, adata.n_vars),
            batch_key=batch_key,
            random_state=seed,
            enable_progress_bar=False,
            **options,
        )
        labels = adata.obs[tool].to_numpy()
        center_start = adata.uns[tool]["params"].get("center_start")
    elif method in ("scvi_leiden_trueK", "scvi_batch_leiden_trueK"):
        import scvi

        scvi.settings.seed = seed
        sc.pp.filter_genes(adata, min_cells=3)
        adata.layers["counts"] = adata.X.copy()
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
        sc.pp.highly_variable_genes(adata, n_top_genes=min(2000, adata.n_vars), subset=True)
        scvi.model.SCVI.setup_anndata(adata, layer="counts", batch_key=batch_key)
        model = scvi.model.SCVI(adata)
        model.train(max_epochs=50, enable_progress_bar=False)
        adata.obsm["X_scvi"] = model.get_latent_representation()
        sc.pp.neighbors(adata, use_rep="X_scvi", random_state=seed)
        labels = leiden_with_k(adata, k, seed)
    else:
        scaled_pca(adata, n_top_genes=2000, n_comps=30 if method in SPATIAL_METHODS else 50, seed=seed)
        from sklearn.cluster import KMeans

        if method == "spatial_kmeans_pca":
            labels = KMeans(k, n_init=10, random_state=seed).fit_predict(spatial_mean(adata, n_neighbors=6, times=3))
        elif method == "kmeans_pca":
            labels = KMeans(k, n_init=10, random_state=seed).fit_predict(adata.obsm["X_pca"])
        else:
            sc.pp.neighbors(adata, n_neighbors=15, random_state=seed)
            if method == "leiden_res1":
                sc.tl.leiden(adata, resolution=1.0, flavor="igraph", n_iterations=2, random_state=seed)
                labels = adata.obs["leiden"].to_numpy()
            else:
                labels = leiden_with_k(adata, k, seed)
    return truth, np.asarray(labels), time.perf_counter() - start, center_start


def run_one(dataset: str, method: str, seed: int) -> dict:
    """Run one method on one dataset with one seed; scores and resource use."""
    import atlasclust as ac

    truth, labels, seconds, center_start = cluster(dataset, method, seed)
    scores = ac.metrics.evaluate(truth, labels)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"dataset": dataset, "method": method, "seed": seed, "seconds": seconds, "peak_mb": peak_mb}
    row |= scores | {"n_clusters": int(len(np.unique(labels)))}
    return row if center_start is None else row | {"center_start": center_start}


def _oracle_rows(rows: list[dict]) -> list[dict]:
    """Per oracle, dataset and seed, the one of its two fixed starts with the higher ARI: a reference that reads labels."""
    oracle = []
    for name, starts in ORACLES.items():
        for dataset, seed in sorted({(r["dataset"], r["seed"]) for r in rows}):
            runs = [r for r in rows if (r["dataset"], r["seed"]) == (dataset, seed) and r["method"] in starts]
            if len(runs) == len(starts):
                best = max(runs, key=lambda r: r["ARI"])
                oracle.append(
                    {"dataset": dataset, "method": name, "seed": seed} | {m: best[m] for m in ("ARI", "NMI", "ACC")}
                )
    return oracle


def _start_table(rows: list[dict], datasets: list[str], oracle: str, heading: str, description: str) -> list[str]:
    """Markdown: which start the label-free choice took on each dataset, beside the fixed start that scored higher."""
    kmeans_run, merged_run = ORACLES[oracle]
    if not any(r["method"] == CHOOSERS[oracle] for r in rows):
        return []
    lines = [
        heading,
        "",
        description,
        "",
        "| dataset | chose kmeans | chose merged | kmeans scored higher | merged scored higher |",
        "|---|---|---|---|---|",
    ]
    for dataset in datasets:
        chosen = [
            r["center_start"]
            for r in rows
            if r["dataset"] == dataset and r["method"] == CHOOSERS[oracle] and "center_start" in r
        ]
        ari = {
            (r["method"], r["seed"]): r["ARI"]
            for r in rows
            if r["dataset"] == dataset and r["method"] in ORACLES[oracle]
        }
        seeds = sorted({seed for _, seed in ari if all((m, seed) in ari for m in ORACLES[oracle])})
        kmeans_higher = sum(ari[kmeans_run, s] > ari[merged_run, s] for s in seeds)
        merged_higher = sum(ari[merged_run, s] > ari[kmeans_run, s] for s in seeds)
        lines.append(
            f"| {dataset} | {chosen.count('kmeans')} | {chosen.count('merged')} | {kmeans_higher} | {merged_higher} |"
        )
    return [*lines, ""]


def write_tables(rows: list[dict], seeds: int) -> str:
    """Markdown tables: per dataset and method, mean ± sd over seeds."""
    datasets = sorted({r["dataset"] for r in rows})
    rows = rows + _oracle_rows(rows)
    methods = [m for m in TABLE_METHODS if any(r["method"] == m for r in rows)]
    lines = [
        "# Accuracy benchmark",
        "",
        f"Generated by `python benchmarks/accuracy.py` on {platform.node() or 'the CPU machine'} "
        f"({os.cpu_count()} cores, {platform.processor() or platform.machine()}), "
        f"{time.strftime('%Y-%m-%d')}. K = true number of labels; up to {seeds} seeds (n in brackets where fewer ran); BGFormer and "
        "scRCL with their default settings and default epoch budgets (no label-based selection). BGFormer's "
        'default (`center_init="auto"`) starts its DEC centres from k-means or from merged k-means, whichever has '
        "the higher modularity on the pre-trained embedding's kNN graph; `bgformer_kmeans` and `bgformer_merged` "
        "always start from one of the two (`bgformer_kmeans` was the default until this version), and "
        "`bgformer_oracle` is, seed by seed, the one of those two with the higher ARI: a reference that reads the "
        "labels, to show how much of the reachable accuracy the label-free choice captures. scRCL's default "
        "clusters by k-means (on scRNA-seq data its embedding beside the principal components its views read, "
        "each scaled to the same spread: `cluster_components=True`); `scrcl_merged` and `scrcl_auto` take merged k-means or the same "
        'modularity choice (`center_init="merged"` or `"auto"`), and `scrcl_oracle` is the better of `scrcl` and '
        "`scrcl_merged`, seed by seed. On datasets that "
        "record each cell's batch (an obs column `batch`, `donor` or `sample`; among the shared data only Baron's "
        "`donor`), `bgformer_batch` and `scrcl_batch`, BGFormer and scRCL with `batch_key` set to it, beside "
        "`scvi_batch_leiden_trueK`, scVI with the same `batch_key`; each run in its own "
        "process. Cells: mean ± sd over seeds. Peak memory is the run's max RSS (whole process). Columns ran on "
        "different days and machines (2 cores each); across CPUs the same seed can differ by a few hundredths "
        "(the Accuracy page).",
        "",
        "Baselines (as in `../shared/data/baselines.md`): `kmeans_pca`, k-means on 50 PCs of the scaled 2000 HVGs; "
        "`leiden_res1` and `leiden_trueK`, Leiden on their kNN graph at resolution 1 and at the resolution that "
        "gives K; `scvi_leiden_trueK`, scVI (50 epochs on the HVG counts) latent + Leiden at K; "
        "`spatial_kmeans_pca` (slices with spot coordinates only), 30 PCs averaged 3 times over each spot's 6 "
        "nearest spots, then k-means. scRCL uses the spot coordinates on those slices and is compared with "
        "both; BGFormer never reads them, so its reference is the best expression baseline.",
        "",
        "Without K: `bgformer_noK` and `scrcl_noK` are told no number of clusters (`n_clusters=None`: Leiden on "
        "their embedding at their default resolution, BGFormer 1 and scRCL 0.25), the case of `leiden_res1`, to "
        "which they compare; the number of clusters each found is in its own table.",
        "",
    ]
    for metric in ("ARI", "NMI", "ACC"):
        lines += [
            f"## {metric}",
            "",
            "| dataset | " + " | ".join(methods) + " | best expression baseline |",
            "|---" * (len(methods) + 2) + "|",
        ]
        for dataset in datasets:
            cells, best = [], None
            for method in methods:
                values = [r[metric] for r in rows if r["dataset"] == dataset and r["method"] == method]
                cells.append(
                    mean_sd(values) + ("" if len(values) in (0, seeds) else f" (n={len(values)})") if values else "—"
                )
                if values and method not in OURS | SPATIAL_METHODS | set(ORACLES):
                    best = max(best or -1, float(np.mean(values)))
            best_cell = "—" if best is None else f"{best:.3f}"
            lines.append(f"| {dataset} | " + " | ".join(cells) + f" | {best_cell} |")
        lines.append("")
    lines += _start_table(
        rows,
        datasets,
        "bgformer_oracle",
        '## BGFormer\'s start (`center_init="auto"`, the default)',
        "How many of the default's runs started from k-means and how many from merged k-means (its label-free "
        "choice, by modularity at resolution 0.25 on the pre-trained embedding's kNN graph), and, of the same "
        "seeds, how often each fixed start scored the higher ARI (`bgformer_kmeans` against `bgformer_merged`).",
    )
    lines += _start_table(
        rows,
        datasets,
        "scrcl_oracle",
        '## scRCL\'s start (`center_init="auto"`, not the default)',
        "The same for scRCL: how often `scrcl_auto` took k-means or merged k-means on its embedding, and how "
        "often each fixed start scored the higher ARI (`scrcl`, k-means, the default, against `scrcl_merged`).",
    )
    lines += _cluster_count_table(rows, datasets)
    methods = [m for m in methods if m not in ORACLES]  # they have no run of their own
    for metric, unit, digits in (("seconds", "Wall time (s)", 1), ("peak_mb", "Peak memory (MB)", 0)):
        lines += [f"## {unit}", "", "| dataset | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
        for dataset in datasets:
            cells = []
            for method in methods:
                values = [r[metric] for r in rows if r["dataset"] == dataset and r["method"] == method]
                cells.append(mean_sd(values, digits) if values else "—")
            lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _cluster_count_table(rows: list[dict], datasets: list[str]) -> list[str]:
    """Markdown: clusters found by the methods told no K (runs that recorded it) beside the true K."""
    import anndata as ad

    methods = [m for m in METHODS if m in WITHOUT_K and any("n_clusters" in r and r["method"] == m for r in rows)]
    if not methods:
        return []
    lines = [
        "## Number of clusters, without K",
        "",
        "| dataset | true K | " + " | ".join(methods) + " |",
        "|---" * (len(methods) + 2) + "|",
    ]
    for dataset in datasets:
        true_k = ad.read_h5ad(DATA / f"{dataset}.h5ad", backed="r").obs["cell_type"].nunique()
        cells = []
        for method in methods:
            values = [
                r["n_clusters"] for r in rows if r["dataset"] == dataset and r["method"] == method and "n_clusters" in r
            ]
            cells.append(mean_sd(values, 1) if values else "—")
        lines.append(f"| {dataset} | {true_k} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def main() -> None:
    """Run the benchmark (or, with ``--worker``, one run) and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--datasets", default=None, help="comma-separated names (default: all in ../shared/data)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: all)")
    parser.add_argument("--out", default=str(RESULTS / "accuracy"))
    parser.add_argument("--tables-only", action="store_true", help="rewrite the tables from the saved results")
    parser.add_argument("--worker", nargs=3, metavar=("DATASET", "METHOD", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        dataset, method, seed = args.worker
        print(json.dumps(run_one(dataset, method, int(seed))))
        return

    names = args.datasets.split(",") if args.datasets else sorted(p.stem for p in DATA.glob("*.h5ad"))
    methods = args.methods.split(",")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else []
    done = {(r["dataset"], r["method"], r["seed"]) for r in rows}
    for dataset in [] if args.tables_only else names:
        for method in methods:
            if method in SPATIAL_METHODS and not _has_spatial(dataset):
                continue
            if method in BATCH_METHODS and _batch_column(dataset) is None:
                continue
            for seed in range(args.seeds):
                if (dataset, method, seed) in done:
                    continue
                result = subprocess.run(
                    [sys.executable, __file__, "--worker", dataset, method, str(seed)],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if result.returncode != 0:
                    print(f"{dataset} {method} {seed} FAILED\n{result.stderr[-2000:]}", flush=True)
                    continue
                row = json.loads(result.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(
                    f"{dataset:14s} {method:18s} seed {seed}  ARI {row['ARI']:.3f}  NMI {row['NMI']:.3f}  "
                    f"ACC {row['ACC']:.3f}  {row['seconds']:.1f}s  {row['peak_mb']:.0f}MB",
                    flush=True,
                )
                # keep partial results, so an interrupted benchmark resumes where it stopped
                out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    table = write_tables(rows, args.seeds)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
