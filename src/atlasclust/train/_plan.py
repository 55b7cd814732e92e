"""scvi-tools' training plan, with training metrics summed on the device and logged once per epoch."""

from __future__ import annotations

import time

import torch
from scvi.train import TrainingPlan as ScviTrainingPlan


class TrainingPlan(ScviTrainingPlan):
    """:class:`scvi.train.TrainingPlan` with fused Adam(W), per-epoch training metrics and DDP on gloo.

    scvi-tools logs eight or so metrics at every training step through Lightning's ``self.log``,
    and each call costs about a millisecond of Python (Lightning deep-copies each metric's
    metadata to move it to the device). With a batch already on the GPU that was more than the
    step's arithmetic. Here the training metrics are summed on the device, weighted by the cells
    of each batch, and logged once, after the epoch's last batch, under scvi-tools' names
    (``train_loss``, ``elbo_train``, ``reconstruction_loss_train`` and ``<metric>_train``), so
    the history is the same as scvi-tools would give (without the reconstruction terms for a
    module that has none, :attr:`has_reconstruction`). Validation keeps scvi-tools' own code.

    scvi-tools computes and logs its validation metrics under :func:`torch.inference_mode`. With
    ``sync_dist`` on the gloo backend (DDP on CPUs), Lightning averages them by dividing in place,
    which inference tensors forbid, so training failed at the first epoch's end. The same metrics
    are computed here under :func:`torch.no_grad`.

    Adam and AdamW use PyTorch's fused kernels where the device and version have them (one
    kernel for all parameters instead of about ten per parameter; on two CPU cores the
    optimiser step of BGFormer's default model went from about 40 to 6 ms).

    ``epoch_seconds`` holds, for benchmarks, the wall time of each training epoch from the end of
    the one before (validation included); the first counts from the start of training, after
    Lightning's set-up, and so holds what the first batches cost (data-loader workers start
    reading before an epoch's first hook runs, so a timer started there would miss it).
    """

    #: Whether the module's loss has scvi-tools' reconstruction and KL terms. Without them (scRCL's
    #: contrastive losses) ``reconstruction_loss_train``, ``kl_local_train`` and ``elbo_train`` would
    #: be rows of zeros in the history, so they are not logged.
    has_reconstruction = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # metric names of a step -> (weighted sums on the device, cells)
        self._epoch_sums: dict[tuple[str, ...], tuple[torch.Tensor, int]] = {}
        self.epoch_seconds: list[float] = []
        self._epoch_start = 0.0

    def _optimizer_creator_fn(self, optimizer_cls):
        def create(params):
            params = list(params)
            options = {"lr": self.lr, "eps": self.eps, "weight_decay": self.weight_decay}
            try:
                return optimizer_cls(params, fused=True, **options)
            except RuntimeError:  # no fused kernel for this device or PyTorch version
                return optimizer_cls(params, **options)

        return create

    def training_step(self, batch, batch_idx):
        """Compute the loss of a batch and add its metrics to the epoch's sums (no logging here)."""
        _, _, loss_output = self.forward(batch, loss_kwargs=self.loss_kwargs)
        n_cells = int(loss_output.n_obs_minibatch)
        extra = {
            key: value
            for key, value in loss_output.extra_metrics.items()
            if isinstance(value, torch.Tensor) and value.dim() == 0
        }
        # atlasclust's modules have no global KL term, the one scvi-tools averages per batch, not per cell
        terms = ("reconstruction_loss_train", "kl_local_train") if self.has_reconstruction else ()
        names = ("train_loss", *terms) + tuple(f"{key}_train" for key in extra)
        values = [loss_output.loss.detach()]
        if self.has_reconstruction:
            values += [
                loss_output.reconstruction_loss_sum.detach() / n_cells,
                loss_output.kl_local_sum.detach() / n_cells,
            ]
        per_cell = torch.stack([*values, *(value.detach().float() for value in extra.values())])
        sums, cells = self._epoch_sums.get(names, (0.0, 0))
        self._epoch_sums[names] = (sums + per_cell * n_cells, cells + n_cells)
        return loss_output.loss

    def on_train_start(self):
        """Note when training starts."""
        self._epoch_start = time.perf_counter()
        super().on_train_start()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        """After the epoch's last batch, log its metrics (before the callbacks' epoch-end hooks read them)."""
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self._log_epoch_metrics()
        return super().on_train_batch_end(outputs, batch, batch_idx)

    def on_train_epoch_end(self):
        """Note the epoch's wall time."""
        self._log_epoch_metrics()  # nothing left to log unless the epoch ended early
        if self.device.type == "cuda":  # the epoch ends when the device has finished its work
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.epoch_seconds.append(now - self._epoch_start)
        self._epoch_start = now
        super().on_train_epoch_end()

    def _log_epoch_metrics(self) -> None:
        """Log the cell-weighted means of the metrics summed since the last call (no read from the device)."""
        totals: dict[str, tuple[torch.Tensor, int]] = {}
        for names, (sums, cells) in self._epoch_sums.items():
            for name, value in zip(names, sums, strict=True):
                total, count = totals.get(name, (0.0, 0))
                totals[name] = (total + value, count + cells)
        self._epoch_sums = {}
        means = {name: total / count for name, (total, count) in totals.items()}
        if "reconstruction_loss_train" in means:
            means["elbo_train"] = means["reconstruction_loss_train"] + means["kl_local_train"]
        for name, value in means.items():
            self.log(
                name,
                value,
                on_step=False,
                on_epoch=True,
                prog_bar=name == "train_loss",
                batch_size=1,  # one value per epoch
                sync_dist=self.use_sync_dist,
            )

    def compute_and_log_metrics(self, loss_output, metrics, mode):
        """Compute and log the metrics of a step, as scvi-tools does, outside inference mode."""
        with torch.no_grad():
            # the undecorated function that scvi-tools wraps in inference mode
            ScviTrainingPlan.compute_and_log_metrics.__wrapped__(self, loss_output, metrics, mode)
