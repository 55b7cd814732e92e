"""Cells of an annbatch collection: stacked shards, annbatch's chunk settings, the data module, training from it.

The annbatch tests need Python 3.12+ with ``atlasclust[annbatch]`` (CI's newest stack installs it);
on the floor only what needs no annbatch runs.
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scvi
import torch
from helpers import FAST_MODEL, FAST_TRAIN
from scvi import REGISTRY_KEYS
from sklearn.metrics import adjusted_rand_score

from atlasclust.data import StackedRows, loader_chunks, sparse_batches
from atlasclust.datasets import simulate


@pytest.mark.parametrize("batch_size", [1, 128, 256, 300, 4096, 16_384, 20_000])
def test_loader_chunks_fit_annbatch_rules(batch_size):
    chunk_size, preload_nchunks = loader_chunks(batch_size)
    preloaded = chunk_size * preload_nchunks
    assert preloaded % batch_size == 0  # annbatch refuses anything else
    assert preloaded >= max(batch_size, 16_384)
    assert 1 <= chunk_size <= 1024


def test_stacked_rows_read_across_parts():
    rng = np.random.default_rng(0)
    parts = [sp.random(n, 7, density=0.3, format="csr", random_state=rng) for n in (5, 1, 9)]
    whole = sp.vstack(parts, format="csr").toarray()
    stacked = StackedRows(parts)
    assert stacked.shape == (15, 7)
    np.testing.assert_array_equal(stacked[3:12].toarray(), whole[3:12])
    np.testing.assert_array_equal(stacked[0:15].toarray(), whole)
    rows = np.array([0, 4, 5, 7, 8, 14])
    np.testing.assert_array_equal(stacked.take(rows).toarray(), whole[rows])
    with pytest.raises(TypeError, match="contiguous row slices"):
        stacked[::2]


# ------------------------------------------------------------------------------------ with annbatch
@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A simulated AnnData with donors and the annbatch collection written from it (several shards)."""
    annbatch = pytest.importorskip("annbatch")  # Python 3.12+ with atlasclust[annbatch]
    folder = tmp_path_factory.mktemp("collection")
    adata = simulate(n_cells=900, n_genes=300, n_groups=4, random_state=3)
    adata.obs_names = [f"cell{i}" for i in range(adata.n_obs)]
    adata.obs["donor"] = pd.Categorical(np.where(np.arange(adata.n_obs) % 3 == 0, "d1", "d2"))
    adata.write_h5ad(folder / "cells.h5ad")
    collection = annbatch.DatasetCollection(folder / "cells.zarr").add_adatas(
        [folder / "cells.h5ad"], rng=np.random.default_rng(0), dataset_size=300, shuffle_chunk_size=50
    )
    return adata, collection, folder / "cells.zarr"


def test_collection_reads_every_cell_once_in_order(written):
    from atlasclust.data import Collection

    adata, collection, _ = written
    cells = Collection(collection)
    assert len(cells.shards) > 1  # the stacking across shards is exercised
    assert cells.n_obs == adata.n_obs
    assert list(cells.var_names) == list(adata.var_names)
    assert sorted(cells.obs_names) == sorted(adata.obs_names)  # shuffled on writing, each cell once
    expected = adata[cells.obs_names].X.toarray()
    np.testing.assert_array_equal(cells.counts[0 : cells.n_obs].toarray(), expected)
    sample = cells.rows(np.array([0, 5, 899]))
    np.testing.assert_array_equal(sample.X.toarray(), expected[[0, 5, 899]])
    assert list(sample.obs_names) == list(cells.obs_names[[0, 5, 899]])
    assert cells.as_anndata().X is None  # results only: the counts stay on disk
    from_path = Collection(str(written[2]))  # a path opens the same collection
    assert list(from_path.obs_names) == list(cells.obs_names)


def test_collection_refuses_what_it_cannot_read(written, tmp_path):
    from atlasclust.data import Collection

    with pytest.raises(TypeError, match="annbatch.DatasetCollection or its path"):
        Collection(written[0])
    import annbatch

    with pytest.raises(ValueError, match="holds no cells"):
        Collection(annbatch.DatasetCollection(tmp_path / "empty.zarr"))


def test_data_module_gives_the_batches_bgformer_reads(written):
    from atlasclust.data import Collection

    adata, collection, _ = written
    cells = Collection(collection)
    codes = np.arange(cells.n_obs) % 2
    module = cells.data_module(batch_size=128, batch_codes=codes, seed=0)
    seen = []
    for batch in module.train_dataloader():
        with sparse_batches():  # as in training: torch's notice that sparse CSR tensors are in beta stays quiet
            tensors = module.on_before_batch_transfer(batch, 0)
        rows = tensors[REGISTRY_KEYS.INDICES_KEY][:, 0].numpy()
        counts = tensors[REGISTRY_KEYS.X_KEY]
        assert counts.layout == torch.sparse_csr  # sparse, as scvi-tools' loaders give with load_sparse_tensor
        np.testing.assert_array_equal(
            counts.to_dense().numpy(), cells.counts.take(np.sort(rows))[np.argsort(np.argsort(rows))].toarray()
        )
        np.testing.assert_array_equal(tensors[REGISTRY_KEYS.BATCH_KEY][:, 0].numpy(), codes[rows])
        seen.append(rows)
    seen = np.concatenate(seen)
    assert np.array_equal(np.sort(seen), np.arange(cells.n_obs))  # one epoch: every cell once
    assert not np.array_equal(seen, np.arange(cells.n_obs))  # shuffled


