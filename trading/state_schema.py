"""The state file's schema: every value read back is checked as strictly as the same value typed.

Pure module (no I/O). `check_state_doc(doc, broker_config)` returns every problem found as
"field.path: reason"; an empty list means the document may be trusted. A document with any
problem is corrupt as a whole: the caller moves it aside and rebuilds the account from the
journal (the truth for fills and funding).

Bounds that are not user settings:
- |position qty| <= MAX_POSITION_QTY and a multiple of the lot size; its notional at the average
  price within NOTIONAL_SLACK x max_leverage x max(cash, starting cash) (an entry is capped at
  max_leverage x equity; the slack allows for the fees and PnL since).
- money amounts (cash, realized, fees, funding) within +-MAX_MONEY, prices in (0, MAX_PRICE].
"""
from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

MAX_MONEY = Decimal("1e15")
MAX_PRICE = 1e9
MAX_POSITION_QTY = Decimal("100000")
NOTIONAL_SLACK = Decimal("2")
MAX_TS = 253_402_300_799_999  # epoch ms of 9999-12-31: the last instant datetime can show
MAX_COUNT = 10**12
MAX_LIST = 100_000
MAX_TEXT = 10_000
STATUSES = ("running", "finished", "error")
SOURCES = ("auto", "bitunix", "replay", "recording")
BREAKER_STATES = ("closed", "open", "half_open")
ORDER_REASONS = ("entry", "exit", "stop", "target", "flatten")
RUN_ID_RE = re.compile(r"[A-Za-z0-9_-]{6,64}")
_MISSING = object()
_SKIP = object()
_DECIMAL_TEXT = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,4})?")


