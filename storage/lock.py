"""One writer per data dir: an exclusive OS lock held for the life of the process.

Why the standard library (`fcntl.flock` / `msvcrt.locking`) and not the `filelock` package:
the supervisor must hand its lock to the session child so that the lock is held while *either*
process lives. With `flock` the lock belongs to the open file description, so passing the
descriptor to the child (`pass_fds`) shares it exactly, and the OS drops it when the last holder
dies (SIGKILL included) — nothing stale can block the next start. `filelock` wraps the same
calls but keeps the descriptor private and truncates the lock file, so neither is possible there.

The lock file `<data dir>/.lock` stays on disk; who holds it is written to `<data dir>/.lock.json`
(pid, start time, command) after the lock is taken, and read only to name the holder when a
second process is refused.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = ".lock"
HOLDER_NAME = ".lock.json"
# the supervisor tells its child which inherited descriptor carries the lock
INHERITED_FD_ENV = "BTC_LAPTOP_LOCK_FD"
INHERITED_TOKEN_ENV = "BTC_LAPTOP_LOCK_TOKEN"


class DataDirLocked(RuntimeError):
    """Another live process owns this data dir."""

    def __init__(self, data_dir: Path, holder: dict | None) -> None:
        self.data_dir = Path(data_dir)
        self.holder = holder or {}
        super().__init__(self.describe())

    def describe(self) -> str:
        h = self.holder
        if not h:
            who = "another process (it did not say which)"
        else:
            started = h.get("started")
            who = (f"pid {h.get('pid', '?')}, started {started or '?'}, "
                   f"command: {h.get('command', '?')}")
        return (f"the data dir {self.data_dir} is in use by {who}. Only one session, window or "
                f"supervisor may use a data dir at a time: wait for it to finish, stop it, or "
                f"choose another with --data-dir")


@dataclass
class DataDirLock:
    """A held lock; `release()` (or process exit) frees it."""

    data_dir: Path
    fd: int
    token: str
    inherited: bool = False

    def release(self) -> None:
        if self.fd < 0:
            return
        if not self.inherited:
            try:
                (self.data_dir / HOLDER_NAME).unlink()
            except OSError:
                pass
            # an inherited descriptor shares the supervisor's lock: closing it is enough, an
            # unlock would release the supervisor's lock too
            _unlock(self.fd)
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.fd = -1

    def child_env(self) -> dict[str, str]:
        """Environment entries that let a child process use this lock (pass `fd` too)."""
        return {INHERITED_FD_ENV: str(self.fd), INHERITED_TOKEN_ENV: self.token}


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass


def read_holder(data_dir: Path) -> dict | None:
    """Who the holder file says holds the lock (untrusted text: only shown, never acted on)."""
    try:
        raw = (Path(data_dir) / HOLDER_NAME).read_bytes()[:4096]
        doc = json.loads(raw.decode("utf-8", errors="replace"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    out = {}
    for key in ("pid", "started", "command", "token"):
        v = doc.get(key)
        if isinstance(v, (int, str)) and not isinstance(v, bool):
            out[key] = v if isinstance(v, int) else v[:300]
    return out


def _inherited(data_dir: Path) -> DataDirLock | None:
    """The lock a supervisor handed to this process, if any and if it is for this data dir."""
    fd_text, token = os.environ.get(INHERITED_FD_ENV, ""), os.environ.get(INHERITED_TOKEN_ENV, "")
    if not fd_text.isdigit() or not token:
        return None
    if os.name == "nt":  # pragma: no cover - descriptors are not inherited there: trust the
        # supervisor that wrote the holder file, if it is this process's parent
        holder = read_holder(data_dir) or {}
        if holder.get("token") == token and holder.get("pid") == os.getppid():
            return DataDirLock(Path(data_dir), -1, token, inherited=True)
        return None
    fd = int(fd_text)
    try:  # the descriptor must be this data dir's lock file, not whatever has that number
        mine, theirs = os.fstat(fd), os.stat(Path(data_dir) / LOCK_NAME)
    except OSError:
        return None
    if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
        return None
    return DataDirLock(Path(data_dir), fd, token, inherited=True)


def acquire_data_dir_lock(data_dir: Path, command: str | None = None) -> DataDirLock:
    """Take the data dir's exclusive lock at once or raise DataDirLocked naming the holder.

    Creates the data dir if needed (OSError if it cannot). A process started by a supervisor
    that holds the lock for this data dir gets the supervisor's lock.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    inherited = _inherited(data_dir)
    if inherited is not None:
        return inherited
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    if not _try_lock(fd):
        os.close(fd)
        raise DataDirLocked(data_dir, read_holder(data_dir))
    if hasattr(os, "set_inheritable"):
        os.set_inheritable(fd, False)
    token = os.urandom(8).hex()
    holder = {"pid": os.getpid(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime()),
              "command": command if command is not None else " ".join(
                  [Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]])[:300],
              "token": token}
    try:
        from storage.logger import redact
        holder["command"] = redact(holder["command"])
    except Exception:  # noqa: BLE001 - naming the holder is a courtesy
        pass
    try:
        from storage.state import write_text_atomic
        write_text_atomic(data_dir / HOLDER_NAME, json.dumps(holder))
    except OSError:
        pass  # a full disk must not stop the lock itself; the holder is then unnamed
    return DataDirLock(data_dir, fd, token)
