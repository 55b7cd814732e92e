"""Data access shared by the methods: count validation, streaming statistics, training views."""

from ._anndata import (
    INDICES_COLUMN,
    as_sparse_matrix,
    check_batch_column,
    check_same_genes,
    counts_matrix,
    describe_source,
    raw_counts_hint,
    saved_batches,
    training_view,
)
from ._blocks import BlockShuffleDataSplitter, BlockShuffleSampler
from ._device import DeviceDataSplitter, DeviceRows, fits_on_gpu, resolve_data_on_device, training_device
from ._genes import (
    check_n_top_genes,
    choose_genes,
    default_mask_var,
    gene_mask,
    planned_gene_count,
    with_chosen_genes,
)
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
    "INDICES_COLUMN",
    "BlockShuffleDataSplitter",
    "BlockShuffleSampler",
    "CountStatistics",
    "DeviceDataSplitter",
    "DeviceRows",
    "NotCountsError",
    "as_sparse_matrix",
    "check_batch_column",
    "check_n_top_genes",
    "check_same_genes",
    "choose_genes",
    "counts_matrix",
    "default_mask_var",
    "describe_source",
    "fits_on_gpu",
    "gene_mask",
    "iter_row_chunks",
    "log_normalized_moments",
    "planned_gene_count",
    "projected_log_features",
    "raw_counts_hint",
    "resolve_data_on_device",
    "saved_batches",
    "scaled_log_features",
    "scan_counts",
    "select_top_genes",
    "selected_counts",
    "seurat_dispersion_rank",
    "sparse_batches",
    "training_device",
    "training_view",
    "with_chosen_genes",
]
