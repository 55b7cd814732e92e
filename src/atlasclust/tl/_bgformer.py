"""``tl.bgformer``: BGFormer clustering, the scanpy way."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import anndata as ad
import numpy as np
from scanpy import logging as logg

from atlasclust._constants import BGFORMER_RESOLUTION, DEFAULT_N_TOP_GENES, HIGHLY_VARIABLE_IF_PRESENT
from atlasclust._docs import doc_params
from atlasclust.bgformer import BGFormer

from ._run import Collected, Tool, run_tool

#: A cluster is reported as grown by the DEC phase when it ends with at least this share of the cells ...
GROWN_CLUSTER_SHARE = 0.3
#: ... and at least this many times the share of the largest cluster the phase started from.
GROWN_CLUSTER_FACTOR = 2.0


@doc_params()
def bgformer(
    adata: ad.AnnData | PathLike | str,
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
    {doc_adata}
        Or an `annbatch <https://annbatch.readthedocs.io>`_ collection (an
        ``annbatch.DatasetCollection`` or its path; ``pip install 'atlasclust[annbatch]'``, Python
        3.12+): training then reads shuffled batches from it through scvi-tools'
        ``AnnbatchDataModule``, and the results come back in a new AnnData of its cells (their
        ``obs``, no counts), as with ``copy=True``. See :doc:`/scaling`.
    n_clusters
        Number of clusters. ``None`` finds it with Leiden (at ``resolution``) on the embedding
        learned in the first training phase.
    {doc_layer}
    batch_key
        ``obs`` column naming each cell's batch (sample, donor, technology). Each cell's input is
        then centred within its batch and the ZINB decoders are conditioned on it, as scVI's are,
        so that the embedding (and the clusters) need not follow the batches; cells to ``predict``
        later must come from the same batches.
    {doc_genes}
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
    {doc_devices}
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
    {doc_run}
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
    arguments = {name: value for name, value in locals().items() if name not in ("adata", "kwargs")}

    def collect(model: BGFormer) -> Collected:
        try:
            summary = model.summarize(num_workers=num_workers, cell_attention=store_attention)
        finally:
            model.release_device_data()  # the GPU memory of data_on_device goes back to the user
        codes = summary["soft"].argmax(axis=1)
        present = np.unique(codes)
        if len(present) < model.n_clusters_:
            logg.warning(f"{model.n_clusters_ - len(present)} of {model.n_clusters_} clusters received no cells")
        if (grown := grown_cluster_warning(model.cluster_start_fractions(), codes, key_added)) is not None:
            logg.warning(grown)
        return Collected(
            embedding=summary["latent"],
            codes=codes,
            params={
                "n_clusters_found": int(model.n_clusters_),
                # how the DEC centres started (kmeans, merged or leiden); unknown when a checkpoint resumed that phase
                "center_start": (model.center_start_ or {}).get("start"),
            },
            uns={
                "attention": summary["attention"][present],
                "attention_clusters": present.astype(str),  # the clusters of its rows
                "anchor_usage": summary["anchor_usage"],
                "anchors": summary["anchors"],
            },
            obs={f"{key_added}_confidence": summary["soft"].max(axis=1)},
            # without store_attention, an earlier run's per-cell attention would no longer match: None drops it
            obsm={f"{key_added}_attention": summary["cell_attention"] if store_attention else None},
        )

    tool = Tool("tl.bgformer", BGFormer, collect, {"batch_key": "obs"})
    return run_tool(tool, adata, arguments, kwargs, first_batch_size=batch_size)


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
