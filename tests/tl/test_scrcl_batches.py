"""scRCL across batches and pooled slices: ``batch_key`` and ``library_key``."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import (
    BAD_BATCH_KEYS,
    SCRCL_FAST,
    assert_unchanged,
    check_bad_batch_key_refused,
    check_batch_key_recovers_types,
    snapshot,
)

import atlasclust as ac
from atlasclust.data import mutual_neighbors, spatial_majority_vote
from atlasclust.scrcl import _data as scrcl_data


def _cross_batch_share(graph: sp.spmatrix, batches: pd.Series) -> float:
    """Share of the graph's edges that join cells of different batches."""
    rows, columns = sp.triu(graph, k=1).nonzero()
    codes = batches.cat.codes.to_numpy()
    return float(np.mean(codes[rows] != codes[columns]))


def test_batch_key_keeps_neighbours_and_clusters_off_the_batches(two_batches):
    options = SCRCL_FAST | {"n_top_genes": None}
    plain, result = check_batch_key_recovers_types(ac.tl.scrcl, two_batches, "scrcl", options)
    # with batch_key the expression graph joins the batches (41% of its edges; 0.02% without)
    assert _cross_batch_share(plain.obsp["scrcl_connectivities"], two_batches.obs["batch"]) < 0.05
    assert _cross_batch_share(result.obsp["scrcl_connectivities"], two_batches.obs["batch"]) > 0.3


def test_batch_key_saved_predicted_and_refused(two_batches, tmp_path, monkeypatch):
    options = SCRCL_FAST | {"n_top_genes": None}
    result, model = ac.tl.scrcl(two_batches, 3, batch_key="batch", copy=True, return_model=True, **options)
    # rows are centred on their batch's means chunk by chunk, in place
    monkeypatch.setattr(scrcl_data, "_CHUNK_ROWS", 7)
    rng = np.random.default_rng(0)
    features, codes = rng.normal(size=(50, two_batches.n_vars)).astype(np.float32), rng.integers(2, size=50)
    expected = features - model._batch_shift()[codes]
    assert model._centre_batches(features, codes) is features
    np.testing.assert_allclose(features, expected, rtol=1e-6)
    model.save(tmp_path / "model")
    new_cells = two_batches[::7].copy()
    loaded = ac.models.SCRCL.load(tmp_path / "model", adata=new_cells)
    assert ac.metrics.evaluate(loaded.predict(new_cells), result.obs["scrcl"].to_numpy()[::7])["ARI"] > 0.9
    elsewhere = new_cells.copy()
    elsewhere.obs["batch"] = "b2"
    with pytest.raises(ValueError, match=r"batches the model was not trained on: \['b2'\]"):
        model.predict(elsewhere)
    with pytest.raises(ValueError, match=r"batches the model was not trained on: \['b2'\]"):
        ac.models.SCRCL.load(tmp_path / "model", adata=elsewhere)
    # the uncentred input cannot be centred within batches
    with pytest.raises(ValueError, match="input_features='log' does not"):
        ac.tl.scrcl(two_batches, 3, batch_key="batch", input_features="log", copy=True, **options)


@pytest.mark.parametrize("case", BAD_BATCH_KEYS)
def test_bad_batch_key_raises_clearly_and_changes_nothing(counts, case):
    check_bad_batch_key_refused(ac.tl.scrcl, counts, case, SCRCL_FAST)


@pytest.fixture(scope="module")
def pooled_slices() -> ad.AnnData:
    """Two simulated slices on the same grid: their spots share coordinates."""
    return ad.concat(
        [ac.datasets.simulate_tissue(20, 20, 3, n_genes=120, random_state=seed) for seed in (0, 1)],
        label="slice",
        keys=["s0", "s1"],
        index_unique="-",
    )


POOLED_OPTIONS = SCRCL_FAST | {"n_top_genes": None, "spatial_key": "spatial", "smooth_labels": 6, "copy": True}


def test_pooled_slices_with_batch_key_are_joined_within_each_slice(pooled_slices):
    mixed = ac.tl.scrcl(pooled_slices, 3, **POOLED_OPTIONS)
    assert _cross_batch_share(mixed.obsp["scrcl_connectivities"], pooled_slices.obs["slice"]) > 0.3
    apart = ac.tl.scrcl(pooled_slices, 3, batch_key="slice", **POOLED_OPTIONS)
    assert _cross_batch_share(apart.obsp["scrcl_connectivities"], pooled_slices.obs["slice"]) == 0
    assert apart.uns["scrcl"]["params"]["batch_key"] == "slice"


