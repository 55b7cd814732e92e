"""Slices pooled in one AnnData: both methods with and without ``batch_key``, scRCL with ``library_key``.

Several slices of a tissue are often studied together. Pooled in one AnnData, their spots share a
coordinate frame and their expression may differ by slice. This pools two or three shared DLPFC slices (the
genes they share), names each spot's slice in ``obs["slice"]`` and runs ``tl.scrcl`` with the spot
coordinates and ``tl.bgformer`` (expression only), each at its defaults with K = the number of layers,
without and with ``batch_key="slice"``. With it, scRCL builds one spatial graph per slice and both
methods centre each spot on its slice's gene means (``docs/concepts.md``). scRCL also runs with
``library_key="slice"``: one spatial graph per slice, spots of different slices joined where they are
mutual nearest neighbours in expression, the expression left uncentred. ARI against the layer annotation, and against the slices (how much the clusters follow the slices). Another pool,
``simulated_halves``, cuts one simulated tissue in two slices whose expression programs are the same.
Labels are read only to score.

Writes ``benchmarks/results/pooled_slices.md`` and ``.json``.

Usage: ``python benchmarks/pooled_slices.py [--seeds 3] [--datasets dlpfc_151673+dlpfc_151676]``
"""

from __future__ import annotations

from pathlib import Path

from _seeded import dataset_rows, seeded_main

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
RESULTS = HERE / "results"
#: Pairs of slices: one donor (151673, 151676) and two donors (151510, whose 500 genes limit the shared ones, and
#: 151673); three slices of one donor (151673, 151674, 151676); and ``simulated_halves`` (see :func:`simulated_halves`).
DATASETS = [
    "dlpfc_151673+dlpfc_151676",
    "dlpfc_151510+dlpfc_151673",
    "dlpfc_151673+dlpfc_151674+dlpfc_151676",
    "simulated_halves",
]
#: Runs: the method and the option set to ``"slice"`` (``None``: neither).
RUNS = [
    ("scrcl", None),
    ("scrcl", "batch_key"),
    ("scrcl", "library_key"),
    ("bgformer", None),
    ("bgformer", "batch_key"),
]


def _column(method: str, option: str | None, against: str) -> str:
    return f"{method}{f' {option}' if option else ''} ({against})"


def simulated_halves():
    """Two slices of one simulated tissue: its left and right halves, the right one upside down on the left's frame.

    Same genes, same expression programs, same depth; the layers' shares differ a little (the layers are
    wavy bands), and the slices' coordinates overlap with other layers beneath.
    """
    import anndata as ad
    import numpy as np

    import atlasclust as ac

    tissue = ac.datasets.simulate_tissue(random_state=0)  # 40 x 40 spots, 4 layers, 300 genes
    tissue.obs = tissue.obs.rename(columns={"layer": "cell_type"})
    xy = tissue.obsm["spatial"]
    right = xy[:, 0] >= 20
    left_half, right_half = tissue[~right].copy(), tissue[right].copy()
    right_half.obsm["spatial"] = np.column_stack([xy[right, 0] - 20, xy[:, 1].max() - xy[right, 1]])
    return ad.concat([left_half, right_half], label="slice", keys=["left", "right"], index_unique="-")


def pooled(dataset: str):
    """The slices named in ``dataset`` (joined by ``+``) on their shared genes, ``obs["slice"]`` naming each spot's."""
    import anndata as ad

    if dataset == "simulated_halves":
        return simulated_halves()
    names = dataset.split("+")
    slices = [ad.read_h5ad(DATA / f"{name}.h5ad") for name in names]
    genes = slices[0].var_names
    for other in slices[1:]:
        genes = genes.intersection(other.var_names)
    return ad.concat([s[:, genes] for s in slices], label="slice", keys=names, index_unique="-")


def run_one(dataset: str, seed: int) -> dict:
    """Each run of :data:`RUNS`, scored against the layers and the slices."""
    import atlasclust as ac

    adata = pooled(dataset)
    truth = adata.obs.pop("cell_type").to_numpy()
    k = len(set(truth))  # 7 layers on DLPFC, 4 simulated
    row = {"dataset": dataset, "seed": seed, "spots": adata.n_obs, "genes": adata.n_vars}
    for method, option in RUNS:
        options = {"spatial_key": "spatial"} if method == "scrcl" else {}
        if option is not None:
            options[option] = "slice"
        result = getattr(ac.tl, method)(
            adata, k, n_top_genes=min(2000, adata.n_vars), random_state=seed, enable_progress_bar=False,
            copy=True, **options,
        )  # fmt: skip
        labels = result.obs[method]
        row[_column(method, option, "layers")] = ac.metrics.evaluate(truth, labels)["ARI"]
        row[_column(method, option, "slices")] = ac.metrics.evaluate(adata.obs["slice"], labels)["ARI"]
    return row


def write_table(rows: list[dict]) -> str:
    """Markdown: mean ± sd ARI per pool of slices and run."""
    sizes = {r["dataset"]: (r["spots"], r["genes"]) for r in rows}
    lines = [
        "# Slices pooled: with and without `batch_key` or `library_key`",
        "",
        "`python benchmarks/pooled_slices.py`: two or three shared DLPFC slices in one AnnData (their shared genes), "
        "or the two halves of one simulated tissue (`ac.datasets.simulate_tissue(random_state=0)`, the right half "
        "turned upside down onto the left one's coordinates), "
        '`obs["slice"]` naming each spot\'s slice; `tl.scrcl` with the spot coordinates and `tl.bgformer` '
        '(expression only) at their defaults, K = the number of layers (7; 4 simulated), without and with `batch_key="slice"` (centred '
        'within slices; scRCL\'s spatial graph within slices), and scRCL with `library_key="slice"` (its '
        "spatial graph within slices, mutual nearest neighbours in expression joined across them, the expression "
        "uncentred). "
        "Pools: "
        + ", ".join(f"{name} {spots:,} spots, {genes:,} genes" for name, (spots, genes) in sorted(sizes.items()))
        + ". ARI against the layers and against the slices, mean ± sd over seeds.",
    ]
    for against in ("layers", "slices"):
        columns = [_column(method, option, against) for method, option in RUNS]
        table, _ = dataset_rows(rows, columns)
        lines += ["", f"## ARI against the {against}", "", "| pool | seeds | " + " | ".join(columns) + " |"]
        lines += ["|---" * (len(columns) + 2) + "|", *table]
    return "\n".join(lines)


def main() -> None:
    """Run the comparison and write the tables (runs already in the results are skipped)."""
    seeded_main(__doc__, out=RESULTS / "pooled_slices", datasets=DATASETS, run_one=run_one, write_table=write_table)


if __name__ == "__main__":
    main()
