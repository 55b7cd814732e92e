import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from atlasclust._assign import cluster_centers, merged_kmeans_labels


def _one_large_and_three_small_groups():
    """A wide group of 2,000 points and, far from it, three tight groups of 40 close to each other."""
    rng = np.random.default_rng(0)
    large = rng.normal(0.0, 3.0, size=(2000, 2))
    small = [rng.normal(centre, 0.3, size=(40, 2)) for centre in ([30.0, 0.0], [30.0, 12.0], [42.0, 0.0])]
    points = np.vstack([large, *small])
    groups = np.repeat(np.arange(4), [2000, 40, 40, 40])
    return points, groups


def test_merged_kmeans_keeps_a_large_group_whole_where_kmeans_splits_it():
    points, groups = _one_large_and_three_small_groups()
    plain = KMeans(4, n_init=10, random_state=0).fit_predict(points)
    merged = merged_kmeans_labels(points, 4, random_state=0)
    # k-means cuts the wide group rather than join two small ones
    assert adjusted_rand_score(groups, plain) < 0.9
    assert adjusted_rand_score(groups, merged) == 1.0


def test_merged_centres_are_the_means_of_the_merged_groups():
    points, groups = _one_large_and_three_small_groups()
    centres = cluster_centers(points, 4, resolution=1.0, random_state=0, merge=True)
    expected = np.stack([points[groups == g].mean(axis=0) for g in range(4)])
    # same centres, in whatever order the clustering numbered them
    order = [int(np.argmin(np.linalg.norm(centres - e, axis=1))) for e in expected]
    assert sorted(order) == [0, 1, 2, 3]
    np.testing.assert_allclose(centres[order], expected, rtol=1e-6)


def test_merged_kmeans_with_fewer_distinct_rows_than_sub_clusters():
    points = np.repeat(np.eye(3), 5, axis=0)  # three distinct rows: no room to split finer
    labels = merged_kmeans_labels(points, 3, random_state=0)
    assert adjusted_rand_score(np.repeat(np.arange(3), 5), labels) == 1.0
