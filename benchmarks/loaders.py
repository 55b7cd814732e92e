"""How fast each way of reading an atlas delivers shuffled batches, as the model receives them.

A loader-only benchmark (no model): synthetic raw counts (``--n-cells`` cells, default 1,000,000, x
2,000 genes, about 5 % non-zero, float32 CSR) are read in shuffled batches of 4,096 and 16,384
cells (the batch sizes GPU training uses) three ways, side by side in one run:

- ``in_memory``: rows of a random permutation sliced from the CSR matrix in memory (what
  ``tl.bgformer`` does with ``data_on_device=False`` on an in-memory AnnData);
- ``backed_h5ad``: the same from an ``.h5ad`` opened with ``backed="r"`` (each batch's rows sorted,
  as scvi-tools' loader reads them);
- ``annbatch``: an ``annbatch`` collection (sharded zarr, pre-shuffled on disk) read by
  ``annbatch.Loader`` with chunked shuffled reads, preloading ``--preload`` chunks of ``--chunk``
  cells, on the CPU (``preload_to_gpu=False``), with ``zarrs`` as the codec pipeline when installed.

Every batch is turned into the dense float32 torch tensor the model receives on the CPU. Each path
reads batches for ``--seconds`` seconds (after one warm-up batch) and reports cells per second.
Writing the files is timed too. Needs Python 3.12+ and ``annbatch`` (``pip install annbatch zarrs``).

Writes ``benchmarks/results/loaders.md`` and ``.json``.

Usage: ``python benchmarks/loaders.py [--n-cells 1000000] [--seconds 20] [--folder DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from _zarr import use_zarrs

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BATCH_SIZES = (4096, 16_384)
N_GENES, DENSITY = 2000, 0.05


def synthetic_counts(n_cells: int, rng: np.random.Generator, block: int = 100_000) -> sp.csr_matrix:
    """Poisson-like counts with ``DENSITY`` non-zeros, built block by block (no dense cells x genes array)."""
    parts = []
    for start in range(0, n_cells, block):
        rows = min(block, n_cells - start)
        part = sp.random(rows, N_GENES, density=DENSITY, format="csr", dtype=np.float32, random_state=rng)
        part.data = rng.poisson(2.0, size=part.nnz).astype(np.float32) + 1
        parts.append(part)
    return sp.vstack(parts, format="csr")


def cells_per_second(batches, batch_size: int, seconds: float) -> float:
    """Cells per second delivered by the iterator ``batches`` (dense torch tensors), after one warm-up batch."""
    next(batches)
    n_cells, start = 0, time.perf_counter()
    for batch in batches:
        assert batch.shape[0] <= batch_size and batch.dtype == torch.float32
        n_cells += batch.shape[0]
        if time.perf_counter() - start > seconds:
            break
    return n_cells / (time.perf_counter() - start)


def sliced(matrix, n_cells: int, batch_size: int, rng: np.random.Generator):
    order = rng.permutation(n_cells)
    while True:
        for start in range(0, n_cells, batch_size):
            rows = np.sort(order[start : start + batch_size])
            part = matrix[rows]
            yield torch.from_numpy(part.toarray() if sp.issparse(part) else _dense(part))


def _dense(part) -> np.ndarray:
    return part.to_memory().toarray() if hasattr(part, "to_memory") else np.asarray(part.toarray())


def from_annbatch(collection_path: Path, batch_size: int, chunk: int, preload: int):
    import annbatch

    loader = annbatch.Loader(
        batch_size=batch_size,
        chunk_size=chunk,
        preload_nchunks=preload,
        shuffle=True,
        preload_to_gpu=False,
        to="torch",
        rng=np.random.default_rng(0),
    ).use_collection(annbatch.DatasetCollection(collection_path))
    while True:
        for output in loader:
            x = output["X"]
            yield x.to_dense() if x.layout != torch.strided else x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cells", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--chunk", type=int, default=1024, help="annbatch chunk_size (cells read together)")
    parser.add_argument("--preload", type=int, default=16, help="annbatch preload_nchunks")
    parser.add_argument("--folder", type=Path, default=None, help="where the files go (default: a temporary folder)")
    args = parser.parse_args()
    import annbatch

    codec = use_zarrs()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        folder = Path(folder)
        timings = {}
        start = time.perf_counter()
        counts = synthetic_counts(args.n_cells, rng)
        adata = ad.AnnData(
            X=counts,
            obs=pd.DataFrame(index=[f"c{i}" for i in range(args.n_cells)]),
            var=pd.DataFrame(index=[f"g{j}" for j in range(N_GENES)]),
        )
        timings["simulate_s"] = time.perf_counter() - start
        start = time.perf_counter()
        adata.write_h5ad(folder / "atlas.h5ad")
        timings["write_h5ad_s"] = time.perf_counter() - start
        start = time.perf_counter()
        annbatch.DatasetCollection(folder / "atlas.zarr").add_adatas([folder / "atlas.h5ad"], rng=rng)
        timings["write_collection_s"] = time.perf_counter() - start
        backed = ad.read_h5ad(folder / "atlas.h5ad", backed="r")
        rows = []
        for batch_size in BATCH_SIZES:
            paths = {
                "in_memory": sliced(counts, args.n_cells, batch_size, np.random.default_rng(1)),
                "backed_h5ad": sliced(backed.X, args.n_cells, batch_size, np.random.default_rng(1)),
                "annbatch": from_annbatch(folder / "atlas.zarr", batch_size, args.chunk, args.preload),
            }
            speeds = {name: cells_per_second(batches, batch_size, args.seconds) for name, batches in paths.items()}
            rows.append({"batch_size": batch_size, **speeds})
            print(batch_size, {name: round(speed) for name, speed in speeds.items()}, flush=True)
        backed.file.close()
    settings = {
        "n_cells": args.n_cells,
        "n_genes": N_GENES,
        "density": DENSITY,
        "seconds": args.seconds,
        "chunk": args.chunk,
        "preload": args.preload,
        "codec": codec,
        "annbatch": version("annbatch"),
        "anndata": version("anndata"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
    }
    write(rows, settings | timings)


def write(rows: list[dict], settings: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "loaders.json").write_text(json.dumps({"settings": settings, "rows": rows}, indent=1) + "\n")
    lines = [
        "# Loaders: shuffled batches delivered per second",
        "",
        f"Generated by `python benchmarks/loaders.py` on {platform.node()} ({settings['cores']} cores, "
        f"{platform.machine()}), {date.today()}, Python {settings['python']}, annbatch {settings['annbatch']} "
        f"({settings['codec']}), anndata {settings['anndata']}, torch {settings['torch']}. "
        f"{settings['n_cells']:,} synthetic cells x {settings['n_genes']:,} genes, {settings['density']:.0%} non-zero "
        f"(float32 CSR); each path read for {settings['seconds']:.0f} s per batch size, every batch made the dense "
        f"float32 tensor the model receives. annbatch: chunks of {settings['chunk']} cells, {settings['preload']} "
        "preloaded, on the CPU. See the script's docstring for what each path is.",
        "",
        "| batch size | in memory (cells/s) | backed h5ad (cells/s) | annbatch (cells/s) | annbatch / in memory |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row["annbatch"] / row["in_memory"]
        lines.append(
            f"| {row['batch_size']:,} | {row['in_memory']:,.0f} | {row['backed_h5ad']:,.0f} | "
            f"{row['annbatch']:,.0f} | {ratio:.0%} |"
        )
    lines += [
        "",
        f"Writing the files: h5ad {settings['write_h5ad_s']:.0f} s, annbatch collection (shuffled, sharded) "
        f"{settings['write_collection_s']:.0f} s.",
        "",
    ]
    (RESULTS / "loaders.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
