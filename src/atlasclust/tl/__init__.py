"""Tools: cluster cells, writing results into the AnnData (scanpy's ``tl`` contract)."""

from ._bgformer import bgformer
from ._scrcl import scrcl

__all__ = ["bgformer", "scrcl"]
