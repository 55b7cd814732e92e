"""Defaults of BGFormer's training, shared by its model modules."""

from __future__ import annotations

import math

import numpy as np

from atlasclust.data import sample_rows

#: Cells used to initialise anchors and to find cluster centres (a random subsample above it).
_MAX_INIT_CELLS = 50_000


def init_cells(n_obs: int, rng: np.random.Generator) -> np.ndarray:
    """The cells (increasing rows) the anchors and the DEC centres start from: all, or a random ``_MAX_INIT_CELLS``."""
    return sample_rows(n_obs, _MAX_INIT_CELLS, rng)


#: Optimiser steps the default training budget reaches at least (with at least 15 epochs). Counted
#: in batches of the size used: on 50,000 simulated cells, batches of 16,384 reached ARI 0.45 in 15
#: epochs (60 steps) and 0.96 in 99 (396 steps); 256 reached 0.87 (benchmarks/results/batch_size.md).
#: On eight shared datasets, half or twice the epochs scored lower on average (mean ARI -0.036 and
#: -0.021; benchmarks/results/training_length.md).
DEFAULT_MIN_STEPS = 300


def default_max_epochs(n_cells: int, batch_size: int = 256) -> int:
    """Training epochs when none are given: at least 15 epochs and about 300 steps of ``batch_size`` cells.

    Small datasets, and large batches, get more epochs (up to 300) so that they still see enough
    optimiser steps.
    """
    return int(np.clip(math.ceil(DEFAULT_MIN_STEPS * min(batch_size, n_cells) / n_cells), 15, 300))
