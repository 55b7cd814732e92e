"""scRCL: contrastive learning between an MLP view and a GCN view, refined by gene embeddings."""

from ._model import SCRCL

__all__ = ["SCRCL"]
