"""Write the tutorial notebooks' cells (``tutorials/*.ipynb``); execute them with ``--execute``.

The notebooks are committed with their outputs. Edit the cells here, then run
``python scripts/make_tutorials.py --execute`` to rewrite and re-execute them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"


def md(text: str):
    """A markdown cell."""
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text: str):
    """A code cell."""
    return nbformat.v4.new_code_cell(text.strip())


BGFORMER = [
    md("""
# BGFormer on a real dataset

This tutorial clusters the shipped Zeisel et al. mouse brain dataset with
{func}`atlasclust.tl.bgformer` inside an ordinary scanpy pipeline, draws the three `pl` helpers,
compares the result with Leiden, clusters the same file read with `backed="r"` by mini-batches,
and saves the model to label held-back cells. It runs in a few minutes on a laptop CPU.
"""),
    code("""
import tempfile
import warnings
from pathlib import Path

import numpy as np
import scanpy as sc

import atlasclust as ac

warnings.filterwarnings("ignore")  # Lightning's hints about data-loader workers
sc.settings.verbosity = 2
adata = ac.datasets.zeisel()
adata
"""),
    md("""
`adata.X` holds raw counts, which BGFormer needs (it models them with a ZINB likelihood). As in
most pipelines we keep them in a layer and log-normalise `X` for the usual scanpy steps.
"""),
    code("""
adata.layers["counts"] = adata.X.copy()
sc.pp.normalize_total(adata)
sc.pp.log1p(adata)
sc.pp.pca(adata, random_state=0)
sc.pp.neighbors(adata, random_state=0)
sc.tl.leiden(adata, flavor="igraph", n_iterations=2, random_state=0)
"""),
    md("""
## Cluster with BGFormer

`n_clusters` is the number of clusters (leave it `None` to find it with Leiden on the learned
embedding). `layer="counts"` points to the raw counts. `store_attention=True` keeps each cell's
attention, so that the attention heatmap can group cells by any column later.
"""),
    code("""
ac.tl.bgformer(adata, n_clusters=7, layer="counts", store_attention=True, enable_progress_bar=False, random_state=0)
adata
"""),
    md("""
The embedding is in `obsm["X_bgformer"]`, the labels in `obs["bgformer"]`, and the parameters,
training history and attention maps in `uns["bgformer"]`. The history shows both training phases:
"""),
    code("""
adata.uns["bgformer"]["history"].groupby("phase").agg(["first", "last"])
"""),
    md("""
## Plots

A UMAP of the BGFormer embedding (computed under its own keys: the `X_umap` of the scanpy
pipeline is untouched), coloured by the clusters and by the authors' labels:
"""),
    code("""
ac.pl.embedding(adata, color=["bgformer", "cell_type"])
"""),
    md("""
Mean cell-to-anchor attention of each cluster, one panel per head, similar anchors side by side.
Clusters that read the same anchors are related cell types:
"""),
    code("""
ac.pl.attention_heatmap(adata)
"""),
    md("The same maps grouped by the published cell types instead of the clusters:"),
    code("""
ac.pl.attention_heatmap(adata, groupby="cell_type", heads=[0, 1])
"""),
    md("""
Top marker genes per cluster (`sc.tl.rank_genes_groups` on log-normalised counts, stored under
`uns["rank_genes_groups_bgformer"]`):
"""),
    code("""
ac.pl.marker_dotplot(adata, n_genes=3, layer="counts")
"""),
    md("""
## Compare with Leiden

The labels are used here only to score the two clusterings; BGFormer never reads them.
"""),
    code("""
import pandas as pd

pd.DataFrame(
    {
        "leiden (resolution 1)": ac.metrics.evaluate(adata.obs["cell_type"], adata.obs["leiden"]),
        "bgformer": ac.metrics.evaluate(adata.obs["cell_type"], adata.obs["bgformer"]),
    }
).T.round(3)
"""),
    md("""
## The same file, read backed

Atlases do not fit in memory. Written to `.h5ad` and opened with `backed="r"`, the same data are
clustered by mini-batches read from disk: gene selection and scaling statistics come from a
streaming pass, and the matrix is never loaded whole.
"""),
    code("""
folder = Path(tempfile.mkdtemp())
path = folder / "zeisel_counts.h5ad"
sc.AnnData(adata.layers["counts"], obs=adata.obs[["cell_type"]], var=adata.var[[]]).write_h5ad(path)

backed = sc.read_h5ad(path, backed="r")
ac.tl.bgformer(backed, n_clusters=7, enable_progress_bar=False, random_state=0)
print(backed.isbacked, backed.obs["bgformer"].value_counts().to_dict())
print(
    "agreement with the in-memory run (ARI):",
    round(ac.metrics.evaluate(adata.obs["bgformer"], backed.obs["bgformer"])["ARI"], 3),
)
"""),
    md("""
