"""Which genes a model trains on: the user's selection (``mask_var``) or the top-ranked genes, never empty ones.

Both models call :func:`gene_mask` when they are built (the width of their input follows from it) and
:func:`choose_genes` once the counts have been scanned.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scanpy import logging as logg

from atlasclust._constants import HIGHLY_VARIABLE, HIGHLY_VARIABLE_IF_PRESENT

from ._statistics import CountStatistics, select_top_genes


def default_mask_var(var: pd.DataFrame, mask_var):
    """``mask_var`` with the tools' default resolved: the ``highly_variable`` column when present, else ``None``."""
    if mask_var is not HIGHLY_VARIABLE_IF_PRESENT:
        return mask_var
    if HIGHLY_VARIABLE in var:
        logg.info(f"    using the {int(var[HIGHLY_VARIABLE].sum())} genes of var['{HIGHLY_VARIABLE}'] (mask_var)")
        return HIGHLY_VARIABLE
    return None


def gene_mask(var: pd.DataFrame, mask_var) -> np.ndarray | None:
    """The boolean gene mask ``mask_var`` names: a column of ``var``, a boolean array over the genes, or ``None``.

    Raises a :class:`KeyError` or :class:`ValueError` saying what is wrong when it is not a usable mask.
    """
    if mask_var is None:
        return None
    if isinstance(mask_var, str):
        if mask_var not in var:
            available = ", ".join(map(repr, var.columns)) or "none"
            msg = f"mask_var={mask_var!r} is not a column of adata.var (available: {available})."
            raise KeyError(msg)
        values, name = var[mask_var], f"adata.var[{mask_var!r}]"
    else:
        values, name = mask_var, "mask_var"
    values = pd.Series(np.asarray(values)) if not isinstance(values, pd.Series) else values
    if not pd.api.types.is_bool_dtype(values) or values.isna().any():
        msg = f"{name} must be boolean (True for the genes to use), without missing values; got dtype {values.dtype}."
        raise ValueError(msg)
    mask = values.to_numpy(dtype=bool)
    if mask.shape != (len(var),):
        msg = f"{name} has {mask.size} entries; adata has {len(var)} genes."
        raise ValueError(msg)
    if not mask.any():
        msg = f"{name} selects no genes."
        raise ValueError(msg)
    return mask


def check_n_top_genes(n_top_genes: int | None) -> None:
    """Raise a :class:`ValueError` unless ``n_top_genes`` is ``None`` or a positive number."""
    if n_top_genes is not None and n_top_genes < 1:
        msg = f"n_top_genes={n_top_genes} must be at least 1; pass n_top_genes=None to use all genes."
        raise ValueError(msg)


def planned_gene_count(n_vars: int, mask: np.ndarray | None, n_top_genes: int | None) -> int:
    """How many genes a model will read, before the counts are scanned (empty genes may lower it then)."""
    if mask is not None:
        return int(mask.sum())
    return n_vars if n_top_genes is None else min(n_top_genes, n_vars)


def choose_genes(
    statistics: CountStatistics, mask: np.ndarray | None, n_top_genes: int | None, *, flavor: str = "seurat"
) -> np.ndarray:
    """Indices (sorted) of the genes a model trains on.

    The genes of ``mask`` when given (all of them, as :func:`scanpy.pp.pca` uses all genes of its
    ``mask_var``), else the ``n_top_genes`` genes ranked first by ``flavor`` (see
    :func:`select_top_genes`; all genes when there are fewer or it is ``None``). Genes with no
    counts in any cell carry nothing and are left out, with an info message.
    """
    detected = statistics.n_cells_per_gene > 0
    selected = np.ones_like(detected) if mask is None else mask
    candidates = selected & detected
    n_empty = int(np.sum(selected & ~detected))
    if n_empty:
        logg.info(f"    leaving out {n_empty} genes with no counts in any cell")
    if not candidates.any():
        msg = "The selected genes (mask_var) have no counts in any cell: select genes that are detected."
        raise ValueError(msg)
    n_candidates = int(candidates.sum())
    if mask is not None or n_top_genes is None or n_top_genes >= n_candidates:
        if mask is None and n_top_genes is not None and n_top_genes > n_candidates:
            logg.info(f"    using all {n_candidates} genes with counts (fewer than n_top_genes={n_top_genes})")
        return np.flatnonzero(candidates)
    return select_top_genes(statistics, n_top_genes, flavor=flavor)


def with_chosen_genes(init_params: dict, gene_index: np.ndarray, n_vars: int) -> dict:
    """A model's ``init_params_`` naming the genes it chose (as ``mask_var``), so that :meth:`load` rebuilds its width.

    Used when genes without counts made the input narrower than the parameters alone say.
    """
    mask = np.zeros(n_vars, dtype=bool)
    mask[gene_index] = True
    non_kwargs = init_params["non_kwargs"] | {"mask_var": mask, "n_top_genes": None}
    return init_params | {"non_kwargs": non_kwargs}
