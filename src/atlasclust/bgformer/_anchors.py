"""The anchor codebook: nearest-anchor assignment, commitment, usage and re-seeding.

Anchors are BGFormer's learnable tokens. A cell is assigned to the anchor with the highest cosine
similarity to its anchor-side encoding (no straight-through estimator, as in the reference), and
anchors that are rarely used (dead) or used far more than average are pulled towards cells of the
current batch, outside autograd.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch import nn


class AnchorCodebook(nn.Module):
    """``n_anchors`` learnable anchor vectors of width ``n_latent`` with a usage EMA.

    Parameters
    ----------
    n_anchors
        Number of anchors.
    n_latent
        Width of each anchor.
    usage_decay
        Decay of the exponential moving average of anchor usage.
    """

    def __init__(self, n_anchors: int, n_latent: int, *, usage_decay: float = 0.9):
        super().__init__()
        self.anchors = nn.Parameter(torch.empty(n_anchors, n_latent).uniform_(-1.0 / n_anchors, 1.0 / n_anchors))
        self.register_buffer("usage", torch.zeros(n_anchors))
        self.usage_decay = usage_decay
        # the usage EMA sums to 1 - decay**steps: once warm it stays warm, so the GPU is asked only until then
        self._usage_warm = False

    @property
    def n_anchors(self) -> int:
        """Number of anchors."""
        return self.anchors.shape[0]

    def similarity(self, h: torch.Tensor) -> torch.Tensor:
        """Cosine similarity (cells x anchors) of detached encodings to the anchors."""
        return F.normalize(h.detach(), dim=1) @ F.normalize(self.anchors.detach(), dim=1).T

    def assign(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest anchor of each cell, and the selected anchor vectors (gradient reaches anchors only)."""
        index = self.similarity(h).argmax(dim=1)
        # F.embedding, not self.anchors[index]: the indexing's CPU backward adds in no fixed order
        return index, F.embedding(index, self.anchors)

    @torch.no_grad()
    def update_usage(self, index: torch.Tensor) -> None:
        """Fold the share of the batch assigned to each anchor into the usage EMA."""
        share = torch.bincount(index, minlength=self.n_anchors).to(self.usage.dtype) / index.numel()
        self.usage.mul_(self.usage_decay).add_((1.0 - self.usage_decay) * share)

    @torch.no_grad()
    def refresh(self, h: torch.Tensor) -> None:
        """Re-seed dead and over-used anchors towards cells of this batch (the reference's rules).

        Dead: anchor ``j`` moves towards a cell drawn with weights ``max_j softmax(1 - sim)`` by
        ``exp(-usage_j * n_anchors * 100)``, i.e. only anchors used far below uniform move.
        Over-used (once the usage EMA has warmed up): anchor ``j`` moves towards a cell whose
        similarity to it is near the batch median, by ``exp(-10 * mean(usage) / usage_j)``.
        """
        h = h.detach()
        sim = self.similarity(h)
        n_anchors = self.n_anchors
        weights = torch.softmax(1.0 - sim, dim=1).max(dim=1).values
        drawn = h[torch.multinomial(weights, n_anchors, replacement=True)]
        beta = torch.exp(-self.usage * n_anchors * 100.0 - 1e-3)[:, None]
        self.anchors.mul_(1.0 - beta).add_(beta * drawn)
        if self._usage_warm or bool(self.usage.sum() + 1e-4 >= 1.0):
            self._usage_warm = True
            # the lower median, as torch.median gives, from a sort: CUDA's median has no deterministic kernel
            median = sim.sort(dim=0).values[(len(sim) - 1) // 2]
            distance_to_median = (sim - median).abs()
            probs = torch.softmax(-distance_to_median.T, dim=1)
            drawn = h[torch.multinomial(probs, 1).squeeze(1)]
            ratio = self.usage.mean() / self.usage.clamp_min(1e-12)
            beta = torch.exp(-ratio * 10.0 - 1e-3)[:, None]
            self.anchors.mul_(1.0 - beta).add_(beta * drawn)

    @torch.no_grad()
    def initialize(self, h: torch.Tensor, *, random_state: int = 0) -> None:
        """Spherical k-means on encodings ``h``; each anchor becomes the mean of its cells.

        Unlike the reference, an empty cluster cannot produce a NaN anchor: it takes the k-means
        centroid scaled to the mean encoding norm instead.
        """
        h_np = h.detach().cpu().numpy().astype(np.float64)
        n_anchors = min(self.n_anchors, len(h_np))
        unit = h_np / np.maximum(np.linalg.norm(h_np, axis=1, keepdims=True), 1e-12)
        kmeans = KMeans(n_clusters=n_anchors, n_init=1, max_iter=25, random_state=random_state).fit(unit)
        anchors = kmeans.cluster_centers_ * np.linalg.norm(h_np, axis=1).mean()
        counts = np.bincount(kmeans.labels_, minlength=n_anchors)
        sums = np.zeros_like(anchors)
        np.add.at(sums, kmeans.labels_, h_np)
        filled = counts > 0
        anchors[filled] = sums[filled] / counts[filled, None]
        self.anchors[:n_anchors] = torch.as_tensor(anchors, dtype=self.anchors.dtype, device=self.anchors.device)
        self.usage.zero_()
        self._usage_warm = False
