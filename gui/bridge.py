"""The one bridge between engine threads and the GUI thread.

Engine threads call `Bridge.publish(kind, payload)`; widgets connect to the bridge's signals and
to nothing else of the engine. `publish` never blocks and never touches a widget: it appends to a
deque (or, for quotes, replaces the single latest quote), and a GUI-thread QTimer drains the deque
every frame and emits the typed signals from the GUI thread.

Why a drained deque rather than emitting queued signals from the engine threads: the engine may
call `publish` with its broker lock held and thousands of times per second; a deque append costs
a fraction of a microsecond, keeps every event in order, and lets the GUI coalesce whatever is
only worth showing once per frame (quotes, the forming candle, health) before anything repaints.
"""
from __future__ import annotations

import logging
import threading
from collections import deque

from PySide6.QtCore import QObject, QTimer, Signal

log = logging.getLogger("btc_laptop_agents.gui")

FRAME_MS = 33  # ~30 repaints per second at most
IDLE_FRAME_MS = 100  # after half a second with nothing to deliver

# kinds of which only the newest one of a frame matters
_COALESCED = frozenset({"kline", "health", "status"})


class Bridge(QObject):
    """Carry engine events to GUI-thread signals; `publish` is safe from any thread."""

    # one signal per kind; payloads stay Python objects (Signal(object)) so Decimals survive
    event = Signal(str, object)  # every kind except quotes, after the typed signal
    session_started = Signal(object)  # dict
    history = Signal(object)  # list[dict] of closed candles
    quote_changed = Signal(object)  # trading.model.Quote, at most once per frame
    kline = Signal(object)  # KlineUpdate: the forming candle, at most once per frame
    candle = Signal(object)  # Candle: a closed candle
    order = Signal(object)  # Order: submitted, and again (same order_id) when a limit rests
    order_progress = Signal(object)  # dict {order_id, filled, remaining, status}: partial fill
    order_done = Signal(object)  # dict {order_id, status, reason[, remaining]}
    fill = Signal(object)  # dict
    position = Signal(object)  # dict
    equity = Signal(object)  # dict
    health = Signal(object)  # dict from Session.health()
    status = Signal(str)
    offline_fallback = Signal(object)  # dict
    watchdog_restart = Signal(object)  # dict
    watchdog_gave_up = Signal(str)
    account_notice = Signal(object)  # {source: rebuilt/reset, note}: said in words on screen
    finished = Signal(object)  # the final report dict
    runner_done = Signal(object)  # {exit_code, run_dir, run_id} from the controller's thread
    log_record = Signal(object)  # (levelno, message, " | key=value ..." or "")
    error = Signal(str, str)  # (title, text) from an exception hook on any thread

    def __init__(self, parent: QObject | None = None, frame_ms: int = FRAME_MS) -> None:
        super().__init__(parent)
        self._queue: deque = deque()
        self._lock = threading.Lock()
        self._latest_quote = None
        self._emitted_quote = None
        self.quotes_received = 0
        self.quotes_emitted = 0
        self.events_received = 0
        self.events_emitted = 0
        self.handler_errors = 0
        self._signals = {
            "session_started": self.session_started, "history": self.history,
            "kline": self.kline, "candle": self.candle, "order": self.order,
            "order_progress": self.order_progress,
            "order_done": self.order_done, "fill": self.fill, "position": self.position,
            "equity": self.equity, "health": self.health, "status": self.status,
            "offline_fallback": self.offline_fallback, "watchdog_restart": self.watchdog_restart,
            "watchdog_gave_up": self.watchdog_gave_up, "finished": self.finished,
            "account_notice": self.account_notice,
            "runner_done": self.runner_done, "log": self.log_record, "error": self.error,
        }
        self._frame_ms = frame_ms
        self._idle_ticks = 0
        self._idle_quote = None
        self._timer = QTimer(self)
        self._timer.setInterval(frame_ms)
        self._timer.timeout.connect(self.drain)
        self._timer.start()

    # ---- any thread ----
    def publish(self, kind: str, payload: object = None) -> None:
        """Hand an engine event to the GUI (any thread; never blocks on the GUI)."""
        if kind == "quote":
            with self._lock:
                self._latest_quote = payload
                self.quotes_received += 1
            return
        self._queue.append((kind, payload))  # deque.append is atomic

    # ---- GUI thread ----
    def drain(self) -> int:
        """Emit everything published since the last frame, in order; return how many (GUI thread)."""
        n = len(self._queue)
        batch = [self._queue.popleft() for _ in range(n)]
        self.events_received += n
        last_of: dict[str, int] = {}
        for i, (kind, _payload) in enumerate(batch):
            if kind in _COALESCED:
                last_of[kind] = i
        emitted = 0
        for i, (kind, payload) in enumerate(batch):
            if kind in _COALESCED and last_of[kind] != i:
                continue
            self._emit(kind, payload)
            emitted += 1
        with self._lock:
            quote = self._latest_quote
        if quote is not None and quote is not self._emitted_quote:
            self._emitted_quote = quote
            self.quotes_emitted += 1
            self._guarded(self.quote_changed.emit, quote, "quote")
        self.events_emitted += emitted
        # with nothing to deliver for half a second, poll at 10 Hz instead of 30 Hz (an idle
        # window then costs almost nothing); the first event switches back at once
        if emitted or quote is not self._idle_quote:
            self._idle_ticks = 0
            self._idle_quote = quote
            if self._timer.interval() != self._frame_ms:
                self._timer.setInterval(self._frame_ms)
        else:
            self._idle_ticks += 1
            if self._idle_ticks >= 15 and self._timer.interval() != IDLE_FRAME_MS:
                self._timer.setInterval(IDLE_FRAME_MS)
        return emitted

    def _emit(self, kind: str, payload: object) -> None:
        sig = self._signals.get(kind)
        if kind == "error":
            title, text = payload if isinstance(payload, tuple) else ("Error", str(payload))
            self._guarded(self.error.emit, (str(title), str(text)), kind, star=True)
            return
        if sig is not None:
            if kind in ("status", "watchdog_gave_up"):
                payload = "" if payload is None else str(payload)
            self._guarded(sig.emit, payload, kind)
        if kind not in ("log", "runner_done"):
            self._guarded(self.event.emit, (kind, payload), kind, star=True)

    def _guarded(self, fn, arg, kind: str, star: bool = False) -> None:
        # one bad consumer must not stop the others, nor this frame's remaining events
        try:
            fn(*arg) if star else fn(arg)
        except Exception:  # noqa: BLE001
            self.handler_errors += 1
            log.exception("gui_handler_failed", extra={"kind": kind})

    def stats(self) -> dict:
        """Counters for benchmarks and tests (GUI thread)."""
        with self._lock:
            received = self.quotes_received
        return {"quotes_received": received, "quotes_emitted": self.quotes_emitted,
                "events_received": self.events_received, "events_emitted": self.events_emitted,
                "handler_errors": self.handler_errors, "pending": len(self._queue)}

    def reset_quote(self) -> None:
        """Forget the latest quote (a new session starts; GUI thread)."""
        with self._lock:
            self._latest_quote = None
        self._emitted_quote = None


