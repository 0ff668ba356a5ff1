"""A local stand-in for Bitunix's public futures market data, on 127.0.0.1.

A real websocket server (websockets' thread-based sync server) speaking the protocol of
BITUNIX_PROTOCOL.md at ``/public/``, plus the REST kline endpoint on the same port, replaying
recorded BTC data through ``trading.replay`` with optional fault injection (``ChaosPlan``).

Threads: one server thread accepting connections, one handler thread per connection (reads the
client's messages), one sender thread per connection (drains that client's bounded queue, so a
slow client never blocks anyone else), and one replay thread that walks the timeline at
``speed`` x wall time and fans frames out. The replay clock runs whether or not anyone listens.

Run it alone: ``python -m trading.runtime.exchange --port 8765 --speed 60``.
"""
from __future__ import annotations

import argparse
from datetime import datetime, timedelta
import email.utils
import logging
import math
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import EXTERNAL_CLOSE_CODES, Opcode
from websockets.http11 import Response
from websockets.sync.server import serve

from trading.replay import MAX_HISTORY, Timeline, build_timeline
from trading.runtime.datafiles import default_depth_model
from trading.runtime.datafiles import MarketData, default_replay_file, load_market_file

__all__ = ["LocalExchange", "ChaosPlan", "Fault", "FAULT_KINDS", "WS_PATH", "KLINE_PATH"]

log = logging.getLogger("btc_laptop_agents.exchange")

WS_PATH = "/public/"
KLINE_PATH = "/api/v1/futures/market/kline"
CHANNELS = ("market_kline_1min", "depth_book1", "depth_book15", "trade", "tickers", "price")
SNAPSHOT_CHANNELS = ("depth_book1", "depth_book15", "market_kline_1min", "tickers", "price")
MAX_CLIENT_MSGS_PER_S = 5           # Bitunix disconnects a client sending more
MAX_GAP_MS = 60_000                 # longer silences in the data are skipped, not waited out
PARAM_ERROR_CODE = 10002  # Bitunix: 10001 network error, 10002 parameter error
# REST kline intervals (Bitunix's REST names) in minutes; "1M" (calendar months) is refused
REST_INTERVALS = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240,
                  "6h": 360, "8h": 480, "12h": 720, "1d": 1440, "3d": 4320, "1w": 10080}
REST_LAYOUTS = ("documented", "by-name")
BIGFRAME_BYTES = 1 << 20

# kind -> (argument type, default); argument type None = takes no argument
FAULT_KINDS: dict[str, tuple[str | None, float | int | None]] = {
    "drop": (None, None),
    "stall": ("duration", 10.0),
    "close": ("code", 1011),
    "garbage": (None, None),
    "wrongtypes": (None, None),
    "crossed": (None, None),
    "nan": (None, None),
    "negative": (None, None),
    "bigframe": (None, None),
    "disorder": ("count", 10),
    "dup": ("count", 10),
    "flood": ("count", 50_000),
    "ping": ("count", 10),
    # from then on each minute's last kline push is held back and sent 100 ms into the next
    # minute, stamped there (the late first push Bitunix's protocol leaves possible)
    "latekline": (None, None),
    # mute@30s:CHANNEL silences CHANNEL for every client connected then, until it resubscribes
    # it; mute@30s:CHANNEL:forever ignores its resubscribes too (a new connection is heard)
    "mute": ("channel", None),  # the server sends N protocol pings at once: the client must pong
}

MAX_CHAOS_SECONDS = 7 * 86400.0  # no session is longer than a week
MAX_STALL_SECONDS = 3600.0  # a stall is wall time: an hour of silence is already a dead feed
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*$", re.IGNORECASE)


def _seconds(text: str) -> float:
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 1.5m, 500ms)")
    if len(m.group(1)) > 15:
        raise ValueError(f"not a duration: {text!r} (too many digits)")
    value = float(m.group(1))
    unit = (m.group(2) or "s").lower()
    secs = value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]
    if not (math.isfinite(secs) and secs <= MAX_CHAOS_SECONDS):
        raise ValueError(f"{text!r} is beyond {MAX_CHAOS_SECONDS / 86400:g} days")
    return secs


@dataclass(frozen=True)
class Fault:
    """One fault: `kind` fired when the replay reaches `at_s` seconds of data time."""

    kind: str
    at_s: float
    arg: float | int | str | None = None

    @property
    def at_ms(self) -> int:
        return int(round(self.at_s * 1000))

    def __str__(self) -> str:
        at = f"{self.at_s:g}s"
        if self.arg is None:
            return f"{self.kind}@{at}"
        arg = f"{self.arg:g}s" if self.kind == "stall" else str(self.arg)
        return f"{self.kind}@{at}:{arg}"


