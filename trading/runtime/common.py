"""Small helpers shared by the session's parts (errors, times, console, disk errors)."""
from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone

log = logging.getLogger("btc_laptop_agents.session")


def as_disk_error(exc):
    """The storage layer's disk-error classifier (imported late: storage sits beside us)."""
    from storage.errors import as_disk_error as classify
    return classify(exc)


class SessionError(RuntimeError):
    """The session cannot go on (the report says why)."""


class FatalSessionError(SessionError):
    """An error a restart cannot fix (no market data at all, a strategy bug, bad data):
    the watchdog does not restart the session, the report says error at once."""


class InjectedFault(RuntimeError):
    """An exception raised on purpose by fault injection."""


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + os.urandom(3).hex()


def iso(ts_ms: int | float | None) -> str | None:
    if not ts_ms:
        return None
    try:
        return datetime.fromtimestamp(ts_ms / 1000, timezone.utc).isoformat(
            timespec="milliseconds")
    except (OverflowError, ValueError, OSError, TypeError):
        return None


def register_identifier_safe(value) -> None:
    """Keep an id of the project's own readable in every output (a run id read back)."""
    from storage.logger import register_identifier
    if isinstance(value, str) and 6 <= len(value) <= 64:
        register_identifier(value)


def say(stream, text: str) -> None:
    """Print a console line through the one redaction every output goes through."""
    from storage.logger import redact
    print(redact(text), file=stream, flush=True)


def log_write_failure(event: str, exc: BaseException, **extra) -> str:
    """Log a failed write: a disk error as one CRITICAL line with advice, anything else with
    its traceback. Return the text for the report."""
    disk = as_disk_error(exc)
    if disk is not None:
        log.critical(event, extra={"error": str(disk), **extra})
        return str(disk)
    log.error(event, exc_info=exc, extra={"error": f"{type(exc).__name__}: {exc}", **extra})
    return f"{type(exc).__name__}: {exc}"


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, AttributeError):
        try:
            import psutil
            return psutil.Process().memory_info().rss / 1e6
        except Exception:  # noqa: BLE001
            return 0.0


def mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def mmss(ms: int) -> str:
    s = max(0, int(ms // 1000))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60:02d}:{s % 60:02d}"


def seconds_between(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    try:
        return round((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds(), 3)
    except (TypeError, ValueError, OverflowError):
        return None  # a hand-edited segment: the report shows no duration rather than fail


def dumps(obj) -> str:
    return json.dumps(obj, default=str, sort_keys=True)
