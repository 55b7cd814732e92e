"""What the DEC start costs: ``center_init`` = ``"kmeans"``, ``"merged"`` and ``"auto"`` (issue 40).

Both methods place their clustering head's centres once, on the embedding of at most 50,000 cells
(a random 50,000 above that, ``bgformer._defaults.init_cells``), so the start's cost stops growing
there: a 1M-cell atlas pays what 50,000 cells pay. ``"auto"`` runs both k-means and merged k-means
and builds an exact kNN graph of those cells, weighted as scanpy weights it, to compare their modularity. This times
``train.cluster_centers`` alone on simulated embeddings (128 dimensions, BGFormer's width; K groups
of unequal size, the largest about 10 times the smallest), each call in a fresh process, so any
one-time cost of a Python session is counted as a user pays it.

Writes ``benchmarks/results/start_cost.md`` and ``.json``.

Usage: ``python benchmarks/start_cost.py [--cells 5000,20000,50000] [--clusters 10,50] [--tables-only]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from multiprocessing import get_context
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
STARTS = ("kmeans", "merged", "auto")
N_LATENT = 128


def simulated_embedding(n_cells: int, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Gaussian groups in ``N_LATENT`` dimensions, group sizes spread over a factor of about 10."""
    rng = np.random.default_rng(seed)
    weights = np.geomspace(1.0, 10.0, n_clusters)
    groups = rng.choice(n_clusters, size=n_cells, p=weights / weights.sum())
    centres = rng.normal(scale=3.0, size=(n_clusters, N_LATENT))
    return (centres[groups] + rng.normal(size=(n_cells, N_LATENT))).astype(np.float32)


def time_start(n_cells: int, n_clusters: int, start: str) -> dict:
    """One ``cluster_centers`` call (in a fresh process): seconds and the process's peak memory."""
    from atlasclust.train import cluster_centers

    latent = simulated_embedding(n_cells, n_clusters)
    before = time.perf_counter()
    _, info = cluster_centers(latent, n_clusters, resolution=1.0, random_state=0, init=start)
    seconds = time.perf_counter() - before
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"cells": n_cells, "clusters": n_clusters, "start": start, "chose": info["start"],
            "seconds": seconds, "peak_mb": peak_mb}  # fmt: skip


def write_table(rows: list[dict]) -> str:
    """Markdown: seconds (and peak memory) per start, and what ``"auto"`` adds to ``"kmeans"``."""
    machine = f"{platform.node()} ({os.cpu_count()} cores, {platform.machine()})"
    lines = [
        "# What the DEC start costs",
        "",
        f"`python benchmarks/start_cost.py` on {machine}, {date.today()}: `train.cluster_centers` on a simulated "
        f"{N_LATENT}-dimensional embedding, each call in a fresh process (one-time costs of a session "
        "included). BGFormer's start sees at most 50,000 cells (a random 50,000 of a larger "
        "dataset), so the 50,000 row is also its cost at 1M cells; `auto`'s modularity graph is built on at "
        "most 50,000 cells for either method. Seconds (peak MB of the process).",
        "",
        "| cells | K | " + " | ".join(STARTS) + " | auto minus kmeans |",
        "|---" * (len(STARTS) + 3) + "|",
    ]
    for cells, clusters in sorted({(r["cells"], r["clusters"]) for r in rows}):
        cell = {r["start"]: r for r in rows if r["cells"] == cells and r["clusters"] == clusters}
        shown = [f"{cell[s]['seconds']:.1f} ({cell[s]['peak_mb']:.0f})" for s in STARTS]
        extra = cell["auto"]["seconds"] - cell["kmeans"]["seconds"]
        lines.append(f"| {cells:,} | {clusters} | " + " | ".join(shown) + f" | +{extra:.1f} s |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="5000,20000,50000")
    parser.add_argument("--clusters", default="10,50")
    parser.add_argument("--tables-only", action="store_true", help="rewrite the table from the saved json")
    args = parser.parse_args()
    if args.tables_only:
        table = write_table(json.loads((RESULTS / "start_cost.json").read_text()))
        (RESULTS / "start_cost.md").write_text(table)
        print(table)
        return
    settings = [
        (int(cells), int(clusters), start)
        for cells in args.cells.split(",")
        for clusters in args.clusters.split(",")
        for start in STARTS
    ]
    rows = []
    for setting in settings:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as fresh:
            row = fresh.submit(time_start, *setting).result()
        print(row, flush=True)
        rows.append(row)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "start_cost.json").write_text(json.dumps(rows, indent=1))
    table = write_table(rows)
    (RESULTS / "start_cost.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
