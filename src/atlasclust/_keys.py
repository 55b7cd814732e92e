"""Where results live in an AnnData: the keys the tools write and those the plot helpers derive from them.

Both ``tl`` (which clears what a new run makes stale) and ``pl`` (which writes it) read these names.
"""

from __future__ import annotations


def embedding_key(key: str) -> str:
    """``obsm`` key of a run's embedding."""
    return f"X_{key}"


def umap_key(key: str) -> str:
    """``obsm`` key of the UMAP that :func:`~atlasclust.pl.embedding` computes from ``obsm["X_<key>"]``."""
    return f"X_{key}_umap"


def neighbors_key(key: str) -> str:
    """``uns`` key (and ``obsp`` prefix) of the neighbours behind that UMAP."""
    return f"{key}_neighbors"


def markers_key(key: str) -> str:
    """``uns`` key of the marker genes that :func:`~atlasclust.pl.marker_dotplot` ranks for ``obs[key]``."""
    return f"rank_genes_groups_{key}"


def derived_keys(key: str) -> dict[str, list[str]]:
    """Where the ``pl`` helpers keep what they computed from the run under ``key``, by AnnData slot.

    They reuse it on later calls; a new ``tl`` run under the same key makes it stale.
    """
    neighbors = neighbors_key(key)
    return {
        "obsm": [umap_key(key)],
        "obsp": [f"{neighbors}_connectivities", f"{neighbors}_distances"],
        "uns": [neighbors, umap_key(key), markers_key(key)],  # sc.tl.umap's parameters go under its key_added
    }
