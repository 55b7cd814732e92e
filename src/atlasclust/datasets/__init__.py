"""Datasets: a small real labelled dataset shipped with the package, and count simulators."""

from ._simulate import simulate, simulate_tissue
from ._zeisel import zeisel

__all__ = ["simulate", "simulate_tissue", "zeisel"]
