"""Data access shared by the methods: count validation, streaming statistics, training views."""

from ._anndata import counts_matrix, describe_source, training_view
from ._statistics import (
    CountStatistics,
    iter_row_chunks,
    log_normalized_moments,
    scaled_log_features,
    scan_counts,
    select_top_genes,
    seurat_dispersion_rank,
)

__all__ = [
    "CountStatistics",
    "counts_matrix",
    "describe_source",
    "iter_row_chunks",
    "log_normalized_moments",
    "scaled_log_features",
    "scan_counts",
    "select_top_genes",
    "seurat_dispersion_rank",
    "training_view",
]
