import numpy as np

import atlasclust as ac


def test_history_holds_scrcls_own_losses_and_no_empty_reconstruction_terms():
    adata = ac.datasets.simulate(200, 80, 3, random_state=0)
    ac.tl.scrcl(adata, 3, max_epochs=3, enable_progress_bar=False)
    history = adata.uns["scrcl"]["history"]
    assert list(history.columns) == ["train_loss", "hea_train", "ndc_train", "cvc_train"]
    assert (history.to_numpy() > 0).all()  # a loss plot of these columns (logy=True) has no empty panel
    total = history["hea_train"] + 100.0 * history["ndc_train"] + 1.0 * history["cvc_train"]  # alpha=100, beta=1
    np.testing.assert_allclose(history["train_loss"], total, rtol=1e-5)
