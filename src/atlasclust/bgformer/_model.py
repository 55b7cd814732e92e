"""BGFormer as a scvi-tools model: setup, training phases, inference, save and load."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata.abc import CSCDataset, CSRDataset
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager
from scvi.data.fields import CategoricalObsField, LayerField, NumericalObsField
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin
from sklearn.metrics import pairwise_distances_argmin

from atlasclust._constants import BGFORMER_RESOLUTION as DEFAULT_RESOLUTION
from atlasclust._constants import CENTER_INITS, DEFAULT_N_TOP_GENES
from atlasclust._validate import as_int, check_cluster_count, check_fraction, check_non_negative, check_positive
from atlasclust.data import (
    INDICES_COLUMN,
    BlockShuffleDataSplitter,
    DeviceDataSplitter,
    DeviceRows,
    as_sparse_matrix,
    check_batch_column,
    check_n_top_genes,
    check_same_genes,
    choose_genes,
    counts_matrix,
    describe_source,
    gene_mask,
    log_normalized_moments,
    planned_gene_count,
    resolve_data_on_device,
    saved_batches,
    scan_counts,
    sparse_batches,
    training_device,
    training_view,
    with_chosen_genes,
)
from atlasclust.train import (
    PhaseCheckpoint,
    RunProgressBar,
    cluster_centers,
    history_frame,
    join_history,
    load_saved_model,
    phase_checkpoint,
    quiet_fit,
    quiet_scvi,
    set_aside_history,
    training_settings,
    with_trainer_guard,
)

from ._module import BGFormerModule
from ._training import BGFormerTrainingPlan

logger = logging.getLogger(__name__)

#: Cells used to initialise anchors and to find cluster centres (a random subsample above it).
_MAX_INIT_CELLS = 50_000
#: Fewest cells a model trains on.
MIN_CELLS = 10


#: Optimiser steps the default training budget reaches at least (with at least 15 epochs). Counted
#: in batches of the size used: on 50,000 simulated cells, batches of 16,384 reached ARI 0.45 in 15
#: epochs (60 steps) and 0.96 in 99 (396 steps); 256 reached 0.87 (benchmarks/results/batch_size.md).
#: On eight shared datasets, half or twice the epochs scored lower on average (mean ARI -0.036 and
#: -0.021; benchmarks/results/training_length.md).
DEFAULT_MIN_STEPS = 300


def default_max_epochs(n_cells: int, batch_size: int = 256) -> int:
    """Training epochs when none are given: at least 15 epochs and about 300 steps of ``batch_size`` cells.

    Small datasets, and large batches, get more epochs (up to 300) so that they still see enough
    optimiser steps.
    """
    return int(np.clip(math.ceil(DEFAULT_MIN_STEPS * min(batch_size, n_cells) / n_cells), 15, 300))


class BGFormer(UnsupervisedTrainingMixin, BaseModelClass):
    """BGFormer: bipartite cell-anchor attention clustering :cite:p:`Liang2026`.

    Cells attend to a small set of learnable anchor tokens instead of to each other, so training
    is linear in the number of cells. Anchors are learned by ZINB reconstruction of the counts
    through a nearest-anchor codebook; the embedding is learned by denoising ZINB reconstruction;
    clusters come from a DEC head whose centres are initialised, after a first training phase,
    by k-means (``n_clusters`` given) or Leiden (``n_clusters=None``) on the learned embedding.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata` (raw counts, in memory or backed).
    n_clusters
        Number of clusters; ``None`` finds it by Leiden on the embedding after pre-training.
    mask_var
        The genes to train on: the name of a boolean ``var`` column (such as ``"highly_variable"``)
        or a boolean array over the genes. ``None`` chooses ``n_top_genes`` genes.
    n_top_genes
        Without ``mask_var``: number of most variable genes (Seurat flavour) the model uses, all
        genes when there are fewer; ``None`` uses all genes. Genes with no counts are never used.
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
        they differ, see :doc:`/accuracy`). The start used is in ``center_start_``.
    registry
        Used by :meth:`load`; leave it out.

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
        center_init: str = "auto",
        registry: dict | None = None,
    ):
        super().__init__(adata, registry)
        n_vars = self.summary_stats.n_vars
        n_batch = int(self.summary_stats.get("n_batch", 0))
        check_n_top_genes(n_top_genes)
        mask_var = gene_mask(self.adata.var, mask_var)  # the array is what the saved parameters keep
        check_cluster_count(n_clusters, self.summary_stats.n_cells)
        check_non_negative(dec_weight=dec_weight, anchor_weight=anchor_weight, input_noise=input_noise)
        check_positive(resolution=resolution, n_latent=n_latent, n_anchors=n_anchors, n_heads=n_heads, n_ffn=n_ffn)
        if center_init not in CENTER_INITS:
            msg = f"center_init={center_init!r} is not one of {CENTER_INITS}."
            raise ValueError(msg)
        if self.summary_stats.n_cells < MIN_CELLS:
            msg = f"Only {self.summary_stats.n_cells} cells: BGFormer needs at least {MIN_CELLS} cells to train."
            raise ValueError(msg)
        self.n_clusters = n_clusters
        self.resolution = resolution
        self.center_init = center_init
        self._gene_mask = mask_var
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
        self.module = BGFormerModule(n_vars, planned_gene_count(n_vars, mask_var, n_top_genes), **self._module_options)
        self.n_top_genes = n_top_genes
        self.is_prepared_ = False
        self.n_clusters_: int | None = None
        #: how the DEC centres started: ``{"start": ...}`` and, with ``center_init="auto"``, each candidate's modularity
        self.center_start_: dict | None = None
        # the training copy of the counts on the device, kept for inference (no trailing "_": not saved)
        self._device_rows: DeviceRows | None = None
        self._model_summary_string = (
            f"BGFormer with n_latent={n_latent}, n_anchors={n_anchors}, n_heads={n_heads}, "
            f"n_top_genes={n_top_genes}, n_clusters={n_clusters}, n_batch={n_batch}"
        )
        self.init_params_ = self._get_init_params(locals())

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
        if INDICES_COLUMN not in adata.obs:
            adata.obs[INDICES_COLUMN] = np.arange(adata.n_obs)
        fields = [
            # counts are validated by our own streaming pass, with a clearer message; scvi-tools' own check
            # (is_count_data) raises "data type not understood" on scipy sparse arrays (csr_array)
            LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=False),
            NumericalObsField(REGISTRY_KEYS.INDICES_KEY, INDICES_COLUMN),
        ]
        if batch_key is not None:
            fields.append(CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key))
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)

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

    # ------------------------------------------------------------------------------------ training
    def _fit_input_transform(self) -> None:
        """Stream over the counts once: validate them, pick genes, learn the scaling."""
        matrix = counts_matrix(self.adata, self._layer)
        source = describe_source(self._layer)
        statistics = scan_counts(matrix, source=source)
        gene_index = choose_genes(statistics, self._gene_mask, self.n_top_genes)
        if len(gene_index) != len(self.module.gene_index):  # genes without counts left out: a narrower input
            self.module = BGFormerModule(matrix.shape[1], len(gene_index), **self._module_options)
            self.init_params_ = with_chosen_genes(self.init_params_, gene_index, matrix.shape[1])
        median = statistics.median_library_size
        n_batch = self.module.n_batch
        codes = self.adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY) if n_batch else None
        moments = log_normalized_moments(
            matrix, statistics.library_size, gene_index, target_sum=median, groups=codes, n_groups=n_batch
        )
        self.module.set_gene_statistics(gene_index, moments.mean, moments.std, median, moments.group_mean)
        self.selected_genes_ = np.asarray(self.adata.var_names[gene_index]).astype(str)

    def _sample_cells(self, rng: np.random.Generator) -> np.ndarray:
        n_obs = self.adata.n_obs
        if n_obs <= _MAX_INIT_CELLS:
            return np.arange(n_obs)
        return np.sort(rng.choice(n_obs, _MAX_INIT_CELLS, replace=False))

    @torch.no_grad()
    def _initialize_anchors(self, cells: np.ndarray, batch_size: int, random_state: int) -> None:
        """Anchors from spherical k-means on the (untrained) anchor-side encodings of ``cells``."""
        self.module.train()  # batch statistics in BatchNorm, as in the reference
        while len(cells) % batch_size == 1 and batch_size < len(cells):  # BatchNorm cannot take a batch of one
            batch_size += 1
        encodings = [
            self.module.anchor_encoder(outputs["scaled"])
            for _, outputs in self._batches(None, cells, batch_size, embed=False)
        ]
        self.module.codebook.initialize(torch.cat(encodings), random_state=random_state)
        self.module.eval()

    def _initialize_clusters(self, cells: np.ndarray, batch_size: int, random_state: int) -> None:
        """DEC centres in the embedding the DEC head compares: k-means or Leiden on ``cells``."""
        latent = self.get_latent_representation(indices=cells, batch_size=batch_size)
        centers, self.center_start_ = cluster_centers(
            latent, self.n_clusters, resolution=self.resolution, random_state=random_state, init=self.center_init
        )
        self.n_clusters_ = len(centers)
        # the clusters the DEC phase starts from: each cell's nearest centre
        nearest = pairwise_distances_argmin(latent, centers.astype(latent.dtype))
        start_fractions = np.bincount(nearest, minlength=len(centers)) / len(nearest)
        self.module.set_centers(torch.as_tensor(centers, dtype=torch.float32), start_fractions=start_fractions)

    def train(
        self,
        max_epochs: int | None = None,
        *,
        pretrain_fraction: float = 0.5,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        strategy: str = "auto",
        train_size: float | None = None,
        early_stopping: bool = False,
        num_workers: int = 0,
        data_on_device: bool | None = None,
        shuffle_block_size: int = 1,
        enable_progress_bar: bool = True,
        random_state: int = 0,
        checkpoint_dir: str | Path | None = None,
        plan_kwargs: dict | None = None,
        **trainer_kwargs,
    ) -> None:
        """Train in two phases through scvi-tools' Lightning trainer.

        Phase one trains the embedding and the anchors (no clustering loss). The DEC centres are
        then initialised on the learned embedding (k-means with ``n_clusters``, or Leiden), and
        phase two trains everything with the DEC loss. No label is used anywhere.

        Parameters
        ----------
        max_epochs
            Total epochs of both phases; ``None`` gives at least 15 epochs and about 300
            optimiser steps of ``batch_size`` cells (at most 300 epochs).
        pretrain_fraction
            Share of the epochs spent before the clustering head is initialised.
        batch_size
            Cells per mini-batch.
        lr
            AdamW learning rate.
        weight_decay
            AdamW weight decay.
        accelerator
            Lightning accelerator (``"cpu"``, ``"gpu"``, ``"auto"``).
        devices
            Lightning devices.
        strategy
            Lightning strategy, e.g. ``"ddp"`` for several GPUs.
        train_size
            Share of cells trained on; the rest give an unsupervised validation loss. Defaults to
            1.0, or 0.9 with ``early_stopping``.
        early_stopping
            Stop each phase when the validation loss stops improving.
        num_workers
            Data-loader worker processes (useful for backed data).
        data_on_device
            Copy the counts, densified, to the device once and gather each batch there
            (:class:`scvi.dataloaders.DeviceBackedDataSplitter`). ``None`` does so when training
            on one CUDA GPU with the data in memory and the dense counts taking at most a
            quarter of the GPU's free memory; on a GPU, reading batches on the CPU was slower
            than the training step itself. Not possible for backed data or several devices.
            With every cell trained on (``train_size=1``), the copy stays on the device after
            training, so that :meth:`get_latent_representation`, :meth:`predict`,
            :meth:`get_attention` and :meth:`summarize` of the training data read from it,
            until :meth:`release_device_data` (which :func:`atlasclust.tl.bgformer` calls).
        shuffle_block_size
            Build each training batch from shuffled blocks of this many consecutive cells instead
            of cells drawn one by one (:class:`atlasclust.data.BlockShuffleSampler`). Reading a
            backed file costs about one read per run of consecutive rows, so blocks of 16 or more
            read several times faster; keep ``batch_size / shuffle_block_size`` large (say 64 or
            more) so that a batch still mixes many parts of the file. One device only.
        enable_progress_bar
            Show one progress bar for the whole run (both phases).
        random_state
            Seed of the anchor and centre initialisation.
        checkpoint_dir
            Folder for Lightning checkpoints, written at the end of every epoch (one per phase,
            replaced each time). When it already holds the checkpoints of an interrupted call
            with the same settings, training resumes from them and ends as the uninterrupted run
            would have; settings that differ raise a :class:`ValueError`.
        plan_kwargs
            Extra arguments of :class:`scvi.train.TrainingPlan`.
        **trainer_kwargs
            Extra arguments of :class:`scvi.train.Trainer` (e.g. ``callbacks``).
        """
        self.release_device_data()  # a copy from an earlier call
        max_epochs = as_int(max_epochs, "max_epochs", minimum=1)
        batch_size = as_int(batch_size, "batch_size", minimum=1)
        num_workers = as_int(num_workers, "num_workers", minimum=0)
        shuffle_block_size = as_int(shuffle_block_size, "shuffle_block_size", minimum=1)
        check_fraction(pretrain_fraction=pretrain_fraction)
        n_obs = self.adata.n_obs
        train_size = (0.9 if early_stopping else 1.0) if train_size is None else train_size
        n_train = math.ceil(train_size * n_obs)
        batch_size = min(batch_size, n_train)
        max_epochs = default_max_epochs(n_train, batch_size) if max_epochs is None else max_epochs
        n_pretrain = int(np.clip(round(pretrain_fraction * max_epochs), 1, max(max_epochs - 1, 1)))
        rng = np.random.default_rng(random_state)
        init_cells = self._sample_cells(rng)
        if shuffle_block_size > 1:
            if data_on_device or training_device(accelerator, devices, strategy) is None:
                msg = "shuffle_block_size > 1 works on one device, reading batches on the CPU (data_on_device=False)."
                raise ValueError(msg)
            data_on_device = False  # blocks are for reading from the host
        on_device = resolve_data_on_device(
            data_on_device, self.adata, accelerator=accelerator, devices=devices, strategy=strategy
        )

        if not self.is_prepared_:
            self._fit_input_transform()
            self._initialize_anchors(init_cells, batch_size, random_state)
            self.is_prepared_ = True

        # a last batch of one cell would break BatchNorm
        drop_last = n_train % batch_size == 1
        fit_kwargs = {
            "batch_size": batch_size,
            "accelerator": accelerator,
            "devices": devices,
            "strategy": strategy,
            "train_size": train_size,
            "load_sparse_tensor": self._is_sparse(),
            "early_stopping": early_stopping,
            "enable_progress_bar": enable_progress_bar,
            "simple_progress_bar": False,  # one bar for both phases instead of scvi-tools' one per fit
            "datasplitter_kwargs": {"num_workers": num_workers, "drop_last": drop_last},
            "plan_kwargs": {"optimizer": "AdamW", "lr": lr, "weight_decay": weight_decay, "eps": 1e-8}
            | (plan_kwargs or {}),
            # metrics are logged once per epoch: Lightning's step interval would only warn on short epochs
            "log_every_n_steps": 1,
            **trainer_kwargs,
        }
        fingerprint = training_settings(self) | {
            "cells": n_obs,
            "genes": self.adata.n_vars,
            "max_epochs": max_epochs,
            "pretrain_epochs": n_pretrain,
            "train": {k: v for k, v in fit_kwargs.items() if k in ("batch_size", "train_size", "plan_kwargs")},
            "random_state": random_state,
        }
        if self._batch_key is not None:  # only then, so checkpoints of runs without batches still match
            fingerprint["batch_key"] = self._batch_key
        if shuffle_block_size > 1:
            fingerprint["shuffle_block_size"] = shuffle_block_size
            fit_kwargs["datamodule"] = BlockShuffleDataSplitter(
                self.adata_manager,
                train_size=train_size,
                batch_size=batch_size,
                load_sparse_tensor=self._is_sparse(),
                block_size=shuffle_block_size,
                **fit_kwargs["datasplitter_kwargs"],
            )
        if on_device:  # batches are drawn otherwise: a checkpoint of the other path cannot be resumed
            fingerprint["data_on_device"] = True
            fit_kwargs["datamodule"] = DeviceDataSplitter(
                self.adata_manager,
                train_size=train_size,
                batch_size=batch_size,
                accelerator=accelerator,
                device=devices,
                drop_last=drop_last,
            )
        pretrain = phase_checkpoint(checkpoint_dir, "pretrain", fingerprint)
        cluster = phase_checkpoint(checkpoint_dir, "cluster", fingerprint)

        progress = RunProgressBar(max_epochs) if enable_progress_bar else None

        def fit(epochs: int, phase: PhaseCheckpoint, name: str, epochs_before: int) -> pd.DataFrame:
            if phase.finished(epochs):  # a fit of no epochs would still draw random numbers
                return phase.restore(self.module)
            # a fresh callback list per fit: scvi-tools appends its progress bar to the list it is given
            kwargs = with_trainer_guard(fit_kwargs, "BGFormer", lr) | phase.trainer_kwargs
            kwargs["callbacks"] += phase.callbacks
            if progress is not None:
                progress.start_phase(name, epochs_before)
                kwargs["callbacks"].append(progress)
            self.history_, self.is_trained_ = None, False  # this phase's history alone
            self.module.train()  # Lightning keeps the mode it finds the module in
            start = time.perf_counter()
            with sparse_batches(), quiet_fit():
                super(BGFormer, self).train(max_epochs=epochs, **kwargs)
            self.training_seconds_ += time.perf_counter() - start  # Lightning's fits only, for benchmarks
            if on_device and self._device_rows is None:  # the centres' initialisation reads from it too
                self._device_rows = DeviceRows.from_splitter(fit_kwargs["datamodule"], n_obs)
            self.epoch_seconds_.append(self.trainer.lightning_module.epoch_seconds)  # one list per fit
            return phase.history(history_frame(self.history_))

        self.batch_size_ = batch_size
        self.training_seconds_, self.epoch_seconds_ = 0.0, []
        previous = set_aside_history(self)
        self.module.clustering_active = False
        try:
            if cluster.loaded is None:
                pretrain_history = fit(n_pretrain, pretrain, "pretrain", 0)
                self._initialize_clusters(init_cells, batch_size, random_state)
            else:  # the clustering phase had begun: its checkpoint holds the centres, the weights and the generators
                pretrain_history = pretrain.saved_history()
                self.module.set_centers(cluster.loaded["state_dict"]["module.centers"])
                self.n_clusters_ = len(self.module.centers)
            self.module.clustering_active = True
            history = [pretrain_history.assign(phase="pretrain")]
            if max_epochs > n_pretrain:
                history.append(fit(max_epochs - n_pretrain, cluster, "cluster", n_pretrain).assign(phase="cluster"))
        except BaseException:
            self.release_device_data()
            raise
        finally:
            if progress is not None:
                progress.close()
            if on_device:  # the trainer keeps its data module: only our reference may hold the copy now
                fit_kwargs["datamodule"].release()
        self.module.eval()
        self.is_trained_ = True
        history = pd.concat(history, ignore_index=True)
        history.insert(0, "phase", history.pop("phase"))
        self.history_ = join_history(previous, history)

    # ------------------------------------------------------------------------------------ inference
    def _batches(
        self,
        adata: ad.AnnData | None,
        indices: Sequence[int] | None,
        batch_size: int | None,
        *,
        embed: bool = True,
        num_workers: int = 0,
    ) -> Iterator[tuple[np.ndarray, dict]]:
        """Yield (positions in ``indices``, module outputs) for each batch; callers set the grad mode."""
        on_device = self._device_rows if adata is None or adata is self.adata else None
        adata = self._as_registered(adata)
        indices = np.arange(adata.n_obs) if indices is None else np.asarray(indices)
        position = np.full(adata.n_obs, -1)
        position[indices] = np.arange(len(indices))
        # no gradients are kept here: batches as large as training's fit
        batch_size = batch_size or max(1024, getattr(self, "batch_size_", 0))
        if on_device is not None:  # the counts are still on the device: gather the batches there
            batches = on_device.batches(indices, batch_size)
        else:
            loader = self._make_data_loader(
                adata,
                indices=indices,
                batch_size=batch_size,
                num_workers=num_workers,
                # sparse batches travel lighter to a GPU; on the CPU, scipy densifies faster than torch
                load_sparse_tensor=self._is_sparse(adata) and self.module.device.type != "cpu",
            )
            batches = (
                (tensors[REGISTRY_KEYS.X_KEY], tensors[REGISTRY_KEYS.INDICES_KEY], tensors.get(REGISTRY_KEYS.BATCH_KEY))
                for tensors in loader
            )
        was_active = self.module.clustering_active
        self.module.clustering_active = embed
        try:
            for counts, cells, batch_codes in batches:
                outputs = self.module.inference(counts_all=counts, indices=cells, batch_index=batch_codes)
                yield position[outputs["indices"].cpu().numpy()], outputs
        finally:
            self.module.clustering_active = was_active

    def release_device_data(self) -> None:
        """Free the copy of the training counts that ``data_on_device`` left on the device.

        After training with the data on the device, the copy is kept so that embedding and
        predicting the training data read their batches there; this frees it. Later calls
        read from the AnnData again.
        """
        self._device_rows = None

    @torch.inference_mode()
    def get_latent_representation(
        self,
        adata: ad.AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        *,
        num_workers: int = 0,
    ) -> np.ndarray:
        """Embedding (``cells x n_latent``, float32) of ``adata`` (default: the training data).

        Parameters
        ----------
        adata
            Any AnnData with the training genes (in the same order and layer).
        indices
            Cells to embed; all by default.
        batch_size
            Cells per batch; by default 1024, or the training batch size where larger.
        num_workers
            Data-loader worker processes.
        """
        self.module.eval()
        n = self._as_registered(adata).n_obs if indices is None else len(indices)
        latent = np.empty((n, self._n_latent), dtype=np.float32)
        for rows, outputs in self._batches(adata, indices, batch_size, num_workers=num_workers):
            latent[rows] = outputs["z"].float().cpu().numpy()
        return latent

    @property
    def _n_latent(self) -> int:
        return self.module.input_layer.out_features

    @torch.inference_mode()
    def predict(
        self,
        adata: ad.AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        *,
        soft: bool = False,
        num_workers: int = 0,
    ) -> np.ndarray | pd.DataFrame:
        """Cluster of each cell (``argmax`` of the DEC soft assignment), or the soft assignments.

        Works on any AnnData with the training genes, including cells not seen in training.

        Parameters
        ----------
        adata
            AnnData to cluster; the training data by default.
        indices
            Cells to cluster; all by default.
        batch_size
            Cells per batch; by default 1024, or the training batch size where larger.
        soft
            Return the soft assignments (cells x clusters :class:`~pandas.DataFrame`) instead.
        num_workers
            Data-loader worker processes.
        """
        self._check_if_trained(warn=False)
        registered = self._as_registered(adata)
        n = registered.n_obs if indices is None else len(indices)
        q = np.empty((n, self.n_clusters_), dtype=np.float32)
        for rows, outputs in self._batches(registered, indices, batch_size, num_workers=num_workers):
            q[rows] = self.module.soft_assignment(outputs["z"]).float().cpu().numpy()
        if not soft:
            return q.argmax(axis=1)
        names = registered.obs_names if indices is None else registered.obs_names[np.asarray(indices)]
        return pd.DataFrame(q, index=names, columns=[str(k) for k in range(self.n_clusters_)])

    @torch.inference_mode()
    def get_attention(
        self,
        adata: ad.AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        *,
        groups: Sequence | np.ndarray | None = None,
        num_workers: int = 0,
    ) -> np.ndarray | dict[str, np.ndarray]:
        """Cell-to-anchor attention weights.

        Parameters
        ----------
        adata
            AnnData; the training data by default.
        indices
            Cells; all by default.
        batch_size
            Cells per batch; by default 1024, or the training batch size where larger.
        groups
            One group label per selected cell. When given, returns the mean attention per group
            (``{group: heads x anchors}``) instead of the per-cell array.
        num_workers
            Data-loader worker processes.

        Returns
        -------
        ``cells x heads x anchors`` array (rows sum to one per head), or per-group means.
        """
        self.module.eval()
        n_heads = self.module.encoder.attention.n_heads
        n_anchors = self.module.codebook.n_anchors
        n = self._as_registered(adata).n_obs if indices is None else len(indices)
        if groups is None:
            weights = np.empty((n, n_heads, n_anchors), dtype=np.float32)
            for rows, outputs in self._batches(adata, indices, batch_size, num_workers=num_workers):
                weights[rows] = outputs["attention"].float().cpu().numpy()
            return weights
        groups = np.asarray(groups)
        if len(groups) != n:
            msg = f"groups has {len(groups)} entries for {n} cells."
            raise ValueError(msg)
        names, codes = np.unique(groups, return_inverse=True)
        sums = np.zeros((len(names), n_heads, n_anchors))
        for rows, outputs in self._batches(adata, indices, batch_size, num_workers=num_workers):
            np.add.at(sums, codes[rows], outputs["attention"].double().cpu().numpy())
        means = sums / np.bincount(codes, minlength=len(names))[:, None, None]
        return {str(name): mean for name, mean in zip(names, means, strict=True)}

    @torch.inference_mode()
    def summarize(
        self,
        adata: ad.AnnData | None = None,
        *,
        batch_size: int | None = None,
        num_workers: int = 0,
        cell_attention: bool = False,
    ) -> dict[str, np.ndarray]:
        """Everything :func:`atlasclust.tl.bgformer` writes, in one pass over the data.

        Parameters
        ----------
        adata
            AnnData; the training data by default.
        batch_size
            Cells per batch; by default 1024, or the training batch size where larger.
        num_workers
            Data-loader worker processes.
        cell_attention
            Also return each cell's attention, flattened to ``heads * anchors`` float16 columns.

        Returns
        -------
        ``latent`` (cells x n_latent), ``soft`` (cells x clusters), ``attention`` (clusters x
        heads x anchors, mean over the cells of each predicted cluster), ``anchor_usage``
        (share of cells whose nearest anchor is each anchor), ``anchors`` (anchors x n_latent)
        and, when asked, ``cell_attention``.
        """
        self._check_if_trained(warn=False)
        self.module.eval()
        registered = self._as_registered(adata)
        n_heads = self.module.encoder.attention.n_heads
        n_anchors = self.module.codebook.n_anchors
        latent = np.empty((registered.n_obs, self._n_latent), dtype=np.float32)
        soft = np.empty((registered.n_obs, self.n_clusters_), dtype=np.float32)
        # sums stay on the device until the end: one copy to the host instead of one per batch
        device = self.module.device
        wide = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        attention = torch.zeros(self.n_clusters_, n_heads, n_anchors, dtype=wide, device=device)
        anchor_counts = torch.zeros(n_anchors, dtype=wide, device=device)
        per_cell = np.empty((registered.n_obs, n_heads * n_anchors), dtype=np.float16) if cell_attention else None
        for rows, outputs in self._batches(registered, None, batch_size, num_workers=num_workers):
            q = self.module.soft_assignment(outputs["z"])
            if per_cell is not None:
                per_cell[rows] = outputs["attention"].flatten(start_dim=1).cpu().numpy()
            latent[rows] = outputs["z"].float().cpu().numpy()
            soft[rows] = q.float().cpu().numpy()
            attention.index_add_(0, q.argmax(dim=1), outputs["attention"].to(wide))
            index, _ = self.module.codebook.assign(self.module.anchor_encoder(outputs["scaled"]))
            anchor_counts += torch.bincount(index, minlength=n_anchors).to(wide)
        cluster_sizes = np.bincount(soft.argmax(axis=1), minlength=self.n_clusters_)
        attention = attention.cpu().double().numpy() / np.maximum(cluster_sizes, 1)[:, None, None]
        summary = {
            "latent": latent,
            "soft": soft,
            "attention": attention.astype(np.float32),
            "anchor_usage": (anchor_counts.cpu().double() / registered.n_obs).numpy().astype(np.float32),
            "anchors": self.module.codebook.anchors.detach().float().cpu().numpy(),
        }
        if per_cell is not None:
            summary["cell_attention"] = per_cell
        return summary

    # ------------------------------------------------------------------------------------ save / load
    @classmethod
    def load(cls, dir_path: str, adata: ad.AnnData | None = None, **kwargs) -> BGFormer:
        """Load a saved model, for ``adata`` or for the AnnData saved with it.

        ``adata`` itself is not modified: the model registers a light view of it. Nothing is
        printed at scanpy's default verbosity.

        Parameters
        ----------
        dir_path
            Folder written by :meth:`save`.
        adata
            AnnData with the training genes in the same order, counts in the same layer (and
            the batch column). ``None``: the AnnData saved with the model
            (``save(…, save_anndata=True)``), as in scvi-tools.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.load` (e.g. ``accelerator``).
        """
        model = load_saved_model(cls, dir_path, adata, **kwargs)
        return model
