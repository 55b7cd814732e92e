"""BGFormer's training: the input transform, the anchors, the two phases and the DEC centres between them."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scvi import REGISTRY_KEYS
from scvi.model.base import UnsupervisedTrainingMixin
from sklearn.metrics import pairwise_distances_argmin

from atlasclust._validate import as_int, check_fraction
from atlasclust.data import (
    BlockShuffleDataSplitter,
    DeviceDataSplitter,
    DeviceRows,
    resolve_data_on_device,
    saved_batches,
    sparse_batches,
    training_device,
)
from atlasclust.train import (
    PhaseCheckpoint,
    RunProgressBar,
    cluster_centers,
    history_frame,
    join_history,
    phase_checkpoint,
    quiet_fit,
    set_aside_history,
    training_settings,
    with_trainer_guard,
)

from ._defaults import default_max_epochs, init_cells


class BGFormerFitMixin:
    """BGFormer's training: the input transform, the anchors, the two phases and the DEC centres between them."""

    # ------------------------------------------------------------------------------------ training
    def _fit_input_transform(self, collection_codes: np.ndarray | None = None) -> None:
        """Stream over the counts once: validate them, pick genes, learn the scaling.

        ``collection_codes``: the collection's batch codes (:meth:`_collection_batch_codes`), for a
        model that trains from a collection.
        """
        if self._collection is None:
            codes = self.adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY) if self.module.n_batch else None
            self._learn_input_transform(codes)
        else:
            self._learn_input_transform(collection_codes, counts=self._collection.counts)

    @staticmethod
    def _check_collection_options(
        n_train: int, batch_size: int, data_on_device: bool | None, shuffle_block_size: int, num_workers: int
    ) -> None:
        """Refuse, before any work, the options that do not apply when annbatch reads the batches."""
        given = {"data_on_device": bool(data_on_device), "shuffle_block_size": shuffle_block_size > 1}
        given["num_workers"] = num_workers > 0
        if any(given.values()):
            names = ", ".join(name for name, on in given.items() if on)
            msg = f"{names}: not for a collection, whose batches annbatch reads in chunks, in its own threads."
            raise ValueError(msg)
        if n_train % batch_size == 1:  # annbatch would end each epoch with a batch of one, which BatchNorm refuses
            msg = f"batch_size={batch_size} leaves one cell in the last batch of {n_train}: choose another batch_size."
            raise ValueError(msg)

    def _collection_batch_codes(self) -> np.ndarray | None:
        """Each collection cell's batch, coded as the registry codes it (``None`` without batches)."""
        if not self.module.n_batch:
            return None
        batches = self._collection.obs[self._batch_key].astype(str)
        return pd.Categorical(batches, categories=[str(b) for b in saved_batches(self.registry_)]).codes

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
        latent = self.get_latent_representation(self.adata, indices=cells, batch_size=batch_size)
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
        n_obs = self.adata.n_obs if self._collection is None else self._collection.n_obs
        train_size = (0.9 if early_stopping else 1.0) if train_size is None else train_size
        n_train = math.ceil(train_size * n_obs)
        batch_size = min(batch_size, n_train)
        max_epochs = default_max_epochs(n_train, batch_size) if max_epochs is None else max_epochs
        n_pretrain = int(np.clip(round(pretrain_fraction * max_epochs), 1, max(max_epochs - 1, 1)))
        rng = np.random.default_rng(random_state)
        start_cells = init_cells(self.adata.n_obs, rng)
        collection_codes = None
        if self._collection is not None:
            self._check_collection_options(n_train, batch_size, data_on_device, shuffle_block_size, num_workers)
            data_on_device = False
            collection_codes = self._collection_batch_codes()  # read by the input transform and the data module
        if shuffle_block_size > 1:
            if data_on_device or training_device(accelerator, devices, strategy) is None:
                msg = "shuffle_block_size > 1 works on one device, reading batches on the CPU (data_on_device=False)."
                raise ValueError(msg)
            data_on_device = False  # blocks are for reading from the host
        on_device = resolve_data_on_device(
            data_on_device, self.adata, accelerator=accelerator, devices=devices, strategy=strategy
        )

        if not self.is_prepared_:
            self._fit_input_transform(collection_codes)
            self._initialize_anchors(start_cells, batch_size, random_state)
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
        if self._collection is not None:  # annbatch reads shuffled chunks of the collection
            fingerprint["collection"] = True
            fit_kwargs["datamodule"] = self._collection.data_module(
                batch_size=batch_size, batch_codes=collection_codes, seed=random_state
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
                UnsupervisedTrainingMixin.train(self, max_epochs=epochs, **kwargs)  # scvi-tools' loop, one phase
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
                self._initialize_clusters(start_cells, batch_size, random_state)
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
