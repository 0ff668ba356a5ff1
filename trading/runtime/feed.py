"""The market-data feed thread: websocket-client -> parse -> bounded queue (one item per frame).

Frames that arrive in a burst (already waiting on the socket) are handed over together: one lock
and one wake-up of the consumer per burst (`FrameQueue.put_many_nowait`), still one item per
frame, in order; a frame is never held back while the socket has nothing more to read.

One owner of reconnection: this thread's own loop (not websocket-client's `reconnect=`), which
(re)connects with capped exponential backoff and jitter, resubscribes every channel in one
message after each connect, sends a JSON ping every few seconds, and treats a connection that
has delivered nothing for `stale_after_s` as dead. The same code serves Bitunix and the local
exchange; only the URL differs.
"""
from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field

import websocket

from trading.bitunix import QUIET_CHANNELS, parse_frame_ch, ping_message, subscribe_message
from trading.model import FeedReconnected, Pong
from trading.events import FrameReceived

log = logging.getLogger("btc_laptop_agents.feed")

CONNECTING, LIVE, STALE, RECONNECTING, STOPPED = (
    "connecting", "live", "stale", "reconnecting", "stopped")


def describe_error(e: BaseException) -> str:
    """Short 'Type: message' text; drops the 'Exception' suffix so that long class names such as
    WebSocketConnectionClosedException are not mistaken for secrets by the log redaction."""
    return f"{type(e).__name__.removesuffix('Exception')}: {e}"


@dataclass
class FeedStats:
    """Counters read by the session and the GUI (written only by the feed thread)."""

    state: str = CONNECTING
    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    stale_disconnects: int = 0
    messages: int = 0
    bytes: int = 0
    events: int = 0
    dropped: int = 0
    parse_errors: int = 0
    pings_sent: int = 0
    pongs: int = 0
    pongs_sent: int = 0  # answers to the server's protocol pings, within the send budget
    sent: int = 0
    last_message_mono: float = 0.0
    last_error: str = ""
    last_parse_error: str = ""
    parse_error_kinds: dict = field(default_factory=dict)  # "ft is not a time" -> count
    clock_skew_ms: int | None = None  # exchange clock - local clock (live only)
    channel_last_mono: dict = field(default_factory=dict)  # channel -> time of its last push
    channel_resubscribes: int = 0  # single-channel resubscribes after a silence
    channel_rebuilds: int = 0  # connections rebuilt because a channel stayed silent
    last_close: str = ""  # how the server last closed the connection (normal closes too)

    def snapshot(self, now_mono: float | None = None) -> dict:
        d = asdict(self)
        now = time.monotonic() if now_mono is None else now_mono
        # a monotonic clock reading means nothing to a reader: the age is what it tells
        mono = d.pop("last_message_mono")
        d["last_message_age_s"] = (now - mono) if mono else None
        d["channel_ages_s"] = {ch: round(now - t, 1)
                               for ch, t in sorted(d.pop("channel_last_mono").items())}
        return d


class SendLimiter:
    """Allow at most `max_per_s` sends in any sliding 1-second window (Bitunix disconnects above 5)."""

    def __init__(self, max_per_s: int = 5, clock=time.monotonic, window_s: float = 1.1) -> None:
        # the server counts frames as they arrive: a window 10 % longer than its second keeps
        # a frame that was delayed on the way from landing in the next one
        self.max_per_s = max_per_s
        self.clock = clock
        self.window_s = window_s
        self.sent: deque[float] = deque()

    def wait_time(self) -> float:
        now = self.clock()
        while self.sent and now - self.sent[0] >= self.window_s:
            self.sent.popleft()
        if len(self.sent) < self.max_per_s:
            return 0.0
        return self.window_s - (now - self.sent[0]) + 1e-3

    def record(self) -> None:
        self.sent.append(self.clock())


@dataclass
class FeedConfig:
    url: str
    subscriptions: set = field(default_factory=set)  # {(symbol, channel)}
    ping_interval_s: float = 5.0
    stale_after_s: float = 10.0
    connect_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    warn_every_s: float = 10.0
    seed: int | None = None
    # live only (push times are the exchange's clock, not recorded data times): compare them
    # with the local clock over the first pushes, log the skew, WARN above the limit
    channel_stale_s: float = 10.0  # one channel silent this long while others push
    quiet_channels: tuple = QUIET_CHANNELS  # never judged silent (trades pause)
    channel_tries: int = 3  # resubscribes of a silent channel before the connection is rebuilt
    check_clock_skew: bool = False
    clock_skew_samples: int = 5
    clock_skew_warn_ms: int = 1000


