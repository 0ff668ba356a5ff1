"""The paper-broker state file: atomic writes, and a corrupt file is moved aside, never trusted."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage.errors import DiskError, as_disk_error
from storage.logger import get_logger
from storage.paths import unique_corrupt_path

log = get_logger("state")


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; Windows cannot open a directory, so skip there.
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str, *, newline: str | None = None) -> None:
    """Write text to path so a crash leaves either the old file or the new one.

    Temp file in the same folder, flush, fsync, os.replace, then fsync the folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as tmp:
            tmp.write(text)
            tmp.flush()
            os.chmod(tmp_name, 0o644)
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def save_json_atomic(path: Path, data: dict) -> None:
    """Write data as JSON to path so a crash leaves either the old file or the new one."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def _move_aside(path: Path, error: str) -> Path | None:
    corrupt_path: Path | None = unique_corrupt_path(path)
    try:
        os.rename(path, corrupt_path)
    except OSError as exc:
        error = f"{error}; could not move it aside: {type(exc).__name__}: {exc}"
        corrupt_path = None
    log.critical(
        "state_file_corrupt",
        extra={
            "path": str(path),
            "corrupt_path": str(corrupt_path) if corrupt_path else None,
            "error": error,
        },
    )
    return corrupt_path


MAX_STATE_BYTES = 64 * 1024 * 1024


class CorruptState(ValueError):
    """The state file was corrupt and has been moved aside (`corrupt_path`, `error`)."""


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def load_state(path: Path, validate: Callable[[dict], Any] | None = None,
               on_corrupt: Callable[[str, Path | None], None] | None = None) -> dict | None:
    """Return the state dict at path, or None if missing or corrupt (moved aside, CRITICAL).

    A file that cannot be *read* because of the disk (EACCES, EIO ...) is not corrupt: it stays
    where it is and DiskError is raised. Anything wrong with the content — undecodable, not
    JSON, NaN/Infinity, too deep, too large, or refused by `validate` (any exception) — is
    corruption; `on_corrupt(error, corrupt_path)` is told.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        raw = path.read_bytes() if size <= MAX_STATE_BYTES else b""
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise (as_disk_error(exc, path.parent) or DiskError(
            f"cannot read {path}: {type(exc).__name__}: {exc}", path=path)) from exc
    try:
        if size > MAX_STATE_BYTES:
            raise ValueError(f"{size:,} bytes: larger than any state file this app writes")
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        if not isinstance(data, dict):
            raise TypeError(f"top level is {type(data).__name__}, not an object")
        if validate is not None:
            validate(data)
    except Exception as exc:  # noqa: BLE001 - whatever the content does, it is not trusted
        # UnicodeDecodeError and JSONDecodeError are ValueErrors; absurd nesting recurses;
        # huge numbers overflow; a validator may raise anything on hostile input
        error = f"{type(exc).__name__}: {exc}"[:2000]
        moved = _move_aside(path, error)
        if on_corrupt is not None:
            on_corrupt(error, moved)
        return None
    return data
