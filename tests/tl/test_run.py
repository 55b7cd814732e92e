from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import assert_unchanged, snapshot

from atlasclust.tl._run import Collected, Tool, run_tool

ARGUMENTS = {
    "layer": None,
    "batch_key": None,
    "mask_var": None,
    "random_state": 0,
    "checkpoint_dir": None,
    "deterministic": False,
    "auto_batch_size": False,
    "key_added": "fake",
    "copy": False,
    "return_model": False,
}


def _fake_tool(calls: list, *, fail_in_collect: bool = False) -> Tool:
    """A method that 'trains' instantly: what run_tool does around it is under test."""

    def fit(genes, batch_size, folder, model_options, train_options):
        calls.append(("fit", batch_size, model_options, train_options))
        history = pd.DataFrame({"train_loss": [1.0, 0.5]})
        return SimpleNamespace(history_=history, batch_size_=batch_size, selected_genes_=np.array(["g0"]))

    def collect(model):
        calls.append(("collect",))
        if fail_in_collect:
            raise RuntimeError("collect failed")
        n = 600
        return Collected(
            embedding=np.zeros((n, 2)),
            codes=np.arange(n) % 3,
            params={"extra": 1},
            obsp={"fake_graph": sp.eye(n, format="csr")},
        )

    return Tool("tl.fake", "Fake", {"width"}, {"width", "weight_decay"}, fit, collect)


def test_the_flow_checks_first_writes_after_and_returns_as_scanpy_does(counts):
    calls = []
    result = run_tool(_fake_tool(calls), counts, ARGUMENTS, {"width": 4, "weight_decay": 0.1}, first_batch_size=64)
    assert result is None  # written in place
    assert calls == [("fit", 64, {"width": 4}, {"weight_decay": 0.1}), ("collect",)]
    assert list(counts.obs["fake"].cat.categories) == ["0", "1", "2"]
    params = counts.uns["fake"]["params"]
    assert params["extra"] == 1 and params["n_clusters_found"] == 3 and params["width"] == 4
    assert "fake_graph" in counts.obsp and list(counts.uns["fake"]["genes"]) == ["g0"]
    copied = run_tool(_fake_tool([]), counts, ARGUMENTS | {"copy": True, "key_added": "other"}, {}, first_batch_size=8)
    assert "other" in copied.obs and "other" not in counts.obs


def test_an_unknown_keyword_fails_before_any_training(counts):
    calls = []
    with pytest.raises(TypeError, match="did you mean 'width'"):
        run_tool(_fake_tool(calls), counts, ARGUMENTS, {"widht": 4}, first_batch_size=64)
    assert calls == []


def test_nothing_is_written_when_a_step_fails(counts):
    before = snapshot(counts)
    with pytest.raises(RuntimeError, match="collect failed"):
        run_tool(_fake_tool([], fail_in_collect=True), counts, ARGUMENTS, {}, first_batch_size=64)
    assert_unchanged(counts, before)
    with pytest.raises(KeyError, match="is not a column of adata.var"):
        run_tool(_fake_tool([]), counts, ARGUMENTS | {"mask_var": "hvg"}, {}, first_batch_size=64)
    assert_unchanged(counts, before)


def test_copy_of_a_backed_file_is_refused_before_anything(counts, tmp_path):
    import anndata as ad

    counts.write_h5ad(tmp_path / "c.h5ad")
    backed = ad.read_h5ad(tmp_path / "c.h5ad", backed="r")
    calls = []
    with pytest.raises(ValueError, match="copy=True needs an in-memory AnnData"):
        run_tool(_fake_tool(calls), backed, ARGUMENTS | {"copy": True}, {}, first_batch_size=64)
    assert calls == []
