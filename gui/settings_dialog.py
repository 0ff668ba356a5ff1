"""Application settings: the dataclass, its JSON file, and the dialog that edits it.

`AppSettings` holds what a user may change between sessions. Its defaults are read from the
engine's own config dataclasses, and `validate()` asks those dataclasses (BrokerConfig,
BreakerConfig, MomentumParams) to judge the values, so the dialog and the engine never disagree
about what is allowed. Everything here runs on the GUI thread.
"""
from __future__ import annotations

import ast
import html
import json
import logging
import math
import os
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import platformdirs
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QColor, QDesktopServices, QFontDatabase, QGuiApplication, QPalette
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QFrame, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QMessageBox, QPushButton, QScrollArea, QSizePolicy, QSpinBox, QVBoxLayout,
                               QWidget)

from gui import theme
from gui.screen_fit import fit_window
from storage.logger import redact
from storage.paths import APP_NAME, unique_corrupt_path
from storage.state import save_json_atomic
from trading.broker import TIFS, BrokerConfig
from trading.risk import BreakerConfig
from trading.runtime.session import SessionConfig
from trading.runtime.strategies import (BUILTINS, StrategyError, load_strategy,
                                        parse_param_value, user_strategy_files)
from trading.strategy import ORDER_TYPES, EntryOrders

log = logging.getLogger("btc_laptop_agents.gui")

# what a user picks as the next session's source (a recording is replayed from History)
SOURCES = ("auto", "bitunix", "replay")

CONFIG_DIR_ENV = "BTC_LAPTOP_CONFIG_DIR"
SETTINGS_NAME = "settings.json"

# Limits the CLI (main.py) enforces too; the engine configs check everything else.
from trading.runtime.config import MAX_DURATION_MIN  # noqa: E402 (62 days, as main.py)
MAX_SPEED = 10_000.0

_BROKER = BrokerConfig()
_BREAKER = BreakerConfig()
_ENTRY = EntryOrders()
_SESSION = {f.name: f.default for f in fields(SessionConfig) if f.default is not MISSING}

# settings field -> BrokerConfig field
_BROKER_FIELDS = {"starting_balance": "starting_cash", "taker_fee_bps": "taker_fee_bps",
                  "maker_fee_bps": "maker_fee_bps", "slip_bps": "slip_bps",
                  "latency_ms": "latency_ms", "risk_per_trade": "risk_per_trade"}
BREAKER_FIELDS = tuple(f.name for f in fields(BreakerConfig))
ENTRY_FIELDS = tuple(f.name for f in fields(EntryOrders))
# the default strategy's parameters were settings fields of their own before strategies
# were files: a settings file that still has them keeps them as that strategy's parameters
_OLD_STRATEGY_FIELDS = ("fast", "slow", "hold_bars", "atr_len", "stop_atr", "target_atr",
                        "min_gap_bps")


