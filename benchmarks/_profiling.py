"""What the step-profile scripts share: device synchronisation, timed steps, a profiled fit and the report file."""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer sees it."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds_per_call(step: Callable[[], None], device: torch.device, *, warm_up: int, repeats: int) -> float:
    """Mean wall seconds of ``step()`` on ``device``, after ``warm_up`` untimed calls."""
    for _ in range(warm_up):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def profile_fit(report: Report, method: Callable, adata, *, max_epochs: int, batch_size: int, top: int = 25) -> None:
    """Report ``method`` (``tl.bgformer`` or ``tl.scrcl``, 10 clusters) under cProfile: times and the ``top`` functions."""
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    _, trained = method(
        adata, 10, max_epochs=max_epochs, batch_size=batch_size, enable_progress_bar=False, return_model=True, copy=True
    )
    profile.disable()
    seconds = time.perf_counter() - start
    report(
        f"tl.{method.__name__}, batch {batch_size}, {max_epochs} epoch(s): {seconds:.1f} s in all, "
        f"{trained.training_seconds_:.1f} s training, {max_epochs * adata.n_obs / trained.training_seconds_:,.0f} cells/s"
    )
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats("tottime").print_stats(top)
    report(stream.getvalue())


class Report:
    """Lines printed as they come and written to ``results/<name>_<cpu|gpu>.txt`` at the end."""

    def __init__(self, name: str, device: torch.device, first_line: str):
        self.path = RESULTS / f"{name}_{'gpu' if device.type == 'cuda' else 'cpu'}.txt"
        self.lines: list[str] = []
        self(f"{first_line} on {torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}")

    def __call__(self, line: str) -> None:
        """Print ``line`` and keep it."""
        print(line, flush=True)
        self.lines.append(line)

    def write(self) -> None:
        """Write the kept lines."""
        RESULTS.mkdir(exist_ok=True)
        self.path.write_text("\n".join(self.lines) + "\n")
