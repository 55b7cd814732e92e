"""Build the shipped demo dataset ``src/atlasclust/datasets/pbmc3k.h5ad``.

Source: ``../shared/data/pbmc3k.h5ad``: 10x Genomics' PBMC 3k (CC BY 4.0), raw UMI counts with gene
symbols and the Seurat tutorial's annotation. Everything is kept (2638 cells, 13713 genes); the
counts are stored as CSR with uint16 values and int16 column indices, which gzip packs to about
4.5 MB; the loader turns them into CSR float32.

Run from the repository root: ``python scripts/make_pbmc3k.py [path/to/pbmc3k.h5ad]``.
"""

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/pbmc3k.h5ad")
target = Path("src/atlasclust/datasets/pbmc3k.h5ad")

adata = ad.read_h5ad(source)
counts = sp.csr_matrix(adata.X)
assert counts.max() < np.iinfo(np.uint16).max and adata.n_vars < np.iinfo(np.int16).max
packed = sp.csr_matrix((counts.data.astype(np.uint16), counts.indices.astype(np.int16), counts.indptr), counts.shape)
small = ad.AnnData(X=packed, obs=adata.obs[["cell_type"]].copy(), var=adata.var.copy())
small.uns = {"source": str(adata.uns["source"]) + "; counts packed as uint16 by atlasclust"}
small.write_h5ad(target, compression="gzip", compression_opts=9)
print(small, f"{target.stat().st_size / 1e6:.2f} MB")
