"""One progress bar for a whole training run, however many Lightning fits it takes."""

from __future__ import annotations

import sys

from lightning.pytorch.callbacks import ProgressBar
from tqdm.auto import tqdm


class RunProgressBar(ProgressBar):
    """A tqdm bar over all epochs of a run, passed to each of its fits.

    scvi-tools draws a bar per fit ("Epoch 1/1" and a second bar for BGFormer's clustering phase);
    this one counts the run's epochs across fits, names the phase and shows the last training loss,
    and is closed by :meth:`close` when the run ends. Like scvi-tools' bar it writes to standard
    output. Give the Trainer ``simple_progress_bar=False`` so that scvi-tools adds none of its own.

    Parameters
    ----------
    total_epochs
        Epochs of the whole run.
    """

    def __init__(self, total_epochs: int):
        super().__init__()
        self.total_epochs = int(total_epochs)
        self._enabled = True
        self._bar: tqdm | None = None
        self._offset = 0
        self._phase = ""

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def start_phase(self, name: str, epochs_before: int) -> None:
        """Name the fit about to start; ``epochs_before`` is how many of the run's epochs come before it."""
        self._phase, self._offset = name, int(epochs_before)

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        if not (self.is_enabled and trainer.is_global_zero):
            return
        if self._bar is None:
            self._bar = tqdm(total=self.total_epochs, desc="Training", file=sys.stdout)
        self._show(self._offset + trainer.current_epoch)  # a fit resumed from a checkpoint starts further on

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._bar is None:
            return
        loss = trainer.callback_metrics.get("train_loss")
        if loss is not None:
            self._bar.set_postfix(train_loss=f"{float(loss):.3g}", refresh=False)
        self._show(self._offset + trainer.current_epoch + 1)

    def _show(self, done: int) -> None:
        self._bar.update(max(done - self._bar.n, 0))
        self._bar.set_description(f"{self._phase} epoch {min(done + 1, self.total_epochs)}/{self.total_epochs}".strip())

    def close(self) -> None:
        """End the bar (at the end of the run, or when it stops early)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_bar"] = None  # a checkpoint pickles the callbacks; a tqdm bar cannot be
        return state