@dataclass
class AppSettings:
    """What the user may set for the next session; defaults come from the engine's configs."""

    symbol: str = _BROKER.symbol
    starting_balance: str = str(_BROKER.starting_cash)  # USDT, kept as text so it stays exact
    risk_per_trade: float = _BROKER.risk_per_trade
    taker_fee_bps: float = _BROKER.taker_fee_bps
    maker_fee_bps: float = _BROKER.maker_fee_bps
    slip_bps: float = _BROKER.slip_bps
    latency_ms: int = _BROKER.latency_ms
    fixed_qty: str = ""  # BTC per entry, kept as text so it stays exact; "" = sized by risk
    breaker_enabled: bool = True
    max_parse_errors: int = _BREAKER.max_parse_errors
    max_reconnects: int = _BREAKER.max_reconnects
    max_rejects: int = _BREAKER.max_rejects
    window_s: float = _BREAKER.window_s
    max_consecutive_losses: int = _BREAKER.max_consecutive_losses
    max_session_loss_pct: float = _BREAKER.max_session_loss_pct
    cooldown_s: float = _BREAKER.cooldown_s
    strategy: str = "ema_momentum"  # a built-in name or path/to/file.py[:ClassName]
    strategy_params: dict = field(default_factory=dict)  # its parameters (else its defaults)
    order_type: str = _ENTRY.order_type  # how entries are sent; exits are always market
    limit_offset_bps: float = _ENTRY.limit_offset_bps
    limit_timeout_s: float = _ENTRY.limit_timeout_s
    limit_tif: str = _ENTRY.limit_tif
    source: str = _SESSION["source"]
    duration_min: float = _SESSION["duration_min"]
    speed: float = _SESSION["speed"]  # market seconds per wall second; math.inf = "max"
    replay_file: str | None = None  # None = the bundled replay day
    replay_from_start: bool = False  # a file replayed from its first row
    flatten_at_end: bool = True  # an open position is closed when the session ends

    # ---- validation ----
    def problems(self) -> list[tuple[str, str]]:
        """Return every problem as (field, reason); empty when the settings are usable."""
        out: list[tuple[str, str]] = []
        sym = self.symbol if isinstance(self.symbol, str) else ""
        if not (3 <= len(sym) <= 20 and sym.isascii() and sym.isalnum() and sym == sym.upper()):
            out.append(("symbol", "must be 3-20 upper-case letters/digits"))
        if self.source not in SOURCES:
            out.append(("source", f"must be one of {', '.join(SOURCES)}"))
        if not (_finite(self.duration_min) and 0 < self.duration_min <= MAX_DURATION_MIN):
            out.append(("duration_min", f"must be in (0, {MAX_DURATION_MIN}] minutes"))
        speed_ok = isinstance(self.speed, (int, float)) and not isinstance(self.speed, bool) and (
            self.speed == math.inf or (_finite(self.speed) and 0 < self.speed <= MAX_SPEED))
        if not speed_ok:
            out.append(("speed", f"must be in (0, {MAX_SPEED:g}] or 'max'"))
        if self.replay_file and self.source != "bitunix" and not _is_file(self.replay_file):
            out.append(("replay_file", f"no such file: {self.replay_file}"))

        broker_values: dict[str, Any] = {}
        for name, engine_name in _BROKER_FIELDS.items():
            broker_values[engine_name] = getattr(self, name)
        try:
            cash = Decimal(str(self.starting_balance).strip())
        except (InvalidOperation, ValueError):
            out.append(("starting_balance", "must be a number (USDT)"))
            broker_values.pop("starting_cash")
        else:
            broker_values["starting_cash"] = cash
        qty = _fixed_qty(self.fixed_qty)
        if qty is _BAD:
            out.append(("fixed_qty", "must be a quantity in BTC, or empty (sized by risk)"))
        else:
            broker_values["fixed_qty"] = qty
        rename = {v: k for k, v in _BROKER_FIELDS.items()} | {"fixed_qty": "fixed_qty"}
        out += _engine_problems(BrokerConfig, broker_values, rename)
        out += _engine_problems(BreakerConfig, {n: getattr(self, n) for n in BREAKER_FIELDS}, {})
        out += _engine_problems(EntryOrders, {n: getattr(self, n) for n in ENTRY_FIELDS}, {})
        out += self.strategy_problems()
        return out

    def strategy_problems(self) -> list[tuple[str, str]]:
        """The strategy file and its parameters, judged by the loader a session uses: a bad
        parameter is blamed on `param.<name>`, anything else on `strategy`."""
        if not isinstance(self.strategy, str) or not isinstance(self.strategy_params, dict):
            return [("strategy", "must be a strategy name or file, with its parameters")]
        try:
            load_strategy(self.strategy, self.strategy_params)
        except StrategyError as e:
            m = re.match(r"bad parameters?:? (\w+): (.*)", e.problem)
            if m and m.group(1) in self.strategy_params:
                return [(f"param.{m.group(1)}", m.group(2))]
            where = f" (line {e.line})" if e.line else ""
            return [("strategy", f"{e.path}{where}: {e.problem}")]
        return []

    def validate(self) -> list[str]:
        """Return every problem as "field: reason" (empty list = valid)."""
        return [f"{name}: {reason}" for name, reason in self.problems()]

    # ---- conversion ----
    def to_session_config(self, data_dir: Path) -> SessionConfig:
        """Build the engine's SessionConfig; raise ValueError listing every problem if invalid."""
        problems = self.validate()
        if problems:
            raise ValueError("invalid settings: " + "; ".join(problems))
        broker = BrokerConfig(
            starting_cash=Decimal(str(self.starting_balance).strip()),
            taker_fee_bps=self.taker_fee_bps, maker_fee_bps=self.maker_fee_bps,
            slip_bps=self.slip_bps, latency_ms=self.latency_ms,
            risk_per_trade=self.risk_per_trade, symbol=self.symbol,
            fixed_qty=_fixed_qty(self.fixed_qty))
        breaker = BreakerConfig(**{n: getattr(self, n) for n in BREAKER_FIELDS})
        entry = EntryOrders(**{n: getattr(self, n) for n in ENTRY_FIELDS})
        replay = Path(self.replay_file) if self.replay_file and self.source != "bitunix" else None
        params = load_strategy(self.strategy, self.strategy_params).params
        return SessionConfig(data_dir=Path(data_dir), duration_min=self.duration_min,
                             source=self.source, replay_file=replay, speed=self.speed,
                             symbol=self.symbol, broker=broker, breaker=breaker,
                             strategy=self.strategy, strategy_params=params, entry=entry,
                             breaker_enabled=self.breaker_enabled,
                             flatten_at_end=self.flatten_at_end,
                             # (kept for a replay source; live data has no first row)
                             replay_from_start=self.replay_from_start
                             and self.source != "bitunix")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (speed math.inf is written as "max")."""
        d = asdict(self)
        d["starting_balance"] = str(self.starting_balance)
        if isinstance(self.speed, float) and math.isinf(self.speed):
            d["speed"] = "max"
        return d

    @classmethod
    def from_dict(cls, data: dict) -> AppSettings:
        """Build settings from a dict; unknown keys are ignored, a wrong type raises ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"settings must be a JSON object, got {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        old = {k: data[k] for k in _OLD_STRATEGY_FIELDS if k in data}
        if old and "strategy_params" not in data and data.get("strategy") in (None,
                                                                                "ema_momentum"):
            data = {**data, "strategy_params": old}
        for f in fields(cls):
            if f.name in data:
                kwargs[f.name] = _coerce(f.name, data[f.name])
        return cls(**kwargs)


_INT_FIELDS = frozenset({"latency_ms", "max_parse_errors", "max_reconnects", "max_rejects",
                         "max_consecutive_losses"})
_STR_FIELDS = frozenset({"symbol", "source", "order_type", "limit_tif", "strategy"})


_BOOL_FIELDS = frozenset({"breaker_enabled", "replay_from_start", "flatten_at_end"})
_BAD = object()


def _fixed_qty(text: Any) -> Decimal | None | object:
    """The fixed entry size a settings text says: None when empty, _BAD when not a number
    (the broker's own check judges the number: positive, a multiple of the lot)."""
    text = str(text).strip()
    if not text:
        return None
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return _BAD
    return value if value.is_finite() else _BAD


