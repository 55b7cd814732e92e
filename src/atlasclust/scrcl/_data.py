"""scRCL's data: the input transform, principal axes, gene graph, cell graph and graph mini-batches."""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import pairwise_distances_argmin

from atlasclust.data import (
    CountStatistics,
    binary_symmetric,
    check_coordinates,
    check_same_genes,
    counts_matrix,
    describe_source,
    expression_graph,
    gcn_normalize,
    gene_graph,
    mutual_neighbors,
    projected_log_features,
    sample_rows,
    scaled_log_features,
    scan_counts,
    selected_counts,
)
from atlasclust.data import spatial_graph as spatial_knn_graph

from ._defaults import _CHUNK_ROWS, MAX_SCALED, PCA_FIT_MAX_CELLS
from ._graph_data import CellGraphData

logger = logging.getLogger(__name__)


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Each cell's weight, ``1 /`` the size of its group, scaled to mean 1: every group weighs alike."""
    sizes = np.bincount(labels)
    return (len(labels) / np.count_nonzero(sizes) / sizes[labels]).astype(np.float32)


class SCRCLDataMixin:
    """scRCL's data: the input transform, principal axes, gene graph, cell graph and graph mini-batches."""

    def _input_partition(self, components: np.ndarray, *, random_state: int) -> KMeans:
        """k-means at ``n_refined`` clusters on the training components (``input_center``, ``balance_negatives``)."""
        n_clusters = min(self._module_options["n_refined"], len(components))
        return KMeans(n_clusters=n_clusters, n_init=10, random_state=random_state).fit(components)

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
        codes = self._batch_codes(self.adata)
        matrix, statistics, gene_index, moments = self._learn_input_transform(codes)
        # only now: where genes without counts narrow the input, choosing genes builds the module anew
        module = self.module
        median = statistics.median_library_size
        std = moments.std
        n_obs = matrix.shape[0]
        fit_rows = None  # the principal axes of at most PCA_FIT_MAX_CELLS cells: no cells x genes array of all
        if n_obs > PCA_FIT_MAX_CELLS:
            fit_rows = sample_rows(n_obs, PCA_FIT_MAX_CELLS, np.random.default_rng(random_state))
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
        components = partition = None
        if self.input_features == "pca" and (self.input_center == "balanced" or self.balance_negatives):
            # projected chunk by chunk on the axes just set: no centred copy of the features
            components = self._components(self.adata, features)
            partition = self._input_partition(components, random_state=random_state)
            centers = partition.cluster_centers_.astype(np.float32)
            if self.input_center == "balanced":
                module.input_center = torch.as_tensor(np.median(centers, axis=0))
            if self.balance_negatives:
                module.negative_centers = torch.as_tensor(centers)
        # messages flow from a gene to the genes it lists as neighbours, as in the reference (PyG)
        propagation = gcn_normalize(gene_graph(descriptors, n_neighbors=self.n_gene_neighbors).T).tocoo()
        module.set_gene_graph(
            torch.as_tensor(descriptors),
            torch.as_tensor(np.vstack([propagation.row, propagation.col]), dtype=torch.long),
            torch.as_tensor(propagation.data, dtype=torch.float32),
        )
        # the counts were validated and scanned above: the graph data reuse that pass (and the features)
        # (and, when every cell was projected for the origin, those components)
        every_cell = fit_rows is None
        self._graph_data[id(self.adata)] = self._build_graph_data(
            self.adata,
            features if every_cell else None,
            statistics=statistics,
            components=components if every_cell else None,
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
            slices = self.slice_codes(adata)
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
        components: np.ndarray | None = None,
    ) -> CellGraphData:
        """The cell graph, the views' input of ``adata`` and its cells' weights in the contrastive loss.

        ``log_features``, the counts' ``statistics`` and the cells' principal ``components`` are
        reused when already computed (``components`` is then shifted in place).
        """
        setup = self._setup_args
        expression_graph_needed = setup["spatial_key"] is None and setup["graph_key"] is None
        if log_features is None and self.input_features in ("scaled", "log"):
            log_features = self._log_features(adata, statistics)  # validates the counts on the way
        if components is None and (self.input_features == "pca" or expression_graph_needed or self._links_slices()):
            # from the chunks of counts when no log features were formed (validating them)
            components = self._components(adata, log_features, statistics)
        graph = self.cell_graph(adata, components)
        negative_weight = None
        centers = self.module.negative_centers.cpu().numpy()
        if self.input_features == "pca" and len(centers):  # balance_negatives: each cell by its nearest centre
            negative_weight = balanced_weights(pairwise_distances_argmin(components, centers))
        clustered = None
        if self.input_features == "pca":
            features = np.subtract(components, self.module.input_center.cpu().numpy(), out=components)
            # kept only where they are clustered; smoothing the MLP view's input would overwrite them
            if self.cluster_components and self.n_clusters is not None:
                clustered = features if self.smoothing[0] == 0 else features.copy()
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
        data = CellGraphData.build(graph, features, smoothing=self.smoothing, normalization=self.graph_normalization)
        data.negative_weight = negative_weight
        data.components = clustered
        return data

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
