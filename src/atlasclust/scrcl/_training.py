"""scRCL's training plan: the shared one, without the reconstruction terms scRCL's losses do not have."""

from atlasclust.train import TrainingPlan


class SCRCLTrainingPlan(TrainingPlan):
    """:class:`~atlasclust.train._plan.TrainingPlan` logging only scRCL's own terms (``hea``, ``ndc``, ``cvc``)."""

    has_reconstruction = False