def _finite(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int too large for a float
        return False


def _is_file(path: Any) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, TypeError, ValueError):  # a NUL byte, a name too long, not text
        return False


class _OutOfRange:
    """A JSON number no setting can hold (too many digits, or beyond float range)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __str__(self) -> str:
        digits = sum(ch.isdigit() for ch in self.token)
        return self.token if len(self.token) <= 24 else f"a {digits}-digit number"


# No setting needs more digits; longer ints would only cost time (int() is quadratic) and
# Python refuses past 4300 digits anyway.
_MAX_INT_DIGITS = 30


def _parse_int(token: str) -> int | _OutOfRange:
    return _OutOfRange(token) if len(token.lstrip("-")) > _MAX_INT_DIGITS else int(token)


def _parse_float(token: str) -> float | _OutOfRange:
    value = float(token)  # 1e400 -> inf, never an OverflowError
    return value if math.isfinite(value) else _OutOfRange(token)


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a number a settings file may hold")


def _coerce(name: str, value: Any) -> Any:
    """Check one JSON value's type for settings field `name` and convert it."""
    kind = type(value).__name__
    if isinstance(value, _OutOfRange):
        raise ValueError(f"{name}: number out of range ({value})")
    if name in _STR_FIELDS:
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected text, got {kind}")
        return value
    if name in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {kind}")
        return value
    if name == "fixed_qty":
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"fixed_qty: expected a quantity or empty text, got {kind}")
        return repr(value) if isinstance(value, float) else str(value)
    if name == "strategy_params":
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and not isinstance(v, (dict, list)) and v is not None
                for k, v in value.items()):
            raise ValueError(f"strategy_params: expected an object of names and values, "
                             f"got {kind}")
        for k, v in value.items():
            if isinstance(v, _OutOfRange):
                raise ValueError(f"{k}: number out of range ({v})")
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{k}: expected a finite number, got {v!r}")
        return dict(value)
    if name == "replay_file":
        if value is None or isinstance(value, str):
            return value or None
        raise ValueError(f"replay_file: expected a path or null, got {kind}")
    if name == "starting_balance":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"starting_balance: expected a number or numeric text, got {kind}")
        return repr(value) if isinstance(value, float) else str(value)
    if name == "speed" and isinstance(value, str):
        if value.strip().lower() == "max":
            return math.inf
        raise ValueError(f"speed: expected a number or 'max', got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number, got {kind}")
    if name in _INT_FIELDS:
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{name}: expected an integer, got {value!r}")
            return int(value)
        return value
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{name}: number out of range") from None
    if not math.isfinite(number):  # JSON cannot say inf; 'max' is how speed says it
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return number


def _engine_problems(cls: type, values: dict[str, Any],
                     rename: dict[str, str]) -> list[tuple[str, str]]:
    """Ask an engine config class to judge `values`; return (settings field, reason) pairs.

    Some configs stop at their first problem, so a faulty field is put back to its default and
    the class asked again, until it accepts the rest.
    """
    names = [f.name for f in fields(cls)]
    defaults = {f.name: f.default for f in fields(cls)}
    vals = dict(values)
    out: list[tuple[str, str]] = []
    for _ in range(len(names) + 1):
        try:
            cls(**vals)
            return out
        except (ValueError, TypeError) as exc:
            text = str(exc)
        text = re.sub(r"^[a-z]+: ", "", text)  # "broker: ", "strategy: " ...
        blamed_any = False
        for part in text.split("; "):
            subject = part.split(" ", 1)[0]
            if subject in names:
                culprits = [subject]
                reason = part[len(subject):].strip()
            else:
                mentioned = [n for n in names if re.search(rf"\b{re.escape(n)}\b", part)]
                culprits = [n for n in mentioned
                            if _accepts(cls, {**vals, n: defaults[n]}, part)][:1] or mentioned
                reason = part
            if not culprits:
                out.append((cls.__name__, part))
                continue
            for name in culprits:
                out.append((rename.get(name, name), reason))
                vals[name] = defaults[name]
                blamed_any = True
        if not blamed_any:
            return out
    return out


def _accepts(cls: type, vals: dict[str, Any], message: str) -> bool:
    """Return whether cls(**vals) no longer raises `message`."""
    try:
        cls(**vals)
    except (ValueError, TypeError) as exc:
        return message not in str(exc)
    return True


def settings_path() -> Path:
    """Return the settings file: $BTC_LAPTOP_CONFIG_DIR/settings.json, else the user config dir."""
    override = os.environ.get(CONFIG_DIR_ENV, "").strip()
    base = Path(override).expanduser() if override else Path(
        platformdirs.user_config_dir(APP_NAME, appauthor=False))
    return base / SETTINGS_NAME


MAX_SETTINGS_BYTES = 1_000_000  # a real settings file is about 1 kB
_MAX_ERROR_CHARS = 400  # an error may quote a value from the file: keep the banner readable


