"""Method-agnostic network pieces: ZINB heads, DEC soft assignment."""

from ._dec import dec_loss, student_t_assignment, target_distribution
from ._zinb import ZINBDecoder, zinb_nll

__all__ = ["ZINBDecoder", "dec_loss", "student_t_assignment", "target_distribution", "zinb_nll"]
