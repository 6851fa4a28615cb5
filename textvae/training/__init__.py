"""The training loop, checkpoints, precision and LR schedules."""

from textvae.training.trainer import Trainer, TrainResult, train

__all__ = ["Trainer", "TrainResult", "train"]
