"""Training data kept on the accelerator: scvi-tools' device-backed splitter, and when to use it."""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import torch
from scvi import REGISTRY_KEYS
from scvi.dataloaders import DeviceBackedDataSplitter
from scvi.model._utils import parse_device_args
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

#: Largest share of the GPU's free memory that the dense counts may take when kept on it by default.
DEVICE_SHARE = 0.25


class DeviceDataSplitter(DeviceBackedDataSplitter):
    """:class:`scvi.dataloaders.DeviceBackedDataSplitter` with shuffled training batches and ``drop_last``.

    scvi-tools' splitter copies the (densified) counts of each split to the device once; batches
    are then gathered there, with no per-step copy from the host and no sparse indexing on the CPU,
    which on a GPU was slower than the training step itself.

    Parameters
    ----------
    *args
        Passed to :class:`scvi.dataloaders.DeviceBackedDataSplitter`.
    drop_last
        Drop the last training batch of an epoch when it is incomplete.
    **kwargs
        Passed to :class:`scvi.dataloaders.DeviceBackedDataSplitter`.
    """

    def __init__(self, *args, drop_last: bool = False, **kwargs):
        super().__init__(*args, shuffle=True, **kwargs)
        self.drop_last = drop_last

    def _make_dataloader(self, tensor_dict, shuffle):
        # scvi-tools' own, with drop_last for the shuffled (training) loader
        if tensor_dict is None:
            return None
        loader = super()._make_dataloader(tensor_dict, shuffle)
        sampler = (RandomSampler if shuffle else SequentialSampler)(loader.dataset)
        batches = BatchSampler(sampler, batch_size=loader.sampler.batch_size, drop_last=shuffle and self.drop_last)
        return DataLoader(loader.dataset, sampler=batches, batch_size=None)

    def setup(self, stage: str | None = None):
        """Copy the splits to the device, once: BGFormer's two phases share them."""
        if getattr(self, "train_tensor_dict", None) is None:
            super().setup(stage)

    def release(self) -> None:
        """Free the device memory of the copied splits (Lightning's trainer keeps the splitter)."""
        self.train_tensor_dict = self.val_tensor_dict = self.test_tensor_dict = None


class DeviceRows:
    """The registered cells' counts kept on the device after training, to read any cells from there.

    Made from the copy :class:`DeviceDataSplitter` put on the device for training (no new copy),
    so that embedding and predicting the training data gather their batches on the device too
    instead of slicing sparse rows on the CPU and copying them over.

    Parameters
    ----------
    tensors
        A split's tensors: counts (``X``), the registered cell indices of its rows and, where
        registered, their batch codes.
    n_obs
        Number of registered cells; every one must be among the rows.
    """

    def __init__(self, tensors: dict[str, torch.Tensor], n_obs: int):
        self.counts = tensors[REGISTRY_KEYS.X_KEY]
        self.batch_codes = tensors.get(REGISTRY_KEYS.BATCH_KEY)
        cells = tensors[REGISTRY_KEYS.INDICES_KEY].reshape(-1).long()
        self.row_of = torch.full((n_obs,), -1, dtype=torch.long, device=self.counts.device)
        self.row_of[cells] = torch.arange(len(cells), device=self.counts.device)
        if len(cells) != n_obs or bool((self.row_of < 0).any()):
            msg = "The rows on the device do not cover every registered cell."
            raise ValueError(msg)

    @classmethod
    def from_splitter(cls, splitter: DeviceDataSplitter, n_obs: int) -> DeviceRows | None:
        """The splitter's training copy when it holds every cell (no validation or test split), else ``None``."""
        held_out = splitter.val_tensor_dict is not None or splitter.test_tensor_dict is not None
        if splitter.train_tensor_dict is None or held_out:
            return None
        return cls(splitter.train_tensor_dict, n_obs)

    @property
    def device(self) -> torch.device:
        """Where the counts are."""
        return self.counts.device

    def batches(self, cells: Sequence[int] | np.ndarray, batch_size: int):
        """Yield ``(counts, cell indices, batch codes or None)`` on the device for consecutive batches of ``cells``."""
        cells = torch.as_tensor(np.asarray(cells), dtype=torch.long, device=self.device)
        for start in range(0, len(cells), batch_size):
            batch = cells[start : start + batch_size]
            rows = self.row_of[batch]
            yield self.counts[rows], batch, None if self.batch_codes is None else self.batch_codes[rows]


def dense_bytes(adata: ad.AnnData) -> int:
    """Bytes of the counts of ``adata`` as a dense float32 matrix."""
    return 4 * adata.n_obs * adata.n_vars


def training_device(accelerator: str, devices, strategy: str) -> torch.device | None:
    """The one device Lightning will train on, or ``None`` when it trains on several."""
    _, n_devices, device = parse_device_args(accelerator=accelerator, devices=devices, return_device="torch")
    several = (isinstance(n_devices, int) and n_devices > 1) or (isinstance(n_devices, list) and len(n_devices) > 1)
    return None if several or "ddp" in str(strategy) else device


def fits_on_gpu(n_bytes: int, device: torch.device | None) -> bool:
    """Whether ``device`` is a CUDA GPU with ``n_bytes`` within :data:`DEVICE_SHARE` of its free memory."""
    if device is None or device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return n_bytes <= DEVICE_SHARE * free


def resolve_data_on_device(
    data_on_device: bool | None, adata: ad.AnnData, *, accelerator: str, devices, strategy: str
) -> bool:
    """Whether to keep the training data on the device; ``None`` decides, ``True`` checks it is possible.

    ``None`` keeps it there when training on one CUDA GPU, the data are in memory and the dense
    counts take at most :data:`DEVICE_SHARE` of the GPU's free memory. ``True`` works on any single
    device (the CPU included, where it only densifies) and raises a :class:`ValueError` for backed
    data or several devices.
    """
    device = training_device(accelerator, devices, strategy)
    several = device is None
    if data_on_device is None:
        return not adata.isbacked and not several and fits_on_gpu(dense_bytes(adata), device)
    if data_on_device and adata.isbacked:
        msg = "data_on_device=True needs the data in memory; a backed AnnData is read from disk batch by batch."
        raise ValueError(msg)
    if data_on_device and several:
        msg = "data_on_device=True works on one device only; with several, each process reads its own batches."
        raise ValueError(msg)
    return bool(data_on_device)
