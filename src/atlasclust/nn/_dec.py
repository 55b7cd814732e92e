"""Deep embedded clustering (DEC): Student-t soft assignment and its sharpened target."""

from __future__ import annotations

import torch


def student_t_assignment(z: torch.Tensor, centers: torch.Tensor, degrees_of_freedom: float = 1.0) -> torch.Tensor:
    """Soft assignment ``q_ij`` of cells ``z`` to ``centers`` with a Student-t kernel."""
    squared = torch.cdist(z, centers).pow(2)
    kernel = (1.0 + squared / degrees_of_freedom).pow(-(degrees_of_freedom + 1.0) / 2.0)
    return kernel / kernel.sum(dim=1, keepdim=True)


@torch.no_grad()
def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC's auxiliary target ``p_ij ∝ q_ij² / Σ_i q_ij``, without gradient."""
    weight = q.pow(2) / q.sum(dim=0, keepdim=True)
    return weight / weight.sum(dim=1, keepdim=True)


def dec_loss(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Per-cell ``KL(p_i ‖ q_i)``."""
    return (p * (torch.log(p.clamp_min(1e-12)) - torch.log(q + 1e-6))).sum(dim=1)
