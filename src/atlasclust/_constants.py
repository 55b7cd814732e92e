"""Names and choices shared across atlasclust, in a module that imports nothing heavy.

The command line reads its choices and defaults here, so ``atlasclust --help`` answers without
importing torch or scvi-tools; the models and tools import the same values.
"""

#: The ``var`` column :func:`scanpy.pp.highly_variable_genes` writes, used by default when present.
HIGHLY_VARIABLE = "highly_variable"
#: Genes a model reads without a gene selection (all genes when there are fewer).
DEFAULT_N_TOP_GENES = 2000
#: How genes are ranked without a selection: ``"seurat"``, normalised dispersion of the log
#: expression (scanpy's ``highly_variable_genes`` default); ``"deviance"``, Poisson deviance of the counts.
GENE_FLAVORS = ("deviance", "seurat")
#: BGFormer reconstructs the counts of its genes (ZINB), and genes ranked by the counts' deviance
#: (Townes et al. 2019) suit it: in the accuracy benchmark (5 seeds) the four 5000-gene DLPFC slices
#: rose from 0.25-0.31 to 0.37-0.45 ARI, while Baron fell (0.62 -> 0.45; docs/accuracy.md).
BGFORMER_GENE_FLAVOR = "deviance"
#: scRCL's views read principal components of the scaled log expression, whose most variable
#: genes suit them: deviance genes moved PBMC 3k 0.76 -> 0.67 and Zeisel 0.72 -> 0.66 (seed 0).
SCRCL_GENE_FLAVOR = "seurat"


class _HighlyVariableIfPresent:
    """The default of the tools' ``mask_var``: ``var["highly_variable"]`` when it exists, as in :func:`scanpy.pp.pca`."""

    def __repr__(self) -> str:
        return "'highly_variable' if present"


#: Default of the tools' ``mask_var`` (a sentinel: ``None`` means "no selection").
HIGHLY_VARIABLE_IF_PRESENT = _HighlyVariableIfPresent()

# BGFormer
#: How the clusters start when their number is given: ``"kmeans"`` (k-means at that number),
#: ``"merged"`` (``merged_kmeans_labels``) or ``"auto"``, whichever of the two has the higher
#: modularity on the embedding's kNN graph (``modularity`` at ``AUTO_RESOLUTION``).
#: k-means at the number of cell types cuts large types in two; merged k-means keeps them whole
#: but joins small distinct ones.
CENTER_INITS = ("auto", "kmeans", "merged")
#: BGFormer's ``center_init``: its two starts differ most where k-means cuts a large type in two,
#: and the modularity choice was the better of the three on the accuracy benchmark.
BGFORMER_CENTER_INIT = "auto"
#: Leiden resolution without ``n_clusters``: scanpy's default. At 1 BGFormer finds about as many
#: clusters as Leiden at 1 on PCA scores (accuracy benchmark, ``bgformer_noK``); scRCL's embedding
#: needs less (:data:`SCRCL_RESOLUTION`).
BGFORMER_RESOLUTION = 1.0

