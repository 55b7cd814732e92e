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
