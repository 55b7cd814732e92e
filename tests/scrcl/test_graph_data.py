import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from atlasclust.data._graphs import binary_symmetric, gcn_normalize
from atlasclust.scrcl import _graph_data
from atlasclust.scrcl._graph_data import CellGraphData, smooth


def _problem(n_cells=60, width=5, density=0.08):
    rng = np.random.default_rng(0)
    adjacency = binary_symmetric(sp.random(n_cells, n_cells, density=density, random_state=1))
    return adjacency, rng.normal(size=(n_cells, width)).astype(np.float32)


@pytest.mark.parametrize("chunk_rows", [7, 16_384])
@pytest.mark.parametrize("powers", [(10, 9), (0, 1), (3, 3), (2, 5), (4, 0)])
def test_smooth_gives_the_powers_of_the_propagation(monkeypatch, chunk_rows, powers):
    monkeypatch.setattr(_graph_data, "SMOOTHING_CHUNK_ROWS", chunk_rows)
    adjacency, features = _problem()
    propagation = gcn_normalize(adjacency)
    dense = propagation.toarray().astype(np.float64)
    expected = [np.linalg.matrix_power(dense, power) @ features for power in powers]
    results = smooth(propagation, features.copy(), powers)
    for power, result, want in zip(powers, results, expected, strict=True):
        assert result.dtype == np.float32
        np.testing.assert_allclose(result, want, rtol=1e-4, atol=1e-5, err_msg=f"power {power}")


def test_smooth_shares_equal_powers_and_returns_power_zero_as_given():
    adjacency, features = _problem()
    propagation = gcn_normalize(adjacency)
    same, again = smooth(propagation, features.copy(), (3, 3))
    assert same is again
    given = features.copy()
    unsmoothed, once = smooth(propagation, given, (0, 1))
    assert unsmoothed is given
    np.testing.assert_array_equal(given, features)  # power 0 asked for: the input is left as it was


def test_smooth_holds_two_feature_matrices_for_neighbouring_powers(monkeypatch):
    # the spatial default (10 hops for the MLP view, 9 for the GCN's input) used to hold four
    # cells x genes matrices at once (the input, both results and a step's output)
    monkeypatch.setattr(_graph_data, "SMOOTHING_CHUNK_ROWS", 100)
    adjacency, features = _problem(n_cells=4000, width=64, density=0.004)  # about 16 neighbours per cell
    propagation = gcn_normalize(adjacency)
    tracemalloc.start()
    try:
        mlp, propagated = smooth(propagation, features, (10, 9))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one new matrix beside the consumed input, plus a chunk's product and the sparse rows
    assert peak < 1.25 * features.nbytes
    assert not np.shares_memory(mlp, propagated)


def test_build_keeps_one_copy_on_the_device_for_equal_powers():
    adjacency, features = _problem()
    data = CellGraphData.build(adjacency, features, smoothing=(2, 1))
    assert data.mlp_features is data.propagated_features
    assert data.feature_bytes() == data.propagated_features.nbytes
    data.keep_on("cpu")
    assert data.on_device["mlp_features"] is data.on_device["propagated_features"]
    batch = data.batch(np.arange(10), "cpu")
    np.testing.assert_array_equal(batch["mlp_features"].numpy(), data.mlp_features[batch["nodes"].numpy()])
