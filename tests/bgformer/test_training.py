from unittest import mock

import torch

from atlasclust.bgformer._module import BGFormerModule
from atlasclust.bgformer._training import BGFormerTrainingPlan


def test_anchors_are_re_seeded_after_the_step_and_only_once():
    module = BGFormerModule(20, 20, n_latent=8, n_anchors=4, n_heads=2, n_ffn=16)
    plan = BGFormerTrainingPlan(module)
    plan.trainer = mock.Mock(num_training_batches=10)  # mid-epoch: no epoch metrics to log
    pending = torch.randn(6, 8)
    module._pending_refresh = pending
    with mock.patch.object(module.codebook, "refresh") as refresh:
        plan.on_train_batch_end(None, None, 0)
        plan.on_train_batch_end(None, None, 1)  # nothing pending any more
    refresh.assert_called_once()
    assert refresh.call_args.args[0] is pending
    assert module._pending_refresh is None
