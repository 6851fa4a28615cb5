"""Atomic file writes: a crash at any moment leaves either the old file or the new one."""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
"""errno values that mean "no space left": a full disk or an exhausted quota."""

# Libraries written in Rust (safetensors, tokenizers) report I/O failures as their own exception
# type with the OS error in the text: "... I/O error: No space left on device (os error 28)".
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def os_error_of(err: BaseException) -> Optional[OSError]:
    """The operating-system error behind ``err``, if there is one.

    ``torch.save`` to a file object raises a ``RuntimeError`` whose ``__context__`` is the
    ``OSError``; safetensors raises a ``SafetensorError`` that only names the errno in its text.
    Both become a plain ``OSError`` here, so that callers can tell a full disk from a bug.
    """
    seen: set[int] = set()
    current: Optional[BaseException] = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            return current
        match = _RUST_OS_ERROR.search(str(current))
        if match:
            code = int(match.group(1))
            return OSError(code, os.strerror(code))
        current = current.__cause__ or current.__context__
    return None


def fsync_dir(directory: str | Path) -> None:
    """Flush a directory entry (a rename) to disk, where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temporary(path: Path) -> tuple[Path, int]:
    """An empty new file ``.NAME.XXXXXXXX.tmp`` beside ``path``, and its permission bits.

    Not ``tempfile.mkstemp``: it creates files with mode 0600, so every file renamed into place
    would be private. Created with 0666, the file gets the user's umask, as any file a program
    writes does (0644 under the usual umask 022).
    """
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        try:
            return tmp, stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def probe_writable(directory: str | Path) -> None:
    """Create and remove a file in ``directory``, so that a command meets the OSError of an
    unwritable place before its work rather than after it. The name matches the leftovers that
    :func:`textvae.training.checkpoint.clean_leftovers` removes, should a crash come in between."""
    fd, probe = tempfile.mkstemp(prefix=".write-test-", suffix=".tmp", dir=directory)
    os.close(fd)
    os.unlink(probe)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync it and rename it into place.

    The rename is atomic on POSIX, so readers never see a half-written file; on any failure the
    temporary file is removed and ``path`` keeps its previous content. The file gets the mode
    the user's umask gives (0644 under umask 022), like a file written in place.

    Raises:
        OSError: the write failed for a reason of the operating system (a full disk, no
            permission), also when the library that wrote reported it as another type.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path, mode = _create_temporary(path)
    try:
        write(tmp_path)
        if stat.S_IMODE(tmp_path.stat().st_mode) != mode:
            # The writer replaced the file with one of its own (safetensors writes through a 0600
            # temporary file and renames it): give it the mode the umask gave ours.
            os.chmod(tmp_path, mode)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException as err:
        tmp_path.unlink(missing_ok=True)
        cause = os_error_of(err)
        if cause is not None and cause is not err:
            raise OSError(cause.errno, cause.strerror, str(path)) from err
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
