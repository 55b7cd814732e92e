"""The base of atlasclust's models: what BGFormer and scRCL share, so that each model holds only what differs.

Like scvi-tools' ``SCVI`` on ``BaseModelClass`` and ``UnsupervisedTrainingMixin``: registration with
scvi-tools, the genes a model reads, the fewest cells it trains on, and loading a saved model.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager
from scvi.data.fields import CategoricalObsField, NumericalObsField
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin

from atlasclust._validate import check_cluster_count, check_positive
from atlasclust.data import (
    INDICES_COLUMN,
    CountStatistics,
    check_n_top_genes,
    choose_genes,
    counts_matrix,
    describe_source,
    gene_mask,
    log_normalized_moments,
    planned_gene_count,
    scan_counts,
    with_chosen_genes,
)

from ._loading import load_saved_model

#: Fewest cells a model trains on.
MIN_CELLS = 10


class ClusteringModel(UnsupervisedTrainingMixin, BaseModelClass):
    """A clustering model of atlasclust on scvi-tools, the base of BGFormer and scRCL.

    A subclass names itself in :attr:`method_name`, builds its scvi-tools module in
    :meth:`_new_module` and, in ``__init__``, calls :meth:`_init_clustering`; once the counts are
    scanned it calls :meth:`_choose_genes`.
    """

    #: The method's name in messages.
    method_name = "atlasclust"
    #: How the method ranks genes without a selection (:data:`~atlasclust._constants.GENE_FLAVORS`).
    gene_flavor = "seurat"

    # ------------------------------------------------------------------------------------ set-up
    @classmethod
    def _register(
        cls,
        adata: ad.AnnData,
        setup_method_args: dict,
        *,
        fields: list | None = None,
        batch_key: str | None = None,
        **kwargs,
    ) -> None:
        """Register ``adata`` with ``fields`` (the counts, where the model reads them), each cell's row and its batch.

        The row index lets batches drawn from a backed file, which come back sorted, be put back in place.
        """
        if INDICES_COLUMN not in adata.obs:
            adata.obs[INDICES_COLUMN] = np.arange(adata.n_obs)
        fields = [*(fields or []), NumericalObsField(REGISTRY_KEYS.INDICES_KEY, INDICES_COLUMN)]
        if batch_key is not None:  # registered for its categories (codes of new cells follow them)
            fields.append(CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key))
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)

    def _init_clustering(
        self, n_clusters: int | None, resolution: float, mask_var, n_top_genes: int | None
    ) -> tuple[np.ndarray | None, int]:
        """Check and keep what every model is given: clusters, resolution, genes; enough cells.

        Returns the gene mask (what the saved parameters keep) and the planned input width.
        """
        n_cells = self.adata.n_obs
        mask, n_genes = self._init_genes(mask_var, n_top_genes)
        check_cluster_count(n_clusters, n_cells)
        check_positive(resolution=resolution)
        self._check_enough_cells(n_cells)
        self.n_clusters = n_clusters
        self.resolution = resolution
        return mask, n_genes

    def _check_enough_cells(self, n_cells: int) -> None:
        if n_cells < MIN_CELLS:
            msg = f"Only {n_cells} cells: {self.method_name} needs at least {MIN_CELLS} cells to train."
            raise ValueError(msg)

    # ------------------------------------------------------------------------------------ genes
    def _init_genes(self, mask_var, n_top_genes: int | None) -> tuple[np.ndarray | None, int]:
        """Check and keep the gene selection; return the mask (what the saved parameters keep) and the planned width."""
        check_n_top_genes(n_top_genes)
        mask = gene_mask(self.adata.var, mask_var)
        self._gene_mask = mask
        self.n_top_genes = n_top_genes
        return mask, planned_gene_count(self.adata.n_vars, mask, n_top_genes)

    def _new_module(self, n_genes: int):
        """A fresh scvi-tools module reading ``n_genes`` genes."""
        raise NotImplementedError

    def _choose_genes(self, statistics: CountStatistics) -> np.ndarray:
        """The genes to train on, once the counts are scanned (see :func:`atlasclust.data.choose_genes`).

        When genes without counts make the input narrower than planned, the (untrained) module is
        built again at that width and the saved parameters name the genes chosen, so that
        :meth:`load` rebuilds the same width.
        """
        gene_index = choose_genes(statistics, self._gene_mask, self.n_top_genes, flavor=self.gene_flavor)
        if len(gene_index) != len(self.module.gene_index):
            self.module = self._new_module(len(gene_index))
            self.init_params_ = with_chosen_genes(self.init_params_, gene_index, self.adata.n_vars)
        return gene_index

    def _learn_input_transform(self, batch_codes: np.ndarray | None, counts=None) -> tuple:
        """One streamed pass over the counts: validate them, choose the genes, learn their scaling.

        The module keeps the transform (its :class:`~atlasclust.nn.CountInputBuffers`); with
        ``batch_codes`` (each cell's batch) and a module that centres within batches, each batch's
        gene means too. ``counts`` are the cells trained on when they are not the registered
        AnnData's (an annbatch collection's). Returns the counts, their
        :class:`~atlasclust.data.CountStatistics`, the chosen genes and their moments, for what a
        model derives further. Choosing the genes may build ``self.module`` anew (see
        :meth:`_choose_genes`): read ``self.module`` only after this call.
        """
        layer = self.registry_["setup_args"]["layer"]
        if counts is None:
            matrix, source = counts_matrix(self.adata, layer), describe_source(layer)
        else:
            matrix, source = counts, "the collection's X"
        statistics = scan_counts(matrix, source=source)
        gene_index = self._choose_genes(statistics)
        median = statistics.median_library_size
        n_batch = self.module.n_batch
        moments = log_normalized_moments(
            matrix,
            statistics.library_size,
            gene_index,
            target_sum=median,
            groups=batch_codes if n_batch else None,
            n_groups=n_batch,
        )
        self.module.set_gene_statistics(gene_index, moments.mean, moments.std, median, moments.group_mean)
        self.selected_genes_ = np.asarray(self.adata.var_names[gene_index]).astype(str)
        return matrix, statistics, gene_index, moments

    # ------------------------------------------------------------------------------------ load
    @classmethod
    def load(cls, dir_path: str, adata: ad.AnnData | None = None, **kwargs):
        """Load a saved model, for ``adata`` or for the AnnData saved with it.

        ``adata`` itself is not modified: the model registers a light view of it. Nothing is
        printed at scanpy's default verbosity.

        Parameters
        ----------
        dir_path
            Folder written by :meth:`save`.
        adata
            AnnData with the training genes in the same order and counts in the same layer (and
            the batch column, spot coordinates or cell graph the model was set up with).
            ``None``: the AnnData saved with the model (``save(…, save_anndata=True)``), as in
            scvi-tools.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.load` (e.g. ``accelerator``).
        """
        model = load_saved_model(cls, dir_path, adata, **kwargs)
        model._after_load()
        return model

    def _after_load(self) -> None:
        """What a loaded model sets before use (nothing here)."""
