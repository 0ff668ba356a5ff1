"""JSON-lines logging with secret redaction on every handler, and the redaction itself.

Importing this module makes the app logger usable at once: if nothing has configured it yet,
it logs to <data dir>/logs/system.jsonl and to stderr. Call setup_logging() to choose another
data dir or to silence the console.

redact(text) / redact_value(value) are the one redaction of the app: every log handler, the
run reports and the error text main.py prints go through them.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
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
#
# One redaction, applied on every way out (log handlers, reports, error text):
#   1. exact secret values registered with add_secret() or read from SECRET_ENV_VARS;
#   2. credentials named in the text: key=value forms, Authorization headers, Bearer/Basic/token;
#   3. long key-like runs that nothing names: [A-Za-z0-9]{32,} with letters and digits (or 40+),
#      and base64-like runs with '+' or '/' whose characters look random.
# Rule 3 spares the project's own identifiers: values given to register_identifier(), the
# generated run-id form (and "<run id>-<n>" order ids), and hex digests under hash-named fields.
# Rules 1 and 2 apply to everything, identifiers included.

_KEY_NAMES = (
    r"aws[_-]?secret[_-]?access[_-]?key|aws[_-]?access[_-]?key[_-]?id"
    r"|api[_-]?key|api[_-]?secret|secret[_-]?key|client[_-]?secret"
    r"|access[_-]?token|refresh[_-]?token|auth[_-]?token|private[_-]?key"
    r"|passphrase|password|passwd|pwd|secret|signature|sign|token|key"
)
# The name ends where a separator starts: "tokens=3", "signal=1", "key_id=2" are not secrets.
_SEP = r"\\?[\"']?[ \t]*[:=][ \t]*"
_BARE_STOP = r"\s,;&\"'}\])\\"


def _value_pattern(p: str, bare: str) -> str:
    return (
        rf"(?P<{p}red>\[REDACTED\][^{_BARE_STOP}]*)"  # redacted before (another handler)
        rf"|(?P<{p}dq>\"(?:[^\"\\]|\\.)*\")"  # "double quoted"
        rf"|(?P<{p}sq>'(?:[^'\\]|\\.)*')"  # 'single quoted'
        rf"|(?P<{p}esc>\\[\"']).*?(?P={p}esc)"  # \"quoted inside a JSON string\"
        rf"|(?P<{p}open>\\?[\"'])[^\"'\r\n]*"  # a quote never closed: to the end of the line
        rf"|(?P<{p}bare>{bare})"
    )


_CRED = r"[A-Za-z0-9._~+/=-]"
_REDACT_RE = re.compile(
    # Authorization: <anything up to the end of the line or the closing quote>
    r"(?P<akey>(?<![A-Za-z0-9])authorization)(?P<asep>" + _SEP + r")(?P<avalue>"
    + _value_pattern("a", r"(?:[^\r\n\"'\\]|\\(?![\"'\\]))+")
    + r")"
    # <name><sep><value>
    r"|(?P<key>(?<![A-Za-z0-9])(?:" + _KEY_NAMES + r"))(?P<sep>" + _SEP + r")(?P<value>"
    + _value_pattern("k", f"[^{_BARE_STOP}]+")
    + r")"
    # auth schemes; "basic" and "token" are English words, so their value must look like one
    r"|(?P<scheme>(?<![A-Za-z0-9])(?:bearer[ \t]+"
    r"|basic[ \t]+(?=" + _CRED + r"{8})(?=[A-Za-z._~-]*(?:[0-9+=]|[a-z][A-Z]))"
    r"|token[ \t]+(?=" + _CRED + r"{8})(?=[A-Za-z._~+/=-]*[0-9])))"
    r"(?P<svalue>[A-Za-z0-9]" + _CRED + r"*)",
    re.IGNORECASE | re.ASCII,
)
# Every name above contains one of these cores; they are searched for in the lowered text.
_NAME_CORE_RE = re.compile(r"key|secret|token|pass|pwd|sign|auth|bearer|basic")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_-")
_MAX_NAME_PREFIX = 24  # "aws_secret_access_" is the longest part of a name before its core

_LONG_RE = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{32,}={0,2}")
_ALNUM_RUN_RE = re.compile(r"[A-Za-z0-9]+")
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_HASH_CONTEXT_RE = re.compile(
    r"(?:sha1|sha224|sha256|sha384|sha512|md5|hash|digest|checksum)[\"']?[ \t]*[:=][ \t]*[\"']?$",
    re.IGNORECASE,
)
# new_run_id(): "%Y%m%d-%H%M%S-" + 6 hex; the broker's order ids add "-<n>".
_PROJECT_ID_RE = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}(?:-\d+)?")
_ORDER_SUFFIX_RE = re.compile(r"(.+)-\d+")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")
_ID_SEPS = frozenset("._:-")
_WORD_CHARS = _ID_CHARS | {"~"}
_MAX_SCAN = 256  # how far to look around a run for the word it sits in

# base64-like: a 32-char window is random-looking if it has upper and lower case (and digits,
# or else even more case changes), changes character class often and has few '/' (a path
# has one every few characters).
_WINDOW = 32
_WINDOW_MIN_CHANGES = 10
_WINDOW_MIN_CHANGES_NO_DIGIT = 14
_WINDOW_MAX_SLASHES = 3

_SENSITIVE_KEY_RE = re.compile(
    r"(?:^|[^a-z0-9])(?:" + _KEY_NAMES + r"|authorization)$", re.IGNORECASE
)
_HASH_KEY_RE = re.compile(r"(?:^|[^a-z0-9])(?:sha1|sha256|sha512|hash|digest)$", re.IGNORECASE)

_PASSTHROUGH_TYPES = (bool, int, float, Decimal)

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD_RECORD_ATTRS = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}
_MAX_DEPTH = 8
_TRACEBACK_FORMATTER = logging.Formatter()

# Registries: written under the lock, read lock-free (each global is swapped whole).
_registry_lock = threading.Lock()
# (secret values, one pattern matching any of them) - one tuple, so a reader never pairs a
# new value list with an old pattern
_secrets: tuple[tuple[str, ...], re.Pattern[str] | None] = ((), None)
_identifiers: frozenset[str] = frozenset()


def _usable_secret(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if len(value) >= MIN_SECRET_LEN else None


def add_secret(value: str | None) -> None:
    """Register a secret value that is redacted everywhere from now on (any thread)."""
    global _secrets
    secret = _usable_secret(value)
    if secret is None or secret in _secrets[0]:
        return
    with _registry_lock:
        if secret in _secrets[0]:
            return
        values = (*_secrets[0], secret)
        # Longest first so a secret containing another is replaced whole.
        ordered = sorted(values, key=len, reverse=True)
        _secrets = (values, re.compile("|".join(map(re.escape, ordered))))


def _load_env_secrets() -> None:
    for var in SECRET_ENV_VARS:
        add_secret(os.environ.get(var))


def register_identifier(value: str | None) -> None:
    """Allow-list one of the app's own ids (run id, order id, file hash) for the long-token rule.

    Any thread. Exact occurrences are then never taken for a key-like token; named forms
    (``token=<id>``, ``Bearer <id>``) and registered secrets are still redacted. Registering a
    run id covers its order ids ``<run id>-<n>`` too.
    """
    global _identifiers
    if not isinstance(value, str):
        return
    # An id is matched against the [A-Za-z0-9._:-] word around a long run; split anything else.
    pieces = {p for p in re.split(r"[^A-Za-z0-9._:-]+", value.strip()) if p}
    if not pieces or pieces <= _identifiers:
        return
    with _registry_lock:
        _identifiers = _identifiers | pieces


def _path_context(text: str, pos: int) -> bool:
    """Is the word that starts the match at pos a path component (after '/' or '\\')?"""
    i, low = pos, max(0, pos - _MAX_SCAN)
    while i > low and text[i - 1] in _WORD_CHARS:
        i -= 1
    return i > 0 and text[i - 1] in "/\\"


def _path_cut(text: str, key_start: int, value: str) -> int | None:
    """Where a bare value ends when its name sits in a path (at the next '/'), else None."""
    cut = value.find("/")
    if cut < 0 or not _path_context(text, key_start):
        return None
    return cut


def _mask_value(m: re.Match[str], p: str) -> tuple[str, int]:
    """Return the masked value and the position in m.string where it ends."""
    esc = m.group(p + "esc")
    if esc:
        return f"{esc}{REDACTED}{esc}", m.end()
    if m.group(p + "dq") is not None:
        return f'"{REDACTED}"', m.end()
    if m.group(p + "sq") is not None:
        return f"'{REDACTED}'", m.end()
    if m.group(p + "open") is not None:
        return m.group(p + "open") + REDACTED, m.end()
    group = p + "red" if m.group(p + "red") is not None else p + "bare"
    cut = _path_cut(m.string, m.start(), m.group(group))
    if cut is None:
        return REDACTED, m.end()
    # /data/token=abc/x.csv: the value is "abc"; what follows the '/' is scanned again
    value_start = m.start(group)
    return (REDACTED if cut else ""), value_start + cut


def _mask_named(m: re.Match[str]) -> tuple[str, int]:
    """Return the replacement for a named-credential match and where in m.string it ends."""
    if m.group("akey") is not None:
        masked, end = _mask_value(m, "a")
        return m.group("akey") + m.group("asep") + masked, end
    if m.group("key") is not None:
        masked, end = _mask_value(m, "k")
        return m.group("key") + m.group("sep") + masked, end
    scheme, value = m.group("scheme"), m.group("svalue")
    cut = _path_cut(m.string, m.start(), value)
    if cut is None:
        return scheme + REDACTED, m.end()
    # In a path the value ends at '/': judge the part before it on its own.
    head = value[:cut]
    kept = head if _REDACT_RE.fullmatch(scheme + head) is None else REDACTED
    return scheme + kept, m.start("svalue") + cut


def _redact_named(text: str) -> str:
    """Apply the named-credential rules (_REDACT_RE) to text, left to right."""
    out: list[str] = []
    pos = 0
    lower = text.lower()
    if len(lower) != len(text):  # a few non-ASCII letters change length when lowered
        while (m := _REDACT_RE.search(text, pos)) is not None:
            masked, end = _mask_named(m)
            out += (text[pos : m.start()], masked)
            pos = end
    else:
        # Searching with _REDACT_RE would run an IGNORECASE alternation at every position
        # (~20 us for a log line); instead find the names' cores in the lowered text and try
        # the pattern at the starts of the word around each.
        for hit in _NAME_CORE_RE.finditer(lower):
            h = hit.start()
            if h < pos:
                continue
            ws, low = h, max(pos, h - _MAX_NAME_PREFIX)
            while ws > low and lower[ws - 1] in _NAME_CHARS:
                ws -= 1
            for start in [ws] + [i + 1 for i in range(ws, h) if lower[i] in "_-"]:
                m = _REDACT_RE.match(text, start)
                if m is not None:
                    masked, end = _mask_named(m)
                    out += (text[pos : m.start()], masked)
                    pos = end
                    break
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _is_identifier(text: str, start: int, end: int) -> bool:
    """Is text[start:end] part of a registered id or a project-id form in the word around it?"""
    ids = _identifiers
    n = len(text)
    ws, low = start, max(0, start - _MAX_SCAN)
    while ws > low and text[ws - 1] in _ID_CHARS:
        ws -= 1
    we, high = end, min(n, end + _MAX_SCAN)
    while we < high and text[we] in _ID_CHARS:
        we += 1
    if ws == start and we == end:
        return text[start:end] in ids
    # An id starts at the word's start or after a separator, and ends likewise.
    starts = [ws] + [i + 1 for i in range(ws, start) if text[i] in _ID_SEPS]
    ends = [we] + [i for i in range(end, we) if text[i] in _ID_SEPS]
    for a in starts[-8:] if len(starts) > 8 else starts:
        for b in ends[:8]:
            word = text[a:b]
            if word in ids or _PROJECT_ID_RE.fullmatch(word):
                return True
            order = _ORDER_SUFFIX_RE.fullmatch(word)
            if order is not None and order.group(1) in ids:
                return True
    return False


def _hash_context(text: str, start: int) -> bool:
    return _HASH_CONTEXT_RE.search(text, max(0, start - 48), start) is not None


def _redact_run(text: str, start: int, end: int, hash_field: bool) -> bool:
    """Decide whether the alphanumeric run text[start:end] is a key-like token."""
    n = end - start
    if n < 32:
        return False
    run = text[start:end]
    if n < 40 and (run.isdigit() or run.isalpha()):
        return False
    if (hash_field or _hash_context(text, start)) and _HEX_RE.fullmatch(run):
        return False
    return not _is_identifier(text, start, end)


def _char_class(c: str) -> int:
    if "a" <= c <= "z":
        return 1
    if "A" <= c <= "Z":
        return 2
    if "0" <= c <= "9":
        return 3
    return 0


def _dense_span(piece: str) -> tuple[int, int] | None:
    """Return (first start, last end) of piece's random-looking 32-char windows, if any."""
    n = len(piece)
    if n < _WINDOW:
        return None
    classes = [_char_class(c) for c in piece]
    # prefix counts: lower, upper, digit, '/', class changes between neighbours
    counts = [[0] * (n + 1) for _ in range(4)]
    changes = [0] * n
    for i, k in enumerate(classes):
        for j in range(4):
            counts[j][i + 1] = counts[j][i]
        if k:
            counts[k - 1][i + 1] += 1
        elif piece[i] == "/":
            counts[3][i + 1] += 1
        if i:
            a = classes[i - 1]
            changes[i] = changes[i - 1] + (1 if a and k and a != k else 0)
    lower, upper, digit, slash = counts
    first = last = -1
    for i in range(n - _WINDOW + 1):
        j = i + _WINDOW
        if (
            lower[j] > lower[i]
            and upper[j] > upper[i]
            and slash[j] - slash[i] <= _WINDOW_MAX_SLASHES
            and changes[j - 1] - changes[i]
            >= (_WINDOW_MIN_CHANGES if digit[j] > digit[i] else _WINDOW_MIN_CHANGES_NO_DIGIT)
        ):
            if first < 0:
                first = i
            last = j
    return None if first < 0 else (first, last)