@dataclass(frozen=True)
class ChaosPlan:
    """Faults to inject, ordered by when they fire."""

    faults: tuple[Fault, ...] = ()

    @classmethod
    def parse(cls, spec: str | None) -> "ChaosPlan":
        """Parse ``"drop@30s,stall@90s:15s,garbage@120s"``; raise ValueError naming a bad item."""
        if spec is None:
            return cls()
        if not isinstance(spec, str):
            raise ValueError(f"chaos spec must be a string, got {type(spec).__name__}")
        faults = []
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            faults.append(_parse_fault(item))
        faults.sort(key=lambda f: f.at_s)
        return cls(tuple(faults))

    def __bool__(self) -> bool:
        return bool(self.faults)

    def __iter__(self):
        return iter(self.faults)

    def __len__(self) -> int:
        return len(self.faults)

    def __str__(self) -> str:
        return ",".join(str(f) for f in self.faults)


def _parse_fault(item: str) -> Fault:
    kind, at_sep, rest = item.partition("@")
    kind = kind.strip().lower()
    if kind not in FAULT_KINDS:
        raise ValueError(f"chaos item {item!r}: unknown fault {kind!r}; "
                         f"known: {', '.join(FAULT_KINDS)}")
    if not at_sep:
        raise ValueError(f"chaos item {item!r}: missing '@TIME' (e.g. {kind}@30s)")
    at_text, arg_sep, arg_text = rest.partition(":")
    try:
        at_s = _seconds(at_text)
    except ValueError as e:
        raise ValueError(f"chaos item {item!r}: bad time: {e}") from None
    arg_type, default = FAULT_KINDS[kind]
    if not arg_sep and arg_type == "channel":
        raise ValueError(f"chaos item {item!r}: {kind} needs a channel "
                         f"(e.g. {kind}@30s:market_kline_1min)")
    if not arg_sep:
        return Fault(kind, at_s, default)
    arg_text = arg_text.strip()
    if arg_type == "channel":
        ch, _, mode = arg_text.partition(":")
        if ch not in CHANNELS:
            raise ValueError(f"chaos item {item!r}: unknown channel {ch!r}; "
                             f"known: {', '.join(CHANNELS)}")
        if mode not in ("", "forever"):
            raise ValueError(f"chaos item {item!r}: after the channel only ':forever' may "
                             f"follow, not {mode!r}")
        return Fault(kind, at_s, arg_text)
    if arg_type is None:
        raise ValueError(f"chaos item {item!r}: {kind} takes no argument")
    if arg_type == "duration":
        try:
            dur = _seconds(arg_text)
        except ValueError as e:
            raise ValueError(f"chaos item {item!r}: bad duration: {e}") from None
        if dur <= 0 or dur > MAX_STALL_SECONDS:
            raise ValueError(f"chaos item {item!r}: duration must be > 0 and at most "
                             f"{MAX_STALL_SECONDS:g}s")
        return Fault(kind, at_s, dur)
    try:
        value = int(arg_text)
    except ValueError:
        raise ValueError(f"chaos item {item!r}: {kind} needs an integer, got {arg_text!r}") \
            from None
    if arg_type == "code":
        if not (value in EXTERNAL_CLOSE_CODES or 3000 <= value <= 4999):
            raise ValueError(f"chaos item {item!r}: {value} is not a close code a server may "
                             f"send (1000-1003, 1007-1014, 3000-4999)")
    elif value < 1 or value > 10_000_000:
        raise ValueError(f"chaos item {item!r}: count must be 1..10000000, got {value}")
    return Fault(kind, at_s, value)


def _parse_speed(speed) -> float:
    """Return data seconds per wall second; 'max' / 'inf' mean no waiting at all."""
    if isinstance(speed, str) and speed.strip().lower() in ("max", "inf"):
        return math.inf
    try:
        value = float(speed)
    except (TypeError, ValueError):
        raise ValueError(f"speed must be a positive number or 'max', got {speed!r}") from None
    if not value > 0:      # also rejects NaN
        raise ValueError(f"speed must be > 0 or 'max', got {speed!r}")
    return value


# ---------------------------------------------------------------- one connection

