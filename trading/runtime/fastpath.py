"""The replay at engine speed: `--speed max` on a bar file (OHLCV) or a quote-tick file.

The rows go to the same engine, candles, strategy, broker and ledger as every other session,
with nothing in between that a replay does not need:

- no frames: a row becomes a typed `Quote` / closed `Candle` (the socket path keeps the real
  protocol parser and stays tested; this path only skips encoding frames to parse them again),
  built without checking each price again (the loader checked every row of the file);
- a bar without quotes becomes at most four quotes at the configured spread, in the likelier
  order (open, the extreme nearer the open, the other extreme, close) at 0, 15, 30 and 45 s
  into the minute; a repeated price is not sent again. The bar closes at the next bar's open,
  before that bar's first quote, so with latency 0 a signal on bar t's close fills at bar t+1's
  open (at the bid/ask in force then, like every fill);
- quote ticks are applied as they are; their 1m candles are the mids' OHLC, closed by the first
  quote of the next minute;
- the execution clock is ticked inline (no worker thread): an order due at `d` fills at the
  quote in force at `d`, before the first input later than `d`;
- journal rows are batched: one transaction per checkpoint (each wall second and at the end),
  then the state file, journal first (a crash resumes from the last checkpoint: the rows after
  it are replayed again, exactly);
- crash-only as every session: after a crash (`--inject-crash-after-s` crashes the loop at a
  checkpoint) the watchdog resumes from the journal and the state file; the rows seen before
  the crash rebuild the candle that was forming, and nothing else;
- equity is sampled by market time (`equity_every_ms`, at least a minute and at most 5,000
  samples a run), not per quote.

A file with depth and trades (the Binance windows) or the bundled quote-bar day (its modelled
depth and intra-minute quote path) keeps the frame path at `--speed max`.
"""
from __future__ import annotations

import gc
import logging
import time

from trading.model import trusted_candle, trusted_quote

log = logging.getLogger("btc_laptop_agents.session")

CHECKPOINT_EVERY_S = 1.0
KINDS = ("ohlcv", "quote_ticks")


def supports(data) -> bool:
    """Whether this file replays at engine speed (bars or quotes, no depth, no trades)."""
    return data.kind in KINDS and getattr(data, "books", None) is None