def _redact_runs(text: str, start: int, end: int, hash_field: bool) -> str:
    """Return text[start:end] with its key-like alphanumeric runs redacted."""
    return "".join(_iter_runs(text, start, end, hash_field))


def _iter_runs(text: str, start: int, end: int, hash_field: bool) -> Iterator[str]:
    pos = start
    for m in _ALNUM_RUN_RE.finditer(text, start, end):
        if _redact_run(text, m.start(), m.end(), hash_field):
            yield text[pos : m.start()]
            yield REDACTED
            pos = m.end()
    yield text[pos:end]


def _redact_piece(text: str, start: int, end: int, hash_field: bool) -> str:
    """Redact a base64-like token and key-like runs in text[start:end] ([A-Za-z0-9+/=] only).

    Path segments before the first and after the last random-looking window are kept (a
    token inside /data/runs/<token>/x keeps /data/runs/ and /x); the token between goes whole.
    """
    piece = text[start:end]
    span = _dense_span(piece)
    if span is None:
        return _redact_runs(text, start, end, hash_field)
    head_end = piece.rfind("/", 0, span[0] + 1) + 1
    tail_start = piece.find("/", span[1] - 1)
    tail_start = end if tail_start < 0 else start + tail_start
    return (
        _redact_runs(text, start, start + head_end, hash_field)
        + REDACTED
        + _redact_runs(text, tail_start, end, hash_field)
    )