class _Client:
    """One websocket connection: its subscriptions, bounded queue and sender thread."""

    def __init__(self, exchange: "LocalExchange", ws, client_id: int, queue_size: int) -> None:
        self.exchange = exchange
        self.ws = ws
        self.id = client_id
        self.queue_size = queue_size
        self.channels: set[str] = set()       # guarded by exchange._lock
        self.data: deque = deque()
        self.ctrl: deque = deque()
        self.cond = threading.Condition()
        self.closed = False
        self.sent = 0
        self.dropped = 0
        self.pongs = 0
        self.recv_times: deque = deque()  # every frame from the client, pings and pongs too
        self.max_frames_per_s = 0  # the most frames the client sent within one second
        self.control_frames = 0  # pings and pongs received from the client
        self.rate_limited = False
        self.muted: dict[str, bool] = {}  # channel -> forever (mute chaos; exchange._lock)
        self.sender = threading.Thread(target=self._run, name=f"exchange-send-{client_id}",
                                       daemon=True)

    def enqueue(self, payload) -> None:
        """Queue a data frame; drop the oldest on overflow. Called by the replay thread."""
        with self.cond:
            if self.closed:
                return
            if len(self.data) >= self.queue_size:
                self.data.popleft()
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("client_queue_overflow", extra={"client": self.id,
                                                                "queue_size": self.queue_size})
            self.data.append(payload)
            self.cond.notify()

    def control(self, item: tuple) -> None:
        """Queue a control item (pong, drop, close, flood) ahead of the data frames."""
        with self.cond:
            if self.closed:
                return
            self.ctrl.append(item)
            self.cond.notify()

    def clear(self) -> None:
        with self.cond:
            self.data.clear()
            self.ctrl = deque(c for c in self.ctrl if c[0] != "pong")

    def shut(self) -> None:
        with self.cond:
            self.closed = True
            self.data.clear()
            self.ctrl.clear()
            self.cond.notify()

    def _run(self) -> None:
        ws = self.ws
        ex = self.exchange
        while True:
            with self.cond:
                while not self.ctrl and not self.data and not self.closed:
                    self.cond.wait()
                if self.closed:
                    return
                if self.ctrl:
                    item = self.ctrl.popleft()
                    batch = None
                else:
                    item = None
                    n = min(len(self.data), 64)
                    batch = [self.data.popleft() for _ in range(n)]
            try:
                if batch is not None:
                    if ex.stalled():
                        continue        # a stalled exchange sends nothing at all
                    for payload in batch:
                        ws.send(payload, text=True)
                        self.sent += 1
                else:
                    self._do(item)
            except (ConnectionClosed, OSError, RuntimeError):
                self.shut()
                return
            except Exception:   # one bad frame must not kill the sender
                log.exception("client_send_failed", extra={"client": self.id})

    def _do(self, item: tuple) -> None:
        what = item[0]
        if what == "pong":
            if self.exchange.stalled():
                return
            self.ws.send(item[1], text=True)
            self.sent += 1
            self.pongs += 1
        elif what == "raw":
            self.ws.send(item[1], text=True)
            self.sent += 1
        elif what == "flood":
            _, count, payload = item
            send = self.ws.send
            for _ in range(count):
                if self.closed:
                    return
                send(payload, text=True)
                self.sent += 1
        elif what == "ping":
            for i in range(item[1]):
                if self.closed:
                    return
                self.ws.ping(f"srv-{i}".encode())
        elif what == "drop":
            self._abort()
        elif what == "close":
            self.shut()
            self.ws.close(item[1], item[2] if len(item) > 2 else "local exchange fault")

    def _abort(self) -> None:
        """Cut the TCP connection with no websocket close frame (a reset where possible)."""
        self.shut()
        sock = self.ws.socket
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# ---------------------------------------------------------------- the exchange

