"""Tests never reach the network: hub look-ups fail fast instead of retrying.

The fixtures the test files share live here; the constants they need at import time
(``REPO``, ``TINY``) are in tests/helpers.py.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from textvae import TextVAE
from textvae.config import DecoderConfig, EncoderConfig, ModelConfig, TokenizerConfig, load_recipe
from textvae.data import Collator, TextTokenizer
from textvae.modeling import VocabSpec

from tests.helpers import REPO, TINY

# Tiny test models run faster on one thread, and two test processes on 2 cores do not fight.
torch.set_num_threads(1)


@pytest.fixture
def emulated_bf16_allowed(monkeypatch):
    """bf16 on CPU whatever the hardware: on CPUs without bf16 arithmetic textvae refuses it
    (emulated, tens of times slower) unless told to run it anyway, as these numerics tests do."""
    monkeypatch.setenv("TEXTVAE_ALLOW_EMULATED_BF16", "1")


# Factories, session-scoped so that module-scoped fixtures can use them too.


@pytest.fixture(scope="session")
def tiny_recipe():
    """``tiny_recipe(name="ptb/mmd_vae.yaml", extra=())``: recipes/<name> with the TINY overrides, then ``extra``."""

    def tiny_recipe(name="ptb/mmd_vae.yaml", extra=()):
        return load_recipe(REPO / "recipes" / name, TINY + list(extra))

    return tiny_recipe


@pytest.fixture(scope="session")
def weights():
    """``weights(run_dir, sub="model")``: the tensors of run_dir/sub/model.safetensors."""

    def weights(run_dir: Path, sub: str = "model") -> dict[str, torch.Tensor]:
        return load_file(str(run_dir / sub / "model.safetensors"))

    return weights


@pytest.fixture(scope="session")
def train_autoencoder():
    """``train_autoencoder(sentences, steps=300, latent_dim=8, seed=0, mode="vae")``: a tiny VAE that
    memorises ``sentences``."""
    def train_autoencoder(sentences: list[str], steps: int = 300, latent_dim: int = 8, seed: int = 0,
                          mode: str = "vae") -> TextVAE:
        """A tiny VAE that memorises ``sentences``: deterministic encoder (z = μ), Adam, a light μ² penalty."""
        torch.manual_seed(seed)
        tokenizer = TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=100), sentences)
        vocab = VocabSpec(tokenizer.vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id,
                          tokenizer.unk_id)
        cfg = ModelConfig(mode=mode, latent_dim=latent_dim, max_positions=16,
                          encoder=EncoderConfig(embed_dim=16, hidden_dim=32),
                          decoder=DecoderConfig(embed_dim=16, hidden_dim=32))
        model = TextVAE(cfg, vocab, tokenizer)
        batch = Collator(vocab.pad_id, vocab.bos_id, vocab.eos_id)([{"ids": x}
                                                                    for x in tokenizer.encode_batch(sentences)])
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(steps):  # one thread (set above): tiny matrices run fastest that way
            out = model(batch.ids, batch.lengths, sample=False)
            loss = out.rec.mean() + (1e-3 * out.mu.pow(2).sum(1).mean() if out.mu is not None else 0.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model.eval()

    return train_autoencoder
