"""scRCL as a scvi-tools model: setup, graphs, training (full batch or mini-batch), inference, save/load."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
from sklearn.neighbors import VALID_METRICS

from atlasclust._constants import (
    CENTER_INITS,
    DEFAULT_N_TOP_GENES,
    GRAPH_NORMALIZATION_CHOICES,
    INPUT_CENTERS,
    INPUT_FEATURES,
    REPRESENTATIONS,
    SCRCL_CENTER_INIT,
    SCRCL_GENE_FLAVOR,
)
from atlasclust._constants import SCRCL_RESOLUTION as DEFAULT_RESOLUTION
from atlasclust._docs import doc_params
from atlasclust._validate import check_choice, check_non_negative, check_positive
from atlasclust.data import (
    check_batch_column,
    check_coordinates,
    counts_matrix,
    saved_batches,
    training_view,
)
from atlasclust.train import ClusteringModel

from ._data import SCRCLDataMixin
from ._defaults import (
    EXPRESSION_N_NEIGHBORS,
    FULL_BATCH_MAX_CELLS,
    MNN_NEIGHBORS,
    SPATIAL_N_NEIGHBORS,
    SPATIAL_SMOOTHING,
)
from ._fit import SCRCLFitMixin
from ._graph_data import CellGraphData
from ._module import SCRCLModule
from ._training import SCRCLTrainingPlan


@doc_params()
class SCRCL(SCRCLDataMixin, SCRCLFitMixin, ClusteringModel):
    """scRCL: contrastive learning between an MLP view and a GCN view of the cell graph :cite:p:`Peng2026`.

    Both views are aligned by a heterogeneous-embedding loss and a neighbourhood contrastive
    loss, then refined through gene embeddings learned on a gene-gene graph and matched to the
    cell graph by a cross-view consistency loss. No loss forms an ``N x N`` array; above
    :data:`FULL_BATCH_MAX_CELLS` cells training goes by mini-batches of seed cells and their
    graph neighbours. Gene embeddings come from per-gene descriptors that do not depend on the
    number of cells, so the model embeds new cells.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata`.
    n_clusters
        Number of clusters, found on the L2-normalised embedding as ``center_init`` says; ``None``
        uses Leiden.
    {doc_model_genes}
    n_neighbors
        Neighbours per cell of the expression or spatial kNN graph; ``None`` gives
        :data:`EXPRESSION_N_NEIGHBORS` (10) for an expression graph and :data:`SPATIAL_N_NEIGHBORS`
        (15) with spot coordinates.
    metric
        Distance of the expression kNN graph, passed to :func:`scanpy.pp.neighbors` (the principal
        components of the scaled log expression are compared). The reference uses ``"cosine"``:
        with the accuracy benchmark's protocol (15 neighbours, 5 seeds) it lifted pollen (ARI 0.66 → 0.78) and
        worm neurons (0.48 → 0.57) but lowered Baron mouse pancreas (0.88 → 0.65) and mouse bladder
        (0.50 → 0.44), the same mean over the seven scRNA-seq datasets, so the default stays scanpy's.
    n_gene_neighbors
        Neighbours per gene (itself included) of the gene graph.
    n_hidden
        Width of both views (the reference uses 1500).
    n_refined
        Width of the gene embeddings and of each refined view; defaults to ``n_clusters`` (the
        reference's choice) or 16 when ``n_clusters`` is ``None``. The embedding has twice this width.
    n_descriptors
        Principal axes of the scaled log expression: they describe each gene to the gene encoder,
        give the expression graph and, with ``input_features="pca"``, the views' input. They are
        learned from at most :data:`PCA_FIT_MAX_CELLS` cells (a random sample above).
    dropout
        Dropout before the GCN head and the refinement projector.
    temperature
        Softmax temperature of the alignment losses.
    alpha
        Weight of the neighbourhood contrastive loss.
    beta
        Weight of the cross-view consistency loss.
    smoothing
        Powers of the normalised cell graph applied to the MLP-view and GCN-view inputs (the
        reference's ``tms``); ``(0, 0)`` keeps the MLP view graph-free. ``None`` gives
        :data:`SPATIAL_SMOOTHING` with spot coordinates and ``(0, 0)`` otherwise.
    graph_normalization
        How the GCN view (and ``smoothing``) combines a cell with its neighbours: ``"mean"``,
        ``D^-1 (A + I)``, the average of the cell and its neighbours, or ``"symmetric"``,
        ``D^-1/2 (A + I) D^-1/2``, the reference's (Kipf and Welling's) normalisation, which
        scales each cell's input by about the square root of its degree, so that on large kNN
        graphs, whose hub cells have tens of times the median degree, the GCN view separates
        cells by degree rather than by type (:doc:`/scaling`). ``"auto"`` is ``"symmetric"`` up to
        :data:`FULL_BATCH_MAX_CELLS` cells and ``"mean"`` above (:data:`GRAPH_NORMALIZATION_CHOICES`).
    resolution
        Leiden resolution when ``n_clusters`` is ``None`` (:data:`DEFAULT_RESOLUTION`, below scanpy's 1:
        Leiden at 1 cuts scRCL's embedding into several times as many clusters as cell types).
    representation
        Embedding that is returned and clustered: ``"views"``, the two views ``[E_mlp | E_gcn]``
        (``2 n_hidden`` wide, each half unit norm), or ``"refined"``, the gene-refined views
        ``[Z_mlp | Z_gcn]`` of the paper's Eq. 11 (``2 n_refined`` wide). Both are trained by
        the same losses; ``"views"`` clusters better on most of the shared datasets.
    center_init
        How the cluster centres are found when ``n_clusters`` is given (:data:`CENTER_INITS`):
        ``"kmeans"``, k-means at ``n_clusters`` (the default); ``"merged"``, k-means at twice that
        with the closest sub-clusters joined (Ward linkage of their centres), which keeps large
        cell types whole more often but can join small distinct ones; ``"auto"``, whichever of the
        two has the higher modularity on the embedding's kNN graph (of at most 50,000 cells), as
        BGFormer's default does.
        On scRCL's embedding neither alternative is at or above the best baseline on more of the
        shared datasets than ``"kmeans"`` (:doc:`/accuracy`). The choice made is in ``center_start_``.
    input_features
        What both views read: ``"pca"``, the ``n_descriptors`` principal components of the
        scaled log expression, the coordinates the expression graph is built on; ``"scaled"``,
        the counts normalised to the median library size, ``log1p``-transformed, centred on each
        gene's training mean and divided by its standard deviation (clipped at -10 and 10, as
        ``sc.pp.scale(max_value=10)`` gives); ``"log"``, the same without centring; or
        ``"counts"``, the raw counts of the selected genes, as the reference does for scRNA-seq.
        ``"auto"`` gives ``"pca"`` without spot coordinates and ``"scaled"`` with them
        (:data:`INPUT_FEATURES`, :doc:`/concepts`). The expression graph and the gene descriptors
        come from the same principal axes whatever the views read.
    input_center
        Origin of the principal-component input (``input_features="pca"``; the other inputs keep
        the mean cell): ``"balanced"``, the coordinate-wise median of the centres of k-means at
        ``n_refined`` clusters on the training cells' components, or ``"mean"``, the mean cell.
        The views end in unit-length rows and so separate cells by their direction from this
        origin: at the mean cell it lies inside the largest cell type, whose cells then point
        every way and are split into several clusters (:data:`INPUT_CENTERS`, :doc:`/accuracy`).
    balance_negatives
        With the principal-component input, weigh each cell among the other cells of the
        neighbourhood contrastive loss (the cells it is pushed away from) by ``1 /`` the size of its
        cluster in the same k-means of the training components, so that each cluster pushes alike.
        Weighed alike (``False``, and the other inputs), a type with half of the cells is spread
        over about half of the sphere and k-means cuts it (:doc:`/accuracy`).
    cluster_components
        With the principal-component input and ``n_clusters``, find the clusters on the embedding's
        unit rows and the components the views read side by side, each divided by its spread (the
        root mean squared distance of its rows from their mean), so that both weigh alike. The unit
        rows separate cells by direction, which spreads a large type and joins small ones; the
        components keep their distances. ``False`` clusters the embedding alone, as without ``n_clusters``
        (:doc:`/accuracy`).
    mnn_neighbors
        With ``library_key`` (slices, each with its own spatial graph): spots of two slices that are
        mutual nearest neighbours on the principal components, among this many per slice, are also
        joined, so that the slices' embeddings stay comparable; 0 joins no spots across slices.
    {doc_registry}
    """

    _module_cls = SCRCLModule
    _training_plan_cls = SCRCLTrainingPlan
    method_name = "scRCL"
    gene_flavor = SCRCL_GENE_FLAVOR

    def __init__(
        self,
        adata: ad.AnnData | None = None,
        n_clusters: int | None = None,
        *,
        mask_var: np.ndarray | str | None = None,
        n_top_genes: int | None = DEFAULT_N_TOP_GENES,
        n_neighbors: int | None = None,
        metric: str = "euclidean",
        n_gene_neighbors: int = 5,
        n_hidden: int = 256,
        n_refined: int | None = None,
        n_descriptors: int = 50,
        dropout: float = 0.3,
        temperature: float = 1.0,
        alpha: float = 100.0,
        beta: float = 1.0,
        smoothing: tuple[int, int] | None = None,
        graph_normalization: str = "auto",
        resolution: float = DEFAULT_RESOLUTION,
        representation: str = "views",
        center_init: str = SCRCL_CENTER_INIT,
        input_features: str = "auto",
        input_center: str = "balanced",
        balance_negatives: bool = True,
        cluster_components: bool = True,
        mnn_neighbors: int = MNN_NEIGHBORS,
        registry: dict | None = None,
    ):
        super().__init__(adata, registry)
        n_vars = self.adata.n_vars
        n_obs = self.adata.n_obs
        # the mask array is what the saved parameters keep
        mask_var, n_input = self._init_clustering(n_clusters, resolution, mask_var, n_top_genes)
        check_non_negative(alpha=alpha, beta=beta)
        check_positive(temperature=temperature, n_hidden=n_hidden, n_descriptors=n_descriptors)
        if n_refined is not None:
            check_positive(n_refined=n_refined)
        check_choice("representation", representation, REPRESENTATIONS)
        check_choice("center_init", center_init, CENTER_INITS)
        check_choice("input_features", input_features, INPUT_FEATURES)
        check_choice("input_center", input_center, INPUT_CENTERS)
        check_choice("graph_normalization", graph_normalization, GRAPH_NORMALIZATION_CHOICES)
        if metric not in VALID_METRICS["brute"] or metric == "precomputed":
            msg = f"metric={metric!r} is not a distance scanpy.pp.neighbors knows; try 'euclidean' or 'cosine'."
            raise ValueError(msg)
        if n_neighbors is None:
            spatial = self._setup_args["spatial_key"] is not None
            n_neighbors = SPATIAL_N_NEIGHBORS if spatial else EXPRESSION_N_NEIGHBORS
        if n_neighbors < 1 or n_gene_neighbors < 1:
            msg = "n_neighbors and n_gene_neighbors must be at least 1."
            raise ValueError(msg)
        if mnn_neighbors < 0:
            msg = f"mnn_neighbors={mnn_neighbors} must be 0 (no links between slices) or more."
            raise ValueError(msg)
        self.mnn_neighbors = int(mnn_neighbors)
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.n_gene_neighbors = n_gene_neighbors
        if smoothing is None:
            smoothing = SPATIAL_SMOOTHING if self._setup_args["spatial_key"] is not None else (0, 0)
        if len(smoothing) != 2 or min(smoothing) < 0:
            msg = f"smoothing={smoothing!r} must be two non-negative graph powers (MLP view, GCN view)."
            raise ValueError(msg)
        self.smoothing = (int(smoothing[0]), int(smoothing[1]))
        if graph_normalization == "auto":
            # resolved here so that the saved parameters, and a model loaded with other cells, keep it
            graph_normalization = "mean" if n_obs > FULL_BATCH_MAX_CELLS else "symmetric"
        self.graph_normalization = graph_normalization
        self.representation = representation
        self.center_init = center_init
        #: how the cluster centres were found: ``{"start": ...}`` and, with ``center_init="auto"``, each candidate's modularity
        self.center_start_: dict | None = None
        if input_features == "auto":
            # resolved here, like graph_normalization, so the saved parameters keep it
            input_features = "scaled" if self._setup_args["spatial_key"] is not None else "pca"
        self.input_features = input_features
        self.input_center = input_center
        self.balance_negatives = bool(balance_negatives)
        self.cluster_components = bool(cluster_components)
        n_batch = int(self.summary_stats.get("n_batch", 0))
        n_batch = n_batch if n_batch > 1 else 0
        if n_batch and input_features not in ("pca", "scaled"):
            msg = (
                f"batch_key centres each cell within its batch, which input_features={input_features!r} does not "
                "do; use input_features='pca' or 'scaled' (or 'auto')."
            )
            raise ValueError(msg)
        n_refined = n_refined or n_clusters or 16
        self._n_descriptors_asked = n_descriptors
        self._module_options = {
            "n_hidden": n_hidden,
            "n_refined": n_refined,
            "dropout": dropout,
            "temperature": temperature,
            "alpha": alpha,
            "beta": beta,
            "n_batch": n_batch,
        }
        self.module = self._new_module(n_input)
        self.is_prepared_ = False
        self.n_clusters_: int | None = None
        self.selected_genes_: np.ndarray | None = None
        self._graph_data: dict[int, CellGraphData] = {}
        self._model_summary_string = (
            f"scRCL with n_hidden={n_hidden}, n_refined={n_refined}, n_top_genes={n_top_genes}, "
            f"n_neighbors={n_neighbors}, metric={metric!r}, n_clusters={n_clusters}, smoothing={self.smoothing}, "
            f"graph_normalization={graph_normalization!r}, "
            f"representation={representation!r}, input_features={self.input_features!r}, "
            f"input_center={input_center!r}, balance_negatives={self.balance_negatives}, "
            f"cluster_components={self.cluster_components}"
        )
        self.init_params_ = self._get_init_params(locals())

    def _new_module(self, n_input: int) -> SCRCLModule:
        """A fresh module reading ``n_input`` genes (its gene descriptors cannot outnumber genes or cells)."""
        self.n_descriptors = min(self._n_descriptors_asked, n_input, self.adata.n_obs - 1)
        view_input = self.n_descriptors if self.input_features == "pca" else None
        return SCRCLModule(n_input, n_descriptors=self.n_descriptors, n_view_input=view_input, **self._module_options)

    # ------------------------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(
        cls,
        adata: ad.AnnData,
        layer: str | None = None,
        *,
        spatial_key: str | None = None,
        graph_key: str | None = None,
        batch_key: str | None = None,
        library_key: str | None = None,
        **kwargs,
    ) -> None:
        """Register ``adata`` with scvi-tools: counts in ``X`` or ``layers[layer]`` and how to build the graph.

        Like every scvi-tools model this adds registration keys and ``obs["_indices"]`` to
        ``adata``; :func:`atlasclust.tl.scrcl` registers a light view instead.

        Parameters
        ----------
        adata
            AnnData with raw counts.
        layer
            Layer with the raw counts; ``None`` uses ``X``.
        spatial_key
            ``obsm`` key of spot coordinates: the cell graph is their kNN graph (KD-tree).
        graph_key
            ``obsp`` key of a cells x cells graph to use as the cell graph (binarised, symmetrised).
        batch_key
            ``obs`` column naming each cell's batch (sample, donor): each cell is centred on its own
            batch's gene means before the principal axes, the expression graph and the views. With
            ``spatial_key`` and no ``library_key`` a batch is also a slice: spots are joined only within
            their own batch.
        library_key
            With ``spatial_key``: ``obs`` column naming each spot's slice (squidpy's ``library_key``).
            Spots are joined by space only within their own slice, and across slices to their mutual
            nearest neighbours in expression (``mnn_neighbors``); their expression is left as it is.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        if spatial_key is not None and graph_key is not None:
            msg = "Pass spatial_key or graph_key, not both."
            raise ValueError(msg)
        counts_matrix(adata, layer)
        training_view(adata, layer, obsm_keys=(spatial_key,), obsp_keys=(graph_key,))  # KeyErrors
        if library_key is not None and spatial_key is None:
            msg = "library_key names each spot's slice and needs spot coordinates: pass spatial_key (e.g. 'spatial')."
            raise ValueError(msg)
        if batch_key is not None:
            check_batch_column(adata, batch_key)
        if library_key is not None:
            check_batch_column(adata, library_key, what="slice")
        if spatial_key is not None:
            check_coordinates(adata.obsm[spatial_key], key=spatial_key, n_obs=adata.n_obs)
        # batches carry seed-cell indices only: features and graph live with the model
        cls._register(adata, setup_method_args, batch_key=batch_key, **kwargs)

    @property
    def _setup_args(self) -> dict:
        return self.registry_["setup_args"]

    def _batch_codes(self, adata: ad.AnnData) -> np.ndarray | None:
        """Each cell's batch code (the training batches' order), or ``None`` without ``batch_key``."""
        batch_key = self._setup_args.get("batch_key")  # models saved before batch_key have none
        if batch_key is None:
            return None
        trained_on = saved_batches(self.registry_)
        check_batch_column(adata, batch_key, known=trained_on)
        return pd.Categorical(adata.obs[batch_key], categories=trained_on).codes.astype(np.int64)

    def slice_codes(self, adata: ad.AnnData) -> np.ndarray | None:
        """Each spot's slice in ``adata``: ``library_key``'s codes, else the batches' (``None`` without either)."""
        library_key = self._setup_args.get("library_key")  # models saved before library_key have none
        if library_key is None:
            return self._batch_codes(adata)
        check_batch_column(adata, library_key, what="slice")
        return pd.factorize(adata.obs[library_key])[0]

    def _links_slices(self) -> bool:
        """Whether the cell graph joins mutual nearest neighbours across ``library_key``'s slices."""
        return self._setup_args.get("library_key") is not None and self.mnn_neighbors > 0

    # ------------------------------------------------------------------------------------ save / load
    def _after_load(self) -> None:
        self.is_prepared_ = True  # the input transform and the gene graph come with the weights
        # options saved before they existed take the constructor's default; say what the model does
        saved_before = {
            "input_center": ("mean", self.input_center == "balanced" and not self.module.input_center.any()),
            "balance_negatives": (False, self.balance_negatives and not len(self.module.negative_centers)),
            # a model clustered with n_clusters has centres; without scales they are the embedding's alone
            "cluster_components": (
                False,
                self.cluster_components
                and self.n_clusters is not None
                and bool(self.module.cluster_centers.numel())
                and not len(self.module.cluster_scales),
            ),
        }
        for name, (behaviour, missing) in saved_before.items():
            if self.input_features == "pca" and missing:
                setattr(self, name, behaviour)
                self.init_params_["non_kwargs"][name] = behaviour
