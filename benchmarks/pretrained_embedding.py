"""BGFormer's pre-trained embedding against PCA: where it loses, is it the input or the network (issue 40)?

``tl.bgformer``'s partition is fixed when its DEC centres are placed on the pre-trained embedding,
so that embedding bounds the result. This trains the first phase exactly as the accuracy
benchmark's ``bgformer`` runs do (``first_partition.pretrained_embedding``: same data, genes, K,
seed), stops before the DEC phase and compares, label-free except for scoring:

- ``kmeans_embedding``: k-means at K on the pre-trained embedding (today's k-means start);
- ``kmeans_pca``: k-means at K on 50 PCs of the baselines' scanpy pipeline (2000 HVGs of the
  log-normalised counts, scaled), as ``kmeans_pca`` in the accuracy benchmark;
- ``kmeans_model_input``: k-means at K on 50 PCs of the network's own input (the model's genes,
  median-normalised ``log1p``, z-scored with the model's moments, clipped at ±10): what the
  network was given;
- ``depth_r2_*``: R² of a linear regression of each cell's log total counts on the embedding and
  on the PCs, and ``within_type_depth_r2_*`` of its deviation from its cell type's mean (labels
  used only to define that deviation, to score); how much sequencing depth each space carries;
- ``largest_type_clusters``: in how many k-means clusters of the embedding (each holding at least
  5 % of the type) the largest cell type lies; on PCA in ``largest_type_clusters_pca``.

If ``kmeans_model_input`` is near ``kmeans_pca`` while ``kmeans_embedding`` is far below, the
network, not its input, loses the structure. Writes ``benchmarks/results/pretrained_embedding.md`` and ``.json``.

Usage: ``python benchmarks/pretrained_embedding.py [--seeds 1] [--datasets baron_mouse,pbmc3k]``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _seeded import dataset_table, seeded_main
from first_partition import DATA, DATASETS, pretrained_embedding

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
COLUMNS = [
    "kmeans_embedding",
    "kmeans_model_input",
    "kmeans_pca",
    "depth_r2_embedding",
    "depth_r2_pca",
    "within_type_depth_r2_embedding",
    "within_type_depth_r2_pca",
    "largest_type_clusters",
    "largest_type_clusters_pca",
]


def _model_input(adata, module) -> np.ndarray:
    """The network's input for every cell: ``module.prepare_input`` of their counts, without batches."""
    import torch

    counts = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    with torch.no_grad():
        _, _, scaled = module.prepare_input(torch.as_tensor(counts, dtype=torch.float32))
    return scaled.numpy()


def _clusters_holding(labels: np.ndarray, members: np.ndarray, share: float = 0.05) -> int:
    counts = np.bincount(labels[members])
    return int((counts >= share * members.sum()).sum())


def run_one(dataset: str, seed: int) -> dict:
    """Pre-train once; compare the embedding, the network's input and PCA."""
    import anndata as ad
    from _baselines import scaled_pca
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import adjusted_rand_score

    adata = ad.read_h5ad(DATA / f"{dataset}.h5ad")
    truth = adata.obs.pop("cell_type").to_numpy()
    k = len(np.unique(truth))
    captured = {}
    latent = pretrained_embedding(adata.copy(), k, seed, keep=captured)
    network_input = _model_input(adata, captured["model"].module)
    expression = adata.copy()
    scaled_pca(expression, n_top_genes=2000, n_comps=50, seed=seed)
    pca = expression.obsm["X_pca"]

    def kmeans(matrix):
        return KMeans(k, n_init=10, random_state=seed).fit_predict(matrix)

    def r2(matrix, target):
        return float(LinearRegression().fit(matrix, target).score(matrix, target))

    depth = np.log1p(np.asarray(adata.X.sum(axis=1)).ravel())
    type_mean = {t: depth[truth == t].mean() for t in np.unique(truth)}
    within_type = depth - np.array([type_mean[t] for t in truth])
    names, sizes = np.unique(truth, return_counts=True)
    largest = truth == names[sizes.argmax()]
    on_embedding, on_pca = kmeans(latent), kmeans(pca)
    n_input_comps = min(50, network_input.shape[1] - 1)
    return {
        "dataset": dataset,
        "seed": seed,
        "kmeans_embedding": adjusted_rand_score(truth, on_embedding),
        "kmeans_model_input": adjusted_rand_score(
            truth, kmeans(PCA(n_input_comps, random_state=seed).fit_transform(network_input))
        ),
        "kmeans_pca": adjusted_rand_score(truth, on_pca),
        "depth_r2_embedding": r2(latent, depth),
        "depth_r2_pca": r2(pca, depth),
        "within_type_depth_r2_embedding": r2(latent, within_type),
        "within_type_depth_r2_pca": r2(pca, within_type),
        "largest_type_clusters": _clusters_holding(on_embedding, largest),
        "largest_type_clusters_pca": _clusters_holding(on_pca, largest),
    }


def write_table(rows: list[dict]) -> str:
    """The per-dataset table (mean ± sd over seeds)."""
    lines, _ = dataset_table(
        "# BGFormer's pre-trained embedding against PCA",
        "`python benchmarks/pretrained_embedding.py`: BGFormer's first phase trained as in the accuracy "
        "benchmark (defaults, K = true number of labels), stopped before the DEC phase. ARI of k-means at K "
        "on the embedding, on 50 PCs of the network's own input and on the baselines' 50 PCs; R² of log "
        "total counts (and of its deviation from the cell type's mean) regressed on the embedding and on "
        "the PCs; how many k-means clusters (of at least 5 % of it) hold the largest cell type. Columns "
        "are described in the script's docstring. Generated on the 2-core CPU machine.",
        rows,
        COLUMNS,
    )
    return "\n".join(lines)


def main() -> None:
    """Run what is missing and write the table."""
    seeded_main(
        __doc__,
        out=RESULTS / "pretrained_embedding",
        datasets=DATASETS,
        run_one=run_one,
        write_table=write_table,
        seeds=1,
    )


if __name__ == "__main__":
    main()
