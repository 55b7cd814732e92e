"""atlasclust: deep-learning clustering of single-cell atlases, as a scanpy plugin."""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, metrics, models, pl, pp, tl

try:
    __version__ = version("atlasclust")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["datasets", "metrics", "models", "pl", "pp", "tl"]
