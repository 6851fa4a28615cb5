"""Constants the tests need at import time: in module-level names, parametrize lists and the
script of a child process. Everything else the tests share is a fixture in conftest.py."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Overrides that make any recipe train in seconds on one CPU thread.
TINY = ["data.max_train_examples=300", "data.max_eval_examples=64", "data.max_length=30",
        "tokenizer.vocab_size=400", "model.latent_dim=4",
        "model.encoder.embed_dim=16", "model.encoder.hidden_dim=16",
        "model.decoder.embed_dim=16", "model.decoder.hidden_dim=16",
        "train.batch_size=16", "train.log_every=2", "train.tensorboard=false"]
