"""Subscribers of the session's event stream: persistence, the run record, logs, the window.

Subscription order is commit order (see `wire`): the journal row first (the source of truth for
fills, orders, funding and candles), then the state file, then everything that only shows or
collects -- so a kill -9 at any point leaves the journal ahead of, never behind, what was seen.
"""
from __future__ import annotations

import json
import logging
import threading
from operator import attrgetter

from storage.journal import clean_json  # storage sits beside the runtime
from trading.events import (AccountNoticed, BreakerTripped, CandleClosed, EquitySampled,
                            FundingApplied, HealthSampled, JournalNote, KlineApplied,
                            OfflineFellBack, OrderCancelled, OrderFilled, OrderRejected,
                            OrderRested, OrderSubmitted, PositionChanged, QuoteApplied, ReconnectApplied,
                            SessionBegan, SessionFinished, SignalRaised, SignalSkipped,
                            StatusLine)

log = logging.getLogger("btc_laptop_agents.session")
_candle_row = attrgetter("ts", "open", "high", "low", "close", "volume")  # a journal row


EVENTS_KEPT = 500  # the run record's event log (the journal keeps them all)


class JournalWriter:
    """Writes the journal's rows: orders, fills, funding, candles, equity samples, event log."""

    CANDLE_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
    EQUITY_COLUMNS = ("ts", "equity", "cash", "realized", "unrealized", "position_qty")

    def __init__(self, journal, run_id: str) -> None:
        self.journal = journal  # () -> Journal | None: the session reopens it at finalize
        self.run_id = run_id
        self.held: list | None = None  # batching (a replay at engine speed): events wait
        self.candles: list[tuple] = []
        self.equity: list[tuple] = []

    def hold(self) -> None:
        """Keep the rows until `flush()` (the caller commits them at its checkpoints)."""
        if self.held is None:
            self.held = []

    def flush(self, release: bool = False) -> None:
        held, self.held = self.held, (None if release else [])
        j = self.journal()
        if j is None:
            return
        j.record_many("candles", self.CANDLE_COLUMNS, list(map(_candle_row, self.candles)),
                      run_id=self.run_id)
        j.record_many("equity", self.EQUITY_COLUMNS, [
            (r["ts"], str(r["equity"]), str(r["cash"]), str(r["realized"]),
             str(r["unrealized"]), str(r["position_qty"])) for r in self.equity],
            run_id=self.run_id)
        self.candles, self.equity = [], []
        # orders and fills in a few statements: an order sent and settled within the batch
        # is written once, in its final status (the same rows one write each would leave)
        orders: dict[str, dict] = {}
        fills: list[dict] = []
        statuses: list[tuple] = []
        for ev in held or ():
            op = self._op(ev)
            if op is None:
                self._write(j, ev)
            elif op[0] == "order":
                orders[op[1]["order_id"]] = op[1]
            else:
                if op[0] == "fill":
                    fills.append(op[1])
                    op = op[2]
                _, oid, status, ts, detail = op
                row = orders.get(oid)
                if row is None:
                    statuses.append((oid, status, ts, detail))
                else:
                    row.update(status=status, status_ts=ts)
                    if detail is not None:
                        row["detail"] = detail
        j.upsert_orders(list(orders.values()))
        j.record_fills(fills)
        for oid, status, ts, detail in statuses:
            j.set_order_status(oid, status, ts, detail)

    def _op(self, ev):
        """An order, fill or status event as the rows it writes (None: another event)."""
        run_id = self.run_id
        if isinstance(ev, OrderSubmitted):
            o = ev.order
            d = o.to_dict()
            return ("order", {**d, "run_id": run_id, "status": "pending",
                              "status_ts": o.signal_ts, "detail": clean_json(d)})
        if isinstance(ev, OrderFilled):
            f = ev.fill
            part = f.order_qty is not None and f.order_filled is not None \
                and f.order_filled < f.order_qty
            return ("fill", {**f.to_dict(), "run_id": run_id},
                    ("status", f.order_id, "partially_filled" if part else "filled",
                     f.fill_ts, None))
        if isinstance(ev, OrderRested):
            o = ev.order
            return ("status", o.order_id, "partially_filled" if o.filled_qty else "resting",
                    ev.ts, json.dumps(o.to_dict()))
        if isinstance(ev, OrderRejected):
            return ("status", ev.order_id, "rejected", ev.ts, ev.reason)
        if isinstance(ev, OrderCancelled):
            return ("status", ev.order_id, "cancelled", ev.ts, ev.reason + (
                f" ({ev.remaining} unfilled)" if ev.remaining is not None else ""))
        return None

    def on_candle(self, ev: CandleClosed) -> None:
        if self.held is None:
            self(ev)
        else:  # its row is made at the flush
            self.candles.append(ev.candle)

    def on_equity(self, ev: EquitySampled) -> None:
        if self.held is None:
            self(ev)
        else:
            self.equity.append(ev.row)

    def routes(self) -> dict:
        return {CandleClosed: self.on_candle, EquitySampled: self.on_equity}

    def __call__(self, ev) -> None:
        if self.held is not None:
            if isinstance(ev, CandleClosed):
                self.on_candle(ev)
            elif isinstance(ev, EquitySampled):
                self.on_equity(ev)
            else:
                self.held.append(ev)
            return
        j = self.journal()
        if j is None:
            return
        self._write(j, ev)

    def _write(self, j, ev) -> None:
        run_id = self.run_id
        op = self._op(ev)
        if op is not None:
            if op[0] == "order":
                j.record_order(op[1])
                return
            if op[0] == "fill":
                j.record_fill(op[1])
                op = op[2]  # the detail keeps the order's JSON: a restart restores from it
            _, oid, status, ts, detail = op
            j.set_order_status(oid, status, ts, detail)
        elif isinstance(ev, FundingApplied):
            j.record_funding({"run_id": run_id, "ts": ev.ts, "rate": ev.rate,
                              "mark_px": ev.mark_px, "position_qty": str(ev.position_qty),
                              "amount": str(ev.amount)})
        elif isinstance(ev, CandleClosed):
            j.record_candle({"run_id": run_id, **ev.candle.to_dict()})
        elif isinstance(ev, EquitySampled):
            j.record_equity({"run_id": run_id, **ev.row})
        elif isinstance(ev, JournalNote):
            j.record_event(run_id, ev.ts, ev.kind, ev.detail)

    TYPES = (OrderSubmitted, OrderFilled, OrderRejected, OrderCancelled, FundingApplied,
             CandleClosed, EquitySampled, JournalNote, OrderRested)


