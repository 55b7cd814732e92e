"""Tools: cluster cells, writing results into the AnnData (scanpy's ``tl`` contract)."""

from ._bgformer import bgformer

__all__ = ["bgformer"]
