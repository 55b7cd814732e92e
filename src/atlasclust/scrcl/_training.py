"""scRCL's training plan: the shared one, without the reconstruction terms scRCL's losses do not have."""

from atlasclust._training_plan import TrainingPlan


class SCRCLTrainingPlan(TrainingPlan):
    """:class:`~atlasclust._training_plan.TrainingPlan` logging only scRCL's own terms (``hea``, ``ndc``, ``cvc``)."""

    has_reconstruction = False
