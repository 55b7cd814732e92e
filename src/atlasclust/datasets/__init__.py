"""Datasets: a small real labelled dataset shipped with the package, and a count simulator."""

from ._simulate import simulate
from ._zeisel import zeisel

__all__ = ["simulate", "zeisel"]
