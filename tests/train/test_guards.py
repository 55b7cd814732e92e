import pytest
import torch
from helpers import FAST, assert_unchanged, snapshot

import atlasclust as ac
from atlasclust.bgformer import BGFormer
from atlasclust.train._guards import TrainingDivergedError, halving_batch_size_on_oom


@pytest.mark.parametrize("method", ["bgformer", "scrcl"])
def test_diverged_training_stops_with_advice_and_writes_nothing(counts, method):
    before = snapshot(counts)
    options = FAST if method == "bgformer" else {"max_epochs": 5, "n_top_genes": 150, "enable_progress_bar": False}
    with pytest.raises(TrainingDivergedError, match=r"diverged.*NaN or infinite.*try lr=1e\+11"):
        getattr(ac.tl, method)(counts, 4, **(options | {"lr": 1e12}))
    assert_unchanged(counts, before)


def test_out_of_memory_names_the_batch_size_to_try(counts, monkeypatch):
    fits = _fail_above(monkeypatch, 64)
    before = snapshot(counts)
    with pytest.raises(MemoryError, match="batch_size=64.*auto_batch_size=True"):
        ac.tl.bgformer(counts, 4, **FAST)  # batch_size 128
    assert fits == [128]
    assert_unchanged(counts, before)


def test_out_of_memory_halves_the_batch_when_allowed(counts, monkeypatch):
    fits = _fail_above(monkeypatch, 32)
    ac.tl.bgformer(counts, 4, auto_batch_size=True, **FAST)
    assert fits == [128, 64, 32]
    assert counts.uns["bgformer"]["params"]["batch_size_used"] == 32
    assert counts.uns["bgformer"]["params"]["batch_size"] == 128


def test_halving_stops_at_the_smallest_batch():
    def run(batch_size):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(MemoryError, match="batch_size=16"):
        halving_batch_size_on_oom(run, 32, allow=True)


def _fail_above(monkeypatch, limit: int) -> list[int]:
    """Make BGFormer.train raise CUDA out-of-memory for batches above ``limit``; record the sizes tried."""
    tried = []
    train = BGFormer.train

    def fake_train(self, *args, batch_size, **kwargs):
        tried.append(batch_size)
        if batch_size > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return train(self, *args, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(BGFormer, "train", fake_train)
    return tried
