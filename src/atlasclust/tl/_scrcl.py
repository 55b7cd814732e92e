"""``tl.scrcl``: scRCL clustering of scRNA-seq or spatial data, the scanpy way."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np

from atlasclust._constants import DEFAULT_N_TOP_GENES, HIGHLY_VARIABLE_IF_PRESENT, SCRCL_RESOLUTION
from atlasclust._docs import doc_params
from atlasclust.data import (
    check_coordinates,
    spatial_majority_vote,
)
from atlasclust.scrcl import SCRCL, default_batch_size

from ._run import Collected, Tool, run_tool


@doc_params()
def scrcl(
    adata: ad.AnnData,
    n_clusters: int | None = None,
    *,
    layer: str | None = None,
    spatial_key: str | None = None,
    graph_key: str | None = None,
    batch_key: str | None = None,
    library_key: str | None = None,
    n_neighbors: int | None = None,
    n_gene_neighbors: int = 5,
    mask_var: np.ndarray | str | None = HIGHLY_VARIABLE_IF_PRESENT,
    n_top_genes: int | None = DEFAULT_N_TOP_GENES,
    n_hidden: int = 256,
    temperature: float = 1.0,
    alpha: float = 100.0,
    beta: float = 1.0,
    smoothing: tuple[int, int] | None = None,
    graph_normalization: str = "auto",
    resolution: float = SCRCL_RESOLUTION,
    representation: str = "views",
    smooth_labels: int = 0,
    max_epochs: int | None = None,
    batch_size: int | None = None,
    lr: float = 1e-3,
    accelerator: str = "auto",
    devices: int | list[int] | str = "auto",
    auto_batch_size: bool = False,
    checkpoint_dir: str | Path | None = None,
    deterministic: bool = False,
    enable_progress_bar: bool = True,
    random_state: int = 0,
    key_added: str = "scrcl",
    copy: bool = False,
    return_model: bool = False,
    **kwargs,
) -> ad.AnnData | SCRCL | tuple[ad.AnnData, SCRCL] | None:
    """Cluster cells or spots with scRCL :cite:p:`Peng2026`.

    An MLP view and a GCN view of the cell graph are aligned by contrastive losses and refined
    by gene embeddings learned on a gene-gene graph; the embedding (by default the two views
    ``[E_mlp | E_gcn]``) is then clustered by k-means (``n_clusters`` given) or Leiden. No loss forms an ``N x N`` array, and
    above 20,000 cells training goes by mini-batches of seed cells and their graph neighbours.
    No cell labels are read.

    Parameters
    ----------
    {doc_adata}
    n_clusters
        Number of clusters; ``None`` uses Leiden at ``resolution`` on the embedding.
    {doc_layer}
    spatial_key
        ``obsm`` key of spot coordinates (e.g. ``"spatial"``): the cell graph is their kNN graph.
    graph_key
        ``obsp`` key of a cell graph to use as it is (binarised and symmetrised).
    batch_key
        ``obs`` column naming each cell's batch (sample, donor). Each cell is then centred on its
        own batch's gene means before the principal axes, the expression graph and the views, so
        that neighbours and clusters need not follow the batches; cells to ``predict`` later must
        come from the same batches. With ``spatial_key`` and no ``library_key``, each batch is taken
        as a slice of its own: spots are joined (and ``smooth_labels`` votes) only within their batch.
    library_key
        With ``spatial_key``: ``obs`` column naming each spot's slice when several are pooled
        (squidpy's ``library_key``). Their coordinates may overlap; spots are joined by space (and
        ``smooth_labels`` votes) only within their own slice, and across slices to their mutual
        nearest neighbours in expression (``mnn_neighbors``, a model option, 5 by default), so the
        slices' embeddings stay comparable. Unlike ``batch_key`` it leaves the expression as it is,
        which suits slices whose layers or regions come in different shares (see :doc:`/concepts`).
    n_neighbors
        Neighbours per cell of the expression (or spatial) kNN graph; ``None`` gives 10 for the
        expression graph (it clustered the shared scRNA-seq datasets better than the reference's 15)
        and 15 with ``spatial_key``.
    n_gene_neighbors
        Neighbours per gene of the gene graph (the gene itself included).
    {doc_genes}
    n_hidden
        Width of both views.
    temperature
        Softmax temperature of the alignment losses.
    alpha
        Weight of the neighbourhood contrastive loss.
    beta
        Weight of the cross-view consistency loss.
    smoothing
        Powers of the normalised cell graph applied to the inputs of the MLP view and of the GCN
        view (the reference's ``tms``). ``None`` gives ``(10, 8)`` with ``spatial_key`` (the
        reference's DLPFC setting) and ``(0, 0)`` (no smoothing) otherwise.
    graph_normalization
        How the GCN view (and ``smoothing``) combines a cell with its graph neighbours:
        ``"mean"``, their average ``D^-1 (A + I)``, or ``"symmetric"``, the reference's
        ``D^-1/2 (A + I) D^-1/2``, which weighs cells by degree and on large expression graphs
        separates hub cells from the rest instead of cell types (see :doc:`/scaling`).
        ``"auto"`` is ``"symmetric"`` up to 20,000 cells, where it clusters the shared datasets
        slightly better, and ``"mean"`` above.
    resolution
        Leiden resolution when ``n_clusters`` is ``None``; 0.25 by default, below scanpy's 1, since
        Leiden at 1 cut scRCL's embedding into 1.4 to 4 times as many clusters as cell types on the
        shared datasets (the contrastive losses spread cells evenly, so its kNN graph is less modular).
    representation
        Embedding stored and clustered: ``"views"``, the MLP and GCN views ``[E_mlp | E_gcn]``
        (``2 n_hidden`` wide), or ``"refined"``, the gene-refined views ``[Z_mlp | Z_gcn]`` that
        the paper clusters (its Eq. 11; ``2 n_refined`` wide). Clustered alone, ``"views"`` did
        better on 9 of the 12 shared datasets and on average; ``"refined"`` on mouse bladder and two
        DLPFC slices (``benchmarks/results/scrcl_representation.md``). Beside the components
        (``cluster_components``), ``"views"`` did better on six of the seven scRNA-seq sets (mean
        ARI 0.75 against 0.67, two seeds; the Accuracy page). The losses are the same.
    smooth_labels
        With ``spatial_key``: relabel each spot by majority vote over itself and this many
        nearest spots (0: off; the reference uses 50).
    max_epochs
        Passes over the cells; ``None`` gives about 100 optimiser steps (the reference
        trains 500 full-batch steps but keeps its best epoch by the labels; scored at the end,
        100 steps cluster better on the shared datasets).
    batch_size
        Seed cells per step; ``None`` is full batch up to 20,000 cells, 2048 above.
    lr
        Adam learning rate.
    {doc_devices}
    {doc_run}
    return_model
        Also return the trained :class:`~atlasclust.models.SCRCL`.
    **kwargs
        Further model options (``metric`` of the expression graph, ``mnn_neighbors``, ``n_refined``, ``n_descriptors``,
        ``dropout``, ``input_features``: what the views read, by default the principal components
        of the expression, or the centred expression with ``spatial_key``; ``input_center``: the
        origin of the components, ``"balanced"`` (the median of k-means centres, by default) or
        ``"mean"`` (the mean cell); ``balance_negatives``: whether each k-means cluster of the
        components pushes the others away alike in the contrastive loss (``True`` by default);
        ``cluster_components``: whether, with ``n_clusters``, the clusters are found on the embedding
        beside those components, each scaled to the same spread (``True`` by default);
        ``center_init``: how the
        clusters are found with ``n_clusters``, ``"kmeans"`` by default) or training options of
        :meth:`~atlasclust.models.SCRCL.train` (``weight_decay``, ``strategy``, ``plan_kwargs``,
        Lightning ``Trainer`` arguments). Any other keyword raises a :class:`TypeError` at once,
        naming the closest accepted one.

    Returns
    -------
    None, AnnData, model or (AnnData, model)
        ``None``, the AnnData (``copy=True``), the model (``return_model=True``) or ``(adata, model)``.
        Written only once training has succeeded:

        ``adata.obsm["X_scrcl"]`` (``"X_" + key_added``), :class:`numpy.ndarray` (float32)
            The embedding ``[E_mlp | E_gcn]`` (``representation="views"``) or ``[Z_mlp | Z_gcn]``
            (``"refined"``), each half of unit norm.
        ``adata.obs["scrcl"]`` (``key_added``), :class:`pandas.Series` (dtype ``category``)
            Cluster labels ``'0', '1', …``.
        ``adata.obsp["scrcl_connectivities"]`` (``key_added + "_connectivities"``), :class:`scipy.sparse.csr_matrix`
            The binary cell graph the method used.
        ``adata.varm["scrcl_gene_embedding"]`` (``key_added + "_gene_embedding"``), :class:`numpy.ndarray`
            Learned gene embedding (``NaN`` for genes the model did not use).
        ``adata.uns["scrcl"]`` (``key_added``), :class:`dict`
            ``params`` (every argument, the seed, versions, how the clusters were found as
            ``center_start``: ``"kmeans"``, ``"merged"`` or ``"leiden"``, and whether on the embedding beside
            the principal components as ``cluster_components_used``), ``history`` (per-epoch losses) and
            ``genes`` (the genes the model used).

    Examples
    --------
    >>> import atlasclust as ac
    >>> adata = ac.datasets.zeisel()
    >>> ac.tl.scrcl(adata, n_clusters=7)
    >>> ac.tl.scrcl(spots, n_clusters=7, spatial_key="spatial", smooth_labels=50)
    """
    arguments = {name: value for name, value in locals().items() if name not in ("adata", "kwargs")}

    def checks() -> None:
        if smooth_labels and spatial_key is None:
            msg = "smooth_labels needs spot coordinates: pass spatial_key (e.g. 'spatial')."
            raise ValueError(msg)

    def collect(model: SCRCL) -> Collected:
        embedding = model.get_latent_representation()
        codes = model.predict()
        if smooth_labels:
            coordinates = check_coordinates(adata.obsm[spatial_key], key=spatial_key, n_obs=adata.n_obs)
            # the slices the model's spatial graph was built within
            codes = spatial_majority_vote(
                codes, coordinates, n_neighbors=smooth_labels, groups=model.slice_codes(adata)
            )
        return Collected(
            embedding=embedding,
            codes=codes,
            params={
                "smoothing_used": list(model.smoothing),
                "n_neighbors_used": model.n_neighbors,
                "graph_normalization_used": model.graph_normalization,
                "input_features_used": model.input_features,
                # whether the clusters were found on the embedding beside the principal components
                "cluster_components_used": bool(len(model.module.cluster_scales)),
                # how the cluster centres were found (kmeans, merged or leiden)
                "center_start": (model.center_start_ or {}).get("start"),
            },
            obsp={f"{key_added}_connectivities": model.training_graph().copy()},
            varm={f"{key_added}_gene_embedding": model.gene_embedding(all_genes=True).to_numpy()},
        )

    tool = Tool(
        "tl.scrcl",
        SCRCL,
        collect,
        {"batch_key": "obs", "library_key": "obs", "spatial_key": "obsm", "graph_key": "obsp"},
    )
    first_batch = default_batch_size if batch_size is None else batch_size
    return run_tool(tool, adata, arguments, kwargs, checks=checks, first_batch_size=first_batch)