class StateWriter:
    """Saves the state file after every event that changes the account (after the journal)."""

    TYPES = (OrderSubmitted, OrderFilled, OrderCancelled, FundingApplied, OrderRested)

    def __init__(self, save) -> None:
        self.save = save
        self.paused = False  # a replay at engine speed saves at its checkpoints instead

    def __call__(self, ev) -> None:
        if not self.paused:
            self.save("running")


class RunRecord:
    """What the report is built from: fills, closed candles, equity samples, the event log."""

    TYPES = (OrderFilled, CandleClosed, EquitySampled, JournalNote)

    def __init__(self) -> None:
        self._fills: list[dict] = []
        self._unread: list = []  # Fill objects not yet asked for as rows
        self._rows_lock = threading.Lock()
        self.candles: list = []
        self.equity: list[dict] = []
        self.events: list[dict] = []

    @property
    def fills(self) -> list[dict]:
        """The fills as rows (`Fill.to_dict`), made when first asked for (a replay at engine
        speed makes thousands that nothing reads before its report). Any thread may ask
        while the publisher appends: the rows made are taken off the unread ones by count,
        so a fill appended meanwhile stays unread, not lost."""
        with self._rows_lock:
            unread = self._unread
            n = len(unread)
            if n:
                self._fills.extend(f.to_dict() for f in unread[:n])
                del unread[:n]
            return self._fills

    @fills.setter
    def fills(self, rows: list[dict]) -> None:
        with self._rows_lock:
            self._fills, self._unread = list(rows), []

    def on_candle(self, ev: CandleClosed) -> None:
        self.candles.append(ev.candle)

    def routes(self) -> dict:
        return {CandleClosed: self.on_candle}

    def __call__(self, ev) -> None:
        if isinstance(ev, OrderFilled):
            self._unread.append(ev.fill)
        elif isinstance(ev, CandleClosed):
            self.candles.append(ev.candle)
        elif isinstance(ev, EquitySampled):
            self.equity.append(ev.row)
        elif isinstance(ev, JournalNote):
            self.events.append({"ts": ev.ts, "kind": ev.kind, "detail": ev.detail})
            del self.events[:-EVENTS_KEPT]


