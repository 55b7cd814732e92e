"""What the seeded benchmark scripts share: quiet logs, mean ± sd cells, resumable runs per dataset and seed, and their command line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np


def quiet() -> None:
    """Silence warnings and the training libraries' logs."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)


def mean_sd(values: Iterable[float], digits: int = 3) -> str:
    """``mean ± sd`` (sample sd) of the values, or the value alone when there is one."""
    values = np.asarray(list(values), dtype=float)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm (all-zero rows stay zero)."""
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def run_resumable(out: Path, datasets: Iterable[str], seeds: int, run_one: Callable[[str, int], dict]) -> list[dict]:
    """Rows of ``out.json`` plus ``run_one(dataset, seed)`` for each pair not in it, saved after each run."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_suffix(".json")
    rows = json.loads(path.read_text()) if path.exists() else []
    done = {(r["dataset"], r["seed"]) for r in rows}
    for dataset in datasets:
        for seed in range(seeds):
            if (dataset, seed) in done:
                continue
            rows.append(run_one(dataset, seed))
            print(json.dumps(rows[-1]), flush=True)
            # keep partial results, so an interrupted benchmark resumes where it stopped
            path.write_text(json.dumps(rows, indent=1))
    return rows


def seeded_main(
    doc: str,
    *,
    out: Path,
    datasets: Iterable[str],
    run_one: Callable[[str, int], dict],
    write_table: Callable[[list[dict]], str],
    seeds: int = 3,
) -> None:
    """Command line of a per-dataset-and-seed benchmark: run what is missing, write and print the table.

    Options: ``--seeds``, ``--datasets`` (comma-separated, default ``datasets``) and ``--out`` (the
    results' path without suffix, default ``out``); ``doc``'s first line describes the script.
    """
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--datasets", default=",".join(datasets), help="comma-separated names")
    parser.add_argument("--out", default=str(out))
    args = parser.parse_args()
    quiet()
    rows = run_resumable(Path(args.out), args.datasets.split(","), args.seeds, run_one)
    table = write_table(rows)
    Path(args.out).with_suffix(".md").write_text(table + "\n")
    print(table)


def dataset_rows(rows: list[dict], columns: Iterable[str]) -> tuple[list[str], dict[str, list[float]]]:
    """Markdown rows ``| dataset | seeds | mean ± sd per column |`` and each column's per-dataset means."""
    columns = list(columns)
    lines, means = [], {column: [] for column in columns}
    for dataset in sorted({r["dataset"] for r in rows}):
        chosen = [r for r in rows if r["dataset"] == dataset]
        cells = []
        for column in columns:
            values = [r[column] for r in chosen]
            means[column].append(float(np.mean(values)))
            cells.append(mean_sd(values))
        lines.append(f"| {dataset} | {len(chosen)} | " + " | ".join(cells) + " |")
    return lines, means


def dataset_table(
    title: str, intro: str, rows: list[dict], columns: Iterable[str], label: Callable[[dict], str] | None = None
) -> tuple[list[str], dict[str, list[float]]]:
    """Markdown lines of a per-dataset table: title, intro, ``| dataset (label) | seeds | columns |``, a mean line.

    ``label(row)``, if given, describes a dataset beside its name (e.g. its gene count); also
    returns each column's per-dataset means.
    """
    columns = list(columns)
    lines, means = dataset_rows(rows, columns)
    if label is not None:
        labels = {r["dataset"]: label(r) for r in rows}
        lines = [
            line.replace(f"| {d} |", f"| {d} ({labels[d]}) |", 1) for d, line in zip(sorted(labels), lines, strict=True)
        ]
    header = [
        title,
        "",
        intro,
        "",
        "| dataset | seeds | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    mean_line = "| mean | | " + " | ".join(f"{sum(v) / len(v):.3f}" for v in means.values()) + " |"
    return [*header, *lines, mean_line], means


def change_lines(title: str, means: dict[str, list[float]], base: str, columns: Iterable[str]) -> list[str]:
    """Markdown lines of a table: each column's per-dataset means against ``base``'s (mean, ups, downs, worst)."""
    reference = np.asarray(means[base])
    lines = [
        "",
        title,
        "",
        "| design | mean change | datasets up by > 0.02 | datasets down by > 0.02 | worst dataset change |",
        "|---|---|---|---|---|",
    ]
    for column in columns:
        change = np.asarray(means[column]) - reference
        lines.append(
            f"| {column} | {change.mean():+.3f} | {(change > 0.02).sum()} | {(change < -0.02).sum()} | {change.min():+.3f} |"
        )
    return lines
