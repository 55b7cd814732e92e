"""Scaling benchmark: time and peak memory of ``tl.scrcl`` and ``tl.bgformer`` as cells grow.

Synthetic counts (``ac.datasets.simulate``: NB groups, varied library sizes, 2000 genes, 10 groups)
are written once per size as h5ad files (``--data-dir``), so the same files serve in-memory and
backed runs. Each run happens in its own process, so that its peak memory (max RSS) is its own;
the ``data MB`` column is the process's peak right after reading the file. Reports total time,
seconds per training epoch, training cells per second and the fitted exponents of time and memory
against N. Writes ``benchmarks/results/scaling.md`` and ``scaling.json``; finished rows are kept
and skipped on a rerun.

Usage: ``python benchmarks/scaling.py [--method scrcl] [--sizes 5000,20000,50000,200000] [--max-epochs 1]
[--backed] [--batch-size B] [--num-workers W] [--accelerator gpu] [--data-on-device yes|no]
[--precision bf16-mixed] [--lr LR] [--shuffle-block-size 64] [--spatial]``. Rows record the machine, the GPU if
one was used and the command that produced them. Sizes above 200,000 cells are simulated with torch on the
GPU when there is one (same model as ``ac.datasets.simulate``, other random numbers): numpy takes minutes
there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
#: spots per row of the simulated tissues (``--spatial``)
TISSUE_WIDTH = 500


def make_data(n_cells: int, path: Path, *, spatial: bool = False) -> None:
    """Simulate ``n_cells`` cells x 2000 genes and write them to ``path``.

    With ``spatial``, spots of a layered tissue (``ac.datasets.simulate_tissue``, 10 layers) on a grid
    500 spots wide, their layer in ``obs["cell_type"]``.
    """
    import anndata as ad
    import torch

    import atlasclust as ac

    if spatial:
        adata = ac.datasets.simulate_tissue(
            -(-n_cells // TISSUE_WIDTH), TISSUE_WIDTH, 10, 2000, n_markers=50, fold_change=2.0, random_state=0
        )
        adata.obs = adata.obs.rename(columns={"layer": "cell_type"})
    elif n_cells > 200_000 and torch.cuda.is_available():
        adata = _simulate_on_gpu(n_cells)
    else:
        adata = ac.datasets.simulate(n_cells, 2000, 10, n_markers=50, random_state=0)
    tmp = path.with_suffix(".tmp")
    if hasattr(ad.settings, "allow_write_nullable_strings"):  # pandas 3 makes string columns nullable strings
        ad.settings.allow_write_nullable_strings = True
    adata.write_h5ad(tmp)
    os.replace(tmp, path)


def _simulate_on_gpu(n_cells: int, chunk: int = 100_000):
    """``ac.datasets.simulate(n_cells, 2000, 10, n_markers=50)``'s model, drawn by torch on the GPU."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp
    import torch

    n_genes, n_groups, n_markers, dispersion = 2000, 10, 50, 0.5
    rng = np.random.default_rng(0)
    groups = rng.integers(n_groups, size=n_cells)
    means = np.tile(rng.gamma(1.0, 0.5, size=n_genes) + 0.02, (n_groups, 1))
    for group in range(n_groups):
        means[group, group * n_markers : (group + 1) * n_markers] *= 4.0
    library = np.exp(rng.normal(0.0, 0.4, size=n_cells))
    generator = torch.Generator("cuda").manual_seed(0)
    means_gpu = torch.as_tensor(means, dtype=torch.float32, device="cuda")
    chunks = []
    for start in range(0, n_cells, chunk):
        rows = slice(start, start + chunk)
        mu = means_gpu[torch.as_tensor(groups[rows], device="cuda")]
        mu *= torch.as_tensor(library[rows], dtype=torch.float32, device="cuda")[:, None]
        rate = torch._standard_gamma(torch.full_like(mu, 1.0 / dispersion), generator=generator) * mu * dispersion
        counts = torch.poisson(rate, generator=generator).to_sparse_csr()
        chunks.append(
            sp.csr_matrix(
                (
                    counts.values().cpu().numpy(),
                    counts.col_indices().cpu().numpy(),
                    counts.crow_indices().cpu().numpy(),
                ),
                shape=counts.shape,
            )
        )
    counts = sp.vstack(chunks, format="csr")
    counts[np.flatnonzero(counts.getnnz(axis=1) == 0), 0] = 1.0  # no empty cell
    names = [f"type_{g}" for g in range(n_groups)]
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical.from_codes(groups, names)},
        index=pd.Index([f"cell_{i}" for i in range(n_cells)], dtype=object),
    )
    var = pd.DataFrame(index=pd.Index([f"gene_{j}" for j in range(n_genes)], dtype=object))
    return ad.AnnData(X=counts, obs=obs, var=var)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(method: str, path: Path, max_epochs: int, backed: bool, options: dict) -> dict:
    """Run ``tl.<method>`` on the file at ``path``; times and peak memory."""
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    import anndata as ad
    import torch

    import atlasclust as ac

    adata = ad.read_h5ad(path, backed="r" if backed else None)
    data_mb = _peak_mb()
    # the one pass of tl.bgformer that embeds and labels all cells after training, timed from here
    summary_seconds = []
    if method == "bgformer":
        summarize = ac.models.BGFormer.summarize

        def timed_summarize(self, *args, **kwargs):
            begin = time.perf_counter()
            summary = summarize(self, *args, **kwargs)
            summary_seconds.append(time.perf_counter() - begin)
            return summary

        ac.models.BGFormer.summarize = timed_summarize
    start = time.perf_counter()
    run = getattr(ac.tl, method)
    model = run(adata, 10, max_epochs=max_epochs, enable_progress_bar=False, return_model=True, **options)
    seconds = time.perf_counter() - start
    train_seconds = model.training_seconds_
    # steady epochs: all but the first of each fit (which holds the data's set-up and the warm-up), where
    # there are; each fit's epochs count at its own steady pace (BGFormer's clustering phase costs more)
    epoch_seconds = sum(len(fit) * float(np.mean(fit[1:] or fit)) for fit in model.epoch_seconds_)
    # inference alone: one more pass over all cells (the run above embedded them once already), in
    # batches as large as the training's (at least 1024, the default)
    inference_batch = max(1024, int(model.batch_size_))
    start = time.perf_counter()
    model.get_latent_representation(batch_size=inference_batch)
    inference_seconds = time.perf_counter() - start
    truth = adata.obs["cell_type"]
    gpu = torch.cuda.is_available() and options.get("accelerator", "auto") in ("auto", "gpu", "cuda")
    return {
        "method": method,
        "backed": backed,
        "n_cells": adata.n_obs,
        "max_epochs": max_epochs,
        "batch_size": int(model.batch_size_),
        "seconds": seconds,
        # steady epochs; what the fits took beyond them (set-up, first batches, warm-up) is setup_seconds
        "train_seconds_per_epoch": epoch_seconds / max_epochs,
        "cells_per_second": adata.n_obs * max_epochs / epoch_seconds,
        "setup_seconds": train_seconds - epoch_seconds,
        "inference_cells_per_second": adata.n_obs / inference_seconds,
        "inference_batch_size": inference_batch,
        "summary_cells_per_second": adata.n_obs / summary_seconds[0] if summary_seconds else None,
        "peak_mb": _peak_mb(),
        "data_mb": data_mb,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if gpu else None,
        "ARI": ac.metrics.evaluate(truth, adata.obs[method])["ARI"],
        "machine": f"{platform.node()} ({os.cpu_count()} CPU cores, "
        + (f"{torch.cuda.get_device_name()}, torch {torch.__version__})" if gpu else "no GPU)"),
        "options": options,
        "date": time.strftime("%Y-%m-%d"),
    }


