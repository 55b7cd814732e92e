"""scRCL as a torch module: the MLP and GCN views, the gene encoder, the refinement and the losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS
from scvi.module.base import BaseModuleClass, LossOutput
from torch import nn

from atlasclust.nn import CountInputBuffers, GraphConvolution

from ._graph_data import CellGraphData
from ._losses import cvc_loss, hea_loss, ndc_loss


class SCRCLModule(CountInputBuffers, BaseModuleClass):
    """Two views of the cells (MLP and GCN) aligned by contrast, refined by gene embeddings.

    The gene encoder reads fixed per-gene descriptors (``genes x n_descriptors``, from the training
    data's principal axes), so its size does not depend on the number of cells and a trained
    model embeds new cells. Cell inputs and the cell graph come from a :class:`CellGraphData`
    attached as :attr:`graph_data` (host side, not saved); batches hold seed-cell indices.

    Parameters
    ----------
    n_input
        Number of genes (of the projector and the gene embeddings; and of the views' input
        unless ``n_view_input`` is given).
    n_hidden
        Width of both views' embeddings.
    n_refined
        Width ``c`` of the gene embeddings and of each refined view.
    n_descriptors
        Width of the gene descriptors.
    dropout
        Dropout before the GCN head and before the refinement projector.
    temperature
        Softmax temperature of the alignment losses.
    alpha
        Weight of the neighbourhood contrastive loss (``lambda1`` in the reference).
    beta
        Weight of the cross-view consistency loss (``lambda2`` in the reference).
    n_view_input
        Width of the views' input when it is not the genes (the principal components); ``None``
        gives ``n_input``.
    n_batch
        Number of batches whose cells are centred on their own batch's gene means (0: none).
    """

    def __init__(
        self,
        n_input: int,
        *,
        n_hidden: int = 256,
        n_refined: int = 16,
        n_descriptors: int = 50,
        dropout: float = 0.3,
        temperature: float = 1.0,
        alpha: float = 100.0,
        beta: float = 1.0,
        n_view_input: int | None = None,
        n_batch: int = 0,
    ):
        super().__init__()
        self.n_batch = n_batch
        n_view_input = n_input if n_view_input is None else n_view_input
        self.temperature = temperature
        self.alpha = alpha
        self.beta = beta
        self.mlp = nn.Linear(n_view_input, n_hidden)
        self.gcn_first = GraphConvolution(n_view_input, n_hidden)
        self.gcn_second = GraphConvolution(n_hidden, n_hidden)
        self.gcn_head = nn.Linear(n_hidden, n_hidden)
        self.dropout = nn.Dropout(dropout)
        self.gene_encoder = GraphConvolution(n_descriptors, n_refined)
        self.projector = nn.Linear(n_hidden, n_input)
        # input transform and fixed gene side, set from the training data by the model (and saved)
        self.register_input_buffers(n_input, n_batch)
        self.register_buffer("pca_mean", torch.zeros(n_input))
        self.register_buffer("pca_components", torch.zeros(n_descriptors, n_input))
        # origin of the views' principal-component input, in component coordinates (zero: the mean cell)
        self.register_buffer("input_center", torch.zeros(n_descriptors))
        # centres of the k-means whose clusters weigh alike in the contrastive loss (none: cells alike)
        self.register_buffer("negative_centers", torch.zeros(0, n_descriptors))
        # set after training: k-means or Leiden centres of the unit-normalised embedding (its
        # width depends on the representation clustered, so it is sized when set or loaded)
        self.register_buffer("cluster_centers", torch.zeros(0, 0))
        # with cluster_components: the spread of the embedding and of the components that divides
        # each before the two are clustered side by side (none: the embedding alone)
        self.register_buffer("cluster_scales", torch.zeros(0))
        self.register_buffer("gene_descriptors", torch.zeros(n_input, n_descriptors))
        self.register_buffer("gene_edges", torch.zeros(2, 0, dtype=torch.long))
        self.register_buffer("gene_edge_weights", torch.zeros(0))
        self.graph_data: CellGraphData | None = None

    def set_gene_graph(self, descriptors: torch.Tensor, edges: torch.Tensor, weights: torch.Tensor) -> None:
        """Fix the gene descriptors and the normalised gene-graph propagation (``2 x E`` edges)."""
        self.gene_descriptors = descriptors.to(self.gene_descriptors)
        self.gene_edges = edges.to(self.gene_descriptors.device, torch.long)
        self.gene_edge_weights = weights.to(self.gene_descriptors)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # models saved before input_features="scaled" existed never read the gene means
        state_dict.setdefault(prefix + "gene_mean", torch.zeros_like(self.gene_mean))
        # nor did those saved before input_center="balanced" move the components' origin
        state_dict.setdefault(prefix + "input_center", torch.zeros_like(self.input_center))
        # nor weigh the cells of the contrastive loss
        state_dict.setdefault(prefix + "negative_centers", self.negative_centers[:0])
        # nor cluster the components beside the embedding
        state_dict.setdefault(prefix + "cluster_scales", self.cluster_scales[:0])
        # sizes only known from the data: take the saved shapes
        for name in ("gene_edges", "gene_edge_weights", "cluster_centers", "negative_centers", "cluster_scales"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=self.gene_descriptors.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------------------------ forward
    def gene_embedding(self) -> torch.Tensor:
        """``U = ReLU(GCN(descriptors, gene graph))``: one non-negative row per gene."""
        n_genes = len(self.gene_descriptors)
        propagation = torch.sparse_coo_tensor(
            self.gene_edges, self.gene_edge_weights, (n_genes, n_genes), check_invariants=False
        )
        return F.relu(self.gene_encoder(self.gene_descriptors, propagation))

    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict:
        seeds = tensors[REGISTRY_KEYS.INDICES_KEY].ravel().long().cpu().numpy()
        return {"batch": self.graph_data.batch(seeds, self.device)}

    def _get_generative_input(self, tensors, inference_outputs) -> dict:
        return {}

    def inference(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Both views and both refined views of a batch (MLP side on all nodes, GCN side on seeds)."""
        n_seeds = batch["propagation"].shape[0]
        mlp_hidden = F.relu(self.mlp(batch["mlp_features"]))
        # GCN layer one on Â X1, computed once per fit: only the seeds' one-hop nodes are needed
        first = F.leaky_relu(self.gcn_first.linear(batch["propagated_features"]) + self.gcn_first.bias, 0.01)
        second = F.leaky_relu(self.gcn_second(first, batch["propagation"]), 0.01)
        gcn_hidden = F.leaky_relu(self.gcn_head(self.dropout(second)), 0.01)

        # (x W + b) U = x (W U) + b U: the cells x genes product is never formed
        genes = self.gene_embedding()
        weight = self.projector.weight.T @ genes
        bias = self.projector.bias @ genes
        return {
            "mlp": F.normalize(mlp_hidden, dim=1),
            "gcn": F.normalize(gcn_hidden, dim=1),
            "mlp_refined": F.normalize(self.dropout(mlp_hidden) @ weight + bias, dim=1),
            "gcn_refined": F.normalize(self.dropout(gcn_hidden) @ weight + bias, dim=1),
            "n_seeds": n_seeds,
            "batch": batch,
        }

    def generative(self) -> dict:
        """No generative part."""
        return {}

    def loss(self, tensors, inference_outputs, generative_outputs) -> LossOutput:
        """``L_HEA + alpha * L_NDC + beta * L_CVC`` on the batch."""
        out = inference_outputs
        batch = out["batch"]
        n_seeds = out["n_seeds"]
        n_total = self.graph_data.n_cells
        hea = hea_loss(out["mlp"][:n_seeds], out["gcn"], temperature=self.temperature)
        ndc = ndc_loss(
            out["mlp"],
            out["gcn"],
            batch["pairs"],
            batch["node_degree"],
            n_total=n_total,
            temperature=self.temperature,
            negative_weight=batch.get("negative_weight"),
        )
        cvc = cvc_loss(
            out["mlp_refined"],
            out["gcn_refined"],
            batch["pairs"],
            n_total=n_total,
            n_target_entries=self.graph_data.n_target_entries,
        )
        total = hea + self.alpha * ndc + self.beta * cvc
        return LossOutput(
            loss=total,
            n_obs_minibatch=n_seeds,
            extra_metrics={"hea": hea.detach(), "ndc": ndc.detach(), "cvc": cvc.detach()},
        )
