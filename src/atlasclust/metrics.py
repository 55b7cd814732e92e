"""Clustering scores against known labels: for benchmarks and the demo, never inside a method."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix


def clustering_accuracy(labels_true: Sequence, labels_pred: Sequence) -> float:
    """Accuracy after the best one-to-one matching of clusters to labels (Hungarian algorithm).

    Clusters left without a label (more clusters than labels) count as wrong.
    """
    table = contingency_matrix(np.asarray(labels_true), np.asarray(labels_pred))
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def evaluate(labels_true: Sequence, labels_pred: Sequence) -> dict[str, float]:
    """ACC (Hungarian-matched), NMI (arithmetic) and ARI of a clustering.

    Parameters
    ----------
    labels_true
        Known cell types.
    labels_pred
        Predicted clusters.

    Returns
    -------
    ``{"ACC": …, "NMI": …, "ARI": …}``.
    """
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    if labels_true.shape != labels_pred.shape:
        msg = f"labels_true has {labels_true.shape} entries, labels_pred {labels_pred.shape}."
        raise ValueError(msg)
    return {
        "ACC": clustering_accuracy(labels_true, labels_pred),
        "NMI": float(normalized_mutual_info_score(labels_true, labels_pred, average_method="arithmetic")),
        "ARI": float(adjusted_rand_score(labels_true, labels_pred)),
    }
