"""Property-based tests: random AnnData in, either a result or a documented exception out, input unchanged.

200 examples per property in CI; ``HYPOTHESIS_PROFILE=thorough`` runs 1000.
"""

import hashlib
import os
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import assert_unchanged, snapshot
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import atlasclust as ac
from atlasclust.cli import main

# the generated data have duplicate cell names on purpose; anndata says so each time one is built
pytestmark = pytest.mark.filterwarnings("ignore:Observation names are not unique:UserWarning")

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("thorough", parent=settings.get_profile("ci"), max_examples=1000)
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=20)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: What a ``tl`` call may raise on bad input (the messages are checked in the bad-input tests).
DOCUMENTED = (ValueError, KeyError, FloatingPointError)

CORRUPTIONS = [
    "none",
    "none",
    "none",
    "nan",
    "inf",
    "negative",
    "non-integer",
    "empty cell",
    "empty gene",
    "constant gene",
]

TINY = {
    "bgformer": {"n_latent": 8, "n_anchors": 4, "n_heads": 2, "max_epochs": 2, "batch_size": 16},
    "scrcl": {"n_hidden": 16, "max_epochs": 2, "n_neighbors": 3},
}


@st.composite
def count_data(draw):
    """(AnnData, layer argument, n_clusters, n_top_genes) with random shape, format, dtype and defects."""
    n_cells, n_genes = draw(st.integers(1, 40)), draw(st.integers(1, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    groups = rng.integers(2, size=n_cells)
    means = rng.gamma(1.0, 2.0, size=(2, n_genes))
    x = rng.poisson(means[groups]).astype(np.float64)
    x[:, rng.integers(n_genes)] += 1  # mostly no empty cells, so that valid inputs occur
    corruption = draw(st.sampled_from(CORRUPTIONS))
    i, j = rng.integers(n_cells), rng.integers(n_genes)
    if corruption == "nan":
        x[i, j] = np.nan
    elif corruption == "inf":
        x[i, j] = np.inf
    elif corruption == "negative":
        x[i, j] = -1
    elif corruption == "non-integer":
        x[i, j] += 0.5
    elif corruption == "empty cell":
        x[i] = 0
    elif corruption == "empty gene":
        x[:, j] = 0
    elif corruption == "constant gene":
        x[:, j] = 3
    integral = corruption not in ("nan", "inf", "non-integer")
    dtypes = [np.float16, np.float32, np.float64] + ([np.int32, np.int64] if integral else [])
    dtypes += [np.uint16] if integral and corruption != "negative" else []
    x = x.astype(draw(st.sampled_from(dtypes)))
    # scipy.sparse holds no float16: sparse containers get float32 then
    sparse_x = x.astype(np.float32) if x.dtype == np.float16 else x
    containers = {
        "dense": lambda: x,
        "csr": lambda: sp.csr_matrix(sparse_x),
        "csc": lambda: sp.csc_matrix(sparse_x),
        "csr_array": lambda: sp.csr_array(sparse_x),
        "csc_array": lambda: sp.csc_array(sparse_x),
    }
    matrix = containers[draw(st.sampled_from(list(containers)))]()
    obs = pd.DataFrame({"group": pd.Categorical(groups.astype(str))}, index=[f"c{k}" for k in range(n_cells)])
    if draw(st.booleans()) and n_cells > 1:
        obs.index = ["same"] * n_cells  # duplicate names
    adata = ad.AnnData(
        X=None if draw(st.booleans()) else np.zeros_like(x),
        obs=obs,
        var=pd.DataFrame(index=[f"g{k}" for k in range(n_genes)]),
    )
    layer = draw(st.sampled_from(["counts", "counts", "wrong"]))
    adata.layers["counts"] = matrix
    n_clusters = draw(st.one_of(st.none(), st.integers(0, n_cells + 2)))
    n_top_genes = draw(st.one_of(st.none(), st.integers(1, n_genes + 2)))
    return adata, layer, n_clusters, n_top_genes


def _dense(matrix) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


def _check_result(adata: ad.AnnData, method: str) -> None:
    labels = adata.obs[method]
    assert isinstance(labels.dtype, pd.CategoricalDtype)
    assert np.isfinite(adata.obsm[f"X_{method}"]).all()
    assert adata.obsm[f"X_{method}"].shape[0] == adata.n_obs


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
@given(data=count_data())
def test_tl_works_or_raises_documented_error_and_never_changes_input(method, data):
    adata, layer, n_clusters, n_top_genes = data
    before = snapshot(adata)
    counts_before = adata.layers["counts"].copy()
    run = getattr(ac.tl, method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = run(
                adata,
                n_clusters,
                layer=layer,
                n_top_genes=n_top_genes,
                copy=True,
                enable_progress_bar=False,
                **TINY[method],
            )
        except DOCUMENTED as error:
            assert str(error), "an error without a message"
            result = None
    assert_unchanged(adata, before)
    np.testing.assert_array_equal(_dense(adata.layers["counts"]), _dense(counts_before))  # NaN equals NaN here
    assert type(adata.layers["counts"]) is type(counts_before)
    if result is not None:
        event("trained")
        _check_result(result, method)


@pytest.mark.parametrize("command", ["bgformer", "scrcl"])
@given(data=count_data(), backed=st.booleans(), garbage=st.booleans())
def test_cli_works_or_fails_cleanly_and_never_touches_its_input(tmp_path_factory, command, data, backed, garbage):
    adata, layer, n_clusters, _ = data
    folder = tmp_path_factory.mktemp("cli")
    source, out = folder / "in.h5ad", folder / "out.h5ad"
    if garbage:
        source.write_bytes(os.urandom(64))
    else:
        adata.write_h5ad(source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    arguments = [command, str(source), "-o", str(out), "--layer", layer, "--max-epochs", "2", "--quiet"]
    arguments += [] if n_clusters is None else ["--n-clusters", str(n_clusters)]
    arguments += ["--backed"] if backed else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main(arguments)
        # the command must succeed exactly when the tool succeeds on the same data in memory: an internal
        # error (one the tool does not document) reported as a clean exit 1 would hide a bug
        tool_succeeds = None if garbage else _tool_succeeds(command, source, layer, n_clusters)
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest
    files = sorted(p.name for p in folder.iterdir())
    if status == 0:
        event("command wrote a result")
        assert files == ["in.h5ad", "out.h5ad"]
        _check_result(ad.read_h5ad(out), command)
    else:
        assert status == 1 and files == ["in.h5ad"]
    if tool_succeeds is not None:
        assert (status == 0) == tool_succeeds


def _tool_succeeds(command: str, source, layer: str, n_clusters: int | None) -> bool:
    adata = ad.read_h5ad(source)
    try:
        getattr(ac.tl, command)(
            adata, n_clusters, layer=layer, n_top_genes=min(2000, adata.n_vars), max_epochs=2, enable_progress_bar=False
        )
    except DOCUMENTED:
        return False
    return True
