"""The session's event stream: immutable, past-tense facts, published in one order.

The broker's own events (OrderSubmitted, OrderFilled, OrderRejected, OrderCancelled,
FundingApplied) and FeedReconnected / CandleClosed live in `trading.model`; this module adds
what the engine and the runtime shell say around them. Two kinds:

* inputs -- what came into the session from outside (a frame the feed received, a tick of the
  execution clock, the end of the session): a recording of these, in order, replays the session;
* facts -- what the session made of them (a candle closed, a signal, a fill, the breaker
  tripped, a segment started...): the journal, the state file, the report, the window and the
  console subscribe to these.

Pure: no I/O, no clock; every timestamp is passed in.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from trading.model import (CandleClosed, FeedReconnected, FundingApplied,  # noqa: F401
                           OrderCancelled, OrderFilled, OrderRejected, OrderRested,
                           OrderSubmitted)


# ---- inputs -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FrameReceived:
    """One websocket frame as the feed received it, with what it parsed to.

    `mono` and `wall_ms` are the receive times (monotonic seconds, epoch ms); `events` the
    parsed market events (empty for a pong); `error` the parse error of a bad frame.
    """

    raw: bytes
    mono: float
    wall_ms: int
    events: tuple = ()
    channel: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FrameApplied:
    """A frame was applied to the session at clock `now_ms` (the clock before the frame)."""

    frame: FrameReceived
    now_ms: int


@dataclass(frozen=True, slots=True)
class ClockTicked:
    """The execution clock reached `now_ms` and the broker filled what was due (worker)."""

    now_ms: int


@dataclass(frozen=True, slots=True)
class ReconnectApplied:
    """The feed reconnected (its marker came through the queue), applied at clock `now_ms`."""

    event: FeedReconnected
    now_ms: int


@dataclass(frozen=True, slots=True)
class WarmupFetched:
    """The REST warm-up candles (rows as the REST parser returned them)."""

    rows: tuple
    layout: str
    source: str


@dataclass(frozen=True, slots=True)
class DataSkipped:
    """A resumed replay drops data stamped before `until_ts` (seen, or missed while down)."""

    until_ts: int


# ---- facts --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SessionBegan:
    """The first market data of the run arrived (or a resumed segment picked the run up)."""

    run_id: str
    source: str
    data_start_ts: int
    duration_ms: int
    resumed: bool
    segment: int
    warmup: tuple = ()  # closed candles shown before the session's own
    fills: tuple = ()  # a resumed segment's fills so far (fill dicts), shown again


@dataclass(frozen=True, slots=True)
class QuoteApplied:
    quote: object  # trading.model.Quote


@dataclass(frozen=True, slots=True)
class KlineApplied:
    kline: object  # trading.model.KlineUpdate


@dataclass(frozen=True, slots=True)
class SignalRaised:
    ts: int
    side: str
    reason: str
    note: str
    candle_close: float


@dataclass(frozen=True, slots=True)
class SignalSkipped:
    """A strategy signal that sent no order: `why` is blocked / pending / stale / in_position."""

    ts: int
    side: str
    why: str
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EquitySampled:
    row: dict  # ts, equity, cash, realized, unrealized, position_qty (Decimals)


@dataclass(frozen=True, slots=True)
class BreakerTripped:
    ts: int
    reason: str


@dataclass(frozen=True, slots=True)
class PositionChanged:
    qty: str
    avg_px: str
    stop_px: float | None
    target_px: float | None


@dataclass(frozen=True, slots=True)
class JournalNote:
    """A line for the run's event log (journal `events` table and the report's Events)."""

    ts: int
    kind: str
    detail: dict


@dataclass(frozen=True, slots=True)
class SegmentStarted:
    segment: int
    resumed: bool
    state: dict  # the state document the segment starts from (what a replay restores)


@dataclass(frozen=True, slots=True)
class SegmentEnded:
    segment: int
    outcome: str
    reason: str


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session's trading ended at clock `now_ms` (input: a replay ends at the same point)."""

    now_ms: int
    reason: str
    flatten: bool


@dataclass(frozen=True, slots=True)
class AccountNoticed:
    source: str
    note: str


@dataclass(frozen=True, slots=True)
class OfflineFellBack:
    reason: str


@dataclass(frozen=True, slots=True)
class HealthSampled:
    health: dict


@dataclass(frozen=True, slots=True)
class StatusLine:
    text: str


@dataclass(frozen=True, slots=True)
class SessionFinished:
    report: dict
    run_dir: str
    final_equity: tuple = ()  # the account after the flatten: where the PnL chart ends
