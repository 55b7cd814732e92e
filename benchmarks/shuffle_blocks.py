"""What ``shuffle_block_size`` costs in accuracy when a file is sorted by cell type.

``tl.bgformer(shuffle_block_size=B)`` builds each batch from shuffled blocks of ``B`` consecutive
cells, so that a backed file is read a block at a time (see ``docs/scaling.md``). In a file sorted
by sample or cell type, a block holds one kind of cell and a batch of ``256 / B`` blocks holds few
kinds. This runs ``tl.bgformer`` at its defaults (batch size 256, K = the true number of labels)
with blocks of 1 (cells drawn one by one, the default), 4, 16 and 64 cells on files in the worst
order, sorted by cell type: Zeisel as shipped (its cells come sorted by type) and PBMC 10x
reordered by type; PBMC 10x in its stored (mixed) order is the control. Data are in memory: the
batches, and so the labels, are the same as from the backed file (``tests/data/test_blocks.py``).
Labels are read only to sort the control files and to score.

Writes ``benchmarks/results/shuffle_blocks.md`` and ``.json``.

Usage: ``python benchmarks/shuffle_blocks.py [--seeds 3] [--datasets zeisel,pbmc_10x_by_type]``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _seeded import dataset_rows, seeded_main

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
RESULTS = HERE / "results"
BATCH_SIZE = 256
BLOCK_SIZES = [1, 4, 16, 64]
#: Dataset name -> (file, whether its cells are put in cell-type order first).
DATASETS = {"zeisel": ("zeisel", False), "pbmc_10x_by_type": ("pbmc_10x", True), "pbmc_10x": ("pbmc_10x", False)}


def _column(block_size: int) -> str:
    return f"blocks of {block_size} ({BATCH_SIZE // block_size} per batch)"


def _type_runs(labels: np.ndarray) -> int:
    """Number of runs of consecutive cells of one type."""
    return int(1 + np.sum(labels[1:] != labels[:-1]))


def run_one(dataset: str, seed: int) -> dict:
    """Train BGFormer on ``dataset`` once per block size and score its labels."""
    import anndata as ad

    import atlasclust as ac

    file, by_type = DATASETS[dataset]
    adata = ad.read_h5ad(DATA / f"{file}.h5ad")
    if by_type:
        adata = adata[np.argsort(adata.obs["cell_type"].to_numpy(), kind="stable")].copy()
    truth = adata.obs.pop("cell_type").to_numpy()
    k = len(np.unique(truth))
    row = {"dataset": dataset, "seed": seed, "runs": _type_runs(truth)}
    for block_size in BLOCK_SIZES:
        result = ac.tl.bgformer(
            adata, k, batch_size=BATCH_SIZE, shuffle_block_size=block_size, random_state=seed,
            enable_progress_bar=False, copy=True,
        )  # fmt: skip
        row[_column(block_size)] = ac.metrics.evaluate(truth, result.obs["bgformer"])["ARI"]
    return row


def write_table(rows: list[dict]) -> str:
    """Markdown: mean ± sd ARI per dataset and block size."""
    columns = [_column(b) for b in BLOCK_SIZES]
    runs = {r["dataset"]: r["runs"] for r in rows}
    lines = [
        "# BGFormer: batches of shuffled blocks on files sorted by cell type",
        "",
        f"`python benchmarks/shuffle_blocks.py`: `tl.bgformer` at its defaults (batch size {BATCH_SIZE}, "
        "K = true number of labels) with `shuffle_block_size` = 1 (the default), 4, 16 and 64. "
        "`zeisel` is stored sorted by cell type, `pbmc_10x_by_type` is PBMC 10x reordered by cell type, "
        "`pbmc_10x` is its stored order. Runs of consecutive cells of one type: "
        + ", ".join(f"{name} {n:,}" for name, n in sorted(runs.items()))
        + ". ARI, mean ± sd over seeds.",
        "",
        "| dataset | seeds | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 2) + "|",
    ]
    table, _ = dataset_rows(rows, columns)
    lines += table
    return "\n".join(lines)


def main() -> None:
    """Run the comparison and write the table (runs already in the results are skipped)."""
    seeded_main(__doc__, out=RESULTS / "shuffle_blocks", datasets=DATASETS, run_one=run_one, write_table=write_table)


if __name__ == "__main__":
    main()
