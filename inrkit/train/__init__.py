"""Training: the generic loop, schedules, options and run-directory checkpoints."""

from inrkit.train.options import DEFAULT_STEPS, TrainOptions
from inrkit.train.schedules import SCHEDULES, lr_factor
from inrkit.train.trainer import Trainer, TrainingDiverged, TrainingInterrupted

__all__ = [
    "DEFAULT_STEPS",
    "SCHEDULES",
    "TrainOptions",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "lr_factor",
]
