"""BGFormer's inference: embedding, clusters, attention and the summary tl.bgformer writes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import torch
from scvi import REGISTRY_KEYS

from atlasclust.data import Collection


class BGFormerInferenceMixin:
    """BGFormer's inference: embedding, clusters, attention and the summary tl.bgformer writes."""

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

    def _collection_for(self, adata) -> Collection | None:
        """The annbatch collection ``adata`` names (``None``: a collection-trained model's own), or ``None`` for an AnnData."""
        if adata is None:
            return getattr(self, "_collection", None)
        if isinstance(adata, ad.AnnData):
            return None
        return adata if isinstance(adata, Collection) else Collection(adata)

    @staticmethod
    def _whole_shards(indices: Sequence[int] | None) -> None:
        if indices is not None:
            msg = "indices= selects cells of an AnnData; for a collection, pass one of its shards (Collection.shards)."
            raise ValueError(msg)

    def cluster_start_fractions(self) -> np.ndarray:
        """Share of the cells nearest each DEC centre when the clustering phase began.

        ``NaN`` where it is not known (a model saved before it was recorded, or before that phase).
        """
        fractions = getattr(self.module, "start_fractions", None)
        return np.full(self.n_clusters_ or 0, np.nan) if fractions is None else fractions.cpu().numpy()

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
            Or an annbatch collection (or its path), read shard by shard; a model built by
            :meth:`from_collection` reads its own by default. ``indices`` then does not apply.
        indices
            Cells to embed; all by default.
        batch_size
            Cells per batch; by default 1024, or the training batch size where larger.
        num_workers
            Data-loader worker processes.
        """
        if (cells := self._collection_for(adata)) is not None:
            self._whole_shards(indices)
            parts = [
                self.get_latent_representation(shard, batch_size=batch_size, num_workers=num_workers)
                for shard in cells.shards
            ]
            return np.concatenate(parts)
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
            Or an annbatch collection (or its path), read shard by shard; a model built by
            :meth:`from_collection` reads its own by default. ``indices`` then does not apply.
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
        if (cells := self._collection_for(adata)) is not None:
            self._whole_shards(indices)
            options = {"batch_size": batch_size, "soft": soft, "num_workers": num_workers}
            parts = [self.predict(shard, **options) for shard in cells.shards]
            return pd.concat(parts) if soft else np.concatenate(parts)
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
            Or an annbatch collection (or its path), read shard by shard; a model built by
            :meth:`from_collection` reads its own by default. ``indices`` then does not apply.
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
        if (cells := self._collection_for(adata)) is not None:
            self._whole_shards(indices)
            return self._collection_attention(cells, groups, batch_size=batch_size, num_workers=num_workers)
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

    def _collection_attention(self, cells: Collection, groups, **options) -> np.ndarray | dict[str, np.ndarray]:
        """:meth:`get_attention` over a collection, shard by shard: per-cell weights, or group means from per-shard means."""
        if groups is None:
            return np.concatenate([self.get_attention(shard, **options) for shard in cells.shards])
        groups = np.asarray(groups).astype(str)
        if len(groups) != cells.n_obs:
            msg = f"groups has {len(groups)} entries for {cells.n_obs} cells."
            raise ValueError(msg)
        sums, sizes = {}, {}
        for shard, start, stop in zip(cells.shards, cells.offsets[:-1], cells.offsets[1:], strict=True):
            names, counts = np.unique(groups[start:stop], return_counts=True)
            means = self.get_attention(shard, groups=groups[start:stop], **options)
            for name, count in zip(names, counts, strict=True):
                sums[name] = sums.get(name, 0.0) + means[name].astype(np.float64) * count
                sizes[name] = sizes.get(name, 0) + count
        return {name: sums[name] / sizes[name] for name in sorted(sums)}

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
            AnnData; the training data by default. Or an annbatch collection (or its path), read
            shard by shard; a model built by :meth:`from_collection` reads its own by default.
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
        if (cells := self._collection_for(adata)) is not None:
            options = {"batch_size": batch_size, "num_workers": num_workers, "cell_attention": cell_attention}
            return merge_summaries([self.summarize(shard, **options) for shard in cells.shards])
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


def merge_summaries(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One :meth:`~BGFormerInferenceMixin.summarize` result from those of consecutive parts of the cells."""
    merged = {
        name: np.concatenate([part[name] for part in parts])
        for name in ("latent", "soft", "cell_attention")
        if name in parts[0]
    }
    n_clusters = parts[0]["soft"].shape[1]
    sizes = [np.bincount(part["soft"].argmax(axis=1), minlength=n_clusters) for part in parts]
    # per-cluster means from per-part means: weight each by the part's cells in that cluster
    sums = sum(
        part["attention"].astype(np.float64) * size[:, None, None] for part, size in zip(parts, sizes, strict=True)
    )
    merged["attention"] = (sums / np.maximum(sum(sizes), 1)[:, None, None]).astype(np.float32)
    cells = np.array([len(part["soft"]) for part in parts], dtype=np.float64)
    usage = sum(part["anchor_usage"].astype(np.float64) * n for part, n in zip(parts, cells, strict=True)) / cells.sum()
    merged["anchor_usage"] = usage.astype(np.float32)
    merged["anchors"] = parts[0]["anchors"]
    return merged
