"""Datasets: two small real labelled datasets shipped with the package, and count simulators."""

from ._shipped import pbmc3k, zeisel
from ._simulate import simulate, simulate_tissue

__all__ = ["pbmc3k", "simulate", "simulate_tissue", "zeisel"]