def _mask_long(m: re.Match[str], hash_field: bool) -> str:
    text, start, token = m.string, m.start(), m.group()
    core_end = m.end() - (len(token) - len(token.rstrip("=")))
    if "+" not in token and "/" not in token:
        return REDACTED if _redact_run(text, start, core_end, hash_field) else token
    # Keep the app's own ids whole: split the token around them, judge the pieces apart.
    out: list[str] = []
    pos = start
    for run in _ALNUM_RUN_RE.finditer(text, start, core_end):
        # any run may be where an id starts ("my" of my-own-run-id-...: the token stops at "-")
        if _is_identifier(text, run.start(), run.end()):
            if run.start() > pos:
                out.append(_redact_piece(text, pos, run.start(), hash_field))
            out.append(run.group())
            pos = run.end()
    if pos < m.end():
        out.append(_redact_piece(text, pos, m.end(), hash_field))
    return "".join(out)


def _mask_long_text(m: re.Match[str]) -> str:
    return _mask_long(m, False)


def _mask_long_hash(m: re.Match[str]) -> str:
    return _mask_long(m, True)


# credentials recognisable by their shape alone, whatever surrounds them: JWTs, vendor key
# prefixes (Stripe, Google, GitHub, Slack, AWS access key ids), a password in a URL, a secret
# passed as a command-line flag's value, "password <value>"
_SHAPED_RE = re.compile(
    r"(?P<jwt>\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
    r"|(?P<vendor>\b(?:[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|AIza[0-9A-Za-z_-]{30,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|AKIA[0-9A-Z]{16})\b)"
    r"|(?P<urlpw>(?<=://)[^/\s:@]{1,200}:)(?P<pw>[^/\s@]{1,200})(?=@)"
    r"|(?P<flag>--(?:[a-z]+-)*(?:key|secret|token|password|passwd|passphrase|signature)"
    r"(?:-[a-z]+)*[ =])(?P<flagval>[^\s\[]+)"
    r"|(?P<pwword>\b(?:password|passwd|passphrase)\s+)(?P<pwval>(?=\S*\d)[^\s,;\[]{6,})",
    re.IGNORECASE)


