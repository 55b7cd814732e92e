"""Where a BGFormer training step spends its time: the data path alone, the compute alone, the whole call.

1. scvi-tools' ``AnnDataLoader`` alone (sparse batches moved to the device), cells/s per batch size;
2. one training step alone (forward, loss, backward, fused AdamW, anchor refresh) on a batch already
   dense on the device, fp32 and under bf16 autocast, ms/step per batch size;
3. ``tl.bgformer`` for two epochs under ``cProfile``, with the 25 functions of most own time.

The gap between 2 and the training throughput of 3 is the per-step cost of the data path and of
Lightning. Prints the report and writes it to ``benchmarks/results/step_profile_<device>.txt``.

Usage: ``python benchmarks/step_profile.py benchmarks/data/simulated_100000.h5ad``
(files from ``benchmarks/scaling.py``).
"""

from __future__ import annotations

import logging
import sys
import time

import anndata as ad
import numpy as np
import torch
from _profiling import Report, profile_fit, seconds_per_call, synchronize
from scvi import REGISTRY_KEYS

import atlasclust as ac
from atlasclust.data import training_view
from atlasclust.models import BGFormer


def loader_throughput(model: BGFormer, view: ad.AnnData, device: torch.device, batch_size: int) -> float:
    """Cells per second that the data loader delivers onto ``device``."""
    loader = model._make_data_loader(view, batch_size=batch_size, shuffle=True, load_sparse_tensor=True)
    start, n_cells = time.perf_counter(), 0
    for tensors in loader:
        n_cells += tensors[REGISTRY_KEYS.X_KEY].to(device).shape[0]
    synchronize(device)
    return n_cells / (time.perf_counter() - start)


def step_seconds(model: BGFormer, counts, device: torch.device, batch_size: int, bf16: bool, repeats: int) -> float:
    """Seconds of one training step of the clustering phase on a dense batch already on ``device``."""
    module = model.module
    dense = torch.as_tensor(counts[:batch_size].toarray(), device=device)
    indices = torch.arange(batch_size, device=device)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, fused=device.type == "cuda")

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            outputs = module.inference(counts_all=dense, indices=indices)
            loss = module.loss({}, outputs, {}).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        module.refresh_anchors()

    return seconds_per_call(step, device, warm_up=5, repeats=repeats)


def main() -> None:
    """Run the three measurements on the file named on the command line."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    adata = ad.read_h5ad(sys.argv[1])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.type == "cuda"
    report = Report("step_profile", device, f"{adata.n_obs:,} cells x {adata.n_vars} genes")

    view = training_view(adata, None)
    BGFormer.setup_anndata(view)
    model = BGFormer(view, 10)
    model._fit_input_transform()
    model._initialize_anchors(np.arange(min(20_000, adata.n_obs)), 256, 0)
    model.is_prepared_ = True
    model.module.to(device)
    batch_sizes = (256, 1024, 4096, 16384) if on_gpu else (256,)
    for batch_size in batch_sizes[:3]:
        report(f"loader, batch {batch_size}: {loader_throughput(model, view, device, batch_size):,.0f} cells/s")

    model.module.train()
    model.module.clustering_active = True
    model.module.set_centers(torch.randn(10, model.module.input_layer.out_features))
    for batch_size in batch_sizes:
        for bf16 in (False, True):
            seconds = step_seconds(model, adata.X, device, batch_size, bf16, repeats=30 if on_gpu else 5)
            report(
                f"step alone, batch {batch_size}, bf16={bf16}: {seconds * 1e3:.2f} ms, {batch_size / seconds:,.0f} cells/s"
            )

    for batch_size in (256, 4096) if on_gpu else (256,):
        profile_fit(report, ac.tl.bgformer, adata, max_epochs=2, batch_size=batch_size)
    report.write()


if __name__ == "__main__":
    main()
