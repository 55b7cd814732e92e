"""BGFormer as a scvi-tools model: setup, training phases, inference, save and load."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata.abc import CSCDataset, CSRDataset
from scvi import REGISTRY_KEYS
from scvi.data.fields import LayerField

from atlasclust._constants import BGFORMER_CENTER_INIT, BGFORMER_GENE_FLAVOR, CENTER_INITS, DEFAULT_N_TOP_GENES
from atlasclust._constants import BGFORMER_RESOLUTION as DEFAULT_RESOLUTION
from atlasclust._docs import doc_params
from atlasclust._validate import check_choice, check_non_negative, check_positive
from atlasclust.data import (
    Collection,
    DeviceRows,
    as_sparse_matrix,
    check_batch_column,
    check_same_genes,
    counts_matrix,
    saved_batches,
    training_view,
)
from atlasclust.train import ClusteringModel, quiet_scvi

from ._defaults import init_cells
from ._fit import BGFormerFitMixin
from ._inference import BGFormerInferenceMixin
from ._module import BGFormerModule
from ._training import BGFormerTrainingPlan


@doc_params()
class BGFormer(BGFormerFitMixin, BGFormerInferenceMixin, ClusteringModel):
    """BGFormer: bipartite cell-anchor attention clustering :cite:p:`Liang2026`.

    Cells attend to a small set of learnable anchor tokens instead of to each other, so training
    is linear in the number of cells. Anchors are learned by ZINB reconstruction of the counts
    through a nearest-anchor codebook; the embedding is learned by denoising ZINB reconstruction;
    clusters come from a DEC head whose centres are initialised, after a first training phase,
    from the learned embedding: as ``center_init`` says with ``n_clusters`` given (k-means or merged
    k-means), by Leiden with ``n_clusters=None``.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata` (raw counts, in memory or backed).
    n_clusters
        Number of clusters; ``None`` finds it by Leiden on the embedding after pre-training.
    {doc_model_genes}
    n_latent
        Width of the embedding, the anchors and the attention.
    n_anchors
        Number of anchor tokens.
    n_heads
        Number of attention heads.
    n_ffn
        Width of the transformer's feed-forward block.
    dropout
        Dropout in the transformer layer.
    input_noise
        Std of the noise added to the scaled input for the self-supervised reconstruction.
    anchor_refresh
        Re-seed dead and over-used anchors during training, as in the reference.
    dec_weight
        Weight of the DEC loss in the clustering phase (paper: 1; the reference code in effect
        1e-4). At 1 the DEC phase moved cells away from the cell types on most datasets of the
        accuracy benchmark; 0.1 keeps the sharpening without that. On weakly separated groups
        the DEC phase can still lose or collapse the clusters it starts from; a lighter weight
        keeps closer to them (see :doc:`/accuracy`).
    anchor_weight
        Weight of the anchor losses (reconstruction and commitment).
    resolution
        Leiden resolution when ``n_clusters`` is ``None``.
    center_init
        How the DEC centres start when ``n_clusters`` is given: ``"kmeans"``, k-means with
        ``n_clusters``, which tends to cut large cell types in two; ``"merged"``, k-means with
        twice as many clusters whose closest sub-clusters are then joined (Ward linkage of their
        centres), which keeps large types whole but can join small distinct ones; or
        ``"auto"``, whichever of the two has the higher modularity on the kNN graph of the
        embedding (no labels; it picks the better of the two on about half the datasets where
        they differ, see :doc:`/accuracy`); its kNN graph of at most 50,000 cells adds 10 to 45 s
        on two CPU cores (:doc:`/scaling`). The start used is in ``center_start_``.
    {doc_registry}

    Examples
    --------
    >>> BGFormer.setup_anndata(adata, layer="counts")
    >>> model = BGFormer(adata, n_clusters=8)
    >>> model.train()
    >>> adata.obsm["X_bgformer"] = model.get_latent_representation()
    >>> adata.obs["bgformer"] = model.predict().astype(str)
    """

    _module_cls = BGFormerModule
    _training_plan_cls = BGFormerTrainingPlan
    method_name = "BGFormer"
    gene_flavor = BGFORMER_GENE_FLAVOR

    def __init__(
        self,
        adata: ad.AnnData | None = None,
        n_clusters: int | None = None,
        *,
        mask_var: np.ndarray | str | None = None,
        n_top_genes: int | None = DEFAULT_N_TOP_GENES,
        n_latent: int = 128,
        n_anchors: int = 64,
        n_heads: int = 4,
        n_ffn: int = 512,
        dropout: float = 0.1,
        input_noise: float = 1.0,
        anchor_refresh: bool = True,
        dec_weight: float = 0.1,
        anchor_weight: float = 1.0,
        resolution: float = DEFAULT_RESOLUTION,
        center_init: str = BGFORMER_CENTER_INIT,
        registry: dict | None = None,
    ):
        super().__init__(adata, registry)
        n_vars = self.summary_stats.n_vars
        n_batch = int(self.summary_stats.get("n_batch", 0))
        # the mask array is what the saved parameters keep
        mask_var, n_genes = self._init_clustering(n_clusters, resolution, mask_var, n_top_genes)
        check_non_negative(dec_weight=dec_weight, anchor_weight=anchor_weight, input_noise=input_noise)
        check_positive(n_latent=n_latent, n_anchors=n_anchors, n_heads=n_heads, n_ffn=n_ffn)
        check_choice("center_init", center_init, CENTER_INITS)
        self.center_init = center_init
        self._module_options = {
            "n_latent": n_latent,
            "n_anchors": n_anchors,
            "n_heads": n_heads,
            "n_ffn": n_ffn,
            "dropout": dropout,
            "input_noise": input_noise,
            "anchor_refresh": anchor_refresh,
            "dec_weight": dec_weight,
            "anchor_weight": anchor_weight,
            "n_batch": n_batch if n_batch > 1 else 0,
        }
        self.module = self._new_module(n_genes)
        self.is_prepared_ = False
        self.n_clusters_: int | None = None
        #: how the DEC centres started: ``{"start": ...}`` and, with ``center_init="auto"``, each candidate's modularity
        self.center_start_: dict | None = None
        # the training copy of the counts on the device, kept for inference (no trailing "_": not saved)
        self._device_rows: DeviceRows | None = None
        # the annbatch collection trained from (see from_collection); None: the AnnData is the training data
        self._collection: Collection | None = None
        self._model_summary_string = (
            f"BGFormer with n_latent={n_latent}, n_anchors={n_anchors}, n_heads={n_heads}, "
            f"n_top_genes={n_top_genes}, n_clusters={n_clusters}, n_batch={n_batch}"
        )
        self.init_params_ = self._get_init_params(locals())

    def _new_module(self, n_genes: int) -> BGFormerModule:
        return BGFormerModule(self.adata.n_vars, n_genes, **self._module_options)

    # ------------------------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(cls, adata: ad.AnnData, layer: str | None = None, batch_key: str | None = None, **kwargs) -> None:
        """Register ``adata`` (raw counts in ``X`` or ``layers[layer]``) with scvi-tools.

        Like every scvi-tools model this adds registration keys to ``adata`` (and an
        ``obs["_indices"]`` column holding each cell's row), and counts held in a scipy sparse
        array (``csr_array``) are replaced by the sparse matrix scvi-tools' data loaders read (same
        data, not copied). :func:`atlasclust.tl.bgformer` registers a light view instead, so it
        leaves the user's object untouched.

        Parameters
        ----------
        adata
            AnnData with raw counts, in memory or opened with ``backed="r"``.
        layer
            Layer holding the raw counts; ``None`` uses ``X``.
        batch_key
            ``obs`` column naming each cell's batch (sample, donor, technology). Each cell's input
            is then centred within its batch and the ZINB decoders are conditioned on it, as scVI's
            are, so the embedding need not carry the batch.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        counts = counts_matrix(adata, layer)  # fail early with a clear message when the layer is missing
        readable = as_sparse_matrix(counts)
        if readable is not counts:  # a sparse array: the sparse matrix scvi-tools reads, same data
            if layer is None:
                adata.X = readable
            else:
                adata.layers[layer] = readable
        if batch_key is not None:
            check_batch_column(adata, batch_key)
        # counts are validated by our own streaming pass, with a clearer message; scvi-tools' own check
        # (is_count_data) raises "data type not understood" on scipy sparse arrays (csr_array)
        counts = LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=False)
        cls._register(adata, setup_method_args, fields=[counts], batch_key=batch_key, **kwargs)

    @classmethod
    def from_collection(
        cls, collection, n_clusters: int | None = None, *, batch_key: str | None = None, **kwargs
    ) -> BGFormer:
        """A model that trains on the cells of an `annbatch <https://annbatch.readthedocs.io>`_ collection.

        Training reads shuffled batches from disk through scvi-tools'
        :class:`~scvi.dataloaders.AnnbatchDataModule`; the genes and the input scaling come from one
        pass over every cell, the anchors and the DEC centres from a random sample of at most
        50,000 cells, which is the model's :attr:`adata` (in memory, registered as usual).
        :meth:`get_latent_representation`, :meth:`predict` and :meth:`summarize` read every cell of
        the collection by default, shard by shard. Needs ``atlasclust[annbatch]`` (Python 3.12+).

        Parameters
        ----------
        collection
            An :class:`annbatch.DatasetCollection`, its path, or an :class:`atlasclust.data.Collection`.
        n_clusters
            Number of clusters, as for :class:`BGFormer`.
        batch_key
            ``obs`` column of the collection naming each cell's batch (see :meth:`setup_anndata`).
        **kwargs
            The options of :class:`BGFormer`.
        """
        cells = collection if isinstance(collection, Collection) else Collection(collection)
        # fixed seed: the same collection always gives the same sample
        sample = cells.rows(init_cells(cells.n_obs, np.random.default_rng(0)))
        if batch_key is not None:  # every batch of the collection, also those the sample misses
            check_batch_column(ad.AnnData(obs=cells.obs), batch_key)
            everywhere = cells.obs[batch_key].astype("category").cat.categories
            sample.obs[batch_key] = pd.Categorical(sample.obs[batch_key], categories=everywhere)
        cls.setup_anndata(sample, batch_key=batch_key)
        model = cls(sample, n_clusters, **kwargs)
        model._collection = cells
        return model

    @property
    def _layer(self) -> str | None:
        return self.registry_["setup_args"]["layer"]

    @property
    def _batch_key(self) -> str | None:
        return self.registry_["setup_args"].get("batch_key")  # models saved before batch_key have none

    def _is_sparse(self, adata: ad.AnnData | None = None) -> bool:
        """Whether the registered counts are sparse (in memory or backed): batches then travel sparse."""
        matrix = counts_matrix(self.adata if adata is None else adata, self._layer)
        return sp.issparse(matrix) or isinstance(matrix, CSRDataset | CSCDataset)

    def _as_registered(self, adata: ad.AnnData | None) -> ad.AnnData:
        """The registered AnnData for ``adata``: a checked, registered view of a user's object."""
        if adata is None:
            return self.adata
        if self.get_anndata_manager(adata) is not None:
            return adata
        check_same_genes(self.adata.var_names, adata)
        view = training_view(adata, self._layer, obs_keys=(self._batch_key,))
        if self._batch_key is not None:
            check_batch_column(view, self._batch_key, known=saved_batches(self.registry_))
        with quiet_scvi():  # scvi-tools would say at info level that it transfers the setup
            return self._validate_anndata(view)

    # ------------------------------------------------------------------------------------ save / load