# scRCL
#: scRCL's ``center_init``: on its embedding neither ``"merged"`` nor ``"auto"`` was at or above the
#: best baseline on more datasets of the accuracy benchmark than k-means.
SCRCL_CENTER_INIT = "kmeans"
#: How a cell's GCN input combines its own and its neighbours' features: ``"mean"``,
#: ``D^-1 (A + I)``, their average; ``"symmetric"``, ``D^-1/2 (A + I) D^-1/2``, Kipf and Welling's
#: normalisation, which scales a cell's input by about the square root of its degree.
GRAPH_NORMALIZATIONS = ("mean", "symmetric")
#: Leiden resolution without ``n_clusters``, below scanpy's 1: the contrastive losses spread cells
#: evenly over the unit sphere, so the kNN graph of scRCL's embedding is less modular than that of
#: PCA scores and Leiden at 1 cut it into 1.4 to 4 times as many clusters as cell types on the
#: shared datasets (27 for the 7 layers of a DLPFC slice). At 0.25, one seed: 151673 11 clusters,
#: PBMC 3k 9 (9 types), Zeisel 9 (7), Baron 12 (13), worm neurons 27 (10); accuracy benchmark, ``scrcl_noK``.
SCRCL_RESOLUTION = 0.25
#: Cell graph normalisation of the GCN view (see ``atlasclust.data.gcn_normalize``).
#: ``"auto"`` keeps the reference's ``"symmetric"`` up to ``FULL_BATCH_MAX_CELLS`` (20,000) cells and
#: takes ``"mean"`` above: on 10 simulated types, symmetric reached ARI 0.997 at 20,000 cells but
#: 0.72 at 50,000 (0.21 at 100,000 with 8 passes; hub cells of large kNN graphs are scaled up by the
#: square root of their degree and the GCN view separates them by degree), mean 1.0 and 0.99; on the
#: shared datasets (at most 4,600 cells) symmetric is slightly ahead (mean ARI 0.587 against
#: 0.574 over the seven scRNA-seq datasets, 5 seeds).
GRAPH_NORMALIZATION_CHOICES = ("auto", *GRAPH_NORMALIZATIONS)
#: What is clustered and returned as the embedding. The paper clusters the refined views
#: ``[Z_mlp | Z_gcn]`` (its Eq. 11, ``2 n_refined`` wide); the unrefined views ``[E_mlp | E_gcn]``
#: (``2 n_hidden`` wide) cluster better on 9 of the 12 shared datasets with the default inputs (mean
#: k-means ARI 0.57 against 0.50 over 3 seeds, same trained models; the refined views win on mouse
#: bladder and the DLPFC slices 151510 and 151676), see benchmarks/results/scrcl_representation.md.
#: With the centred genes as input everywhere the refined views had won on Baron (0.90 against 0.62).
#: Their concatenation did no better (2 seeds, 8 datasets).
#: Beside the components (``cluster_components``): views 0.75, refined 0.67 (seven scRNA-seq sets, 2 seeds).
REPRESENTATIONS = ("views", "refined")
#: What the views read: the principal components the expression graph is built on (``"pca"``),
#: log-normalised expression divided by each gene's spread (``"log"``), the same centred on each
#: gene's mean (``"scaled"``, as ``sc.pp.scale``), or the raw counts (``"counts"``, the reference's
#: scRNA-seq input). ``"auto"`` is ``"pca"`` without spot coordinates and ``"scaled"`` with them. On
#: the seven shared scRNA-seq datasets (accuracy benchmark, 5 seeds) the 50 components lifted PBMC 3k
#: (ARI 0.60 -> 0.76), PBMC 10x (0.72 -> 0.78), pollen (0.73 -> 0.93) and Zeisel (0.63 -> 0.72) and
#: lowered Baron (0.74 -> 0.44), mouse bladder (0.52 -> 0.46) and worm neurons (0.65 -> 0.59): mean
#: ARI 0.65 -> 0.67, NMI 0.76 -> 0.79, above the best expression baseline on 4 datasets, not 1. On
#: the five DLPFC slices, whose inputs are smoothed over ten spatial hops, they lowered the mean ARI
#: from 0.43 to 0.38 (2 seeds). 30 components did as well as 50; 100, whitened components and the
#: refined views read from components did worse (2 seeds).
INPUT_FEATURES = ("auto", "pca", "scaled", "log", "counts")
#: Where the views' principal-component input has its origin. The views end in unit-length rows, so
#: they separate cells by direction from the origin; centred on the mean cell, the origin lies inside
#: the largest cell type, whose cells then point every way and are split (Baron mouse pancreas: beta
#: cells, 47 % of the cells). ``"balanced"`` moves the origin to the coordinate-wise median of the
#: centres of k-means at ``n_refined`` clusters on the components, a centre that no one large type
#: pulls towards itself; ``"mean"`` keeps the mean cell. Accuracy benchmark, 5 seeds: Baron ARI
#: 0.44 -> 0.62, Zeisel 0.72 -> 0.69, mouse bladder and worm neurons -0.01 and -0.02, PBMC 3k, PBMC 10x
#: and pollen within 0.01; mean over the 12 datasets 0.564 -> 0.574. The mean of the k-means
#: centres, which outlying small types pull further, lifted Baron more (0.91, one seed) but lowered
#: PBMC 3k (0.78 -> 0.61) and PBMC 10x (0.78 -> 0.66). The
#: centred genes (``input_features="scaled"``, the spatial default) stay on the mean cell: re-centred
#: alike they lost 0.03 to 0.07 on three of five DLPFC slices (2 seeds).
INPUT_CENTERS = ("balanced", "mean")
