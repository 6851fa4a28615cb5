"""Hugging Face hub datasets: loading one, and keeping its retry noise out of the user's way.

A name close to a shipped one (``pbt``) is refused as a typo before the hub is tried, because the
hub's retries take long and end in an error about the network rather than the name.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datasets import load_dataset

from textvae.config import DataConfig
from textvae.data.columns import Loaded, standardize
from textvae.data.options import RECIPE_KEYS, OptionNames
from textvae.data.shipped import SHIPPED_CORPORA, shipped_name_hint
from textvae.utils.text import one_line
from textvae.errors import DataError

logger = logging.getLogger(__name__)

# Loggers that speak while a hub download is tried: connection errors, "Retrying in 1s [Retry 1/5]".
HUB_LOGGERS = ("huggingface_hub", "datasets", "urllib3", "httpx", "httpcore", "fsspec", "filelock")


@contextlib.contextmanager
def held_hub_logs() -> Iterator[None]:
    """Hold back what the hub libraries log while the block runs. If the block fails, the error
    that follows says what happened in one paragraph and the held records (retry noise, offline
    warnings) are dropped; if it succeeds, they are passed on as they would have been."""
    held: list[logging.LogRecord] = []

    class _Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            held.append(record)

    hold = _Hold()
    saved = {}
    for name in HUB_LOGGERS:
        log = logging.getLogger(name)
        saved[name] = (log.handlers[:], log.propagate)
        log.handlers, log.propagate = [hold], False
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        for name, (handlers, propagate) in saved.items():
            log = logging.getLogger(name)
            log.handlers, log.propagate = handlers, propagate
        if succeeded:
            for record in held:
                logging.getLogger(record.name).handle(record)


def _check_not_a_typo(name: str, names: OptionNames) -> None:
    """A name close to a shipped one (``pbt``) is a typo, said at once rather than after the hub's
    retries; a hub dataset of such a name is still reachable by its full ``owner/name``."""
    close = shipped_name_hint(name)
    if close is None or "/" in name or Path(name).exists():
        return
    raise DataError(
        f"Did you mean {names.set('name', close)}? {name!r} is not a shipped corpus (those are "
        f"{', '.join(SHIPPED_CORPORA)}). To load a Hugging Face hub dataset of that name instead, give it with "
        f"its owner, as on its hub page ({names.set('name', 'owner/' + name)}).")


def load_hub(cfg: DataConfig, names: OptionNames = RECIPE_KEYS) -> Loaded:
    """The splits of the hub dataset ``cfg.name`` that ``cfg.train_split`` / ``valid_split`` /
    ``test_split`` name, standardized to ``text`` (and ``label``).

    Raises:
        DataError: a mistyped shipped name; a dataset that cannot be loaded (offline, unknown name,
            bad config); no train split; a missing column.
    """
    _check_not_a_typo(str(cfg.name), names)
    kwargs: dict[str, Any] = {}
    if cfg.revision:
        kwargs["revision"] = cfg.revision
    if cfg.trust_remote_code:  # only ever passed when the recipe asks for it
        kwargs["trust_remote_code"] = True
    try:
        with held_hub_logs():
            loaded = load_dataset(cfg.name, cfg.hub_config, **kwargs)
    except Exception as err:  # noqa: BLE001 - offline, unknown name, bad config: all end the same way
        files = names.set("train", "path/train.txt")
        raise DataError(
            f"The dataset {cfg.name!r} is not a shipped corpus and could not be loaded from the Hugging Face "
            f"hub (offline? {type(err).__name__}: {one_line(err)}). Use a shipped corpus "
            f"({names.set('name', ' / '.join(SHIPPED_CORPORA), quote=False)}) or local files: {files}"
            + (f" (for csv/json/parquet also {names.text_column} and {names.label_column})."
               if names.flag_style else " (plus data.valid_files=..., data.test_files=...; for csv/json/parquet "
               "also data.text_column=... and data.label_column=...).")) from err
    wanted = {"train": cfg.train_split, "validation": cfg.valid_split, "test": cfg.test_split}
    if cfg.train_split not in loaded:
        raise DataError(f"The hub dataset {cfg.name!r} has no split {cfg.train_split!r} (data.train_split); "
                        f"its splits are {list(loaded)}.")
    splits, dropped = {}, {}
    for split, hub_split in wanted.items():
        if hub_split is None or hub_split not in loaded:
            if hub_split is not None and split != "test":
                logger.info("hub dataset %s has no split %r; carving validation from train", cfg.name, hub_split)
            continue
        origin = f"hub dataset {cfg.name!r} split {hub_split!r}"
        splits[split], dropped[split] = standardize(loaded[hub_split], cfg.text_column, cfg.label_column,
                                                    origin, names)
    return splits, dropped, {}
