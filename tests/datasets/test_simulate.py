import numpy as np
import pytest

import atlasclust as ac


def test_simulate_gives_reproducible_labelled_counts():
    first = ac.datasets.simulate(300, 100, 3, n_markers=10, random_state=1)
    second = ac.datasets.simulate(300, 100, 3, n_markers=10, random_state=1)
    assert (first.X != second.X).nnz == 0
    assert first.obs["cell_type"].nunique() == 3
    assert (np.asarray(first.X.sum(axis=1)) > 0).all() and (np.asarray(first.X.sum(axis=0)) > 0).all()
    # markers of type_0 are higher in type_0 cells
    is_zero = (first.obs["cell_type"] == "type_0").to_numpy()
    markers = first.X[:, :10].toarray()
    assert markers[is_zero].mean() > 2 * markers[~is_zero].mean()


def test_simulate_rejects_too_few_genes_for_markers():
    with pytest.raises(ValueError, match="n_genes"):
        ac.datasets.simulate(100, 10, 3, n_markers=5)


def test_simulate_tissue_has_layers_on_a_grid():
    tissue = ac.datasets.simulate_tissue(12, 10, 3, 100, random_state=0)
    assert tissue.shape == (120, 100)
    assert tissue.obsm["spatial"].shape == (120, 2)
    assert list(tissue.obs["layer"].cat.categories) == ["layer_0", "layer_1", "layer_2"]
    # layers are bands along the rows: the mean row of each layer increases
    rows = tissue.obsm["spatial"][:, 1]
    means = [rows[tissue.obs["layer"] == name].mean() for name in tissue.obs["layer"].cat.categories]
    assert means == sorted(means)
    assert (np.asarray(tissue.X.sum(axis=1)).ravel() > 0).all()
