"""Domain values of the trading core: quotes, candles, orders, fills and events.

Pure module: no I/O, no threads, no wall clock. Timestamps are epoch milliseconds (`*_ts`).
Money and quantities that must reconcile exactly are `Decimal`; prices read from the feed are
floats (they come from decimal strings and are converted back with `px_dec`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

MONEY_Q = Decimal("0.00000001")  # ledger precision: 1e-8 USDT


class Side(str, Enum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    def opposite(self) -> "Side":
        return Side.SELL if self is Side.BUY else Side.BUY


class ValidationError(ValueError):
    """A value from the market or the user that cannot be accepted."""


_INF = math.inf


def _check_price(name: str, value: float) -> None:
    if type(value) is float and 0.0 < value < _INF:  # the common case, at once (NaN fails)
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValidationError(f"{name} is not a number: {value!r}")
    if not math.isfinite(value):
        raise ValidationError(f"{name} is not finite: {value!r}")
    if value <= 0:
        raise ValidationError(f"{name} must be > 0: {value!r}")


def _check_size(name: str, value: float) -> None:
    if type(value) is float and 0.0 <= value < _INF:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValidationError(f"{name} is not a number: {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValidationError(f"{name} must be finite and >= 0: {value!r}")


def symbol_problem(symbol: object) -> str | None:
    """Say what is wrong with a symbol (3-20 ASCII upper-case letters and digits), or None.

    One rule for the command line, the Settings dialog and every file read back.
    """
    if not isinstance(symbol, str):
        return "must be text"
    if not (3 <= len(symbol) <= 20 and symbol.isascii() and symbol.isalnum()
            and symbol == symbol.upper()):
        return "must be 3-20 ASCII upper-case letters and digits (e.g. BTCUSDT)"
    return None


def px_dec(value: float) -> Decimal:
    """Return the exact decimal a float price was parsed from (shortest repr round-trip)."""
    return Decimal(repr(float(value)))


@dataclass(frozen=True, slots=True)
class Quote:
    """Best bid/ask at `ts`."""

    ts: int
    bid: float
    ask: float
    bid_size: float = 0.0
    ask_size: float = 0.0
    symbol: str = "BTCUSDT"

    def __post_init__(self) -> None:
        _check_price("bid", self.bid)
        _check_price("ask", self.ask)
        _check_size("bid_size", self.bid_size)
        _check_size("ask_size", self.ask_size)
        if self.bid > self.ask:
            raise ValidationError(f"crossed quote: bid {self.bid} > ask {self.ask}")

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0


@dataclass(frozen=True, slots=True)
class KlineUpdate:
    """One push of the forming 1-minute candle; its minute is floor(ts / 60000)."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    base_vol: float = 0.0
    quote_vol: float = 0.0
    symbol: str = "BTCUSDT"

    def __post_init__(self) -> None:
        for name in ("open", "high", "low", "close"):
            _check_price(name, getattr(self, name))
        _check_size("base_vol", self.base_vol)
        _check_size("quote_vol", self.quote_vol)
        if self.low > min(self.open, self.close) or self.high < max(self.open, self.close):
            raise ValidationError(
                f"inconsistent kline o={self.open} h={self.high} l={self.low} c={self.close}"
            )

    @property
    def minute_ts(self) -> int:
        return (self.ts // 60_000) * 60_000


@dataclass(frozen=True, slots=True)
class Candle:
    """A closed 1-minute candle; `ts` is the minute's open time."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    quote_volume: float = 0.0
    closed_ts: int = 0  # data time at which the candle became known as closed

    def __post_init__(self) -> None:
        for name in ("open", "high", "low", "close"):
            _check_price(name, getattr(self, name))
        if self.low > min(self.open, self.close) or self.high < max(self.open, self.close):
            raise ValidationError(
                f"inconsistent candle o={self.open} h={self.high} l={self.low} c={self.close}"
            )

    def to_dict(self) -> dict:
        return {"ts": self.ts, "open": self.open, "high": self.high, "low": self.low,
                "close": self.close, "volume": self.volume}


@dataclass(frozen=True, slots=True)
class TradeTick:
    ts: int
    price: float
    qty: float
    side: str
    symbol: str = "BTCUSDT"

    def __post_init__(self) -> None:
        _check_price("price", self.price)
        _check_size("qty", self.qty)


@dataclass(frozen=True, slots=True)
class FundingInfo:
    """The `price` channel: index and mark price, funding rate and times (epoch ms)."""

    ts: int
    index_px: float
    mark_px: float
    funding_rate: float
    funding_ts: int
    next_funding_ts: int
    symbol: str = "BTCUSDT"

    def __post_init__(self) -> None:
        _check_price("mark_px", self.mark_px)
        _check_price("index_px", self.index_px)
        if not math.isfinite(self.funding_rate) or abs(self.funding_rate) > 0.05:
            raise ValidationError(f"implausible funding rate {self.funding_rate!r}")


@dataclass(frozen=True, slots=True)
class Pong:
    ts: int
    ping: int
    pong: int


@dataclass(frozen=True, slots=True)
class Order:
    """A market order waiting out its execution latency."""

    order_id: str
    side: Side
    qty: Decimal
    reason: str  # entry / exit
    signal_ts: int
    signal_px: float
    due_ts: int
    reduce_only: bool = False
    stop_distance: float = 0.0
    target_distance: float = 0.0
    # limit orders: price, time in force (GTC / IOC / POST_ONLY), a timeout after arrival
    order_type: str = "market"
    limit_px: float | None = None
    tif: str = "GTC"
    timeout_ms: int = 0
    # a working limit order: what filled, the size ahead of it at its price, when a cancel
    # (the timeout's, sent after it) takes effect
    filled_qty: Decimal = Decimal("0")
    queue_ahead: float = 0.0
    cancel_ts: int | None = None

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    def to_dict(self) -> dict:
        d = {"order_id": self.order_id, "side": self.side.value, "qty": str(self.qty),
             "reason": self.reason, "signal_ts": self.signal_ts, "signal_px": self.signal_px,
             "due_ts": self.due_ts, "reduce_only": self.reduce_only,
             "stop_distance": self.stop_distance, "target_distance": self.target_distance,
             "order_type": self.order_type}
        if self.order_type == "limit":
            d.update({"limit_px": self.limit_px, "tif": self.tif, "timeout_ms": self.timeout_ms,
                      "filled_qty": str(self.filled_qty), "queue_ahead": self.queue_ahead,
                      "cancel_ts": self.cancel_ts})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Order":
        lim = d.get("limit_px")
        return cls(order_id=str(d["order_id"]), side=Side(d["side"]), qty=Decimal(str(d["qty"])),
                   reason=str(d["reason"]), signal_ts=int(d["signal_ts"]),
                   signal_px=float(d["signal_px"]), due_ts=int(d["due_ts"]),
                   reduce_only=bool(d.get("reduce_only", False)),
                   stop_distance=float(d.get("stop_distance", 0.0)),
                   target_distance=float(d.get("target_distance", 0.0)),
                   order_type=str(d.get("order_type", "market")),
                   limit_px=None if lim is None else float(lim), tif=str(d.get("tif", "GTC")),
                   timeout_ms=int(d.get("timeout_ms", 0)),
                   filled_qty=Decimal(str(d.get("filled_qty", "0"))),
                   queue_ahead=float(d.get("queue_ahead", 0.0)),
                   cancel_ts=None if d.get("cancel_ts") is None else int(d["cancel_ts"]))


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution and its cost attribution (bps are costs: positive = paid)."""

    order_id: str
    seq: int
    side: Side
    qty: Decimal
    reason: str  # entry / exit / stop / target / flatten
    fill_ts: int
    fill_px: float
    bid: float
    ask: float
    fee: Decimal
    fee_bps: float
    spread_cost_bps: float
    realized_pnl: Decimal
    position_after: Decimal
    cash_after: Decimal
    signal_ts: int | None = None
    signal_px: float | None = None
    due_ts: int | None = None
    latency_drift_bps: float | None = None
    trigger: str | None = None
    trigger_px: float | None = None
    # size and depth: the order's quantity and how much of it had filled after this fill, the
    # legs walked (price, qty per level), VWAP vs best in bps, whether the visible depth ran
    # out, what priced the fill (book / top_of_book / queue / no_quote_fallback), maker/taker
    order_qty: Decimal | None = None
    order_filled: Decimal | None = None
    order_type: str = "market"
    liquidity: str = "taker"
    legs: tuple = ()
    depth_cost_bps: float = 0.0
    depth_exhausted: bool = False
    price_model: str = "top_of_book"

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0

    @property
    def latency_ms(self) -> int | None:
        return None if self.signal_ts is None else self.fill_ts - self.signal_ts

    def to_dict(self) -> dict:
        return {
            "order_id": self.order_id, "seq": self.seq, "side": self.side.value,
            "qty": str(self.qty), "reason": self.reason, "signal_ts": self.signal_ts,
            "signal_px": self.signal_px, "due_ts": self.due_ts, "fill_ts": self.fill_ts,
            "latency_ms": self.latency_ms, "fill_px": self.fill_px, "bid": self.bid,
            "ask": self.ask, "mid": self.mid, "spread_cost_bps": round(self.spread_cost_bps, 4),
            "latency_drift_bps": None if self.latency_drift_bps is None
            else round(self.latency_drift_bps, 4),
            "fee": str(self.fee), "fee_bps": self.fee_bps, "realized_pnl": str(self.realized_pnl),
            "trigger": self.trigger, "trigger_px": self.trigger_px,
            "position_after": str(self.position_after), "cash_after": str(self.cash_after),
            "order_qty": str(self.order_qty if self.order_qty is not None else self.qty),
            "order_filled": str(self.order_filled if self.order_filled is not None
                                else self.qty),
            "order_type": self.order_type, "liquidity": self.liquidity,
            "legs": ";".join(f"{p}x{q}" for p, q in self.legs),
            "depth_cost_bps": round(self.depth_cost_bps, 4),
            "depth_exhausted": self.depth_exhausted, "price_model": self.price_model,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Fill":
        def opt(key, conv):
            v = d.get(key)
            return None if v is None or v == "" else conv(v)
        return cls(
            order_id=str(d["order_id"]), seq=int(d["seq"]), side=Side(d["side"]),
            qty=Decimal(str(d["qty"])), reason=str(d["reason"]), fill_ts=int(d["fill_ts"]),
            fill_px=float(d["fill_px"]), bid=float(d["bid"]), ask=float(d["ask"]),
            fee=Decimal(str(d["fee"])), fee_bps=float(d["fee_bps"]),
            spread_cost_bps=float(d["spread_cost_bps"]),
            realized_pnl=Decimal(str(d["realized_pnl"])),
            position_after=Decimal(str(d["position_after"])),
            cash_after=Decimal(str(d["cash_after"])),
            signal_ts=opt("signal_ts", int), signal_px=opt("signal_px", float),
            due_ts=opt("due_ts", int), latency_drift_bps=opt("latency_drift_bps", float),
            trigger=opt("trigger", str), trigger_px=opt("trigger_px", float),
            order_qty=opt("order_qty", lambda v: Decimal(str(v))),
            order_filled=opt("order_filled", lambda v: Decimal(str(v))),
            order_type=str(d.get("order_type") or "market"),
            liquidity=str(d.get("liquidity") or "taker"), legs=parse_legs(d.get("legs")),
            depth_cost_bps=float(d.get("depth_cost_bps") or 0.0),
            depth_exhausted=str(d.get("depth_exhausted")).lower() in ("true", "1"),
            price_model=str(d.get("price_model") or "top_of_book"),
        )


def parse_legs(text) -> tuple:
    """`"87815.0x0.05;87815.5x0.063"` (fills.csv, the journal) -> ((87815.0, Decimal), ...)."""
    if not text:
        return ()
    if isinstance(text, (list, tuple)):
        return tuple((float(p), Decimal(str(q))) for p, q in text)
    out = []
    for part in str(text).split(";"):
        p, _, q = part.partition("x")
        out.append((float(p), Decimal(q)))
    return tuple(out)


# ---- events emitted by the broker (past tense) ----

@dataclass(frozen=True, slots=True)
class OrderSubmitted:
    order: Order


@dataclass(frozen=True, slots=True)
class OrderFilled:
    fill: Fill


@dataclass(frozen=True, slots=True)
class OrderRejected:
    order_id: str
    ts: int
    reason: str


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    order_id: str
    ts: int
    reason: str
    remaining: Decimal | None = None  # a limit order's unfilled quantity, cancelled


@dataclass(frozen=True, slots=True)
class OrderRested:
    """A limit order reached the exchange and rests: `order` carries its queue position."""

    order: "Order"
    ts: int


@dataclass(frozen=True, slots=True)
class FundingApplied:
    ts: int
    rate: float
    mark_px: float
    position_qty: Decimal
    amount: Decimal  # positive = paid by us


@dataclass(frozen=True, slots=True)
class FeedReconnected:
    """The feed is connected again after losing its connection; `ts` is wall time (epoch ms)."""

    ts: int
    connects: int


@dataclass(frozen=True, slots=True)
class CandleClosed:
    candle: Candle


@dataclass(slots=True)
class Position:
    """Net position: qty > 0 long, < 0 short; stop/target levels of the open position."""

    qty: Decimal = Decimal("0")
    avg_px: Decimal = Decimal("0")
    stop_px: float | None = None
    target_px: float | None = None
    opened_ts: int | None = None

    @property
    def is_flat(self) -> bool:
        return self.qty == 0

    @property
    def side(self) -> Side | None:
        if self.qty > 0:
            return Side.BUY
        if self.qty < 0:
            return Side.SELL
        return None

    def to_dict(self) -> dict:
        return {"qty": str(self.qty), "avg_px": str(self.avg_px), "stop_px": self.stop_px,
                "target_px": self.target_px, "opened_ts": self.opened_ts}

    @classmethod
    def from_dict(cls, d: dict) -> "Position":
        return cls(qty=Decimal(str(d.get("qty", "0"))), avg_px=Decimal(str(d.get("avg_px", "0"))),
                   stop_px=d.get("stop_px"), target_px=d.get("target_px"),
                   opened_ts=d.get("opened_ts"))


@dataclass(slots=True)
class Ledger:
    """Cash and its components; cash == starting + realized - fees - funding, exactly."""

    starting_cash: Decimal
    cash: Decimal
    realized_pnl: Decimal = Decimal("0")
    fees: Decimal = Decimal("0")
    funding: Decimal = Decimal("0")  # positive = paid

    def reconciles(self) -> bool:
        return self.cash == self.starting_cash + self.realized_pnl - self.fees - self.funding

    def to_dict(self) -> dict:
        return {k: str(getattr(self, k)) for k in
                ("starting_cash", "cash", "realized_pnl", "fees", "funding")}

    @classmethod
    def from_dict(cls, d: dict) -> "Ledger":
        return cls(**{k: Decimal(str(d[k])) for k in
                      ("starting_cash", "cash", "realized_pnl", "fees", "funding")})



def _setters(cls, names: str) -> tuple:
    return tuple(getattr(cls, n).__set__ for n in names.split())  # the slots' own setters


_QS = _setters(Quote, "ts bid ask bid_size ask_size symbol")
_CS = _setters(Candle, "ts open high low close volume quote_volume closed_ts")


def trusted_quote(ts: int, bid: float, ask: float, bid_size: float, ask_size: float,
                  symbol: str, _new=object.__new__, _s=_QS) -> Quote:
    """A Quote from values already validated (a replay file's rows are checked when the file
    is loaded): the same object, without checking each price again."""
    q = _new(Quote)
    _s[0](q, ts)
    _s[1](q, bid)
    _s[2](q, ask)
    _s[3](q, bid_size)
    _s[4](q, ask_size)
    _s[5](q, symbol)
    return q


def trusted_candle(ts: int, o: float, h: float, lo: float, c: float, volume: float,
                   closed_ts: int, _new=object.__new__, _s=_CS) -> Candle:
    """A Candle from a validated bar (see `trusted_quote`)."""
    k = _new(Candle)
    _s[0](k, ts)
    _s[1](k, o)
    _s[2](k, h)
    _s[3](k, lo)
    _s[4](k, c)
    _s[5](k, volume)
    _s[6](k, 0.0)
    _s[7](k, closed_ts)
    return k