def _exponent(rows: list[dict], key: str) -> float:
    if len(rows) < 2:
        return float("nan")
    n = np.log([r["n_cells"] for r in rows])
    return float(np.polyfit(n, np.log([r[key] for r in rows]), 1)[0])


def _device(row: dict) -> str:
    return "GPU" if row.get("peak_gpu_mb") is not None else "CPU"


def write_table(rows: list[dict]) -> str:
    """Markdown tables of the runs (one per method, data mode and device) and the fitted exponents."""
    lines = [
        "# Scaling benchmark",
        "",
        "Generated by `python benchmarks/scaling.py`. Simulated counts (`ac.datasets.simulate`, 2000 genes, "
        "10 groups, ~650 non-zero counts per cell) read from h5ad; default settings except `max_epochs` and the "
        "options named in each row; rows with `spatial_key=spatial` ran `tl.scrcl` on a simulated layered tissue "
        "(`ac.datasets.simulate_tissue`, 2000 genes, 10 layers, 500 spots per row of the grid). Peak MB is the process's max RSS; data MB is that peak right after reading "
        "the file; GPU MB is torch's peak allocation. In rows with a `fit set-up s`, train s / epoch and "
        "cells/s (train) come from the steady epochs (all but the first of each fit, timed from one epoch's end "
        "to the next), and `fit set-up s` is what the fits took beyond them (the trainer's set-up, the copy of the "
        "data to the GPU, the first batches and the warm-up); earlier rows divided the whole fits by the epochs. Inference is one more `get_latent_representation` pass "
        "over all cells after training, in batches of the size in the `inf. batch` column (read from the AnnData); `cells/s (tl pass)` is "
        "`tl.bgformer`'s own pass after training (embedding, labels, attention; from the copy left on the GPU "
        "where `data_on_device` put one), in newer rows only. Rows marked *superseded* were rerun with later code "
        "(the rerun is the row below them) and are left out of the fitted exponents. The ARI after a few epochs says nothing about accuracy (see "
        "`accuracy.md`).",
    ]
    for method, backed, device in sorted({(r["method"], r["backed"], _device(r)) for r in rows}):
        group = sorted(
            (r for r in rows if (r["method"], r["backed"], _device(r)) == (method, backed, device)),
            key=lambda r: (r["n_cells"], r["batch_size"]),
        )
        lines += [
            "",
            f"## tl.{method}, {'backed' if backed else 'in memory'}, {device}",
            "",
            "| cells | batch | epochs | total s | fit set-up s | train s / epoch | cells/s (train) | cells/s (inference) "
            "| inf. batch | cells/s (tl pass) "
            "| peak MB | data MB | GPU MB | ARI | options | machine |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in group:
            inference = r.get("inference_cells_per_second")
            summary = r.get("summary_cells_per_second")
            inference_batch = r.get("inference_batch_size", 1024)
            setup = "" if r.get("setup_seconds") is None else f"{r['setup_seconds']:.1f}"
            gpu_mb = r.get("peak_gpu_mb")
            options = ", ".join(f"{k}={v}" for k, v in (r.get("options") or {}).items())
            lines.append(
                f"| {r['n_cells']:,} | {r['batch_size']:,} | {r['max_epochs']} | {r['seconds']:.1f} | {setup} | "
                f"{r['train_seconds_per_epoch']:.2f} | {r['cells_per_second']:.0f} | "
                f"{'' if inference is None else f'{inference:.0f}'} | "
                f"{'' if inference is None else f'{inference_batch:,}'} | "
                f"{'' if summary is None else f'{summary:.0f}'} | "
                f"{r['peak_mb']:.0f} | {r['data_mb']:.0f} | "
                f"{'' if gpu_mb is None else f'{gpu_mb:.0f}'} | {r['ARI']:.3f} | {options} | "
                f"{r['machine']}, {r['date']}{_note(r)} |"
            )
        lines += ["", *_exponent_lines(group)]
    return "\n".join(lines) + "\n"


def _exponent_lines(group: list[dict]) -> list[str]:
    """Fitted exponents against N, one line per set of options run at two or more sizes.

    Rows with other options measure other code paths, so fitting across them would mix them; rows
    marked ``superseded`` (kept in the table for comparison) are left out.
    """
    lines = []
    group = [r for r in group if not r.get("superseded")]  # the same run redone with later code
    for options in sorted({json.dumps(r.get("options") or {}) for r in group}):
        rows = [r for r in group if json.dumps(r.get("options") or {}) == options]
        if len({r["n_cells"] for r in rows}) < 2:
            continue
        # train time over one batch size: the most common one among the mini-batch runs
        mini = [r for r in rows if r["batch_size"] < r["n_cells"]]
        if mini:
            common = max({r["batch_size"] for r in mini}, key=[r["batch_size"] for r in mini].count)
            mini = [r for r in mini if r["batch_size"] == common]
        label = ", ".join(f"{k}={v}" for k, v in json.loads(options).items()) or "no options"
        sizes = sorted({r["n_cells"] for r in rows})
        lines.append(
            f"Exponents against N, rows with {label} ({sizes[0]:,} to {sizes[-1]:,} cells): peak memory "
            f"{_exponent(rows, 'peak_mb'):.2f}; peak minus data memory "
            f"{_exponent([r | {'own': r['peak_mb'] - r['data_mb']} for r in rows], 'own'):.2f}; train time per "
            f"epoch (mini-batch rows of one batch size) {_exponent(mini, 'train_seconds_per_epoch'):.2f}."
        )
    return lines or ["No set of options was run at two sizes: no exponent."]


def _note(row: dict) -> str:
    note = "; ".join(filter(None, ["*superseded*" if row.get("superseded") else "", row.get("note")]))
    return f" ({note})" if note else ""


def _worker(arguments: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True, check=False)


def main() -> None:
    """Write the data files, run every size in its own process and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["scrcl", "bgformer"], default="scrcl")
    parser.add_argument("--sizes", default="5000,20000,50000,200000")
    parser.add_argument("--max-epochs", type=int, default=1)
    parser.add_argument("--backed", action="store_true")
    parser.add_argument("--batch-size", type=int, help="passed to tl.<method>; its default if left out")
    parser.add_argument("--num-workers", type=int, help="data-loader workers (tl.bgformer)")
    parser.add_argument("--accelerator", help="passed to tl.<method> (default 'auto': the GPU if there is one)")
    parser.add_argument(
        "--data-on-device", choices=["yes", "no"], help="tl.bgformer's data_on_device; its default (auto) if left out"
    )
    parser.add_argument("--precision", help="Lightning's precision, e.g. bf16-mixed")
    parser.add_argument("--shuffle-block-size", type=int, help="tl.bgformer's shuffle_block_size")
    parser.add_argument("--lr", type=float, help="learning rate passed to tl.<method>")
    parser.add_argument("--input-features", help="tl.scrcl's input_features; its default (auto) if left out")
    parser.add_argument(
        "--spatial",
        action="store_true",
        help="tl.scrcl on a simulated layered tissue with spot coordinates (spatial_key='spatial')",
    )
    parser.add_argument("--data-dir", default=str(HERE / "data"))
    parser.add_argument("--out", default=str(RESULTS / "scaling"))
    parser.add_argument("--make-data", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_data:
        make_data(int(args.make_data[0]), Path(args.make_data[1]), spatial=args.make_data[2] == "1")
        return
    if args.worker:
        method, path, epochs, backed, options = args.worker
        print(json.dumps(run_one(method, Path(path), int(epochs), backed == "1", json.loads(options))))
        return
    options = {
        key: value
        for key, value in (
            ("batch_size", args.batch_size),
            ("num_workers", args.num_workers),
            ("accelerator", args.accelerator),
            ("data_on_device", None if args.data_on_device is None else args.data_on_device == "yes"),
            ("precision", args.precision),
            ("shuffle_block_size", args.shuffle_block_size),
            ("lr", args.lr),
            ("input_features", args.input_features),
            ("spatial_key", "spatial" if args.spatial else None),
        )
        if value is not None
    }
    if args.spatial and args.method != "scrcl":
        parser.error("--spatial runs tl.scrcl (BGFormer does not read spot coordinates)")
    command = "python benchmarks/scaling.py " + " ".join(sys.argv[1:])
    out, data_dir = Path(args.out), Path(args.data_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    rows = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else []
    machine = f"{platform.node()} ({os.cpu_count()} CPU cores"

    def key(row: dict) -> tuple:
        return row["method"], row["backed"], row["n_cells"], row["max_epochs"], json.dumps(row.get("options") or {})

    done = {key(r) for r in rows if r["machine"].startswith(machine)}
    for n_cells in map(int, args.sizes.split(",")):
        if (args.method, args.backed, n_cells, args.max_epochs, json.dumps(options)) in done:
            continue
        path = data_dir / f"{'tissue' if args.spatial else 'simulated'}_{n_cells}.h5ad"
        made_args = ["--make-data", str(n_cells), str(path), str(int(args.spatial))]
        if not path.exists() and (made := _worker(made_args)).returncode != 0:
            print(f"{n_cells}: simulation FAILED\n{made.stderr[-2000:]}", flush=True)
            continue
        arguments = [args.method, str(path), str(args.max_epochs), str(int(args.backed)), json.dumps(options)]
        result = _worker(["--worker", *arguments])
        if result.returncode != 0:
            print(f"{n_cells} FAILED\n{result.stderr[-2000:]}", flush=True)
            continue
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]) | {"command": command})
        print(json.dumps(rows[-1]), flush=True)
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    table = write_table(rows)
    out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
