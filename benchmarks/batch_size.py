"""What large batches cost BGFormer in accuracy, and which learning rate and epochs win it back.

On a GPU, ``tl.bgformer`` trains many times faster per epoch with batches of thousands of cells
than with its default of 256 (``benchmarks/results/scaling.md``), but a larger batch takes fewer
optimiser steps per epoch. This trains ``tl.bgformer`` (K = the true number of groups) on
simulated counts with batches of 256 (the default, at its default epochs), 4,096 and 16,384 cells,
with the learning rate left at 1e-3 or scaled by the square root or by the ratio of the batch sizes
(``lr = 1e-3 * (batch / 256) ** power``), and with the default or four times as many epochs
(16,384 at 15 epochs only: on a CPU its epochs take three times as long as at 4,096). "Default
epochs" is ``max_epochs=None``, which counts about 300 steps of the batch used (15 epochs at 256,
25 at 4,096, 99 at 16,384 on 50,000 cells); the two rows with default epochs at 4,096 and 16,384
were added after the others and run for seed 0 only.

The data are ``ac.datasets.simulate(50_000, 2000, 20, n_markers=40, fold_change=3.0)``: 20 groups
that neither the default BGFormer nor k-means on 50 principal components separate perfectly
(ARI about 0.8 at 10,000 cells), so a worse training shows. Easier simulations give ARI 1.0 at any
batch size and hide the effect; the real datasets in ``../shared/data`` have at most 4,600 cells,
fewer than one batch of 16,384. Seeds vary the model, not the data. Wall times go to the ``.json``
only: on two CPU cores an epoch took about 15 s at 256 and at 4,096 cells per batch and 42 s at
16,384, where a GPU's time per epoch falls steeply with the batch size.

Writes ``benchmarks/results/batch_size.md`` and ``.json``.

Usage: ``python benchmarks/batch_size.py [--seeds 2]``
"""

from __future__ import annotations

import time
from pathlib import Path

from _seeded import mean_sd, seeded_main

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BASE_BATCH, BASE_LR = 256, 1e-3
#: Dataset name -> ``ac.datasets.simulate`` arguments (cells, genes, groups, keywords).
DATASETS = {"simulated_50k": (50_000, 2000, 20, {"n_markers": 40, "fold_change": 3.0})}
#: (batch size, power of the learning-rate rule, epochs; ``None``: the default budget).
SETTINGS = [
    (256, 0.0, None),
    (4096, 0.0, 15),
    (4096, 0.5, 15),
    (4096, 1.0, 15),
    (4096, 0.5, 60),
    (16384, 0.0, 15),
    (16384, 0.5, 15),
    (4096, 0.0, None),
    (16384, 0.0, None),
]
RULES = {0.0: "lr 1e-3", 0.5: "√ rule", 1.0: "linear rule"}


def _name(batch_size: int, power: float, epochs: int | None) -> str:
    budget = "default epochs" if epochs is None else f"{epochs} epochs"
    return f"{batch_size}, {RULES[power]}, {budget}"


def run_one(dataset: str, seed: int) -> dict:
    """Train BGFormer once per setting on the simulated data; ARI, steps and wall time of each."""
    import math

    import atlasclust as ac

    n_cells, n_genes, n_groups, options = DATASETS[dataset]
    adata = ac.datasets.simulate(n_cells, n_genes, n_groups, random_state=0, **options)
    truth = adata.obs.pop("cell_type").to_numpy()
    row = {"dataset": dataset, "seed": seed}
    for batch_size, power, epochs in SETTINGS:
        lr = BASE_LR * (batch_size / BASE_BATCH) ** power
        start = time.perf_counter()
        result = ac.tl.bgformer(
            adata, n_groups, batch_size=batch_size, lr=lr, max_epochs=epochs, random_state=seed,
            enable_progress_bar=False, copy=True,
        )  # fmt: skip
        name = _name(batch_size, power, epochs)
        n_epochs = len(result.uns["bgformer"]["history"])  # both phases, one row per epoch
        row[name] = {
            "ARI": ac.metrics.evaluate(truth, result.obs["bgformer"])["ARI"],
            "lr": lr,
            "steps": n_epochs * math.ceil(n_cells / batch_size),
            "seconds": time.perf_counter() - start,
        }
    return row


def write_table(rows: list[dict]) -> str:
    """Markdown: one line per setting, learning rate, steps and ARI (mean ± sd over seeds)."""
    lines = [
        "# BGFormer: batch size, learning rate and epochs",
        "",
        "`python benchmarks/batch_size.py`: `tl.bgformer` (K = 20, the true number of groups) on "
        "`ac.datasets.simulate(50_000, 2000, 20, n_markers=40, fold_change=3.0)`, learning rate "
        f"`{BASE_LR:g} * (batch / {BASE_BATCH}) ** power` (√ rule: power 0.5; linear rule: 1). Steps "
        "are optimiser steps of both phases. Seeds: "
        + ", ".join(sorted({f"{r['dataset']} {sum(q['dataset'] == r['dataset'] for q in rows)}" for r in rows}))
        + ". Compare the cost in epochs: a GPU's time per epoch falls steeply with the batch size "
        "(`scaling.md`), a CPU's does not; wall times (on a shared CPU) are in the `.json`.",
        "",
        "| dataset | batch, learning rate, epochs | lr | steps | ARI |",
        "|---|---|---|---|---|",
    ]
    for dataset in sorted({r["dataset"] for r in rows}):
        chosen = [r for r in rows if r["dataset"] == dataset]
        for setting in SETTINGS:
            name = _name(*setting)
            runs = [r[name] for r in chosen if name in r]
            if not runs:
                continue
            lines.append(
                f"| {dataset} | {name} | {runs[0]['lr']:.2g} | {runs[0]['steps']:,} | "
                f"{mean_sd(r['ARI'] for r in runs)} |"
            )
    return "\n".join(lines)


def main() -> None:
    """Run the settings and write the table (seeds already in the results are skipped)."""
    seeded_main(
        __doc__, out=RESULTS / "batch_size", datasets=DATASETS, run_one=run_one, write_table=write_table, seeds=2
    )


if __name__ == "__main__":
    main()
