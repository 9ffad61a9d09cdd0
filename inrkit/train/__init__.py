"""Training: the generic loop, lr and progressive-encoding schedules, options and run-directory checkpoints."""

from inrkit.train.options import DEFAULT_STEPS, TrainOptions
from inrkit.train.progressive import PROGRESSIVE_SCHEDULES, BandSchedule
from inrkit.train.schedules import SCHEDULES, lr_factor
from inrkit.train.trainer import Trainer, TrainingDiverged, TrainingInterrupted

__all__ = [
    "DEFAULT_STEPS",
    "PROGRESSIVE_SCHEDULES",
    "SCHEDULES",
    "BandSchedule",
    "TrainOptions",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "lr_factor",
]