def load_settings(path: Path | None = None) -> tuple[AppSettings, str | None]:
    """Load settings; never raises. Return (settings, None) or (defaults, message) on a bad file.

    The file is untrusted input. One that does not hold valid settings, for any reason (not
    UTF-8, not JSON, NaN, numbers out of range, too deep, too big, wrong types, bad values), is
    moved aside as settings.json.corrupt (then .corrupt.1, ...) so the user's next save does not
    destroy it. One that cannot be read (permissions, I/O error) is left where it is. Either
    way the defaults are in effect and the message says why; both are logged at CRITICAL.
    GUI thread.
    """
    path = Path(path) if path is not None else settings_path()
    try:
        raw = _read_settings_bytes(path)
    except OSError as exc:
        error = _clip(f"{type(exc).__name__}: {exc}")
        log.critical("settings_unreadable", extra={"path": str(path), "error": error})
        return AppSettings(), redact(f"The settings file {path} could not be read ({error}); "
                                     f"it was left as it is and the default settings are in "
                                     f"effect.")
    if raw is None:
        return AppSettings(), None
    try:
        settings = _parse_settings(raw)
        return settings, None
    except Exception as exc:  # noqa: BLE001 - whatever the file holds, the window must open
        error = _clip(_describe(exc))
    try:
        corrupt = unique_corrupt_path(path)
        os.rename(path, corrupt)
        where = f"it was moved to {corrupt.name}"
    except OSError as exc:
        corrupt = None
        where = f"it could not be moved aside ({exc})"
    log.critical("settings_corrupt", extra={"path": str(path), "error": error,
                                            "corrupt_path": str(corrupt) if corrupt else None})
    # shown in the window's banner: the same redaction as every other output
    return AppSettings(), redact(f"The settings file {path} could not be used ({error}); "
                                 f"{where} and the default settings are in effect.")


def _read_settings_bytes(path: Path) -> bytes | None:
    """Return the file's bytes, None if there is no file; OSError only for a disk problem.

    A file over MAX_SETTINGS_BYTES comes back as MAX_SETTINGS_BYTES + 1 bytes (enough to
    refuse it) so a huge or endless file is never read whole.
    """
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return None
    with fh:
        return fh.read(MAX_SETTINGS_BYTES + 1)


def _parse_settings(raw: bytes) -> AppSettings:
    """Decode, parse and validate a settings file's bytes; raise on anything wrong."""
    if len(raw) > MAX_SETTINGS_BYTES:
        raise ValueError(f"the file is larger than {MAX_SETTINGS_BYTES // 1_000_000} MB")
    text = raw.decode("utf-8-sig")  # a BOM from a Windows editor is harmless
    data = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                      parse_constant=_refuse_constant)
    settings = AppSettings.from_dict(data)
    problems = settings.validate()
    if problems:
        raise ValueError("; ".join(problems))
    return settings


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "the JSON is nested too deeply"
    if isinstance(exc, MemoryError):
        return "the file is too large to parse"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    if type(exc) is ValueError:  # our own messages name the field; json's say where
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS - 1] + "\u2026"


def save_settings(settings: AppSettings, path: Path | None = None) -> Path:
    """Write settings atomically and return the path; raise ValueError if they are invalid."""
    problems = settings.validate()
    if problems:
        raise ValueError("invalid settings: " + "; ".join(problems))
    path = Path(path) if path is not None else settings_path()
    save_json_atomic(path, settings.to_dict())
    return path


# ------------------------------------------------------------------------------------ dialog

@dataclass(frozen=True)
class _Field:
    name: str
    label: str
    kind: str  # "text", "decimal", "float", "int", "speed", "source", "file", "qty", "bool",
    # "choice:<set>"
    unit: str
    tip: str
    maximum: int = 1_000_000  # spin boxes only: a sanity cap; the engine judges the value