class StateInvalid(ValueError):
    """The state file parses but cannot be trusted; the message lists every problem."""


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, path: str, why: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(f"{path}: {why}")

    def fetch(self, d, key: str, path: str, optional: bool, default=_MISSING):
        """Return the value to check, or _SKIP when there is none (missing is a problem unless
        optional or defaulted; None passes for optional fields)."""
        v = d.get(key, _MISSING) if isinstance(d, dict) else _MISSING
        if v is _MISSING and default is not _MISSING:
            return _SKIP
        if v is _MISSING or (optional and v is None):
            if not optional:
                self.bad(path, "missing")
            return _SKIP
        return v

    # ---- typed getters: return the value, or None after recording a problem ----
    def obj(self, d, key: str, path: str, optional: bool = False) -> dict | None:
        v = self.fetch(d, key, path, optional)
        if v is _SKIP:
            return None
        if not isinstance(v, dict):
            self.bad(path, f"expected an object, got {_kind(v)}")
            return None
        return v

    def lst(self, d, key: str, path: str, optional: bool = True, cap: int = MAX_LIST):
        v = d.get(key, _MISSING) if isinstance(d, dict) else _MISSING
        if v is _MISSING or v is None:
            if not optional:
                self.bad(path, "missing")
            return []
        if not isinstance(v, list):
            self.bad(path, f"expected a list, got {_kind(v)}")
            return []
        if len(v) > cap:
            self.bad(path, f"{len(v)} entries (more than {cap})")
            return []
        return v

    def dec(self, d, key: str, path: str, lo: Decimal | None = None, hi: Decimal | None = None,
            optional: bool = False) -> Decimal | None:
        v = self.fetch(d, key, path, optional)
        if v is _SKIP:
            return None
        # money is written as text; an int is accepted, a float or anything else is not exact
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            self.bad(path, f"expected a decimal number as text, got {_kind(v)}")
            return None
        if isinstance(v, str) and len(v) > 64:
            self.bad(path, f"number text of {len(v)} characters")
            return None
        text = str(v)
        if not _DECIMAL_TEXT.fullmatch(text):  # Decimal() alone also takes "1_0", " 5", "NaN"
            self.bad(path, f"not a number: {_short(v)}")
            return None
        try:
            x = Decimal(text)
        except (InvalidOperation, ValueError):
            self.bad(path, f"not a number: {_short(v)}")
            return None
        if not x.is_finite():
            self.bad(path, f"not finite: {_short(v)}")
            return None
        if abs(x) > MAX_MONEY:
            self.bad(path, f"out of range: {_short(v)}")
            return None
        if lo is not None and x < lo:
            self.bad(path, f"must be >= {lo}, got {_short(v)}")
            return None
        if hi is not None and x > hi:
            self.bad(path, f"must be <= {hi}, got {_short(v)}")
            return None
        return x

    def num(self, d, key: str, path: str, lo: float | None = None, hi: float | None = None,
            optional: bool = False, positive: bool = False, default=_MISSING) -> float | None:
        v = self.fetch(d, key, path, optional, default)
        if v is _SKIP:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.bad(path, f"expected a number, got {_kind(v)}")
            return None
        try:
            f = float(v)
        except OverflowError:
            self.bad(path, "out of range")
            return None
        if not math.isfinite(f):
            self.bad(path, f"not finite: {v!r}")
            return None
        if positive and not f > 0:
            self.bad(path, f"must be > 0, got {v!r}")
            return None
        if (lo is not None and f < lo) or (hi is not None and f > hi):
            self.bad(path, f"out of range [{lo}, {hi}]: {v!r}")
            return None
        return f

    def int_(self, d, key: str, path: str, lo: int = 0, hi: int = MAX_COUNT,
             optional: bool = False, default=_MISSING) -> int | None:
        v = self.fetch(d, key, path, optional, default)
        if v is _SKIP:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            self.bad(path, f"expected an integer, got {_kind(v)}")
            return None
        if not lo <= v <= hi:
            self.bad(path, f"out of range [{lo}, {hi}]: {_short(v)}")
            return None
        return v

    def ts(self, d, key: str, path: str, optional: bool = True) -> int | None:
        return self.int_(d, key, path, 0, MAX_TS, optional=optional)

    def str_(self, d, key: str, path: str, choices=None, optional: bool = False,
             cap: int = MAX_TEXT, default=_MISSING) -> str | None:
        v = self.fetch(d, key, path, optional, default)
        if v is _SKIP:
            return None
        if not isinstance(v, str):
            self.bad(path, f"expected text, got {_kind(v)}")
            return None
        if len(v) > cap:
            self.bad(path, f"text of {len(v)} characters (more than {cap})")
            return None
        if choices is not None and v not in choices:
            self.bad(path, f"must be one of {', '.join(choices)}, got {_short(v)}")
            return None
        return v

    def bool_(self, d, key: str, path: str, default=_MISSING) -> bool | None:
        v = d.get(key, _MISSING) if isinstance(d, dict) else _MISSING
        if v is _MISSING and default is not _MISSING:
            return default
        if not isinstance(v, bool):
            self.bad(path, "missing" if v is _MISSING else f"expected true/false, got {_kind(v)}")
            return None
        return v


def _kind(v) -> str:
    return "null" if v is None else {"str": "text", "bool": "true/false", "dict": "an object",
                                     "list": "a list"}.get(type(v).__name__, type(v).__name__)


def _short(v) -> str:
    text = repr(v) if not isinstance(v, int) or abs(v) < 10**30 else f"<{len(str(abs(v)))} digits>"
    return text if len(text) <= 40 else text[:37] + "..."


def _iso_ok(text: str) -> bool:
    from datetime import datetime
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return len(text) <= 40


def _lot_multiple(qty: Decimal, lot: Decimal) -> bool:
    try:
        return (qty % lot) == 0
    except InvalidOperation:
        return False


