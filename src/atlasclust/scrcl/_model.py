"""scRCL as a scvi-tools model: setup, graphs, training (full batch or mini-batch), inference, save/load."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager
from scvi.data.fields import CategoricalObsField, NumericalObsField
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin
from sklearn.decomposition import PCA
from sklearn.neighbors import VALID_METRICS

from atlasclust._constants import (
    DEFAULT_N_TOP_GENES,
    GRAPH_NORMALIZATION_CHOICES,
    INPUT_FEATURES,
    REPRESENTATIONS,
)
from atlasclust._constants import SCRCL_RESOLUTION as DEFAULT_RESOLUTION
from atlasclust._validate import as_int, check_cluster_count, check_non_negative, check_positive
from atlasclust.data import (
    INDICES_COLUMN,
    CountStatistics,
    check_batch_column,
    check_n_top_genes,
    check_same_genes,
    choose_genes,
    counts_matrix,
    describe_source,
    fits_on_gpu,
    gene_mask,
    log_normalized_moments,
    planned_gene_count,
    projected_log_features,
    saved_batches,
    scaled_log_features,
    scan_counts,
    selected_counts,
    training_device,
    training_view,
    with_chosen_genes,
)
from atlasclust.pp._graphs import (
    binary_symmetric,
    check_coordinates,
    expression_graph,
    gcn_normalize,
    gene_graph,
    mutual_neighbors,
)
from atlasclust.pp._graphs import spatial_graph as spatial_knn_graph
from atlasclust.train import (
    cluster_centers,
    history_frame,
    join_history,
    load_saved_model,
    phase_checkpoint,
    quiet_fit,
    set_aside_history,
    training_settings,
    with_trainer_guard,
)

from ._graph_data import CellGraphData
from ._module import SCRCLModule
from ._training import SCRCLTrainingPlan

logger = logging.getLogger(__name__)

#: Bound of the ``"scaled"`` views' input, in standard deviations (``sc.pp.scale(max_value=10)``).
MAX_SCALED = 10.0
#: Rows of a cells x genes array centred or projected at a time, so no second array of its size is formed.
_CHUNK_ROWS = 16_384
#: Fewest cells a model trains on.
MIN_CELLS = 10
#: Above this many cells, training goes by mini-batches of seed cells and their neighbours.
FULL_BATCH_MAX_CELLS = 20_000
#: Most cells whose scaled log expression the principal axes are learned from (a random sample above).
PCA_FIT_MAX_CELLS = 50_000
#: Seed cells per mini-batch when the data are too large for one batch.
DEFAULT_SEEDS_PER_BATCH = 2048
#: Feature smoothing (graph powers of the MLP-view and GCN-view inputs) on spatial data: the
#: reference's DLPFC setting; on the shared DLPFC slices it lifts ARI from 0.18 to 0.30 (151673).
SPATIAL_SMOOTHING = (10, 8)
#: Neighbours per cell of the expression kNN graph when none are given. The reference uses 15; with
#: the accuracy benchmark's protocol (5 seeds) 10 did better on pollen (ARI 0.66 -> 0.72), worm
#: neurons (0.48 -> 0.51) and PBMC 10x (0.63 -> 0.67) and as well (within 0.01) on the other four
#: scRNA-seq datasets; 30 did worse (3 seeds).
EXPRESSION_N_NEIGHBORS = 10
#: Neighbours per spot of the spatial kNN graph when none are given (the reference's 15).
SPATIAL_N_NEIGHBORS = 15
#: Mutual nearest neighbours sought per spot in each other slice with ``library_key``. Without any
#: edge between them, pooled slices drifted apart in the embedding (the clusters followed the slices);
#: with these links three pools of two slices clustered better (``benchmarks/results/pooled_slices.md``).
MNN_NEIGHBORS = 5
#: Optimiser steps when no epochs are given. The reference trains 500 full-batch steps but scores
#: its best epoch by the labels; scored at the end instead, the embedding is better after ~100
#: steps than after 500 (mean ARI over the shared datasets, see benchmarks/results/accuracy.md),
#: because the alignment losses keep pulling neighbourhoods together past the point where cell
#: types separate best.
DEFAULT_STEPS = 100


def default_batch_size(n_cells: int) -> int:
    """All cells up to :data:`FULL_BATCH_MAX_CELLS`, else :data:`DEFAULT_SEEDS_PER_BATCH` seeds."""
    return n_cells if n_cells <= FULL_BATCH_MAX_CELLS else DEFAULT_SEEDS_PER_BATCH


def default_max_epochs(n_cells: int, batch_size: int) -> int:
    """About :data:`DEFAULT_STEPS` optimiser steps, and at least two passes over the cells."""
    steps_per_epoch = math.ceil(n_cells / batch_size)
    return int(np.clip(math.ceil(DEFAULT_STEPS / steps_per_epoch), 2, DEFAULT_STEPS))


class SCRCL(UnsupervisedTrainingMixin, BaseModelClass):
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
        Number of clusters (k-means on the L2-normalised embedding); ``None`` uses Leiden.
    mask_var
        The genes to train on: the name of a boolean ``var`` column (such as ``"highly_variable"``)
        or a boolean array over the genes. ``None`` chooses ``n_top_genes`` genes.
    n_top_genes
        Without ``mask_var``: number of most variable genes (Seurat flavour) the model uses, all
        genes when there are fewer; ``None`` uses all genes. Genes with no counts are never used.
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
    mnn_neighbors
        With ``library_key`` (slices, each with its own spatial graph): spots of two slices that are
        mutual nearest neighbours on the principal components, among this many per slice, are also
        joined, so that the slices' embeddings stay comparable; 0 joins no spots across slices.
    registry
        Used by :meth:`load`; leave it out.
    """

    _module_cls = SCRCLModule
    _training_plan_cls = SCRCLTrainingPlan

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
        input_features: str = "auto",
        mnn_neighbors: int = MNN_NEIGHBORS,
        registry: dict | None = None,
    ):
        super().__init__(adata, registry)
        n_vars = self.adata.n_vars
        n_obs = self.adata.n_obs
        check_n_top_genes(n_top_genes)
        mask_var = gene_mask(self.adata.var, mask_var)  # the array is what the saved parameters keep
        check_cluster_count(n_clusters, n_obs)
        check_non_negative(alpha=alpha, beta=beta)
        check_positive(temperature=temperature, resolution=resolution, n_hidden=n_hidden, n_descriptors=n_descriptors)
        if n_refined is not None:
            check_positive(n_refined=n_refined)
        _check_choice("representation", representation, REPRESENTATIONS)
        _check_choice("input_features", input_features, INPUT_FEATURES)
        _check_choice("graph_normalization", graph_normalization, GRAPH_NORMALIZATION_CHOICES)
        if n_obs < MIN_CELLS:
            msg = f"Only {n_obs} cells: scRCL needs at least {MIN_CELLS} cells to train."
            raise ValueError(msg)
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
        n_input = planned_gene_count(n_vars, mask_var, n_top_genes)
        self._gene_mask = mask_var
        self.n_clusters = n_clusters
        self.n_top_genes = n_top_genes
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
        self.resolution = resolution
        self.representation = representation
        if input_features == "auto":
            # resolved here, like graph_normalization, so the saved parameters keep it
            input_features = "scaled" if self._setup_args["spatial_key"] is not None else "pca"
        self.input_features = input_features
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
            f"representation={representation!r}, input_features={self.input_features!r}"
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
        if INDICES_COLUMN not in adata.obs:
            adata.obs[INDICES_COLUMN] = np.arange(adata.n_obs)
        # batches carry seed-cell indices only: features and graph live with the model
        fields = [NumericalObsField(REGISTRY_KEYS.INDICES_KEY, INDICES_COLUMN)]
        if batch_key is not None:  # registered for its categories (codes of new cells follow them)
            fields.append(CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key))
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)

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

    def _slice_codes(self, adata: ad.AnnData) -> np.ndarray | None:
        """Each spot's slice: ``library_key``'s codes, else the batches' (``None`` without either)."""
        library_key = self._setup_args.get("library_key")  # models saved before library_key have none
        if library_key is None:
            return self._batch_codes(adata)
        check_batch_column(adata, library_key, what="slice")
        return pd.factorize(adata.obs[library_key])[0]

    def _links_slices(self) -> bool:
        """Whether the cell graph joins mutual nearest neighbours across ``library_key``'s slices."""
        return self._setup_args.get("library_key") is not None and self.mnn_neighbors > 0

    def _batch_shift(self) -> np.ndarray | None:
        """Each batch's gene means in the units of the scaled log features (``batches x genes``), if any."""
        if not self.module.n_batch:
            return None
        return (self.module.batch_gene_mean / self.module.gene_std).cpu().numpy()

    def _centre_batches(self, features: np.ndarray, codes: np.ndarray | None) -> np.ndarray:
        """Shift each row of scaled log ``features`` by its batch's row of :meth:`_batch_shift`, in place."""
        shift = self._batch_shift()
        if codes is None or shift is None:
            return features
        for start in range(0, len(features), _CHUNK_ROWS):  # no second cells x genes array
            rows = slice(start, start + _CHUNK_ROWS)
            features[rows] -= shift[codes[rows]]
        return features

    # ------------------------------------------------------------------------------------ data
    def _fit_input_transform(self, random_state: int) -> None:
        """Validate the counts, choose genes, learn the scaling, the principal axes and the gene graph."""
        layer = self._setup_args["layer"]
        matrix = counts_matrix(self.adata, layer)
        statistics = scan_counts(matrix, source=describe_source(layer))
        gene_index = choose_genes(statistics, self._gene_mask, self.n_top_genes)
        if len(gene_index) != len(self.module.gene_index):  # genes without counts left out: a narrower input
            self.module = self._new_module(len(gene_index))
            self.init_params_ = with_chosen_genes(self.init_params_, gene_index, matrix.shape[1])
        median = statistics.median_library_size
        module = self.module
        codes = self._batch_codes(self.adata)
        moments = log_normalized_moments(
            matrix,
            statistics.library_size,
            gene_index,
            target_sum=median,
            groups=codes if module.n_batch else None,
            n_groups=module.n_batch,
        )
        std = moments.std
        module.gene_index = torch.as_tensor(gene_index, dtype=torch.long)
        module.gene_mean = torch.as_tensor(moments.mean, dtype=torch.float32)
        module.gene_std = torch.as_tensor(std, dtype=torch.float32)
        module.median_library_size = torch.tensor(median, dtype=torch.float32)
        if module.n_batch:
            module.batch_gene_mean = torch.as_tensor(moments.group_mean, dtype=torch.float32)
        n_obs = matrix.shape[0]
        fit_rows = None  # the principal axes of at most PCA_FIT_MAX_CELLS cells: no cells x genes array of all
        if n_obs > PCA_FIT_MAX_CELLS:
            fit_rows = np.sort(np.random.default_rng(random_state).choice(n_obs, PCA_FIT_MAX_CELLS, replace=False))
        features = scaled_log_features(
            matrix, statistics.library_size, gene_index, target_sum=median, std=std, rows=fit_rows
        )
        if codes is not None:
            self._centre_batches(features, codes if fit_rows is None else codes[fit_rows])
        pca = PCA(n_components=self.n_descriptors, svd_solver="randomized", random_state=random_state).fit(features)
        module.pca_mean = torch.as_tensor(pca.mean_, dtype=torch.float32)
        module.pca_components = torch.as_tensor(pca.components_, dtype=torch.float32)
        # each gene described by its loadings on the principal axes, scaled by the axes' spread
        descriptors = (pca.components_ * np.sqrt(pca.explained_variance_)[:, None]).T.astype(np.float32)
        # messages flow from a gene to the genes it lists as neighbours, as in the reference (PyG)
        propagation = gcn_normalize(gene_graph(descriptors, n_neighbors=self.n_gene_neighbors).T).tocoo()
        module.set_gene_graph(
            torch.as_tensor(descriptors),
            torch.as_tensor(np.vstack([propagation.row, propagation.col]), dtype=torch.long),
            torch.as_tensor(propagation.data, dtype=torch.float32),
        )
        self.selected_genes_ = np.asarray(self.adata.var_names[gene_index]).astype(str)
        # the counts were validated and scanned above: the graph data reuse that pass (and the features)
        self._graph_data[id(self.adata)] = self._build_graph_data(
            self.adata, features if fit_rows is None else None, statistics=statistics
        )

    def _read_counts(self, adata: ad.AnnData, statistics: CountStatistics | None = None) -> tuple:
        """Validated counts of ``adata``, their library sizes, the model's genes and transform.

        ``statistics`` of a pass already made over these counts spare a second one.
        """
        layer = self._setup_args["layer"]
        matrix = counts_matrix(adata, layer)
        if statistics is None:
            statistics = scan_counts(matrix, source=describe_source(layer))
        transform = {"target_sum": float(self.module.median_library_size), "std": self.module.gene_std.cpu().numpy()}
        return matrix, statistics.library_size, self.module.gene_index.cpu().numpy(), transform

    def _log_features(self, adata: ad.AnnData, statistics: CountStatistics | None = None) -> np.ndarray:
        """The scaled log expression of ``adata`` (validated counts, training statistics), centred within batches."""
        matrix, library_size, gene_index, transform = self._read_counts(adata, statistics)
        features = scaled_log_features(matrix, library_size, gene_index, **transform)
        return self._centre_batches(features, self._batch_codes(adata))

    def _components(
        self, adata: ad.AnnData, log_features: np.ndarray | None = None, statistics: CountStatistics | None = None
    ) -> np.ndarray:
        """Coordinates of ``adata``'s cells on the training principal axes (of ``log_features`` if given).

        Without ``log_features`` the counts are validated and read in chunks of cells, so only the
        ``cells x n_descriptors`` result is formed.
        """
        center = self.module.pca_mean.cpu().numpy()
        axes = self.module.pca_components.cpu().numpy()
        if log_features is not None:
            components = np.empty((len(log_features), len(axes)), dtype=np.float32)
            for start in range(0, len(log_features), _CHUNK_ROWS):  # no centred copy of all cells
                rows = slice(start, start + _CHUNK_ROWS)
                components[rows] = (log_features[rows] - center) @ axes.T
            return components
        matrix, library_size, gene_index, transform = self._read_counts(adata, statistics)
        codes, shift = self._batch_codes(adata), self._batch_shift()
        if codes is not None and shift is not None:
            transform |= {"group_shift": shift, "groups": codes}
        return projected_log_features(matrix, library_size, gene_index, **transform, center=center, axes=axes)

    def cell_graph(self, adata: ad.AnnData, components: np.ndarray | None = None):
        """The binary symmetric cell graph the model uses for ``adata`` (spatial, given or expression kNN).

        ``components`` are ``adata``'s principal-component coordinates, if already computed.
        """
        spatial_key = self._setup_args["spatial_key"]
        graph_key = self._setup_args["graph_key"]
        if spatial_key is not None:
            coordinates = check_coordinates(adata.obsm[spatial_key], key=spatial_key, n_obs=adata.n_obs)
            # pooled slices share a coordinate frame: spots are joined within their own slice only
            slices = self._slice_codes(adata)
            graph = spatial_knn_graph(coordinates, n_neighbors=self.n_neighbors, groups=slices)
            if self._links_slices():
                # and, across slices, to their mutual nearest neighbours in expression
                components = self._components(adata) if components is None else components
                links = mutual_neighbors(components, slices, n_neighbors=self.mnn_neighbors)
                graph = binary_symmetric(graph + links)
        elif graph_key is not None:
            graph = binary_symmetric(adata.obsp[graph_key], name=f"obsp[{graph_key!r}]")
        else:
            components = self._components(adata) if components is None else components
            graph = expression_graph(components, n_neighbors=self.n_neighbors, metric=self.metric)
        isolated = int(np.sum(np.diff(graph.indptr) == 0))
        if isolated:
            logger.warning(
                f"{isolated} cells have no neighbour in the cell graph; the GCN view sees only their own "
                "expression (its self loop) and the neighbourhood losses compare them with themselves."
            )
        return graph

    def _build_graph_data(
        self,
        adata: ad.AnnData,
        log_features: np.ndarray | None = None,
        *,
        statistics: CountStatistics | None = None,
    ) -> CellGraphData:
        """The cell graph and the views' input of ``adata``.

        ``log_features`` and the counts' ``statistics`` are reused when already computed.
        """
        setup = self._setup_args
        expression_graph_needed = setup["spatial_key"] is None and setup["graph_key"] is None
        if log_features is None and self.input_features in ("scaled", "log"):
            log_features = self._log_features(adata, statistics)  # validates the counts on the way
        components = None
        if self.input_features == "pca" or expression_graph_needed or self._links_slices():
            # from the chunks of counts when no log features were formed (validating them)
            components = self._components(adata, log_features, statistics)
        graph = self.cell_graph(adata, components)
        if self.input_features == "pca":
            features = components
        elif self.input_features == "log":
            features = log_features
        elif self.input_features == "scaled":
            # centred after the graph is built from the uncentred features (in place: one dense copy);
            # with batches each cell was centred within its batch already
            features = log_features
            if not self.module.n_batch:
                shift = (self.module.gene_mean / self.module.gene_std).cpu().numpy()
                features = np.subtract(log_features, shift, out=log_features)
            np.clip(features, -MAX_SCALED, MAX_SCALED, out=features)
        else:
            matrix = counts_matrix(adata, setup["layer"])
            if components is None and statistics is None:  # counts read for nothing else: validate them here
                scan_counts(matrix, source=describe_source(setup["layer"]))
            features = selected_counts(matrix, self.module.gene_index.cpu().numpy())
        return CellGraphData.build(graph, features, smoothing=self.smoothing, normalization=self.graph_normalization)

    def _graph_data_for(self, adata: ad.AnnData | None) -> CellGraphData:
        """Graph data of ``adata`` (default: the training data), built once per AnnData."""
        if adata is None:
            adata = self.adata
        elif adata is not self.adata:
            check_same_genes(self.adata.var_names, adata)
        key = id(adata)
        if key not in self._graph_data:
            if adata is not self.adata:
                # one cached foreign dataset at a time
                self._graph_data = {k: v for k, v in self._graph_data.items() if k == id(self.adata)}
            self._graph_data[key] = self._build_graph_data(adata)
        return self._graph_data[key]

    # ------------------------------------------------------------------------------------ training
    def train(
        self,
        max_epochs: int | None = None,
        *,
        batch_size: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        strategy: str = "auto",
        enable_progress_bar: bool = True,
        random_state: int = 0,
        checkpoint_dir: str | Path | None = None,
        plan_kwargs: dict | None = None,
        **trainer_kwargs,
    ) -> None:
        """Train through scvi-tools' Lightning trainer, then cluster the embedding.

        Parameters
        ----------
        max_epochs
            Passes over the cells; ``None`` gives about 100 optimiser steps (100 full-batch
            epochs; the reference trains 500 but keeps its best epoch by the labels) and at
            least two passes.
        batch_size
            Seed cells per step; ``None`` trains full batch up to 20,000 cells and on batches of
            2048 seeds (plus their neighbours) above.
        lr
            Adam learning rate.
        weight_decay
            Adam (L2) weight decay.
        accelerator
            Lightning accelerator.
        devices
            Lightning devices.
        strategy
            Lightning strategy.
        enable_progress_bar
            Show Lightning's progress bar.
        random_state
            Seed of the principal axes and the clustering (weights and batches follow
            ``scvi.settings.seed``).
        checkpoint_dir
            Folder for Lightning checkpoints, written (replaced) at the end of every epoch. When
            it already holds the checkpoint of an interrupted call with the same settings,
            training resumes from it and ends as the uninterrupted run would have; settings that
            differ raise a :class:`ValueError`.
        plan_kwargs
            Extra arguments of :class:`scvi.train.TrainingPlan`.
        **trainer_kwargs
            Extra arguments of :class:`scvi.train.Trainer`.
        """
        max_epochs = as_int(max_epochs, "max_epochs", minimum=1)
        batch_size = as_int(batch_size, "batch_size", minimum=1)
        n_obs = self.adata.n_obs
        batch_size = default_batch_size(n_obs) if batch_size is None else min(batch_size, n_obs)
        max_epochs = default_max_epochs(n_obs, batch_size) if max_epochs is None else max_epochs
        if not self.is_prepared_:
            self._fit_input_transform(random_state)
            self.is_prepared_ = True
        graph_data = self.module.graph_data = self._graph_data_for(None)
        self.module.train()
        self.batch_size_ = batch_size
        plan_kwargs = {"optimizer": "Adam", "lr": lr, "weight_decay": weight_decay} | (plan_kwargs or {})
        # the readout and the Leiden resolution only act after training: a resume may change them
        fingerprint = training_settings(self, ignore=("representation", "resolution")) | {
            "cells": n_obs,
            "genes": self.adata.n_vars,
            "max_epochs": max_epochs,
            "batch_size": batch_size,
            "plan_kwargs": plan_kwargs,
            "random_state": random_state,
        }
        for key in ("batch_key", "library_key"):  # only when set, so earlier checkpoints still match
            if self._setup_args.get(key) is not None:
                fingerprint[key] = self._setup_args[key]
        checkpoint = phase_checkpoint(checkpoint_dir, "train", fingerprint)
        # metrics are logged once per epoch: Lightning's step interval would only warn on short epochs
        trainer_kwargs = {"log_every_n_steps": 1} | trainer_kwargs
        trainer_kwargs = with_trainer_guard(trainer_kwargs, "scRCL", lr) | checkpoint.trainer_kwargs
        trainer_kwargs["callbacks"] += checkpoint.callbacks
        previous = set_aside_history(self)
        start = time.perf_counter()
        self.epoch_seconds_ = []
        try:
            if checkpoint.finished(max_epochs):  # a fit of no epochs would still draw random numbers
                history = checkpoint.restore(self.module)
            else:
                device = training_device(accelerator, devices, strategy)
                if fits_on_gpu(graph_data.feature_bytes(), device):  # batches are then gathered on the GPU
                    graph_data.keep_on(device)  # kept for the embedding that _cluster computes too
                with quiet_fit():
                    super().train(
                        max_epochs=max_epochs,
                        batch_size=batch_size,
                        accelerator=accelerator,
                        devices=devices,
                        strategy=strategy,
                        train_size=1.0,
                        enable_progress_bar=enable_progress_bar,
                        plan_kwargs=plan_kwargs,
                        **trainer_kwargs,
                    )
                self.epoch_seconds_ = [self.trainer.lightning_module.epoch_seconds]  # one list per fit, as BGFormer's
                history = checkpoint.history(history_frame(self.history_))
            self.training_seconds_ = time.perf_counter() - start
            self.module.eval()
            self.is_trained_ = True
            self.history_ = join_history(previous, history)
            self._cluster(random_state)
        finally:
            graph_data.release()

    def _cluster(self, random_state: int) -> None:
        """Cluster centres on the unit-normalised embedding: k-means with ``n_clusters``, else Leiden."""
        latent = _unit_rows(self.get_latent_representation())
        centers, _ = cluster_centers(latent, self.n_clusters, resolution=self.resolution, random_state=random_state)
        self.module.cluster_centers = torch.as_tensor(centers, dtype=torch.float32)
        self.n_clusters_ = len(centers)

    # ------------------------------------------------------------------------------------ inference
    @torch.inference_mode()
    def get_latent_representation(
        self, adata: ad.AnnData | None = None, batch_size: int | None = None, *, representation: str | None = None
    ) -> np.ndarray:
        """Embedding in eval mode: ``[E_mlp | E_gcn]`` or ``[Z_mlp | Z_gcn]``, each half unit norm.

        Parameters
        ----------
        adata
            Any AnnData with the training genes (and the same graph source: coordinates or
            ``obsp`` key); its own cell graph is built. The training data by default.
        batch_size
            Seed cells per pass.
        representation
            ``"views"`` (cells x 2 ``n_hidden``) or ``"refined"`` (cells x 2 ``n_refined``, the
            paper's Eq. 11); ``None`` gives the model's, the one it clusters.
        """
        representation = self.representation if representation is None else representation
        _check_choice("representation", representation, REPRESENTATIONS)
        mlp_key, gcn_key = ("mlp", "gcn") if representation == "views" else ("mlp_refined", "gcn_refined")
        self.module.eval()
        data = self._graph_data_for(adata)
        batch_size = batch_size or min(data.n_cells, 4096)
        device = self.module.device
        # each cell's propagated features are read by all its neighbours' batches: gather them on the GPU
        keep = fits_on_gpu(data.feature_bytes(mlp=False), device) and "propagated_features" not in data.on_device
        if keep:
            data.keep_on(device, mlp=False)
        parts = []
        try:
            for start in range(0, data.n_cells, batch_size):
                seeds = np.arange(start, min(start + batch_size, data.n_cells))
                out = self.module.inference(data.batch(seeds, device, embed_only=True))
                parts.append(torch.cat([out[mlp_key], out[gcn_key]], dim=1).float().cpu())
        finally:
            if keep:
                data.release()
        return torch.cat(parts).numpy()

    def predict(
        self, adata: ad.AnnData | None = None, *, soft: bool = False, batch_size: int | None = None
    ) -> np.ndarray | pd.DataFrame:
        """Cluster of each cell: nearest cluster centre (cosine) of the L2-normalised embedding.

        Parameters
        ----------
        adata
            AnnData to cluster (its own cell graph is built); the training data by default.
        soft
            Return cosine similarities to each centre (cells x clusters frame) instead.
        batch_size
            Seed cells per pass.
        """
        self._check_if_trained(warn=False)
        latent = _unit_rows(self.get_latent_representation(adata, batch_size=batch_size))
        centers = self.module.cluster_centers.cpu().numpy()
        distance = (latent**2).sum(1)[:, None] - 2 * latent @ centers.T + (centers**2).sum(1)[None, :]
        if not soft:
            return distance.argmin(axis=1)
        names = (self.adata if adata is None else adata).obs_names
        similarity = latent @ _unit_rows(centers).T
        return pd.DataFrame(similarity, index=names, columns=[str(k) for k in range(len(centers))])

    def gene_embedding(self) -> pd.DataFrame:
        """Learned gene embedding ``U`` (selected genes x ``n_refined``)."""
        with torch.inference_mode():
            genes = self.module.gene_embedding().float().cpu().numpy()
        return pd.DataFrame(genes, index=self.selected_genes_)

    # ------------------------------------------------------------------------------------ save / load
    @classmethod
    def load(cls, dir_path: str, adata: ad.AnnData | None = None, **kwargs) -> SCRCL:
        """Load a saved model, for ``adata`` or for the AnnData saved with it.

        ``adata`` itself is not modified: the model registers a light view of it. Nothing is
        printed at scanpy's default verbosity.

        Parameters
        ----------
        dir_path
            Folder written by :meth:`save`.
        adata
            AnnData with the training genes in the same order, counts in the same layer (and the same graph source:
            coordinates or obsp key). ``None``: the AnnData saved with the model
            (``save(…, save_anndata=True)``), as in scvi-tools.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.load` (e.g. ``accelerator``).
        """
        model = load_saved_model(cls, dir_path, adata, **kwargs)
        model.is_prepared_ = True
        return model


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        msg = f"{name}={value!r} must be one of {choices}."
        raise ValueError(msg)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