_GROUPS: tuple[tuple[str, tuple[_Field, ...]], ...] = (
    ("Market & account", (
        _Field("symbol", "Symbol", "text", "",
               "Perpetual futures contract to paper-trade, e.g. BTCUSDT."),
        _Field("starting_balance", "Starting balance", "decimal", "USDT",
               "Cash of a fresh paper account in USDT. A saved account keeps its own balance "
               "unless it is reset."),
        _Field("risk_per_trade", "Risk per trade", "float", "of equity",
               "Fraction of equity lost if an entry's stop is hit, e.g. 0.005 = 0.5 %. "
               "Must be in (0, 0.5]."),
        _Field("source", "Market data", "source", "",
               "auto: try Bitunix briefly and fall back to the replay; bitunix: live public "
               "market data only; replay: the bundled day or your replay file."),
        _Field("replay_file", "Replay file", "file", "",
               "CSV or CSV.gz market data to replay. Empty = the bundled dYdX day. "
               "Not used with source bitunix."),
        _Field("replay_from_start", "Replay from", "bool", "the file's first row",
               "Replay the file from its first row (a backtest of the whole file, for as long "
               "as Duration says) instead of from a start picked at random. Not used (and "
               "kept for later) with source bitunix."),
        _Field("duration_min", "Duration", "float", "min",
               f"Session length in minutes of market-data time, in (0, {MAX_DURATION_MIN}]."),
        _Field("speed", "Replay speed", "speed", "× or max",
               "Market-data seconds per wall second for a replay (1 = real time), or 'max' "
               f"to replay as fast as possible. In (0, {MAX_SPEED:g}]."),
        _Field("flatten_at_end", "At the end", "bool", "close the open position",
               "Close an open position at the bid/ask when the session ends. Off: it stays "
               "open, as a backtest of the other engines leaves it."),
    )),
    ("Costs & execution", (
        _Field("taker_fee_bps", "Taker fee", "float", "bps",
               "Fee on market orders in basis points of notional (1 bp = 0.01 %). "
               "Bitunix VIP 0: 6 bps."),
        _Field("maker_fee_bps", "Maker fee", "float", "bps",
               "Fee on the fills of resting limit orders, in basis points of notional."),
        _Field("slip_bps", "Slippage", "float", "bps",
               "Price slip in basis points, used only when no quote exists at fill time."),
        _Field("latency_ms", "Execution latency", "int", "ms",
               "Delay from a signal to its fill in milliseconds; the fill takes the book in "
               "force when the delay has passed.", maximum=600_000),
        _Field("fixed_qty", "Fixed quantity", "qty", "BTC",
               "Every entry this many BTC instead of sizing it by the risk per trade (a "
               "reversal trades this plus the open position, in one order). Empty = sized by "
               f"risk. A multiple of the {_BROKER.lot_size} BTC lot."),
        _Field("order_type", "Entry order", "choice:order_type", "",
               "market: entries take the book (they walk its levels; taker fee). limit: "
               "entries rest at the best bid/ask ∓ the offset and fill only from trades that "
               "print through the queue ahead of them (maker fee), possibly partially. Exits "
               "are always market orders."),
        _Field("limit_offset_bps", "Limit offset", "float", "bps",
               "A limit buy rests this many bps below the best bid, a sell above the best ask "
               "(0 = join the best price; negative = cross into the book). In [-100, 1000]."),
        _Field("limit_timeout_s", "Limit timeout", "float", "s",
               "An unfilled limit entry is cancelled this many seconds after it reaches the "
               "exchange (0 = never; the session's end cancels it). In [0, 86400]."),
        _Field("limit_tif", "Time in force", "choice:limit_tif", "",
               "GTC: rests until filled, cancelled or timed out. IOC: fills what it can at "
               "once, the rest is cancelled. POST_ONLY: refused if it would take liquidity."),
    )),
    ("Circuit breaker", (
        _Field("breaker_enabled", "Breaker", "bool", "on",
               "Off: no circuit breaker, nothing blocks entries (a backtest as the other "
               "engines run it); the limits below then do nothing."),
        _Field("max_parse_errors", "Max parse errors", "int", "per window",
               "Protocol/parse errors within the window that trip the breaker."),
        _Field("max_reconnects", "Max reconnects", "int", "per window",
               "Feed reconnects within the window that trip the breaker."),
        _Field("max_rejects", "Max rejects", "int", "per window",
               "Rejected orders within the window that trip the breaker."),
        _Field("window_s", "Window", "float", "s",
               "Length of the sliding failure window in seconds of market-data time."),
        _Field("max_consecutive_losses", "Max consecutive losses", "int", "trades",
               "Losing round trips in a row that trip the breaker."),
        _Field("max_session_loss_pct", "Max session loss", "float", "%",
               "Loss in percent of the session's starting equity that stops new entries for "
               "the rest of the session."),
        _Field("cooldown_s", "Cool-down", "float", "s",
               "Seconds a tripped breaker blocks entries before it lets one through again."),
    )),
    ("Strategy", (
        _Field("strategy", "Strategy", "strategy", "",
               "The strategy that trades: a built-in, or a Python file of your own in the "
               "strategies folder (Open folder…). Its parameters follow; see the README for "
               "the Strategy protocol."),
    )),
)

_FIELDS = {f.name: f for _, group in _GROUPS for f in group}

def _style(p: theme.Palette) -> str:
    return f"""
QLineEdit[invalid="true"], QSpinBox[invalid="true"], QComboBox[invalid="true"] {{
    border: 1px solid {p.ERR_BORDER}; border-radius: 3px; background: {p.ERR_BG};
    color: {p.TEXT}; padding: 2px 3px;
}}
QLabel#unit {{ color: {p.MUTED}; }}
QLabel#problems {{ color: {p.ERR_TEXT}; background: {p.ERR_BG}; border: 1px solid {p.ERR_BORDER};
                  border-radius: 4px; padding: 6px 8px; }}
QGroupBox {{ font-weight: 600; }}
"""


_CHOICES = {"order_type": ORDER_TYPES, "limit_tif": TIFS}
CHOICE_LABELS = {"market": "Market", "limit": "Limit", "GTC": "GTC (good till cancelled)",
                 "IOC": "IOC (immediate or cancel)", "POST_ONLY": "Post-only (maker only)"}

SOURCE_LABELS = {"auto": "Auto (Bitunix, else the bundled replay)", "bitunix": "Bitunix (live)",
                 "replay": "Replay"}


def strategies_dir() -> Path:
    """The per-user folder of strategy files, beside the settings file."""
    return settings_path().parent / "strategies"


