"""The cell graph and features scRCL trains on, and how a batch of seed cells is cut from them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from atlasclust.nn._gcn import sparse_tensor
from atlasclust.pp._graphs import gcn_normalize


def smooth(propagation: sp.csr_matrix, features: np.ndarray, steps: int) -> np.ndarray:
    """``propagation^steps @ features`` (scRCL's optional feature smoothing, ``tms``)."""
    for _ in range(steps):
        features = np.asarray(propagation @ features, dtype=np.float32)
    return features


@dataclass
class CellGraphData:
    """Host-side inputs of one dataset, shared by all batches.

    Attributes
    ----------
    adjacency
        Binary symmetric cell graph ``A`` without self loops.
    mlp_features
        Input of the MLP view (``cells x genes``, float32).
    propagated_features
        ``Â @ X1``: the GCN's first propagation, done once so that a batch needs only the one-hop
        neighbourhood of its seeds for an exact two-layer GCN.
    propagation
        ``Â = D^-1/2 (A + I) D^-1/2``.
    """

    adjacency: sp.csr_matrix
    mlp_features: np.ndarray
    propagated_features: np.ndarray
    propagation: sp.csr_matrix

    @classmethod
    def build(cls, adjacency: sp.csr_matrix, features: np.ndarray, *, smoothing: tuple[int, int] = (0, 0)):
        """Graph data from the cell graph and the transformed expression (``smoothing``: Â powers of both views)."""
        propagation = gcn_normalize(adjacency)
        mlp_features = smooth(propagation, features, smoothing[0])
        propagated = smooth(propagation, features, smoothing[1] + 1)
        return cls(adjacency, np.ascontiguousarray(mlp_features, dtype=np.float32), propagated, propagation)

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return self.adjacency.shape[0]

    @property
    def n_target_entries(self) -> int:
        """``nnz(A + I)``."""
        return int(self.adjacency.nnz + self.n_cells)

    @property
    def degree(self) -> np.ndarray:
        """Degree of each cell in ``A``."""
        return np.diff(self.adjacency.indptr)

    def batch(self, seeds: np.ndarray, device: torch.device | str) -> dict[str, torch.Tensor]:
        """Tensors for ``seeds`` and their one-hop neighbourhood, on ``device``.

        Returns ``mlp_features`` and ``propagated_features`` of the nodes (seeds first, then the
        other neighbours), ``propagation`` (sparse ``seeds x nodes`` rows of Â), ``pairs`` (the
        sparse binary ``nodes x seeds`` block of ``A + I``), ``node_degree`` and ``nodes`` (cell indices).
        """
        seeds = np.asarray(seeds, dtype=np.int64)
        rows = self.propagation[seeds]
        neighbours = np.unique(rows.indices)
        nodes = np.concatenate([seeds, np.setdiff1d(neighbours, seeds, assume_unique=True)])
        order = np.argsort(nodes, kind="stable")
        columns = order[np.searchsorted(nodes[order], rows.indices)]
        propagation = sp.csr_matrix((rows.data, columns, rows.indptr), shape=(len(seeds), len(nodes)))
        pairs = propagation.T.tocsr()
        pairs.data[:] = 1

        def to_device(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True)

        return {
            "mlp_features": to_device(self.mlp_features[nodes]),
            "propagated_features": to_device(self.propagated_features[nodes]),
            "propagation": sparse_tensor(propagation, device=device),
            "pairs": sparse_tensor(pairs, device=device),
            "node_degree": to_device(self.degree[nodes].astype(np.float32)),
            "nodes": to_device(nodes),
        }
