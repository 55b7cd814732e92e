import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

from atlasclust.data._graphs import (
    binary_symmetric,
    expression_graph,
    gcn_normalize,
    gene_graph,
    knn_connectivities,
    mutual_neighbors,
    spatial_graph,
    spatial_majority_vote,
)


def _is_binary_symmetric_without_loops(graph) -> bool:
    return (
        sp.issparse(graph)
        and (graph != graph.T).nnz == 0
        and graph.diagonal().sum() == 0
        and set(np.unique(graph.data)) == {1.0}
    )


def test_spatial_graph_links_grid_neighbours():
    row, col = np.divmod(np.arange(100), 10)
    graph = spatial_graph(np.column_stack([col, row]).astype(float), n_neighbors=4)
    assert _is_binary_symmetric_without_loops(graph)
    # an inner spot's 4 nearest spots are its grid neighbours (distance 1)
    assert set(graph[55].indices) == {45, 54, 56, 65}


def test_expression_graph_above_8192_cells():
    # pynndescent 0.7 crashes sc.pp.neighbors here: scanpy 1.11 above 4096 cells, scanpy 1.12.4 between
    # 5,000 and 9,000 (5,000 passed, 9,000 failed); hence pynndescent<0.7 on both stacks
    coordinates = np.random.default_rng(0).normal(size=(9000, 10)).astype(np.float32)
    graph = expression_graph(coordinates, n_neighbors=10)
    assert graph.shape == (9000, 9000)
    assert _is_binary_symmetric_without_loops(graph)
    assert np.diff(graph.indptr).min() >= 5


def _scanpy_connectivities(coordinates, *, n_neighbors=15, metric="euclidean", transformer=None):
    holder = ad.AnnData(obs=pd.DataFrame(index=np.arange(len(coordinates)).astype(str)), obsm={"X": coordinates})
    sc.pp.neighbors(holder, n_neighbors=n_neighbors, use_rep="X", metric=metric, transformer=transformer)
    return holder.obsp["connectivities"]


def _groups_with_duplicates():
    """Three overlapping groups, and five copies of one cell (ties among nearest neighbours)."""
    rng = np.random.default_rng(0)
    groups = [rng.normal(centre, 1.0, size=(200, 8)) for centre in (0.0, 1.5, 4.0)]
    return np.vstack([*groups, np.repeat(groups[0][:1], 5, axis=0)]).astype(np.float32)


@pytest.mark.parametrize("n_neighbors", [15, 5])
def test_knn_connectivities_are_scanpys_weights(n_neighbors):
    coordinates = _groups_with_duplicates()
    ours = knn_connectivities(coordinates, n_neighbors=n_neighbors)
    scanpys = _scanpy_connectivities(coordinates, n_neighbors=n_neighbors, transformer="sklearn")
    assert ((ours != 0) != (scanpys != 0)).nnz == 0  # the same edges
    assert abs(ours - scanpys).max() < 1e-5  # the same weights, to float32 rounding
    assert (ours != ours.T).nnz == 0
    assert ours.diagonal().sum() == 0


def test_knn_connectivities_take_each_cells_distance_to_itself_as_zero():
    # float32 rounding leaves some rows a distance to themselves above zero, which UMAP would take for the
    # nearest neighbour's distance (every weight of the row then drops); scanpy's weights treat it as zero
    coordinates = (np.random.default_rng(0).normal(size=(300, 16)) * 0.7).astype(np.float32)
    to_itself = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(coordinates).kneighbors(coordinates)[0][:, 0]
    assert (to_itself > 0).sum() > 10  # the case this test is about
    assert abs(knn_connectivities(coordinates) - _scanpy_connectivities(coordinates)).max() < 1e-5


def test_knn_connectivities_of_fewer_cells_than_neighbours():
    coordinates = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    ours = knn_connectivities(coordinates)  # 15 neighbours asked, 5 other cells
    assert ours.shape == (6, 6)
    assert abs(ours - _scanpy_connectivities(coordinates, n_neighbors=5, transformer="sklearn")).max() < 1e-5


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_expression_graph_below_the_exact_limit_is_scanpys_binarised(metric):
    coordinates = _groups_with_duplicates()
    scanpys = binary_symmetric(_scanpy_connectivities(coordinates, n_neighbors=10, metric=metric))
    assert (expression_graph(coordinates, n_neighbors=10, metric=metric) != scanpys).nnz == 0