def equity_every_ms(duration_ms: int, configured: int) -> int:
    return max(int(configured), 60_000, duration_ms // 5000)


class FastReplay:
    """The rows of `data` from `start`, applied to session `s` by `run()`."""

    skip_idle = True  # a bar's extremes are not applied when nothing can act on them

    def __init__(self, s, data, start: int) -> None:
        self.s, self.data, self.start = s, data, int(start or 0)
        if data.kind == "quote_ticks" and self.start:  # a minute index: its first row
            from trading.replay import _tick_minutes
            self.start = _tick_minutes(data)[self.start][7]
        self.end_reason = ""
        self.rows_applied = 0
        self.loop_seconds = 0.0  # wall time of the loop and its journal commits
        # a checkpoint each wall second, or as often as the state file is saved when that is
        # more often
        self.checkpoint_every_s = min(CHECKPOINT_EVERY_S, s.config.state_save_every_s)
        s.engine.equity_every_ms = equity_every_ms(s.config.duration_ms,
                                                   s.config.equity_every_ms)

    def warmup_rows(self, limit: int = 200) -> list[dict]:
        """The bars before the start (the REST history a live session fetches)."""
        if self.data.kind != "ohlcv":
            return []
        rows = self.data.rows[max(0, self.start - limit):self.start]
        return [{"ts": int(r[0]), "open": r[1], "high": r[2], "low": r[3], "close": r[4],
                 "volume": r[5]} for r in rows]

    # ---- the loop ----
    def run(self) -> None:
        s = self.s
        from trading.events import ClockTicked, PositionChanged, QuoteApplied
        # events nobody subscribes to are not made (headless, not recorded: a file replays
        # the run exactly)
        s.engine.unheard = frozenset(t for t in (QuoteApplied, ClockTicked, PositionChanged)
                                     if not s.bus.heard(t))
        s.state_writer.paused = True
        s.journal_writer.hold()
        s.log_writer.quiet = True
        # what exists before the loop (the file's rows, the modules) lives for the whole
        # run: out of the collector's way; and the collector runs at each checkpoint (its
        # young generations: what a wall second of the loop left) rather than every 700
        # allocations, which walked the run's candles again and again (~10 % of a month)
        gc.collect()
        gc.freeze()
        collecting = gc.isenabled()
        gc.disable()
        t0 = time.perf_counter()
        try:
            (self._bars if self.data.kind == "ohlcv" else self._ticks)()
        finally:
            if collecting:
                gc.enable()
            gc.unfreeze()
            self._commit(release=True)  # the journal's last batch is part of the run
            self.loop_seconds = time.perf_counter() - t0
            s.state_writer.paused = False
            s.log_writer.quiet = False
            s.engine.unheard = frozenset()
        s._save_state("running")

    def _commit(self, release: bool = False) -> None:
        j = self.s.journal
        j.begin_batch()
        try:
            self.s.journal_writer.flush(release=release)
        finally:
            j.commit_batch()

    def _checkpoint(self) -> None:
        """Journal first (one transaction), then the state file; then the heartbeat and
        the progress line. `--inject-crash-after-s` crashes the loop here (there is no worker
        thread to crash): the watchdog resumes the run from this checkpoint."""
        s = self.s
        self._commit()
        s._save_state("running")
        gc.collect(1)
        from trading.runtime import loop
        loop.housekeeping(s)
        crash = s.config.inject_crash_after_s
        if crash is not None and not s.injected.get("crash") \
                and time.monotonic() - s.started_mono >= crash:
            from trading.runtime.common import InjectedFault
            s._on_inject_crash()
            raise InjectedFault("injected crash in the engine-speed replay loop")

    def _due_before(self, ts: int) -> None:
        """Fill what came due before `ts` at the quote in force then (the worker's job)."""
        br, eng = self.s.broker, self.s.engine
        while br.pending or br.resting:
            d = br.next_due()
            if d is None or d >= ts:
                return
            eng.clock.observe(d)
            eng.tick(d)

    def _bars(self) -> None:
        s = self.s
        eng, br, stop = s.engine, s.broker, s.stop_event
        half = s.config.spread_usd / 2.0
        sym = s.config.symbol
        skip = eng.skip_until
        rows = self.data.rows
        prev = None
        last_px = None  # the price of the quote in force
        every = self.checkpoint_every_s
        next_check = time.monotonic() + every
        n = 0
        apply_quote, close_candle, due_before = eng.apply_quote, eng.close_candle, \
            self._due_before
        idle_until = eng.idle_until if self.skip_idle else None
        end = self._end_ts()
        for i in range(self.start, len(rows)):
            ts, o, h, lo, c, v = rows[i][:6]
            ts = int(ts)
            if ts < skip:  # seen before a crash: its candle closes at the next bar as ever
                prev = (ts, o, h, lo, c, v)
                continue
            if prev is not None:
                if br.pending or br.resting:
                    due_before(ts)
                close_candle(trusted_candle(*prev, ts))
            if end is None:
                end = self._end_ts()
            if (end is not None and ts >= end) or stop.is_set():
                self.end_reason = "duration reached" if not stop.is_set() else ""
                return
            # open, the extreme nearer the open, the other extreme, close: at 0, 15, 30, 45 s
            # (a price the quote in force already says is not sent again; orders due by then
            # fill first, at the quote in force when they came due)
            if h - o <= o - lo:
                x1, x2 = h, lo
            else:
                x1, x2 = lo, h
            if o != last_px:
                if br.pending or br.resting:
                    due_before(ts)
                apply_quote(trusted_quote(ts, o - half, o + half, 0.0, 0.0, sym))
                last_px = o
            elif br.pending or br.resting:
                due_before(ts + 1)
            if idle_until is not None and idle_until(ts + 45_000):
                # nothing can act on the extremes: the close follows them (counted)
                eng.quotes_idle += (x1 != last_px) + (x2 != x1)
            else:
                for px, qts in ((x1, ts + 15_000), (x2, ts + 30_000)):
                    if px != last_px:
                        if br.pending or br.resting:
                            due_before(qts)
                        apply_quote(trusted_quote(qts, px - half, px + half, 0.0, 0.0, sym))
                        last_px = px
                    elif br.pending or br.resting:
                        due_before(qts + 1)
            if c != last_px:
                if br.pending or br.resting:
                    due_before(ts + 45_000)
                apply_quote(trusted_quote(ts + 45_000, c - half, c + half, 0.0, 0.0, sym))
                last_px = c
            elif br.pending or br.resting:
                due_before(ts + 45_001)
            prev = (ts, o, h, lo, c, v)
            n += 1
            if not n & 255 and time.monotonic() >= next_check:
                self._checkpoint()
                next_check = time.monotonic() + every
        self.rows_applied = n
        self.end_reason = "replay data ended"

    def _end_ts(self) -> int | None:
        """Data time at which the session's duration is reached (None before it begins)."""
        eng = self.s.engine
        return None if eng.start_data_ts is None else eng.start_data_ts + eng.duration_ms

    def _ticks(self) -> None:
        s = self.s
        eng, br, stop = s.engine, s.broker, s.stop_event
        sym = s.config.symbol
        skip = eng.skip_until
        rows = self.data.rows
        minute = None
        co = ch = cl = cc = 0.0
        every = self.checkpoint_every_s
        next_check = time.monotonic() + every
        n = 0
        apply_quote, close_candle = eng.apply_quote, eng.close_candle
        for i in range(self.start, len(rows)):
            ts, bid, ask, bs, as_ = rows[i][:5]
            ts = int(ts)
            seen = ts < skip  # before a crash: it builds the minute's candle, nothing else
            mid = (bid + ask) / 2.0
            m = ts // 60_000
            if m != minute:
                if minute is not None and not seen:
                    if br.pending or br.resting:
                        self._due_before(ts)
                    close_candle(trusted_candle(minute * 60_000, co, ch, cl, cc, 0.0, ts))
                end = self._end_ts()
                if (end is not None and ts >= end) or stop.is_set():
                    self.end_reason = "duration reached" if not stop.is_set() else ""
                    return
                # the minute opens at the price in force when it starts (as the frame path)
                co = cc if minute is not None else mid
                minute, ch, cl = m, max(co, mid), min(co, mid)
            elif mid > ch:
                ch = mid
            elif mid < cl:
                cl = mid
            cc = mid
            if seen:
                continue
            if br.pending or br.resting:
                self._due_before(ts)
            apply_quote(trusted_quote(ts, bid, ask, bs, as_, sym))
            n += 1
            if not n & 1023 and time.monotonic() >= next_check:
                self._checkpoint()
                next_check = time.monotonic() + every
        self.rows_applied = n
        self.end_reason = "replay data ended"
