"""Mini-batches made of shuffled blocks of consecutive cells, for fast reads from backed files."""

from __future__ import annotations

import math

import numpy as np
import torch
from scvi.dataloaders import DataSplitter
from torch.utils.data import Sampler, default_convert


class BlockShuffleSampler(Sampler[list[int]]):
    """Batches of positions ``0`` to ``n - 1`` made of whole blocks of ``block_size`` consecutive positions.

    The blocks are shuffled every epoch (with torch's generator, as :class:`torch.utils.data.RandomSampler`
    would); batches then take consecutive blocks. Reading a batch from a backed h5ad file costs about
    one read per run of consecutive rows, so blocks of 16 or more rows read several times faster than
    rows drawn one by one.

    Parameters
    ----------
    n
        Number of positions.
    batch_size
        Positions per batch.
    block_size
        Consecutive positions per block.
    drop_last
        Drop the last batch when it is incomplete.
    """

    def __init__(self, n: int, batch_size: int, block_size: int, *, drop_last: bool = False):
        self.n, self.batch_size, self.block_size, self.drop_last = n, batch_size, block_size, drop_last

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else math.ceil(self.n / self.batch_size)

    def __iter__(self):
        n_blocks = math.ceil(self.n / self.block_size)
        blocks = torch.randperm(n_blocks).numpy()
        starts = blocks * self.block_size
        sizes = np.minimum(starts + self.block_size, self.n) - starts
        # positions of the shuffled blocks, one after the other
        offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        positions = np.repeat(starts, sizes) + offsets
        for batch in range(len(self)):
            yield positions[batch * self.batch_size : (batch + 1) * self.batch_size].tolist()


def _only(batch: list):
    # the sampler yields whole batches of positions; the DataLoader wraps each in a list of one and,
    # with this collate function, leaves numpy arrays to us to convert, as it would without batching
    return default_convert(batch[0])


class BlockShuffleDataSplitter(DataSplitter):
    """:class:`scvi.dataloaders.DataSplitter` whose training batches are shuffled blocks of consecutive cells.

    The training cells are kept in file order, so that a block of consecutive training cells is a
    run of consecutive rows of the file (apart from the held-out validation cells). Validation and
    test loaders are scvi-tools' own.

    Parameters
    ----------
    *args
        Passed to :class:`scvi.dataloaders.DataSplitter`.
    block_size
        Consecutive cells per block.
    **kwargs
        Passed to :class:`scvi.dataloaders.DataSplitter`.
    """

    def __init__(self, *args, block_size: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.block_size = block_size

    def setup(self, stage: str | None = None):
        """Split the cells as scvi-tools does, then put the training cells in file order."""
        super().setup(stage)
        self.train_idx = np.sort(self.train_idx)

    def train_dataloader(self):
        """Training loader drawing :class:`BlockShuffleSampler` batches."""
        batch_size = self.data_loader_kwargs["batch_size"]
        sampler = BlockShuffleSampler(len(self.train_idx), batch_size, self.block_size, drop_last=self.drop_last)
        return self.data_loader_cls(
            self.adata_manager,
            indices=self.train_idx,
            sampler=sampler,
            collate_fn=_only,  # a module-level function: workers pickle it
            load_sparse_tensor=self.load_sparse_tensor,
            pin_memory=self.pin_memory,
            **{k: v for k, v in self.data_loader_kwargs.items() if k != "batch_size"},
        )
