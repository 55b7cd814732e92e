"""BGFormer's training plan: scvi-tools' plan plus the anchor updates that live outside autograd."""

from __future__ import annotations

from scvi.train import TrainingPlan


class BGFormerTrainingPlan(TrainingPlan):
    """:class:`scvi.train.TrainingPlan` that re-seeds anchors after each optimiser step.

    The re-seeding rewrites anchors in place, so it must wait until the step's backward pass no
    longer needs their values.
    """

    def on_train_batch_end(self, outputs, batch, batch_idx):
        """Apply the anchor re-seeding of the batch just trained on."""
        self.module.refresh_anchors()
        return super().on_train_batch_end(outputs, batch, batch_idx)
