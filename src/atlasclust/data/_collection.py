"""Cells of an annbatch collection: its shards read lazily, and scvi-tools' data module over it for training.

An `annbatch <https://annbatch.readthedocs.io>`_ collection is a folder of zarr shards whose cells
were shuffled once when it was written, so that contiguous chunks are random cells. Training reads
shuffled batches through :class:`scvi.dataloaders.AnnbatchDataModule` (scvi-tools 1.5, Python 3.12+);
the passes before and after training read the shards in order, each as an AnnData whose counts
stay on disk. ``annbatch`` and the data module are imported only here, only when used.
"""

from __future__ import annotations

import math
from functools import cached_property
from os import PathLike

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from scvi import REGISTRY_KEYS

#: Cells read at once from disk when a batch is at most this large (annbatch's chunks).
_MAX_CHUNK_CELLS = 1024
#: Fewest cells preloaded and shuffled together before they are cut into batches.
_MIN_PRELOAD_CELLS = 16_384


class Collection:
    """The cells of an annbatch collection, shard by shard, with their ``obs`` and genes.

    Parameters
    ----------
    collection
        An :class:`annbatch.DatasetCollection` or the path of one (a ``.zarr`` folder written by
        ``annbatch.DatasetCollection(path).add_adatas([...])``).

    Attributes
    ----------
    shards
        One AnnData per shard, in the collection's order, counts in ``X`` read from disk.
    """

    def __init__(self, collection):
        try:
            import annbatch
        except ImportError as error:  # Python 3.11, or the extra not installed
            msg = "Training from an annbatch collection needs `pip install 'atlasclust[annbatch]'` (Python 3.12+)."
            raise ImportError(msg) from error
        if isinstance(collection, str | PathLike):
            collection = annbatch.DatasetCollection(collection)
        if not isinstance(collection, annbatch.DatasetCollection):
            msg = f"Expected an annbatch.DatasetCollection or its path, got {type(collection).__name__}."
            raise TypeError(msg)
        if collection.is_empty:
            msg = "The annbatch collection holds no cells."
            raise ValueError(msg)
        self.collection = collection
        self.shards = [_read_shard(group) for group in collection]
        genes = self.shards[0].var_names
        for number, shard in enumerate(self.shards[1:], start=1):
            if not genes.equals(shard.var_names):
                msg = f"Shard {number} of the collection has other genes than shard 0; write it with the same var."
                raise ValueError(msg)
        self.offsets = np.cumsum([0] + [shard.n_obs for shard in self.shards])

    @property
    def n_obs(self) -> int:
        return int(self.offsets[-1])

    @property
    def var_names(self) -> pd.Index:
        return self.shards[0].var_names

    @property
    def obs_names(self) -> pd.Index:
        return self.obs.index

    @cached_property
    def obs(self) -> pd.DataFrame:
        """The cells' ``obs``, in the collection's order (categories joined across shards); joined once."""
        return pd.concat([shard.obs for shard in self.shards], axis=0)

    @property
    def counts(self) -> StackedRows:
        """All cells' counts as one row-sliceable matrix, for the streaming passes."""
        return StackedRows([shard.X for shard in self.shards])

    def as_anndata(self) -> ad.AnnData:
        """An AnnData of the cells (their ``obs``) and genes, without counts: where a tool writes its results."""
        # a copy: the results written there must not reach the shared obs
        return ad.AnnData(obs=self.obs.copy(), var=pd.DataFrame(index=self.var_names.copy()))

    def rows(self, cells: np.ndarray) -> ad.AnnData:
        """The AnnData of ``cells`` (increasing row numbers), counts read into memory."""
        cells = np.asarray(cells)
        counts = self.counts.take(cells)
        return ad.AnnData(X=counts, obs=self.obs.iloc[cells].copy(), var=pd.DataFrame(index=self.var_names.copy()))

    def data_module(self, *, batch_size: int, batch_codes: np.ndarray | None, seed: int):
        """scvi-tools' :class:`~scvi.dataloaders.AnnbatchDataModule` over these shards, giving BGFormer's batches."""
        return _data_module_class()(self, batch_size=batch_size, batch_codes=batch_codes, seed=seed)


def _read_shard(group) -> ad.AnnData:
    """A shard's cells: counts left on disk, ``obs`` and gene names read (what annbatch's loader yields)."""
    counts = group["X"]
    if counts.attrs.get("encoding-type") in ("csr_matrix", "csc_matrix"):
        counts = ad.io.sparse_dataset(counts)
    var = group["var"]
    genes = pd.Index(ad.io.read_elem(var[var.attrs["_index"]]).astype(str))
    return ad.AnnData(X=counts, obs=ad.io.read_elem(group["obs"]), var=pd.DataFrame(index=genes))