def _mask_shaped(m: re.Match[str]) -> str:
    if m.group("urlpw"):
        return m.group("urlpw") + REDACTED
    if m.group("flag"):
        return m.group("flag") + REDACTED
    if m.group("pwword"):
        return m.group("pwword") + REDACTED
    return REDACTED


def _redact(text: str, hash_field: bool = False) -> str:
    original = text
    values, secret_re = _secrets
    if secret_re is not None and any(s in text for s in values):
        text = secret_re.sub(REDACTED, text)
    text = _SHAPED_RE.sub(_mask_shaped, text)
    text = _redact_named(text)
    if len(text) >= 32:
        text = _LONG_RE.sub(_mask_long_hash if hash_field else _mask_long_text, text)
    return original if text == original else text


def redact(text: str) -> str:
    """Return text with every secret replaced by [REDACTED] (any thread; never raises on str)."""
    if not isinstance(text, str):
        text = str(text)
    return _redact(text)


def redact_value(value: Any, *, max_depth: int = _MAX_DEPTH) -> Any:
    """Return value with every string in it redacted, recursing into containers (any thread).

    Values under sensitive keys ("api_key", "password", ...) become [REDACTED] whole; numbers,
    bools, None and Decimals pass unchanged; other objects are kept unless their text held a
    secret. Hex digests under hash-named keys ("file_sha256", "hash") are not key-like tokens.
    """
    return _redact_value(value, 0, False, max_depth)