def test_graphs_below_the_exact_limit_need_no_umap():
    # UMAP compiles its numba kernels in each new process (10 to 25 s on two cores), longer than the start itself
    script = (
        "import sys, numpy as np\n"
        "from atlasclust.data import expression_graph, knn_connectivities\n"
        "from atlasclust.train import cluster_centers\n"
        "x = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)\n"
        "expression_graph(x); knn_connectivities(x)\n"
        "cluster_centers(x, 4, resolution=1.0, random_state=0, init='auto')\n"
        "cluster_centers(x, None, resolution=1.0, random_state=0)\n"  # Leiden's start, without K
        "print(sorted(m for m in ('umap', 'pynndescent') if m in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_cosine_expression_graph_ignores_each_cells_scale():
    rng = np.random.default_rng(0)
    coordinates = rng.normal(size=(300, 10)).astype(np.float32)
    rescaled = coordinates * rng.uniform(0.2, 5, size=(300, 1)).astype(np.float32)
    cosine = expression_graph(coordinates, n_neighbors=10, metric="cosine")
    assert (expression_graph(rescaled, n_neighbors=10, metric="cosine") != cosine).nnz == 0
    assert (expression_graph(rescaled, n_neighbors=10) != expression_graph(coordinates, n_neighbors=10)).nnz > 0


def test_binary_symmetric_unions_directed_edges():
    directed = sp.csr_matrix(np.array([[0, 2.5, 0], [0, 0, 0], [0.1, 0, 1]]))
    graph = binary_symmetric(directed)
    np.testing.assert_array_equal(graph.toarray(), [[0, 1, 1], [1, 0, 0], [1, 0, 0]])


def test_gene_graph_is_directed_and_includes_each_gene():
    descriptors = np.random.default_rng(1).normal(size=(50, 4))
    graph = gene_graph(descriptors, n_neighbors=5)
    assert (graph.diagonal() == 1).all()
    assert (np.diff(graph.indptr) == 5).all()


def test_gcn_normalize_matches_formula():
    adjacency = binary_symmetric(sp.random(30, 30, density=0.1, random_state=0))
    dense = adjacency.toarray() + np.eye(30)
    scale = 1 / np.sqrt(dense.sum(axis=1))
    np.testing.assert_allclose(gcn_normalize(adjacency).toarray(), scale[:, None] * dense * scale[None, :], rtol=1e-6)


def test_mean_normalization_averages_each_cell_with_its_neighbours():
    adjacency = binary_symmetric(sp.random(30, 30, density=0.1, random_state=0))
    dense = adjacency.toarray() + np.eye(30)
    mean = gcn_normalize(adjacency, normalization="mean")
    np.testing.assert_allclose(mean.toarray(), dense / dense.sum(axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(mean.sum(axis=1)).ravel(), 1, rtol=1e-6)


def test_only_the_mean_normalization_leaves_hub_cells_on_the_scale_of_the_others():
    # a star: cell 0 is linked to 40 cells, each of those only to cell 0
    star = sp.csr_matrix((np.ones(40), (np.zeros(40, dtype=int), np.arange(1, 41))), shape=(41, 41))
    star = binary_symmetric(star)
    features = np.ones((41, 3), dtype=np.float32)
    mean = gcn_normalize(star, normalization="mean") @ features
    np.testing.assert_allclose(mean, 1, rtol=1e-6)
    symmetric = gcn_normalize(star) @ features
    # the hub's input grows with the square root of its degree, its leaves' shrinks
    assert symmetric[0, 0] > 4 * symmetric[1, 0]


def test_unknown_normalization_is_refused():
    with pytest.raises(ValueError, match="normalization"):
        gcn_normalize(sp.eye(3), normalization="row")


def test_majority_vote_fixes_isolated_mislabels():
    row, col = np.divmod(np.arange(100), 10)
    coordinates = np.column_stack([col, row]).astype(float)
    truth = (row >= 5).astype(int)
    noisy = truth.copy()
    noisy[[22, 77]] = 1 - noisy[[22, 77]]
    np.testing.assert_array_equal(spatial_majority_vote(noisy, coordinates, n_neighbors=8), truth)


def test_spatial_graph_and_vote_stay_within_slices():
    # two slices on the same coordinate frame: the same grid twice
    row, col = np.divmod(np.arange(100), 10)
    grid = np.column_stack([col, row]).astype(float)
    coordinates = np.vstack([grid, grid])
    slices = np.repeat(["a", "b"], 100)
    graph = spatial_graph(coordinates, n_neighbors=4, groups=slices)
    assert _is_binary_symmetric_without_loops(graph)
    assert graph[:100, 100:].nnz == 0 and graph[100:, :100].nnz == 0
    # within each slice, the graph of that slice alone
    alone = spatial_graph(grid, n_neighbors=4)
    assert (graph[:100, :100] != alone).nnz == 0 and (graph[100:, 100:] != alone).nnz == 0
    # slice a labelled 0, slice b 1 but for one spot: within slices the odd spot is outvoted
    labels = np.r_[np.zeros(100, int), np.ones(100, int)]
    labels[155] = 0
    voted = spatial_majority_vote(labels, coordinates, n_neighbors=8, groups=slices)
    np.testing.assert_array_equal(voted, np.r_[np.zeros(100, int), np.ones(100, int)])
    mixed = spatial_majority_vote(labels, coordinates, n_neighbors=8)
    assert not np.array_equal(mixed, voted)  # without groups, the other slice's spots at the same place vote too


def test_mutual_neighbors_join_groups_as_the_direct_definition_says():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(90, 3))
    groups = np.repeat([2, 0, 1], 30)  # group names in any order
    graph = mutual_neighbors(points, groups, n_neighbors=4)
    assert _is_binary_symmetric_without_loops(graph)
    distances = np.linalg.norm(points[:, None] - points[None], axis=2)

    def nearest(i, group):  # the 4 cells of ``group`` nearest to cell i
        members = np.flatnonzero(groups == group)
        return set(members[np.argsort(distances[i, members])[:4]])

    expected = np.zeros((90, 90), dtype=bool)
    for i in range(90):
        for j in range(90):
            if groups[i] != groups[j]:
                expected[i, j] = j in nearest(i, groups[j]) and i in nearest(j, groups[i])
    np.testing.assert_array_equal(graph.toarray().astype(bool), expected)
    assert expected.any()  # some pairs are mutual, and no pair within a group is joined


def test_mutual_neighbors_pair_a_copy_with_its_original():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(50, 5))
    copy = points + rng.normal(scale=1e-3, size=points.shape)  # another slice, the same cells
    graph = mutual_neighbors(np.vstack([points, copy]), np.repeat(["a", "b"], 50), n_neighbors=1)
    np.testing.assert_array_equal(graph[:50, 50:].toarray(), np.eye(50))
    assert mutual_neighbors(points, np.zeros(50), n_neighbors=3).nnz == 0  # one group: nothing to join