def test_library_key_joins_spots_within_slices_and_leaves_expression_uncentred(pooled_slices):
    options = POOLED_OPTIONS | {"mnn_neighbors": 0}  # no links across slices (see the next test)
    apart, model = ac.tl.scrcl(pooled_slices, 3, library_key="slice", return_model=True, **options)
    graph = apart.obsp["scrcl_connectivities"]
    assert _cross_batch_share(graph, pooled_slices.obs["slice"]) == 0
    assert graph.nnz > 6 * pooled_slices.n_obs  # each spot keeps its spatial neighbours within its slice
    assert apart.uns["scrcl"]["params"]["library_key"] == "slice"
    assert model.module.n_batch == 0  # no centring within slices
    # the same graph as one built slice by slice
    for name in ("s0", "s1"):
        members = (pooled_slices.obs["slice"] == name).to_numpy()
        alone = ac.tl.scrcl(pooled_slices[members].copy(), 3, **POOLED_OPTIONS)
        assert (graph[members][:, members] != alone.obsp["scrcl_connectivities"]).nnz == 0
    # smooth_labels votes within slices too
    slices = pooled_slices.obs["slice"].to_numpy()
    voted = spatial_majority_vote(model.predict(), pooled_slices.obsm["spatial"], n_neighbors=6, groups=slices)
    np.testing.assert_array_equal(apart.obs["scrcl"].to_numpy(), voted.astype(str))
    # new spots are joined within their own slices
    new_spots = pooled_slices[::2].copy()
    new_graph = model.cell_graph(new_spots)
    assert _cross_batch_share(new_graph, new_spots.obs["slice"]) == 0


def _halves(n_rows: int, n_cols: int, n_layers: int, n_genes: int) -> ad.AnnData:
    """One simulated tissue cut in two slices, the right half upside down on the left one's coordinates."""
    tissue = ac.datasets.simulate_tissue(n_rows, n_cols, n_layers, n_genes=n_genes, random_state=0)
    x, y = tissue.obsm["spatial"].T
    right = x >= n_cols // 2
    halves = [tissue[~right].copy(), tissue[right].copy()]
    halves[1].obsm["spatial"] = np.column_stack([x[right] - n_cols // 2, y.max() - y[right]])
    return ad.concat(halves, label="slice", keys=["left", "right"], index_unique="-")


def test_library_key_links_slices_by_mutual_nearest_neighbours():
    halves = _halves(30, 30, 3, 120)
    options = POOLED_OPTIONS | {"library_key": "slice", "smooth_labels": 0, "random_state": 0}
    linked, model = ac.tl.scrcl(halves, 3, return_model=True, **options)
    assert model.mnn_neighbors == 5
    slices = model.slice_codes(halves)
    graph = linked.obsp["scrcl_connectivities"]
    rows, columns = graph.nonzero()
    across = sp.csr_matrix(
        graph.multiply(sp.csr_matrix((slices[rows] != slices[columns], (rows, columns)), graph.shape))
    )
    across.eliminate_zeros()
    expected = mutual_neighbors(model._components(halves), slices, n_neighbors=5)
    assert expected.nnz > 0
    assert (across != expected).nnz == 0  # the links across slices are the mutual nearest neighbours
    unlinked = ac.tl.scrcl(halves, 3, **(options | {"mnn_neighbors": 0}))
    assert (graph - across != unlinked.obsp["scrcl_connectivities"]).nnz == 0  # within slices, as before
    # without links the two slices can drift apart in the embedding, the clusters following them (here,
    # with this seed; 3 seeds of the full-size case: benchmarks/results/pooled_slices.md)
    scores = {
        name: {
            against: ac.metrics.evaluate(halves.obs[against], result.obs["scrcl"])["ARI"]
            for against in ("slice", "layer")
        }
        for name, result in {"linked": linked, "unlinked": unlinked}.items()
    }
    assert scores["linked"]["layer"] > 0.8 and scores["linked"]["slice"] < 0.05
    assert scores["unlinked"]["slice"] > 0.2 and scores["unlinked"]["layer"] < scores["linked"]["layer"] - 0.2
    with pytest.raises(ValueError, match="mnn_neighbors=-1 must be 0"):
        ac.tl.scrcl(halves, 3, **(options | {"mnn_neighbors": -1}))


@pytest.mark.parametrize(
    ("edit", "options", "error", "message"),
    [
        (None, {"spatial_key": None, "smooth_labels": 0}, ValueError, "library_key .* needs spot coordinates"),
        (lambda a: a.obs.pop("slice"), {}, KeyError, "'slice' not found in adata.obs"),
        (lambda a: a.obs.__setitem__("slice", [None] + ["a"] * (a.n_obs - 1)), {}, ValueError, "no slice for 1"),
    ],
    ids=["no coordinates", "missing column", "missing value"],
)
def test_bad_library_key_raises_clearly_and_changes_nothing(pooled_slices, edit, options, error, message):
    adata = pooled_slices.copy()
    if edit is not None:
        edit(adata)
    before = snapshot(adata)
    with pytest.raises(error, match=message):
        ac.tl.scrcl(adata, 3, library_key="slice", **(POOLED_OPTIONS | {"copy": False} | options))
    assert_unchanged(adata, before)
