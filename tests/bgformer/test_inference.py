import numpy as np
import scipy.sparse as sp
import scvi
from helpers import FAST_MODEL as MODEL
from helpers import FAST_TRAIN as TRAIN

import atlasclust as ac
from atlasclust.models import BGFormer


def test_predict_on_cells_never_seen_in_training():
    adata = ac.datasets.simulate(700, 200, 4, n_markers=25, random_state=5)
    train, held_out = adata[:550].copy(), adata[550:].copy()
    scvi.settings.seed = 0
    BGFormer.setup_anndata(train)
    model = BGFormer(train, 4, **MODEL)
    model.train(**TRAIN)
    labels = model.predict(held_out)
    soft = model.predict(held_out, soft=True)
    assert labels.shape == (150,)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-5)
    assert list(soft.index) == list(held_out.obs_names)
    np.testing.assert_array_equal(soft.to_numpy().argmax(axis=1), labels)
    # 0.89: the 150 genes BGFormer's deviance ranking keeps hold about 85 of the 100 simulated markers
    assert ac.metrics.evaluate(held_out.obs["cell_type"], labels)["ARI"] > 0.8
    # the same cells give the same labels whether or not they come with others
    np.testing.assert_array_equal(model.predict(held_out[:40].copy()), labels[:40])


def test_attention_per_cell_and_per_group(clustered):
    adata, model = clustered
    weights = model.get_attention(indices=np.arange(50))
    assert weights.shape == (50, 4, 16)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    groups = adata.obs["cell_type"].to_numpy()[:50]
    means = model.get_attention(indices=np.arange(50), groups=groups)
    for name, mean in means.items():
        np.testing.assert_allclose(mean, weights[groups == name].mean(axis=0), rtol=1e-5)


def test_sparse_counts_are_densified_on_the_host_for_inference_on_the_cpu(clustered):
    adata, model = clustered
    assert sp.issparse(adata.X)
    asked = []
    make_loader = model._make_data_loader
    model._make_data_loader = lambda *args, **kwargs: (
        asked.append(kwargs["load_sparse_tensor"]) or make_loader(*args, **kwargs)
    )
    try:
        latent = model.get_latent_representation()
    finally:
        del model._make_data_loader  # the class's method again (a session-wide fixture)
    assert asked == [False]  # scipy densifies on the CPU several times faster than torch's sparse tensors
    dense = adata.copy()
    dense.X = dense.X.toarray()
    np.testing.assert_array_equal(model.get_latent_representation(dense), latent)
