"""Constants the tests need at import time: in module-level names, parametrize lists and the
script of a child process; and the random-decoder builder the decoding tests call with their own
decoder tables. Everything else the tests share is a fixture in conftest.py."""

from pathlib import Path
from typing import Optional

import torch

from textvae import TextVAE
from textvae.config import DecoderConfig, EncoderConfig, ModelConfig
from textvae.modeling import VocabSpec

REPO = Path(__file__).resolve().parents[1]

# Overrides that make any recipe train in seconds on one CPU thread.
TINY = ["data.max_train_examples=300", "data.max_eval_examples=64", "data.max_length=30",
        "tokenizer.vocab_size=400", "model.latent_dim=4",
        "model.encoder.embed_dim=16", "model.encoder.hidden_dim=16",
        "model.decoder.embed_dim=16", "model.decoder.hidden_dim=16",
        "train.batch_size=16", "train.log_every=2", "train.tensorboard=false"]

# The vocabulary of the random decoding models below.
DECODE_VOCAB = VocabSpec(vocab_size=30, pad_id=0, bos_id=1, eos_id=2, unk_id=3)


def random_decoder_model(decoder: dict, mode: str = "vae", eos: Optional[float] = None, seed: int = 0,
                         max_positions: int = 16) -> TextVAE:
    """A random model (``DecoderConfig(**decoder)``, latent 4) with z-dependent paths.

    Large random decoder weights make z and the prefix matter, as in a trained model. With ``eos``
    None, EOS is the clear favourite exactly when hidden unit 0 beats units 1-3 (about one step in
    four), a deterministic function of the state, so sentences end at different lengths; a float
    ``eos`` instead adds that constant to the EOS logit (0: plain random logits; ±1e4: always / never).
    """
    torch.manual_seed(seed)
    cfg = ModelConfig(mode=mode, latent_dim=4, max_positions=max_positions,
                      encoder=EncoderConfig(embed_dim=8, hidden_dim=8), decoder=DecoderConfig(**decoder))
    model = TextVAE(cfg, DECODE_VOCAB).eval()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.normal_(0.0, 0.5)
    project = model.decoder.project

    def project_with_eos(hidden: torch.Tensor) -> torch.Tensor:
        logits = project(hidden).clone()
        if eos is not None:
            logits[..., DECODE_VOCAB.eos_id] += eos
        else:
            wins = hidden[..., 0] > hidden[..., 1:4].amax(-1)
            logits[..., DECODE_VOCAB.eos_id] = logits.amax(-1) + torch.where(wins, 3.0, -3.0)
        return logits

    model.decoder.project = project_with_eos  # an instance attribute: decoding and the tests both see it
    return model


def decode_latents(n: int = 6, seed: int = 1) -> torch.Tensor:
    """n seeded latents of the random decoding models, spread wide (×3) so that z matters."""
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed)) * 3


def run_test_loader(run_dir: Path, sentences: int, batch_size: int):
    """The model of a run directory and a fixed-order loader of the first ``sentences`` of its
    recipe's test split, tokenized as training did."""
    from textvae.config import load_recipe
    from textvae.data import load_corpus, make_loader, tokenize_corpus

    model = TextVAE.from_pretrained(run_dir / "model")
    recipe = load_recipe(run_dir / "recipe.yaml")
    test = load_corpus(recipe.data)["test"].select(range(sentences))
    tokenized, _ = tokenize_corpus({"test": test}, model.tokenizer, recipe.data)
    return model, make_loader(tokenized["test"], model.tokenizer, batch_size, shuffle=False)
