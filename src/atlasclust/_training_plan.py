"""scvi-tools' training plan, made to log its metrics under DDP on the CPU (gloo) as well."""

from __future__ import annotations

import torch
from scvi.train import TrainingPlan as ScviTrainingPlan


class TrainingPlan(ScviTrainingPlan):
    """:class:`scvi.train.TrainingPlan` whose metrics can be averaged across processes on gloo.

    scvi-tools computes and logs its epoch metrics under :func:`torch.inference_mode`. With
    ``sync_dist`` on the gloo backend (DDP on CPUs), Lightning averages them by dividing in place,
    which inference tensors forbid, so training failed at the first epoch's end. The same metrics
    are computed here under :func:`torch.no_grad`.
    """

    def compute_and_log_metrics(self, loss_output, metrics, mode):
        """Compute and log the metrics of a step, as scvi-tools does, outside inference mode."""
        with torch.no_grad():
            # the undecorated function that scvi-tools wraps in inference mode
            ScviTrainingPlan.compute_and_log_metrics.__wrapped__(self, loss_output, metrics, mode)
