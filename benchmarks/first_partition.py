"""BGFormer's first partition: what a label-free start could reach on the pre-trained embedding (issue 40).

``tl.bgformer`` places its DEC centres once, after the first training phase, by k-means at K on
the embedding; the DEC phase then moves ARI by only -0.05 to +0.06, so that start decides the
result. This trains the first phase exactly as the accuracy benchmark's ``bgformer`` runs do
(same data, genes, K, seed), stops before the DEC phase, and scores candidate first partitions
of the same cells, each label-free:

- ``kmeans_embedding``: k-means at K on the pre-trained embedding, today's start;
  ``kmeans_pca``: k-means at K on 50 PCs of the scaled 2000 HVGs, the accuracy benchmark's
  baseline (same call and seed, so it reproduces that column);
- ``restarts``: mean of k-means at K on the embedding with 4 other seeds (how much the start
  depends on k-means' own seed); ``merged``: ``center_init="merged"``'s groups;
  ``leiden_k``: Leiden at the resolution that gives K on the embedding's kNN graph;
- ``consensus``: today's start, the 3 other restarts, ``merged`` and ``leiden_k`` combined by
  co-assignment on the embedding's kNN graph (each edge weighted by the share of candidates that
  put its two cells together; no N x N matrix), then Leiden at K on that graph;
- ``accumulation``: the same consensus over 10 k-means runs at K to 2K clusters (evidence
  accumulation, which keeps large types whole when their splits disagree);
- ``joint``: k-means at K on the embedding's 50 PCs beside the 50 expression PCs, each block
  scaled to unit mean squared norm; ``cross_consensus``: consensus of 4 k-means runs on each
  space, on the joint space's kNN graph;
- ``modularity_choice``: ``tl.bgformer``'s ``center_init="auto"``, today's start or ``merged``,
  whichever has the higher modularity at resolution 0.25 on the embedding's kNN graph;
  ``modularity_1``: the same rule with Newman's modularity (resolution 1);
  ``best_of_two``: the better of the two by ARI, a reference only;
- ``most_agreed``: of the single candidates (the 4 restarts, ``merged``, ``leiden_k``, and on PCA
  k-means and Leiden at K), the one with the highest mean ARI to the others (a label-free rule),
  with ``choice`` naming it; ``oracle``: the best of the same candidates by ARI, for reference
  only (it reads the labels), with ``oracle_choice``.

Labels only score. Writes ``benchmarks/results/first_partition.md`` and ``.json``.

Usage: ``python benchmarks/first_partition.py [--seeds 2] [--datasets zeisel,pbmc3k]``
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from _seeded import change_lines, dataset_table, seeded_main

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
RESULTS = HERE / "results"
DATASETS = sorted(p.stem for p in DATA.glob("*.h5ad"))
DESIGNS = [
    "kmeans_embedding",
    "kmeans_pca",
    "restarts",
    "merged",
    "leiden_k",
    "consensus",
    "accumulation",
    "joint",
    "cross_consensus",
    "modularity_choice",
    "modularity_1",
    "best_of_two",
    "most_agreed",
    "oracle",
]


class _Stop(Exception):
    """Raised by the capture hook: the DEC phase is not needed."""


def pretrained_embedding(adata, k: int, seed: int, keep: dict | None = None) -> np.ndarray:
    """The embedding ``tl.bgformer`` (accuracy benchmark's call) places its DEC centres on, for every cell.

    ``keep``, if given, receives the pre-trained model under ``"model"``.
    """
    import atlasclust as ac
    from atlasclust.bgformer import BGFormer

    captured = {}
    initialize = BGFormer._initialize_clusters

    def capture(model, cells, batch_size, random_state):
        captured["latent"] = model.get_latent_representation(indices=cells, batch_size=batch_size)
        if keep is not None:
            keep["model"] = model
        raise _Stop

    BGFormer._initialize_clusters = capture
    try:
        ac.tl.bgformer(adata, k, n_top_genes=min(2000, adata.n_vars), random_state=seed, enable_progress_bar=False)
    except _Stop:
        pass
    finally:
        BGFormer._initialize_clusters = initialize
    return captured["latent"]


def _consensus(graph, partitions: list[np.ndarray], k: int, seed: int) -> np.ndarray:
    """Leiden at K on the kNN graph's edges weighted by the share of partitions that join their cells."""
    import scipy.sparse as sp
    from _baselines import leiden_with_k

    edges = sp.triu(graph.obsp["connectivities"], 1).tocoo()
    shares = np.mean([p[edges.row] == p[edges.col] for p in partitions], axis=0)
    weights = sp.coo_matrix((shares, (edges.row, edges.col)), shape=edges.shape).tocsr()
    weights = weights + weights.T
    weights.eliminate_zeros()
    return leiden_with_k(graph, k, seed, adjacency=weights)


def _unit_block(matrix: np.ndarray) -> np.ndarray:
    centred = matrix - matrix.mean(axis=0)
    return centred / np.sqrt((centred**2).sum(axis=1).mean())


def run_one(dataset: str, seed: int) -> dict:
    """Pre-train once, then score every candidate first partition."""
    import anndata as ad
    from _baselines import knn_graph, leiden_on_graph, scaled_pca
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score

    from atlasclust.train import AUTO_RESOLUTION, merged_kmeans_labels, modularity

    adata = ad.read_h5ad(DATA / f"{dataset}.h5ad")
    truth = adata.obs.pop("cell_type").to_numpy()
    k = len(np.unique(truth))
    latent = pretrained_embedding(adata.copy(), k, seed)
    expression = adata.copy()
    scaled_pca(expression, n_top_genes=2000, n_comps=50, seed=seed)
    pca = expression.obsm["X_pca"]

    def kmeans(matrix, n, random_state, n_init=10):
        return KMeans(n, n_init=n_init, random_state=random_state).fit_predict(matrix)

    rng = np.random.default_rng(seed)
    latent_graph = knn_graph(latent)
    restarts = [kmeans(latent, k, seed)] + [kmeans(latent, k, 1000 + 10 * seed + s) for s in range(3)]
    candidates = {f"kmeans_embedding_{s}": p for s, p in enumerate(restarts)}
    candidates["merged"] = merged_kmeans_labels(latent, k, random_state=seed)
    candidates["leiden_k"] = leiden_on_graph(latent_graph, k, seed)
    candidates["kmeans_pca"] = kmeans(pca, k, seed)
    candidates["leiden_k_pca"] = leiden_on_graph(knn_graph(pca), k, seed)
    scores = {name: adjusted_rand_score(truth, p) for name, p in candidates.items()}

    row = {"dataset": dataset, "seed": seed, "n_cells": len(truth)}
    row["kmeans_embedding"], row["kmeans_pca"] = scores["kmeans_embedding_0"], scores["kmeans_pca"]
    row["restarts"] = float(np.mean([scores[f"kmeans_embedding_{s}"] for s in (1, 2, 3)]))
    row["merged"], row["leiden_k"] = scores["merged"], scores["leiden_k"]
    pooled = [*restarts, candidates["merged"], candidates["leiden_k"]]
    row["consensus"] = adjusted_rand_score(truth, _consensus(latent_graph, pooled, k, seed))
    accumulated = [
        kmeans(latent, int(n), int(rng.integers(2**31)), n_init=1) for n in np.linspace(k, 2 * k, 10).round()
    ]
    row["accumulation"] = adjusted_rand_score(truth, _consensus(latent_graph, accumulated, k, seed))
    joint = np.hstack([_unit_block(PCA(50, random_state=seed).fit_transform(latent)), _unit_block(pca)])
    row["joint"] = adjusted_rand_score(truth, kmeans(joint, k, seed))
    cross = restarts + [kmeans(pca, k, 1000 + 10 * seed + s) for s in range(4)]
    row["cross_consensus"] = adjusted_rand_score(truth, _consensus(knn_graph(joint), cross, k, seed))
    connectivities = latent_graph.obsp["connectivities"]
    for column, resolution in (("modularity_choice", AUTO_RESOLUTION), ("modularity_1", 1.0)):
        quality = {
            name: modularity(connectivities, candidates[key], resolution=resolution)
            for name, key in (("kmeans", "kmeans_embedding_0"), ("merged", "merged"))
        }
        pick = max(quality, key=quality.get)
        row[f"{column}_pick"] = pick
        row[column] = row["kmeans_embedding"] if pick == "kmeans" else row["merged"]
    row["best_of_two"] = max(row["kmeans_embedding"], row["merged"])
    names = list(candidates)
    agreement = [np.mean([adjusted_rand_score(candidates[a], candidates[b]) for b in names if b != a]) for a in names]
    row["choice"] = names[int(np.argmax(agreement))]
    row["most_agreed"] = scores[row["choice"]]
    row["oracle_choice"] = max(scores, key=scores.get)
    row["oracle"] = scores[row["oracle_choice"]]
    return row


def write_table(rows: list[dict]) -> str:
    """Markdown: ARI per design (mean ± sd over seeds), the label-free rule's and the oracle's choices."""
    intro = (
        "`python benchmarks/first_partition.py`: BGFormer's first phase trained as in the accuracy benchmark "
        "(defaults, K = true number of labels, same seeds), then candidate first partitions of the "
        "pre-trained embedding scored by ARI; the DEC phase is not run. Designs are described in the "
        "script's docstring; `oracle` reads the labels and is a reference only. "
        "Generated on the 2-core CPU machine."
    )
    lines, means = dataset_table("# BGFormer's first partition, label-free designs", intro, rows, DESIGNS)
    title = "## Against today's start (k-means on the pre-trained embedding), per dataset mean"
    lines += change_lines(title, means, "kmeans_embedding", DESIGNS[1:])
    lines += [
        "",
        "## Choices",
        "",
        "| dataset | modularity_choice picks | most_agreed picks | oracle picks |",
        "|---|---|---|---|",
    ]
    for dataset in sorted({r["dataset"] for r in rows}):
        chosen = [r for r in rows if r["dataset"] == dataset]
        picks = [
            ", ".join(f"{n} ×{c}" for n, c in Counter(r[key] for r in chosen).most_common())
            for key in ("modularity_choice_pick", "choice", "oracle_choice")
        ]
        lines.append(f"| {dataset} | {picks[0]} | {picks[1]} | {picks[2]} |")
    return "\n".join(lines)


def main() -> None:
    """Run what is missing and write the tables."""
    seeded_main(
        __doc__, out=RESULTS / "first_partition", datasets=DATASETS, run_one=run_one, write_table=write_table, seeds=2
    )


if __name__ == "__main__":
    main()
