"""``tl.bgformer``: BGFormer clustering, the scanpy way."""

from __future__ import annotations

import inspect
from pathlib import Path

import anndata as ad
import numpy as np
import scvi
from scanpy import logging as logg
from scvi.model.base import UnsupervisedTrainingMixin

from atlasclust._constants import BGFORMER_RESOLUTION, DEFAULT_N_TOP_GENES, HIGHLY_VARIABLE_IF_PRESENT
from atlasclust._validate import check_keywords, keyword_names, trainer_keywords
from atlasclust.bgformer import BGFormer
from atlasclust.data import (
    check_batch_column,
    counts_matrix,
    default_mask_var,
    gene_mask,
    raw_counts_hint,
    training_view,
)
from atlasclust.train import checkpoint_folder, deterministic_mode, halving_batch_size_on_oom, lightning_info_as_scanpy

from ._results import cluster_categorical, package_versions, storable, write_clustering

_MODEL_OPTIONS = set(inspect.signature(BGFormer.__init__).parameters) - {"self", "adata", "registry"}
#: Every keyword the tool passes on: model options, the model's ``train``, scvi-tools' training loop and Trainer.
_ACCEPTED_KEYWORDS = (
    _MODEL_OPTIONS | keyword_names(BGFormer.train, UnsupervisedTrainingMixin.train) | trainer_keywords()
)

#: A cluster is reported as grown by the DEC phase when it ends with at least this share of the cells ...
GROWN_CLUSTER_SHARE = 0.3
#: ... and at least this many times the share of the largest cluster the phase started from.
GROWN_CLUSTER_FACTOR = 2.0


