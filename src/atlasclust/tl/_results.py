"""Write a clustering result into an AnnData in one step, after everything succeeded."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import anndata as ad
import numpy as np
import pandas as pd

from atlasclust._keys import derived_keys


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a result, for ``uns[key]["params"]``."""
    found = {}
    for name in ("atlasclust", "scvi-tools", "torch", "scanpy", "anndata", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "unknown"
    return found


def cluster_categorical(codes: np.ndarray) -> pd.Categorical:
    """Categorical labels ``'0', '1', …`` in natural order, only the clusters that occur."""
    present = np.unique(codes)
    return pd.Categorical(codes.astype(str), categories=present.astype(str))


def write_clustering(
    adata: ad.AnnData,
    key_added: str,
    *,
    embedding: np.ndarray,
    labels: pd.Categorical,
    obs_extra: dict[str, np.ndarray] | None = None,
    obsm_extra: dict[str, np.ndarray | None] | None = None,
    uns: dict,
) -> list[str]:
    """Write embedding, labels, extra obs columns and ``uns`` under ``key_added``.

    What the ``pl`` helpers derived from an earlier run under the same key (see
    :func:`derived_keys`) describes that run's embedding and labels, so it is removed. An
    ``obsm_extra`` entry of ``None`` means this run has none: an earlier run's is removed too.

    Returns
    -------
    The keys written, for the log line.
    """
    for slot, names in derived_keys(key_added).items():
        mapping = getattr(adata, slot)
        for name in names:
            mapping.pop(name, None)
    adata.obsm[f"X_{key_added}"] = np.asarray(embedding, dtype=np.float32)
    adata.obs[key_added] = labels
    written = [f"obsm['X_{key_added}']", f"obs[{key_added!r}]"]
    for column, values in (obs_extra or {}).items():
        adata.obs[column] = values
        written.append(f"obs[{column!r}]")
    for name, values in (obsm_extra or {}).items():
        if values is None:
            adata.obsm.pop(name, None)
            continue
        adata.obsm[name] = values
        written.append(f"obsm[{name!r}]")
    adata.uns[key_added] = uns
    written.append(f"uns[{key_added!r}]")
    return written


def storable(params: dict) -> dict:
    """``params`` with values h5ad can write (``None`` kept, others as plain types or strings)."""
    stored = {}
    for name, value in params.items():
        if isinstance(value, np.generic):  # numpy scalars (a sweep over np.arange) as Python numbers
            value = value.item()
        if value is None or isinstance(value, bool | int | float | str):
            stored[name] = value
        elif isinstance(value, dict):
            stored[name] = storable(value)
        elif isinstance(value, list | tuple) and all(isinstance(v, int | float | str) for v in value):
            stored[name] = list(value)
        else:
            stored[name] = repr(value)
    return stored