class LocalExchange:
    """Serve Bitunix-shaped public market data from a replay on 127.0.0.1.

    ``start()`` returns at once; ``stop()`` closes everything. Use as a context manager.
    ``speed`` is data seconds per wall second (``"max"`` or ``inf``: no waiting).
    """

    def __init__(self, data: MarketData | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, speed: float | str = 1.0, seed: int = 0,
                 symbol: str = "BTCUSDT", chaos: str | ChaosPlan = "",
                 start_index: int | None = None, spread_usd: float = 1.0,
                 greeting: bool = True, queue_size: int = 20_000,
                 quotes_per_minute: int = 20, kline_every_ms: int = 500,
                 rest_layout: str = "documented", clock: str = "data",
                 clock_skew_ms: int = 0, synthetic_depth: bool = True) -> None:
        if data is None:
            data = load_market_file(default_replay_file())
        self.data = data
        self.host = host
        self._port_requested = int(port)
        if not 0 <= self._port_requested <= 65535:
            raise ValueError(f"port must be 0..65535, got {port!r}")
        self.speed = _parse_speed(speed)
        self.seed = int(seed)
        self.symbol = symbol
        self.chaos = chaos if isinstance(chaos, ChaosPlan) else ChaosPlan.parse(chaos)
        self.greeting = greeting
        if rest_layout not in REST_LAYOUTS:
            raise ValueError(f"rest_layout must be one of {', '.join(REST_LAYOUTS)}, "
                             f"not {rest_layout!r}")
        self.rest_layout = rest_layout  # which REST field carries the coin volume
        # "data": pushes carry the recorded data's times (a replay of 2026-01-01);
        # "wall": like the live exchange, pushes carry the exchange's clock (the local wall
        # clock + clock_skew_ms), the data shifted by whole minutes to now; speed must be 1
        if clock not in ("data", "wall"):
            raise ValueError(f"clock must be 'data' or 'wall', not {clock!r}")
        if clock == "wall" and self.speed != 1.0:
            raise ValueError("clock 'wall' replays in real time: speed must be 1")
        self.clock = clock
        self.clock_skew_ms = int(clock_skew_ms)
        self.clock_offset_ms = 0  # exchange time - data time ("wall" clock: whole minutes)
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.queue_size = int(queue_size)
        # depth_book15: the data's own books, else the real top plus the calibrated model
        model = default_depth_model() if synthetic_depth and data.books is None else None
        self.timeline: Timeline = build_timeline(
            data, symbol=symbol, seed=self.seed, start_index=start_index, spread_usd=spread_usd,
            quotes_per_minute=quotes_per_minute, kline_every_ms=kline_every_ms,
            depth_model=model)
        self._lock = threading.Lock()          # clients, subscriptions, latest frames
        self._stats_lock = threading.Lock()
        self._clients: dict[int, _Client] = {}
        self._latest: dict[str, bytes] = {}
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._server = None
        self._server_thread: threading.Thread | None = None
        self._replay_thread: threading.Thread | None = None
        self._data_ts = self.timeline.start_ts
        self._stall_until = 0.0
        self._next_id = 0
        self._closed_sent = 0
        self._closed_pongs = 0
        self._closed_dropped = 0
        self._closed_max_rate = 0
        self._rng = random.Random(self.seed)
        self._pending_disorder: list = []
        self._disorder_left = 0
        self._dup_left = 0
        self.connections = 0
        self.rate_limit_disconnects = 0
        self.rest_requests = 0
        self.faults_fired: list[Fault] = []
        self._late_klines = False
        self.late_klines_sent = 0
        self.failed: str | None = None  # why the replay thread died, if it did

    # ---- lifecycle

    def start(self) -> "LocalExchange":
        """Bind, start the server and replay threads, and return without blocking."""
        if self._server is not None:
            raise RuntimeError("exchange already started")
        self._server = serve(self._handle, self.host, self._port_requested,
                             process_request=self._process_request, compression=None,
                             ping_interval=None, ping_timeout=None, close_timeout=1,
                             open_timeout=5, max_size=1 << 16, max_queue=64)
        self._server_thread = threading.Thread(target=self._server.serve_forever,
                                               name="exchange-server", daemon=True)
        self._server_thread.start()
        self._replay_thread = threading.Thread(target=self._replay, name="exchange-replay",
                                               daemon=True)
        self._replay_thread.start()
        tl = self.timeline
        log.info("exchange_started", extra={
            "ws_url": self.ws_url, "rest_url": self.rest_url, "speed": self.speed,
            "data_kind": self.data.kind, "source": self.data.source,
            "start_index": tl.start_index, "start_ts": tl.start_ts, "end_ts": tl.end_ts,
            "chaos": str(self.chaos), "seed": self.seed})
        return self

    def stop(self) -> None:
        """Stop the replay, close every connection and the listening socket."""
        self._stop.set()
        if self._replay_thread is not None:
            self._replay_thread.join(timeout=5)
        server = self._server
        if server is not None:
            with self._lock:
                clients = list(self._clients.values())
            for c in clients:
                c.shut()
            server.shutdown()
            if self._server_thread is not None:
                self._server_thread.join(timeout=5)
            log.info("exchange_stopped", extra={"messages_sent": self.messages_sent,
                                                "connections": self.connections})

    def __enter__(self) -> "LocalExchange":
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- properties

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port_requested
        return self._server.socket.getsockname()[1]

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ended(self) -> bool:
        """True once the timeline has been replayed to its end."""
        return self._ended.is_set()

    def data_ts(self) -> int:
        """Return the replay position: the data time (epoch ms) of the last frame published."""
        return self._data_ts

    @property
    def active_connections(self) -> int:
        with self._lock:
            return len(self._clients)

    @property
    def messages_sent(self) -> int:
        with self._lock:
            return self._closed_sent + sum(c.sent for c in self._clients.values())

    @property
    def pings_answered(self) -> int:
        with self._lock:
            return self._closed_pongs + sum(c.pongs for c in self._clients.values())

    @property
    def frames_dropped(self) -> int:
        """Frames thrown away because a client's queue was full."""
        with self._lock:
            return self._closed_dropped + sum(c.dropped for c in self._clients.values())

    def stalled(self) -> bool:
        return time.monotonic() < self._stall_until

    # ---- websocket side (handler threads)

    def _handle(self, ws) -> None:
        with self._lock:
            self._next_id += 1
            client = _Client(self, ws, self._next_id, self.queue_size)
            self._clients[client.id] = client
        with self._stats_lock:
            self.connections += 1
        client.sender.start()
        peer = _peer(ws)
        log.info("client_connected", extra={"client": client.id, "peer": peer})
        if self.greeting:
            client.control(("raw", b'{"op":"connect","data":{"result":true}}'))
        reason = "closed by client"
        self._count_frames(client, ws, peer)
        try:
            for message in ws:
                if client.rate_limited:
                    reason = "rate limit"
                    client.shut()
                    ws.close(1008, "too many messages")
                    break
                self._on_message(client, message)
        except ConnectionClosed as e:
            reason = f"connection closed ({e.rcvd.code if e.rcvd else 'no close frame'})"
        finally:
            client.shut()
            with self._lock:
                self._clients.pop(client.id, None)
                self._closed_sent += client.sent
                self._closed_pongs += client.pongs
                self._closed_dropped += client.dropped
                self._closed_max_rate = max(self._closed_max_rate, client.max_frames_per_s)
            log.info("client_disconnected", extra={
                "client": client.id, "peer": peer, "reason": reason, "sent": client.sent,
                "dropped": client.dropped})

    def _count_frames(self, client: _Client, ws, peer: str) -> None:
        """Count every frame the client sends, PING and PONG included, against Bitunix's 5 per
        second: the connection's reader thread sees each frame before it is handled."""
        proto = ws.protocol
        handle = proto.recv_frame

        def counted(frame, handle=handle):
            now = time.monotonic()
            times = client.recv_times
            times.append(now)
            while times and now - times[0] >= 1.0:
                times.popleft()
            client.max_frames_per_s = max(client.max_frames_per_s, len(times))
            if frame.opcode in (Opcode.PING, Opcode.PONG):
                client.control_frames += 1
            if len(times) > MAX_CLIENT_MSGS_PER_S and not client.rate_limited:
                client.rate_limited = True
                with self._stats_lock:
                    self.rate_limit_disconnects += 1
                log.warning("client_rate_limited", extra={
                    "client": client.id, "peer": peer, "frames_in_1s": len(times),
                    "opcode": frame.opcode.name})
                client.control(("close", 1008, "too many messages"))
            return handle(frame)

        proto.recv_frame = counted

    def max_client_frames_per_s(self) -> int:
        """The most frames any client sent within one second, over every connection so far."""
        with self._lock:
            live = [c.max_frames_per_s for c in self._clients.values()]
        return max(live + [self._closed_max_rate])

    def _on_message(self, client: _Client, message) -> None:
        try:
            msg = orjson.loads(message)
        except orjson.JSONDecodeError:
            log.info("client_bad_message", extra={"client": client.id,
                                                  "message": str(message)[:120]})
            return
        if not isinstance(msg, dict):
            return
        op = msg.get("op")
        if op == "ping":
            if self.stalled():
                return
            pong = {"op": "ping", "pong": msg.get("ping"), "ping": int(time.time())}
            client.control(("pong", orjson.dumps(pong)))
        elif op in ("subscribe", "unsubscribe"):
            channels = self._channels_of(msg.get("args"))
            with self._lock:
                if op == "unsubscribe":
                    client.channels -= channels
                else:
                    client.channels |= channels
                    for ch in list(client.muted):
                        if ch in channels and not client.muted[ch]:
                            del client.muted[ch]  # a resubscribe ends a mute (not "forever")
                    # every channel asked for gets its snapshot, a repeated subscribe too;
                    # after the end of the data only ping replies are sent
                    if not self.stalled() and not self.ended:
                        for ch in SNAPSHOT_CHANNELS:
                            snap = self._latest.get(ch) if ch in channels else None
                            if snap is not None and ch not in client.muted:
                                client.enqueue(snap)
            log.info(f"client_{op}d", extra={"client": client.id,
                                             "channels": sorted(channels)})
        # unknown ops are ignored, like the real server's undocumented ones

    def _channels_of(self, args) -> set[str]:
        out: set[str] = set()
        if not isinstance(args, list):
            return out
        for arg in args:
            if isinstance(arg, dict) and arg.get("symbol") == self.symbol \
                    and arg.get("ch") in CHANNELS:
                out.add(arg["ch"])
        return out

    # ---- REST (runs in the connection's handler thread, before any websocket handshake)

    def _process_request(self, connection, request):
        url = urlsplit(request.path)
        if url.path in (WS_PATH, WS_PATH.rstrip("/")):
            return None
        if url.path == KLINE_PATH:
            with self._stats_lock:
                self.rest_requests += 1
            body = self._kline_response(parse_qs(url.query, keep_blank_values=True))
            payload = orjson.dumps(body)
            return Response(200, "OK", Headers([
                ("Date", email.utils.formatdate(usegmt=True)),
                ("Connection", "close"),
                ("Content-Length", str(len(payload))),
                ("Content-Type", "application/json"),
            ]), payload)
        return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")

    def _kline_response(self, query: dict) -> dict:
        def one(name: str, default=None):
            values = query.get(name)
            return values[-1] if values else default

        def error(msg: str) -> dict:
            log.info("rest_kline_rejected", extra={"error": msg})
            return {"code": PARAM_ERROR_CODE, "msg": msg}

        symbol = one("symbol")
        if symbol != self.symbol:
            return error(f"unknown symbol {symbol!r}" if symbol else "symbol is required")
        interval = one("interval", "1m")
        if interval not in REST_INTERVALS:
            return error(f"interval {interval!r} is not served here (known: "
                         f"{', '.join(REST_INTERVALS)}; 1M is not)")
        kind = one("type", "LAST_PRICE")
        if kind != "LAST_PRICE":
            return error(f"type {kind!r} is not served here (only LAST_PRICE)")
        try:
            limit = int(one("limit", "100"))
        except ValueError:
            return error("limit must be an integer")
        if not 1 <= limit <= MAX_HISTORY:
            return error(f"limit must be 1..{MAX_HISTORY}, got {limit}")
        now = self._data_ts
        bounds = {}
        for name in ("startTime", "endTime"):
            raw = one(name)
            if raw in (None, ""):
                continue
            try:
                bounds[name] = int(raw)
            except ValueError:
                return error(f"{name} must be epoch milliseconds")
            if bounds[name] <= 0:
                return error(f"{name} must be > 0")
        off = self.clock_offset_ms  # queries and answers speak exchange time
        end = min(bounds.get("endTime", now + off) - off, now)
        start = bounds.get("startTime")
        start = None if start is None else start - off
        if start is not None and start >= end:
            return error("startTime must be before endTime")
        rows = self.timeline.history(end, limit, start_ts=start,
                                     interval_min=REST_INTERVALS[interval],
                                     layout=self.rest_layout)
        if off:
            rows = [{**r, "time": r["time"] + off} for r in rows]
        return {"code": 0, "msg": "Success", "data": rows}

    # ---- replay thread

    def _replay(self) -> None:
        try:
            self._run_replay()
        except Exception as e:  # noqa: BLE001 - reported through `failed`
            self.failed = f"{type(e).__name__}: {e}"
            log.exception("replay_failed")
        finally:
            if not self._stop.is_set():
                self._ended.set()
                log.info("replay_ended", extra={"data_ts": self._data_ts,
                                                "messages_sent": self.messages_sent})

    def _run_replay(self) -> None:
        tl = self.timeline
        start_ts = tl.start_ts
        speed = self.speed
        realtime = math.isfinite(speed)
        faults = list(self.chaos.faults)
        fi = 0
        stop = self._stop
        dumps = orjson.dumps
        base_wall = time.monotonic()
        base_data = start_ts
        prev_ts = start_ts
        wall_clock = self.clock == "wall"
        skew = self.clock_skew_ms
        if wall_clock:
            # shift the data by whole minutes (candle minutes stay candle minutes) so that its
            # next frame is due now on the exchange's clock; the part of the first minute that
            # is already past is skipped
            now_ex = int(time.time() * 1000) + skew
            self.clock_offset_ms = (now_ex - start_ts) // 60_000 * 60_000
            with self._lock:
                self._latest.clear()
        off = self.clock_offset_ms
        held = None  # latekline: the newest kline push, sent once the next one shows its minute
        for ts, frame in tl:
            if stop.is_set():
                return
            if wall_clock:
                delay = (ts + off - skew) / 1000.0 - time.time()
                if delay < 0 and ts - start_ts < 60_000:
                    continue  # before "now" in the first minute: skipped, not sent late
                if delay > 0.002 and stop.wait(delay):
                    return
                frame = _restamp(frame, off)
            elif realtime:
                if ts - prev_ts > MAX_GAP_MS:
                    base_wall, base_data = time.monotonic(), ts
                delay = base_wall + (ts - base_data) / 1000.0 / speed - time.monotonic()
                if delay > 0.002 and stop.wait(delay):
                    return
            prev_ts = ts
            while fi < len(faults) and ts - start_ts >= faults[fi].at_ms:
                self._fire(faults[fi], ts + off, frame)
                fi += 1
            if self._late_klines and frame["ch"] == "market_kline_1min":
                if held is not None:
                    h_ts, h_frame = held
                    if frame["ts"] // 60_000 > h_frame["ts"] // 60_000:
                        late_ts = frame["ts"] // 60_000 * 60_000 + 100
                        h_frame = {**h_frame, "ts": max(late_ts, h_frame["ts"])}
                        self.late_klines_sent += 1
                    self._publish(h_ts, h_frame["ch"], dumps(h_frame))
                held = (ts, frame)
                continue
            self._publish(ts, frame["ch"], dumps(frame))
        if held is not None:
            self._publish(held[0], held[1]["ch"], dumps(held[1]))

    def _publish(self, ts: int, ch: str, payload: bytes) -> None:
        with self._lock:
            self._data_ts = ts
            if ch != "trade":
                self._latest[ch] = payload
            if self._disorder_left > 0:
                self._pending_disorder.append((ch, payload))
                self._disorder_left -= 1
                if self._disorder_left == 0:
                    batch = self._pending_disorder
                    self._pending_disorder = []
                    self._rng.shuffle(batch)
                    for c, p in batch:
                        self._fan_out(c, p)
                return
            self._fan_out(ch, payload)
            if self._dup_left > 0:
                self._dup_left -= 1
                self._fan_out(ch, payload)

    def _fan_out(self, ch: str, payload: bytes) -> None:
        if self._clients and not self.stalled():
            for c in self._clients.values():
                if ch in c.channels and ch not in c.muted:
                    c.enqueue(payload)

    def _all_clients(self) -> list[_Client]:
        with self._lock:
            return list(self._clients.values())

    def _fire(self, fault: Fault, ts: int, frame: dict) -> None:
        kind = fault.kind
        clients = self._all_clients()
        if kind == "drop":
            for c in clients:
                c.control(("drop",))
        elif kind == "close":
            for c in clients:
                c.control(("close", int(fault.arg)))
        elif kind == "stall":
            self._stall_until = time.monotonic() + float(fault.arg)
            for c in clients:
                c.clear()
        elif kind == "disorder":
            with self._lock:
                self._disorder_left = int(fault.arg)
        elif kind == "dup":
            with self._lock:
                self._dup_left = int(fault.arg)
        elif kind == "latekline":
            self._late_klines = True
        elif kind == "mute":
            ch, _, mode = str(fault.arg).partition(":")
            with self._lock:
                for c in self._clients.values():
                    c.muted[ch] = mode == "forever"
        elif kind == "ping":
            for c in clients:
                c.control(("ping", int(fault.arg)))
        elif kind == "flood":
            payload = orjson.dumps(self._depth_frame(ts))
            for c in clients:
                c.control(("flood", int(fault.arg), payload))
        else:
            payload = self._bad_frame(kind, ts)
            with self._lock:
                for c in self._clients.values():
                    c.enqueue(payload)
        self.faults_fired.append(fault)
        log.warning("chaos_fault_fired", extra={
            "fault": kind, "arg": fault.arg, "at_s": fault.at_s, "data_ts": ts,
            "clients": len(clients)})

    def _current_quote(self) -> tuple[str, str, str, str]:
        with self._lock:
            raw = self._latest.get("depth_book1")
        if raw is not None:
            d = orjson.loads(raw)["data"]
            return d["b"][0][0], d["b"][0][1], d["a"][0][0], d["a"][0][1]
        close = self.timeline.closed_kline(self.timeline.start_index)[4]
        return f"{close - 0.5:.1f}", "1", f"{close + 0.5:.1f}", "1"

    def _depth_frame(self, ts: int, bid=None, ask=None, bid_size=None, ask_size=None) -> dict:
        b, bs, a, asz = self._current_quote()
        return {"ch": "depth_book1", "symbol": self.symbol, "ts": ts,
                "data": {"b": [[b if bid is None else bid, bs if bid_size is None else bid_size]],
                         "a": [[a if ask is None else ask, asz if ask_size is None else ask_size]]}}

    def _bad_frame(self, kind: str, ts: int) -> bytes | str:
        if kind == "garbage":
            return '}{"ch":"depth_book1",<<< not json >>> \u2603'
        if kind == "wrongtypes":
            frame = self._depth_frame(ts)
            frame["data"] = {"b": [[{"price": frame["data"]["b"][0][0]}, True]],
                             "a": [[True, {"size": frame["data"]["a"][0][1]}]]}
            return orjson.dumps(frame)
        if kind == "crossed":
            b, _, a, _ = self._current_quote()
            return orjson.dumps(self._depth_frame(ts, bid=f"{float(a) + 10:.1f}", ask=b))
        if kind == "nan":
            return orjson.dumps(self._depth_frame(ts, bid="NaN", ask="NaN"))
        if kind == "negative":
            b, _, a, _ = self._current_quote()
            return orjson.dumps(self._depth_frame(ts, bid=f"-{b}", ask=f"-{a}"))
        if kind == "bigframe":
            head = orjson.dumps(self._depth_frame(ts))[:-1] + b',"pad":"'
            pad = BIGFRAME_BYTES - len(head) - 2
            return head + b"x" * max(pad, 0) + b'"}'
        raise ValueError(f"no frame for fault {kind!r}")


