"""Quiet construction of the sparse CSR batches that scvi-tools' data loader builds from sparse counts."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def sparse_batches() -> Iterator[None]:
    """Within this block, torch builds sparse CSR batches without its two warnings.

    The first sparse CSR tensor of a process makes torch warn that CSR support is in beta and
    that invariant checks are implicitly off ("Memory errors (e.g. SEGFAULT) will occur ...").
    scvi-tools builds such tensors from valid scipy CSR rows, which we densify at once, so both
    warnings only alarm a notebook's reader. The checks are switched off explicitly (their default),
    and the beta notice is ignored; both are restored on leaving the block.
    """
    with warnings.catch_warnings(), torch.sparse.check_sparse_tensor_invariants(enable=False):
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        yield
