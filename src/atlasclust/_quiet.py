"""Warnings from the libraries under a fit that only alarm a notebook's reader."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_fit() -> Iterator[None]:
    """Within this block, Lightning's fits run without torch's ``LeafSpec`` deprecation notice.

    Lightning 2.6 flattens each step's outputs with ``torch.utils._pytree.LeafSpec``, which torch
    2.10 and later deprecate with a ``FutureWarning`` that a notebook shows at every fit, and
    BGFormer fits twice. It concerns Lightning's code, not the user's; only that message is ignored,
    and the filters are restored on leaving the block.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
        )
        yield