With the same seed the backed and in-memory runs give the same labels on the CPU.

## Save the model and label new cells

Train on 90 % of the cells, save the model, load it and predict the held-back 10 %:
"""),
    code("""
rng = np.random.default_rng(0)
held_back = rng.random(adata.n_obs) < 0.1
train, new = adata[~held_back].copy(), adata[held_back].copy()
model = ac.tl.bgformer(
    train, n_clusters=7, layer="counts", enable_progress_bar=False, return_model=True, random_state=0
)
model.save(folder / "bgformer_model")

loaded = ac.models.BGFormer.load(folder / "bgformer_model", new)
new.obs["predicted"] = loaded.predict(new).astype(str)
print("held-back cells:", new.n_obs)
ac.metrics.evaluate(new.obs["cell_type"], new.obs["predicted"])
"""),
]

SCRCL = [
    md("""
# scRCL on scRNA-seq and spatial data

{func}`atlasclust.tl.scrcl` learns an embedding by contrasting an MLP view and a GCN view of the
cell graph, refined by gene embeddings. This tutorial runs it on the shipped Zeisel et al. dataset
and on a simulated layered tissue, where the graph comes from the spots' coordinates.
"""),
    code("""
import warnings

import pandas as pd
import scanpy as sc

import atlasclust as ac

warnings.filterwarnings("ignore")
sc.settings.verbosity = 2
"""),
    md("""
## scRNA-seq

The cell graph is a kNN graph of the expression (built by `sc.pp.neighbors` under scRCL's own
key; the user's `connectivities` are not touched). We use 1000 variable genes to keep the tutorial
short on a CPU, and the default budget of about 100 full-batch steps.
"""),
    code("""
adata = ac.datasets.zeisel()
ac.tl.scrcl(adata, n_clusters=7, n_top_genes=1000, enable_progress_bar=False, random_state=0)
adata
"""),
    code("""
ac.metrics.evaluate(adata.obs["cell_type"], adata.obs["scrcl"])
"""),
    code("""
ac.pl.embedding(adata, key="scrcl", color=["scrcl", "cell_type"])
"""),
    md("The three losses per epoch, from `uns['scrcl']['history']`:"),
    code("""
history = adata.uns["scrcl"]["history"]
history[[c for c in history.columns if c.endswith("_train")]].plot(subplots=True, figsize=(6, 5), logy=True);
"""),
    md("""
## Spatial transcriptomics

`ac.datasets.simulate_tissue` lays spots on a grid in wavy layers whose expression differs only
weakly, a small stand-in for a DLPFC slice. With `spatial_key="spatial"` the cell graph links
each spot to its nearest spots in space (KD-tree), the inputs of both views are smoothed over that
graph (`smoothing`, by default `(10, 8)` graph powers with coordinates, the reference's DLPFC
setting), and `smooth_labels` takes a majority vote of the labels over spatial neighbours.
"""),
    code("""
tissue = ac.datasets.simulate_tissue(random_state=0)
options = {"n_top_genes": None, "enable_progress_bar": False, "random_state": 0}  # all 300 simulated genes
expression_only = ac.tl.scrcl(tissue, n_clusters=4, copy=True, **options)
ac.tl.scrcl(tissue, n_clusters=4, spatial_key="spatial", smooth_labels=6, **options)
pd.DataFrame(
    {
        "expression graph": ac.metrics.evaluate(tissue.obs["layer"], expression_only.obs["scrcl"]),
        "spatial graph": ac.metrics.evaluate(tissue.obs["layer"], tissue.obs["scrcl"]),
    }
).T.round(3)
"""),
    md("The spatial domains on the coordinates, beside the simulated layers:"),
    code("""
tissue.obs["expression graph"] = expression_only.obs["scrcl"]
sc.pl.embedding(tissue, basis="spatial", color=["layer", "expression graph", "scrcl"], size=60)
"""),
]


def main() -> None:
    """Write both notebooks, executing them when asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true")
    parser.add_argument("--only", choices=["bgformer", "scrcl"], help="write one notebook")
    args = parser.parse_args()
    TUTORIALS.mkdir(exist_ok=True)
    for name, cells in (("bgformer", BGFORMER), ("scrcl", SCRCL)):
        if args.only not in (None, name):
            continue
        notebook = nbformat.v4.new_notebook(cells=cells)
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        if args.execute:
            NotebookClient(
                notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(TUTORIALS)}}
            ).execute()
        nbformat.write(notebook, TUTORIALS / f"{name}.ipynb")
        print("wrote", TUTORIALS / f"{name}.ipynb")


if __name__ == "__main__":
    main()
