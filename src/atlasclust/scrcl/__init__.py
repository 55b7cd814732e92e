"""scRCL: contrastive learning between an MLP view and a GCN view, refined by gene embeddings."""

from ._defaults import default_batch_size
from ._model import SCRCL

__all__ = ["SCRCL", "default_batch_size"]
