"""The trading engine: market data in, events out -- candles, strategy, broker and breaker.

Pure: no threads, no sockets, no Qt, no wall clock. Every input arrives as a call with the
clock value it happened at; every consequence leaves as an event through `emit` (the session's
event bus), in the order it happened. The live session, the local-exchange replay and the replay
of a recording all drive this same object, so the same inputs give the same fills.

The caller holds the session lock around every call (the execution worker calls `tick`).
"""
from __future__ import annotations

import math
from decimal import Decimal

from trading.book import Book
from trading.candles import CandleBuilder
from trading.events import (BreakerTripped, ClockTicked, FrameApplied,
                            JournalNote, KlineApplied, PositionChanged, QuoteApplied,
                            ReconnectApplied,
                            SessionBegan, SignalRaised, SignalSkipped, EquitySampled)
from trading.model import (Candle, CandleClosed, FeedReconnected, FundingApplied,
                           FundingInfo, KlineUpdate,
                           OrderFilled, OrderRejected, Quote, Side, TradeTick)
from trading.strategy import EntryOrders

STALE_SIGNAL_MS = 5_000  # a candle closed this late (after a data gap) is not acted on


class TradingEngine:
    """One run's trading state; `emit(event)` receives everything it does."""

    COUNTERS = ("events_in", "quotes_in", "klines_in", "books_in", "trades_in", "other_symbol",
                "stale_quotes",
                "blocked_signals", "ignored_signals", "error_count", "warmup_candles",
                "missed_while_down", "quotes_idle")

    def __init__(self, *, broker, breaker, strategy, clock, emit, symbol: str,
                 duration_ms: int, equity_every_ms: int = 5000,
                 entry: EntryOrders | None = None) -> None:
        self.broker, self.breaker, self.strategy = broker, breaker, strategy
        self.entry = entry or EntryOrders()
        self.clock, self.emit, self.symbol = clock, emit, symbol
        self.duration_ms, self.equity_every_ms = duration_ms, equity_every_ms
        self.candles = CandleBuilder()
        self.starting_equity = broker.ledger.starting_cash
        self.start_data_ts: int | None = None
        self.run_id, self.source, self.segment = "", "", 1
        self.warmup_rows: list[dict] = []
        for name in self.COUNTERS:
            setattr(self, name, 0)
        self.round_trips: list[Decimal] = []
        self.open_fees = Decimal("0")
        self.open_realized = Decimal("0")
        self.last_equity_ts = 0
        self.skip_until = 0  # data before this was seen before a crash or missed while down
        self.retime_pending = False  # orders due while the session was down go out at once
        # event types nobody subscribes to (a headless replay: QuoteApplied, ClockTicked,
        # PositionChanged): not made
        self.unheard: frozenset = frozenset()

    # ---- inputs ----
    def apply_frame(self, frame, now_ms: int) -> None:
        """A frame the feed received, applied at clock `now_ms` (before its data moves it)."""
        self.emit(FrameApplied(frame, now_ms))
        if frame.error is not None:
            self._feed_failure("parse", now_ms, frame.error)
            return
        for ev in frame.events:
            self.apply_market(ev)

    def tick(self, now_ms: int) -> bool:
        """The execution clock reached `now_ms`: fill what is due; return whether anything did."""
        events = self.broker.advance(now_ms)
        if not events:
            return False
        if ClockTicked not in self.unheard:
            self.emit(ClockTicked(now_ms))
        self._broker_events(events)
        return True

    def reconnected(self, ev: FeedReconnected, now_ms: int) -> None:
        """The feed lost its connection and is back: the last quote is no longer in force."""
        self.emit(ReconnectApplied(ev, now_ms))
        self.broker.mark_quote_stale()
        self._feed_failure("reconnect", now_ms, f"reconnected (connect {ev.connects})")
        self.emit(JournalNote(now_ms, "feed_reconnected", {"connects": ev.connects}))

    def apply_market(self, ev) -> None:
        self.events_in += 1
        if self.skip_until and getattr(ev, "ts", self.skip_until) < self.skip_until:
            self.missed_while_down += 1
            return
        sym = getattr(ev, "symbol", self.symbol)
        if sym and sym != self.symbol:
            self.other_symbol += 1
            return
        if isinstance(ev, Quote):
            self._on_quote(ev)
        elif isinstance(ev, KlineUpdate):
            self.klines_in += 1
            self.begin(ev.ts)
            self.clock.observe(ev.ts)
            closed = self.candles.on_kline(ev)
            if closed is not None:
                self._on_candle_closed(closed)
            self.emit(KlineApplied(ev))
        elif isinstance(ev, FundingInfo):
            self._broker_events(self.broker.on_funding_info(ev))
        elif isinstance(ev, Book):
            self.books_in += 1
            self.broker.on_book(ev)
        elif isinstance(ev, TradeTick):
            self.trades_in += 1
            self._broker_events(self.broker.on_trade(ev))
        elif isinstance(ev, FeedReconnected):  # an inline replay's marker
            self.reconnected(ev, self.clock.now_ms())

    # ---- a replay at engine speed (trading.runtime.fastpath): typed inputs, no frames ----
    def apply_quote(self, q: Quote) -> None:
        """A quote read from a file (not from a frame)."""
        self.events_in += 1
        self._on_quote(q)

    def close_candle(self, c: Candle) -> None:
        """A bar of a file, closed at `c.closed_ts` (the next bar's open), as the first push of
        the next minute closes a kline's candle."""
        self.events_in += 1
        self.klines_in += 1
        self.clock.observe(c.closed_ts)
        self._on_candle_closed(c)

    def idle_until(self, ts: int) -> bool:
        """Whether quotes from now to data time `ts` could do nothing but replace the quote in
        force: nothing pending or resting, no stop or target on the position, no funding due,
        no stale quote or downtime retime waiting, the session begun, no equity sample due by
        `ts` and nobody listening to quotes. A replay at engine speed then does not apply a
        bar's two intra-bar extremes (they are counted in `quotes_idle`) when this holds
        through the bar's close (45 s): whether the close is sent again depends on them, and a
        sample due by then would move. The bar ends at its close's price either way, so every
        fill, sample and figure is the same."""
        b = self.broker
        p = b.position
        return (QuoteApplied in self.unheard and self.start_data_ts is not None
                and not self.retime_pending and not b.pending and not b.resting
                and b.funding_due_ts is None and not b.quote_stale
                and p.stop_px is None and p.target_px is None
                and ts - self.last_equity_ts < self.equity_every_ms)

    def _on_quote(self, q: Quote) -> None:
        self.quotes_in += 1
        ts = q.ts
        broker = self.broker
        last = broker.quote
        if last is not None and ts < last.ts:
            self.stale_quotes += 1  # out-of-order push: an older quote never replaces a newer
            return
        if self.start_data_ts is None:
            self.begin(ts)
        if self.retime_pending:
            self.retime_pending = False
            moved = self.broker.retime_overdue(q.ts)
            if moved:
                self.emit(JournalNote(q.ts, "orders_due_during_downtime_sent_now",
                                      {"orders": moved}))
        events = broker.on_quote(q)
        # the clock moves only once the quote is in force, so the worker never fills an order
        # due at this instant at the previous quote
        self.clock.observe(ts)
        if events:
            self._broker_events(events)
        if QuoteApplied not in self.unheard:
            self.emit(QuoteApplied(q))
        if ts - self.last_equity_ts >= self.equity_every_ms:
            self.sample_equity(ts)

    def begin(self, ts: int) -> None:
        if self.start_data_ts is not None:
            return
        self.start_data_ts = ts
        first_minute = (ts // 60000) * 60000
        candles = tuple(Candle(ts=r["ts"], open=r["open"], high=r["high"], low=r["low"],
                               close=r["close"], volume=r["volume"])
                        for r in self.warmup_rows if r["ts"] < first_minute)
        self.strategy.warm_up(candles)
        self.warmup_candles = len(candles)
        self.emit(SessionBegan(self.run_id, self.source, ts, self.duration_ms, False,
                               self.segment, candles))

    # ---- the strategy ----
    def _on_candle_closed(self, c: Candle) -> None:
        """The last push of a minute is final; ask the strategy."""
        now = c.closed_ts
        broker = self.broker
        broker.on_candle_close(c.close)
        position = broker.position.qty
        self.emit(CandleClosed(c))
        try:
            signal = self.strategy.on_candle(c, position)
        except Exception as e:  # noqa: BLE001 - a strategy bug would recur after a restart
            raise StrategyFailed(f"strategy {self.strategy.name} raised "
                                 f"{type(e).__name__}: {e}") from e
        if signal is None:
            return
        pending = broker.has_working()  # (neither the strategy nor the event changed it)
        if signal.target is not None:
            self._to_target(c, signal, position, pending)
            return
        side = signal.side.value
        late_ms = c.closed_ts - (c.ts + 60_000)
        if late_ms > STALE_SIGNAL_MS:
            # closed by the first push after a data gap: its last push may not be its final
            # state, and the moment to act on it has passed
            self.ignored_signals += 1
            self.emit(SignalSkipped(now, side, "stale", {"candle_ts": c.ts,
                                                         "closed_late_ms": late_ms}))
            return
        if pending:
            self.ignored_signals += 1
            self.emit(SignalSkipped(now, side, "pending", {"reason": signal.reason}))
            return
        if signal.reason == "entry":
            if not self._allowed(now, side, c):
                return
            if position != 0:
                self.ignored_signals += 1
                self.emit(SignalSkipped(now, side, "in_position", {}))
                return
        self._send(c, signal.side, signal.reason, signal.stop_distance, signal.target_distance,
                   None)
        self.emit(SignalRaised(now, side, signal.reason, signal.note, c.close))

    def _allowed(self, now: int, side: str, c: Candle) -> bool:
        if self.breaker.allow(now):
            return True
        self.blocked_signals += 1
        self.emit(SignalSkipped(now, side, "blocked", {
            "trip_reason": self.breaker.trip_reason, "candle_close": c.close}))
        self.emit(JournalNote(now, "signal_blocked", {"trip_reason": self.breaker.trip_reason}))
        return False

    def _to_target(self, c: Candle, signal, position: Decimal, pending: bool) -> None:
        """A target position: one order for target - position (a reversal is one order)."""
        now = c.closed_ts
        t = signal.target
        if t not in (-1, 0, 1):
            raise StrategyFailed(f"strategy {self.strategy.name} returned target {t!r} "
                                 f"(must be -1, 0 or 1)")
        want_side = "BUY" if t > 0 else "SELL" if t < 0 else ("SELL" if position > 0 else "BUY")
        late_ms = now - (c.ts + 60_000)
        if late_ms > STALE_SIGNAL_MS or pending:
            self.ignored_signals += 1
            self.emit(SignalSkipped(now, want_side, "stale" if late_ms > STALE_SIGNAL_MS
                                    else "pending", {"target": t}))
            return
        if t == 0:
            if position == 0:
                return
            self._send(c, Side.SELL if position > 0 else Side.BUY, "exit", 0.0, 0.0, None)
            self.emit(SignalRaised(now, want_side, "exit", signal.note, c.close))
            return
        if (position > 0) == (t > 0) and position != 0:
            return  # already there
        if not self._allowed(now, want_side, c):
            return
        q = self.broker.quote
        ref = (q.ask if t > 0 else q.bid) if q is not None else c.close
        size = self.broker.size_for(signal.stop_distance, ref)
        qty = size + abs(position)  # from short to long (or back) in one order
        self._send(c, Side.BUY if t > 0 else Side.SELL, "entry", signal.stop_distance,
                   signal.target_distance, qty)
        self.emit(SignalRaised(now, want_side, "entry", signal.note, c.close))

    def _send(self, c: Candle, side: Side, reason: str, stop: float, target: float,
              qty: Decimal | None) -> None:
        now = c.closed_ts
        q = self.broker.quote
        e = self.entry
        if e.order_type == "limit" and reason == "entry" and q is not None:
            # at the best bid (buy) / ask (sell), offset away from the market, on a 0.1 tick
            buy = side is Side.BUY
            raw = q.bid * (1 - e.limit_offset_bps / 1e4) if buy else \
                q.ask * (1 + e.limit_offset_bps / 1e4)
            price = (math.floor(raw * 10 + 1e-9) if buy else math.ceil(raw * 10 - 1e-9)) / 10
            events = self.broker.submit_limit(
                side, reason, now_ts=now, signal_ts=now, signal_px=c.close, price=price,
                tif=e.limit_tif, timeout_ms=e.timeout_ms, stop_distance=stop,
                target_distance=target, qty=qty)
        else:
            events = self.broker.submit(side, reason, now_ts=now, signal_ts=now,
                                        signal_px=c.close, stop_distance=stop,
                                        target_distance=target, qty=qty)
        self._broker_events(events)

    # ---- the broker's events ----
    def _broker_events(self, events: list) -> None:
        for ev in events:
            if isinstance(ev, OrderRejected):
                self.error_count += 1
                self.emit(ev)
                self._trip_if(self.breaker.record_failure("reject", ev.ts, ev.reason), ev.ts)
                self.emit(JournalNote(ev.ts, "order_rejected", {"order_id": ev.order_id,
                                                                "reason": ev.reason}))
            elif isinstance(ev, OrderFilled):
                self.emit(ev)
                self.count_round_trip(ev.fill)
                if PositionChanged not in self.unheard:
                    pos = self.broker.position
                    self.emit(PositionChanged(str(pos.qty), str(pos.avg_px), pos.stop_px,
                                              pos.target_px))
            else:
                self.emit(ev)
                if isinstance(ev, FundingApplied):
                    self.emit(JournalNote(ev.ts, "funding", {"amount": str(ev.amount),
                                                             "rate": ev.rate}))

    def count_round_trip(self, f, quiet: bool = False) -> None:
        """Accumulate a fill into the open round trip; close it (and tell the breaker) when flat.

        `quiet`: a fill read back from the journal on resume (its trip, if any, was said)."""
        before = f.position_after - f.qty * f.side.sign
        reversed_ = before != 0 and f.position_after != 0 and (before > 0) != (
            f.position_after > 0)
        if f.position_after == 0 or reversed_:
            # a reversal closes one round trip and opens the next: its fee is split by qty
            fee_close = f.fee if not reversed_ else (
                f.fee * abs(before) / f.qty).quantize(Decimal("1e-8"))
            net = self.open_realized + f.realized_pnl - self.open_fees - fee_close
            self.round_trips.append(net)
            self.open_fees = f.fee - fee_close
            self.open_realized = Decimal("0")
            tripped = self.breaker.record_round_trip(float(net), f.fill_ts)
            if not quiet:
                self._trip_if(tripped, f.fill_ts)
            return
        self.open_fees += f.fee
        self.open_realized += f.realized_pnl
        if f.reason == "entry":
            self.breaker.record_success(f.fill_ts)

    # ---- account figures ----
    def equity_row(self, ts: int) -> dict:
        b = self.broker
        return {"ts": ts, "equity": b.equity(), "cash": b.ledger.cash,
                "realized": b.ledger.realized_pnl, "unrealized": b.unrealized(),
                "position_qty": b.position.qty}

    def sample_equity(self, ts: int) -> None:
        if ts - self.last_equity_ts < self.equity_every_ms:
            return
        self.last_equity_ts = ts
        row = self.equity_row(ts)
        self.emit(EquitySampled(row))
        self._trip_if(self.breaker.check_session_loss(float(self.starting_equity),
                                                      float(row["equity"]), ts), ts)

    def _feed_failure(self, kind: str, now_ms: int, detail: str) -> None:
        self._trip_if(self.breaker.record_failure(kind, now_ms, detail), now_ms)

    def _trip_if(self, tripped: bool, ts: int) -> None:
        if tripped:
            self.emit(BreakerTripped(ts, self.breaker.trip_reason))
            self.emit(JournalNote(ts, "breaker_tripped", {"reason": self.breaker.trip_reason}))

    # ---- the end ----
    def flatten(self, now_ms: int, reason: str = "flatten") -> None:
        self._broker_events(self.broker.flatten(now_ms, reason=reason))

    def finish(self, now_ms: int, flatten: bool) -> None:
        """The session's time is up at `now_ms`: fill what was due, then flatten if asked."""
        self._broker_events(self.broker.advance(now_ms))
        if flatten:
            self.flatten(now_ms)

    def over(self) -> bool:
        return self.start_data_ts is not None and \
            self.clock.now_ms() >= self.start_data_ts + self.duration_ms

    # ---- persistence ----
    def counters(self) -> dict:
        return {name: getattr(self, name) for name in self.COUNTERS}

    def state(self) -> dict:
        """What a resumed segment (or a replay of one) needs besides broker/breaker/strategy."""
        return {"start_data_ts": self.start_data_ts, "skip_until": self.skip_until,
                "round_trips": [str(x) for x in self.round_trips],
                "open_fees": str(self.open_fees), "open_realized": str(self.open_realized),
                "starting_equity": str(self.starting_equity),
                "last_equity_ts": self.last_equity_ts, "counters": self.counters()}

    def restore(self, d: dict) -> None:
        self.start_data_ts = d.get("start_data_ts")
        self.skip_until = int(d.get("skip_until") or 0)
        self.round_trips = [Decimal(x) for x in d.get("round_trips", [])]
        self.open_fees = Decimal(d.get("open_fees", "0"))
        self.open_realized = Decimal(d.get("open_realized", "0"))
        self.starting_equity = Decimal(d.get("starting_equity", str(self.starting_equity)))
        self.last_equity_ts = int(d.get("last_equity_ts") or 0)
        for name, v in (d.get("counters") or {}).items():
            if name in self.COUNTERS and isinstance(v, int):
                setattr(self, name, v)


class StrategyFailed(RuntimeError):
    """The strategy raised: a bug a restart cannot fix."""
