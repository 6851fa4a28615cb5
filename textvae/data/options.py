"""Recipe keys or command flags: the names data errors use for each option they suggest changing."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OptionNames:
    """How the user sets each data option, so that an error names a fix they can type.

    Recipes (and so ``textvae train``) set keys, ``data.encoding=cp1252``: :data:`RECIPE_KEYS`.
    The other commands take flags, ``--encoding cp1252``: :meth:`flags`.
    """

    name: str = "data.name"
    format: str = "data.format"
    encoding: str = "data.encoding"
    text_column: str = "data.text_column"
    label_column: str = "data.label_column"
    files: dict[str, str] = field(default_factory=lambda: dict(FILE_KEYS))
    """Split → the key or flag that gave its files."""
    flag_style: bool = False
    """``--flag value`` rather than ``key=value``."""
    label_optional: bool = True
    """Whether reading the data without labels is a fix worth suggesting."""

    @classmethod
    def flags(cls, files: dict[str, str], name: str = "--data", label_optional: bool = True) -> "OptionNames":
        """The flags every data-reading command takes; ``files`` names the flag of each split's files."""
        return cls(name=name, format="--format", encoding="--encoding", text_column="--text-column",
                   label_column="--label-column", files=dict(files), flag_style=True,
                   label_optional=label_optional)

    def set(self, option: str, value: Any, quote: bool = True) -> str:
        """What to type to set ``option`` (a field name, or a split for its files) to ``value``;
        ``quote=False`` leaves a flag's value as written (for ``ptb / yelp``-style lists)."""
        key = self.files[option] if option in self.files else getattr(self, option)
        if not self.flag_style:
            return f"{key}={value}"
        return f"{key} {shlex.quote(str(value)) if quote else value}"

    def file_key(self, split: str) -> str:
        return self.files.get(split, " / ".join(dict.fromkeys(self.files.values())))

    def unset_label(self) -> str:
        return f"leave out {self.label_column}" if self.flag_style else f"set {self.label_column}=null"


FILE_KEYS = {"train": "data.train_files", "validation": "data.valid_files", "test": "data.test_files"}
RECIPE_KEYS = OptionNames()