def bgformer(
    adata: ad.AnnData,
    n_clusters: int | None = None,
    *,
    layer: str | None = None,
    batch_key: str | None = None,
    mask_var: np.ndarray | str | None = HIGHLY_VARIABLE_IF_PRESENT,
    n_top_genes: int | None = DEFAULT_N_TOP_GENES,
    n_anchors: int = 64,
    n_heads: int = 4,
    n_latent: int = 128,
    resolution: float = BGFORMER_RESOLUTION,
    max_epochs: int | None = None,
    batch_size: int = 256,
    lr: float = 1e-3,
    accelerator: str = "auto",
    devices: int | list[int] | str = "auto",
    strategy: str = "auto",
    num_workers: int = 0,
    early_stopping: bool = False,
    store_attention: bool = False,
    auto_batch_size: bool = False,
    checkpoint_dir: str | Path | None = None,
    deterministic: bool = False,
    enable_progress_bar: bool = True,
    random_state: int = 0,
    key_added: str = "bgformer",
    copy: bool = False,
    return_model: bool = False,
    **kwargs,
) -> ad.AnnData | BGFormer | tuple[ad.AnnData, BGFormer] | None:
    """Cluster cells with BGFormer :cite:p:`Liang2026`.

    Cells attend to ``n_anchors`` learnable anchor tokens (a bipartite cell-anchor graph) rather
    than to each other, so training time is linear in the number of cells. The model reads raw
    counts (in memory, sparse or dense, or from a file opened with ``backed="r"``), learns an
    embedding by ZINB reconstruction and assigns clusters with a DEC head. No cell labels are
    read.

    Parameters
    ----------
    adata
        Annotated data with raw counts (cells x genes).
    n_clusters
        Number of clusters. ``None`` finds it with Leiden (at ``resolution``) on the embedding
        learned in the first training phase.
    layer
        Layer with raw counts; ``None`` uses ``adata.X``. A file opened with ``backed="r"`` keeps
        only ``X`` on disk (anndata reads its layers into memory).
    batch_key
        ``obs`` column naming each cell's batch (sample, donor, technology). Each cell's input is
        then centred within its batch and the ZINB decoders are conditioned on it, as scVI's are,
        so that the embedding (and the clusters) need not follow the batches; cells to ``predict``
        later must come from the same batches.
    mask_var
        The genes to train on, as in :func:`scanpy.pp.pca`: the name of a boolean ``var`` column or
        a boolean array over the genes. By default ``var["highly_variable"]`` when it exists (from
        :func:`scanpy.pp.highly_variable_genes`; an info message says so); ``None`` or no such
        column: the ``n_top_genes`` most variable genes.
    n_top_genes
        Without a gene selection: the number of most variable genes (Seurat flavour) to use, all
        genes when there are fewer (targeted panels have a few hundred); ``None`` uses all genes.
        Genes with no counts in any cell are left out either way (an info message says how many).
        On data already reduced to a few thousand genes, all of them may do better: on the DLPFC
        slices of 5000 genes ARI rose from about 0.3 to 0.4-0.45, on Zeisel's 4000 it did not
        change (:doc:`/accuracy`).
    n_anchors
        Number of anchor tokens.
    n_heads
        Number of attention heads (must divide ``n_latent``).
    n_latent
        Width of the embedding.
    resolution
        Leiden resolution, used when ``n_clusters`` is ``None``.
    max_epochs
        Training epochs (both phases); ``None`` gives at least 15 epochs and about 300 optimiser
        steps of ``batch_size`` cells.
    batch_size
        Cells per mini-batch.
    lr
        Learning rate (AdamW).
    accelerator
        Lightning accelerator: ``"auto"``, ``"cpu"``, ``"gpu"``.
    devices
        Lightning devices, e.g. ``2`` or ``[0, 1]``.
    strategy
        Lightning strategy, e.g. ``"ddp"`` for several GPUs.
    num_workers
        Data-loader workers; helps with backed data.
    early_stopping
        Stop each phase on an unsupervised validation loss (holds out 10% of cells).
    store_attention
        Also keep each cell's attention (``heads * anchors`` float16 values per cell) in
        ``obsm[key_added + "_attention"]``, so that :func:`atlasclust.pl.attention_heatmap` can
        group cells by any ``obs`` column without the model.
    auto_batch_size
        On GPU out-of-memory, halve ``batch_size`` and start again (down to 16 cells) instead of
        raising a :class:`MemoryError` that names the batch size to try.
    checkpoint_dir
        Folder for training checkpoints, written at the end of every epoch. Calling again with
        the same folder and arguments after an interruption resumes from the last epoch saved
        and gives the result of an uninterrupted run; see :doc:`/reproducibility`.
    deterministic
        Use PyTorch's deterministic kernels during the call (and restore the previous setting
        after). CPU runs are reproducible without it; on a GPU it makes runs with the same
        seed far closer, at some cost in speed (bitwise identical for scRCL; see
        :doc:`/reproducibility` for BGFormer).
    enable_progress_bar
        Show the training progress bar.
    random_state
        Seed of everything random in the run (weights, batches, noise, initialisations).
    key_added
        Name under which the results are stored (see Returns).
    copy
        Return a copy instead of writing into ``adata`` (not for backed data).
    return_model
        Also return the trained :class:`~atlasclust.models.BGFormer`, e.g. to ``save`` it or to
        ``predict`` new cells.
    **kwargs
        Further model options (``dropout``, ``input_noise``, ``anchor_refresh``, ``dec_weight``,
        ``anchor_weight``, ``n_ffn``, ``center_init``) or training options of
        :meth:`~atlasclust.models.BGFormer.train` (``pretrain_fraction``, ``weight_decay``,
        ``train_size``, ``data_on_device``, ``shuffle_block_size``, ``plan_kwargs``, Lightning ``Trainer`` arguments such
        as ``precision="bf16-mixed"``). Any other keyword raises a :class:`TypeError` at once,
        naming the closest accepted one.

    Returns
    -------
    None, AnnData, model or (AnnData, model)
        ``None``, the AnnData (``copy=True``), the model (``return_model=True``) or both as
        ``(adata, model)``. Written only once training has succeeded:

        ``adata.obsm["X_bgformer"]`` (``"X_" + key_added``), :class:`numpy.ndarray` (float32)
            The embedding, ``cells x n_latent``.
        ``adata.obs["bgformer"]`` (``key_added``), :class:`pandas.Series` (dtype ``category``)
            Cluster labels ``'0', '1', …``.
        ``adata.obs["bgformer_confidence"]`` (``key_added + "_confidence"``), :class:`pandas.Series` (float)
            Highest soft-assignment probability of each cell.
        ``adata.obsm["bgformer_attention"]`` (``key_added + "_attention"``), :class:`numpy.ndarray` (float16)
            Only with ``store_attention=True``: per-cell attention, ``cells x (heads * anchors)``.
        ``adata.uns["bgformer"]`` (``key_added``), :class:`dict`
            ``params`` (every argument, the seed, the number of clusters, how the DEC centres started
            as ``center_start``: ``"kmeans"``, ``"merged"`` or ``"leiden"``, package versions),
            ``history`` (per-epoch losses), ``attention`` (clusters x heads x anchors mean attention,
            rows in the order of the label categories), ``attention_clusters`` (the clusters of those
            rows), ``anchor_usage`` (share of cells nearest to each anchor), ``anchors`` (the anchor
            vectors) and ``genes`` (the genes the model used).

    Examples
    --------
    >>> import scanpy as sc, atlasclust as ac
    >>> adata = ac.datasets.zeisel()
    >>> ac.tl.bgformer(adata, n_clusters=7)
    >>> sc.pl.embedding(adata, basis="bgformer", color="bgformer")
    """
    arguments = {name: value for name, value in locals().items() if name not in ("adata", "kwargs")} | kwargs
    start = logg.info("running BGFormer")
    if copy and adata.isbacked:
        msg = "copy=True needs an in-memory AnnData; with backed data, write the result with adata.write(new_path)."
        raise ValueError(msg)
    counts_matrix(adata, layer)  # KeyError for a missing layer, before any work
    if batch_key is not None:
        check_batch_column(adata, batch_key)
    check_keywords("tl.bgformer", kwargs, _ACCEPTED_KEYWORDS)
    mask_var = default_mask_var(adata.var, mask_var)
    genes = gene_mask(adata.var, mask_var)  # a clear error for a bad selection, before any work
    arguments["mask_var"] = mask_var if genes is None or isinstance(mask_var, str) else "boolean array"
    model_options = {k: v for k, v in kwargs.items() if k in _MODEL_OPTIONS}
    train_options = {k: v for k, v in kwargs.items() if k not in _MODEL_OPTIONS}

    def fit(batch_size: int) -> BGFormer:
        with lightning_info_as_scanpy():  # Lightning logs "Seed set to …"
            scvi.settings.seed = random_state
        view = training_view(adata, layer, obs_keys=(batch_key,))
        BGFormer.setup_anndata(view, layer=layer, batch_key=batch_key)
        model = BGFormer(
            view,
            n_clusters,
            mask_var=genes,
            n_top_genes=n_top_genes,
            n_latent=n_latent,
            n_anchors=n_anchors,
            n_heads=n_heads,
            resolution=resolution,
            **model_options,
        )
        model.train(
            max_epochs,
            batch_size=batch_size,
            lr=lr,
            accelerator=accelerator,
            devices=devices,
            strategy=strategy,
            num_workers=num_workers,
            early_stopping=early_stopping,
            enable_progress_bar=enable_progress_bar,
            random_state=random_state,
            checkpoint_dir=checkpoint_folder(checkpoint_dir, batch_size, initial=arguments["batch_size"]),
            **train_options,
        )
        return model

    with raw_counts_hint(adata), deterministic_mode(deterministic):
        model = halving_batch_size_on_oom(fit, batch_size, allow=auto_batch_size)
        try:
            summary = model.summarize(num_workers=num_workers, cell_attention=store_attention)
        finally:
            model.release_device_data()  # the GPU memory of data_on_device goes back to the user
    codes = summary["soft"].argmax(axis=1)
    labels = cluster_categorical(codes)
    present = np.asarray(labels.categories).astype(int)
    if len(present) < model.n_clusters_:
        logg.warning(f"{model.n_clusters_ - len(present)} of {model.n_clusters_} clusters received no cells")
    grown = grown_cluster_warning(model.module.start_fractions.cpu().numpy(), codes, key_added)
    if grown is not None:
        logg.warning(grown)

    params = arguments | {
        "n_epochs_trained": len(model.history_),
        "n_clusters_found": int(model.n_clusters_),
        # how the DEC centres started (kmeans, merged or leiden); unknown when a checkpoint resumed the DEC phase
        "center_start": (model.center_start_ or {}).get("start"),
        "batch_size_used": int(model.batch_size_),
        "versions": package_versions(),
    }
    target = adata.copy() if copy else adata
    written = write_clustering(
        target,
        key_added,
        embedding=summary["latent"],
        labels=labels,
        obs_extra={f"{key_added}_confidence": summary["soft"].max(axis=1)},
        # without store_attention, an earlier run's per-cell attention would no longer match: None drops it
        obsm_extra={f"{key_added}_attention": summary["cell_attention"] if store_attention else None},
        uns={
            "params": storable(params),
            "history": model.history_,
            "attention": summary["attention"][present],
            "attention_clusters": np.asarray(labels.categories).astype(str),  # the clusters of its rows
            "anchor_usage": summary["anchor_usage"],
            "anchors": summary["anchors"],
            "genes": model.selected_genes_,
        },
    )
    logg.info(
        "    finished",
        time=start,
        deep=f"found {len(present)} clusters and added\n    " + ", ".join(written),
    )
    if return_model:
        return (target, model) if copy else model
    return target if copy else None


