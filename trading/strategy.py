"""The strategy protocol, the signal a strategy returns, and how entries are sent.

A strategy is a class in a Python file of its own (the built-ins are in `trading/strategies/`;
a trader's own are loaded by `trading.runtime.strategies`). It sees only *closed* 1-minute
candles and the current net position, and returns at most one `Signal` per candle. It never
sees quotes and never sends orders itself: the engine turns a signal into an order, and the
broker fills it after the execution latency at the book in force then.

The protocol (what the loader checks before any session starts)::

    class MyStrategy:
        name = "my_strategy"              # shown in the report and the journal
        params = {"fast": 10, "slow": 30} # declared defaults: int, float, bool or str
        def __init__(self, **params): ... # every declared parameter, defaults overridden by
                                          # --strategy-param; raise ValueError on a bad one
        def warm_up(self, candles): ...   # history, oldest first; no signals
        def on_candle(self, candle, position_qty): ...  # -> Signal or None
        def state(self) -> dict: ...      # JSON-ready indicator state (crash-only restarts)
        def restore(self, state): ...     # load what state() returned

A signal either names a side and a reason ("entry": open a position, sized by the broker from
risk per trade, or `--fixed-qty`; "exit": close it), or a `target` position (+1 long, -1 short,
0 flat): the engine sends one market order for target - position, so a reversal is one order.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Protocol, Sequence

from trading.broker import TIFS
from trading.model import Candle, Side


@dataclass(frozen=True, slots=True)
class Signal:
    """What to do at the next fill."""

    side: Side | None = None  # entry/exit signals; None with a target
    reason: str = "entry"  # "entry" or "exit"
    stop_distance: float = 0.0  # price distance of the stop-loss from the fill (entries)
    target_distance: float = 0.0  # price distance of the take-profit from the fill (entries)
    note: str = ""
    target: int | None = None  # +1 long, -1 short, 0 flat: one order for target - position


class Strategy(Protocol):
    name: str
    params: dict

    def warm_up(self, candles: Sequence[Candle]) -> None:
        """Seed indicators from history (oldest first); produce no signals."""

    def on_candle(self, candle: Candle, position_qty: Decimal) -> Signal | None:
        """Return a signal for this closed candle, or None."""

    def state(self) -> dict:
        """Return the indicator state as JSON-ready data (for crash recovery)."""

    def restore(self, state: dict) -> None:
        """Load what `state()` returned."""


ORDER_TYPES = ("market", "limit")


@dataclass(frozen=True, slots=True)
class EntryOrders:
    """How the engine sends a strategy's entries (exits are always market orders)."""

    order_type: str = "market"  # market, or limit at the best bid/ask -/+ limit_offset_bps
    limit_offset_bps: float = 0.0  # a limit entry at the best bid/ask -/+ this many bps
    limit_timeout_s: float = 30.0  # an unfilled limit entry is cancelled this long after
    limit_tif: str = "GTC"  # GTC, IOC or POST_ONLY

    def __post_init__(self) -> None:
        if self.order_type not in ORDER_TYPES:
            raise ValueError("entry: order_type must be market or limit")
        if not (isinstance(self.limit_offset_bps, (int, float))
                and math.isfinite(self.limit_offset_bps)
                and -100 <= self.limit_offset_bps <= 1000):
            raise ValueError("entry: limit_offset_bps must be in [-100, 1000]")
        if not (isinstance(self.limit_timeout_s, (int, float))
                and math.isfinite(self.limit_timeout_s) and 0 <= self.limit_timeout_s <= 86_400):
            raise ValueError("entry: limit_timeout_s must be in [0, 86400]")
        if self.limit_tif not in TIFS:
            raise ValueError("entry: limit_tif must be GTC, IOC or POST_ONLY")

    @property
    def timeout_ms(self) -> int:
        return int(self.limit_timeout_s * 1000)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EntryOrders":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"entry orders: unknown setting(s) {sorted(unknown)}")
        return cls(**d)
