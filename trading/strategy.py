"""Strategy interface and the default strategy.

A strategy sees only *closed* candles and the current net position; it returns at most one
signal per candle. It never sizes orders (the broker does, from risk per trade) and never sees
quotes: what a signal costs between the candle close and the fill is the broker's business.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Protocol, Sequence

from trading.model import Candle, Side


@dataclass(frozen=True, slots=True)
class Signal:
    """What to do at the next fill: enter long/short or exit the open position."""

    side: Side
    reason: str  # "entry" or "exit"
    stop_distance: float = 0.0  # price distance of the stop-loss from the fill (entries)
    target_distance: float = 0.0  # price distance of the take-profit from the fill (entries)
    note: str = ""
    # how to enter: "market", or "limit" at the best bid (buy) / ask (sell) -/+ offset_bps,
    # in force `tif`, cancelled `timeout_ms` after it reaches the exchange (exits: market)
    order_type: str = "market"
    offset_bps: float = 0.0
    tif: str = "GTC"
    timeout_ms: int = 0


class Strategy(Protocol):
    name: str

    def warm_up(self, candles: Sequence[Candle]) -> None:
        """Seed indicators from history (oldest first); produce no signals."""

    def on_candle(self, candle: Candle, position_qty: Decimal) -> Signal | None:
        """Return a signal for this closed candle, or None."""

    def state(self) -> dict:
        """Return the indicator state as JSON-ready data (for crash recovery)."""

    def restore(self, state: dict) -> None:
        """Load what `state()` returned."""


@dataclass(frozen=True, slots=True)
class MomentumParams:
    """Parameters of the default EMA-momentum strategy (candles are 1 minute)."""

    fast: int = 3
    slow: int = 8
    hold_bars: int = 3
    atr_len: int = 14
    stop_atr: float = 1.5
    target_atr: float = 2.5
    min_gap_bps: float = 0.5
    order_type: str = "market"  # entries: market or limit (exits are always market)
    limit_offset_bps: float = 0.0  # a limit entry at the best bid/ask -/+ this many bps
    limit_timeout_s: float = 30.0  # an unfilled limit entry is cancelled this long after
    limit_tif: str = "GTC"  # GTC, IOC or POST_ONLY

    def __post_init__(self) -> None:
        if self.order_type not in ("market", "limit"):
            raise ValueError("strategy: order_type must be market or limit")
        if not (math.isfinite(self.limit_offset_bps) and -100 <= self.limit_offset_bps <= 1000):
            raise ValueError("strategy: limit_offset_bps must be in [-100, 1000]")
        if not (math.isfinite(self.limit_timeout_s) and 0 <= self.limit_timeout_s <= 86_400):
            raise ValueError("strategy: limit_timeout_s must be in [0, 86400]")
        if self.limit_tif not in ("GTC", "IOC", "POST_ONLY"):
            raise ValueError("strategy: limit_tif must be GTC, IOC or POST_ONLY")
        if not (1 <= self.fast < self.slow <= 500):
            raise ValueError("strategy: need 1 <= fast < slow <= 500")
        if not 1 <= self.hold_bars <= 1000:
            raise ValueError("strategy: hold_bars must be 1..1000")
        if not 2 <= self.atr_len <= 500:
            raise ValueError("strategy: atr_len must be 2..500")
        for name in ("stop_atr", "target_atr"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 < v <= 100):
                raise ValueError(f"strategy: {name} must be in (0, 100]")
        if not (math.isfinite(self.min_gap_bps) and 0 <= self.min_gap_bps <= 1000):
            raise ValueError("strategy: min_gap_bps must be in [0, 1000]")

    @classmethod
    def from_dict(cls, d: dict) -> "MomentumParams":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"strategy: unknown parameter(s) {sorted(unknown)}")
        return cls(**d)


class EmaMomentumStrategy:
    """Follow short-term momentum on 1m candles, with a time exit.

    - Trend = EMA(fast) - EMA(slow) of closes. When flat and the gap exceeds `min_gap_bps` of
      price, enter in its direction.
    - Exit after `hold_bars` closed candles, or earlier when the trend flips against the position.
    - Every entry carries a stop-loss at `stop_atr` x ATR and a take-profit at `target_atr` x ATR
      (ATR = Wilder's average true range over `atr_len` candles), which the broker enforces on
      every quote.
    Defaults are chosen so that a 10-minute session on the bundled day trades (entry and exit) in
    almost every window: see bench/strategy_coverage.py.
    """

    name = "ema_momentum"

    def __init__(self, params: MomentumParams | None = None) -> None:
        self.params = params or MomentumParams()
        self._ema_fast: float | None = None
        self._ema_slow: float | None = None
        self._atr: float | None = None
        self._prev_close: float | None = None
        self._seen = 0
        self._bars_in_position = 0

    # -- indicators --
    def _update(self, c: Candle) -> None:
        p = self.params
        af, as_ = 2.0 / (p.fast + 1), 2.0 / (p.slow + 1)
        if self._ema_fast is None:
            self._ema_fast = self._ema_slow = c.close
        else:
            self._ema_fast += af * (c.close - self._ema_fast)
            self._ema_slow += as_ * (c.close - self._ema_slow)
        tr = c.high - c.low
        if self._prev_close is not None:
            tr = max(tr, abs(c.high - self._prev_close), abs(c.low - self._prev_close))
        if self._atr is None:
            self._atr = tr
        else:
            self._atr += (tr - self._atr) / p.atr_len
        self._prev_close = c.close
        self._seen += 1

    @property
    def ready(self) -> bool:
        return self._seen >= self.params.slow

    @property
    def gap_bps(self) -> float:
        if self._ema_fast is None or not self._ema_slow:
            return 0.0
        return (self._ema_fast - self._ema_slow) / self._ema_slow * 1e4

    def warm_up(self, candles: Sequence[Candle]) -> None:
        for c in candles:
            self._update(c)

    def on_candle(self, candle: Candle, position_qty: Decimal) -> Signal | None:
        self._update(candle)
        if not self.ready:
            return None
        p = self.params
        gap = self.gap_bps
        if position_qty != 0:
            self._bars_in_position += 1
            long = position_qty > 0
            flipped = (gap < 0) if long else (gap > 0)
            if self._bars_in_position >= p.hold_bars or flipped:
                why = "trend flipped" if flipped else f"held {self._bars_in_position} bars"
                return Signal(side=Side.SELL if long else Side.BUY, reason="exit", note=why)
            return None
        self._bars_in_position = 0
        atr = max(self._atr or 0.0, candle.close * 1e-4)  # never a zero-width stop
        if abs(gap) <= p.min_gap_bps:  # "exceeds": a zero gap has no direction
            return None
        side = Side.BUY if gap > 0 else Side.SELL
        return Signal(side=side, reason="entry", stop_distance=p.stop_atr * atr,
                      target_distance=p.target_atr * atr, note=f"ema gap {gap:.2f} bps",
                      order_type=p.order_type, offset_bps=p.limit_offset_bps, tif=p.limit_tif,
                      timeout_ms=int(p.limit_timeout_s * 1000))

    def state(self) -> dict:
        return {"params": asdict(self.params), "ema_fast": self._ema_fast,
                "ema_slow": self._ema_slow, "atr": self._atr, "prev_close": self._prev_close,
                "seen": self._seen, "bars_in_position": self._bars_in_position}

    def restore(self, state: dict) -> None:
        self._ema_fast = state.get("ema_fast")
        self._ema_slow = state.get("ema_slow")
        self._atr = state.get("atr")
        self._prev_close = state.get("prev_close")
        self._seen = int(state.get("seen", 0))
        self._bars_in_position = int(state.get("bars_in_position", 0))