def grown_cluster_warning(start_fractions: np.ndarray, codes: np.ndarray, key: str) -> str | None:
    """What to tell the user when the DEC phase gathered far more cells in one cluster than any held at its start.

    On groups that differ weakly the DEC phase can pull most cells into one cluster (simulated
    groups: from at most 9% to 58% and 65% of the cells, `benchmarks/results/dec_phase.md`); on the
    twelve benchmark datasets no cluster grew more than 1.4-fold (seeds 0 and 1). ``start_fractions``
    is the share of cells nearest each centre when the phase began (NaN when unknown), ``codes``
    each cell's final cluster.
    """
    if len(codes) == 0 or not np.isfinite(start_fractions).all():
        return None
    final = np.bincount(codes, minlength=len(start_fractions)) / len(codes)
    largest = int(final.argmax())
    share, start = final[largest], start_fractions.max()
    if share < GROWN_CLUSTER_SHARE or share < GROWN_CLUSTER_FACTOR * start:
        return None
    return (
        f"cluster '{largest}' holds {share:.0%} of the cells, but no cluster held more than {start:.0%} when the "
        "clustering (DEC) phase began: it may have merged groups that differ weakly. Compare with Leiden or "
        f"k-means on obsm['X_{key}'] or on principal components (see 'When groups differ weakly' in the docs' "
        "Accuracy page)."
    )
