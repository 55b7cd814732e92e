"""Model classes, for training by hand, saving, loading and predicting on new cells."""

from atlasclust.bgformer import BGFormer

__all__ = ["BGFormer"]