class StackedRows:
    """Row-sliceable counts over several matrices stacked by rows (each in memory or on disk)."""

    def __init__(self, parts: list):
        self.parts = parts
        self.offsets = np.cumsum([0] + [part.shape[0] for part in parts])
        self.shape = (int(self.offsets[-1]), int(parts[0].shape[1]))

    def __getitem__(self, rows):
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            msg = "StackedRows reads contiguous row slices; use take() for a list of rows."
            raise TypeError(msg)
        start, stop, _ = rows.indices(self.shape[0])
        return self.take(np.arange(start, stop))

    def take(self, cells: np.ndarray) -> sp.csr_matrix:
        """The rows ``cells`` (increasing), as one CSR matrix."""
        pieces = []
        part_of = np.searchsorted(self.offsets, cells, side="right") - 1
        for part in np.unique(part_of):
            local = cells[part_of == part] - self.offsets[part]
            chunk = self.parts[part][local[0] : local[-1] + 1] if _contiguous(local) else self.parts[part][local]
            pieces.append(sp.csr_matrix(chunk))
        if not pieces:
            return sp.csr_matrix((0, self.shape[1]))
        return sp.vstack(pieces, format="csr")


def _contiguous(local: np.ndarray) -> bool:
    return len(local) == local[-1] - local[0] + 1


def loader_chunks(batch_size: int) -> tuple[int, int]:
    """Annbatch's ``(chunk_size, preload_nchunks)`` for ``batch_size``.

    annbatch needs ``chunk_size * preload_nchunks`` to be a multiple of the batch size; at least
    16,384 cells are preloaded and shuffled together, read in chunks of at most 1,024 cells (the
    settings of the loader benchmark).
    """
    preload = batch_size * math.ceil(_MIN_PRELOAD_CELLS / batch_size)
    chunk_size = next(size for size in range(min(_MAX_CHUNK_CELLS, preload), 0, -1) if preload % size == 0)
    return chunk_size, preload // chunk_size


def _data_module_class():
    """The data module class, defined on first use: scvi-tools before 1.5 has no ``AnnbatchDataModule``."""
    global _DataModule
    if _DataModule is not None:
        return _DataModule
    import annbatch
    from scvi.dataloaders import AnnbatchDataModule

    class CollectionDataModule(AnnbatchDataModule):
        """:class:`scvi.dataloaders.AnnbatchDataModule` giving the tensors BGFormer reads.

        Counts stay a sparse CSR tensor (as scvi-tools' loaders give with ``load_sparse_tensor``),
        each cell carries its row in the collection (``REGISTRY_KEYS.INDICES_KEY``) and its batch
        code in the model's own categories.
        """

        def __init__(self, cells: Collection, *, batch_size: int, batch_codes: np.ndarray | None, seed: int):
            chunk_size, preload_nchunks = loader_chunks(batch_size)
            self._rng = np.random.default_rng(seed)  # every epoch's order of the cells draws from it
            loader = annbatch.Loader(
                batch_size=batch_size,
                chunk_size=chunk_size,
                preload_nchunks=preload_nchunks,
                shuffle=True,
                return_index=True,
                preload_to_gpu=False,  # Lightning moves each batch to the device
                rng=self._rng,
            ).add_adatas(cells.shards)
            super().__init__(
                loader,
                batch_size=batch_size,
                var_names=list(cells.var_names),
                chunk_size=chunk_size,
                preload_nchunks=preload_nchunks,
                preload_to_gpu=False,
                shuffle=True,
            )
            self.batch_codes = None if batch_codes is None else torch.from_numpy(np.array(batch_codes, dtype=np.int64))

        def train_dataloader(self):
            # scvi-tools' module (1.5) gives each epoch's loader a new sampler without a random generator,
            # so the cells' order would not follow the seed: the same sampler here draws from the seeded one
            from annbatch.samplers import RandomSampler

            loader = super().train_dataloader()
            if isinstance(loader._batch_sampler, RandomSampler):
                loader._batch_sampler = RandomSampler(
                    chunk_size=self.chunk_size,
                    preload_nchunks=self.preload_nchunks,
                    batch_size=self.batch_size,
                    mask=self._train_mask,
                    rng=self._rng,
                )
            return loader

        def on_before_batch_transfer(self, batch, dataloader_idx):
            counts = sp.csr_matrix(batch["X"], dtype=np.float32)
            rows = torch.as_tensor(np.asarray(batch["index"]), dtype=torch.long)
            tensors = {
                REGISTRY_KEYS.X_KEY: torch.sparse_csr_tensor(
                    torch.from_numpy(counts.indptr.astype(np.int64)),
                    torch.from_numpy(counts.indices.astype(np.int64)),
                    torch.from_numpy(counts.data),
                    size=counts.shape,
                    check_invariants=False,  # built from a valid CSR matrix
                ),
                REGISTRY_KEYS.INDICES_KEY: rows[:, None],
            }
            if self.batch_codes is not None:
                tensors[REGISTRY_KEYS.BATCH_KEY] = self.batch_codes[rows][:, None]
            return tensors

    _DataModule = CollectionDataModule
    return _DataModule


_DataModule = None
