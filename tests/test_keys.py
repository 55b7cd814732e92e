import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt

import atlasclust as ac
from atlasclust._keys import derived_keys, embedding_key, markers_key, neighbors_key, umap_key


def test_key_names_follow_key_added():
    assert embedding_key("bg") == "X_bg" and umap_key("bg") == "X_bg_umap"
    assert neighbors_key("bg") == "bg_neighbors" and markers_key("bg") == "rank_genes_groups_bg"


def test_a_new_run_makes_every_derived_key_stale(clustered):
    adata, _ = clustered
    adata = adata.copy()
    ac.pl.embedding(adata, show=False)
    ac.pl.marker_dotplot(adata, show=False)
    plt.close("all")
    derived = derived_keys("bgformer")
    for slot, names in derived.items():
        assert set(names) <= set(getattr(adata, slot)), slot  # every key the helpers wrote is listed
    ac.tl.bgformer(adata, 4, n_top_genes=150, n_latent=16, n_anchors=8, max_epochs=2, enable_progress_bar=False)
    for slot, names in derived.items():
        assert not set(names) & set(getattr(adata, slot)), slot
