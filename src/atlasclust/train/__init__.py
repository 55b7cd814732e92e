"""Training, shared by both methods.

The Lightning training plan, the first partition of the clustering head, checkpoints and resuming,
guards against divergence and out-of-memory, quiet logging, one progress bar, reproducibility and
loading saved models.
"""

from ._assign import (
    AUTO_MAX_CELLS,
    AUTO_RESOLUTION,
    cluster_centers,
    history_frame,
    join_history,
    leiden_on_embedding,
    merged_kmeans_labels,
    modularity,
    set_aside_history,
)
from ._base import MIN_CELLS, ClusteringModel
from ._checkpoints import PhaseCheckpoint, ResumableCheckpoint, checkpoint_folder, phase_checkpoint, training_settings
from ._guards import (
    MIN_BATCH_SIZE,
    DivergenceGuard,
    TrainingDivergedError,
    halving_batch_size_on_oom,
    with_trainer_guard,
)
from ._loading import load_saved_model
from ._plan import TrainingPlan
from ._progress import RunProgressBar
from ._quiet import lightning_info_as_scanpy, quiet_fit, quiet_scvi
from ._reproducibility import deterministic_mode

__all__ = [
    "AUTO_MAX_CELLS",
    "AUTO_RESOLUTION",
    "MIN_BATCH_SIZE",
    "MIN_CELLS",
    "ClusteringModel",
    "DivergenceGuard",
    "PhaseCheckpoint",
    "ResumableCheckpoint",
    "RunProgressBar",
    "TrainingDivergedError",
    "TrainingPlan",
    "checkpoint_folder",
    "cluster_centers",
    "deterministic_mode",
    "halving_batch_size_on_oom",
    "history_frame",
    "join_history",
    "leiden_on_embedding",
    "lightning_info_as_scanpy",
    "load_saved_model",
    "merged_kmeans_labels",
    "modularity",
    "phase_checkpoint",
    "quiet_fit",
    "quiet_scvi",
    "set_aside_history",
    "training_settings",
    "with_trainer_guard",
]
