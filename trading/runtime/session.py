"""The paper-trading session: wires feed, candles, strategy, broker, breaker, journal, reports.

Threads: the caller's thread runs `Session.run()` (the session loop: it consumes the feed queue,
closes candles, asks the strategy, submits orders); the feed thread fills the queue; the
execution worker fills due orders. The broker is shared by the loop and the worker under one
lock. Reports are written in a `finally`, on success and on error.
"""
from __future__ import annotations

import json
import logging
import math
import os
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

from trading.bitunix import (DEFAULT_CHANNELS, PUBLIC_WS_URL, REST_BASE_URL, ProtocolError,
                             kline_url, parse_frame, parse_rest_klines_layout, short_channel)
from trading.broker import BrokerConfig, PaperBroker
from trading.candles import CandleBuilder
from trading.model import (Candle, FeedReconnected, Fill, FundingApplied, FundingInfo,
                           KlineUpdate,
                           OrderCancelled,
                           OrderFilled, OrderRejected, OrderSubmitted, Quote, Side, TradeTick)
from trading.risk import BreakerConfig, CircuitBreaker
from trading.runtime.execution import DataClock, ExecutionWorker, LiveClock
from trading.runtime.feed import FeedConfig, MarketFeed
from trading.state_schema import validate_state_doc
from trading.strategy import EmaMomentumStrategy, MomentumParams

log = logging.getLogger("btc_laptop_agents.session")


def as_disk_error(exc):
    """The storage layer's disk-error classifier (imported late: storage sits beside us)."""
    from storage.errors import as_disk_error as classify
    return classify(exc)

SOURCES = ("auto", "bitunix", "replay")


class SessionError(RuntimeError):
    """The session cannot go on (the report says why)."""


class FatalSessionError(SessionError):
    """An error a restart cannot fix (no market data at all, a strategy bug, bad data):
    the watchdog does not restart the session, the report says error at once."""


class InjectedFault(RuntimeError):
    """An exception raised on purpose by fault injection."""


@dataclass
class SessionConfig:
    data_dir: Path
    duration_min: float = 10.0
    source: str = "auto"
    replay_file: Path | None = None
    speed: float = 1.0  # market-data seconds per wall second; math.inf = --speed max
    symbol: str = "BTCUSDT"
    seed: int = 0
    chaos: str = ""
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    strategy: MomentumParams = field(default_factory=MomentumParams)
    flatten_at_end: bool = True
    reset_account: bool = False
    bitunix_ws_url: str = PUBLIC_WS_URL
    bitunix_rest_url: str = REST_BASE_URL
    probe_timeout_s: float = 3.0
    queue_maxsize: int = 1000
    stale_after_s: float = 10.0
    channel_stale_s: float = 10.0  # one channel silent this long while others push (0: off)
    ping_interval_s: float = 5.0
    progress_every_s: float = 5.0
    equity_every_ms: int = 5000
    spread_usd: float = 1.0
    replay_start_index: int | None = None
    inject_strategy_error_at: int | None = None  # raise in the strategy on this closed candle
    inject_crash_after_s: float | None = None  # raise in the execution worker thread (once)
    inject_hang_after_s: float | None = None  # stop the session loop's heartbeat (once)
    resume: bool = False  # continue run_id from the state file and journal (crash-only restart)
    previous_exit: str = ""  # how the previous segment ended, when a supervisor knows
    supervisor_restarts: int | None = None  # restarts the process supervisor made so far
    watchdog_resume: bool = False  # this segment is an in-process watchdog restart
    state_save_every_s: float = 1.0  # wall seconds between periodic state saves
    progress_stream: object = None  # file-like for the one-line status; None = quiet

    @property
    def duration_ms(self) -> int:
        return int(self.duration_min * 60_000)

    @property
    def speed_label(self) -> str:
        return "max" if math.isinf(self.speed) else f"{self.speed:g}"


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + os.urandom(3).hex()


def iso(ts_ms: int | float | None) -> str | None:
    if not ts_ms:
        return None
    try:
        return datetime.fromtimestamp(ts_ms / 1000, timezone.utc).isoformat(
            timespec="milliseconds")
    except (OverflowError, ValueError, OSError, TypeError):
        return None


class _InjectingStrategy:
    """Wrap a strategy to raise on the Nth closed candle (fault injection for the error path)."""

    def __init__(self, inner, at: int) -> None:
        self.inner, self.at, self.n = inner, at, 0
        self.name = inner.name

    def warm_up(self, candles):
        self.inner.warm_up(candles)

    def on_candle(self, candle, position_qty):
        self.n += 1
        if self.n >= self.at:
            raise InjectedFault(f"injected strategy error on candle {self.n}")
        return self.inner.on_candle(candle, position_qty)

    def state(self):
        return self.inner.state()

    def restore(self, state):
        self.inner.restore(state)


