"""Helpers shared by the tests (importable as ``helpers``; conftest holds the fixtures)."""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from lightning.pytorch.callbacks import Callback

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: A small, fast model for tests: the behaviour under test does not depend on size.
FAST = {
    "n_top_genes": 150,
    "n_latent": 32,
    "n_anchors": 16,
    "n_heads": 4,
    "max_epochs": 6,
    "batch_size": 128,
    "enable_progress_bar": False,
}
#: A small scRCL for tests, likewise.
SCRCL_FAST = {"n_top_genes": 150, "n_hidden": 64, "max_epochs": 20, "enable_progress_bar": False}
#: FAST split by where each option goes: BGFormer's constructor and its ``train``.
FAST_MODEL = {k: FAST[k] for k in ("n_top_genes", "n_latent", "n_anchors", "n_heads")}
FAST_TRAIN = {k: FAST[k] for k in ("max_epochs", "batch_size", "enable_progress_bar")}
#: Training of the small scRCL model (:func:`small_scrcl`).
SCRCL_TRAIN = {"max_epochs": 20, "enable_progress_bar": False}


#: Bad ``batch_key="donor"`` columns every ``tl`` function must refuse: case: (edit of the AnnData, error, message)
BAD_BATCH_KEYS = {
    "missing column": (lambda adata: None, KeyError, "'donor' not found in adata.obs"),
    "missing value": (
        lambda adata: adata.obs.__setitem__("donor", [None] + ["a"] * (adata.n_obs - 1)),
        ValueError,
        "no batch for 1",
    ),
}


#: Bad inputs every ``tl`` function must refuse on the ``counts`` fixture (600 cells, 200 genes).
BAD_INPUTS = {  # case: (edit of the dense counts, arguments, error, message)
    "non-integer": (lambda x: x.__setitem__((0, 0), 0.5), {}, ValueError, "non-integer.*layer="),
    "negative": (lambda x: x.__setitem__((0, 0), -1.0), {}, ValueError, "negative.*layer="),
    "nan": (lambda x: x.__setitem__((0, 0), np.nan), {}, ValueError, "NaN"),
    "inf": (lambda x: x.__setitem__((0, 0), np.inf), {}, ValueError, "infinite"),
    "empty cell": (lambda x: x.__setitem__((4, slice(None)), 0), {}, ValueError, "filter_cells"),
    "one cluster": (None, {"n_clusters": 1}, ValueError, "at least 2"),
    "too many clusters": (None, {"n_clusters": 601}, ValueError, "larger than the number of cells"),
    "no genes": (None, {"n_top_genes": 0}, ValueError, "n_top_genes=0 must be at least 1"),
    "unknown gene column": (None, {"mask_var": "hvg"}, KeyError, "mask_var='hvg' is not a column of adata.var"),
    "mask not boolean": (None, {"mask_var": np.ones(200)}, ValueError, "mask_var must be boolean"),
    "mask too short": (None, {"mask_var": np.ones(150, dtype=bool)}, ValueError, "150 entries; adata has 200"),
    "mask selects nothing": (None, {"mask_var": np.zeros(200, dtype=bool)}, ValueError, "selects no genes"),
    "missing layer": (None, {"layer": "counts"}, KeyError, "Layer 'counts' not found"),
}


def snapshot(adata: ad.AnnData) -> dict:
    """Everything a failed call must leave as it was."""
    x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.array(adata.X)
    return {
        "X": x,
        "obs": adata.obs.copy(),
        "var": adata.var.copy(),
        "obsm": set(adata.obsm),
        "uns": set(adata.uns),
        "layers": set(adata.layers),
        "obsp": set(adata.obsp),
    }


def assert_unchanged(adata: ad.AnnData, before: dict) -> None:
    after = snapshot(adata)
    np.testing.assert_array_equal(after["X"], before["X"])
    assert after["obs"].equals(before["obs"])
    assert after["var"].equals(before["var"])
    for key in ("obsm", "uns", "layers", "obsp"):
        assert after[key] == before[key], key


def shared_dataset(name: str) -> ad.AnnData:
    path = SHARED_DATA / f"{name}.h5ad"
    if not path.exists():
        pytest.fail(f"{path} is missing: the shared datasets must sit in ../shared/data beside the repository")
    return ad.read_h5ad(path)


class Crash(Callback):
    """Raise after ``after`` training steps, counted across the fits of one call."""

    def __init__(self, after: int):
        self.after, self.steps = after, 0

    def on_train_batch_end(self, *args) -> None:
        self.steps += 1
        if self.steps == self.after:
            raise RuntimeError("simulated crash")


def assert_same_result(result: ad.AnnData, expected: ad.AnnData, key: str) -> None:
    """Bitwise the same embedding, labels and training history."""
    np.testing.assert_array_equal(result.obsm[f"X_{key}"], expected.obsm[f"X_{key}"])
    assert result.obs[key].equals(expected.obs[key])
    pd.testing.assert_frame_equal(result.uns[key]["history"], expected.uns[key]["history"])


def check_batch_key_recovers_types(tool, two_batches: ad.AnnData, key: str, options: dict) -> tuple:
    """Run ``tool`` on the ``two_batches`` fixture without and with ``batch_key``; both results.

    Without it the clusters follow the batches; with it they follow the cell types, the input is
    left untouched and ``params`` records the key.
    """
    from atlasclust.metrics import evaluate

    truth, batches = two_batches.obs["cell_type"], two_batches.obs["batch"]
    plain = tool(two_batches, 3, copy=True, **options)
    assert evaluate(batches, plain.obs[key])["ARI"] > 0.5
    assert evaluate(truth, plain.obs[key])["ARI"] < 0.5
    before = snapshot(two_batches)
    result = tool(two_batches, 3, batch_key="batch", copy=True, **options)
    assert_unchanged(two_batches, before)
    assert evaluate(truth, result.obs[key])["ARI"] >= 0.9
    assert abs(evaluate(batches, result.obs[key])["ARI"]) < 0.1
    assert result.uns[key]["params"]["batch_key"] == "batch"
    return plain, result


def check_bad_batch_key_refused(tool, counts: ad.AnnData, case: str, options: dict) -> None:
    """``tool`` refuses the ``BAD_BATCH_KEYS[case]`` column with its message and leaves ``counts`` as it was."""
    edit, error, message = BAD_BATCH_KEYS[case]
    edit(counts)
    before = snapshot(counts)
    with pytest.raises(error, match=message):
        tool(counts, 4, batch_key="donor", **options)
    assert_unchanged(counts, before)


def small_scrcl(adata: ad.AnnData, **options):
    """A small scRCL model with 4 clusters on a training view of ``adata`` (seeded, not trained)."""
    import scvi

    from atlasclust.data import training_view
    from atlasclust.models import SCRCL

    scvi.settings.seed = 0
    view = training_view(adata)
    SCRCL.setup_anndata(view)
    return SCRCL(view, 4, **({"n_top_genes": 150, "n_hidden": 64} | options))
