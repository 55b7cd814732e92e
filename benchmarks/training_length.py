"""How long BGFormer trains: its default budget against half, double, and other splits between its two phases.

``tl.bgformer`` trains by default for about 300 optimiser steps (at least 15 epochs; see
``atlasclust.bgformer._model.default_max_epochs``), half of them before the DEC centres are set
(``pretrain_fraction=0.5``). This runs, at true K and with labels only scoring:

- ``half`` and ``double``: ``max_epochs`` half and twice the default number of epochs, same split;
- ``pretrain 0.25`` and ``pretrain 0.75``: the default epochs, a quarter or three quarters of them
  before the DEC phase.

The default column is read from ``results/accuracy.json`` (the accuracy benchmark's ``bgformer`` runs,
the same seeds), so every dataset and seed run must be there.

Writes ``benchmarks/results/training_length.md`` and ``.json``.

Usage: ``python benchmarks/training_length.py [--seeds 2] [--datasets pbmc3k,zeisel]``
"""

from __future__ import annotations

import json
from pathlib import Path

from _seeded import dataset_table, seeded_main
from accuracy import DATA

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DATASETS = (
    "baron_mouse",
    "mouse_bladder",
    "zeisel",
    "pbmc3k",
    "pbmc_10x",
    "worm_neuron",
    "pollen",
    "dlpfc_151673",
)
#: Each column: a factor on the default epochs and the share of them before the DEC phase.
SETTINGS = {"half": (0.5, 0.5), "double": (2.0, 0.5), "pretrain 0.25": (1.0, 0.25), "pretrain 0.75": (1.0, 0.75)}


def default_ari(dataset: str, seed: int) -> float:
    """The accuracy benchmark's ARI of ``tl.bgformer`` at its defaults on this dataset and seed."""
    rows = json.loads((RESULTS / "accuracy.json").read_text())
    (ari,) = [r["ARI"] for r in rows if (r["dataset"], r["seed"], r["method"]) == (dataset, seed, "bgformer")]
    return ari


def run_one(dataset: str, seed: int) -> dict:
    """Each training length on one dataset and seed."""
    import anndata as ad
    from sklearn.metrics import adjusted_rand_score

    import atlasclust as ac
    from atlasclust.bgformer._defaults import default_max_epochs

    adata = ad.read_h5ad(DATA / f"{dataset}.h5ad")
    truth = adata.obs.pop("cell_type").to_numpy()  # nothing below may see the labels
    k = len(set(truth))
    epochs = default_max_epochs(adata.n_obs)
    row = {"dataset": dataset, "seed": seed, "default epochs": epochs, "default": default_ari(dataset, seed)}
    for name, (factor, pretrain_fraction) in SETTINGS.items():
        result = ac.tl.bgformer(
            adata,
            k,
            max_epochs=max(2, round(factor * epochs)),
            pretrain_fraction=pretrain_fraction,
            random_state=seed,
            enable_progress_bar=False,
            copy=True,
        )
        row[name] = adjusted_rand_score(truth, result.obs["bgformer"].to_numpy())
    return row


def write_table(rows: list[dict]) -> str:
    """Markdown: one line per dataset, a column per setting (ARI, mean ± sd over seeds), and the mean changes."""
    columns = ["default", *SETTINGS]
    lines, means = dataset_table(
        "# How long BGFormer trains",
        "`python benchmarks/training_length.py`: ARI at true K (mean ± sd over seeds) of `tl.bgformer` at its "
        "default budget (about 300 optimiser steps, half before the DEC phase; the accuracy benchmark's runs, seed "
        "for seed), with half and twice the default epochs (`max_epochs`), and with the default epochs split "
        "a quarter or three quarters before the DEC phase (`pretrain_fraction`). Labels only score.",
        rows,
        columns,
        label=lambda row: f"{row['default epochs']} epochs",
    )
    default = sum(means["default"])
    changes = " | ".join(f"{(sum(means[c]) - default) / len(means[c]):+.3f}" for c in SETTINGS)
    return "\n".join([*lines, f"| change of the mean | | | {changes} |"])


def main() -> None:
    """Run what is missing and write the table."""
    seeded_main(
        __doc__,
        out=RESULTS / "training_length",
        datasets=DATASETS,
        run_one=run_one,
        write_table=write_table,
        seeds=2,
    )


if __name__ == "__main__":
    main()