def _redact_value(value: Any, depth: int, hash_field: bool, max_depth: int) -> Any:
    if value is None or isinstance(value, _PASSTHROUGH_TYPES):
        return value
    if isinstance(value, str):
        return _redact(value, hash_field)
    if depth >= max_depth:
        return "[TRUNCATED]"
    if isinstance(value, Mapping):
        return {
            _redact_value(k, depth + 1, False, max_depth): _redact_field(
                k, v, depth + 1, hash_field, max_depth
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_redact_value(v, depth + 1, hash_field, max_depth) for v in value]
        if isinstance(value, list):
            return items
        if isinstance(value, tuple):
            return tuple(items)
        return frozenset(items) if isinstance(value, frozenset) else set(items)
    if isinstance(value, (bytes, bytearray)):
        return _redact(bytes(value).decode("utf-8", errors="replace"), hash_field)
    try:
        text = str(value)
    except Exception:
        return "[UNPRINTABLE]"
    redacted = _redact(text, hash_field)
    # Keep the object (a Path, an enum ...) unless its text carried a secret.
    return value if redacted == text else redacted


def _redact_field(key: Any, value: Any, depth: int, hash_field: bool, max_depth: int) -> Any:
    if isinstance(key, str):
        if value is not None and _SENSITIVE_KEY_RE.search(key):
            return REDACTED
        if _HASH_KEY_RE.search(key):
            hash_field = True
    return _redact_value(value, depth, hash_field, max_depth)


_load_env_secrets()


class SensitiveDataFilter(logging.Filter):
    """Redact secrets from a record's message, args, extra fields, traceback and stack."""

    def __init__(self, name: str = "") -> None:
        """Register the secret values in the environment (SECRET_ENV_VARS) at creation."""
        super().__init__(name)
        _load_env_secrets()

    def redact_text(self, text: str) -> str:
        """Return redact(text)."""
        return redact(text)

    def redact_value(self, value: Any, depth: int = 0) -> Any:
        """Return redact_value(value), counting depth levels already descended."""
        return _redact_value(value, depth, False, _MAX_DEPTH)

    def _redact_field(self, key: Any, value: Any, depth: int = 0) -> Any:
        return _redact_field(key, value, depth, False, _MAX_DEPTH)

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

    _failed_writes = 0

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """A log line the disk refused: one plain line on stderr, not logging's traceback.

        The session itself reports the disk error (its own writes fail the same way); the log
        must not bury that message under a traceback per record.
        """
        self._failed_writes += 1
        if self._failed_writes == 1:
            import errno as _errno
            exc = sys.exc_info()[1]
            code = getattr(exc, "errno", None)
            why = {_errno.ENOSPC: "disk full", _errno.EROFS: "read-only file system",
                   _errno.EACCES: "permission denied"}.get(code, type(exc).__name__)
            try:
                sys.stderr.write(redact(f"log: cannot write {self.baseFilename} ({why}); "
                                        f"further log lines to it are lost until it "
                                        f"can\n"))
            except Exception:  # noqa: BLE001 - nowhere left to say it
                pass


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
