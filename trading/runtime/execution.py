"""The execution worker thread and the session clocks.

The worker only decides *when* the clock ticks: it sleeps on the monotonic clock until the
earliest pending order is due, then hands the engine the clock's `now` (`on_tick`, under the
session lock, so the tick takes its place in the one event stream); the broker decides *what*
fills (the quote in force at that moment). In replay the data clock drives the
same broker code: `now` never runs ahead of the market data that has arrived.
"""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("btc_laptop_agents.execution")


class LiveClock:
    """Live market: exchange time, extrapolated on the monotonic clock from the newest push.

    The broker's due times come from exchange timestamps, so the worker must not compare them
    with a local wall clock that may be skewed; with no push yet it falls back to wall time.
    """

    speed = 1.0

    def __init__(self) -> None:
        self._ts = 0
        self._mono = 0.0

    def now_ms(self) -> int:
        if not self._ts:
            return int(time.time() * 1000)
        return self._ts + int((time.monotonic() - self._mono) * 1000)

    def observe(self, ts: int) -> None:
        if ts > self._ts:
            self._ts = ts
            self._mono = time.monotonic()

    def wall_seconds_until(self, ts: int) -> float:
        return (ts - self.now_ms()) / 1000.0


class DataClock:
    """Replay: data time is the newest market timestamp seen; it advances `speed` x wall time."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._now = 0

    def now_ms(self) -> int:
        return self._now

    def observe(self, ts: int) -> None:
        if ts > self._now:
            self._now = ts

    def wall_seconds_until(self, ts: int) -> float:
        if not self._now:
            return 0.05
        return (ts - self._now) / 1000.0 / self.speed


class ExecutionWorker:
    """Thread that wakes when the next order is due and lets the broker fill it."""

    def __init__(self, broker, lock: threading.RLock, clock, on_tick, on_error=None) -> None:
        self.broker = broker  # read for the next due time; the engine owns what fills
        self.lock = lock
        self.clock = clock
        self.on_tick = on_tick  # (now_ms) -> whether anything filled
        self.on_error = on_error
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.wakeups = 0
        self._crash_at: float | None = None
        self._on_crash = None

    def inject_crash(self, at_mono: float, before=None) -> None:
        """Fault injection: raise an unhandled exception in this thread at `at_mono`."""
        self._crash_at = at_mono
        self._on_crash = before

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="execution", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Tell the worker an order was submitted (called by the session thread)."""
        with self._cond:
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _next_due(self) -> int | None:
        with self.lock:
            return self.broker.next_due()

    def _run(self) -> None:
        while True:
            if self._crash_at is not None and time.monotonic() >= self._crash_at:
                self._crash_at = None
                if self._on_crash is not None:
                    self._on_crash()
                # deliberately unhandled: threading.excepthook and the watchdog must see it
                raise RuntimeError("injected crash in the execution worker thread")
            with self._cond:
                if self._stop:
                    return
                due = self._next_due()
                if due is None:
                    self._cond.wait(0.05 if self._crash_at is not None else 1.0)
                    continue
                wait = self.clock.wall_seconds_until(due)
                if wait > 0:
                    # in replay the data may lag the estimate: re-check at least every 50 ms
                    self._cond.wait(min(wait, 0.05) if self.clock.speed != 1.0 else wait)
                    continue
            self.wakeups += 1
            try:
                with self.lock:
                    filled = self.on_tick(self.clock.now_ms())
            except Exception as e:  # noqa: BLE001 - reported to the session, thread goes on
                from storage.errors import as_disk_error
                disk = as_disk_error(e)
                if disk is not None:  # a full or read-only disk is an error, not a crash
                    log.error("execution_worker_error", extra={"error": str(disk)})
                else:
                    log.exception("execution_worker_error")
                if self.on_error is not None:
                    self.on_error(e)
                with self._cond:
                    self._cond.wait(0.1)
            else:
                if not filled:
                    with self._cond:
                        self._cond.wait(0.01)