def _restamp(frame: dict, offset_ms: int) -> dict:
    """A frame moved by `offset_ms`: its push time, and a trade row's own time."""
    out = {**frame, "ts": frame["ts"] + offset_ms}
    if frame.get("ch") == "trade" and isinstance(frame.get("data"), list):
        rows = []
        for row in frame["data"]:
            t = row.get("t") if isinstance(row, dict) else None
            if isinstance(t, str):
                dt = datetime.fromisoformat(t.replace("Z", "+00:00")) + \
                    timedelta(milliseconds=offset_ms)
                row = {**row, "t": dt.strftime("%Y-%m-%dT%H:%M:%SZ")}
            rows.append(row)
        out["data"] = rows
    return out


def _peer(ws) -> str:
    try:
        host, port = ws.remote_address[:2]
        return f"{host}:{port}"
    except Exception:
        return "?"


# ---------------------------------------------------------------- command line

def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trading.runtime.exchange",
        description="Run the local Bitunix-compatible exchange (websocket + REST klines) "
                    "replaying recorded BTC data, in the foreground. Ctrl-C stops it.")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port_arg, default=8765, help="TCP port, 0 = any free port "
                   "(default 8765)")
    p.add_argument("--speed", type=_speed_arg, default=1.0, metavar="X|max",
                   help="data seconds per wall second, or max (default 1)")
    p.add_argument("--file", type=Path, metavar="PATH",
                   help="CSV / CSV.gz market data (default: the bundled dYdX day)")
    p.add_argument("--seed", type=int, default=0, help="replay seed (default 0)")
    p.add_argument("--chaos", default="", metavar="SPEC",
                   help="faults, e.g. drop@30s,stall@90s:15s,garbage@120s")
    p.add_argument("--spread-usd", type=_spread_arg, default=1.0, metavar="X",
                   help="bid/ask spread for data without quotes (default 1.0)")
    p.add_argument("--start-index", type=_nonneg_int_arg, default=None, metavar="N",
                   help="minute of the data to start at (default: seeded, after 200 minutes)")
    p.add_argument("--rest-volume-layout", choices=REST_LAYOUTS, default="documented",
                   help="REST klines: 'documented' = baseVol is the USDT amount and quoteVol "
                   "the coin amount, as Bitunix documents it; 'by-name' = the reverse "
                   "(default documented)")
    p.add_argument("--clock", choices=("data", "wall"), default="data",
                   help="'data': pushes carry the recorded data's times; 'wall': the exchange's "
                   "own clock, as Bitunix's do (real time: --speed 1) (default data)")
    p.add_argument("--clock-skew-ms", type=int, default=0, metavar="MS",
                   help="with --clock wall: the exchange's clock runs MS ahead of this "
                   "machine's (default 0)")
    p.add_argument("--log-level", default="INFO",
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def _port_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {value}")
    return value


def _speed_arg(text: str) -> float:
    try:
        return _parse_speed(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _spread_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _nonneg_int_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        chaos = ChaosPlan.parse(args.chaos)
    except ValueError as e:
        parser.error(f"argument --chaos: {e}")
    path = args.file or default_replay_file()
    try:
        data = load_market_file(path)
    except ValueError as e:
        parser.error(f"argument --file: {e}")
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        exchange = LocalExchange(data, host=args.host, port=args.port, speed=args.speed,
                                 seed=args.seed, chaos=chaos, start_index=args.start_index,
                                 spread_usd=args.spread_usd,
                                 rest_layout=args.rest_volume_layout, clock=args.clock,
                                 clock_skew_ms=args.clock_skew_ms)
    except ValueError as e:
        parser.error(str(e))
    try:
        exchange.start()
    except OSError as e:
        parser.error(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}")
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    tl = exchange.timeline
    print(f"local exchange: {data.kind} from {data.source}, speed "
          f"{'max' if math.isinf(exchange.speed) else f'{exchange.speed:g}'}x, "
          f"start minute {tl.start_index}", flush=True)
    print(f"websocket: {exchange.ws_url}", flush=True)
    print(f"rest:      {exchange.rest_url}{KLINE_PATH}?symbol={exchange.symbol}"
          f"&interval=1m&limit=200", flush=True)
    print("Ctrl-C to stop", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        exchange.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
