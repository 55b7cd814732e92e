"""Model classes, for training by hand, saving, loading and predicting on new cells."""

from atlasclust.bgformer import BGFormer
from atlasclust.scrcl import SCRCL

__all__ = ["BGFormer", "SCRCL"]
