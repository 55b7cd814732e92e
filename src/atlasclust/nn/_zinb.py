"""ZINB output heads; the likelihood itself is scvi-tools'."""

from __future__ import annotations

import math

import torch
from scvi.distributions import ZeroInflatedNegativeBinomial
from torch import nn

_LOG_MEAN_MIN, _LOG_MEAN_MAX = math.log(1e-5), math.log(1e6)


class _ZINB(ZeroInflatedNegativeBinomial):
    """scvi-tools' ZINB whose ``log_prob`` checks the support only with ``validate_args=True``.

    scvi-tools checks that the counts are non-negative at every ``log_prob``, whatever
    ``validate_args`` says; on a GPU that check reads a flag back to the host and stalls the step.
    The counts are validated once, before training.
    """

    def _validate_sample(self, value: torch.Tensor) -> None:
        if self._validate_args:
            super()._validate_sample(value)


class ZINBDecoder(nn.Module):
    """Map an embedding to a zero-inflated negative binomial over genes.

    As in BGFormer's reference: one linear layer to twice the width (no activation), then three
    linear heads for the mean (exp, clamped to [1e-5, 1e6]), the dispersion (softplus, clamped to
    [1e-4, 1e4]) and the dropout. The dropout head returns logits, the parametrisation of
    :class:`scvi.distributions.ZeroInflatedNegativeBinomial`.

    With ``n_batch`` > 1 the decoder is conditioned on each cell's batch as scVI's is: the batch's
    one-hot code joins the embedding at the input of the hidden layer. The decoder being affine,
    that gives each batch its own shift of every gene's log mean, dispersion and dropout logit,
    so the embedding need not carry the batch to reconstruct the counts.
    """

    def __init__(self, n_in: int, n_genes: int, *, n_batch: int = 0):
        super().__init__()
        self.hidden = nn.Linear(n_in, 2 * n_in)
        self.mean = nn.Linear(2 * n_in, n_genes)
        self.dispersion = nn.Linear(2 * n_in, n_genes)
        self.dropout_logits = nn.Linear(2 * n_in, n_genes)
        # the hidden layer's weights on the batch's one-hot code, one row per batch
        self.batch_hidden = nn.Embedding(n_batch, 2 * n_in) if n_batch > 1 else None
        if self.batch_hidden is not None:
            nn.init.zeros_(self.batch_hidden.weight)

    def forward(
        self,
        h: torch.Tensor,
        size_factor: torch.Tensor,
        rows: torch.Tensor | None = None,
        batch_index: torch.Tensor | None = None,
    ) -> ZeroInflatedNegativeBinomial:
        """Distribution of the counts of cells embedded as ``h`` with library ``size_factor``.

        With ``rows``, ``h`` is a table of embeddings (BGFormer's anchors) and cell ``i`` is
        embedded as ``h[rows[i]]``: the heads then run once per table row instead of once per
        cell, which gives the same distribution for a fraction of the work. ``batch_index``
        (one code per cell) is required when the decoder is conditioned on batches.
        """
        hidden = self.hidden(h)
        heads = (self.mean, self.dispersion, self.dropout_logits)
        log_mean, dispersion, zi_logits = (head(hidden) for head in heads)
        if rows is not None:  # F.embedding: a lookup whose CPU backward adds in a fixed order
            log_mean, dispersion, zi_logits = (
                nn.functional.embedding(rows, t) for t in (log_mean, dispersion, zi_logits)
            )
        if self.batch_hidden is not None:
            if batch_index is None:
                msg = "This decoder is conditioned on batches: pass each cell's batch_index."
                raise ValueError(msg)
            # per batch and gene, what its one-hot code adds through the hidden layer and each head
            # (batches x genes, once per step), then looked up per cell
            batch = batch_index.reshape(-1).long()
            log_mean, dispersion, zi_logits = (
                t + nn.functional.embedding(batch, nn.functional.linear(self.batch_hidden.weight, head.weight))
                for t, head in zip((log_mean, dispersion, zi_logits), heads, strict=True)
            )
        # clamping the log keeps gradients finite where exp would overflow
        mean = torch.exp(log_mean.clamp(_LOG_MEAN_MIN, _LOG_MEAN_MAX)) * size_factor[:, None]
        theta = nn.functional.softplus(dispersion).clamp(1e-4, 1e4)
        return _ZINB(mu=mean, theta=theta, zi_logits=zi_logits, validate_args=False)


def zinb_nll(distribution: ZeroInflatedNegativeBinomial, counts: torch.Tensor) -> torch.Tensor:
    """Per-cell negative log-likelihood, averaged over genes (the reference's scale)."""
    return -distribution.log_prob(counts).mean(dim=-1)
