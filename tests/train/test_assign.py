import anndata as ad
import igraph as ig
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from atlasclust.data import knn_connectivities, neighbor_connectivities
from atlasclust.train import _assign
from atlasclust.train._assign import (
    AUTO_RESOLUTION,
    cluster_centers,
    leiden_on_embedding,
    merged_kmeans_labels,
    modularity,
)


def _one_large_and_three_small_groups():
    """A wide group of 2,000 points and, far from it, three tight groups of 40 close to each other."""
    rng = np.random.default_rng(0)
    large = rng.normal(0.0, 3.0, size=(2000, 2))
    small = [rng.normal(centre, 0.3, size=(40, 2)) for centre in ([30.0, 0.0], [30.0, 12.0], [42.0, 0.0])]
    points = np.vstack([large, *small])
    groups = np.repeat(np.arange(4), [2000, 40, 40, 40])
    return points, groups


def test_merged_kmeans_keeps_a_large_group_whole_where_kmeans_splits_it():
    points, groups = _one_large_and_three_small_groups()
    plain = KMeans(4, n_init=10, random_state=0).fit_predict(points)
    merged = merged_kmeans_labels(points, 4, random_state=0)
    # k-means cuts the wide group rather than join two small ones
    assert adjusted_rand_score(groups, plain) < 0.9
    assert adjusted_rand_score(groups, merged) == 1.0


def test_merged_centres_are_the_means_of_the_merged_groups():
    points, groups = _one_large_and_three_small_groups()
    centres, start = cluster_centers(points, 4, resolution=1.0, random_state=0, init="merged")
    assert start == {"start": "merged"}
    expected = np.stack([points[groups == g].mean(axis=0) for g in range(4)])
    # same centres, in whatever order the clustering numbered them
    order = [int(np.argmin(np.linalg.norm(centres - e, axis=1))) for e in expected]
    assert sorted(order) == [0, 1, 2, 3]
    np.testing.assert_allclose(centres[order], expected, rtol=1e-6)


def test_merged_kmeans_with_fewer_distinct_rows_than_sub_clusters():
    points = np.repeat(np.eye(3), 5, axis=0)  # three distinct rows: no room to split finer
    labels = merged_kmeans_labels(points, 3, random_state=0)
    assert adjusted_rand_score(np.repeat(np.arange(3), 5), labels) == 1.0


def test_modularity_matches_igraph_on_a_weighted_graph():
    rng = np.random.default_rng(1)
    upper = sp.triu(sp.random(60, 60, density=0.1, random_state=1), 1)
    weights = (upper + upper.T).tocsr()
    labels = rng.integers(0, 4, size=60)
    rows, cols = sp.triu(weights, 1).nonzero()
    graph = ig.Graph(n=60, edges=list(zip(rows.tolist(), cols.tolist(), strict=True)))
    expected = graph.modularity(labels.tolist(), weights=np.asarray(weights[rows, cols]).ravel().tolist())
    assert modularity(weights, labels) == pytest.approx(expected, rel=1e-9)


def test_modularity_resolution_sets_how_much_a_large_cluster_is_penalised():
    # Newman's modularity (resolution 1) prefers k-means' cut of the large group to the merged groups, which
    # keep it whole; edge weight alone (resolution 0) prefers the merged groups: the reason "auto" uses less than 1
    points, _ = _one_large_and_three_small_groups()
    graph = neighbor_connectivities(points)
    plain = KMeans(4, n_init=10, random_state=0).fit_predict(points)
    merged = merged_kmeans_labels(points, 4, random_state=0)
    assert modularity(graph, plain) > modularity(graph, merged)
    assert modularity(graph, plain, resolution=0.0) < modularity(graph, merged, resolution=0.0)
    assert modularity(graph, merged, resolution=0.0) == pytest.approx(1.0)  # no edge between its groups


def test_auto_start_takes_the_candidate_of_higher_modularity():
    # overlapping groups: which candidate wins is not obvious, but it must be the one of higher modularity
    rng = np.random.default_rng(3)
    points = np.vstack([rng.normal(centre, 1.0, size=(150, 5)) for centre in (0.0, 1.5, 3.0, 6.0)])
    graph = knn_connectivities(points)  # scanpy's graph (tests/data/test_graphs.py), its weights computed once
    kmeans = KMeans(4, n_init=10, random_state=0).fit(points)
    merged = merged_kmeans_labels(points, 4, random_state=0)
    scores = {
        "kmeans": modularity(graph, kmeans.labels_, resolution=AUTO_RESOLUTION),
        "merged": modularity(graph, merged, resolution=AUTO_RESOLUTION),
    }
    centres, start = cluster_centers(points, 4, resolution=1.0, random_state=0, init="auto")
    assert start == {"start": max(scores, key=scores.get), "modularity": scores}
    expected = (
        kmeans.cluster_centers_
        if start["start"] == "kmeans"
        else cluster_centers(points, 4, resolution=1.0, random_state=0, init="merged")[0]
    )
    np.testing.assert_array_equal(centres, expected)


def test_auto_start_measures_modularity_on_a_bounded_exact_graph(monkeypatch):
    # above AUTO_MAX_CELLS, both candidates are scored on the same random subset of cells, by an exact kNN graph
    points, _ = _one_large_and_three_small_groups()
    _, on_all_cells = cluster_centers(points, 4, resolution=1.0, random_state=0, init="auto")
    graphs = []

    def recording_connectivities(latent, **kwargs):
        graphs.append(len(latent))
        return knn_connectivities(latent, **kwargs)

    monkeypatch.setattr(_assign, "AUTO_MAX_CELLS", 1000)
    monkeypatch.setattr(_assign, "knn_connectivities", recording_connectivities)
    _, on_subset = cluster_centers(points, 4, resolution=1.0, random_state=0, init="auto")
    assert graphs == [1000]
    assert on_subset["start"] == on_all_cells["start"]
    for name, score in on_all_cells["modularity"].items():
        assert on_subset["modularity"][name] == pytest.approx(score, abs=0.05)
        assert on_subset["modularity"][name] != score  # measured on other cells


def test_kmeans_start_is_plain_kmeans():
    points, _ = _one_large_and_three_small_groups()
    centres, start = cluster_centers(points, 4, resolution=1.0, random_state=0, init="kmeans")
    assert start == {"start": "kmeans"}
    np.testing.assert_array_equal(centres, KMeans(4, n_init=10, random_state=0).fit(points).cluster_centers_)


def test_leiden_on_embedding_is_scanpys_leiden_on_scanpys_graph():
    rng = np.random.default_rng(0)
    points = np.vstack([rng.normal(centre, 1.0, size=(120, 6)) for centre in (0.0, 2.0, 4.0)]).astype(np.float32)
    embedded = ad.AnnData(obs=pd.DataFrame(index=np.arange(len(points)).astype(str)), obsm={"X_latent": points})
    sc.pp.neighbors(embedded, n_neighbors=15, use_rep="X_latent", random_state=0)
    sc.tl.leiden(embedded, resolution=0.5, flavor="igraph", n_iterations=2, random_state=0)
    ours = leiden_on_embedding(points, resolution=0.5, random_state=0)
    assert adjusted_rand_score(embedded.obs["leiden"].cat.codes, ours) == 1.0
    assert len(np.unique(ours)) > 1
