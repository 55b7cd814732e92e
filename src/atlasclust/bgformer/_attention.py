"""BGFormer's bipartite attention: cells attend to anchors, never to each other.

This is the heart of the method. Queries are cells, keys and values are the anchors, so the cost
of a batch is ``batch x n_anchors`` per head, linear in the number of cells.
"""

from __future__ import annotations

import torch
from torch import nn


class AnchorAttention(nn.Module):
    """Multi-head attention of cells (queries) to anchors (keys and values).

    As in the reference, keys and values come from two shared projections of the anchors, the
    query projection and the output projection are the identity, and the scores are not scaled by
    ``1/sqrt(head width)``. Unlike the reference, heads are concatenated per cell (its reshape
    mixed cells of a batch when there was more than one head).

    Parameters
    ----------
    n_latent
        Width of cells and anchors; must be divisible by ``n_heads``.
    n_heads
        Number of heads.
    """

    def __init__(self, n_latent: int, n_heads: int):
        super().__init__()
        if n_latent % n_heads:
            msg = f"n_latent={n_latent} must be divisible by n_heads={n_heads}."
            raise ValueError(msg)
        self.n_heads = n_heads
        self.key = nn.Linear(n_latent, n_latent)
        self.value = nn.Linear(n_latent, n_latent)

    def forward(self, cells: torch.Tensor, anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend.

        Parameters
        ----------
        cells
            Queries, ``batch x n_latent``.
        anchors
            Anchor tokens, ``n_anchors x n_latent``.

        Returns
        -------
        The attention output (``batch x n_latent``, heads concatenated per cell) and the
        attention weights (``batch x n_heads x n_anchors``, rows sum to one).
        """
        n_cells, width = cells.shape
        head_width = width // self.n_heads
        query = cells.view(n_cells, self.n_heads, head_width)
        key = self.key(anchors).view(-1, self.n_heads, head_width)
        value = self.value(anchors).view(-1, self.n_heads, head_width)
        weights = torch.softmax(torch.einsum("chd,ahd->cha", query, key), dim=-1)
        output = torch.einsum("cha,ahd->chd", weights, value).reshape(n_cells, width)
        return output, weights


class BipartiteEncoder(nn.Module):
    """One pre-norm transformer layer over the bipartite cell-anchor graph, with BGFormer's residual.

    ``h0`` (the projected input) is layer-normalised into queries, attends to the anchors,
    goes through a feed-forward block and a bottleneck, and is added back to ``h0``
    (the paper's Eq. 14) before the final layer norm that gives the embedding.

    Parameters
    ----------
    n_latent
        Width of the embedding.
    n_heads
        Number of attention heads.
    n_ffn
        Width of the feed-forward block.
    n_bottleneck
        Width of the bottleneck.
    dropout
        Dropout on the attention and feed-forward residuals.
    """

    def __init__(self, n_latent: int, n_heads: int, *, n_ffn: int = 512, n_bottleneck: int = 256, dropout: float = 0.1):
        super().__init__()
        self.query_norm = nn.LayerNorm(n_latent)
        self.attention = AnchorAttention(n_latent, n_heads)
        self.ffn_norm = nn.LayerNorm(n_latent)
        # the reference ends the feed-forward block with a ReLU too
        self.ffn = nn.Sequential(nn.Linear(n_latent, n_ffn), nn.ReLU(), nn.Linear(n_ffn, n_latent), nn.ReLU())
        self.bottleneck_norm = nn.LayerNorm(n_latent)
        self.bottleneck = nn.Sequential(nn.Linear(n_latent, n_bottleneck), nn.ReLU(), nn.Linear(n_bottleneck, n_latent))
        self.output_norm = nn.LayerNorm(n_latent)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h0: torch.Tensor, anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed cells ``h0`` given ``anchors``; returns the embedding and the attention weights."""
        query = self.query_norm(h0)
        attended, weights = self.attention(query, anchors)
        h = query + self.dropout(attended)
        h = h + self.dropout(self.ffn(self.ffn_norm(h)))
        h = self.bottleneck(self.bottleneck_norm(h))
        # the reference L2-normalises h + h0 before this layer norm, which cancels it
        return self.output_norm(h + h0), weights
