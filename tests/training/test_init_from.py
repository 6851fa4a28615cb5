"""train.init_from / train.init_reset: autoencoder pretraining, then free bits (Li et al. 2019)."""

import shutil

import pytest
import torch

from textvae import TextVAE
from textvae.cli import main
from textvae.config import load_recipe
from textvae.errors import RunError
from textvae.training import Trainer, train
from textvae.training.checkpoint import checkpoint_dirs

from tests.helpers import REPO, TINY

STAGE1 = REPO / "recipes/ptb/ae_pretrain.yaml"
STAGE2 = REPO / "recipes/ptb/ae_pretrain_fb.yaml"
SHORT = ["train.max_steps=2", "train.eval_every=2"]


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    """A 2-step run of the β = 0 recipe: the source every test starts from."""
    run = tmp_path_factory.mktemp("init_from") / "ae"
    train(load_recipe(STAGE1, TINY + SHORT), run, progress=False)
    return run


def stage2(source, *extra):
    return load_recipe(STAGE2, TINY + SHORT + [f"train.init_from={source}", *extra])


def initial_state(recipe, run_dir) -> dict[str, torch.Tensor]:
    """The model a run starts from (setup only, no step taken)."""
    trainer = Trainer(recipe, run_dir, progress=False)
    trainer.setup()
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_recipes_are_the_two_stages():
    first, second = load_recipe(STAGE1), load_recipe(STAGE2)
    assert first.objective.kl_weight == 0.0 and first.objective.mmd_weight == 0.0  # β = 0: no KL, no MMD
    assert second.objective.free_bits == 0.25 and second.train.init_reset == ["decoder"]
    assert second.train.init_from == "runs/ptb_ae_pretrain"
    assert first.model == second.model  # stage 2 loads stage 1's encoder and head as they are


def test_reset_decoder_loads_encoder_and_head_bit_exactly(stage1, weights, tmp_path):
    source = weights(stage1)
    start = initial_state(stage2(stage1), tmp_path / "fb")
    # The same recipe without init_from: what a run with this seed starts from.
    fresh = initial_state(stage2(stage1, "train.init_from=null", "train.init_reset=[]"), tmp_path / "fresh")
    assert start.keys() == source.keys() == fresh.keys()
    for key in start:
        if key.startswith(("encoder.", "head.")):
            assert torch.equal(start[key], source[key]), key
        else:
            assert key.startswith("decoder."), key
            assert torch.equal(start[key], fresh[key]), key
            assert not torch.equal(start[key], source[key]), key  # stage 1 trained it; stage 2 starts fresh


def test_without_reset_everything_is_loaded_with_the_source_tokenizer(stage1, weights, tmp_path):
    source = weights(stage1)
    # A tokenizer section that would build another vocabulary: the source's tokenizer is used instead.
    trainer = Trainer(stage2(stage1, "train.init_reset=[]", "tokenizer.min_freq=3"), tmp_path / "all",
                      progress=False)
    trainer.setup()
    start = trainer.model.state_dict()
    assert start.keys() == source.keys()
    for key in start:
        assert torch.equal(start[key], source[key]), key
    stage1_tokenizer = TextVAE.from_pretrained(stage1).tokenizer
    assert trainer.tokenizer.vocab_size == stage1_tokenizer.vocab_size
    sentence = "the company said it expects to report a loss"
    assert trainer.tokenizer.encode(sentence) == stage1_tokenizer.encode(sentence)


def test_stage2_trains_through_the_cli_and_says_what_it_loaded(stage1, weights, tmp_path, capsys):
    out = tmp_path / "fb"
    code = main(["train", str(STAGE2), *TINY, *SHORT, f"train.init_from={stage1}", "--output", str(out),
                 "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    line = next(x for x in printed.splitlines() if x.startswith("init_from:"))
    loaded = sum(k.startswith(("encoder.", "head.")) for k in weights(stage1))
    assert line == (f"init_from: loaded encoder, head from {stage1 / 'model'} ({loaded} tensors); reset decoder to this "
                    "run's initialisation (train.seed=0); tokenizer: the source's "
                    f"({TextVAE.from_pretrained(stage1).tokenizer.vocab_size} tokens).")
    assert (out / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize("extra,message", [
    (["train.init_from={tmp}/nope"],
     "train.init_from: {tmp}/nope does not exist. Point at a textvae run directory"),
    (["train.init_from={stage1}", "model.encoder.embed_dim=24"],
     "train.init_from: encoder.embed.weight is ({vocab}, 16) in {stage1}/model but ({vocab}, 24) in this recipe; "
     "use the same model sizes and tokenizer, or list encoder in train.init_reset."),
    (["train.init_from={stage1}", "train.init_reset=[decodr]"],
     "train.init_reset may list the model's parts ['encoder', 'head', 'decoder'], got 'decodr'. "
     "Did you mean 'decoder'?"),
    (["train.init_from=null", "train.init_reset=[decoder]"],
     "train.init_reset lists ['decoder'] but train.init_from is not set"),
    (["train.init_from={stage1}", "model.mode=lm", "objective.preset=lm", "objective.free_bits=0",
      "train.init_reset=[encoder]"],
     "train.init_reset names 'encoder', but this model (model.mode=lm) has no encoder; its parts are ['decoder']."),
], ids=["missing", "shape", "unknown-part", "reset-without-from", "lm-has-no-encoder"])
def test_bad_input_stops_before_training(stage1, tmp_path, capsys, extra, message):
    vocab = TextVAE.from_pretrained(stage1).tokenizer.vocab_size
    fill = dict(tmp=tmp_path, stage1=stage1, vocab=vocab)
    out = tmp_path / "run"
    code = main(["train", str(STAGE2), *TINY, *SHORT, *[x.format(**fill) for x in extra], "--output", str(out),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message.format(**fill) in " ".join(err.split()) and "Traceback" not in err
    assert not checkpoint_dirs(out) and not (out / "model").exists() and not (out / "recipe.yaml").exists()


def test_resume_keeps_init_from_and_no_longer_needs_the_source(stage1, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(stage1, source)
    run = tmp_path / "fb"
    train(stage2(source), run, progress=False)
    for changed in (f"train.init_from={stage1}", "train.init_reset=[]"):
        key = changed.split("=")[0]
        with pytest.raises(RunError, match=rf"recipe differs .* in {key}; resuming would mix two experiments"):
            Trainer(stage2(source, changed, "train.max_steps=4"), run, resume=True)
    shutil.rmtree(source)  # the checkpoint holds the weights and the tokenizer now
    result = train(stage2(source, "train.max_steps=4"), run, resume=True, progress=False)
    assert result.step == 4