def test_data_module_order_follows_the_seed(written):
    from atlasclust.data import Collection

    cells = Collection(written[1])

    def orders(seed: int) -> list[np.ndarray]:
        module = cells.data_module(batch_size=128, batch_codes=None, seed=seed)
        return [np.concatenate([np.asarray(batch["index"]) for batch in module.train_dataloader()]) for _ in range(2)]

    first, again, other = orders(0), orders(0), orders(1)
    np.testing.assert_array_equal(first, again)  # the same seed, the same two epochs
    assert not np.array_equal(first[0], first[1])  # each epoch shuffled anew
    assert not np.array_equal(first[0], other[0])


@pytest.fixture(scope="module")
def trained(written):
    from atlasclust.bgformer import BGFormer

    _, collection, _ = written
    scvi.settings.seed = 0  # the network's initial weights; the loader's shuffling follows random_state
    model = BGFormer.from_collection(collection, 4, batch_key="donor", **FAST_MODEL)
    model.train(**FAST_TRAIN | {"max_epochs": 8})
    return model


def test_bgformer_trains_from_a_collection(written, trained):
    adata, *_ = written
    cells = trained._collection
    assert trained.summary_stats.n_batch == 2
    # the scaling was learned from every cell of the collection, not from the model's sample of them
    assert trained.adata.n_obs == cells.n_obs  # at most 50,000 cells: the sample is all of them
    labels = trained.predict()
    assert labels.shape == (cells.n_obs,)
    truth = adata.obs.loc[cells.obs_names, "cell_type"]
    # four simulated groups, well apart; with BGFormer's deviance genes the small model reaches 0.815 here
    assert adjusted_rand_score(truth, labels) > 0.7
    # shard by shard gives what the same cells in memory give
    in_memory = adata[cells.obs_names].copy()
    np.testing.assert_allclose(
        trained.get_latent_representation(), trained.get_latent_representation(in_memory), rtol=1e-4, atol=1e-4
    )
    soft = trained.predict(soft=True)
    assert list(soft.index) == list(cells.obs_names)
    with pytest.raises(ValueError, match="indices= selects cells of an AnnData"):
        trained.predict(indices=[0, 1])
    # attention, per cell and as group means pooled across shards
    np.testing.assert_allclose(trained.get_attention(), trained.get_attention(in_memory), rtol=1e-4, atol=1e-5)
    donors = in_memory.obs["donor"].astype(str).to_numpy()
    pooled, whole = trained.get_attention(groups=donors), trained.get_attention(in_memory, groups=donors)
    assert sorted(pooled) == sorted(whole) == ["d1", "d2"]
    for donor in pooled:
        np.testing.assert_allclose(pooled[donor], whole[donor], rtol=1e-4, atol=1e-6)


def test_collection_summary_matches_one_pass_over_the_same_cells(written, trained):
    adata, *_ = written
    cells = trained._collection
    per_shard = trained.summarize()
    whole = trained.summarize(adata[cells.obs_names].copy())
    for name in ("latent", "soft", "attention", "anchor_usage", "anchors"):
        np.testing.assert_allclose(per_shard[name], whole[name], rtol=1e-4, atol=1e-4, err_msg=name)


def test_collection_refuses_options_that_do_not_apply(written):
    from atlasclust.bgformer import BGFormer

    model = BGFormer.from_collection(written[1], 4, **FAST_MODEL)
    with pytest.raises(ValueError, match="num_workers: not for a collection"):
        model.train(num_workers=2, **FAST_TRAIN)
    with pytest.raises(ValueError, match="leaves one cell in the last batch"):
        model.train(**FAST_TRAIN | {"batch_size": 899})
    assert not model.is_trained_


def test_tl_bgformer_returns_the_collection_cells_with_results(written):
    import atlasclust as ac

    adata, collection, _ = written
    result, model = ac.tl.bgformer(collection, 4, random_state=1, return_model=True, **FAST_MODEL, **FAST_TRAIN)
    assert isinstance(result, ad.AnnData) and result.X is None
    assert sorted(result.obs_names) == sorted(adata.obs_names)
    assert result.obs["donor"].equals(adata.obs.loc[result.obs_names, "donor"].astype(result.obs["donor"].dtype))
    assert result.obsm["X_bgformer"].shape == (adata.n_obs, FAST_MODEL["n_latent"])
    assert result.obs["bgformer"].dtype == "category"
    # what the model trained from the collection gives, in the collection's order
    np.testing.assert_array_equal(result.obs["bgformer"].astype(int), model.predict())
    np.testing.assert_allclose(result.obsm["X_bgformer"], model.get_latent_representation(), rtol=1e-5, atol=1e-5)
    assert len(result.uns["bgformer"]["genes"]) == FAST_MODEL["n_top_genes"]
    with pytest.raises(ValueError, match="layer= does not apply"):
        ac.tl.bgformer(collection, 4, layer="counts")
    with pytest.raises(TypeError, match="tl.scrcl takes an AnnData"):
        ac.tl.scrcl(collection, 4)
