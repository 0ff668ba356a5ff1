"""Disk errors are not corruption: name them, say what to do, and never retry them blindly."""
from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

# errno values that mean "the disk or the file system refused", not "the file is damaged"
DISK_ERRNOS = {errno.ENOSPC: "disk full", errno.EROFS: "read-only file system",
               errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.EIO: "disk I/O error"}
if hasattr(errno, "EDQUOT"):
    DISK_ERRNOS[errno.EDQUOT] = "disk quota exceeded"

# SQLite's words for the same conditions (its error names where the module gives them)
_SQLITE_DISK = {"SQLITE_FULL": "disk full", "SQLITE_READONLY": "read-only file system",
                "SQLITE_IOERR": "disk I/O error", "SQLITE_CANTOPEN": "cannot open the file",
                "SQLITE_PERM": "permission denied"}
_SQLITE_TEXT = (("database or disk is full", "disk full"),
                ("readonly database", "read-only file system"),
                ("disk i/o error", "disk I/O error"),
                ("unable to open database", "cannot open the file"))

# below this much free space a session is not started (a 10-minute session writes ~1 MB; a
# day-long one with logs rotating at 5 x 5 MB stays under 40 MB)
MIN_FREE_BYTES = 50 * 1024 * 1024
MIN_FREE_ENV = "BTC_LAPTOP_MIN_FREE_MB"  # overrides the minimum (MB), e.g. for a small disk


class DiskError(RuntimeError):
    """Writing or reading app data failed because of the disk, not the data; not restartable."""

    def __init__(self, message: str, kind: str = "disk error", path: Path | None = None):
        super().__init__(message)
        self.kind, self.path = kind, path


def free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding `path` (the nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _advice(kind: str, where: Path | None) -> str:
    loc = f" on {where}" if where is not None else ""
    if kind in ("disk full", "disk quota exceeded"):
        free = free_bytes(where) if where is not None else None
        got = f"{free:,} bytes free{loc}" if free is not None else f"no space left{loc}"
        return f"{kind}: {got}; free some space (or choose another --data-dir) and start again"
    if kind == "read-only file system":
        return f"{kind}{loc}: the data dir must be writable; remount it or choose another " \
               f"--data-dir"
    if kind == "permission denied":
        return f"{kind}{loc}: give this user write access or choose another --data-dir"
    if kind == "disk I/O error":
        return f"{kind}{loc}: the disk reported a hardware or driver error; check it " \
               f"(dmesg, SMART) before trusting files written there"
    return f"{kind}{loc}"


def disk_error_kind(exc: BaseException) -> str | None:
    """Return what kind of disk error `exc` is, or None if it is not one."""
    if isinstance(exc, DiskError):
        return exc.kind
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return DISK_ERRNOS[exc.errno]
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        for prefix, kind in _SQLITE_DISK.items():
            if name.startswith(prefix):
                return kind
        text = str(exc).lower()
        for needle, kind in _SQLITE_TEXT:
            if needle in text:
                return kind
    return None


def as_disk_error(exc: BaseException, where: Path | None = None) -> DiskError | None:
    """Wrap a disk-caused exception in a DiskError with advice; None if it is not one."""
    if isinstance(exc, DiskError):
        return exc
    kind = disk_error_kind(exc)
    if kind is None:
        return None
    path = where
    if path is None and isinstance(exc, OSError) and exc.filename:
        path = Path(os.fsdecode(exc.filename)).parent
    return DiskError(_advice(kind, path), kind, path)


def min_free_bytes() -> int:
    """The free space a session needs at start: $BTC_LAPTOP_MIN_FREE_MB, else 50 MB."""
    text = os.environ.get(MIN_FREE_ENV, "").strip()
    try:
        mb = float(text) if text else None
    except ValueError:
        mb = None
    if mb is None or not 0 <= mb <= 10**7:
        return MIN_FREE_BYTES
    return int(mb * 1024 * 1024)


def check_free_space(data_dir: Path, minimum: int | None = None) -> str | None:
    """Say why `data_dir` has too little free space to start, or None if it has enough."""
    minimum = min_free_bytes() if minimum is None else minimum
    free = free_bytes(data_dir)
    if free is None or free >= minimum:
        return None
    return (f"only {free:,} bytes free on {data_dir} (a session needs at least "
            f"{minimum / (1024 * 1024):g} MB): free some space or choose another --data-dir")


RESERVE_NAME = ".reserve"
RESERVE_BYTES = 2 * 1024 * 1024


def ensure_reserve(data_dir: Path) -> None:
    """Keep a small ballast file in the data dir: on a full disk, deleting it leaves room to
    write the final report and close the journal (best effort, never raises)."""
    p = Path(data_dir) / RESERVE_NAME
    try:
        if p.is_file() and p.stat().st_size >= RESERVE_BYTES:
            return
        with open(p, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        try:
            p.unlink()
        except OSError:
            pass


def release_reserve(data_dir: Path) -> bool:
    """Delete the ballast file; return whether there was one."""
    try:
        os.remove(Path(data_dir) / RESERVE_NAME)
        return True
    except OSError:
        return False
