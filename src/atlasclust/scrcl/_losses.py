"""scRCL's three losses in memory linear in the number of cells (reference-spec §5.3, §5.4).

Every function works on one batch: ``n_seeds`` seed cells, the first rows of the batch's
``n_nodes`` nodes (the seeds followed by their graph neighbours). ``pairs`` is the sparse binary
``nodes x seeds`` block of the target graph ``A + I``, so that every neighbour pair the losses
need is present without any ``N x N`` array. Sums over pairs go through sparse products rather
than gathers, whose CPU backward pass is not deterministic. When the seeds are all
``n_total`` cells (full batch) the values equal the reference's dense formulas exactly; with
fewer seeds, sums over all cells are estimated from the seeds and scaled to ``n_total``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from atlasclust.nn import sparse_matmul


def _symmetric_kl_terms(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Entry-wise ``(p - q)(log p - log q)``; its sum is ``KL(p||q) + KL(q||p)``."""
    return (log_p.exp() - log_q.exp()) * (log_p - log_q)


def hea_loss(mlp_embedding: torch.Tensor, gcn_embedding: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """Heterogeneous embedding alignment: global plus mean per-cell symmetric KL (as coded).

    Parameters
    ----------
    mlp_embedding, gcn_embedding
        Unit-norm embeddings of the same cells from the two views (``cells x width``).
    temperature
        Softmax temperature.
    """
    global_term = _symmetric_kl_terms(
        F.log_softmax(mlp_embedding.flatten() / temperature, dim=0),
        F.log_softmax(gcn_embedding.flatten() / temperature, dim=0),
    ).sum()
    cell_term = _symmetric_kl_terms(
        F.log_softmax(mlp_embedding / temperature, dim=1), F.log_softmax(gcn_embedding / temperature, dim=1)
    ).sum(dim=1)
    return global_term + 0.5 * cell_term.mean()


def ndc_loss(
    mlp_nodes: torch.Tensor,
    gcn_seeds: torch.Tensor,
    pairs: torch.Tensor,
    node_degree: torch.Tensor,
    *,
    n_total: int,
    temperature: float,
    negative_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Neighbourhood contrastive alignment (Eq. 4-5) from column aggregates and edge lists.

    ``kappa_ij = KL(P_i||Q_j) + KL(Q_j||P_i)`` with ``P`` from the MLP view and ``Q`` from the GCN
    view. The loss is ``mean_i num_i / den_i`` with ``num_i`` the mean of ``kappa`` over ``i`` and
    its neighbours and ``den_i`` the mean over all other cells; ``den_i`` needs only three column
    aggregates, because ``kappa_ij = a_i + b_j - <P_i, log Q_j> - <Q_j, log P_i>``.

    Parameters
    ----------
    mlp_nodes
        Unit-norm MLP-view embedding of the batch's nodes (seeds first).
    gcn_seeds
        Unit-norm GCN-view embedding of the seeds.
    pairs
        Sparse binary ``nodes x seeds`` block of ``A + I``.
    node_degree
        Degree of each node in ``A`` (without the self loop), over the whole graph.
    n_total
        Number of cells in the whole graph.
    temperature
        Softmax temperature.
    negative_weight
        Weight of each seed in ``den_i``, the mean over other cells (mean about 1 over all cells);
        ``None``: every cell alike, as the reference. Weights inversely proportional to a cell's
        group size make each group push the others away alike, so that a large group is not
        spread over more of the sphere than a small one.
    """
    n_seeds = len(gcn_seeds)
    log_p = F.log_softmax(mlp_nodes / temperature, dim=1)
    log_q = F.log_softmax(gcn_seeds / temperature, dim=1)
    p, q = log_p.exp(), log_q.exp()
    neg_entropy_p = (p * log_p).sum(dim=1)
    neg_entropy_q = (q * log_q).sum(dim=1)
    # full batch: nodes are the seeds, so kappa_ii is at hand and the mean excludes it exactly
    full_batch = n_seeds == n_total
    if full_batch:
        self_kappa = neg_entropy_p + neg_entropy_q - (p * log_q).sum(dim=1) - (q * log_p).sum(dim=1)

    if negative_weight is None:
        # sum over all cells j of kappa_ij, from column aggregates of the GCN side (estimated from the seeds)
        scale = n_total / n_seeds
        row_sum = (
            n_total * neg_entropy_p
            + scale * neg_entropy_q.sum()
            - p @ (scale * log_q.sum(dim=0))
            - log_p @ (scale * q.sum(dim=0))
        )
        denominator = (row_sum - self_kappa) / (n_total - 1) if full_batch else row_sum / n_total
    else:
        # the same sums weighted; the seeds' weights stand for all cells' as the seeds do
        weight = negative_weight
        total_weight = weight.sum()
        row_sum = (
            total_weight * neg_entropy_p
            + (weight * neg_entropy_q).sum()
            - p @ (weight[:, None] * log_q).sum(dim=0)
            - log_p @ (weight[:, None] * q).sum(dim=0)
        )
        if full_batch:
            denominator = (row_sum - weight * self_kappa) / (total_weight - weight)
        else:
            denominator = row_sum / total_weight

    # sum over each node's paired seeds k of kappa_ik, expanded so that only sparse products appear
    n_pairs = sparse_matmul(pairs, torch.ones_like(neg_entropy_q)[:, None]).squeeze(1)
    pair_kappa = (
        neg_entropy_p * n_pairs
        + sparse_matmul(pairs, neg_entropy_q[:, None]).squeeze(1)
        - (p * sparse_matmul(pairs, log_q)).sum(dim=1)
        - (log_p * sparse_matmul(pairs, q)).sum(dim=1)
    )
    # each node's numerator is spread over the seeds it is paired with; summed over seeds and
    # divided by their number this is the mean over cells of num_i / den_i
    return (pair_kappa / ((node_degree + 1) * denominator)).sum() / n_seeds


def cvc_loss(
    mlp_nodes: torch.Tensor,
    gcn_seeds: torch.Tensor,
    pairs: torch.Tensor,
    *,
    n_total: int,
    n_target_entries: int,
) -> torch.Tensor:
    """Cross-view consistency ``||S - (A + I)||_F^2 / N^2`` without forming ``S`` (as coded).

    ``||S||_F^2 = <Zm^T Zm, Zg^T Zg>`` uses two ``c x c`` Gram matrices, and the target only
    touches the edges: ``||S - T||^2 = ||S||^2 - 2 sum_T S_ij + nnz(T)``.

    Parameters
    ----------
    mlp_nodes
        Unit-norm refined MLP view of the batch's nodes (seeds first).
    gcn_seeds
        Unit-norm refined GCN view of the seeds.
    pairs
        Sparse binary ``nodes x seeds`` block of ``A + I``.
    n_total
        Number of cells in the whole graph.
    n_target_entries
        ``nnz(A + I)`` over the whole graph.
    """
    n_seeds = len(gcn_seeds)
    mlp_seeds = mlp_nodes[:n_seeds]
    scale = n_total / n_seeds
    squared_norm = (mlp_seeds.T @ mlp_seeds * (gcn_seeds.T @ gcn_seeds)).sum() * scale**2
    on_target = (mlp_nodes * sparse_matmul(pairs, gcn_seeds)).sum() * scale
    return (squared_norm - 2 * on_target + n_target_entries) / n_total**2
