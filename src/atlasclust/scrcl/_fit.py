"""scRCL's training and inference: the contrastive fit, the clusters, the embedding and predictions."""

from __future__ import annotations

import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from atlasclust._constants import REPRESENTATIONS
from atlasclust._validate import as_int, check_choice
from atlasclust.data import fits_on_gpu, training_device
from atlasclust.train import (
    cluster_centers,
    history_frame,
    join_history,
    phase_checkpoint,
    quiet_fit,
    set_aside_history,
    training_settings,
    with_trainer_guard,
)

from ._defaults import _unit_rows, default_batch_size, default_max_epochs


class SCRCLFitMixin:
    """scRCL's training and inference: the contrastive fit, the clusters, the embedding and predictions."""

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
        """Cluster centres: ``center_init``'s with ``n_clusters``, else Leiden's on the unit-normalised embedding.

        With ``cluster_components`` (and ``n_clusters``) the rows clustered are the embedding's and the
        components' side by side, each divided by its spread over the training cells.
        """
        latent = _unit_rows(self.get_latent_representation())
        scales = self.module.cluster_scales[:0]
        components = self._graph_data_for(None).components
        if components is not None:  # kept only with cluster_components and n_clusters
            scales = torch.tensor([_spread(latent), _spread(components)], dtype=torch.float32)
        self.module.cluster_scales = scales.to(self.module.cluster_scales.device)
        centers, self.center_start_ = cluster_centers(
            self._clustered_rows(latent, None),
            self.n_clusters,
            resolution=self.resolution,
            random_state=random_state,
            init=self.center_init,
        )
        self.module.cluster_centers = torch.as_tensor(centers, dtype=torch.float32)
        self.n_clusters_ = len(centers)

    def _clustered_rows(self, latent: np.ndarray, adata: ad.AnnData | None) -> np.ndarray:
        """The rows the centres live among: ``latent`` (unit rows of ``adata``'s embedding), beside the components if clustered so."""
        scales = self.module.cluster_scales.cpu().numpy()
        if not len(scales):
            return latent
        components = self._graph_data_for(adata).components
        return np.hstack([latent / scales[0], components / scales[1]]).astype(np.float32, copy=False)

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
        check_choice("representation", representation, REPRESENTATIONS)
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
        """Cluster of each cell: the nearest cluster centre (Euclidean) to its L2-normalised embedding.

        With ``cluster_components``, to that embedding beside the cell's principal components, each
        scaled as in training. The centres are the means of each cluster's rows, so on the unit rows
        they are shorter than one where a cluster is spread; the distance weighs that length, the
        cosine of ``soft=True`` does not.

        Parameters
        ----------
        adata
            AnnData to cluster (its own cell graph is built); the training data by default.
        soft
            Return the cosine similarity of each cell to each centre (cells x clusters frame)
            instead: the direction only, so its largest can differ from the hard label for a cell
            between a tight and a spread cluster.
        batch_size
            Seed cells per pass.
        """
        self._check_if_trained(warn=False)
        rows = self._clustered_rows(_unit_rows(self.get_latent_representation(adata, batch_size=batch_size)), adata)
        centers = self.module.cluster_centers.cpu().numpy()
        distance = (rows**2).sum(1)[:, None] - 2 * rows @ centers.T + (centers**2).sum(1)[None, :]
        if not soft:
            return distance.argmin(axis=1)
        names = (self.adata if adata is None else adata).obs_names
        similarity = _unit_rows(rows) @ _unit_rows(centers).T
        return pd.DataFrame(similarity, index=names, columns=[str(k) for k in range(len(centers))])

    def gene_embedding(self, *, all_genes: bool = False) -> pd.DataFrame:
        """Learned gene embedding ``U``: the genes the model used x ``n_refined``.

        With ``all_genes``, one row per gene of the training data, in its order, ``NaN`` for the
        genes the model did not use (what ``tl.scrcl`` writes to ``varm``).
        """
        with torch.inference_mode():
            genes = self.module.gene_embedding().float().cpu().numpy()
        if not all_genes:
            return pd.DataFrame(genes, index=self.selected_genes_)
        every = np.full((self.adata.n_vars, genes.shape[1]), np.nan, dtype=np.float32)
        every[self.module.gene_index.cpu().numpy()] = genes
        return pd.DataFrame(every, index=self.adata.var_names.copy())

    def training_graph(self) -> sp.csr_matrix:
        """The binary cell graph the model trained on (expression, spatial or the user's), as built once."""
        return self._graph_data_for(None).adjacency


def _spread(rows: np.ndarray) -> float:
    """Root mean squared distance of ``rows`` from their mean (their total variance's square root)."""
    rows = np.asarray(rows, dtype=np.float64)
    return float(np.sqrt(((rows - rows.mean(axis=0)) ** 2).sum(axis=1).mean()))