class Session:
    """One paper-trading session; `run()` blocks until it ends and returns the exit code."""

    def __init__(self, config: SessionConfig, run_id: str | None = None, publish=None) -> None:
        from storage.paths import DataPaths  # storage sits beside the runtime shell
        self.config = config
        self.run_id = run_id or new_run_id()
        from storage.logger import register_identifier
        register_identifier(self.run_id)  # the project's own id stays readable in every output
        self.paths = DataPaths(Path(config.data_dir)).ensure()
        self.publish = publish or (lambda kind, payload: None)
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self.queue: queue.Queue = queue.Queue(maxsize=config.queue_maxsize)
        self.broker = PaperBroker(config.broker, order_prefix=self.run_id)
        self.breaker = CircuitBreaker(config.breaker)
        strategy = EmaMomentumStrategy(config.strategy)
        self.strategy = (_InjectingStrategy(strategy, config.inject_strategy_error_at)
                         if config.inject_strategy_error_at else strategy)
        self.candles = CandleBuilder()
        self.clock = DataClock(config.speed) if config.source != "bitunix" else LiveClock()
        self.closed_candles: list[Candle] = []
        self.fills: list[dict] = []
        self.equity_curve: list[dict] = []
        self.events_log: list[dict] = []
        self.feed: MarketFeed | None = None
        self.exchange = None
        self.worker: ExecutionWorker | None = None
        self.journal = None
        self.source_used = config.source
        self.offline_fallback = False
        self.fallback_reason = ""
        self.start_data_ts: int | None = None
        self.end_data_ts: int | None = None
        self.started_wall = time.time()
        self.started_mono = time.monotonic()
        self.blocked_signals = 0
        self.ignored_signals = 0
        self.error_count = 0
        self.warmup_candles = 0
        self.stopped_reason = ""
        self.status = "error"
        self.exit_code = 1
        self.error: str | None = None
        self.starting_equity = config.broker.starting_cash
        self.round_trips: list[Decimal] = []
        self._open_fees = Decimal("0")
        self._open_realized = Decimal("0")
        self._last_equity_ts = 0
        self._last_progress = 0.0
        self._seen_feed = {"parse_errors": 0, "reconnects": 0}
        self.worker_errors: list[BaseException] = []
        self.events_in = 0
        self.quotes_in = 0
        self.klines_in = 0
        self.other_symbol = 0
        self.stale_quotes = 0
        self.peak_rss_mb = 0.0
        self.rss_samples: list[float] = []
        self.abort_event = threading.Event()
        self.abort_reason = ""
        self.heartbeat_mono = time.monotonic()
        self.outcome = "not started"  # completed / stopped / crashed
        self.resumed = False
        self.segment = 1
        self.restarts = 0
        self.segments: list[dict] = []
        self.injected: dict = {}
        self.repairs: list[str] = []  # every state repair of the run, all segments
        self.watchdog_restarts = 0
        self.account_note = ""  # where the paper account came from, in words
        self.account_source = "new"  # new / carried / rebuilt / reset / resumed
        self._start_position = self.broker.position.to_dict()
        self.state_problem: str | None = None  # why the state file was not used, if it wasn't
        self._begun = False
        self._retime_pending = False
        self._resume_from_ts: int | None = None
        self._last_state_save = 0.0
        self.final_report: dict | None = None
        self.feed_prev: dict = {}  # feed counters of earlier segments of this run
        self._last_health = 0.0
        self._skip_until = 0
        self.missed_while_down = 0
        self.fatal = False
        self.defunct = False  # set when the watchdog gave up waiting for this segment's thread
        self.wall_seconds_before = 0.0
        self.data_skipped_ms = 0
        self._downtime_ms = 0

    # ------------------------------------------------------------------ lifecycle
    def request_stop(self, reason: str = "stopped by user") -> None:
        """Ask the session to end early (any thread); it flattens and reports as usual."""
        if not self.stopped_reason:
            self.stopped_reason = reason
        self.stop_event.set()

    def abort(self, reason: str) -> None:
        """Make a crashed or hung segment give up at once (watchdog thread); no flatten."""
        self.abort_reason = reason
        self.abort_event.set()
        self.stop_event.set()

    def beat(self) -> None:
        """Session loop heartbeat, read by the watchdog."""
        self.heartbeat_mono = time.monotonic()

    def run(self) -> int:
        """Run one segment and write the final reports; return the process exit code."""
        self.run_segment()
        return self.finalize()

    def run_segment(self) -> str:
        """Run until the duration is reached, a stop is asked for, or a crash; never raises.

        Returns the outcome: "completed", "stopped" or "crashed". A crash leaves the state
        file "running" so that a restart resumes it; only `finalize` closes the session.
        """
        cfg = self.config
        try:
            from storage.journal import Journal
            self.beat()
            from storage.errors import ensure_reserve
            ensure_reserve(self.paths.root)
            self.journal = Journal.open(self.paths.journal_file)
            self._mark_abandoned()
            self._load_or_resume()
            if self.outcome == "already finished":
                return self.outcome
            self._journal_session_start()
            log.info("session_starting", extra={"run_id": self.run_id, "segment": self.segment,
                                                "resumed": self.resumed, **self.settings()})
            self.beat()
            self._start_source()
            if self.source_used != cfg.source:  # "auto" resolved: History shows what ran
                self.journal.start_session(self.run_id, source=self.source_used)
            self._loop()
            if self.abort_event.is_set():
                raise SessionError(f"aborted: {self.abort_reason}")
            if self.worker_errors:
                self._raise_worker_error()
            if self.stop_event.is_set():
                self.outcome = "stopped"
                self._safe_flatten(raise_errors=True)
                self.end_data_ts = self.clock.now_ms() or None
            else:
                self._finish_positions()
                self.outcome = "completed"
        except KeyboardInterrupt:
            self.stopped_reason = self.stopped_reason or "interrupted (Ctrl-C)"
            self._safe_flatten()
            self.outcome = "stopped"
        except Exception as e:  # noqa: BLE001 - a crash: the watchdog or the report handles it
            disk = as_disk_error(e) or next(
                (d for d in map(as_disk_error, self.worker_errors) if d), None)
            self.error = str(disk) if disk else f"{type(e).__name__}: {e}"
            self.error_count += 1
            self.outcome = "crashed"
            # a restart cannot fix a strategy bug, missing data or the disk
            self.fatal = isinstance(e, FatalSessionError) or disk is not None
            if disk is not None:
                log.critical("disk_error", extra={"run_id": self.run_id, "error": self.error,
                                                  "segment": self.segment})
            elif self.abort_event.is_set():  # the watchdog ended it and has logged why
                log.warning("session_aborted", extra={"run_id": self.run_id,
                                                      "reason": self.abort_reason,
                                                      "segment": self.segment})
            else:
                log.exception("session_crashed", extra={"run_id": self.run_id,
                                                        "error": self.error,
                                                        "segment": self.segment})
        finally:
            self._teardown()
            self._close_segment()
        return self.outcome

    def close_journal(self) -> None:
        """Release the journal connection of a segment that will not be finalized."""
        if self.journal is not None:
            try:
                self.journal.close()
            except Exception:  # noqa: BLE001
                log.exception("journal_close_failed")

    def _reopen_journal(self) -> None:
        """Finalize needs the journal even after the watchdog closed it (give-up path)."""
        from storage.journal import Journal
        if self.journal is not None and not self.journal.closed:
            return
        try:
            self.journal = Journal.open(self.paths.journal_file)
        except Exception as e:  # noqa: BLE001 - the report is still written without it
            self.journal = None
            log.critical("journal_unavailable_at_finalize", extra={
                "run_id": self.run_id, "error": str(as_disk_error(e) or e)})

    def _raise_worker_error(self) -> None:
        err = self.worker_errors[0]
        disk = as_disk_error(err)
        if disk is not None:
            raise disk from err
        raise SessionError(f"execution worker failed: {err!r}")

    def _mark_abandoned(self) -> None:
        """Runs the journal still calls "running" belong to a process that is gone: this one
        holds the data dir's lock, so no other can be writing them."""
        for run_id in self.journal.mark_abandoned(self.run_id, int(time.time() * 1000)):
            log.warning("session_marked_abandoned", extra={
                "abandoned_run_id": run_id, "reason": "left running by a process that ended "
                                                      "without closing it"})

    def _journal_session_start(self) -> None:
        cfg = self.config
        fields = dict(started_ts=int(self.started_wall * 1000), source=cfg.source,
                      symbol=cfg.symbol, status="running", restarts=self.restarts,
                      settings_json=_json(self.settings()))
        if self.journal.session(self.run_id) is None:
            # the account this run began with: what a rebuild from the journal starts from
            fields.update(starting_cash=str(self.broker.ledger.starting_cash),
                          starting_position=_json(self._start_position))
        self.journal.start_session(self.run_id, **fields)

    def finalize_only(self, reason: str, error: str | None = None) -> int:
        """Close a run from its saved state without trading (stop during a restart pause, or a
        supervisor giving up): flatten at the last known quote and write the reports."""
        from storage.journal import Journal
        try:
            self.journal = Journal.open(self.paths.journal_file)
            self._load_or_resume()
        except Exception as e:  # noqa: BLE001
            disk = as_disk_error(e)
            self.error = str(disk) if disk else f"{type(e).__name__}: {e}"
            if disk is not None:
                log.critical("finalize_only_failed", extra={"error": self.error})
            else:
                log.exception("finalize_only_failed")
        if self.outcome == "already finished":
            return self.exit_code
        self.stopped_reason = reason
        self.outcome = "crashed" if error else "stopped"
        if not error and self.config.flatten_at_end and self.journal is not None:
            self._safe_flatten()
        self._close_segment()
        return self.finalize(give_up_reason=error)

    def finalize(self, give_up_reason: str | None = None) -> int:
        """Close the whole session: flatten if it ended in error, write every report once."""
        if self.outcome == "already finished":
            return self.exit_code
        from storage.errors import release_reserve
        err = self.error or ""
        if "disk full" in err or "quota exceeded" in err:
            # the ballast kept for this moment makes room for the report and the journal row
            if release_reserve(self.paths.root):
                log.warning("disk_reserve_released", extra={"run_id": self.run_id})
        self._reopen_journal()
        if self.outcome in ("completed", "stopped") and give_up_reason is None \
                and self.start_data_ts is None:
            # stopped or timed out before a single price arrived: nothing was paper-traded
            give_up_reason = "no market data was received"
            self.error = give_up_reason
        if self.outcome in ("completed", "stopped") and give_up_reason is None:
            self.status, self.exit_code = "success", 0
        else:
            self.status, self.exit_code = "error", 1
            if give_up_reason:
                self.error = give_up_reason
            self.stopped_reason = self.stopped_reason or f"error: {self.error}"
            if self.journal is not None and self.config.flatten_at_end:
                self._safe_flatten()
        self._write_outputs()
        return self.exit_code

    # ------------------------------------------------------------------ account / state
    def _validate_state(self, d: dict) -> None:
        """Judge a state document as strictly as typed input; raise on anything wrong."""
        validate_state_doc(d, self.config.broker)
        probe = PaperBroker(self.config.broker)
        probe.restore(d["broker"])
        if not probe.ledger.reconciles():
            raise ValueError("ledger does not reconcile")
        CircuitBreaker(self.config.breaker).restore(d["breaker"])

    def _on_corrupt_state(self, error: str, moved) -> None:
        where = f"moved aside as {Path(moved).name}" if moved else "could not be moved aside"
        kind, _, detail = error.partition(": ")
        parts = detail.split("; ") if kind == "StateInvalid" else [error]
        first = parts[0][:160] + (f" and {len(parts) - 1} more problem(s)" if len(parts) > 1
                                  else "")
        # short for the banner and the console; every problem is in the log and the report
        self.state_problem = f"the state file was corrupt ({first}) and was {where}"
        self.repairs.append(f"state file corrupt, {where}: {error[:2000]}")

    def _load_or_resume(self) -> None:
        """Start fresh (carrying the paper account over) or resume this run from disk."""
        from storage.state import load_state
        state = load_state(self.paths.state_file, validate=self._validate_state,
                           on_corrupt=self._on_corrupt_state)
        if self.config.resume and state is not None and state.get("run_id") == self.run_id:
            if state.get("status") != "running":
                log.warning("resume_not_needed", extra={"run_id": self.run_id,
                                                        "status": state.get("status")})
                self.outcome = "already finished"
                self.exit_code = 0 if state.get("status") == "finished" else 1
                return
            self._resume_from(state)
        else:
            cfg = self.config
            if cfg.resume:
                # killed before its first state save, or its state file was corrupt: the run
                # goes on from the journal's record of it (every restart still counted)
                self.restarts = (cfg.supervisor_restarts or 0) + (1 if cfg.watchdog_resume
                                                                   else 0)
                self.watchdog_restarts = 1 if cfg.watchdog_resume else 0
                log.warning("resume_without_state", extra={
                    "run_id": self.run_id, "restarts": self.restarts,
                    "reason": self.state_problem or "no running state for this run; "
                    "starting it from the journal's record"})
                if not self._continue_from_journal():
                    self._load_account(state)
            else:
                self.restarts = cfg.supervisor_restarts or 0
                self._load_account(state)
        self._start_position = self.broker.position.to_dict()
        self.segments.append({"segment": self.segment, "started": iso(time.time() * 1000),
                              "ended": None, "exit_reason": None})
        self._save_state("running")

    def _continue_from_journal(self) -> bool:
        """Resume this run's ledger from its journalled fills when its state file is gone."""
        from trading.runtime.recovery import rebuild_account
        try:
            got = rebuild_account(self.journal, self.config.broker, only_run=self.run_id)
        except Exception as e:  # noqa: BLE001 - hostile journal rows: fall back to carry-over
            log.error("journal_rebuild_failed", extra={"run_id": self.run_id, "error": str(e)})
            return False
        if got is None:
            return False
        self.broker = got.broker
        self.broker.order_prefix = self.run_id
        self.starting_equity = got.broker.ledger.starting_cash
        self.fills = [dict(r) for r in self.journal.fills(self.run_id)]
        for row in self.fills:
            self._count_round_trip(Fill.from_dict(row))
        self._set_account("rebuilt", f"this run's account was rebuilt from {got.how}"
                          + (f" because {self.state_problem}" if self.state_problem else ""))
        return True

    def _set_account(self, source: str, note: str) -> None:
        self.account_source, self.account_note = source, note
        if source in ("rebuilt", "reset"):
            # said in words wherever the user looks: the log (CRITICAL), the console, the
            # window's log and banner, and the report
            log.critical("account_" + source, extra={"run_id": self.run_id, "note": note,
                                                     "cash": str(self.broker.ledger.cash)})
            stream = self.config.progress_stream
            if stream is not None:
                _say(stream, f"ACCOUNT {source.upper()}: {note}")
            self.publish("account_notice", {"source": source, "note": note})
        else:
            name = "account_carried_over" if source == "carried" else "account_" + source
            log.info(name, extra={"run_id": self.run_id, "note": note})

    def _load_account(self, state: dict | None) -> None:
        """Carry the paper account over: from the state file, else rebuilt from the journal."""
        cfg = self.config
        start = cfg.broker.starting_cash
        if cfg.reset_account:
            # asked for: said plainly in the report and the log, not raised as an alarm
            self._set_account("reset_asked", f"--reset-account: the account starts from the "
                                             f"starting balance {start} USDT as asked")
            return
        from trading.runtime.recovery import rebuild_account
        try:
            got = rebuild_account(self.journal, cfg.broker)
        except Exception as e:  # noqa: BLE001 - hostile rows must not stop the session
            log.error("journal_rebuild_failed", extra={"error": f"{type(e).__name__}: {e}"})
            got = None
        if got is not None:
            register_identifier_safe(got.run_id)
        if state is not None:
            prev = PaperBroker(cfg.broker)
            prev.restore(state["broker"])
            register_identifier_safe(state.get("run_id"))
            j_led, j_pos = (got.broker.ledger, got.broker.position) if got else (None, None)
            if got is not None and got.exact and (j_led.cash != prev.ledger.cash
                                                  or j_pos.qty != prev.position.qty):
                # the journal is the truth for fills: a state file written before the last
                # fill, flatten or funding (a kill or a disk error between the two writes)
                why = (f"the state file (run {state.get('run_id')}, cash {prev.ledger.cash}, "
                       f"position {prev.position.qty}) was behind the journal (cash "
                       f"{j_led.cash}, position {j_pos.qty})")
                self.repairs.append(why)
                log.warning("state_behind_journal", extra={"run_id": self.run_id,
                                                           "repair": why})
                self._take_account(got.broker)
                self._set_account("rebuilt", f"{why}. The journal's account was used: "
                                             f"{got.how}.")
                return
            self._take_account(prev)
            self._set_account("carried", f"carried over from run {state.get('run_id')}")
            return
        why = self.state_problem or "the state file was missing"
        if got is not None:
            self._take_account(got.broker)
            self._set_account("rebuilt", f"{why}. The account was rebuilt from the journal: "
                                         f"cash {got.broker.ledger.cash:,.2f} USDT, position "
                                         f"{got.broker.position.qty} BTC, from {got.how}.")
        elif self.state_problem:
            self._set_account("reset", f"{why}, and the journal holds no account to rebuild "
                                       f"it from: the account was RESET to the starting "
                                       f"balance {start} USDT")
        else:
            self._set_account("new", f"a new paper account with {start} USDT")

    def _take_account(self, prev: PaperBroker) -> None:
        cash = prev.ledger.cash
        self.broker.ledger.starting_cash = cash
        self.broker.ledger.cash = cash
        self.broker.position = prev.position
        self.starting_equity = cash + prev.unrealized()

    def _resume_from(self, state: dict) -> None:
        """Crash-only recovery: the state file, reconciled against the journal (truth for fills)."""
        from trading.model import Fill, Order
        sess = state.get("session", {})
        self.resumed = True
        self.broker.restore(state["broker"])
        self.breaker.restore(state["breaker"])
        self.strategy.restore(state.get("strategy", {}))
        self.starting_equity = Decimal(sess.get("starting_equity", str(self.starting_equity)))
        self.start_data_ts = sess.get("start_data_ts")
        self.started_wall = sess.get("started_wall", self.started_wall)
        self.source_used = sess.get("source_used", self.source_used)
        self.offline_fallback = sess.get("offline_fallback", False)
        self.fallback_reason = sess.get("fallback_reason", "")
        c = sess.get("counters", {})
        self.blocked_signals = c.get("blocked_signals", 0)
        self.ignored_signals = c.get("ignored_signals", 0)
        self.error_count = c.get("error_count", 0)
        self.stale_quotes = c.get("stale_quotes", 0)
        self.warmup_candles = c.get("warmup_candles", 0)
        self.peak_rss_mb = c.get("peak_rss_mb", 0.0)
        self.round_trips = [Decimal(x) for x in sess.get("round_trips", [])]
        self.feed_prev = dict(sess.get("feed_totals", {}))
        self._open_fees = Decimal(sess.get("open_fees", "0"))
        self._open_realized = Decimal(sess.get("open_realized", "0"))
        self.injected = dict(sess.get("injected", {}))
        self.account_source = sess.get("account_source", "resumed")
        self.account_note = sess.get("account_note", "")
        self.segments = list(sess.get("segments", []))
        self.repairs = list(sess.get("repairs", [])) + self.repairs
        earlier_repairs = len(self.repairs)
        cfg = self.config
        self.watchdog_restarts = int(sess.get("watchdog_restarts", 0)) + (
            1 if cfg.watchdog_resume else 0)
        if cfg.supervisor_restarts is not None:
            # every restart counted by whoever made it: the supervisor's (some killed a child
            # before it saved anything) plus the in-process watchdog's
            self.restarts = cfg.supervisor_restarts + self.watchdog_restarts
        else:
            self.restarts = int(sess.get("restarts", 0)) + 1
        self.segment = len(self.segments) + 1
        if self.segments and not self.segments[-1].get("ended"):
            last = self.segments[-1]
            last["ended"] = iso(state.get("saved_ts"))
            last["exit_reason"] = (self.config.previous_exit
                                   or "process died (no clean exit)")
        j = self.journal
        # 1. fills in the journal that the state file missed (a kill between the two writes)
        applied = 0
        for row in j.fills(self.run_id):
            f = Fill.from_dict(row)
            if self.broker.apply_recorded_fill(f):
                applied += 1
                self._count_round_trip(f)
        if applied:
            self.repairs.append(f"{applied} journalled fill(s) applied to the state")
        # 2. orders the journal has as pending that the state file never saw
        known = {o.order_id for o in self.broker.pending} | self.broker.filled_order_ids
        for row in j.orders(self.run_id):
            if row.get("status") == "pending" and row["order_id"] not in known:
                try:
                    order = Order.from_dict(json.loads(row.get("detail") or "{}"))
                except (ValueError, KeyError, TypeError):
                    j.set_order_status(row["order_id"], "cancelled", int(time.time() * 1000),
                                       "lost in a crash before it was saved")
                    self.repairs.append(f"order {row['order_id']} cancelled (unreadable)")
                    continue
                self.broker.pending.append(order)
                self.repairs.append(f"pending order {order.order_id} restored from the journal")
            num = row["order_id"].rsplit("-", 1)[-1]
            if num.isdigit():
                self.broker.next_order_num = max(self.broker.next_order_num, int(num) + 1)
        self.broker.pending.sort(key=lambda o: (o.due_ts, o.order_id))
        # 3. funding payments journalled after the last state save
        paid = sum((Decimal(r["amount"]) for r in j.funding(self.run_id)), Decimal("0"))
        if paid != self.broker.ledger.funding:  # the ledger's funding is this run's alone
            delta = paid - self.broker.ledger.funding
            self.broker.ledger.funding += delta
            self.broker.ledger.cash -= delta
            self.repairs.append(f"funding {delta} from the journal applied")
        if not self.broker.ledger.reconciles():
            raise SessionError("restored ledger does not reconcile")
        for r in self.repairs[earlier_repairs:]:
            log.warning("state_repaired_from_journal", extra={"run_id": self.run_id,
                                                              "repair": r})
        self.fills = [dict(r) for r in j.fills(self.run_id)]
        self.equity_curve = [dict(r) for r in j.equity(self.run_id)]
        self.closed_candles = [Candle(ts=r["ts"], open=r["open"], high=r["high"], low=r["low"],
                                      close=r["close"], volume=r["volume"] or 0.0)
                               for r in j.candles(self.run_id)]
        self.events_log = [dict(r) for r in j.events(self.run_id)][-500:]
        self._resume_from_ts = sess.get("last_data_ts")
        # the restored quote was in force before the crash, not now: nothing fills on it
        self.broker.mark_quote_stale()
        self.quotes_in = c.get("quotes", 0)
        self.events_in = c.get("events", 0)
        self.wall_seconds_before = float(c.get("wall_seconds", 0.0))
        self.data_skipped_ms = int(c.get("data_skipped_ms", 0))
        self._downtime_ms = max(0, int(time.time() * 1000) - int(state.get("saved_ts", 0)))
        self._retime_pending = True
        self._begun = self.start_data_ts is not None
        pos = self.broker.position
        log.warning("session_resumed", extra={
            "run_id": self.run_id, "segment": self.segment, "restarts": self.restarts,
            "position_qty": str(pos.qty), "avg_px": str(pos.avg_px), "stop_px": pos.stop_px,
            "target_px": pos.target_px, "cash": str(self.broker.ledger.cash),
            "pending_orders": len(self.broker.pending), "fills_so_far": len(self.fills),
            "remaining_s": round(self.remaining_ms() / 1000, 1)})
        self.publish("history", [c.to_dict() for c in self.closed_candles])
        self.publish("session_started", {"run_id": self.run_id, "source": self.source_used,
                                         "data_start_ts": self.start_data_ts, "resumed": True,
                                         "segment": self.segment,
                                         "duration_ms": self.config.duration_ms})
        for f in self.fills:
            self.publish("fill", f)
        self._event(int(time.time() * 1000), "session_resumed", {
            "segment": self.segment, "position_qty": str(pos.qty),
            "repairs": self.repairs[earlier_repairs:], "previous_exit": self.segments[-1]["exit_reason"]
            if self.segments else ""})

    def remaining_ms(self) -> int:
        """Market-data time left in the whole session."""
        if self.start_data_ts is None:
            return self.config.duration_ms
        now = self.clock.now_ms() or self._resume_from_ts or self.start_data_ts
        if isinstance(self.clock, LiveClock):
            now = self.clock.now_ms()
        return max(0, self.start_data_ts + self.config.duration_ms - now)

    _FEED_COUNTS = ("reconnects", "dropped", "parse_errors", "messages", "stale_disconnects",
                    "connect_failures")

    def _feed_counts(self) -> dict:
        """Cumulative counters for the state file: earlier segments plus this one's feed."""
        out = dict(self.feed_prev)
        if self.feed is not None:
            for k in self._FEED_COUNTS:
                out[k] = out.get(k, 0) + getattr(self.feed.stats, k)
        return out

    def note_exit_reason(self, reason: str) -> None:
        """Record why the watchdog ended this segment (it knows better than the segment)."""
        if self.segments:
            self.segments[-1]["exit_reason"] = reason
            try:
                self._save_state("running")
            except Exception as e:  # noqa: BLE001
                _log_write_failure("state_save_failed", e)

    def _close_segment(self) -> None:
        if not self.segments:
            return
        seg = self.segments[-1]
        if seg.get("ended") is None:
            seg["ended"] = iso(time.time() * 1000)
            seg["exit_reason"] = {
                "completed": "duration reached", "stopped": self.stopped_reason or "stopped",
            }.get(self.outcome, f"crashed: {self.abort_reason or self.error}")
        try:
            self._save_state("running")
        except Exception as e:  # noqa: BLE001
            _log_write_failure("state_save_failed", e)

    def _save_state(self, status: str) -> None:
        """Write the state file atomically (after the journal: the journal is the truth)."""
        from storage.state import save_json_atomic
        if self.defunct:  # a newer segment owns the state file now
            return
        with self.lock:  # build and write under the lock: two writers never reorder
            doc = {"version": 2, "run_id": self.run_id, "status": status,
                   "saved_ts": int(time.time() * 1000), "broker": self.broker.to_state(),
                   "breaker": self.breaker.to_state(), "strategy": self.strategy.state(),
                   "session": self._session_state()}
            save_json_atomic(self.paths.state_file, doc)
        self._last_state_save = time.monotonic()

    def _session_state(self) -> dict:
        return {
            "start_data_ts": self.start_data_ts, "duration_ms": self.config.duration_ms,
            "last_data_ts": self.clock.now_ms() or self._resume_from_ts,
            "started_wall": self.started_wall, "source_used": self.source_used,
            "offline_fallback": self.offline_fallback, "fallback_reason": self.fallback_reason,
            "starting_equity": str(self.starting_equity),
            "restarts": self.restarts, "watchdog_restarts": self.watchdog_restarts,
            "repairs": self.repairs, "account_source": self.account_source,
            "account_note": self.account_note,
            "segments": self.segments, "injected": self.injected,
            "round_trips": [str(x) for x in self.round_trips],
            "feed_totals": self._feed_counts(),
            "open_fees": str(self._open_fees), "open_realized": str(self._open_realized),
            "counters": {"blocked_signals": self.blocked_signals,
                         "ignored_signals": self.ignored_signals,
                         "error_count": self.error_count, "stale_quotes": self.stale_quotes,
                         "warmup_candles": self.warmup_candles,
                         "peak_rss_mb": self.peak_rss_mb, "quotes": self.quotes_in,
                         "events": self.events_in, "data_skipped_ms": self.data_skipped_ms,
                         "wall_seconds": round(self.wall_seconds_before
                                               + time.monotonic() - self.started_mono, 3)},
        }

    def settings(self) -> dict:
        c = self.config
        b = c.broker
        out = {
            "duration_min": c.duration_min, "source": c.source, "speed": c.speed_label,
            "symbol": c.symbol, "seed": c.seed, "chaos": c.chaos or "",
            "replay_file": str(c.replay_file) if c.replay_file else "(bundled dYdX day)",
            "execution_latency_ms": b.latency_ms, "starting_cash": str(b.starting_cash),
            "taker_fee_bps": b.taker_fee_bps, "maker_fee_bps": b.maker_fee_bps,
            "slip_bps": b.slip_bps, "risk_per_trade": b.risk_per_trade,
            "max_leverage": b.max_leverage, "lot_size": str(b.lot_size),
            "flatten_at_end": c.flatten_at_end, "strategy": "ema_momentum",
        }
        out.update({f"strategy.{k}": v for k, v in asdict(c.strategy).items()})
        out.update({f"breaker.{k}": v for k, v in asdict(c.breaker).items()})
        return out

    # ------------------------------------------------------------------ sources
    def _start_source(self) -> None:
        cfg = self.config
        source = cfg.source
        if self.resumed and source == "auto":
            source = self.source_used  # a resumed run keeps the source it started with
            if source == "bitunix":
                self.clock = LiveClock()
        if source == "auto":
            ok, why = probe_bitunix(cfg.bitunix_ws_url, cfg.probe_timeout_s)
            if ok:
                source = "bitunix"
                self.clock = LiveClock()
            else:
                source = "replay"
                self.offline_fallback = True
                self.fallback_reason = why
                msg = (f"OFFLINE: Bitunix is unreachable ({why}); replaying the bundled real BTC "
                       f"data instead. This session is NOT live market data.")
                log.warning(msg, extra={"event": "offline_fallback", "reason": why})
                if cfg.progress_stream is not None:
                    _say(cfg.progress_stream, "!" * 78 + "\n" + msg + "\n" + "!" * 78)
                self.publish("offline_fallback", {"reason": why})
        self.source_used = source
        if source == "bitunix":
            self._warm_up_rest(cfg.bitunix_rest_url)
            self._start_feed(cfg.bitunix_ws_url)
        else:
            from trading.runtime.datafiles import default_replay_file, load_market_file
            path = cfg.replay_file or default_replay_file()
            data = load_market_file(path)
            if math.isinf(cfg.speed):
                self._replay_inline = self._inline_timeline(data)
            else:
                self._start_exchange(data)
                self._warm_up_rest(self.exchange.rest_url)
                self._start_feed(self.exchange.ws_url)
        self.worker = ExecutionWorker(self.broker, self.lock, self.clock, self._on_broker_events,
                                      on_error=self.worker_errors.append)
        crash = self.config.inject_crash_after_s
        if crash is not None and not self.injected.get("crash"):
            self.worker.inject_crash(time.monotonic() + crash, self._on_inject_crash)
        self.worker.start()

    def _on_inject_crash(self) -> None:
        """Worker thread, just before the injected exception: remember it fired (once per run)."""
        self.injected["crash"] = True
        self._save_state("running")
        with self.lock:
            pos = self.broker.position.qty
        log.warning("injected_crash", extra={"run_id": self.run_id, "thread_name": "execution",
                                             "position_qty": str(pos)})

    def _pick_start_index(self, data) -> int | None:
        cfg = self.config
        if self.resumed and self._resume_from_ts:
            from trading.replay import build_timeline
            # the market moved on while we were down: skip what a live feed would have missed
            skip = 0 if math.isinf(cfg.speed) else int(self._downtime_ms * cfg.speed)
            target = self._resume_from_ts + skip
            self.data_skipped_ms += skip
            log.warning("replay_resumes_after_gap", extra={
                "skipped_s": round(skip / 1000, 1), "resume_at": iso(target)})
            # the replay restarts at a minute boundary; what came before `target` was either
            # seen before the crash or missed while down: drop it (a live feed cannot rewind)
            self._skip_until = target
            try:
                return build_timeline(data, seed=cfg.seed, start_ts=target).start_index
            except ValueError as e:
                raise SessionError(f"cannot resume the replay at {iso(target)}: {e}") from None
        if cfg.replay_start_index is not None:
            return cfg.replay_start_index
        from trading.replay import minute_count
        n = minute_count(data)
        need = int(math.ceil(cfg.duration_min)) + 3
        lo = min(200, max(0, n - need))
        hi = max(lo, n - need)
        return random.Random(cfg.seed).randint(lo, hi)

    def _start_exchange(self, data) -> None:
        from trading.runtime.exchange import LocalExchange
        cfg = self.config
        self.exchange = LocalExchange(data, speed=cfg.speed, seed=cfg.seed, symbol=cfg.symbol,
                                      chaos=cfg.chaos, start_index=self._pick_start_index(data),
                                      spread_usd=cfg.spread_usd)
        self.exchange.start()
        log.info("local_exchange_started", extra={"ws_url": self.exchange.ws_url,
                                                  "speed": cfg.speed_label})

    def _inline_timeline(self, data):
        from trading.replay import build_timeline
        cfg = self.config
        tl = build_timeline(data, symbol=cfg.symbol, seed=cfg.seed,
                            start_index=self._pick_start_index(data), spread_usd=cfg.spread_usd)
        body = _json({"code": 0, "msg": "Success", "data": tl.history(tl.start_ts, 200)})
        self._apply_warmup(*parse_rest_klines_layout(body), source="replay history")
        return tl

    def _warm_up_rest(self, base_url: str) -> None:
        url = kline_url(base_url, self.config.symbol, limit=200)
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                candles, layout = parse_rest_klines_layout(resp.read())
        except (urllib.error.URLError, OSError, ProtocolError, ValueError) as e:
            log.warning("warmup_failed", extra={"url": url, "error": f"{type(e).__name__}: {e}"})
            return
        self._apply_warmup(candles, layout, source=url)

    def _apply_warmup(self, rows: list[dict], layout: str, source: str) -> None:
        """Keep the warm-up candles; say which REST field carried the coin volume."""
        self._warmup_rows = rows
        self.rest_volume_layout = layout
        log.info("warmup_fetched", extra={"candles": len(rows), "from": source,
                                          "volume_layout": layout})

    def _start_feed(self, url: str) -> None:
        cfg = self.config
        subs = {(cfg.symbol, ch) for ch in DEFAULT_CHANNELS}
        self.feed = MarketFeed(FeedConfig(url=url, subscriptions=subs,
                                          ping_interval_s=cfg.ping_interval_s,
                                          stale_after_s=cfg.stale_after_s, seed=cfg.seed,
                                          channel_stale_s=cfg.channel_stale_s,
                                          check_clock_skew=isinstance(self.clock, LiveClock)),
                               self.queue)
        self.feed.start()

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        cfg = self.config
        inline = getattr(self, "_replay_inline", None)
        if inline is not None:
            n = 0
            for _ts, raw in inline.iter_frames_bytes():
                for ev in parse_frame(raw):
                    self._on_event(ev)
                if self._session_over() or self.stop_event.is_set():
                    break
                n += 1
                if n % 256 == 0:
                    self.beat()
                    self._housekeeping()
                    self._progress()
                    if self.worker_errors or (self.worker is not None and not self.worker.alive):
                        raise SessionError("execution worker thread died")
            else:
                self.stopped_reason = self.stopped_reason or "replay data ended"
            self._progress(force=True)
            return
        wall_budget = self._wall_budget_s()
        while not self.stop_event.is_set():
            self.beat()
            try:
                ev = self.queue.get(timeout=0.1)
            except queue.Empty:
                ev = None
            if ev is not None:
                self._on_event(ev)
            self._poll_feed_health()
            self._progress()
            self._housekeeping()
            if self.worker is not None and not self.worker.alive:
                raise SessionError("execution worker thread died")
            if self.feed is not None and not self.feed.alive and not self.stop_event.is_set():
                raise SessionError("feed thread died")
            if self.exchange is not None and getattr(self.exchange, "failed", None):
                raise FatalSessionError(f"local exchange replay failed: {self.exchange.failed}")
            if self.worker_errors:
                return
            if self._session_over():
                return
            if self.start_data_ts is None:
                waited = time.monotonic() - self.started_mono
                if waited > max(60.0, cfg.stale_after_s * 6):
                    raise FatalSessionError(f"no market data after {waited:.0f}s "
                                       f"({self.feed.stats.last_error if self.feed else ''})")
            elif time.monotonic() - self.started_mono > wall_budget:
                raise SessionError(f"market data stopped advancing: session not over after "
                                   f"{wall_budget:.0f}s wall time")
            if self.exchange is not None and getattr(self.exchange, "ended", False) \
                    and self.queue.empty():
                self.stopped_reason = "replay data ended"
                return

    def _housekeeping(self) -> None:
        """Periodic state save and the injected hang (session thread)."""
        now = time.monotonic()
        if now - self._last_state_save >= self.config.state_save_every_s:
            self._save_state("running")
        hang = self.config.inject_hang_after_s
        if hang is not None and not self.injected.get("hang") \
                and now - self.started_mono >= hang:
            self.injected["hang"] = True
            self._save_state("running")
            log.warning("injected_hang", extra={"after_s": hang, "run_id": self.run_id})
            while not self.abort_event.is_set():  # no heartbeat from here on
                time.sleep(0.05)

    def _wall_budget_s(self) -> float:
        c = self.config
        remaining = self.remaining_ms() / 1000
        if c.source == "bitunix" or self.source_used == "bitunix":
            return remaining * 1.5 + 120
        return remaining / c.speed * 2 + 120

    def _session_over(self) -> bool:
        if self.start_data_ts is None:
            return False
        return self.clock.now_ms() >= self.start_data_ts + self.config.duration_ms

    # ------------------------------------------------------------------ events
    def _on_event(self, ev) -> None:
        self.events_in += 1
        if self._skip_until and getattr(ev, "ts", self._skip_until) < self._skip_until:
            self.missed_while_down += 1
            return
        sym = getattr(ev, "symbol", self.config.symbol)
        if sym and sym != self.config.symbol:
            self.other_symbol += 1
            return
        if isinstance(ev, Quote):
            self.quotes_in += 1
            last = self.broker.quote
            if last is not None and ev.ts < last.ts:
                self.stale_quotes += 1  # out-of-order push: an older quote never replaces a newer
                return
            self._begin(ev.ts)
            with self.lock:
                if self._retime_pending:
                    self._retime_pending = False
                    moved = self.broker.retime_overdue(ev.ts)
                    if moved:
                        log.warning("orders_due_during_downtime_sent_now", extra={
                            "orders": moved, "at_ts": ev.ts})
                events = self.broker.on_quote(ev)
                # the clock moves only once the quote is in force, so the worker never fills
                # an order due at this instant at the previous quote
                self.clock.observe(ev.ts)
                if events:
                    self._on_broker_events(events)
            self.publish("quote", ev)
            self._sample_equity(ev.ts)
        elif isinstance(ev, KlineUpdate):
            self.klines_in += 1
            self._begin(ev.ts)
            with self.lock:
                self.clock.observe(ev.ts)
            closed = self.candles.on_kline(ev)
            if closed is not None:
                self._on_candle_closed(closed)
            self.publish("kline", ev)
        elif isinstance(ev, FundingInfo):
            with self.lock:
                events = self.broker.on_funding_info(ev)
                if events:
                    self._on_broker_events(events)
        elif isinstance(ev, TradeTick):
            pass  # trades are shown by the GUI; the paper broker fills at bid/ask only
        elif isinstance(ev, FeedReconnected):
            with self.lock:
                self.broker.mark_quote_stale()
            log.info("quote_marked_stale_after_reconnect", extra={"connects": ev.connects})

    def _begin(self, ts: int) -> None:
        if self._begun:
            return
        self._begun = True
        self.start_data_ts = ts
        rows = [r for r in getattr(self, "_warmup_rows", []) if r["ts"] < (ts // 60000) * 60000]
        candles = [Candle(ts=r["ts"], open=r["open"], high=r["high"], low=r["low"],
                          close=r["close"], volume=r["volume"]) for r in rows]
        self.strategy.warm_up(candles)
        self.warmup_candles = len(candles)
        self.publish("history", [c.to_dict() for c in candles])
        self.publish("session_started", {"run_id": self.run_id, "source": self.source_used,
                                         "data_start_ts": ts, "resumed": False,
                                         "duration_ms": self.config.duration_ms})
        log.info("session_started", extra={
            "run_id": self.run_id, "source": self.source_used, "data_start": iso(ts),
            "warmup_candles": len(candles), "duration_min": self.config.duration_min})

    def _on_candle_closed(self, c: Candle) -> None:
        """Session thread: the last push of a minute is final; ask the strategy."""
        self.closed_candles.append(c)
        now = c.closed_ts
        with self.lock:
            self.broker.on_candle_close(c.close)
            position = self.broker.position.qty
            pending = bool(self.broker.pending)
        self.publish("candle", c)
        self.journal.record_candle({"run_id": self.run_id, **c.to_dict()})
        try:
            signal = self.strategy.on_candle(c, position)
        except Exception as e:  # noqa: BLE001 - a strategy bug would recur after a restart
            raise FatalSessionError(f"strategy {self.strategy.name} raised "
                                    f"{type(e).__name__}: {e}") from e
        late_ms = c.closed_ts - (c.ts + 60_000)
        if signal is not None and late_ms > 5_000:
            # the candle was closed by the first push after a data gap: its last push may not
            # be its final state and the moment to act on it has passed
            self.ignored_signals += 1
            log.warning("signal_skipped_stale_candle", extra={
                "candle_ts": c.ts, "closed_late_ms": late_ms, "side": signal.side.value})
            return
        if signal is None:
            return
        if pending:
            self.ignored_signals += 1
            log.info("signal_ignored_order_pending", extra={"side": signal.side.value,
                                                            "reason": signal.reason})
            return
        if signal.reason == "entry":
            with self.lock:
                allowed = self.breaker.allow(now)
            if not allowed:
                self.blocked_signals += 1
                log.warning("SIGNAL BLOCKED: Circuit breaker is tripped.", extra={
                    "side": signal.side.value, "trip_reason": self.breaker.trip_reason,
                    "candle_close": c.close, "signal_ts": now})
                self._event(now, "signal_blocked", {"trip_reason": self.breaker.trip_reason})
                return
            if position != 0:
                self.ignored_signals += 1
                return
        with self.lock:
            events = self.broker.submit(signal.side, signal.reason, now_ts=now, signal_ts=now,
                                        signal_px=c.close, stop_distance=signal.stop_distance,
                                        target_distance=signal.target_distance)
            self._on_broker_events(events)
        if self.worker is not None:
            self.worker.notify()
        log.info("signal", extra={"side": signal.side.value, "reason": signal.reason,
                                  "note": signal.note, "candle_close": c.close, "signal_ts": now})

    def _on_broker_events(self, events: list) -> None:
        """Called with the broker lock held, by the session thread or the execution worker."""
        save = False
        for ev in events:
            if isinstance(ev, OrderSubmitted):
                o = ev.order
                self.journal.record_order({**o.to_dict(), "run_id": self.run_id,
                                           "status": "pending", "status_ts": o.signal_ts,
                                           "detail": json.dumps(o.to_dict())})
                save = True
                self.publish("order", o)
            elif isinstance(ev, OrderFilled):
                self._on_fill(ev.fill)
                save = True
            elif isinstance(ev, OrderRejected):
                self.error_count += 1
                self.journal.set_order_status(ev.order_id, "rejected", ev.ts, ev.reason)
                self.publish("order_done", {"order_id": ev.order_id, "status": "rejected",
                                            "reason": ev.reason})
                log.warning("order_rejected", extra={"order_id": ev.order_id, "reason": ev.reason})
                self.breaker.record_failure("reject", ev.ts, ev.reason)
                self._event(ev.ts, "order_rejected", {"order_id": ev.order_id,
                                                      "reason": ev.reason})
            elif isinstance(ev, OrderCancelled):
                save = True
                self.journal.set_order_status(ev.order_id, "cancelled", ev.ts, ev.reason)
                self.publish("order_done", {"order_id": ev.order_id, "status": "cancelled",
                                            "reason": ev.reason})
                log.info("order_cancelled", extra={"order_id": ev.order_id, "reason": ev.reason})
            elif isinstance(ev, FundingApplied):
                self.journal.record_funding({"run_id": self.run_id, "ts": ev.ts, "rate": ev.rate,
                                             "mark_px": ev.mark_px,
                                             "position_qty": str(ev.position_qty),
                                             "amount": str(ev.amount)})
                log.info("funding_applied", extra={"amount": str(ev.amount), "rate": ev.rate,
                                                   "mark_px": ev.mark_px})
                self._event(ev.ts, "funding", {"amount": str(ev.amount), "rate": ev.rate})
                save = True
        if save:
            self._save_state("running")

    def _on_fill(self, f) -> None:
        row = f.to_dict()
        # commit order: journal row first (the source of truth), then the state file
        self.journal.record_fill({**row, "run_id": self.run_id})
        self.journal.set_order_status(f.order_id, "filled", f.fill_ts)
        self.fills.append(row)
        if f.signal_ts is not None:
            log.info("Strategy Fill", extra={
                "order_id": f.order_id, "side": f.side.value, "qty": str(f.qty),
                "reason": f.reason, "candle_close": f.signal_px, "fill_px": f.fill_px,
                "bid": f.bid, "ask": f.ask, "latency_ms": f.latency_ms,
                "latency_drift_bps": round(f.latency_drift_bps or 0.0, 3),
                "spread_cost_bps": round(f.spread_cost_bps, 3), "fee": str(f.fee)})
        else:
            log.info("Exit Fill", extra={
                "order_id": f.order_id, "side": f.side.value, "qty": str(f.qty),
                "reason": f.reason, "trigger_px": f.trigger_px, "fill_px": f.fill_px,
                "bid": f.bid, "ask": f.ask, "fee": str(f.fee)})
        self._count_round_trip(f)
        self.publish("fill", row)
        self.publish("order_done", {"order_id": f.order_id, "status": "filled",
                                    "reason": f.reason})
        pos = self.broker.position
        self.publish("position", {"qty": str(pos.qty), "avg_px": str(pos.avg_px),
                                  "stop_px": pos.stop_px, "target_px": pos.target_px})

    def _count_round_trip(self, f) -> None:
        """Accumulate a fill into the open round trip; close it (and tell the breaker) when flat."""
        self._open_fees += f.fee
        self._open_realized += f.realized_pnl
        if f.position_after == 0:
            net = self._open_realized - self._open_fees
            self.round_trips.append(net)
            self._open_fees = Decimal("0")
            self._open_realized = Decimal("0")
            self.breaker.record_round_trip(float(net), f.fill_ts)
        elif f.reason == "entry":
            self.breaker.record_success(f.fill_ts)

    def _event(self, ts: int, kind: str, detail: dict) -> None:
        self.events_log.append({"ts": ts, "kind": kind, "detail": detail})
        if self.journal is not None:
            self.journal.record_event(self.run_id, ts, kind, detail)

    def _poll_feed_health(self) -> None:
        if self.feed is None:
            return
        st = self.feed.stats
        now = self.clock.now_ms() or int(time.time() * 1000)
        for key, kind in (("parse_errors", "parse"), ("reconnects", "reconnect")):
            cur = getattr(st, key)
            for _ in range(cur - self._seen_feed[key]):
                with self.lock:
                    tripped = self.breaker.record_failure(
                        kind, now, st.last_parse_error if kind == "parse" else st.last_error)
                if tripped:
                    log.warning("circuit_breaker_tripped", extra={
                        "reason": self.breaker.trip_reason})
                    self._event(now, "breaker_tripped", {"reason": self.breaker.trip_reason})
            if cur != self._seen_feed[key] and kind == "reconnect":
                self._event(now, "feed_reconnected", {"reconnects": cur})
            self._seen_feed[key] = cur

    def _sample_equity(self, ts: int) -> None:
        if ts - self._last_equity_ts < self.config.equity_every_ms:
            return
        self._last_equity_ts = ts
        with self.lock:
            eq = self.broker.equity()
            row = {"ts": ts, "equity": eq, "cash": self.broker.ledger.cash,
                   "realized": self.broker.ledger.realized_pnl,
                   "unrealized": self.broker.unrealized(),
                   "position_qty": self.broker.position.qty}
        self.equity_curve.append(row)
        self.journal.record_equity({"run_id": self.run_id, **row})
        with self.lock:
            tripped = self.breaker.check_session_loss(float(self.starting_equity), float(eq), ts)
        if tripped:
            log.warning("circuit_breaker_tripped", extra={"reason": self.breaker.trip_reason})
            self._event(ts, "breaker_tripped", {"reason": self.breaker.trip_reason})
        self._sample_rss()
        self.publish("equity", row)

    def _sample_rss(self) -> None:
        rss = current_rss_mb()
        if rss:
            self.rss_samples.append(rss)
            self.peak_rss_mb = max(self.peak_rss_mb, rss)

    def health(self) -> dict:
        """Everything the window's status bar and position panel show (any thread)."""
        with self.lock:
            eq = self.broker.equity()
            pos = self.broker.position
            position = {"qty": str(pos.qty), "avg_px": str(pos.avg_px), "stop_px": pos.stop_px,
                        "target_px": pos.target_px}
            realized = self.broker.ledger.realized_pnl
            unrealized = self.broker.unrealized()
            pending = [o.to_dict() for o in self.broker.pending]
            quote = self.broker.quote
        feed = self.feed_totals()
        dur = self.config.duration_ms
        remaining = self.remaining_ms()
        return {
            "run_id": self.run_id, "segment": self.segment, "restarts": self.restarts,
            "source": self.source_used, "offline_fallback": self.offline_fallback,
            "feed_state": feed.get("state", "inline replay"),
            "reconnects": feed.get("reconnects", 0), "dropped": feed.get("dropped", 0),
            "channel_ages_s": feed.get("channel_ages_s") or {},
            "channel_stale_s": self.config.channel_stale_s,
            "parse_errors": feed.get("parse_errors", 0),
            "last_message_age_s": feed.get("last_message_age_s"),
            "queue_depth": self.queue.qsize(), "queue_max": self.config.queue_maxsize,
            "breaker_state": self.breaker.state, "breaker_reason": self.breaker.trip_reason,
            "duration_ms": dur, "remaining_ms": remaining, "elapsed_ms": dur - remaining,
            "speed": self.config.speed if self.source_used != "bitunix" else 1.0,
            "data_ts": self.clock.now_ms(), "equity": float(eq),
            "starting_equity": float(self.starting_equity),
            "realized": float(realized), "unrealized": float(unrealized),
            "fees": float(self.broker.ledger.fees), "position": position,
            "pending_orders": pending, "fills": len(self.fills),
            "bid": quote.bid if quote else None, "ask": quote.ask if quote else None,
        }

    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_health >= 0.5:
            self._last_health = now
            self.publish("health", self.health())
        if not force and now - self._last_progress < self.config.progress_every_s:
            return
        self._last_progress = now
        line = self.status_line()
        self.publish("status", line)
        stream = self.config.progress_stream
        if stream is not None:
            _say(stream, line)

    def status_line(self) -> str:
        dur = self.config.duration_ms
        elapsed = 0 if self.start_data_ts is None else max(0, self.clock.now_ms()
                                                           - self.start_data_ts)
        elapsed = min(elapsed, dur)
        with self.lock:
            eq = self.broker.equity()
            pos = self.broker.position.qty
        feed = self.feed.stats if self.feed else None
        feed_txt = (f"feed {feed.state} msgs {feed.messages} drops {feed.dropped} "
                    f"reconnects {feed.reconnects}") if feed else "feed inline replay"
        if feed is not None and feed.channel_last_mono:
            now = time.monotonic()
            feed_txt += " | ages " + " ".join(  # per channel: seconds since its last push
                f"{short_channel(ch)} {now - t:.1f}s"
                for ch, t in sorted(feed.channel_last_mono.items()))
        return (f"[{_mmss(elapsed)}/{_mmss(dur)}] left {_mmss(dur - elapsed)} | "
                f"equity {eq:.2f} ({eq - self.starting_equity:+.2f}) | fills {len(self.fills)} | "
                f"pos {pos} | {feed_txt} | breaker {self.breaker.state}")

    # ------------------------------------------------------------------ ending
    def _finish_positions(self) -> None:
        now = self.clock.now_ms() or int(time.time() * 1000)
        with self.lock:
            events = self.broker.advance(now)
            if events:
                self._on_broker_events(events)
        if self.config.flatten_at_end:
            self._safe_flatten(raise_errors=True)
        if not self.stopped_reason:
            self.stopped_reason = "duration reached"
        # the push that crossed the end belongs to after the session
        self.end_data_ts = min(now, self.start_data_ts + self.config.duration_ms) \
            if self.start_data_ts else now

    def _safe_flatten(self, raise_errors: bool = False) -> None:
        if self.journal is None:
            return
        try:
            now = self.clock.now_ms() or int(time.time() * 1000)
            with self.lock:
                events = self.broker.flatten(now, reason="flatten")
                if events:
                    self._on_broker_events(events)
        except Exception as e:  # noqa: BLE001
            if raise_errors:
                raise
            _log_write_failure("flatten_failed", e, run_id=self.run_id)

    def _teardown(self) -> None:
        for part in (self.worker, self.feed, self.exchange):
            if part is None:
                continue
            try:
                part.stop()
            except Exception:  # noqa: BLE001
                log.exception("teardown_failed", extra={"part": type(part).__name__})

    def feed_totals(self) -> dict:
        """Feed figures over every segment of the run (earlier segments' counts carried)."""
        cur = self.feed.stats.snapshot() if self.feed else {"mode": "inline replay (no socket)"}
        for k, v in self.feed_prev.items():
            cur[k] = cur.get(k, 0) + v
        cur.update({"queue_maxsize": self.config.queue_maxsize,
                    "events_processed": self.events_in, "other_symbol_events": self.other_symbol,
                    "peak_rss_mb": round(self.peak_rss_mb, 1)})
        if self.exchange is not None:
            cur["exchange_faults_fired"] = ", ".join(
                str(f) for f in getattr(self.exchange, "faults_fired", [])) or "none"
        return cur

    def report(self) -> dict:
        with self.lock:
            ledger = self.broker.ledger
            equity = self.broker.equity()
            position = self.broker.position.qty
        pnl = equity - self.starting_equity
        eq_points = [float(r["equity"]) for r in self.equity_curve] + [float(equity)]
        peak, mdd, mdd_pct = float(self.starting_equity), 0.0, 0.0
        for v in eq_points:
            peak = max(peak, v)
            if peak - v > mdd:
                mdd, mdd_pct = peak - v, (peak - v) / peak * 100 if peak else 0.0
        strat = [f for f in self.fills if f.get("latency_drift_bps") is not None]
        wins = sum(1 for r in self.round_trips if r > 0)
        feed = self.feed_totals()
        end_ts = self.end_data_ts or self.clock.now_ms() or self._resume_from_ts or None
        return {
            "status": self.status, "exit_code": self.exit_code, "run_id": self.run_id,
            "source": self.source_used, "requested_source": self.config.source,
            "offline_fallback": self.offline_fallback, "fallback_reason": self.fallback_reason,
            "symbol": self.config.symbol, "speed": self.config.speed_label,
            "seed": self.config.seed, "spread_usd": self.config.spread_usd,
            "replay_file": str(self.config.replay_file) if self.config.replay_file
            else "(bundled dYdX day)",
            "started": iso(self.started_wall * 1000), "ended": iso(time.time() * 1000),
            "data_start": iso(self.start_data_ts), "data_end": iso(end_ts),
            "duration_seconds": round((end_ts - self.start_data_ts) / 1000, 3)
            if self.start_data_ts and end_ts else 0.0,
            "wall_seconds": round(self.wall_seconds_before + time.monotonic()
                                  - self.started_mono, 3),
            "data_skipped_while_down_s": round(self.data_skipped_ms / 1000, 3),
            "requested_duration_min": self.config.duration_min,
            "starting_equity": float(self.starting_equity), "final_equity": float(equity),
            "pnl_absolute": float(pnl),
            "pnl_pct": float(pnl / self.starting_equity * 100) if self.starting_equity else 0.0,
            "realized_pnl": float(ledger.realized_pnl), "fees": float(ledger.fees),
            "funding": float(ledger.funding), "ledger_reconciles": ledger.reconciles(),
            "cash": str(ledger.cash), "open_position_qty": str(position),
            "fills": len(self.fills), "round_trips": len(self.round_trips),
            "round_trips_won": wins,
            "win_rate": round(wins / len(self.round_trips), 4) if self.round_trips else None,
            "max_drawdown": round(mdd, 8), "max_drawdown_pct": round(mdd_pct, 4),
            "reconnects": feed.get("reconnects", 0),
            "dropped_messages": feed.get("dropped", 0),
            "parse_errors": feed.get("parse_errors", 0),
            "error_count": self.error_count + feed.get("parse_errors", 0),
            "blocked_signals": self.blocked_signals, "ignored_signals": self.ignored_signals,
            "breaker_state": self.breaker.state, "breaker_trips": self.breaker.trips,
            "stopped_reason": self.stopped_reason,
            "mean_latency_drift_bps": _mean([f["latency_drift_bps"] for f in strat]),
            "mean_spread_cost_bps": _mean([f["spread_cost_bps"] for f in self.fills]),
            "execution_latency_ms": self.config.broker.latency_ms,
            "min_fill_latency_ms": min((f["latency_ms"] for f in strat), default=None),
            "candles_closed": len(self.closed_candles), "warmup_candles": self.warmup_candles,
            "warmup_volume_layout": getattr(self, "rest_volume_layout", None),
            "clock_skew_ms": self.feed.stats.clock_skew_ms if self.feed is not None else None,
            "channel_ages_s": feed.get("channel_ages_s", {}),
            "channel_resubscribes": feed.get("channel_resubscribes", 0),
            "channel_rebuilds": feed.get("channel_rebuilds", 0),
            "quotes": self.quotes_in, "stale_quotes_ignored": self.stale_quotes,
            "out_of_order_klines": self.candles.out_of_order,
            "late_kline_pushes": self.candles.late_pushes, "restarts": self.restarts,
            "segments": self.segments, "state_repairs": self.repairs,
            "account_source": self.account_source, "account_note": self.account_note,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "error": self.error,
        }

    def _final_equity_point(self) -> list[dict]:
        """The account at the end (after the flatten): the equity chart ends where the PnL
        figure does, not at the last 5-second sample before it."""
        end_ts = self.end_data_ts or self.clock.now_ms()
        if not end_ts or (self.equity_curve and self.equity_curve[-1]["ts"] > end_ts):
            return []
        with self.lock:
            return [{"ts": end_ts, "equity": self.broker.equity(), "cash": self.broker.ledger.cash,
                     "realized": self.broker.ledger.realized_pnl,
                     "unrealized": self.broker.unrealized(),
                     "position_qty": self.broker.position.qty}]

    def _write_outputs(self) -> None:
        from storage.reports import write_run_reports
        report = self.report()
        feed = self.feed_totals()
        # the page's feed health is read by a person: ages and error kinds as words, not JSON
        ages = feed.get("channel_ages_s")
        if isinstance(ages, dict):
            feed["channel_ages_s"] = " · ".join(
                f"{short_channel(ch)} {age:.1f} s" for ch, age in ages.items()) or "none"
        kinds = feed.get("parse_error_kinds")
        if isinstance(kinds, dict):
            feed["parse_error_kinds"] = ", ".join(f"{k} ({n})" for k, n in kinds.items()) \
                or "none"
        feed.update({"queue_maxsize": self.config.queue_maxsize,
                     "events_processed": self.events_in, "other_symbol_events": self.other_symbol,
                     "peak_rss_mb": round(self.peak_rss_mb, 1)})
        if self.exchange is not None:
            feed["exchange_faults_fired"] = ", ".join(
                str(f) for f in getattr(self.exchange, "faults_fired", [])) or "none"
        segments = [{**seg, "duration_seconds": _seconds_between(seg.get("started"),
                                                                 seg.get("ended"))}
                    for seg in self.segments]
        from storage.reports import run_dir_name
        run_dir = self.paths.runs_dir / run_dir_name(self.run_id)
        final_point = self._final_equity_point()
        for row in final_point:  # the window's PnL chart ends where the report's does
            self.publish("equity", row)
        try:
            run_dir = write_run_reports(
                self.paths.runs_dir, self.run_id, report=report, fills=self.fills,
                candles=[c.to_dict() for c in self.closed_candles],
                equity=self.equity_curve + final_point,
                settings=self.settings(), feed=feed, events=self.events_log, segments=segments)
        except Exception as e:  # noqa: BLE001 - the session must still close its books
            why = _log_write_failure("report_write_failed", e, run_id=self.run_id)
            self.status, self.exit_code = "error", 1
            self.error = f"the report could not be written: {why}" + (
                f" (the session had: {self.error})" if self.error else "")
            self.stopped_reason = self.stopped_reason or f"error: {self.error}"
            report = self.report()
        self.run_dir = run_dir
        # commit order at the end: reports, then the state file says "finished" (a kill between
        # the two resumes the run, finds no time left and writes the same reports again)
        try:
            self._save_state("finished" if self.status == "success" else "error")
        except Exception as e:  # noqa: BLE001
            _log_write_failure("state_save_failed", e, run_id=self.run_id)
        if self.journal is not None:
            # every path ends the journal's row: success, error, give-up, a failed report
            with self.lock:
                final_cash = str(self.broker.ledger.cash)
                final_position = _json(self.broker.position.to_dict())
            try:
                self.journal.end_session(self.run_id, ended_ts=int(time.time() * 1000),
                                         status=self.status, exit_code=self.exit_code,
                                         pnl_absolute=str(report["pnl_absolute"]),
                                         report_dir=str(run_dir),
                                         stopped_reason=self.stopped_reason,
                                         final_cash=final_cash, final_position=final_position,
                                         restarts=self.restarts, error=self.error)
            except Exception as e:  # noqa: BLE001
                _log_write_failure("journal_end_session_failed", e, run_id=self.run_id)
            try:
                self.journal.close()
            except Exception:  # noqa: BLE001
                log.exception("journal_close_failed")
        log.info("session_finished", extra={
            "run_id": self.run_id, "status": self.status, "exit_code": self.exit_code,
            "pnl_absolute": report["pnl_absolute"], "fills": report["fills"],
            "report_dir": str(run_dir), "stopped_reason": self.stopped_reason})
        self.final_report = report
        try:  # the window's panels show the account after the flatten, not before it
            self.publish("health", self.health())
        except Exception:  # noqa: BLE001 - a display refresh must not fail the session's end
            log.exception("final_health_failed")
        self.publish("finished", report)


def register_identifier_safe(value) -> None:
    """Keep an id of the project's own readable in every output (a run id read back)."""
    from storage.logger import register_identifier
    if isinstance(value, str) and 6 <= len(value) <= 64:
        register_identifier(value)


def _say(stream, text: str) -> None:
    """Print a console line through the one redaction every output goes through."""
    from storage.logger import redact
    print(redact(text), file=stream, flush=True)


def _log_write_failure(event: str, exc: BaseException, **extra) -> str:
    """Log a failed write: a disk error as one CRITICAL line with advice, anything else with
    its traceback. Return the text for the report."""
    disk = as_disk_error(exc)
    if disk is not None:
        log.critical(event, extra={"error": str(disk), **extra})
        return str(disk)
    log.error(event, exc_info=exc, extra={"error": f"{type(exc).__name__}: {exc}", **extra})
    return f"{type(exc).__name__}: {exc}"


def probe_bitunix(ws_url: str, timeout_s: float) -> tuple[bool, str]:
    """Return whether Bitunix's public websocket completes a handshake within `timeout_s`."""
    import websocket
    u = urlparse(ws_url)
    try:
        ws = websocket.create_connection(ws_url, timeout=timeout_s)
    except Exception as e:  # noqa: BLE001 - any failure means: not reachable from here
        return False, f"{u.hostname}: {type(e).__name__}: {e}"
    try:
        ws.close(timeout=0.5)
    except Exception:  # noqa: BLE001
        pass
    return True, ""


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, AttributeError):
        try:
            import psutil
            return psutil.Process().memory_info().rss / 1e6
        except Exception:  # noqa: BLE001
            return 0.0


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def _mmss(ms: int) -> str:
    s = max(0, int(ms // 1000))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60:02d}:{s % 60:02d}"


def _seconds_between(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    try:
        return round((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds(), 3)
    except (TypeError, ValueError, OverflowError):
        return None  # a hand-edited segment: the report shows no duration rather than fail


def _json(obj) -> str:
    import json
    return json.dumps(obj, default=str, sort_keys=True)
