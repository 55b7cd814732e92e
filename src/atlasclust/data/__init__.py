"""Data access shared by the methods: count validation, streaming statistics, training views."""

from ._anndata import (
    as_sparse_matrix,
    check_batch_column,
    counts_matrix,
    describe_source,
    raw_counts_hint,
    training_view,
)
from ._blocks import BlockShuffleDataSplitter, BlockShuffleSampler
from ._device import DeviceDataSplitter, DeviceRows, fits_on_gpu, resolve_data_on_device, training_device
from ._sparse_batches import sparse_batches
from ._statistics import (
    CountStatistics,
    NotCountsError,
    iter_row_chunks,
    log_normalized_moments,
    projected_log_features,
    scaled_log_features,
    scan_counts,
    select_top_genes,
    selected_counts,
    seurat_dispersion_rank,
)

__all__ = [
    "BlockShuffleDataSplitter",
    "BlockShuffleSampler",
    "CountStatistics",
    "DeviceDataSplitter",
    "DeviceRows",
    "NotCountsError",
    "as_sparse_matrix",
    "check_batch_column",
    "counts_matrix",
    "describe_source",
    "fits_on_gpu",
    "iter_row_chunks",
    "log_normalized_moments",
    "projected_log_features",
    "raw_counts_hint",
    "resolve_data_on_device",
    "scaled_log_features",
    "scan_counts",
    "select_top_genes",
    "selected_counts",
    "seurat_dispersion_rank",
    "sparse_batches",
    "training_device",
    "training_view",
]
