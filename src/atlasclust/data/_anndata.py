"""Read counts from a user's AnnData without touching it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scvi import REGISTRY_KEYS

from ._statistics import NotCountsError

#: obs column of the training view holding each cell's row number (scvi-tools' ``INDICES_KEY``).
INDICES_COLUMN = "_indices"


def describe_source(layer: str | None) -> str:
    """How the user refers to the counts, for messages."""
    return "adata.X" if layer is None else f"adata.layers[{layer!r}]"


@contextmanager
def raw_counts_hint(adata: ad.AnnData) -> Iterator[None]:
    """Within this block, a :class:`NotCountsError` also points to ``adata.raw`` when it is set.

    Older scanpy pipelines kept the counts in ``adata.raw`` rather than in a layer (others keep the
    log expression there, hence the "if").
    """
    try:
        yield
    except NotCountsError as error:
        if adata.raw is None:
            raise
        msg = (
            f"{error} adata.raw is set: if it holds the raw counts, copy them into a layer and pass it: "
            "`adata.layers['counts'] = adata.raw[:, adata.var_names].X`, then `layer='counts'`."
        )
        raise NotCountsError(msg) from None


def counts_matrix(adata: ad.AnnData, layer: str | None):
    """The counts matrix (``X`` or a layer), in memory or backed; never copied.

    Raises :class:`KeyError` when the layer is missing and :class:`ValueError` when ``X`` is empty.
    """
    if layer is None:
        if adata.X is None:
            msg = "adata.X is empty. Pass the layer that holds raw counts, e.g. `layer='counts'`."
            raise ValueError(msg)
        return adata.X
    if layer not in adata.layers:
        available = ", ".join(map(repr, adata.layers.keys())) or "none"
        msg = f"Layer {layer!r} not found in adata.layers (available: {available})."
        raise KeyError(msg)
    return adata.layers[layer]


class RowOrderedDataset(h5py.Dataset):
    """A dense matrix in a backed file that reads any list of rows, in the order asked.

    h5py reads a list of rows only in increasing order and without repeats. scvi-tools sorts the
    rows of a batch only when the AnnData itself is backed, which a training view of a backed file
    is not; this reads the sorted distinct rows and returns them in the order asked.
    """

    def __getitem__(self, args):
        if isinstance(args, list | np.ndarray) and np.ndim(args) == 1 and np.asarray(args).dtype.kind in "iu":
            distinct, order = np.unique(np.asarray(args), return_inverse=True)
            return super().__getitem__(distinct)[order]
        return super().__getitem__(args)


def as_sparse_matrix(matrix):
    """``matrix``, with a scipy sparse *array* (``csr_array``, ...) as the equivalent sparse matrix.

    scvi-tools' data loaders read scipy sparse matrices only. The matrix shares the array's data, so
    nothing is copied; anything else is returned as it is.
    """
    if sp.issparse(matrix) and not isinstance(matrix, sp.spmatrix):
        return {"csr": sp.csr_matrix, "csc": sp.csc_matrix}.get(matrix.format, sp.csr_matrix)(matrix)
    return matrix


def training_view(
    adata: ad.AnnData,
    layer: str | None = None,
    *,
    obs_keys: tuple[str | None, ...] = (),
    obsm_keys: tuple[str | None, ...] = (),
    obsp_keys: tuple[str | None, ...] = (),
) -> ad.AnnData:
    """A light AnnData sharing the counts of ``adata``, for scvi-tools to register.

    scvi-tools writes registration keys into the AnnData it is given; registering this view instead
    keeps the user's object exactly as it was. The counts are shared, not copied (for a backed
    file, the view reads from the same file). The view has the counts where the user has them
    (``X`` or ``layers[layer]``; a scipy sparse array as the sparse matrix scvi-tools reads, dense
    counts in a backed file as a :class:`RowOrderedDataset`), and a per-cell row index so that
    batches can be put back in place.
    ``obs_keys``, ``obsm_keys`` and ``obsp_keys`` (``None`` entries are skipped) are shared too (obs
    columns copied); a missing one raises a :class:`KeyError` naming what is there.
    """
    matrix = as_sparse_matrix(counts_matrix(adata, layer))
    if isinstance(matrix, h5py.Dataset):  # dense counts in a backed file
        matrix = RowOrderedDataset(matrix.id)
    obs = pd.DataFrame({INDICES_COLUMN: np.arange(adata.n_obs)}, index=adata.obs_names.copy())
    for key in obs_keys:
        if key is not None:
            obs[key] = _entry(adata.obs, key, "obs").array.copy()  # by position, categories kept
    var = pd.DataFrame(index=adata.var_names.copy())
    obsm = {key: _entry(adata.obsm, key, "obsm") for key in obsm_keys if key is not None}
    obsp = {key: _entry(adata.obsp, key, "obsp") for key in obsp_keys if key is not None}
    if layer is None:
        return ad.AnnData(X=matrix, obs=obs, var=var, obsm=obsm, obsp=obsp)
    return ad.AnnData(obs=obs, var=var, layers={layer: matrix}, obsm=obsm, obsp=obsp)


def _entry(mapping, key: str, where: str):
    if key not in mapping:
        available = ", ".join(map(repr, mapping.keys())) or "none"
        msg = f"{key!r} not found in adata.{where} (available: {available})."
        raise KeyError(msg)
    return mapping[key]


def check_same_genes(expected: pd.Index, adata: ad.AnnData) -> None:
    """Raise a :class:`ValueError` listing the difference when ``adata`` lacks the expected genes in order."""
    found = adata.var_names
    if len(found) == len(expected) and np.array_equal(np.asarray(found), np.asarray(expected)):
        return
    missing = expected.difference(found)
    extra = found.difference(expected)
    parts = [f"the model was trained on {len(expected)} genes, adata has {len(found)}"]
    if len(missing):
        parts.append(f"missing: {list(missing[:10])}{' …' if len(missing) > 10 else ''}")
    if len(extra):
        parts.append(f"not in the model: {list(extra[:10])}{' …' if len(extra) > 10 else ''}")
    if not len(missing) and not len(extra):
        parts.append("same genes in another order: use adata[:, model_genes]")
    msg = "Genes do not match the model: " + "; ".join(parts) + "."
    raise ValueError(msg)


def check_batch_column(adata: ad.AnnData, batch_key: str, *, known: list | None = None, what: str = "batch") -> None:
    """Raise a clear error when ``obs[batch_key]`` is missing, has missing values or, given ``known``, other batches.

    ``what`` names a value of the column in the message (a batch, a slice).
    """
    column = _entry(adata.obs, batch_key, "obs")
    missing = int(column.isna().sum())
    if missing:
        msg = (
            f"adata.obs[{batch_key!r}] has no {what} for {missing} cells: fill them in (e.g. with 'unknown') "
            "or drop those cells."
        )
        raise ValueError(msg)
    if known is not None:
        unknown = sorted(map(str, set(column.unique()) - set(known)))
        if unknown:
            msg = (
                f"adata.obs[{batch_key!r}] holds batches the model was not trained on: {unknown[:10]}; "
                f"a model conditioned on batches embeds cells of its own batches ({sorted(map(str, known))[:10]})."
            )
            raise ValueError(msg)


def saved_batches(registry: dict) -> list | None:
    """The batches a model's registry holds (in code order), or ``None`` when it has none.

    ``registry`` is a trained model's ``registry_`` or one read from a saved model's folder.
    """
    field = registry["field_registries"].get(REGISTRY_KEYS.BATCH_KEY)
    return None if field is None else list(field["state_registry"]["categorical_mapping"])
