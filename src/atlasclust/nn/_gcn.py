"""Graph convolution with ``torch.sparse``: ``Â (X W) + b`` for a given normalised adjacency Â."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


def sparse_tensor(matrix: sp.spmatrix, *, device: torch.device | str | None = None) -> torch.Tensor:
    """A scipy sparse matrix as a float32 torch sparse COO tensor (coalesced)."""
    coo = sp.coo_matrix(matrix)
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(indices, values, coo.shape, device=device, check_invariants=False).coalesce()


def sparse_matmul(sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``sparse @ dense`` for a sparse COO matrix and a dense one.

    Under :func:`torch.use_deterministic_algorithms` on CUDA, the product is a gather and an
    ``index_add``, which PyTorch runs deterministically there (forward and backward):
    ``torch.sparse.mm`` on CUDA is not deterministic and does not say so.
    """
    if dense.is_cuda and torch.are_deterministic_algorithms_enabled():
        return gather_matmul(sparse, dense)
    return torch.sparse.mm(sparse, dense)


def gather_matmul(sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``sparse @ dense`` as a gather of ``dense``'s rows and an ``index_add`` into the result's."""
    rows, cols = sparse._indices()  # also right for an uncoalesced tensor: index_add sums duplicates
    products = sparse._values().unsqueeze(1) * dense.index_select(0, cols)
    return dense.new_zeros(sparse.shape[0], dense.shape[1]).index_add(0, rows, products)


class GraphConvolution(nn.Module):
    """One GCN layer (Kipf and Welling): linear transform, sparse propagation, then bias.

    The propagation matrix may be rectangular (``targets x sources``), so a mini-batch can
    propagate from a batch's neighbourhood to its seed cells only.

    Parameters
    ----------
    n_input
        Input width.
    n_output
        Output width.
    """

    def __init__(self, n_input: int, n_output: int):
        super().__init__()
        self.linear = nn.Linear(n_input, n_output, bias=False)
        self.bias = nn.Parameter(torch.zeros(n_output))

    def forward(self, x: torch.Tensor, propagation: torch.Tensor) -> torch.Tensor:
        """``propagation @ (x W) + b`` with ``propagation`` a sparse ``targets x len(x)`` tensor."""
        return sparse_matmul(propagation, self.linear(x)) + self.bias
