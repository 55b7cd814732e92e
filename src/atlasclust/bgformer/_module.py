"""BGFormer as a torch module: the network, its input transform and its losses."""

from __future__ import annotations

import torch
from scvi import REGISTRY_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from atlasclust.nn import CountInputBuffers, ZINBDecoder, dec_loss, student_t_assignment, target_distribution, zinb_nll

from ._anchors import AnchorCodebook
from ._attention import BipartiteEncoder


class BGFormerModule(CountInputBuffers, BaseModuleClass):
    """Bipartite-graph transformer with an anchor codebook, ZINB decoders and a DEC head.

    The module receives raw counts over all registered genes and does its own input transform
    on the device: library size over all genes, selection of the chosen genes, median
    normalisation, ``log1p``, z-scoring with streamed per-gene statistics, clipping at ±10. With
    batches, each cell is centred on its own batch's gene means instead of the overall ones.

    Parameters
    ----------
    n_vars
        Number of registered genes.
    n_input
        Number of genes the model uses (the selected variable genes).
    n_latent
        Width of the embedding, the anchors and the attention.
    n_anchors
        Number of anchor tokens.
    n_heads
        Number of attention heads.
    n_ffn
        Width of the feed-forward block.
    dropout
        Dropout of the attention layer.
    input_noise
        Std of the Gaussian noise added to the scaled input for the self-supervised reconstruction.
    anchor_refresh
        Re-seed dead and over-used anchors during training.
    dec_weight
        Weight of the DEC loss once clustering is active.
    anchor_weight
        Weight of the anchor reconstruction and commitment losses.
    n_batch
        Number of batches the input is centred within and the ZINB decoders are conditioned on
        (0 or 1: none).
    """

    def __init__(
        self,
        n_vars: int,
        n_input: int,
        *,
        n_latent: int = 128,
        n_anchors: int = 64,
        n_heads: int = 4,
        n_ffn: int = 512,
        dropout: float = 0.1,
        input_noise: float = 1.0,
        anchor_refresh: bool = True,
        dec_weight: float = 0.1,
        anchor_weight: float = 1.0,
        n_batch: int = 0,
    ):
        super().__init__()
        self.n_batch = n_batch
        self.input_noise = input_noise
        self.anchor_refresh = anchor_refresh
        self.dec_weight = dec_weight
        self.anchor_weight = anchor_weight
        # the DEC loss joins once the centres are set (second training phase)
        self.clustering_active = False
        # anchor-side encodings of the last training batch, for the re-seeding after the step
        self._pending_refresh: torch.Tensor | None = None
        # input transform, filled from the data by BGFormer before training (and saved)
        gene_index = torch.arange(n_input) if n_input == n_vars else torch.zeros(n_input, dtype=torch.long)
        self.register_input_buffers(n_input, n_batch, gene_index=gene_index)
        # anchor side: encoder, codebook, ZINB decoder of anchors
        self.anchor_encoder = nn.Sequential(
            nn.Linear(n_input, 512), nn.BatchNorm1d(512), nn.ReLU(),
            nn.Linear(512, 128), nn.BatchNorm1d(128), nn.ReLU(),
            nn.Linear(128, n_latent),
        )  # fmt: skip
        self.codebook = AnchorCodebook(n_anchors, n_latent)
        self.anchor_decoder = ZINBDecoder(n_latent, n_input, n_batch=n_batch)
        # cell side: input projection (also the residual of Eq. 14), bipartite attention, decoder
        self.input_layer = nn.Linear(n_input, n_latent)
        self.encoder = BipartiteEncoder(n_latent, n_heads, n_ffn=n_ffn, dropout=dropout)
        self.decoder = ZINBDecoder(n_latent, n_input, n_batch=n_batch)
        # DEC centres: created once the number of clusters is known
        self.centers: nn.Parameter | None = None

    # ----------------------------------------------------------------------------- input transform
    def prepare_input(
        self, counts_all: torch.Tensor, batch_index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Counts of the model's genes, size factors and the scaled network input."""
        library = counts_all.sum(dim=1)
        counts = counts_all[:, self.gene_index]
        scaled = torch.log1p(counts * (self.median_library_size / library)[:, None])
        if self.n_batch:
            if batch_index is None:
                msg = "This model was trained with batches: pass each cell's batch_index."
                raise ValueError(msg)
            # each cell centred within its batch, so the encoder does not see the batches' mean shifts
            mean = nn.functional.embedding(batch_index.reshape(-1).long(), self.batch_gene_mean)
        else:
            mean = self.gene_mean
        scaled = ((scaled - mean) / self.gene_std).clamp(-10.0, 10.0)
        return counts, library / self.median_library_size, scaled

    # ----------------------------------------------------------------------------- network
    def embed(self, scaled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding and attention weights (``cells x heads x anchors``) of scaled input."""
        # the attention path sees the anchors without gradient (reference §6.4)
        return self.encoder(self.input_layer(scaled), self.codebook.anchors.detach())

    def set_centers(self, centers: torch.Tensor, start_fractions=None) -> None:
        """Create (or replace) the DEC centres, with the share of cells nearest each when they were set.

        ``start_fractions`` stay with the weights (a buffer), so that a resumed or loaded model can
        still compare its clusters with those the DEC phase started from; ``None``: unknown (NaN).
        """
        device = self.gene_mean.device
        self.centers = nn.Parameter(centers.detach().clone().to(device))
        if start_fractions is None:
            start_fractions = torch.full((len(centers),), float("nan"))
        self.register_buffer("start_fractions", torch.as_tensor(start_fractions, dtype=torch.float32).to(device))

    def soft_assignment(self, z: torch.Tensor) -> torch.Tensor:
        """Student-t soft assignment of embeddings to the DEC centres."""
        if self.centers is None:
            msg = "The DEC centres are not initialised yet: train the model first."
            raise RuntimeError(msg)
        return student_t_assignment(z, self.centers)

    def refresh_anchors(self) -> None:
        """Re-seed dead and over-used anchors from the last training batch (after its optimiser step)."""
        if self._pending_refresh is not None:
            self.codebook.refresh(self._pending_refresh)
            self._pending_refresh = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # centres exist only after training; size them from the checkpoint
        key = prefix + "centers"
        if key in state_dict:
            self.set_centers(torch.empty_like(state_dict[key]))
            # models saved before the start of the DEC phase was recorded: unknown
            state_dict.setdefault(prefix + "start_fractions", self.start_fractions)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ----------------------------------------------------------------------------- scvi-tools API
    def _get_inference_input(self, tensors, **kwargs):
        return {
            "counts_all": tensors[REGISTRY_KEYS.X_KEY],
            "indices": tensors[REGISTRY_KEYS.INDICES_KEY],
            "batch_index": tensors.get(REGISTRY_KEYS.BATCH_KEY),
        }

    @auto_move_data
    def inference(
        self, counts_all: torch.Tensor, indices: torch.Tensor, batch_index: torch.Tensor | None = None
    ) -> dict:
        """Prepare the batch and embed it.

        Rows are put in index order first, so that a batch holds the same rows in the same order
        whether it was read from memory or from a backed file (which returns sorted rows).
        ``batch_index`` (each cell's batch code) is needed when the decoders are conditioned on batches.
        """
        if counts_all.layout != torch.strided:  # sparse batches are densified here, on the device
            counts_all = counts_all.to_dense()
        indices = indices.reshape(-1)
        order = torch.argsort(indices)
        if batch_index is not None:
            batch_index = batch_index.reshape(-1)[order]
        counts, size_factor, scaled = self.prepare_input(counts_all[order], batch_index)
        outputs = {"indices": indices[order], "counts": counts, "size_factor": size_factor, "scaled": scaled}
        if batch_index is not None:
            outputs["batch_index"] = batch_index
        # while pre-training, only the noisy pass of the loss is needed
        if not self.training or self.clustering_active:
            outputs["z"], outputs["attention"] = self.embed(scaled)
        return outputs

    def _get_generative_input(self, tensors, inference_outputs, **kwargs):
        return {}

    def generative(self, **kwargs) -> dict:
        """Nothing to do: decoders run inside :meth:`loss`."""
        return {}

    def loss(self, tensors, inference_outputs, generative_outputs) -> LossOutput:
        """``L_s + dec_weight * L_DEC + anchor_weight * (L_anchor + L_commit)``.

        ``L_s`` is the ZINB reconstruction of the counts from the embedding of the noise-corrupted
        input; ``L_anchor`` the ZINB reconstruction from each cell's nearest anchor;
        ``L_commit`` the mean squared distance between anchor-side encodings and their anchors;
        ``L_DEC`` the KL divergence of the soft assignments from their sharpened target, the
        target recomputed on each batch as in the reference.
        """
        counts, size_factor, scaled = (inference_outputs[k] for k in ("counts", "size_factor", "scaled"))
        noisy_z, _ = self.embed(scaled + self.input_noise * torch.randn_like(scaled))
        batch_index = inference_outputs.get("batch_index")
        self_reconstruction = zinb_nll(self.decoder(noisy_z, size_factor, batch_index=batch_index), counts)
        total = self_reconstruction.mean()
        metrics = {"zinb_embedding": total.detach()}

        if self.anchor_weight > 0:
            h = self.anchor_encoder(scaled)
            index, selected = self.codebook.assign(h)
            if self.training:
                self.codebook.update_usage(index)
                if self.anchor_refresh:
                    self._pending_refresh = h.detach().float()  # anchors stay float32 under autocast
            commitment = (selected - h).pow(2).mean()
            # the decoder runs on the anchors and each cell takes its anchor's distribution
            anchors = self.anchor_decoder(self.codebook.anchors, size_factor, rows=index, batch_index=batch_index)
            anchor_reconstruction = zinb_nll(anchors, counts).mean()
            total = total + self.anchor_weight * (anchor_reconstruction + commitment)
            metrics |= {"zinb_anchor": anchor_reconstruction.detach(), "commitment": commitment.detach()}

        if self.clustering_active and self.dec_weight > 0:
            q = self.soft_assignment(inference_outputs["z"])
            clustering = dec_loss(q, target_distribution(q)).mean()
            total = total + self.dec_weight * clustering
            metrics["dec"] = clustering.detach()

        return LossOutput(loss=total, reconstruction_loss=self_reconstruction, extra_metrics=metrics)
