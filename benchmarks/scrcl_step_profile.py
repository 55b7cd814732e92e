"""Where a scRCL mini-batch step spends its time: cutting the batch, the compute, the whole call.

1. the set-up ``tl.scrcl`` does once: input transform, cell graph, propagated features;
2. cutting one batch of seed cells plus their one-hop neighbourhood (``CellGraphData.batch``) onto
   the device, with the feature rows copied from the host and, on a GPU, gathered from the copy
   kept there (``keep_on``), ms per batch;
3. one training step alone (forward, loss, backward, Adam) on a batch already cut, ms per step;
4. ``tl.scrcl`` for one epoch (at the first batch size) under ``cProfile``, with the 25 functions of
   most own time.

On the CPU the step's arithmetic dominates; on a GPU what is left of 3 against the epoch's time per
batch is what the host does per step (2 and Lightning). Prints the report and writes it to
``benchmarks/results/scrcl_step_profile_<device>.txt``.

Usage: ``python benchmarks/scrcl_step_profile.py benchmarks/data/simulated_100000.h5ad [--batch-sizes 2048,8192]``
(files from ``benchmarks/scaling.py``).
"""

from __future__ import annotations

import argparse
import time

import anndata as ad
import numpy as np
import torch
from _profiling import Report, profile_fit, seconds_per_call, synchronize
from _seeded import quiet

import atlasclust as ac
from atlasclust.models import SCRCL
from atlasclust.scrcl._graph_data import CellGraphData


def cut_seconds(data: CellGraphData, device: torch.device, batch_size: int, repeats: int) -> tuple[float, int]:
    """Mean seconds to cut a batch of ``batch_size`` random seeds onto ``device``, and its node count."""
    rng = np.random.default_rng(0)
    batches = [rng.choice(data.n_cells, batch_size, replace=False) for _ in range(repeats + 3)]
    for seeds in batches[:3]:  # warm-up: the first batches touch the feature matrices' memory
        data.batch(seeds, device)
    synchronize(device)
    start = time.perf_counter()
    for seeds in batches[3:]:
        batch = data.batch(seeds, device)
    synchronize(device)
    return (time.perf_counter() - start) / repeats, len(batch["nodes"])


def step_seconds(model: SCRCL, data: CellGraphData, device: torch.device, batch_size: int, repeats: int) -> float:
    """Mean seconds of one training step on a batch already cut onto ``device``."""
    module = model.module
    batch = data.batch(np.random.default_rng(1).choice(data.n_cells, batch_size, replace=False), device)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, weight_decay=0.1)

    def step() -> None:
        loss = module.loss({}, module.inference(batch), {}).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return seconds_per_call(step, device, warm_up=3, repeats=repeats)


def main() -> None:
    """Run the four measurements on the file named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--batch-sizes", default="2048", help="seed cells per batch, comma-separated")
    args = parser.parse_args()
    quiet()
    adata = ad.read_h5ad(args.path)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.type == "cuda"
    repeats = 20 if on_gpu else 10
    report = Report("scrcl_step_profile", device, f"{adata.n_obs:,} cells x {adata.n_vars} genes")

    SCRCL.setup_anndata(adata)
    model = SCRCL(adata, 10)
    start = time.perf_counter()
    model._fit_input_transform(0)
    data = model.module.graph_data = model._graph_data_for(None)
    report(f"set-up (input transform, graph, propagated features): {time.perf_counter() - start:.1f} s")
    model.module.to(device).train()

    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    for batch_size in batch_sizes:
        seconds, n_nodes = cut_seconds(data, device, batch_size, repeats)
        report(f"cut, batch {batch_size} seeds ({n_nodes:,} nodes), rows from the host: {seconds * 1e3:.1f} ms")
        if on_gpu:
            data.keep_on(device)
            seconds, _ = cut_seconds(data, device, batch_size, repeats)
            report(f"cut, batch {batch_size} seeds, rows gathered on the device: {seconds * 1e3:.1f} ms")
        seconds = step_seconds(model, data, device, batch_size, repeats)
        report(f"step alone, batch {batch_size} seeds: {seconds * 1e3:.1f} ms, {batch_size / seconds:,.0f} seeds/s")
        data.release()

    batch_size = batch_sizes[0]  # one epoch at the first batch size only: a whole epoch is slow
    profile_fit(report, ac.tl.scrcl, adata, max_epochs=1, batch_size=batch_size)
    report.write()


if __name__ == "__main__":
    main()
