"""Tests never reach the network: hub look-ups fail fast instead of retrying."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import torch

# Tiny test models run faster on one thread, and two test processes on 2 cores do not fight.
torch.set_num_threads(1)
