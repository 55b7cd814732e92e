import pytest

from atlasclust.bgformer._defaults import DEFAULT_MIN_STEPS, default_max_epochs


@pytest.mark.parametrize("n_cells", [300, 3_000, 30_000, 3_000_000])
def test_at_least_the_minimum_steps_within_15_to_300_epochs(n_cells):
    epochs = default_max_epochs(n_cells, 256)
    assert 15 <= epochs <= 300
    steps = epochs * -(-n_cells // 256)
    assert steps >= DEFAULT_MIN_STEPS or epochs == 300


def test_larger_batches_get_more_epochs():
    assert default_max_epochs(50_000, 16_384) > default_max_epochs(50_000, 256)


def test_default_epochs_count_steps_of_the_batch_used():
    # the default batch of 256: 15 epochs on large data, more on small data for about 300 steps
    assert default_max_epochs(50_000) == 15
    assert default_max_epochs(1_000) == 77
    # a batch of 16,384 takes 4 steps per epoch on 50,000 cells: 99 epochs make 396 steps
    assert default_max_epochs(50_000, 16_384) == 99
    assert default_max_epochs(1_000_000, 16_384) == 15
    # a batch as large as the data: one step per epoch, at most 300 epochs
    assert default_max_epochs(1_000, 4_096) == 300
