import pytest

from atlasclust.scrcl._defaults import (
    DEFAULT_SEEDS_PER_BATCH,
    DEFAULT_STEPS,
    FULL_BATCH_MAX_CELLS,
    default_batch_size,
    default_max_epochs,
)


def test_full_batch_up_to_the_limit_then_seed_batches():
    assert default_batch_size(FULL_BATCH_MAX_CELLS) == FULL_BATCH_MAX_CELLS
    assert default_batch_size(FULL_BATCH_MAX_CELLS + 1) == DEFAULT_SEEDS_PER_BATCH


@pytest.mark.parametrize(("n_cells", "batch_size"), [(500, 500), (100_000, 2048), (10_000_000, 2048)])
def test_about_the_default_steps_and_at_least_two_passes(n_cells, batch_size):
    epochs = default_max_epochs(n_cells, batch_size)
    steps_per_epoch = -(-n_cells // batch_size)
    assert epochs >= 2
    assert epochs * steps_per_epoch >= DEFAULT_STEPS or epochs == 2
    assert (epochs - 1) * steps_per_epoch < DEFAULT_STEPS or epochs == 2
