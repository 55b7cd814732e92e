"""BGFormer's training plan: scvi-tools' plan plus the anchor updates that live outside autograd."""

from __future__ import annotations

import torch.distributed as dist

from atlasclust.train import TrainingPlan


class BGFormerTrainingPlan(TrainingPlan):
    """:class:`scvi.train.TrainingPlan` that re-seeds anchors after each optimiser step.

    The re-seeding rewrites anchors in place, so it must wait until the step's backward pass no
    longer needs their values. Under DDP each process re-seeds from its own batch; the anchors
    (and their usage) of the first process are then sent to all, because DDP keeps only the
    gradients, not in-place changes, in step.
    """

    def on_train_batch_end(self, outputs, batch, batch_idx):
        """Apply the anchor re-seeding of the batch just trained on."""
        self.module.refresh_anchors()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            codebook = self.module.codebook
            dist.broadcast(codebook.anchors.data, src=0)
            dist.broadcast(codebook.usage, src=0)
        return super().on_train_batch_end(outputs, batch, batch_idx)