class FrameQueue(queue.Queue):
    """The bounded queue from the feed thread to the session (one item per frame)."""

    def put_many_nowait(self, items: list) -> int:
        """Append as many of `items` as there is room for, in order, under one lock, waking
        the consumer once; return how many were taken (the rest are the caller's to drop)."""
        with self.not_full:
            room = len(items) if self.maxsize <= 0 else max(0, self.maxsize - self._qsize())
            take = items if room >= len(items) else items[:room]
            if take:
                self.queue.extend(take)
                self.unfinished_tasks += len(take)
                self.not_empty.notify()
            return len(take)

    def get_many(self, timeout: float, limit: int = 0) -> list:
        """Wait up to `timeout` s for an item; return every item waiting (at most `limit`
        when it is set), in order, under one lock. Raises queue.Empty when none came."""
        with self.not_empty:
            if not self._qsize():
                end = time.monotonic() + timeout
                while not self._qsize():
                    left = end - time.monotonic()
                    if left <= 0:
                        raise queue.Empty
                    self.not_empty.wait(left)
            q = self.queue
            items = [q.popleft() for _ in range(min(limit, len(q)) if limit else len(q))]
            self.not_full.notify()
            return items


BURST_MAX = 64  # frames handed over at most at once


class ReadAheadWebSocket(websocket.WebSocket):
    """websocket-client's WebSocket, reading the socket ahead (up to 64 KiB a read): one read
    for a burst of frames rather than two or three reads a frame, and `frame_ready()` says
    without a system call whether the next frame is already here whole. (The handshake
    reads the socket itself, line by line: nothing of it is read ahead.)"""

    READ_AHEAD = 65536

    def __init__(self, *args, **kwargs) -> None:
        self._ahead = b""
        self._at = 0
        super().__init__(*args, **kwargs)

    def _recv(self, bufsize: int) -> bytes:
        ahead, at = self._ahead, self._at
        if at >= len(ahead):
            ahead = self._ahead = super()._recv(max(bufsize, self.READ_AHEAD))
            at = 0
        end = at + bufsize
        self._at = min(end, len(ahead))
        return ahead[at:end]

    def frame_ready(self) -> bool:
        """Whether the next frame is here whole, read ahead (asked between frames: the
        bytes not yet served start with a frame's header)."""
        b, at = self._ahead, self._at
        n = len(b) - at
        if n < 2:
            return False
        size, head = b[at + 1] & 0x7F, 2
        if size == 126:
            if n < 4:
                return False
            size, head = int.from_bytes(b[at + 2:at + 4], "big"), 4
        elif size == 127:
            if n < 10:
                return False
            size, head = int.from_bytes(b[at + 2:at + 10], "big"), 10
        if b[at + 1] & 0x80:  # masked (a server does not mask; a proxy might)
            head += 4
        return n >= head + size


