"""How many genes to give the methods on data already reduced to a few thousand genes.

The accuracy benchmark gives every method the 2000 most variable genes (``n_top_genes=2000``, the
default of both tools and of scanpy's pipelines). The five DLPFC Visium slices of the shared data
arrive with 5000 genes (151510 with 500) and Zeisel's with 4000: gene sets already chosen by whoever
prepared them. This runs, at true K and with labels only scoring:

- ``kmeans_pca``: the accuracy benchmark's baseline (``normalize_total`` to 10,000, ``log1p``, the
  variable genes, ``scale``, 50 principal components, k-means);
- ``bgformer``: ``tl.bgformer`` at its defaults;
- ``scrcl``: ``tl.scrcl`` at its defaults, with the spot coordinates where there are some;

each with the 2000 most variable genes and with all genes (``n_top_genes=None``).

Writes ``benchmarks/results/gene_count.md`` and ``.json``.

Usage: ``python benchmarks/gene_count.py [--seeds 2] [--datasets dlpfc_151673,zeisel]``
"""

from __future__ import annotations

from pathlib import Path

from _baselines import scaled_pca
from _seeded import dataset_table, seeded_main
from accuracy import DATA

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DATASETS = ("dlpfc_151673", "dlpfc_151674", "dlpfc_151675", "dlpfc_151676", "zeisel")
#: ``n_top_genes`` of each column: the default and all genes.
GENE_COUNTS = {"2000": 2000, "all": None}
METHODS = ("kmeans_pca", "bgformer", "scrcl")


def kmeans_pca(adata, k: int, n_top_genes: int | None, seed: int):
    """The accuracy benchmark's ``kmeans_pca``, on the ``n_top_genes`` most variable genes or on all."""
    from sklearn.cluster import KMeans

    adata = adata.copy()
    scaled_pca(adata, n_top_genes=n_top_genes, n_comps=50, seed=seed)
    return KMeans(k, n_init=10, random_state=seed).fit_predict(adata.obsm["X_pca"])


def run_one(dataset: str, seed: int) -> dict:
    """Every method with each gene count on one dataset and seed."""
    import anndata as ad
    from sklearn.metrics import adjusted_rand_score

    import atlasclust as ac

    adata = ad.read_h5ad(DATA / f"{dataset}.h5ad")
    truth = adata.obs.pop("cell_type").to_numpy()  # nothing below may see the labels
    k = len(set(truth))
    row = {"dataset": dataset, "seed": seed, "genes": adata.n_vars}
    for name, n_top_genes in GENE_COUNTS.items():
        n_top_genes = None if n_top_genes is None else min(n_top_genes, adata.n_vars)
        row[f"kmeans_pca {name}"] = adjusted_rand_score(truth, kmeans_pca(adata, k, n_top_genes, seed))
        options = {"n_top_genes": n_top_genes, "random_state": seed, "enable_progress_bar": False, "copy": True}
        result = ac.tl.bgformer(adata, k, **options)
        row[f"bgformer {name}"] = adjusted_rand_score(truth, result.obs["bgformer"].to_numpy())
        spatial_key = "spatial" if "spatial" in adata.obsm else None
        result = ac.tl.scrcl(adata, k, spatial_key=spatial_key, **options)
        row[f"scrcl {name}"] = adjusted_rand_score(truth, result.obs["scrcl"].to_numpy())
    return row


def write_table(rows: list[dict]) -> str:
    """Markdown: one line per dataset, a column per method and gene count (ARI, mean ± sd over seeds)."""
    columns = [f"{method} {name}" for method in METHODS for name in GENE_COUNTS]
    lines, _ = dataset_table(
        "# How many genes: the 2000 most variable, or all of a dataset's few thousand",
        "`python benchmarks/gene_count.py`: ARI at true K (mean ± sd over seeds) of k-means on 50 principal "
        "components (the accuracy benchmark's `kmeans_pca`), `tl.bgformer` and `tl.scrcl` (spot coordinates on "
        "the DLPFC slices) at their defaults, given the 2000 most variable genes (`n_top_genes=2000`, the "
        "default) or all of the dataset's genes (`n_top_genes=None`). Labels only score.",
        rows,
        columns,
        label=lambda row: f"{row['genes']} genes",
    )
    return "\n".join(lines)


def main() -> None:
    """Run what is missing and write the table."""
    seeded_main(
        __doc__, out=RESULTS / "gene_count", datasets=DATASETS, run_one=run_one, write_table=write_table, seeds=2
    )


if __name__ == "__main__":
    main()
