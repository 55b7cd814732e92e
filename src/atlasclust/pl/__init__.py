"""Plotting helpers that draw from what ``tl`` wrote."""

from ._attention import attention_heatmap
from ._embedding import embedding
from ._markers import marker_dotplot

__all__ = ["attention_heatmap", "embedding", "marker_dotplot"]
