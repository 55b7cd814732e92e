import anndata as ad
import numpy as np
import pytest
import torch
from helpers import FAST

import atlasclust as ac
from atlasclust.data import BlockShuffleSampler


def _runs(batch: list[int]) -> list[list[int]]:
    """Maximal runs of consecutive positions in a batch, in its order."""
    runs = [[batch[0]]]
    for position in batch[1:]:
        if position == runs[-1][-1] + 1:
            runs[-1].append(position)
        else:
            runs.append([position])
    return runs


def test_blocks_cover_every_position_once_per_epoch_in_whole_blocks():
    torch.manual_seed(0)
    sampler = BlockShuffleSampler(1003, 128, 16, drop_last=False)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 8
    assert sorted(p for batch in batches for p in batch) == list(range(1003))
    # the epoch's positions are whole blocks of 16 starting on multiples of 16 (the data's last block is short)
    for run in _runs([p for batch in batches for p in batch]):
        assert run[0] % 16 == 0 and (len(run) % 16 == 0 or run[-1] == 1002), run
    # blocks are shuffled again every epoch
    assert list(sampler) != batches


def test_blocks_drop_the_last_incomplete_batch_when_asked():
    sampler = BlockShuffleSampler(1003, 128, 16, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 7
    assert all(len(batch) == 128 for batch in batches)


def test_bgformer_with_block_batches_backed_and_in_memory_agree(counts, tmp_path):
    options = FAST | {"shuffle_block_size": 16}
    in_memory = ac.tl.bgformer(counts, 4, copy=True, **options)
    # 0.87: the 150 genes BGFormer's deviance ranking keeps hold 79 of the 100 simulated markers (all
    # 200 genes do worse, 0.61); this test checks the block batches, so it asks only for clear learning
    assert ac.metrics.evaluate(counts.obs["cell_type"], in_memory.obs["bgformer"])["ARI"] > 0.8
    counts.write_h5ad(tmp_path / "counts.h5ad")
    backed = ad.read_h5ad(tmp_path / "counts.h5ad", backed="r")
    ac.tl.bgformer(backed, 4, **options)
    np.testing.assert_array_equal(backed.obs["bgformer"], in_memory.obs["bgformer"])
    assert in_memory.uns["bgformer"]["params"]["shuffle_block_size"] == 16


@pytest.mark.parametrize("options", [{"devices": 2, "strategy": "ddp"}, {"data_on_device": True}])
def test_block_batches_refuse_several_devices_and_device_data(counts, options):
    with pytest.raises(ValueError, match="one device"):
        ac.tl.bgformer(counts, 4, shuffle_block_size=16, accelerator="cpu", **FAST, **options)
    assert "bgformer" not in counts.obs
