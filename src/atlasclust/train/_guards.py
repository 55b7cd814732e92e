"""Training guards: stop at a diverged loss, and turn GPU out-of-memory into advice."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from lightning.pytorch.callbacks import Callback
from scanpy import logging as logg

T = TypeVar("T")

#: Smallest batch the automatic halving goes down to.
MIN_BATCH_SIZE = 16


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


class DivergenceGuard(Callback):
    """Stop training at the first non-finite loss, with an error that names the likely cause and fix.

    Flags accumulate on the device; the host looks at them every ``check_every`` steps (every step
    on the CPU, where it costs nothing) and at the end of each epoch, so a GPU run does not wait for
    the device at every step.

    Parameters
    ----------
    method
        Name of the method, for the message.
    lr
        The learning rate in use, for the suggested fix.
    check_every
        Steps between checks; ``None`` gives 1 on the CPU and 50 on accelerators.
    """

    def __init__(self, method: str, lr: float, check_every: int | None = None):
        super().__init__()
        self.method, self.lr, self.check_every = method, lr, check_every
        self._bad: torch.Tensor | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Fold this step's loss into the flag; check it when due."""
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        bad = ~torch.isfinite(loss.detach()).all()
        self._bad = bad if self._bad is None else self._bad | bad
        every = self.check_every or (1 if pl_module.device.type == "cpu" else 50)
        if trainer.global_step % every == 0:
            self._check(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Check at the end of every epoch."""
        self._check(trainer)

    def _check(self, trainer) -> None:
        if self._bad is not None and bool(self._bad):
            msg = (
                f"{self.method} training diverged: the loss became NaN or infinite (epoch {trainer.current_epoch}, "
                f"step {trainer.global_step}). The usual cause is a learning rate too high for these data: try "
                f"lr={self.lr / 10:g}. Check also that the layer holds raw counts. Nothing was written to the AnnData."
            )
            raise TrainingDivergedError(msg)


def with_trainer_guard(trainer_kwargs: dict, method: str, lr: float) -> dict:
    """``trainer_kwargs`` with a :class:`DivergenceGuard` added to the user's callbacks."""
    callbacks = list(trainer_kwargs.get("callbacks") or [])
    return trainer_kwargs | {"callbacks": [*callbacks, DivergenceGuard(method, lr)]}


def halving_batch_size_on_oom(run: Callable[[int], T], batch_size: int, *, allow: bool) -> T:
    """Call ``run(batch_size)``; on GPU out-of-memory, halve the batch and retry when allowed.

    Without ``allow`` the error is re-raised as a :class:`MemoryError` that names the batch size
    to try. The retry starts the whole run again, so its result is that of the smaller batch.
    """
    while True:
        try:
            return run(batch_size)
        except torch.cuda.OutOfMemoryError as error:
            torch.cuda.empty_cache()
            smaller = batch_size // 2
            if allow and smaller >= MIN_BATCH_SIZE:
                logg.warning(f"out of GPU memory with batch_size={batch_size}; retrying with batch_size={smaller}")
                batch_size = smaller
                continue
            msg = (
                f"Out of GPU memory with batch_size={batch_size}. Pass batch_size={max(smaller, 1)} (or smaller), "
                "or auto_batch_size=True to halve it automatically until it fits. Nothing was written to the AnnData."
            )
            raise MemoryError(msg) from error
