"""Tests never reach the network: hub look-ups fail fast instead of retrying."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import torch

# Tiny test models run faster on one thread, and two test processes on 2 cores do not fight.
torch.set_num_threads(1)


import pytest


@pytest.fixture
def emulated_bf16_allowed(monkeypatch):
    """bf16 on CPU whatever the hardware: on CPUs without bf16 arithmetic textvae refuses it
    (emulated, tens of times slower) unless told to run it anyway, as these numerics tests do."""
    monkeypatch.setenv("TEXTVAE_ALLOW_EMULATED_BF16", "1")