def check_state_doc(doc, broker_config) -> list[str]:
    """Return every problem of a state-file document (empty = trustworthy)."""
    c = _Checker()
    if not isinstance(doc, dict):
        return [f"top level: expected an object, got {_kind(doc)}"]
    c.int_(doc, "version", "version", 2, 2)
    run_id = c.str_(doc, "run_id", "run_id", cap=64)
    if run_id is not None and not RUN_ID_RE.fullmatch(run_id):
        c.bad("run_id", "must be 6-64 letters, digits, - or _")
    c.str_(doc, "status", "status", STATUSES)
    c.ts(doc, "saved_ts", "saved_ts", optional=False)
    broker = c.obj(doc, "broker", "broker")
    if broker is not None:
        _check_broker(c, broker, broker_config)
    breaker = c.obj(doc, "breaker", "breaker")
    if breaker is not None:
        _check_breaker(c, breaker)
    strategy = c.obj(doc, "strategy", "strategy", optional=True)
    if strategy is not None:
        for k in ("ema_fast", "ema_slow", "atr", "prev_close"):
            c.num(strategy, k, f"strategy.{k}", 0.0, MAX_PRICE, optional=True, default=None)
        c.int_(strategy, "seen", "strategy.seen", default=0)
        c.int_(strategy, "bars_in_position", "strategy.bars_in_position", default=0)
    session = c.obj(doc, "session", "session", optional=True)
    if session is not None:
        _check_session(c, session)
    return c.problems


def validate_state_doc(doc, broker_config) -> None:
    """Raise StateInvalid listing every problem of a state-file document."""
    problems = check_state_doc(doc, broker_config)
    if problems:
        raise StateInvalid("; ".join(problems))


def _check_broker(c: _Checker, b: dict, cfg) -> None:
    led = c.obj(b, "ledger", "broker.ledger")
    cash = start = None
    if led is not None:
        start = c.dec(led, "starting_cash", "broker.ledger.starting_cash", lo=Decimal("0"))
        if start is not None and not start > 0:
            c.bad("broker.ledger.starting_cash", "must be > 0")
        cash = c.dec(led, "cash", "broker.ledger.cash")
        realized = c.dec(led, "realized_pnl", "broker.ledger.realized_pnl")
        fees = c.dec(led, "fees", "broker.ledger.fees", lo=Decimal("0"))
        funding = c.dec(led, "funding", "broker.ledger.funding")
        parts = (start, cash, realized, fees, funding)
        if all(p is not None for p in parts) and cash != start + realized - fees - funding:
            c.bad("broker.ledger", f"does not reconcile: cash {cash} != starting {start} + "
                                   f"realized {realized} - fees {fees} - funding {funding}")
    lot = cfg.lot_size
    pos = c.obj(b, "position", "broker.position")
    if pos is not None:
        qty = c.dec(pos, "qty", "broker.position.qty", lo=-MAX_POSITION_QTY,
                    hi=MAX_POSITION_QTY)
        avg = c.dec(pos, "avg_px", "broker.position.avg_px", lo=Decimal("0"),
                    hi=Decimal(str(MAX_PRICE)))
        for k in ("stop_px", "target_px"):
            c.num(pos, k, f"broker.position.{k}", optional=True, positive=True, hi=MAX_PRICE,
                  default=None)
        c.ts(pos, "opened_ts", "broker.position.opened_ts")
        if qty is not None:
            if not _lot_multiple(qty, lot):
                c.bad("broker.position.qty", f"{qty} is not a multiple of the lot size {lot}")
            if avg is not None:
                if qty != 0 and not avg > 0:
                    c.bad("broker.position.avg_px", f"must be > 0 with a position of {qty}")
                ref = max(x for x in (cash, start, Decimal("0")) if x is not None)
                cap = NOTIONAL_SLACK * Decimal(repr(cfg.max_leverage)) * ref
                if qty != 0 and abs(qty) * avg > cap:
                    c.bad("broker.position.qty", f"notional {abs(qty) * avg:.2f} of {qty} at "
                                                 f"{avg} is beyond {cap:.2f} (the account "
                                                 f"could not have opened it)")
    for key in ("pending", "resting"):
        for i, o in enumerate(c.lst(b, key, f"broker.{key}", cap=1000)):
            _check_order(c, o, f"broker.{key}[{i}]", lot, resting=key == "resting")
    c.int_(b, "next_order_num", "broker.next_order_num", 1)
    c.int_(b, "fill_seq", "broker.fill_seq", 0)
    c.ts(b, "funding_due_ts", "broker.funding_due_ts")
    c.num(b, "funding_rate", "broker.funding_rate", -0.05, 0.05, default=0.0)
    for k in ("mark_px", "last_close"):
        c.num(b, k, f"broker.{k}", optional=True, positive=True, hi=MAX_PRICE, default=None)
    c.ts(b, "last_funding_ts", "broker.last_funding_ts")
    prefix = c.str_(b, "order_prefix", "broker.order_prefix", cap=200, default="ord")
    if prefix is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,200}", prefix):
        c.bad("broker.order_prefix", "must be letters, digits, - or _")
    for i, oid in enumerate(c.lst(b, "filled_order_ids", "broker.filled_order_ids")):
        if not isinstance(oid, str) or len(oid) > 200:
            c.bad(f"broker.filled_order_ids[{i}]", "expected an order id")
            break
    c.bool_(b, "quote_stale", "broker.quote_stale", default=False)
    q = c.obj(b, "quote", "broker.quote", optional=True)
    if q is not None:
        c.ts(q, "ts", "broker.quote.ts", optional=False)
        bid = c.num(q, "bid", "broker.quote.bid", positive=True, hi=MAX_PRICE)
        ask = c.num(q, "ask", "broker.quote.ask", positive=True, hi=MAX_PRICE)
        for k in ("bid_size", "ask_size"):
            c.num(q, k, f"broker.quote.{k}", 0.0, 1e12, default=0.0)
        if bid is not None and ask is not None and bid > ask:
            c.bad("broker.quote", f"crossed: bid {bid} > ask {ask}")


