import numpy as np
import pytest

from atlasclust.metrics import clustering_accuracy, evaluate


def test_perfect_clustering_with_renamed_clusters_scores_one():
    truth = np.array(["a", "a", "b", "b", "c", "c"])
    scores = evaluate(truth, np.array([2, 2, 0, 0, 1, 1]))
    assert scores == pytest.approx({"ACC": 1.0, "NMI": 1.0, "ARI": 1.0})


def test_accuracy_uses_best_one_to_one_matching():
    truth = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([1, 1, 0, 0, 0, 0])
    # best matching: pred 1 -> 0 (2 right), pred 0 -> 1 (3 right)
    assert clustering_accuracy(truth, pred) == pytest.approx(5 / 6)


def test_more_clusters_than_labels_counts_unmatched_as_wrong():
    truth = np.array([0, 0, 1, 1])
    assert clustering_accuracy(truth, np.array([0, 1, 2, 3])) == pytest.approx(0.5)


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="entries"):
        evaluate([0, 1], [0, 1, 1])
