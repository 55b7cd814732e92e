"""The count input transform a module keeps with its weights: the genes it reads and how they are scaled."""

from __future__ import annotations

import torch


class CountInputBuffers:
    """Mixin for a :class:`torch.nn.Module` that reads raw counts of chosen genes.

    Buffers (saved with the weights): ``gene_index`` (the genes read, among all registered),
    ``gene_mean`` and ``gene_std`` (moments of the median-normalised ``log1p`` counts),
    ``median_library_size`` and, with batches, ``batch_gene_mean`` (``batches x genes``).
    """

    def register_input_buffers(self, n_input: int, n_batch: int = 0, *, gene_index: torch.Tensor | None = None) -> None:
        """Create the buffers for ``n_input`` genes (``gene_index``: the genes read until the data sets them)."""
        self.register_buffer("gene_index", torch.arange(n_input) if gene_index is None else gene_index)
        self.register_buffer("gene_mean", torch.zeros(n_input))
        self.register_buffer("gene_std", torch.ones(n_input))
        self.register_buffer("median_library_size", torch.tensor(1.0))
        if n_batch:
            self.register_buffer("batch_gene_mean", torch.zeros(n_batch, n_input))

    def set_gene_statistics(
        self, gene_index, gene_mean, gene_std, median_library_size: float, batch_gene_mean=None
    ) -> None:
        """Store the input transform learned from the data (``batch_gene_mean``: batches x genes)."""
        device = self.gene_mean.device
        self.gene_index.copy_(torch.as_tensor(gene_index, dtype=torch.long, device=device))
        self.gene_mean.copy_(torch.as_tensor(gene_mean, dtype=torch.float32, device=device))
        self.gene_std.copy_(torch.as_tensor(gene_std, dtype=torch.float32, device=device))
        self.median_library_size.fill_(float(median_library_size))
        if batch_gene_mean is not None and hasattr(self, "batch_gene_mean"):
            self.batch_gene_mean.copy_(torch.as_tensor(batch_gene_mean, dtype=torch.float32, device=device))
