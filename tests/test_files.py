"""What a run leaves on disk: loadable from its run directory, damaged models named with the
intact ones, checkpoints that store each tensor once, files that follow the umask, reports
that say which split each row is, and the licence files."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from textvae.cli import main
from textvae.config import DecoderConfig, EncoderConfig, ModelConfig
from textvae import TextVAE
from textvae.modeling import VocabSpec
from textvae.training.checkpoint import save_checkpoint
from textvae.utils.io import atomic_write_json, atomic_write_text
from textvae.utils.layout import looks_intact
from textvae.errors import ModelError

from tests.helpers import REPO, TINY

UMASK = 0o027  # not the usual 022, so that a mode taken from anywhere but the umask shows


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny quickstart run through the CLI, under UMASK: model/, best/, checkpoints 2 and 4."""
    out = tmp_path_factory.mktemp("files") / "run"
    previous = os.umask(UMASK)
    try:
        code = main(["train", str(REPO / "recipes/quickstart.yaml"), *TINY, "train.max_steps=4",
                     "train.eval_every=2", "train.save_every=2", "train.keep_checkpoints=2",
                     "--output", str(out), "--no-progress"])
    finally:
        os.umask(previous)
    assert code == 0
    return out


def damaged_copy(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    weights = copy / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated: a full disk, a killed copy
    return copy


def same_weights(a: TextVAE, b: TextVAE) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- from_pretrained


def test_from_pretrained_takes_a_run_directory_as_the_cli_does(run):
    assert same_weights(TextVAE.from_pretrained(run), TextVAE.from_pretrained(run / "model"))
    assert not same_weights(TextVAE.from_pretrained(run), TextVAE.from_pretrained(run / "checkpoints/step-00000002"))


def test_from_pretrained_gives_a_model_without_dropout_as_hugging_face_does(tmp_path):
    # A loaded model is for inference: dropout on would make a user's greedy decode of it random.
    config = ModelConfig(latent_dim=4, embed_dropout=0.5, encoder=EncoderConfig(embed_dim=16, hidden_dim=16),
                         decoder=DecoderConfig(embed_dim=16, hidden_dim=16, dropout=0.5))
    TextVAE(config, VocabSpec(50, 0, 1, 2, 3)).save_pretrained(tmp_path / "m")
    model = TextVAE.from_pretrained(tmp_path / "m")
    assert not any(m.training for m in model.modules())
    ids, lengths = torch.tensor([[2, 5, 6, 7, 3]]), torch.tensor([5])
    z = torch.randn(1, 4, generator=torch.Generator().manual_seed(0))
    first = model.reconstruction_nll(ids, lengths, z)[0]
    assert torch.equal(first, model.reconstruction_nll(ids, lengths, z)[0])
    model.train()  # fine-tuning: dropout back, so the same call differs
    assert not torch.equal(first, model.reconstruction_nll(ids, lengths, z)[0])


def test_a_model_directory_without_config_json_names_the_file(run, tmp_path):
    copy = tmp_path / "weights-only"
    copy.mkdir()
    shutil.copy(run / "model" / "model.safetensors", copy)
    with pytest.raises(ModelError) as info:
        TextVAE.from_pretrained(copy)
    assert str(info.value) == (
        f"{copy} is not a textvae model directory: it has no config.json ({copy / 'config.json'} is missing). "
        "It holds model.safetensors, but weights cannot be rebuilt without the architecture that config.json "
        "records: copy config.json from the directory these weights came from.")
    with pytest.raises(ModelError, match=r"does not exist\. Point at a textvae run directory"):
        TextVAE.from_pretrained(tmp_path / "typo")
    with pytest.raises(ModelError, match=rf"safetensors is a file, not a directory\. .*: here {copy}\.$"):
        TextVAE.from_pretrained(copy / "model.safetensors")


def test_a_damaged_model_of_a_run_points_at_its_intact_best_and_checkpoints(run, tmp_path, capsys):
    copy = damaged_copy(run, tmp_path)
    intact = f"Intact models of this run: {copy}/best, {copy}/checkpoints/step-00000004, " \
             f"{copy}/checkpoints/step-00000002 (TextVAE.from_pretrained and every textvae command take each)."
    for path in (copy, copy / "model"):
        with pytest.raises(ModelError, match=r"model\.safetensors cannot be read as safetensors") as info:
            TextVAE.from_pretrained(path)
        assert str(info.value).endswith(intact)
    # The same message through the CLI, which reads a run directory's model/.
    assert main(["generate", str(copy), "--num", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("textvae generate: error: ") and intact in err and "Traceback" not in err
    # What a name in that list is worth: each loads.
    for name in re.search(r"Intact models of this run: (.*) \(", intact)[1].split(", "):
        TextVAE.from_pretrained(name)
    # A damaged best/ or checkpoint is not offered.
    (copy / "best" / "config.json").write_text("{")
    tokenizer = copy / "checkpoints" / "step-00000002" / "tokenizer" / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text()[:100])
    with pytest.raises(ModelError) as info:
        TextVAE.from_pretrained(copy)
    assert str(info.value).endswith(f"Intact models of this run: {copy}/checkpoints/step-00000004 "
                                    "(TextVAE.from_pretrained and every textvae command take each).")
    with pytest.raises(ModelError, match=r"tokenizer cannot be read \(.*\); its files are truncated or altered"):
        TextVAE.from_pretrained(tokenizer.parent.parent)
    shutil.rmtree(copy / "checkpoints")
    with pytest.raises(ModelError, match=r"No other model of the run .* is intact \(best/ and checkpoints/"
                                             r"step-\*/ are missing or damaged too\): train the run again\."):
        TextVAE.from_pretrained(copy)


def test_an_unfinished_run_names_its_models_and_the_resume_command(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "model")
    with pytest.raises(ModelError) as info:
        TextVAE.from_pretrained(copy)
    assert str(info.value) == (
        f"{copy} is a run directory whose training has not finished: it has no model/ yet. Load one of its intact "
        f"models instead: {copy}/best, {copy}/checkpoints/step-00000004, {copy}/checkpoints/step-00000002; or "
        f"finish the run: textvae train {copy}/recipe.yaml --output {copy} --resume.")
    shutil.rmtree(copy / "best")
    shutil.rmtree(copy / "checkpoints")
    with pytest.raises(ModelError, match=r"is a run directory without a model yet: no model/, best/ or "
                                             r"checkpoint has been written"):
        TextVAE.from_pretrained(copy)


def test_looks_intact_catches_truncation_and_garbage(run, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(run / "model", copy)
    assert looks_intact(copy)
    weights = copy / "model.safetensors"
    data = weights.read_bytes()
    for broken in (data[:-1], data + b"\0", b"", data[:8]):
        weights.write_bytes(broken)
        assert not looks_intact(copy)


# --------------------------------------------------------------------------- checkpoint size


def tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def test_a_checkpoint_holds_the_weights_once_and_two_adam_moments(run):
    """A checkpoint is 3x the model under AdamW (weights + exp_avg + exp_avg_sq), nothing more:
    the weights are not also in the trainer state, and no tensor is there twice."""
    checkpoint = run / "checkpoints" / "step-00000004"
    model = TextVAE.from_pretrained(checkpoint)
    weights = sum(p.numel() * 4 for p in model.parameters())
    # Buffers (the quickstart's batch-normalised μ keeps running statistics) are saved, not optimised.
    saved = model.state_dict()
    buffers = sum(b.numel() * b.element_size() for name, b in model.named_buffers() if name in saved)
    header = 8 + int.from_bytes((checkpoint / "model.safetensors").read_bytes()[:8], "little")
    assert (checkpoint / "model.safetensors").stat().st_size - header == weights + buffers
    state = torch.load(checkpoint / "trainer_state.pt", weights_only=True)
    moments = [t for s in state["optimizer"]["state"].values() for k, t in s.items() if k != "step"]
    assert tensor_bytes(moments) == 2 * weights
    assert tensor_bytes(state) < 2 * weights + 64 * 1024  # + RNG states and step counters
    assert (checkpoint / "trainer_state.pt").stat().st_size < 2 * weights + 128 * 1024


def test_tied_embeddings_are_stored_once_and_resume_tied(tmp_path):
    config = ModelConfig(latent_dim=4, encoder=EncoderConfig(embed_dim=16, hidden_dim=16),
                         decoder=DecoderConfig(embed_dim=16, hidden_dim=16, tie_embeddings=True))
    model = TextVAE(config, VocabSpec(500, 0, 1, 2, 3))
    assert model.decoder.embed.weight is model.decoder.output.weight
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    state = {"optimizer": optimizer.state_dict()}
    path = save_checkpoint(model, state, tmp_path, step=1, keep=1)
    unique = sum(p.numel() * 4 for p in model.parameters())  # parameters() lists a shared tensor once
    assert unique < sum(t.numel() * 4 for t in model.state_dict().values())
    stored = load_file(str(path / "model.safetensors"))
    assert sum(t.numel() * 4 for t in stored.values()) == unique
    assert tensor_bytes([t for s in torch.load(path / "trainer_state.pt", weights_only=True)["optimizer"]["state"]
                         .values() for k, t in s.items() if k != "step"]) == 2 * unique
    again = TextVAE.from_pretrained(path)
    assert again.decoder.embed.weight is again.decoder.output.weight and same_weights(again, model)


# --------------------------------------------------------------------------- file modes


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def test_a_run_writes_its_files_with_the_users_umask(run):
    found = modes(run)
    assert {name: oct(mode) for name, mode in found.items()
            if mode != (0o750 if (run / name).is_dir() else 0o640)} == {}
    assert "checkpoints/step-00000004/trainer_state.pt" in found and "curves.png" in found


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "new" / "a.json", {"a": 1})
        atomic_write_text(tmp_path / "new" / "a.json", "replaced\n")  # a rewrite gets the umask's mode too
        TextVAE(ModelConfig(latent_dim=2, encoder=EncoderConfig(embed_dim=4, hidden_dim=4),
                            decoder=DecoderConfig(embed_dim=4, hidden_dim=4)),
                VocabSpec(20, 0, 1, 2, 3)).save_pretrained(tmp_path / "m")
    finally:
        os.umask(previous)
    assert {name: oct(mode) for name, mode in modes(tmp_path).items() if name != "."} == {
        name: oct((0o777 if (tmp_path / name).is_dir() else 0o666) & ~umask)
        for name in ("new", "new/a.json", "m", "m/config.json", "m/model.safetensors")}
    assert (tmp_path / "new" / "a.json").read_text() == "replaced\n"


# --------------------------------------------------------------------------- report


def table_rows(report: str, heading: str) -> list[str]:
    section = report.split(heading, 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| run |")]


def test_report_keeps_validation_rows_and_shows_evaluate_apart_with_its_split(run, tmp_path, capsys):
    copy = tmp_path / "a"
    shutil.copytree(run, copy)
    assert main(["report", str(copy)]) == 0
    before = (copy / "report.md").read_text()
    assert "## `textvae evaluate`" not in before
    validation = table_rows(before, "## Validation")
    assert len(validation) == 1 and validation[0].startswith("| a | validation | 4 | ")

    assert main(["evaluate", str(copy), "--iw-samples", "2", "--max-sentences", "5", "--prior-samples", "2"]) == 0
    assert main(["report", str(copy)]) == 0
    after = (copy / "report.md").read_text()
    assert table_rows(after, "## Validation") == validation  # evaluate does not replace the validation row
    test_split = json.loads((copy / "data_stats.json").read_text())["test"]["kept"]
    scored = json.loads((copy / "eval.json").read_text())["n_sentences"]  # of the first 5, those short enough
    assert 0 < scored <= 5 < test_split
    [row] = table_rows(after, "## `textvae evaluate` (eval.json)")
    assert row.startswith(f"| a | model/ | test | {scored} of {test_split} | 2 | ")
    assert "*n of N*: n of the N sentences of that split" in after

    # Two runs evaluated on different splits: the table says so, and each row says which.
    other = tmp_path / "b"
    shutil.copytree(run, other)
    result = json.loads((copy / "eval.json").read_text())
    valid_split = json.loads((other / "data_stats.json").read_text())["validation"]["kept"]
    atomic_write_json(other / "eval.json", {**result, "split": "validation", "n_sentences": valid_split})
    assert main(["report", str(copy), str(other), "--output", str(tmp_path / "both")]) == 0
    both = (tmp_path / "both" / "report.md").read_text()
    assert "these rows mix splits: test, validation; compare rows of the same split only" in both
    rows = table_rows(both, "## `textvae evaluate` (eval.json)")
    assert [r.split(" | ")[2:4] for r in rows] == [["test", f"{scored} of {test_split}"],
                                                    ["validation", str(valid_split)]]
    assert "Traceback" not in capsys.readouterr().err


# --------------------------------------------------------------------------- licences


def test_licence_files():
    licence = (REPO / "LICENSE").read_text()
    assert licence.split()[:5] == ["Apache", "License", "Version", "2.0,", "January"]
    assert "END OF TERMS AND CONDITIONS" in licence and len(licence.splitlines()) == 202
    assert 'license = { text = "Apache-2.0" }' in (REPO / "pyproject.toml").read_text()
    readme = (REPO / "README.md").read_text()
    assert "## Licence" in readme and "[LICENSE](LICENSE)" in readme
    data_readme = (REPO / "data" / "README.md").read_text()
    assert data_readme.startswith("# data/:") and "shared/" not in data_readme
    for source in sorted((REPO / "data").glob("*/SOURCE.md")):
        assert re.search(r"licen[cs]e stated by origin", source.read_text()), source
