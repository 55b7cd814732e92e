import numpy as np
import pandas as pd

from atlasclust.tl._results import cluster_categorical, package_versions, storable, write_clustering


def test_labels_are_categorical_in_natural_order_with_only_the_clusters_present():
    labels = cluster_categorical(np.array([10, 2, 2, 0]))
    assert list(labels.categories) == ["0", "2", "10"]
    assert list(labels) == ["10", "2", "2", "0"]


def test_params_become_what_h5ad_can_write():
    stored = storable({"a": np.float32(0.5), "b": None, "c": (1, 2), "d": {"e": np.int64(3)}, "f": object})
    assert stored["a"] == 0.5 and isinstance(stored["a"], float)
    assert stored["b"] is None and stored["c"] == [1, 2] and stored["d"] == {"e": 3}
    assert stored["f"] == repr(object)
    assert set(package_versions()) >= {"atlasclust", "torch", "scanpy"}


def test_writing_replaces_what_an_earlier_run_derived_under_the_key(counts):
    counts.obsm["X_run_umap"] = np.zeros((counts.n_obs, 2))  # pl.embedding's UMAP of an earlier run
    counts.obsm["run_attention"] = np.zeros((counts.n_obs, 2))
    labels = pd.Categorical(np.zeros(counts.n_obs, dtype=int).astype(str))
    written = write_clustering(
        counts, "run", embedding=np.ones((counts.n_obs, 3)), labels=labels, obsm_extra={"run_attention": None}, uns={}
    )
    assert "X_run_umap" not in counts.obsm and "run_attention" not in counts.obsm
    assert counts.obsm["X_run"].dtype == np.float32 and counts.obs["run"].dtype == "category"
    assert written == ["obsm['X_run']", "obs['run']", "uns['run']"]