def strategy_classes(path: Path) -> list[str] | None:
    """The classes of a strategy file that define `on_candle` (read, never run); None when
    the file cannot be read or parsed."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    return [n.name for n in tree.body if isinstance(n, ast.ClassDef) and any(
        isinstance(f, ast.FunctionDef) and f.name == "on_candle" for f in n.body)]


def _param_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _float_text(v)
    return str(v)


def _float_text(v: float) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "max"
    return f"{v:g}" if abs(v) >= 1e-4 or v == 0 else repr(v)


class SettingsDialog(QDialog):
    """Edit AppSettings with as-you-type validation; OK is enabled only when all is valid.

    Accepting saves nothing: the caller reads `settings()` and saves it.
    """

    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setStyleSheet(_style(theme.current()))
        self.editors: dict[str, QWidget] = {}
        self.unit_labels: dict[str, QLabel] = {}
        self._problems: dict[str, list[str]] = {}
        self._row_height = max(QLineEdit().sizeHint().height(), QComboBox().sizeHint().height())

        columns = QHBoxLayout()
        columns.setSpacing(14)
        left, right = QVBoxLayout(), QVBoxLayout()
        labels: tuple[list[QLabel], list[QLabel]] = ([], [])
        for i, (title, group_fields) in enumerate(_GROUPS):
            box = QGroupBox(title.replace("&", "&&"))  # "&" would be a mnemonic
            form = QFormLayout(box)
            form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
            form.setHorizontalSpacing(10)
            form.setVerticalSpacing(3)
            if title == "Strategy":
                self._strategy_form = form  # the strategy's parameter rows follow its row
            for spec in group_fields:
                label = QLabel(spec.label + ":")
                labels[0 if i < 2 else 1].append(label)
                label.setToolTip(f"<b>{spec.name}</b><br>{spec.tip}")
                form.addRow(label, self._make_row(spec))
            (left if i < 2 else right).addWidget(box)
        for column in labels:  # same label width in both boxes of a column: editors line up
            width = max(label.sizeHint().width() for label in column)
            for label in column:
                label.setMinimumWidth(width)
        self._param_label_width = max(label.sizeHint().width() for label in labels[1])
        self._param_defaults: dict[str, Any] = {}
        self._initial_strategy: tuple[str, dict] = ("", {})
        left.addStretch(1)
        right.addStretch(1)
        columns.addLayout(left, 1)
        columns.addLayout(right, 1)

        self.problems_label = QLabel()
        self.problems_label.setObjectName("problems")
        self.problems_label.setWordWrap(True)
        self.problems_label.setTextFormat(Qt.TextFormat.PlainText)
        self.problems_label.setSizePolicy(QSizePolicy.Policy.Preferred,
                                          QSizePolicy.Policy.Minimum)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel
                                        | QDialogButtonBox.StandardButton.RestoreDefaults)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.restore_button = self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        self.restore_button.setToolTip("Put every field back to the engine's default value.")
        self.buttons.accepted.connect(self._on_accept)
        self.buttons.rejected.connect(self.reject)
        self.restore_button.clicked.connect(self._on_restore_defaults)

        note = QLabel("Hover over a field for its meaning and units. Changes apply to the next "
                      "session.")
        note.setObjectName("unit")

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)

        # the fields scroll when the screen is too short for them (a 1280x720 laptop with a
        # title bar and a panel); note, problems and buttons always stay in view
        body = QWidget()
        body.setLayout(columns)
        self.scroll = QScrollArea()
        self.scroll.setWidget(body)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        bar = self.scroll.verticalScrollBar().sizeHint().width()
        self.scroll.setMinimumWidth(body.sizeHint().width() + bar)
        self._body = body
        self._fit_scroll()

        root = QVBoxLayout(self)
        root.addWidget(self.scroll, 1)
        root.addWidget(note)
        root.addWidget(self.problems_label)
        root.addWidget(line)
        root.addWidget(self.buttons)

        self._load(settings)
        self._revalidate()
        self._fitted = False

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if not self._fitted:  # the whole form where it fits, else as tall as the screen lets
            self._fitted = True
            hint = self.sizeHint()
            extra = self._body.sizeHint().height() - self.scroll.height()
            fit_window(self, hint.width(), hint.height() + max(0, extra),
                       anchor=self.parentWidget(), share=0.94)
        super().showEvent(event)

    # ---- building ----
    def _make_row(self, spec: _Field) -> QWidget:
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        editor: QWidget
        if spec.kind == "source":
            editor = QComboBox()
            for key in SOURCES:  # worded as in the toolbar; the setting is the key
                editor.addItem(SOURCE_LABELS.get(key, key), key)
            editor.currentIndexChanged.connect(
                lambda _i, e=editor: self._on_source_changed(e.currentData()))
        elif spec.kind == "strategy":
            editor = QComboBox()
            editor.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            editor.setMinimumContentsLength(18)
            editor.currentIndexChanged.connect(self._on_strategy_changed)
        elif spec.kind.startswith("choice:"):
            editor = QComboBox()
            for key in _CHOICES[spec.kind.split(":", 1)[1]]:
                editor.addItem(CHOICE_LABELS.get(key, key), key)
            editor.currentIndexChanged.connect(self._on_order_type_changed)
        elif spec.kind == "bool":
            editor = QCheckBox(spec.unit)
            # the style draws the box's edge a shade darker than the window: on the dark
            # scheme that is no edge at all; from this colour it is the muted text's shade
            pal = editor.palette()
            pal.setColor(QPalette.ColorRole.Window, QColor(theme.current().MUTED).lighter(140))
            editor.setPalette(pal)
            editor.toggled.connect(self._on_toggled)
        elif spec.kind == "int":
            editor = QSpinBox()
            editor.setRange(0, spec.maximum)
            editor.setAlignment(Qt.AlignmentFlag.AlignRight)
            # no arrows: they look broken under the red "invalid" border, and every field
            # then reads alike (arrow keys and the wheel still step the value)
            editor.setButtonSymbols(QSpinBox.ButtonSymbols.NoButtons)
            editor.setGroupSeparatorShown(False)
            editor.setKeyboardTracking(True)
            editor.valueChanged.connect(self._revalidate)
        else:
            editor = QLineEdit()
            if spec.kind in ("decimal", "float", "speed", "qty"):
                editor.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if spec.kind == "file":
                editor.setPlaceholderText("bundled day")
            if spec.kind == "qty":
                editor.setPlaceholderText("by risk")
            editor.textChanged.connect(self._revalidate)
        if spec.kind in ("int", "decimal", "float", "speed", "qty"):
            editor.setFont(mono)
            editor.setMinimumWidth(110)
        editor.setToolTip(f"<b>{spec.name}</b><br>{spec.tip}")
        editor.setObjectName(spec.name)
        editor.setFixedHeight(self._row_height)  # spin boxes without arrows run short
        self.editors[spec.name] = editor
        lay.addWidget(editor, 1)
        if spec.kind == "strategy":
            folder = QPushButton("Open folder…")
            folder.setToolTip(f"Your strategy files: {strategies_dir()}. Put a .py file "
                              "implementing the Strategy protocol there; it is listed here.")
            folder.clicked.connect(self._on_open_strategies)
            self.strategies_button = folder
            lay.addWidget(folder)
        if spec.kind == "file":
            browse = QPushButton("Browse…")
            browse.setToolTip("Choose a CSV or CSV.gz market-data file.")
            browse.clicked.connect(self._on_browse)
            self.browse_button = browse
            lay.addWidget(browse)
        if spec.unit and spec.kind != "bool":  # (a check box says it in its own text)
            unit = QLabel(spec.unit)
            unit.setObjectName("unit")
            unit.setMinimumWidth(max(unit.fontMetrics().horizontalAdvance(f.unit)
                                     for f in _FIELDS.values() if f.kind != "bool") + 4)
            self.unit_labels[spec.name] = unit
            lay.addWidget(unit)
        return row

    def _load(self, s: AppSettings) -> None:
        self._initial_strategy = (s.strategy, dict(s.strategy_params))
        self._strategy_items(s.strategy)
        self._build_params(s.strategy, s.strategy_params)
        for name, editor in list(self.editors.items()):
            if name.startswith("param.") or name == "strategy":
                continue
            value = getattr(s, name)
            if isinstance(editor, QComboBox):
                idx = editor.findData(str(value))
                editor.setCurrentIndex(idx if idx >= 0 else 0)
            elif isinstance(editor, QSpinBox):
                editor.setValue(int(value))
            elif isinstance(editor, QCheckBox):
                editor.setChecked(bool(value))
            elif isinstance(editor, QLineEdit):
                if value is None:
                    editor.setText("")
                elif isinstance(value, float):
                    editor.setText(_float_text(value))
                else:
                    editor.setText(str(value))
        self._on_source_changed(self.editors["source"].currentData())
        self._on_order_type_changed()
        self._on_toggled()

    # ---- reading ----
    def _read(self) -> tuple[AppSettings, dict[str, str]]:
        """Build settings from the editors; return them and the fields that did not parse."""
        values: dict[str, Any] = {}
        bad: dict[str, str] = {}
        params: dict[str, Any] = {}
        for name, editor in self.editors.items():
            if name.startswith("param."):
                key = name[6:]
                default = self._param_defaults.get(key)
                try:
                    params[key] = parse_param_value(key, editor.text().strip(), default)
                except ValueError as e:
                    bad[name] = str(e).split(": ", 1)[-1]
                    params[key] = default
                continue
            spec = _FIELDS[name]
            if isinstance(editor, QComboBox):
                values[name] = editor.currentData()
            elif isinstance(editor, QSpinBox):
                values[name] = editor.value()
            elif isinstance(editor, QCheckBox):
                values[name] = editor.isChecked()
            else:
                text = editor.text().strip()
                if spec.kind == "text":
                    values[name] = text.upper()
                elif spec.kind == "file":
                    values[name] = text or None
                elif spec.kind in ("decimal", "qty"):
                    values[name] = text
                elif spec.kind == "speed" and text.lower() == "max":
                    values[name] = math.inf
                else:
                    try:
                        values[name] = float(text)
                    except ValueError:
                        bad[name] = ("must be a number or 'max'" if spec.kind == "speed"
                                     else "must be a number")
        defaults = AppSettings()
        for name in bad:
            if not name.startswith("param."):
                values[name] = getattr(defaults, name)
        values["strategy_params"] = params
        return AppSettings(**values), bad

    def settings(self) -> AppSettings:
        """Return the AppSettings shown in the editors (may be invalid; see validate())."""
        return self._read()[0]

    # ---- validation ----
    def _revalidate(self, *_: object) -> None:
        settings, bad = self._read()
        problems: dict[str, list[str]] = {name: [reason] for name, reason in bad.items()}
        for name, reason in settings.problems():
            if name not in bad:
                problems.setdefault(name, []).append(reason)
        self._problems = problems
        for name, editor in self.editors.items():
            invalid = name in problems
            if bool(editor.property("invalid")) != invalid:
                editor.setProperty("invalid", invalid)
                editor.style().unpolish(editor)
                editor.style().polish(editor)
        lines = []
        for name in self.editors:
            shown = name[6:] if name.startswith("param.") else name
            for reason in problems.get(name, []):
                lines.append(f"{shown} {reason}" if reason.startswith(("must", "need")) else
                             f"{shown}: {reason}")
        for name, reasons in problems.items():  # cross-field problems without an editor
            if name not in self.editors:
                lines += [f"{name}: {r}" for r in reasons]
        self.problems_label.setText("\n".join(lines))
        self.problems_label.setVisible(bool(lines))
        self.ok_button.setEnabled(not lines)
        self.ok_button.setToolTip("Fix the fields marked in red first." if lines else "")

    def problems(self) -> dict[str, list[str]]:
        """Return the current problems per field (what the red borders show)."""
        return {k: list(v) for k, v in self._problems.items()}

    # ---- slots ----
    def _on_toggled(self, *_: object) -> None:
        """The breaker's limits mean something only with the breaker on: greyed out else."""
        if "cooldown_s" not in self.editors:
            return  # still building the dialog
        on = self.editors["breaker_enabled"].isChecked()
        for name in BREAKER_FIELDS:
            self.editors[name].setEnabled(on)
        self._revalidate()

    def _on_source_changed(self, source: str) -> None:
        live = source == "bitunix"
        self.editors["replay_file"].setEnabled(not live)
        self.editors["replay_from_start"].setEnabled(not live)
        if hasattr(self, "browse_button"):
            self.browse_button.setEnabled(not live)
        self.editors["speed"].setEnabled(not live)
        self._revalidate()

    def _on_order_type_changed(self, *_: object) -> None:
        """The limit fields mean something only for limit entries: greyed out otherwise."""
        if not all(n in self.editors for n in ("order_type", "limit_offset_bps",
                                                "limit_timeout_s", "limit_tif")):
            return  # still building the dialog
        limit = self.editors["order_type"].currentData() == "limit"
        for name in ("limit_offset_bps", "limit_timeout_s", "limit_tif"):
            self.editors[name].setEnabled(limit)
        self._revalidate()

    # ---- the strategy and its parameters ----
    def _strategy_items(self, current: str) -> None:
        combo = self.editors["strategy"]
        combo.blockSignals(True)
        combo.clear()
        for name in BUILTINS:
            combo.addItem(f"{name} (built-in)", name)
        for path in user_strategy_files(strategies_dir()):
            found = strategy_classes(path)
            for cls in found or ():
                combo.addItem(f"{path.name}: {cls}", f"{path}:{cls}")
            if not found:
                why = "does not parse" if found is None else "no strategy class"
                combo.addItem(f"{path.name} ({why})", str(path))
        if current and combo.findData(current) < 0:
            combo.addItem(current, current)
        combo.setCurrentIndex(max(0, combo.findData(current)))
        combo.blockSignals(False)

    def _build_params(self, ref: str, values: dict) -> None:
        """One row per declared parameter of the strategy `ref` (none if it cannot load)."""
        form = self._strategy_form
        while form.rowCount() > 1:
            form.removeRow(1)
        for name in [n for n in self.editors if n.startswith("param.")]:
            del self.editors[name]
            self.unit_labels.pop(name, None)
        try:
            spec = load_strategy(ref, build=False)  # rows even when it refuses its defaults
        except StrategyError:
            self._param_defaults = {}
            self._fit_scroll()
            return  # the strategy row says what is wrong
        self._param_defaults = dict(spec.declared)
        helps = getattr(spec.cls, "param_help", {})
        helps = helps if isinstance(helps, dict) else {}
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        for name, default in spec.declared.items():
            words = name.replace("_", " ")
            label_text, unit_text = words[:1].upper() + words[1:], ""
            tip = "The strategy file does not describe it (its param_help names none)."
            h = helps.get(name)
            if isinstance(h, (tuple, list)) and len(h) == 3 and all(isinstance(x, str)
                                                                      for x in h):
                label_text, unit_text, tip = h
            tip = f"<b>{name}</b> (default {_param_text(default)})<br>{html.escape(tip)}"
            label = QLabel(label_text + ":")
            label.setMinimumWidth(self._param_label_width)
            label.setToolTip(tip)
            row = QWidget()
            lay = QHBoxLayout(row)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.setSpacing(6)
            editor = QLineEdit(_param_text(values.get(name, default)))
            editor.setObjectName(f"param.{name}")
            editor.setToolTip(tip)
            editor.setFixedHeight(self._row_height)
            if not isinstance(default, str):
                editor.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                editor.setFont(mono)
                editor.setMinimumWidth(110)
            editor.textChanged.connect(self._revalidate)
            lay.addWidget(editor, 1)
            unit = QLabel(unit_text)
            unit.setObjectName("unit")
            unit.setMinimumWidth(max(unit.fontMetrics().horizontalAdvance(f.unit)
                                     for f in _FIELDS.values() if f.kind != "bool") + 4)
            lay.addWidget(unit)
            self.editors[f"param.{name}"] = editor
            self.unit_labels[f"param.{name}"] = unit
            form.addRow(label, row)
        self._fit_scroll()

    def _fit_scroll(self) -> None:
        """The whole form stays in view where the screen has room for it: the dialog grows
        (a problem line, more parameter rows) instead of the form scrolling."""
        body = getattr(self, "_body", None)
        if body is None:
            return
        body.adjustSize()
        screen = self.screen() or QGuiApplication.primaryScreen()
        room = screen.availableGeometry().height() * 0.94 if screen is not None else 10_000
        extras = 160  # the note, the problem line's room, the buttons and the margins
        self.scroll.setMinimumHeight(int(max(240, min(body.sizeHint().height(),
                                                       room - extras))))

    def _on_strategy_changed(self, *_: object) -> None:
        ref = self.editors["strategy"].currentData() or ""
        first, params = self._initial_strategy
        self._build_params(ref, params if ref == first else {})
        self._revalidate()

    def _on_open_strategies(self) -> None:
        folder = strategies_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            QMessageBox.warning(self, "Strategies folder", f"{folder}: {e.strerror or e}")
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
        self._strategy_items(self.editors["strategy"].currentData() or "")

    def _on_browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Replay file", "",
                                              "Market data (*.csv *.csv.gz);;All files (*)")
        if path:
            self.editors["replay_file"].setText(path)

    def _on_restore_defaults(self) -> None:
        self._load(AppSettings())
        self._revalidate()

    def _on_accept(self) -> None:
        self._revalidate()
        if self.ok_button.isEnabled():
            self.accept()