def _check_order(c: _Checker, o, p: str, lot, resting: bool) -> None:
    if not isinstance(o, dict):
        c.bad(p, f"expected an object, got {_kind(o)}")
        return
    c.str_(o, "order_id", f"{p}.order_id", cap=200)
    c.str_(o, "side", f"{p}.side", ("BUY", "SELL"))
    q = c.dec(o, "qty", f"{p}.qty", lo=Decimal("0"), hi=MAX_POSITION_QTY)
    if q is not None and (q <= 0 or not _lot_multiple(q, lot)):
        c.bad(f"{p}.qty", f"{q} must be > 0 and a multiple of the lot size {lot}")
    c.str_(o, "reason", f"{p}.reason", ORDER_REASONS)
    c.ts(o, "signal_ts", f"{p}.signal_ts", optional=False)
    c.ts(o, "due_ts", f"{p}.due_ts", optional=False)
    c.num(o, "signal_px", f"{p}.signal_px", positive=True, hi=MAX_PRICE)
    c.bool_(o, "reduce_only", f"{p}.reduce_only", default=False)
    for k in ("stop_distance", "target_distance"):
        c.num(o, k, f"{p}.{k}", 0.0, MAX_PRICE, default=0.0)
    kind = c.str_(o, "order_type", f"{p}.order_type", ("market", "limit"), default="market")
    if resting and kind != "limit":
        c.bad(f"{p}.order_type", "only a limit order can rest")
    if kind != "limit":
        return
    c.num(o, "limit_px", f"{p}.limit_px", positive=True, hi=MAX_PRICE)
    c.str_(o, "tif", f"{p}.tif", ("GTC", "IOC", "POST_ONLY"), default="GTC")
    c.int_(o, "timeout_ms", f"{p}.timeout_ms", 0, 86_400_000, default=0)
    done = c.dec(o, "filled_qty", f"{p}.filled_qty", lo=Decimal("0"), hi=MAX_POSITION_QTY)
    if done is not None and q is not None and (done >= q or not _lot_multiple(done, lot)):
        c.bad(f"{p}.filled_qty", f"{done} must be below the order's {q} and a lot multiple")
    c.num(o, "queue_ahead", f"{p}.queue_ahead", 0.0, 1e12, default=0.0)
    c.ts(o, "cancel_ts", f"{p}.cancel_ts")


