"""BGFormer: bipartite cell-anchor attention clustering."""

from ._model import BGFormer
from ._module import BGFormerModule

__all__ = ["BGFormer", "BGFormerModule"]
