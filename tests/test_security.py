"""Nothing read from disk runs code: weights through safetensors, trainer state through
``torch.load(weights_only=True)``, no pickle/eval/exec, and ``trust_remote_code`` only when a
recipe sets it."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
import torch

from textvae.config import DataConfig
from textvae import TextVAE
from textvae.training.checkpoint import load_trainer_state
from textvae.errors import ModelError, RunError

from tests.helpers import REPO

PACKAGE = REPO / "textvae"
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}
# The documented places where something is allowed, as (file, enclosing function): the line that
# forwards a recipe's own data.trust_remote_code=true to datasets.load_dataset, and the one
# torch.load, which reads trainer state with weights_only=True.
ALLOWED_TRUST_REMOTE_CODE = {("textvae/data/hub.py", "load_hub")}
ALLOWED_TORCH_LOAD = {("textvae/training/checkpoint.py", "load_trainer_state")}


def _functions(tree: ast.AST) -> dict[ast.AST, str]:
    """Each node → the name of the function it is in ("" at module level)."""
    owner: dict[ast.AST, str] = {}

    def visit(node: ast.AST, name: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else name
            owner[child] = inner
            visit(child, inner)

    visit(tree, "")
    return owner


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _findings(package: Path = PACKAGE) -> list[str]:
    """Every unsafe construct in the .py files under ``package``, as "file:line what"."""
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        owner = _functions(tree)
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', '?')}"
            place = (rel, owner.get(node, ""))
            if isinstance(node, ast.Import):
                found += [f"{where} imports {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
                found.append(f"{where} imports from {node.module}")
            elif isinstance(node, ast.Call):
                name = _dotted(node.func)
                if isinstance(node.func, ast.Name) and name in UNSAFE_BUILTINS:
                    found.append(f"{where} calls {name}()")
                if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "numpy.load", "np.load"):
                    found.append(f"{where} calls {name}()")
                keywords = {k.arg: k.value for k in node.keywords if k.arg}
                for key, bad in (("weights_only", False), ("trust_remote_code", True), ("allow_pickle", True)):
                    value = keywords.get(key)
                    if isinstance(value, ast.Constant) and value.value is bad:
                        found.append(f"{where} passes {key}={bad}")
                if name == "torch.load":
                    safe = keywords.get("weights_only")
                    if not (isinstance(safe, ast.Constant) and safe.value is True):
                        found.append(f"{where} calls torch.load without weights_only=True")
                    elif place not in ALLOWED_TORCH_LOAD:
                        found.append(f"{where} calls torch.load outside {sorted(ALLOWED_TORCH_LOAD)}")
            elif isinstance(node, ast.Assign):  # kwargs["trust_remote_code"] = True
                for target in node.targets:
                    if (isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant)
                            and target.slice.value == "trust_remote_code" and place not in ALLOWED_TRUST_REMOTE_CODE):
                        found.append(f"{where} sets trust_remote_code")
    return sorted(found, key=lambda f: (f.split(":")[0], int(f.split(":")[1].split(" ")[0])))


def test_package_source_has_no_code_execution_on_loaded_data():
    assert _findings() == []


def test_the_scan_catches_what_it_looks_for(tmp_path):
    (tmp_path / "textvae").mkdir()
    (tmp_path / "textvae" / "bad.py").write_text(
        "import pickle\nx = eval('1')\nmodel.eval()\nimport torch\ntorch.load('f')\n"
        "torch.load('g', weights_only=True)\nkw = {}\nkw['trust_remote_code'] = True\n"
        "def f(m):\n    m.from_pretrained('x', trust_remote_code=True)\n", encoding="utf-8")
    assert _findings(tmp_path / "textvae") == [
        "textvae/bad.py:1 imports pickle", "textvae/bad.py:2 calls eval()",
        "textvae/bad.py:5 calls torch.load without weights_only=True",
        "textvae/bad.py:6 calls torch.load outside [('textvae/training/checkpoint.py', 'load_trainer_state')]",
        "textvae/bad.py:8 sets trust_remote_code", "textvae/bad.py:10 passes trust_remote_code=True"]


class Payload:
    """Unpickling this creates a file: proof that loading ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_trainer_state_with_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"step": 1, "rng": Payload(marker)}, tmp_path / "trainer_state.pt")
    with pytest.raises(RunError, match=r"trainer_state\.pt cannot be read \(UnpicklingError"):
        load_trainer_state(tmp_path)
    assert not marker.exists()


def test_weights_that_are_a_pickle_are_refused_and_not_run(tmp_path):
    from textvae.config import ModelConfig
    from textvae.modeling import VocabSpec

    model = TextVAE(ModelConfig(latent_dim=2), VocabSpec(vocab_size=10, pad_id=0, bos_id=1, eos_id=2, unk_id=3))
    model.save_pretrained(tmp_path)
    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    torch.save({**model.state_dict(), "payload": Payload(marker)}, buffer)
    (tmp_path / "model.safetensors").write_bytes(buffer.getvalue())
    with pytest.raises(ModelError, match="cannot be read as safetensors weights"):
        TextVAE.from_pretrained(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("asked", [False, True])
def test_trust_remote_code_only_when_the_recipe_asks(monkeypatch, asked):
    import textvae.data.corpora as corpora
    import textvae.data.hub as hub

    calls = []

    def load_dataset(*args, **kwargs):
        calls.append(kwargs)
        raise FileNotFoundError("offline")

    monkeypatch.setattr(hub, "load_dataset", load_dataset)
    assert DataConfig().trust_remote_code is False
    with pytest.raises(corpora.DataError):
        corpora.load_corpus(DataConfig(name="someone/some-dataset", trust_remote_code=asked))
    assert calls[0].get("trust_remote_code", False) is asked
