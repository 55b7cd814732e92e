"""The cell graph and features scRCL trains on, and how a batch of seed cells is cut from them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from atlasclust.data import gcn_normalize
from atlasclust.nn import sparse_tensor

#: rows of ``propagation @ features`` computed at a time, so no product of all rows is formed beside its output
SMOOTHING_CHUNK_ROWS = 16_384


def smooth(propagation: sp.csr_matrix, features: np.ndarray, powers: tuple[int, ...]) -> list[np.ndarray]:
    """``propagation^p @ features`` for each ``p`` in ``powers`` (scRCL's feature smoothing, ``tms``).

    The powers come from one chain of products written into reused buffers, so feature matrices of
    all cells are held only for the powers asked for and the two last steps: two for the spatial
    default (10 and 9). ``features`` (float32) is overwritten unless power 0 is asked for, in which
    case it is returned as it is; equal powers share one array.
    """
    kept: dict[int, np.ndarray] = {}
    current = features
    if 0 in powers:
        kept[0] = current
    spare = None  # a buffer whose content is no longer needed
    for step in range(1, max(powers, default=0) + 1):
        out = spare if spare is not None else np.empty_like(current)
        for start in range(0, len(out), SMOOTHING_CHUNK_ROWS):
            rows = slice(start, start + SMOOTHING_CHUNK_ROWS)
            out[rows] = propagation[rows] @ current
        spare = None if step - 1 in kept else current
        current = out
        if step in powers:
            kept[step] = current
    return [kept[power] for power in powers]


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
        ``Â``, the normalised ``A + I`` (see :func:`~atlasclust.data.gcn_normalize`).
    negative_weight
        Each cell's weight among the other cells of the neighbourhood contrastive loss (mean 1),
        or ``None``: all alike.
    components
        The principal-component input of the views before any smoothing, when the model clusters
        it beside the embedding (``cluster_components`` with ``n_clusters``), else ``None``.
    """

    adjacency: sp.csr_matrix
    mlp_features: np.ndarray
    propagated_features: np.ndarray
    propagation: sp.csr_matrix
    negative_weight: np.ndarray | None = None
    components: np.ndarray | None = None
    #: copies of the feature matrices on a device (see :meth:`keep_on`)
    on_device: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        adjacency: sp.csr_matrix,
        features: np.ndarray,
        *,
        smoothing: tuple[int, int] = (0, 0),
        normalization: str = "symmetric",
    ):
        """Graph data from the cell graph and the transformed expression.

        ``smoothing`` gives the powers of Â applied to the inputs of both views, ``normalization``
        how Â is normalised. ``features`` is consumed: with smoothing its memory is reused.
        """
        propagation = gcn_normalize(adjacency, normalization=normalization)
        features = np.ascontiguousarray(features, dtype=np.float32)
        mlp_features, propagated = smooth(propagation, features, (smoothing[0], smoothing[1] + 1))
        return cls(adjacency, mlp_features, propagated, propagation)

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

    def feature_bytes(self, *, mlp: bool = True) -> int:
        """Bytes of the feature matrices :meth:`keep_on` would copy."""
        shared = self.mlp_features is self.propagated_features
        return self.propagated_features.nbytes + (self.mlp_features.nbytes if mlp and not shared else 0)

    def keep_on(self, device: torch.device | str, *, mlp: bool = True) -> None:
        """Copy the propagated (and, with ``mlp``, the MLP) features to ``device`` once.

        Batches for that device are then gathered there: each batch's one-hop neighbourhood holds
        about ``n_neighbors + 1`` times as many rows as it has seeds, and copying those rows from
        the host for every batch was what a GPU spent its time on.
        """
        self.release()
        propagated = torch.from_numpy(self.propagated_features).to(device)
        self.on_device["propagated_features"] = propagated
        if mlp:
            shared = self.mlp_features is self.propagated_features  # equal powers: one copy serves both
            self.on_device["mlp_features"] = propagated if shared else torch.from_numpy(self.mlp_features).to(device)

    def release(self) -> None:
        """Drop the copies made by :meth:`keep_on`."""
        self.on_device.clear()

    def batch(
        self, seeds: np.ndarray, device: torch.device | str, *, embed_only: bool = False
    ) -> dict[str, torch.Tensor]:
        """Tensors for ``seeds`` and their one-hop neighbourhood, on ``device``.

        Returns ``mlp_features`` and ``propagated_features`` of the nodes (seeds first, then the
        other neighbours), ``propagation`` (sparse ``seeds x nodes`` rows of Â), ``pairs`` (the
        sparse binary ``nodes x seeds`` block of ``A + I``), ``node_degree``, ``nodes`` (cell indices)
        and, if set, the seeds' ``negative_weight``. With ``embed_only`` (embedding cells, no loss),
        ``mlp_features`` holds the seeds' rows only and ``pairs``, ``node_degree`` and
        ``negative_weight`` are left out.
        """
        seeds = np.asarray(seeds, dtype=np.int64)
        rows = self.propagation[seeds]
        neighbours = np.unique(rows.indices)
        nodes = np.concatenate([seeds, np.setdiff1d(neighbours, seeds, assume_unique=True)])
        order = np.argsort(nodes, kind="stable")
        columns = order[np.searchsorted(nodes[order], rows.indices)]
        propagation = sp.csr_matrix((rows.data, columns, rows.indptr), shape=(len(seeds), len(nodes)))
        mlp_rows = seeds if embed_only else nodes

        def to_device(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True)

        node_index = to_device(nodes)
        out = {
            "mlp_features": self._rows("mlp_features", mlp_rows, node_index[: len(mlp_rows)], device),
            "propagated_features": self._rows("propagated_features", nodes, node_index, device),
            "propagation": sparse_tensor(propagation, device=device),
            "nodes": node_index,
        }
        if not embed_only:
            pairs = propagation.T.tocsr()
            pairs.data[:] = 1
            out |= {
                "pairs": sparse_tensor(pairs, device=device),
                "node_degree": to_device(self.degree[nodes].astype(np.float32)),
            }
            if self.negative_weight is not None:
                out["negative_weight"] = to_device(self.negative_weight[seeds])
        return out

    def _rows(self, name: str, rows: np.ndarray, index: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        """Rows of a feature matrix on ``device``: gathered there from a kept copy, or copied from the host."""
        kept = self.on_device.get(name)
        if kept is not None and kept.device == index.device:
            return kept.index_select(0, index)
        return torch.from_numpy(getattr(self, name)[rows]).to(device, non_blocking=True)