class LogWriter:
    """The log lines of trading: fills, signals, rejects, cancels, funding, breaker trips."""

    TYPES = (OrderFilled, OrderRejected, OrderCancelled, FundingApplied, SignalRaised,
             SignalSkipped, BreakerTripped, ReconnectApplied, JournalNote, SessionBegan,
             OrderRested)

    quiet = False  # a replay at engine speed: fills and signals are in the journal only

    def __call__(self, ev) -> None:
        if self.quiet and isinstance(ev, (OrderFilled, SignalRaised, SignalSkipped)):
            return
        if isinstance(ev, OrderFilled):
            f = ev.fill
            if f.signal_ts is not None:
                log.info("Strategy Fill", extra={
                    "order_id": f.order_id, "side": f.side.value, "qty": str(f.qty),
                    "reason": f.reason, "candle_close": f.signal_px, "fill_px": f.fill_px,
                    "bid": f.bid, "ask": f.ask, "latency_ms": f.latency_ms,
                    "latency_drift_bps": round(f.latency_drift_bps or 0.0, 3),
                    "spread_cost_bps": round(f.spread_cost_bps, 3), "fee": str(f.fee),
                    "liquidity": f.liquidity, "depth_cost_bps": round(f.depth_cost_bps, 3),
                    "order_filled": f"{f.order_filled}/{f.order_qty}"})
            else:
                log.info("Exit Fill", extra={
                    "order_id": f.order_id, "side": f.side.value, "qty": str(f.qty),
                    "reason": f.reason, "trigger_px": f.trigger_px, "fill_px": f.fill_px,
                    "bid": f.bid, "ask": f.ask, "fee": str(f.fee)})
        elif isinstance(ev, OrderRejected):
            log.warning("order_rejected", extra={"order_id": ev.order_id, "reason": ev.reason})
        elif isinstance(ev, OrderCancelled):
            log.info("order_cancelled", extra={"order_id": ev.order_id, "reason": ev.reason,
                                               "remaining": None if ev.remaining is None
                                               else str(ev.remaining)})
        elif isinstance(ev, OrderRested):
            o = ev.order
            log.info("order_resting", extra={"order_id": o.order_id, "side": o.side.value,
                                             "limit_px": o.limit_px, "tif": o.tif,
                                             "remaining": str(o.remaining),
                                             "queue_ahead": o.queue_ahead})
        elif isinstance(ev, FundingApplied):
            log.info("funding_applied", extra={"amount": str(ev.amount), "rate": ev.rate,
                                               "mark_px": ev.mark_px})
        elif isinstance(ev, SignalRaised):
            log.info("signal", extra={"side": ev.side, "reason": ev.reason, "note": ev.note,
                                      "candle_close": ev.candle_close, "signal_ts": ev.ts})
        elif isinstance(ev, SignalSkipped):
            if ev.why == "blocked":
                log.warning("SIGNAL BLOCKED: Circuit breaker is tripped.", extra={
                    "side": ev.side, "signal_ts": ev.ts, **ev.detail})
            elif ev.why == "stale":
                log.warning("signal_skipped_stale_candle", extra={"side": ev.side, **ev.detail})
            elif ev.why == "pending":
                log.info("signal_ignored_order_pending", extra={"side": ev.side, **ev.detail})
        elif isinstance(ev, BreakerTripped):
            log.warning("circuit_breaker_tripped", extra={"reason": ev.reason})
        elif isinstance(ev, ReconnectApplied):
            log.info("quote_marked_stale_after_reconnect",
                     extra={"connects": ev.event.connects})
        elif isinstance(ev, JournalNote) and ev.kind == "orders_due_during_downtime_sent_now":
            log.warning(ev.kind, extra={"orders": ev.detail["orders"], "at_ts": ev.ts})
        elif isinstance(ev, SessionBegan) and not ev.resumed:
            from trading.runtime.common import iso
            log.info("session_started", extra={
                "run_id": ev.run_id, "source": ev.source, "data_start": iso(ev.data_start_ts),
                "warmup_candles": len(ev.warmup), "duration_min": ev.duration_ms / 60_000})


