"""JSON-lines logging with secret redaction on every handler.

Importing this module makes the app logger usable at once: if nothing has configured it yet,
it logs to <data dir>/logs/system.jsonl and to stderr. Call setup_logging() to choose another
data dir or to silence the console.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from storage.paths import DataPaths, default_data_dir

APP_LOGGER_NAME = "btc_laptop_agents"
LIBRARY_LOGGER_NAMES = ("websocket", "websockets")
LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUP_COUNT = 5
REDACTED = "[REDACTED]"
SECRET_ENV_VARS = ("BITUNIX_API_KEY", "BITUNIX_API_SECRET")
MIN_SECRET_LEN = 4

logger = logging.getLogger(APP_LOGGER_NAME)


def get_logger(name: str) -> logging.Logger:
    """Return the child logger btc_laptop_agents.<name>."""
    return logger.getChild(name)


# --------------------------------------------------------------------------- redaction

_LONG_RUN_RE = re.compile(r"[A-Za-z0-9]{32,}")

# Longer names first so "signature" is not cut to "sign" and "secret_key" not to "secret".
_KEY_NAMES = (
    r"api[_-]?key|api_secret|secret_key|secret|signature|sign"
    r"|access_token|token|password|passphrase"
)
_KEY_VALUE_RE = re.compile(
    r"(?P<key>(?<![A-Za-z0-9])(?:" + _KEY_NAMES + r"))"
    r"(?P<sep>\\?[\"']?\s*[:=]\s*)"
    r"(?P<value>"
    r"\[REDACTED\]"  # already redacted by another handler's filter
    r"|\"(?:[^\"\\]|\\.)*\""  # "double quoted"
    r"|'(?:[^'\\]|\\.)*'"  # 'single quoted'
    r"|(?P<esc>\\[\"']).*?(?P=esc)"  # \"quoted inside an already escaped JSON string\"
    r"|[^\s,;&\"'}\])]+"  # bare: up to whitespace or the next separator
    r")",
    re.IGNORECASE,
)
_SENSITIVE_KEY_RE = re.compile(r"(?:^|[^a-z0-9])(?:" + _KEY_NAMES + r")$", re.IGNORECASE)

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD_RECORD_ATTRS = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}
_MAX_DEPTH = 8
_TRACEBACK_FORMATTER = logging.Formatter()

_secrets_lock = threading.Lock()
_runtime_secrets: tuple[str, ...] = ()
_secrets_version = 0


def _usable_secret(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if len(value) >= MIN_SECRET_LEN else None


def add_secret(value: str | None) -> None:
    """Register a secret value that every SensitiveDataFilter redacts from now on (any thread)."""
    global _runtime_secrets, _secrets_version
    secret = _usable_secret(value)
    if secret is None:
        return
    with _secrets_lock:
        if secret in _runtime_secrets:
            return
        _runtime_secrets = (*_runtime_secrets, secret)
        _secrets_version += 1


def _mask_key_value(match: re.Match[str]) -> str:
    value = match.group("value")
    if match.group("esc"):
        masked = f"{match.group('esc')}{REDACTED}{match.group('esc')}"
    elif value[0] in "\"'":
        masked = f"{value[0]}{REDACTED}{value[0]}"
    else:
        masked = REDACTED
    return f"{match.group('key')}{match.group('sep')}{masked}"


class SensitiveDataFilter(logging.Filter):
    """Redact secrets from a record's message, args, extra fields, traceback and stack."""

    def __init__(self, name: str = "") -> None:
        """Read the secret values from the environment once, at creation."""
        super().__init__(name)
        self._env_secrets = tuple(
            s for s in (_usable_secret(os.environ.get(var)) for var in SECRET_ENV_VARS) if s
        )
        self._version = -1
        self._secret_re: re.Pattern[str] | None = None

    def _secret_pattern(self) -> re.Pattern[str] | None:
        version = _secrets_version
        if version != self._version:
            secrets = set(self._env_secrets) | set(_runtime_secrets)
            # Longest first so a secret containing another is replaced whole.
            ordered = sorted(secrets, key=len, reverse=True)
            self._secret_re = re.compile("|".join(map(re.escape, ordered))) if ordered else None
            self._version = version
        return self._secret_re

    def redact_text(self, text: str) -> str:
        """Return text with secret values, key=value secrets and long tokens replaced."""
        secret_re = self._secret_pattern()
        if secret_re is not None:
            text = secret_re.sub(REDACTED, text)
        text = _KEY_VALUE_RE.sub(_mask_key_value, text)
        return _LONG_RUN_RE.sub(REDACTED, text)

    def redact_value(self, value: Any, depth: int = 0) -> Any:
        """Return value with every string in it redacted, recursing into dicts, lists, tuples."""
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return self.redact_text(value)
        if depth >= _MAX_DEPTH:
            return "[TRUNCATED]"
        if isinstance(value, dict):
            return {
                self.redact_value(k, depth + 1): self._redact_field(k, v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [self.redact_value(v, depth + 1) for v in value]
            return tuple(items) if isinstance(value, tuple) else items
        if isinstance(value, (bytes, bytearray)):
            return self.redact_text(bytes(value).decode("utf-8", errors="replace"))
        try:
            text = str(value)
        except Exception:
            return "[UNPRINTABLE]"
        redacted = self.redact_text(text)
        # Keep the object (a Decimal, a Path ...) unless its text carried a secret.
        return value if redacted == text else redacted

    def _redact_field(self, key: Any, value: Any, depth: int = 0) -> Any:
        if value is not None and isinstance(key, str) and _SENSITIVE_KEY_RE.search(key):
            return REDACTED
        return self.redact_value(value, depth)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place and let it through; never raise."""
        try:
            self._redact_record(record)
        except Exception as exc:
            self._quarantine(record, exc)
        return True

    def _redact_record(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict) and not record.args:
            # JsonFormatter turns a dict message into top-level fields: keep it a dict.
            record.msg = self.redact_value(record.msg)
        else:
            try:
                text = record.getMessage()
            except Exception as exc:
                text = (
                    f"{record.msg!r} (log call args could not be formatted: "
                    f"{type(exc).__name__}: {exc}; args={record.args!r})"
                )
            record.msg = self.redact_text(text)
            record.args = None

        for key in [k for k in record.__dict__ if k not in _STANDARD_RECORD_ATTRS]:
            record.__dict__[key] = self._redact_field(key, record.__dict__[key])

        if record.exc_info:
            exc_info = record.exc_info
            record.exc_info = None
            # exc_info=True outside an except block gives (None, None, None): nothing to show.
            if isinstance(exc_info, tuple) and exc_info[0] is not None:
                record.exc_text = _TRACEBACK_FORMATTER.formatException(exc_info)
        if record.exc_text:
            record.exc_text = self.redact_text(str(record.exc_text))
        if record.stack_info:
            record.stack_info = self.redact_text(str(record.stack_info))

    def _quarantine(self, record: logging.LogRecord, exc: Exception) -> None:
        note = f"[log record could not be redacted: {type(exc).__name__}]"
        try:
            note = f"{note} {self.redact_text(str(record.msg))}"
        except Exception:
            pass
        for key in [k for k in record.__dict__ if k not in _STANDARD_RECORD_ATTRS]:
            del record.__dict__[key]
        record.msg = note
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None


# --------------------------------------------------------------------------- handlers


class _JsonFormatter(JsonFormatter):
    """Render records as one JSON object per line with an ISO-8601 UTC timestamp first."""

    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """Return the record's creation time as ISO-8601 UTC with milliseconds."""
        created = datetime.fromtimestamp(record.created, tz=timezone.utc)
        return created.isoformat(timespec="milliseconds")


class _JsonlFileHandler(RotatingFileHandler):
    """Rotating file handler that creates its folder on first write, not on import."""

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


class _StderrHandler(logging.StreamHandler):
    """Write to whatever sys.stderr is at emit time (test runners and GUIs replace it)."""

    def __init__(self) -> None:
        super().__init__(None)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


_CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_CONSOLE_DATEFMT = "%H:%M:%S"


class _ConsoleFormatter(logging.Formatter):
    """Human-readable line: time, level, logger, message, then the `extra` fields as k=v."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [f"{k}={v}" for k, v in record.__dict__.items()
                  if k not in _STANDARD_RECORD_ATTRS and not k.startswith("_")
                  and k not in ("message", "asctime")]
        if extras:
            head, sep, tail = line.partition("\n")
            line = head + " | " + " ".join(extras) + sep + tail
        return line

_setup_lock = threading.RLock()
_installed: list[logging.Handler] = []
_active: dict[str, Any] | None = None


def _library_loggers() -> list[logging.Logger]:
    return [logging.getLogger(name) for name in LIBRARY_LOGGER_NAMES]


def _remove_installed() -> None:
    for handler in _installed:
        for target in (logger, *_library_loggers()):
            target.removeHandler(handler)
        handler.close()
    _installed.clear()


def setup_logging(
    data_dir: Path | None = None,
    *,
    console: bool = True,
    level: int = logging.INFO,
    console_stream: TextIO | None = None,
    console_level: int | None = None,
) -> Path:
    """Send app and websocket logs to <data dir>/logs/system.jsonl (+ console); return it."""
    global _active
    log_file = DataPaths(Path(data_dir) if data_dir is not None else default_data_dir()).log_file
    with _setup_lock:
        _remove_installed()
        redactor = SensitiveDataFilter()

        file_handler = _JsonlFileHandler(
            log_file,
            maxBytes=LOG_MAX_BYTES,
            backupCount=LOG_BACKUP_COUNT,
            encoding="utf-8",
            delay=True,
        )
        file_handler.setFormatter(_JsonFormatter())
        handlers: list[logging.Handler] = [file_handler]

        if console:
            console_handler = (
                logging.StreamHandler(console_stream)
                if console_stream is not None
                else _StderrHandler()
            )
            console_handler.setFormatter(_ConsoleFormatter(_CONSOLE_FORMAT, _CONSOLE_DATEFMT))
            if console_level is not None:
                console_handler.setLevel(console_level)
            handlers.append(console_handler)

        for handler in handlers:
            # On the handler, not the logger: logger filters skip records from child loggers.
            handler.addFilter(redactor)
            logger.addHandler(handler)
            for library_logger in _library_loggers():
                library_logger.addHandler(handler)
        _installed.extend(handlers)

        logger.setLevel(level)
        logger.propagate = False
        for library_logger in _library_loggers():
            library_logger.setLevel(logging.WARNING)
            library_logger.propagate = False
            # websocket-client installs a NullHandler at import; ours replace it, and every
            # handler left on the logger must carry the redaction filter
            for h in [h for h in library_logger.handlers if isinstance(h, logging.NullHandler)]:
                library_logger.removeHandler(h)

        _active = {
            "data_dir": log_file.parent.parent,
            "console": console,
            "level": level,
            "console_stream": console_stream,
        }
    return log_file


def teardown_logging() -> None:
    """Remove and close every handler setup_logging installed."""
    global _active
    with _setup_lock:
        _remove_installed()
        for library_logger in _library_loggers():
            library_logger.propagate = True
        _active = None


@contextmanager
def temporary_logging(
    data_dir: Path, *, console: bool = False, level: int = logging.INFO
) -> Iterator[Path]:
    """Log to data_dir inside the block, then put back the previous setup (for tests)."""
    with _setup_lock:
        previous = dict(_active) if _active is not None else None
    try:
        yield setup_logging(data_dir, console=console, level=level)
    finally:
        if previous is None:
            teardown_logging()
        else:
            setup_logging(**previous)


if not logger.handlers:
    setup_logging(default_data_dir())
