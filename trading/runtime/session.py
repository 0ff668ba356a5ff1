"""The paper-trading session: the wiring of one run.

Everything that happens is an event on one ordered stream (`EventBus`): the engine
(`trading.engine`: candles, strategy, broker, breaker) publishes what it does; the journal
writer, the state writer, the run record, the log, the recorder, the window and the console
subscribe (`_wire`: subscription order is commit order -- journal row, then state file).

Threads: the caller's thread runs `run_segment()` (the session loop: it takes frames off the
feed queue and applies them); the feed thread fills the queue; the execution worker ticks the
clock when an order is due. Both apply their inputs under the one session lock, so the stream
has one order -- the order a recording replays. Reports: `finalize` (`outputs.write_outputs`).
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from trading.broker import PaperBroker
from trading.engine import StrategyFailed, TradingEngine
from trading.events import FrameReceived, SegmentEnded, SegmentStarted, SessionEnded
from trading.model import FeedReconnected
from trading.risk import CircuitBreaker, NoBreaker
from trading.runtime import account, loop, outputs, recording, sources
from trading.runtime.bus import EventBus
from trading.runtime.common import (FatalSessionError, InjectedFault, SessionError,  # noqa: F401
                                    as_disk_error, current_rss_mb, iso, log_write_failure,
                                    new_run_id, say)
from trading.runtime.execution import DataClock, LiveClock
from trading.runtime.feed import FrameQueue
from trading.runtime.subscribers import (ConsoleWriter, JournalWriter, LogWriter, RunRecord,
                                         StateWriter, WindowPublisher)
from trading.runtime.config import (SessionConfig, _InjectingStrategy,  # noqa: F401
                                    config_from_dict, config_to_dict)
from trading.runtime.strategies import load_strategy

log = logging.getLogger("btc_laptop_agents.session")

SOURCES = ("auto", "bitunix", "replay", "recording")


def _engine_attr(name: str, inner: str | None = None):
    """A session attribute that lives in the engine (or in the run record)."""
    def get(s):
        return getattr(s.record, inner) if inner else getattr(s.engine, name)

    def put(s, v):
        setattr(s.record, inner, v) if inner else setattr(s.engine, name, v)
    return property(get, put)


class Session:
    """One paper-trading session; `run()` blocks until it ends and returns the exit code."""

    def __init__(self, config: SessionConfig, run_id: str | None = None, publish=None) -> None:
        from storage.logger import register_identifier
        from storage.paths import DataPaths  # storage sits beside the runtime shell
        self.config = cfg = config  # a strategy that cannot run fails here, before any write
        self.strategy_spec = load_strategy(cfg.strategy, cfg.strategy_params)
        self.run_id = run_id or new_run_id()
        register_identifier(self.run_id)  # the project's own id stays readable in every output
        self.paths = DataPaths(Path(cfg.data_dir)).ensure()
        self._window = publish  # the window bridge's publish, or None (headless)
        self.publish = publish or (lambda kind, payload: None)
        self.lock = threading.RLock()
        self.bus = EventBus(self.lock)
        self.stop_event, self.abort_event = threading.Event(), threading.Event()
        self.queue = FrameQueue(maxsize=cfg.queue_maxsize)
        strategy, n = self.strategy_spec.build(), cfg.inject_strategy_error_at
        strategy = _InjectingStrategy(strategy, n) if n else strategy  # fault injection
        self.engine = TradingEngine(
            broker=PaperBroker(cfg.broker, order_prefix=self.run_id),
            breaker=(CircuitBreaker if cfg.breaker_enabled else NoBreaker)(cfg.breaker),
            strategy=strategy, entry=cfg.entry,
            clock=DataClock(cfg.speed) if cfg.source != "bitunix" else LiveClock(),
            emit=self.bus.publish, symbol=cfg.symbol, duration_ms=cfg.duration_ms,
            equity_every_ms=cfg.equity_every_ms)
        self.engine.run_id = self.run_id
        self.record = RunRecord()
        self.feed = self.exchange = self.worker = self.journal = self.recorder = None
        self.inline = None  # frames applied on this thread (no socket): --speed max, recordings
        self.source_used, self.offline_fallback, self.fallback_reason = cfg.source, False, ""
        self.end_data_ts = self.resume_from_ts = self.final_report = self.state_problem = None
        self.started_wall, self.started_mono = time.time(), time.monotonic()
        self.heartbeat_mono = self.started_mono
        self.stopped_reason, self.status, self.exit_code, self.error = "", "error", 1, None
        self.worker_errors: list[BaseException] = []
        self.peak_rss_mb, self.rss_samples = 0.0, []
        self.abort_reason, self.outcome = "", "not started"  # completed / stopped / crashed
        self.resumed, self.segment, self.restarts, self.watchdog_restarts = False, 1, 0, 0
        self.segments: list[dict] = []
        self.injected: dict = {}
        self.repairs: list[str] = []  # every state repair of the run, all segments
        self.account_note, self.account_source = "", "new"  # new/carried/rebuilt/reset/resumed
        self.start_position = self.broker.position.to_dict()
        self.feed_prev: dict = {}  # feed counters of earlier segments of this run
        self._last_state_save = self._last_health = self._last_progress = 0.0
        self.fatal = self.defunct = False  # defunct: the watchdog gave up on its thread
        self.wall_seconds_before, self.data_skipped_ms, self.downtime_ms = 0.0, 0, 0
        self.rest_volume_layout, self.depth_source = None, ""
        self.replay_inputs = self.recording_pos = None
        self.recorded_frames_before = 0  # frames earlier segments of this run recorded
        if cfg.source == "recording":  # a bad reference fails here, before anything is written
            from trading.runtime.replaying import RecordingInputs, ReplayClock, open_source
            path, header, _first = open_source(cfg.recording, self.paths.runs_dir)
            self.clock = ReplayClock(header["clock"])
            self.replay_inputs = RecordingInputs(self, path)
        self._wire()

    broker = _engine_attr("broker")
    breaker = _engine_attr("breaker")
    strategy = _engine_attr("strategy")
    candles = _engine_attr("candles")
    clock = _engine_attr("clock")
    start_data_ts = _engine_attr("start_data_ts")
    starting_equity = _engine_attr("starting_equity")
    round_trips = _engine_attr("round_trips")
    fills = _engine_attr("fills", "fills")
    closed_candles = _engine_attr("closed_candles", "candles")
    equity_curve = _engine_attr("equity_curve", "equity")
    events_log = _engine_attr("events_log", "events")
    _warmup_rows = _engine_attr("warmup_rows")

    def __getattr__(self, name):  # the engine's counters: quotes_in, blocked_signals, ...
        if name in TradingEngine.COUNTERS:
            return getattr(self.engine, name)
        raise AttributeError(name)

    def _wire(self) -> None:
        """Subscribe the stream's consumers, in commit order."""
        bus = self.bus
        jw = self.journal_writer = JournalWriter(lambda: self.journal, self.run_id)
        bus.subscribe(jw, *JournalWriter.TYPES, via=jw.routes())  # 1. the journal: the truth
        self.state_writer = bus.subscribe(  # 2. the state file
            StateWriter(self._save_state), *StateWriter.TYPES)
        bus.subscribe(self.record, *RunRecord.TYPES, via=self.record.routes())  # 3. report
        self.log_writer = bus.subscribe(LogWriter(), *LogWriter.TYPES)
        if self.config.progress_stream is not None:
            bus.subscribe(ConsoleWriter(self.config.progress_stream), *ConsoleWriter.TYPES)
        if self._window is not None:  # last: the window shows what is saved
            bus.subscribe(WindowPublisher(self._window))

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
        try:
            from storage.errors import ensure_reserve
            from storage.journal import Journal
            self.beat()
            ensure_reserve(self.paths.root)
            self.journal = Journal.open(self.paths.journal_file)
            for run_id in self.journal.mark_abandoned(self.run_id, int(time.time() * 1000)):
                log.warning("session_marked_abandoned", extra={  # its process is gone: we
                    "abandoned_run_id": run_id,  # hold the data dir's lock
                    "reason": "left running by a process that ended without closing it"})
            account.load_or_resume(self)
            if self.outcome == "already finished":
                return self.outcome
            account.journal_session_start(self)
            log.info("session_starting", extra={"run_id": self.run_id, "segment": self.segment,
                                                "resumed": self.resumed,
                                                **outputs.settings(self)})
            self.beat()
            sources.resolve_source(self)
            recording.start_recorder(self)
            self.bus.publish(SegmentStarted(self.segment, self.resumed, self.state_doc("running")))
            sources.start_source(self)
            if self.source_used != self.config.source:  # "auto" resolved: History shows it
                self.journal.start_session(self.run_id, source=self.source_used)
            loop.run(self)
            if self.abort_event.is_set():
                raise SessionError(f"aborted: {self.abort_reason}")
            if self.worker_errors:
                err = self.worker_errors[0]
                raise as_disk_error(err) or SessionError(f"execution worker failed: {err!r}")
            self._end_trading(stopped=self.stop_event.is_set())
        except KeyboardInterrupt:
            self.stopped_reason = self.stopped_reason or "interrupted (Ctrl-C)"
            self._safe_flatten()
            self.outcome = "stopped"
        except Exception as e:  # noqa: BLE001 - a crash: the watchdog or the report handles it
            self._crashed(e)
        finally:
            for part in (self.worker, self.feed, self.exchange):
                try:
                    part is None or part.stop()
                except Exception:  # noqa: BLE001
                    log.exception("teardown_failed", extra={"part": type(part).__name__})
            self._close_segment()
        return self.outcome

    def _crashed(self, e: BaseException) -> None:
        disk = as_disk_error(e) or next((d for d in map(as_disk_error, self.worker_errors)
                                         if d), None)
        self.error = str(disk) if disk else f"{type(e).__name__}: {e}"
        self.engine.error_count += 1
        self.outcome = "crashed"
        # a restart cannot fix a strategy bug, missing data or the disk
        self.fatal = isinstance(e, (FatalSessionError, StrategyFailed)) or disk is not None
        extra = {"run_id": self.run_id, "error": self.error, "segment": self.segment}
        if disk is not None:
            log.critical("disk_error", extra=extra)
        elif self.abort_event.is_set():  # the watchdog ended it and has logged why
            log.warning("session_aborted", extra={**extra, "reason": self.abort_reason})
        else:
            log.exception("session_crashed", extra=extra)

    def _end_trading(self, stopped: bool) -> None:
        """The session's trading time is over (or a stop was asked): settle and flatten."""
        replay = self.replay_inputs
        if replay is not None:  # end where (and as) the recorded run ended
            replay.finish()
            self.stopped_reason = self.stopped_reason or replay.end_reason
        now = self.clock.now_ms() or int(time.time() * 1000)
        if not self.stopped_reason:
            self.stopped_reason = "duration reached"
        flatten = self.config.flatten_at_end or stopped or bool(replay and replay.end_flatten)
        with self.lock:
            self.bus.publish(SessionEnded(now, self.stopped_reason, flatten))
            if stopped:
                self.engine.flatten(now)
            else:
                self.engine.finish(now, flatten)
        self.outcome = "stopped" if stopped else "completed"
        if stopped:
            self.end_data_ts = now or None
        else:  # the push that crossed the end belongs to after the session
            self.end_data_ts = min(now, self.start_data_ts + self.config.duration_ms) \
                if self.start_data_ts else now

    def close_journal(self) -> None:
        """Release the journal connection of a segment that will not be finalized."""
        if self.journal is not None:
            try:
                self.journal.close()
            except Exception:  # noqa: BLE001
                log.exception("journal_close_failed")

    def finalize_only(self, reason: str, error: str | None = None) -> int:
        """Close a run from its saved state without trading (stop during a restart pause, or a
        supervisor giving up): flatten at the last known quote and write the reports."""
        from storage.journal import Journal
        try:
            self.journal = Journal.open(self.paths.journal_file)
            account.load_or_resume(self)
        except Exception as e:  # noqa: BLE001
            disk = as_disk_error(e)
            self.error = str(disk) if disk else f"{type(e).__name__}: {e}"
            (log.critical if disk is not None else log.exception)(
                "finalize_only_failed", extra={"error": self.error})
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
        if ("disk full" in err or "quota exceeded" in err) and release_reserve(self.paths.root):
            # the ballast kept for this moment makes room for the report and the journal row
            log.warning("disk_reserve_released", extra={"run_id": self.run_id})
        account.reopen_journal(self)  # the watchdog may have closed it
        if self.outcome in ("completed", "stopped") and give_up_reason is None \
                and self.start_data_ts is None:
            # stopped or timed out before a single price arrived: nothing was paper-traded
            give_up_reason = self.error = "no market data was received"
        if self.outcome in ("completed", "stopped") and give_up_reason is None:
            self.status, self.exit_code = "success", 0
        else:
            self.status, self.exit_code = "error", 1
            if give_up_reason:
                self.error = give_up_reason
            self.stopped_reason = self.stopped_reason or f"error: {self.error}"
            if self.journal is not None and self.config.flatten_at_end:
                self._safe_flatten()
        outputs.write_outputs(self)
        return self.exit_code

    # ------------------------------------------------------------------ state
    def remaining_ms(self) -> int:
        """Market-data time left in the whole session."""
        if self.start_data_ts is None:
            return self.config.duration_ms
        now = self.clock.now_ms() or self.resume_from_ts or self.start_data_ts
        return max(0, self.start_data_ts + self.config.duration_ms - now)

    def note_exit_reason(self, reason: str) -> None:
        """Record why the watchdog ended this segment (it knows better than the segment)."""
        if self.segments:
            self.segments[-1]["exit_reason"] = reason
            self._save_quietly()

    def _close_segment(self) -> None:
        if not self.segments:
            return
        seg = self.segments[-1]
        if seg.get("ended") is None:
            seg["ended"] = iso(time.time() * 1000)
            seg["exit_reason"] = {
                "completed": "duration reached", "stopped": self.stopped_reason or "stopped",
            }.get(self.outcome, f"crashed: {self.abort_reason or self.error}")
        if self.recorder is not None:
            self.bus.publish(SegmentEnded(self.segment, self.outcome, seg["exit_reason"]))
            self.recorder.close()  # the next segment (or a replay) appends its own member
        self._save_quietly()

    def _save_quietly(self) -> None:
        try:
            self._save_state("running")
        except Exception as e:  # noqa: BLE001
            log_write_failure("state_save_failed", e)

    def state_doc(self, status: str) -> dict:
        with self.lock:
            return {"version": 2, "run_id": self.run_id, "status": status,
                    "saved_ts": int(time.time() * 1000), "broker": self.broker.to_state(),
                    "breaker": self.breaker.to_state(), "strategy": self.strategy.state(),
                    "session": outputs.session_state(self)}

    def _save_state(self, status: str) -> None:
        """Write the state file atomically (after the journal: the journal is the truth)."""
        from storage.state import save_json_atomic
        if self.defunct:  # a newer segment owns the state file now
            return
        with self.lock:  # build and write under the lock: two writers never reorder
            save_json_atomic(self.state_path, self.state_doc(status))
        self._last_state_save = time.monotonic()

    @property
    def state_path(self) -> Path:
        """A replay of a recording keeps its own state file: it never moves the paper account."""
        if self.config.source == "recording":
            return self.paths.paper_dir / "replay_state.json"
        return self.paths.state_file

    def _on_inject_crash(self) -> None:  # worker thread, before the injected exception
        sources.on_inject_crash(self)

    # ------------------------------------------------------------------ the loop
    def apply(self, item) -> None:
        """Apply one input from the feed queue (session thread)."""
        with self.lock:
            now = self.clock.now_ms()
            if isinstance(item, FrameReceived):
                self.engine.apply_frame(item, now)
            elif isinstance(item, FeedReconnected):
                self.engine.reconnected(item, now)
            else:  # a bare market event (tests put them on the queue directly)
                self.engine.apply_market(item)

    def _safe_flatten(self) -> None:
        if self.journal is None:
            return
        try:
            now = self.clock.now_ms() or int(time.time() * 1000)
            with self.lock:
                self.engine.flatten(now)
        except Exception as e:  # noqa: BLE001
            log_write_failure("flatten_failed", e, run_id=self.run_id)

    # ------------------------------------------------------------------ read-outs
    def health(self) -> dict:
        return outputs.health(self)

    def feed_totals(self) -> dict:
        return outputs.feed_totals(self)