class MarketFeed:
    """Run the websocket connection on its own thread and put parsed events on `out`."""

    def __init__(self, config: FeedConfig, out: FrameQueue) -> None:
        self.config = config
        self.out = out
        self.subscriptions: set = set(config.subscriptions)
        self.stats = FeedStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ws: websocket.WebSocket | None = None
        self._rng = random.Random(config.seed)
        self._limiter = SendLimiter(5)
        self._last_drop_warn = 0.0
        self._drops_since_warn = 0
        self._last_parse_warn = 0.0
        self._parse_since_warn = 0
        self._skew_samples: list[int] = []
        self._burst: list = []  # (item, events) parsed, not yet handed over

    # ---- control (any thread) ----
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="feed", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the socket; safe to call twice."""
        self._stop.set()
        own = self._thread is not None and self._thread is not threading.current_thread()
        if own:
            # the thread sees the flag within one read timeout and closes with a close frame
            self._thread.join(min(timeout, 1.0))
        ws = self._ws
        if ws is not None and (not own or self._thread.is_alive()):
            try:
                ws.abort()  # a thread stuck in a send or a connect: cut the socket
            except Exception:  # noqa: BLE001 - closing a dead socket
                pass
        if own:
            self._thread.join(max(0.0, timeout - 1.0))
        self.stats.state = STOPPED

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- feed thread ----
    def _backoff(self, attempt: int) -> float:
        c = self.config
        base = min(c.backoff_max_s, c.backoff_initial_s * (2 ** min(attempt, 16)))
        return base * (0.5 + 0.5 * self._rng.random())  # equal jitter

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            self.stats.state = CONNECTING if self.stats.connects == 0 else RECONNECTING
            try:
                ws = websocket.create_connection(
                    self.config.url, timeout=self.config.connect_timeout_s,
                    skip_utf8_validation=True, enable_multithread=True,
                    class_=ReadAheadWebSocket)
            except Exception as e:  # noqa: BLE001 - any connect failure means: back off, retry
                self.stats.connect_failures += 1
                self.stats.last_error = describe_error(e)
                delay = self._backoff(attempt)
                attempt += 1
                log.warning("feed_connect_failed", extra={
                    "url": self.config.url, "error": self.stats.last_error,
                    "retry_in_s": round(delay, 2), "attempt": attempt})
                self._stop.wait(delay)
                continue
            self._ws = ws
            self.stats.connects += 1
            if self.stats.connects > 1:
                self.stats.reconnects += 1
            got_data = self._serve(ws)
            self._ws = None
            try:
                if self._stop.is_set():
                    ws.close(status=1000, timeout=0.5)  # we leave: say so with a normal close
                else:
                    ws.abort()
                    ws.close(timeout=0.2)
            except Exception:  # noqa: BLE001
                pass
            if self._stop.is_set():
                break
            attempt = 0 if got_data else attempt + 1
            delay = self._backoff(attempt)
            self.stats.state = RECONNECTING
            log.warning("feed_reconnecting", extra={
                "url": self.config.url, "retry_in_s": round(delay, 2),
                "reconnects": self.stats.reconnects, "error": self.stats.last_error})
            self._stop.wait(delay)
        self.stats.state = STOPPED

    def _send(self, ws, text: str) -> None:
        self._budget()
        ws.send(text)
        self._limiter.record()
        self.stats.sent += 1

    def _budget(self) -> None:
        """Wait until one more frame fits Bitunix's 5 per second (JSON, ping and pong alike)."""
        self._hand_over(time.monotonic())  # nothing read waits behind a send
        wait = self._limiter.wait_time()
        while wait > 0 and not self._stop.is_set():
            self._stop.wait(wait)
            wait = self._limiter.wait_time()

    def _recv(self, ws) -> tuple[int, bytes]:
        """Read one message, answering a protocol ping with a pong inside the send budget.

        websocket-client's own recv_data() answers pings outside any budget, and Bitunix
        counts PING and PONG frames in its 5 messages per second.
        """
        while True:
            # a read may block: what was read goes to the consumer first, unless the next
            # frame is already here whole (a burst, handed over together)
            if self._burst and (len(self._burst) >= BURST_MAX or not ws.frame_ready()):
                self._hand_over(time.monotonic())
            frame = ws.recv_frame()
            op = frame.opcode
            if op in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY,
                      websocket.ABNF.OPCODE_CONT):
                ws.cont_frame.validate(frame)
                ws.cont_frame.add(frame)
                if ws.cont_frame.is_fire(frame):
                    opcode, whole = ws.cont_frame.extract(frame)
                    return opcode, whole.data
            elif op == websocket.ABNF.OPCODE_CLOSE:
                return op, frame.data
            elif op == websocket.ABNF.OPCODE_PING:
                if len(frame.data) >= 126:
                    raise websocket.WebSocketProtocolException("ping payload too long")
                self._budget()
                ws.pong(frame.data)
                self._limiter.record()
                self.stats.sent += 1
                self.stats.pongs_sent += 1
            # a PONG (to a ping we never send: the keep-alive is the JSON ping) is ignored

    def _serve(self, ws) -> bool:
        """Subscribe, then read until the socket fails or goes stale; return whether data came."""
        c = self.config
        got_data = False
        subs = sorted(self.subscriptions)
        try:
            log.info("Resubscribing to %s", ", ".join(f"{s}:{ch}" for s, ch in subs),
                     extra={"channels": len(subs), "connects": self.stats.connects})
            self._send(ws, subscribe_message(subs))
            ws.settimeout(0.25)
            now = time.monotonic()
            subscribed_at = now
            next_channel_check = now
            self._silent_tries: dict[str, int] = {}
            self._asked_at: dict[str, float] = {}
            last_msg = now
            last_ping = now
            if self.stats.connects > 1:
                self._mark_reconnected()
            while not self._stop.is_set():
                now = time.monotonic()
                if now - last_ping >= c.ping_interval_s:
                    self._send(ws, ping_message(int(time.time())))
                    self.stats.pings_sent += 1
                    last_ping = now
                if c.channel_stale_s > 0 and now >= next_channel_check:
                    next_channel_check = now + 0.25  # not per message: per quarter second
                    if not self._channels_ok(ws, now, subscribed_at):
                        return got_data
                # checked on every pass: frames without market data must not keep it "live"
                if now - last_msg > c.stale_after_s:
                    self.stats.state = STALE
                    self.stats.stale_disconnects += 1
                    self.stats.last_error = f"no market data for {c.stale_after_s:.0f}s"
                    log.warning("feed_stale", extra={"stale_after_s": c.stale_after_s,
                                                     "url": c.url})
                    return got_data
                try:
                    opcode, data = self._recv(ws)
                except websocket.WebSocketTimeoutException:
                    continue
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                    reason = bytes(data[2:]).decode("utf-8", "replace")[:200]
                    text = f"server closed the connection ({code}{': ' + reason if reason else ''})"
                    self.stats.last_close = text
                    if code not in (1000, 1001):  # a normal close (e.g. the replay ended)
                        self.stats.last_error = text  # is no error
                    return got_data
                if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                    continue
                now = time.monotonic()
                st = self.stats
                st.messages += 1
                st.bytes += len(data)
                if self._handle(data, now):
                    # only market data counts as "alive": pong replies alone do not
                    last_msg = now
                    st.last_message_mono = now
                    got_data = True
                    if st.state != LIVE:
                        st.state = LIVE
                        log.info("feed_live", extra={"url": c.url, "connects": st.connects})
        except (websocket.WebSocketException, OSError) as e:
            if not self._stop.is_set():  # the socket we closed ourselves on stop is no error
                self.stats.last_error = describe_error(e)
        finally:
            self._hand_over(time.monotonic())  # what was read is delivered, then the end
        return got_data

    def _channels_ok(self, ws, now: float, subscribed_at: float) -> bool:
        """Per-channel liveness: a channel silent for channel_stale_s while another one pushes
        is resubscribed alone (within the send budget); after channel_tries resubscribes with
        no push the connection is rebuilt (return False). A channel that answers is alive.
        Bitunix does not acknowledge subscriptions: a refused channel is simply silent."""
        c = self.config
        st = self.stats
        last = st.channel_last_mono
        flowing = [ch for ch in last if now - last[ch] <= c.channel_stale_s
                   and last[ch] >= subscribed_at]
        if not flowing:
            return True  # the whole feed is quiet: the connection-level check handles that
        for symbol, ch in sorted(self.subscriptions):
            if ch in c.quiet_channels:
                continue  # trades may rightly pause: silence there rebuilds nothing
            seen = last.get(ch, 0.0)
            since = max(seen if seen >= subscribed_at else subscribed_at,
                        self._asked_at.get(ch, 0.0))
            if now - since <= c.channel_stale_s:
                continue
            tries = self._silent_tries.get(ch, 0)
            age = round(now - seen, 1) if seen >= subscribed_at else None
            if tries >= c.channel_tries:
                st.channel_rebuilds += 1
                st.last_error = (f"channel {ch} silent after {tries} resubscribes; "
                                 "rebuilding the connection")
                log.warning("channel_silent_rebuild", extra={
                    "channel": ch, "tries": tries, "age_s": age, "flowing": flowing})
                return False
            self._silent_tries[ch] = tries + 1
            self._asked_at[ch] = now
            st.channel_resubscribes += 1
            # the first resubscribe may just meet a quiet market (Bitunix does not say how
            # often a book pushes): WARNING once it went unanswered
            (log.warning if tries else log.info)("channel_silent", extra={
                "channel": ch, "symbol": symbol, "age_s": age, "try": tries + 1,
                "of": c.channel_tries, "flowing": flowing})
            self._send(ws, subscribe_message([(symbol, ch)]))
        return True

    def _mark_reconnected(self) -> None:
        """Tell the consumer the connection was lost in between (before any new data)."""
        try:
            self.out.put(FeedReconnected(ts=int(time.time() * 1000),
                                         connects=self.stats.connects), timeout=2.0)
        except queue.Full:
            self.stats.dropped += 1
            log.warning("feed_reconnect_marker_dropped", extra={"queue_max": self.out.maxsize})

    def _sample_skew(self, ev) -> None:
        """Push time minus arrival time is the skew less the network delay: the largest of the
        first samples is the best estimate (the delay only ever makes a sample smaller)."""
        ts = getattr(ev, "ts", None)
        if not isinstance(ts, int):
            return
        self._skew_samples.append(ts - int(time.time() * 1000))
        if len(self._skew_samples) < self.config.clock_skew_samples:
            return
        skew = max(self._skew_samples)
        self.stats.clock_skew_ms = skew
        extra = {"skew_ms": skew, "samples": len(self._skew_samples),
                 "warn_above_ms": self.config.clock_skew_warn_ms, "url": self.config.url}
        if abs(skew) > self.config.clock_skew_warn_ms:
            log.warning("clock_skew_large", extra=extra)
        else:
            log.info("clock_skew", extra=extra)

    def _handle(self, data: bytes, now: float) -> bool:
        """Parse one frame and queue its events; return whether it carried market data."""
        try:
            ch, events = parse_frame_ch(data)
        except Exception as e:  # noqa: BLE001 - no frame may kill the feed thread
            st = self.stats
            st.parse_errors += 1
            st.last_parse_error = str(e)[:200]
            # the kind is the message before its example value ("ft is not a time: 'soon'")
            kind = st.last_parse_error.split(":", 1)[0][:80]
            first = kind not in st.parse_error_kinds
            if first and len(st.parse_error_kinds) >= 100:
                kind, first = "other", "other" not in st.parse_error_kinds
            st.parse_error_kinds[kind] = st.parse_error_kinds.get(kind, 0) + 1
            if first:  # each kind once, with an example: a format change is seen at once
                log.warning("feed_frame_rejected_kind", extra={
                    "kind": kind, "example": st.last_parse_error})
            self._parse_since_warn += 1
            if now - self._last_parse_warn >= self.config.warn_every_s:
                log.warning("feed_frame_rejected", extra={
                    "count": self._parse_since_warn, "total": st.parse_errors,
                    "reason": st.last_parse_error})
                self._last_parse_warn = now
                self._parse_since_warn = 0
            # the session counts it against the breaker in stream order, and records it
            self._burst.append((FrameReceived(bytes(data), now, int(time.time() * 1000),
                                              error=st.last_parse_error), 0))
            return False
        market = False
        if ch is not None:
            self.stats.channel_last_mono[ch] = now
            if getattr(self, "_silent_tries", None):
                self._silent_tries.pop(ch, None)
        market_events = []
        for ev in events:
            if isinstance(ev, Pong):
                self.stats.pongs += 1
                continue
            market = True
            if self.config.check_clock_skew and self.stats.clock_skew_ms is None:
                self._sample_skew(ev)
            market_events.append(ev)
        if market_events:
            # one item per frame, with its receive times: what the session applies, in order,
            # is what a recording of it replays
            self._burst.append((FrameReceived(bytes(data), now, int(time.time() * 1000),
                                              tuple(market_events), ch), len(market_events)))
        return market

    def _hand_over(self, now: float) -> None:
        """Put the burst's frames on the queue, in order (those that do not fit are dropped
        and counted, as one frame that does not fit)."""
        burst, self._burst = self._burst, []
        if not burst:
            return
        taken = self.out.put_many_nowait([item for item, _ in burst])
        self.stats.events += sum(n for _, n in burst[:taken])
        for _ in burst[taken:]:
            self._dropped(now)
        # a queue filling up: let the consumer take them now (reading ahead, this thread
        # would otherwise keep the interpreter lock until forced to give it up, every 5 ms,
        # and a fast stream would fill the queue meanwhile)
        if self.out.maxsize and self.out.qsize() * 8 >= self.out.maxsize:
            time.sleep(0)

    def _dropped(self, now: float) -> None:
        self.stats.dropped += 1
        self._drops_since_warn += 1
        if now - self._last_drop_warn >= self.config.warn_every_s:
            log.warning("feed_queue_full_dropping", extra={
                "dropped": self._drops_since_warn, "dropped_total": self.stats.dropped,
                "queue_max": self.out.maxsize})
            self._last_drop_warn = now
            self._drops_since_warn = 0
