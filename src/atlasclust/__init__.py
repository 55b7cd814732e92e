"""atlasclust: deep-learning clustering of single-cell atlases, as a scanpy plugin."""

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("atlasclust")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["datasets", "metrics", "models", "pl", "tl"]


def __getattr__(name: str):
    # the namespaces load on first use, so that `atlasclust --help` does not wait for torch and scvi-tools
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
