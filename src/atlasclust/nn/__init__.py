"""Method-agnostic network pieces: ZINB heads, DEC soft assignment, a sparse graph convolution, the count input buffers."""

from ._dec import dec_loss, student_t_assignment, target_distribution
from ._gcn import GraphConvolution, gather_matmul, sparse_matmul, sparse_tensor
from ._input import CountInputBuffers
from ._zinb import ZINBDecoder, zinb_nll

__all__ = [
    "CountInputBuffers",
    "GraphConvolution",
    "ZINBDecoder",
    "dec_loss",
    "gather_matmul",
    "sparse_matmul",
    "sparse_tensor",
    "student_t_assignment",
    "target_distribution",
    "zinb_nll",
]
