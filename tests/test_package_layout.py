"""The package's shape: imports flow one way, modules stay small, users find the names they reach for.

    errors, utils → config → data, objectives, modeling → inference → evaluation → training → cli

Every import of every module counts, the ones inside functions too (an import moved into a
function to dodge a cycle is still a dependency); only ``if TYPE_CHECKING:`` blocks, which never
run, are left out.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGE = REPO / "textvae"

# What each part of the package may import (besides itself).
BASE = {"errors", "utils", "root"}
ALLOWED = {
    "root": set(),
    "errors": set(),
    "utils": {"errors", "root"},
    "config": BASE,
    "data": BASE | {"config"},
    "objectives": BASE | {"config"},
    "modeling": BASE | {"config", "objectives"},
    "inference": BASE | {"config", "data", "objectives", "modeling"},
    "evaluation": BASE | {"config", "data", "objectives", "modeling", "inference"},
    "sklearn": BASE | {"config", "data", "modeling", "inference"},
    "training": BASE | {"config", "data", "objectives", "modeling", "inference", "evaluation"},
    "cli": BASE | {"config", "data", "objectives", "modeling", "inference", "evaluation", "training", "sklearn"},
    "__main__": BASE | {"cli"},
}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    pieces = module.split(".")
    return "root" if len(pieces) == 1 else pieces[1]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, top_level_only: bool = False) -> set[str]:
    """The textvae modules ``path`` imports (``from textvae.x import y`` counts as textvae.x, and
    as textvae.x.y when that is a module)."""
    found: set[str] = set()

    def visit(node: ast.AST, depth: int) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            nested = depth + isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            if isinstance(child, ast.Import):
                if not (top_level_only and nested):
                    found.update(a.name for a in child.names if a.name.split(".")[0] == "textvae")
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module.split(".")[0] == "textvae" and not (top_level_only and nested):
                    found.add(child.module)
                    for alias in child.names:
                        candidate = f"{child.module}.{alias.name}"
                        if _module_path(candidate) is not None:
                            found.add(candidate)
            visit(child, nested)

    visit(ast.parse(path.read_text(encoding="utf-8")), 0)
    return found


def _module_path(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_import_goes_down_the_layers():
    wrong = []
    for module, path in MODULES.items():
        part = part_of(module)
        for target in imports_of(path):
            other = part_of(target)
            if other != part and other not in ALLOWED[part]:
                wrong.append(f"{module} imports {target} ({part} may import {sorted(ALLOWED[part]) or 'nothing'})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_modules():
    # Within a part too: a module-level cycle is what TYPE_CHECKING and late imports used to hide.
    graph = {m: {t for t in imports_of(p, top_level_only=True) if t in MODULES and t != m} for m, p in MODULES.items()}
    # A package's __init__ re-exporting its submodules is not a cycle with them.
    for m in graph:
        graph[m] = {t for t in graph[m] if not m.startswith(t + ".")}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def strongly_connect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongly_connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            strongly_connect(v)
    assert not cycles, cycles


def test_the_layer_check_catches_an_upward_import(tmp_path):
    # The walker itself: an upward import inside a function is found; one under TYPE_CHECKING is not.
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from textvae.training import x\n"
                      "def f():\n    from textvae.inference.api import TextVAE\n")
    assert imports_of(source) == {"textvae.inference.api"}
    assert imports_of(source, top_level_only=True) == set()


def test_modules_stay_small_or_say_why():
    long = []
    for module, path in MODULES.items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if lines > MAX_LINES and f"over {MAX_LINES} lines" not in doc.lower():
            long.append(f"{module}: {lines} lines")
    assert not long, "modules over ~400 lines need a reason in their docstring ('over 400 lines because …'): " + \
        ", ".join(long)


def test_the_top_level_exports_what_users_reach_for():
    # A fresh process: `import textvae` loads no torch until a name needs it.
    code = ("import sys, textvae; assert 'torch' not in sys.modules, 'import textvae loaded torch'; "
            "from textvae import TextVAE, load_recipe, train, DecodeConfig, TextVAEError; "
            "import torch; assert issubclass(TextVAE, torch.nn.Module); "
            "from textvae.modeling import TextVAEModel; assert issubclass(TextVAE, TextVAEModel); "
            "assert callable(load_recipe) and callable(train); print(sorted(n for n in dir(textvae) if n[0] != '_'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "TextVAE" in done.stdout and "load_recipe" in done.stdout
    import textvae

    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        textvae.nope  # noqa: B018