def _check_breaker(c: _Checker, b: dict) -> None:
    c.str_(b, "state", "breaker.state", BREAKER_STATES)
    c.ts(b, "tripped_ts", "breaker.tripped_ts")
    c.str_(b, "trip_reason", "breaker.trip_reason", optional=True, default=None)
    c.bool_(b, "latched", "breaker.latched", default=False)
    c.int_(b, "trips", "breaker.trips", default=0)
    c.int_(b, "consecutive_losses", "breaker.consecutive_losses", default=0)
    win = c.obj(b, "windows", "breaker.windows", optional=True)
    for k, v in (win or {}).items():
        if k not in ("parse", "reconnect", "reject"):
            c.bad(f"breaker.windows.{_short(k)}", "unknown failure kind")
        elif not isinstance(v, list) or len(v) > MAX_LIST or not all(
                isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_TS for x in v):
            c.bad(f"breaker.windows.{k}", "expected a list of timestamps")


def _check_session(c: _Checker, s: dict) -> None:
    c.ts(s, "start_data_ts", "session.start_data_ts")
    c.ts(s, "last_data_ts", "session.last_data_ts")
    c.int_(s, "duration_ms", "session.duration_ms", 0, MAX_TS, optional=True, default=None)
    c.num(s, "started_wall", "session.started_wall", 0.0, MAX_TS / 1000, optional=True,
          default=None)
    c.str_(s, "source_used", "session.source_used", SOURCES, default="replay")
    c.bool_(s, "offline_fallback", "session.offline_fallback", default=False)
    c.str_(s, "fallback_reason", "session.fallback_reason", default="")
    for k in ("starting_equity", "open_fees", "open_realized"):  # Decimal(): never null
        if k in s:
            c.dec(s, k, f"session.{k}")
    c.str_(s, "account_source", "session.account_source", cap=40, default="")
    c.str_(s, "account_note", "session.account_note", default="")
    for k in ("restarts", "watchdog_restarts"):
        c.int_(s, k, f"session.{k}", 0, 10**9, default=0)
    for i, x in enumerate(c.lst(s, "round_trips", "session.round_trips")):
        c.dec({"v": x}, "v", f"session.round_trips[{i}]")
    for i, seg in enumerate(c.lst(s, "segments", "session.segments", cap=100_000)):
        if not isinstance(seg, dict):
            c.bad(f"session.segments[{i}]", f"expected an object, got {_kind(seg)}")
            break
        for k in ("started", "ended"):
            v = seg.get(k)
            if v is not None and not (isinstance(v, str) and _iso_ok(v)):
                c.bad(f"session.segments[{i}].{k}", f"expected an ISO time, got {_short(v)}")
        for k in ("exit_reason",):
            if seg.get(k) is not None and not isinstance(seg.get(k), str):
                c.bad(f"session.segments[{i}].{k}", "expected text")
        if "segment" in seg:
            c.int_(seg, "segment", f"session.segments[{i}].segment", 0, 10**9)
    for i, r in enumerate(c.lst(s, "repairs", "session.repairs")):
        if not isinstance(r, str) or len(r) > MAX_TEXT:
            c.bad(f"session.repairs[{i}]", "expected text")
            break
    ft = c.obj(s, "feed_totals", "session.feed_totals", optional=True)
    for k, v in (ft or {}).items():
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_COUNT:
            c.bad(f"session.feed_totals.{_short(k)}", "expected a count")
    inj = c.obj(s, "injected", "session.injected", optional=True)
    for k, v in (inj or {}).items():
        if not isinstance(v, bool):
            c.bad(f"session.injected.{_short(k)}", "expected true/false")
    cnt = c.obj(s, "counters", "session.counters", optional=True)
    for k, v in (cnt or {}).items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
                0 <= v <= MAX_COUNT and math.isfinite(float(v))):
            c.bad(f"session.counters.{_short(k)}", f"expected a count, got {_short(v)}")
