"""Checkpoints that let an interrupted training resume to the result of an uninterrupted one."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from scanpy import logging as logg

#: File name of the checkpoint written at the end of every epoch.
LAST = "last.ckpt"


class ResumableCheckpoint(Callback):
    """An end-of-epoch Lightning checkpoint with what an exact resume needs and Lightning leaves out.

    Lightning's checkpoint holds weights, optimiser state and loop counters. This callback adds the
    random number generators' states (mini-batch order, dropout, input noise and anchor
    re-seeding draw from them), the per-epoch metrics (Lightning hands an epoch's metrics to the
    logger only after the epoch's hooks) and a fingerprint of the run's settings, so that a
    checkpoint is never resumed into a different run. It is a plain callback rather than a
    :class:`~lightning.pytorch.callbacks.ModelCheckpoint` because scvi-tools answers
    ``enable_checkpointing=True`` with a checkpoint of its own that monitors a validation loss.

    Parameters
    ----------
    dirpath
        Folder of this training phase's checkpoint; ``last.ckpt`` in it is replaced every epoch.
    fingerprint
        JSON-serialisable settings that must match for a resume.
    """

    #: Key of this callback's state in a checkpoint.
    key = "atlasclust.ResumableCheckpoint"

    def __init__(self, dirpath: Path, fingerprint: dict):
        super().__init__()
        self.path = Path(dirpath) / LAST
        self.fingerprint = _canonical(fingerprint)
        self.rows: list[dict[str, float]] = []

    @property
    def state_key(self) -> str:
        """Key of this callback's state in a checkpoint."""
        return self.key

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Record the epoch's metrics, then write the checkpoint (atomically, through Lightning)."""
        self.rows.append({k: float(v) for k, v in trainer.callback_metrics.items() if not k.startswith("kl_")})
        # the optimiser and callback states are what a resume needs (and say so, or Lightning logs its default)
        trainer.save_checkpoint(self.path, weights_only=False)

    def state_dict(self) -> dict:
        """Generators, metrics and fingerprint, in plain types (checkpoints load with ``weights_only``)."""
        return {"fingerprint": self.fingerprint, "rows": json.dumps(self.rows), "rng": _rng_states()}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the generators and the metrics of the epochs already trained."""
        self.rows = json.loads(state_dict["rows"])
        _set_rng_states(state_dict["rng"])

    def history(self, columns: pd.Index) -> pd.DataFrame:
        """Recorded epochs as a frame with ``columns`` (those of the logger's history) where given."""
        frame = pd.DataFrame(self.rows, dtype=np.float64)
        return frame.reindex(columns=columns) if len(columns) else frame


@dataclass
class PhaseCheckpoint:
    """Checkpointing of one training phase: what to pass to the trainer, and where to resume from."""

    #: Callbacks to add to the trainer's (none without a checkpoint folder).
    callbacks: list = field(default_factory=list)
    #: Extra trainer arguments (the checkpoint to resume from).
    trainer_kwargs: dict = field(default_factory=dict)
    #: Content of the checkpoint this phase resumes from, read once (``None``: a fresh start).
    loaded: dict | None = field(default=None, repr=False)

    def history(self, logged: pd.DataFrame) -> pd.DataFrame:
        """The phase's per-epoch history: the checkpoint's record when there is one (it spans resumes)."""
        return self.callbacks[0].history(logged.columns) if self.callbacks else logged

    def finished(self, epochs: int) -> bool:
        """Whether the checkpoint to resume from is that of the phase's last epoch."""
        return self.loaded is not None and self.loaded["epoch"] + 1 >= epochs

    def restore(self, module: torch.nn.Module) -> pd.DataFrame:
        """Put a finished phase's weights and generators back, and return its history (no fit needed)."""
        prefix = "module."
        module.load_state_dict({k.removeprefix(prefix): v for k, v in self.loaded["state_dict"].items()})
        _set_rng_states(self.loaded["callbacks"][ResumableCheckpoint.key]["rng"])
        return self.saved_history()

    def saved_history(self) -> pd.DataFrame:
        """The per-epoch history recorded in the checkpoint resumed from (empty without one)."""
        if self.loaded is None:
            return pd.DataFrame()
        rows = json.loads(self.loaded["callbacks"][ResumableCheckpoint.key]["rows"])
        return pd.DataFrame(rows, dtype=np.float64)


def phase_checkpoint(directory: str | Path | None, phase: str, fingerprint: dict) -> PhaseCheckpoint:
    """Checkpointing of the training phase ``phase`` in ``directory/phase`` (nothing when ``None``).

    A checkpoint already there is resumed; one of another run's settings raises a
    :class:`ValueError` that names the settings that differ.
    """
    if directory is None:
        return PhaseCheckpoint()
    folder = Path(directory) / phase
    folder.mkdir(parents=True, exist_ok=True)
    callback = ResumableCheckpoint(folder, fingerprint)
    path = folder / LAST
    if not path.exists():
        return PhaseCheckpoint([callback])
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    saved = checkpoint["callbacks"][ResumableCheckpoint.key]["fingerprint"]
    if saved != callback.fingerprint:
        before, now = json.loads(saved), json.loads(callback.fingerprint)
        differ = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        msg = (
            f"{path} belongs to a training run with other settings ({', '.join(differ)} differ). "
            "Pass the same settings to resume it, or an empty checkpoint_dir to start afresh."
        )
        raise ValueError(msg)
    logg.info(f"resuming the {phase} phase from {path} ({checkpoint['epoch'] + 1} epochs done)")
    return PhaseCheckpoint([callback], {"ckpt_path": str(path)}, checkpoint)


def training_settings(model, *, ignore: tuple[str, ...] = ()) -> dict:
    """The constructor arguments of ``model`` (its ``init_params_``) that its training depends on.

    They go into a checkpoint's fingerprint one by one, so that a refusal names the one that
    differs; ``ignore`` lists those read only after training (e.g. how the embedding is clustered).
    """
    params = model.init_params_["non_kwargs"] | model.init_params_["kwargs"]
    # numpy scalars as Python numbers: n_clusters=np.int64(7) and n_clusters=7 are the same run; arrays
    # (a gene mask) as lists, which the fingerprint holds in full where str() would abbreviate them
    return {
        name: value.item()
        if isinstance(value, np.generic)
        else value.tolist()
        if isinstance(value, np.ndarray)
        else value
        for name, value in params.items()
        if name not in ignore
    }


def checkpoint_folder(directory: str | Path | None, batch_size: int, *, initial: int) -> Path | None:
    """The checkpoint folder of a run with ``batch_size``: a subfolder once out-of-memory halving changed it."""
    if directory is None or batch_size == initial:
        return None if directory is None else Path(directory)
    return Path(directory) / f"batch_size_{batch_size}"


def _canonical(fingerprint: dict) -> str:
    return json.dumps(fingerprint, sort_keys=True, default=str)


def _rng_states() -> dict:
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "python": json.dumps(random.getstate()),
    }


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = json.loads(states["python"])
    random.setstate((version, tuple(internal), gauss))