_STANDARD_ATTRS = frozenset(logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__) \
    | {"message", "asctime", "taskName"}


class BridgeLogHandler(logging.Handler):
    """Forward log records to the bridge as (levelno, line) for the log view (any thread).

    Carries the app's SensitiveDataFilter like every other handler, so no secret reaches the
    window. Never raises: the window may already be gone while engine threads still log.
    """

    def __init__(self, bridge: Bridge, level: int = logging.DEBUG) -> None:
        super().__init__(level)
        from storage.logger import SensitiveDataFilter
        self._bridge = bridge
        self.addFilter(SensitiveDataFilter())
        self.setFormatter(_LineFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            head, sep, rest = text.partition(_EXTRAS_SEP)
            self._bridge.publish("log", (record.levelno, head, sep + rest))
        except Exception:  # noqa: BLE001 - a log handler must not raise into the engine
            pass

    def detach(self) -> None:
        """Remove this handler from every logger it was added to."""
        for name in ("btc_laptop_agents", "websocket", "websockets"):
            logging.getLogger(name).removeHandler(self)


_EXTRAS_SEP = " | "


class _LineFormatter(logging.Formatter):
    """`HH:MM:SS.mmm LEVEL   logger: message | key=value ...` (UTC)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatTime(self, record, datefmt=None) -> str:  # noqa: N802 - logging API
        import time as _time
        t = _time.gmtime(record.created)
        return _time.strftime("%H:%M:%S", t) + f".{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        name = record.name
        record.name = name.removeprefix("btc_laptop_agents.")
        try:
            line = super().format(record)
        finally:
            record.name = name
        extras = [f"{k}={v}" for k, v in record.__dict__.items()
                  if k not in _STANDARD_ATTRS and not k.startswith("_")]
        head, sep, tail = line.partition("\n")
        if extras:
            head += _EXTRAS_SEP + " ".join(extras)
        return head + sep + tail
