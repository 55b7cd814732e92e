"""Deterministic mode: PyTorch's deterministic kernels for one call, then the user's setting back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """Run the block with :func:`torch.use_deterministic_algorithms` on (when ``enabled``).

    Lightning's ``Trainer(deterministic=True)`` switches the mode on for the whole session; this
    restores the previous setting afterwards. cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` for
    deterministic products; it is set to ``:4096:8`` when the user has not set it.
    """
    if not enabled:
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
