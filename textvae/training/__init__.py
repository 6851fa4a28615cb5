"""The training loop, checkpoints, precision and LR schedules."""

from textvae.training.trainer import RunDirError, Trainer, TrainingError, TrainResult, train

__all__ = ["RunDirError", "Trainer", "TrainingError", "TrainResult", "train"]