class WindowPublisher:
    """Translates events into the window bridge's `publish(kind, payload)` (never raises)."""

    def __init__(self, publish) -> None:
        self.publish = publish

    def __call__(self, ev) -> None:
        try:
            self._send(ev)
        except Exception:  # noqa: BLE001 - a display must never stop the session
            log.exception("window_publish_failed", extra={"event": type(ev).__name__})

    def _send(self, ev) -> None:
        p = self.publish
        if isinstance(ev, QuoteApplied):
            p("quote", ev.quote)
        elif isinstance(ev, KlineApplied):
            p("kline", ev.kline)
        elif isinstance(ev, CandleClosed):
            p("candle", ev.candle)
        elif isinstance(ev, OrderSubmitted):
            p("order", ev.order)
        elif isinstance(ev, OrderRested):
            p("order", ev.order)  # the same row, now resting with its queue position
        elif isinstance(ev, OrderFilled):
            f = ev.fill
            p("fill", f.to_dict())
            if f.order_qty is not None and f.order_filled is not None \
                    and f.order_filled < f.order_qty:
                p("order_progress", {"order_id": f.order_id, "filled": str(f.order_filled),
                                     "remaining": str(f.order_qty - f.order_filled),
                                     "status": "partially filled"})
            else:
                p("order_done", {"order_id": f.order_id, "status": "filled",
                                 "reason": f.reason})
        elif isinstance(ev, OrderRejected):
            p("order_done", {"order_id": ev.order_id, "status": "rejected",
                             "reason": ev.reason})
        elif isinstance(ev, OrderCancelled):
            done = {"order_id": ev.order_id, "status": "cancelled", "reason": ev.reason}
            if ev.remaining is not None:
                done["remaining"] = str(ev.remaining)
            p("order_done", done)
        elif isinstance(ev, PositionChanged):
            p("position", {"qty": ev.qty, "avg_px": ev.avg_px, "stop_px": ev.stop_px,
                           "target_px": ev.target_px})
        elif isinstance(ev, EquitySampled):
            p("equity", ev.row)
        elif isinstance(ev, SessionBegan):
            p("history", [c.to_dict() for c in ev.warmup])
            p("session_started", {"run_id": ev.run_id, "source": ev.source,
                                  "data_start_ts": ev.data_start_ts, "resumed": ev.resumed,
                                  "segment": ev.segment, "duration_ms": ev.duration_ms})
            for f in ev.fills:
                p("fill", f)
        elif isinstance(ev, HealthSampled):
            p("health", ev.health)
        elif isinstance(ev, StatusLine):
            p("status", ev.text)
        elif isinstance(ev, AccountNoticed):
            p("account_notice", {"source": ev.source, "note": ev.note})
        elif isinstance(ev, OfflineFellBack):
            p("offline_fallback", {"reason": ev.reason})
        elif isinstance(ev, SessionFinished):
            for row in ev.final_equity:
                p("equity", row)
            p("finished", ev.report)


class ConsoleWriter:
    """The console: the status line, the offline banner, an account rebuilt or reset."""

    TYPES = (StatusLine, OfflineFellBack, AccountNoticed)

    def __init__(self, stream) -> None:
        self.stream = stream

    def __call__(self, ev) -> None:
        from trading.runtime.common import say
        if isinstance(ev, StatusLine):
            say(self.stream, ev.text)
        elif isinstance(ev, OfflineFellBack):
            msg = (f"OFFLINE: Bitunix is unreachable ({ev.reason}); replaying the bundled real "
                   f"BTC data instead. This session is NOT live market data.")
            say(self.stream, "!" * 78 + "\n" + msg + "\n" + "!" * 78)
        elif isinstance(ev, AccountNoticed):
            say(self.stream, f"ACCOUNT {ev.source.upper()}: {ev.note}")
