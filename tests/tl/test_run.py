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


class FakeModel:
    """A model that 'trains' instantly: what run_tool does around it is under test."""

    method_name = "Fake"
    calls: list = []

    @classmethod
    def setup_anndata(cls, adata, layer=None, batch_key=None):
        cls.calls.append(("setup", adata.n_obs, layer, batch_key, list(adata.obs.columns)))

    def __init__(self, adata, n_clusters=None, *, mask_var=None, width=1, registry=None):
        self.calls.append(("init", n_clusters, mask_var is None, width))

    def train(self, max_epochs=None, *, batch_size=128, weight_decay=0.0, random_state=0, checkpoint_dir=None):
        self.calls.append(("train", max_epochs, batch_size, weight_decay))
        self.history_ = pd.DataFrame({"train_loss": [1.0, 0.5]})
        self.batch_size_ = batch_size
        self.selected_genes_ = np.array(["g0"])


def _fake_tool(calls: list, *, fail_in_collect: bool = False) -> Tool:
    FakeModel.calls = calls

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

    return Tool("tl.fake", FakeModel, collect, {"batch_key": "obs"})


def test_the_flow_checks_first_writes_after_and_returns_as_scanpy_does(counts):
    calls = []
    arguments = ARGUMENTS | {"n_clusters": 3, "max_epochs": 5}
    result = run_tool(_fake_tool(calls), counts, arguments, {"width": 4, "weight_decay": 0.1}, first_batch_size=64)
    assert result is None  # written in place
    # each step takes, by name, the arguments it declares; the rest of kwargs go to train
    assert calls == [
        ("setup", 600, None, None, ["_indices"]),
        ("init", 3, True, 4),
        ("train", 5, 64, 0.1),
        ("collect",),
    ]
    assert list(counts.obs["fake"].cat.categories) == ["0", "1", "2"]
    params = counts.uns["fake"]["params"]
    assert params["extra"] == 1 and params["n_clusters_found"] == 3 and params["width"] == 4
    assert "fake_graph" in counts.obsp and list(counts.uns["fake"]["genes"]) == ["g0"]
    copied = run_tool(_fake_tool([]), counts, ARGUMENTS | {"copy": True, "key_added": "other"}, {}, first_batch_size=8)
    assert "other" in copied.obs and "other" not in counts.obs


def test_the_view_keeps_what_the_tool_names_and_a_missing_layer_fails_before_training(counts):
    counts.obs["donor"] = np.where(np.arange(counts.n_obs) % 2, "a", "b")
    calls = []
    run_tool(_fake_tool(calls), counts, ARGUMENTS | {"batch_key": "donor"}, {}, first_batch_size=64)
    assert calls[0] == ("setup", counts.n_obs, None, "donor", ["_indices", "donor"])
    calls.clear()
    with pytest.raises(KeyError, match="missing"):
        run_tool(_fake_tool(calls), counts, ARGUMENTS | {"layer": "missing"}, {}, first_batch_size=64)
    assert calls == []


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
