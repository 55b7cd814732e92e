"""Plotting helpers that draw from what ``tl`` wrote."""

from ._embedding import embedding

__all__ = ["embedding"]
