"""The feed thread under bursts: frames read ahead of the socket and handed over together, in
order, through the session's bounded queue -- against a real websocket server on loopback."""
from __future__ import annotations

import queue
import threading
import time

import orjson
import pytest
from websockets.sync.server import serve

from trading.runtime.feed import FeedConfig, FrameQueue, MarketFeed, ReadAheadWebSocket

TS = 1767225600000


def depth(i: int) -> str:
    return orjson.dumps({"ch": "depth_book1", "symbol": "BTCUSDT", "ts": TS + i, "data": {
        "b": [[f"{87000 + i % 50}.5", "0.120"]], "a": [[f"{87001 + i % 50}.5", "0.330"]]}}
    ).decode()


class Burst:
    """Sends `before` frames, a protocol ping, a fragmented 200 KB frame, then `after` frames,
    as fast as it can, after the subscribe; then holds the socket open."""

    def __init__(self, before: int, after: int) -> None:
        self.sent = threading.Event()
        big = orjson.loads(depth(before))
        big["pad"] = "x" * 200_000  # a key the parser does not read
        self.big = orjson.dumps(big).decode()

        def handler(conn):
            try:
                conn.recv()
                for i in range(before):
                    conn.send(depth(i))
                conn.ping(b"are-you-there")
                conn.send([self.big[k:k + 70_000] for k in range(0, len(self.big), 70_000)])
                for i in range(before + 1, before + 1 + after):
                    conn.send(depth(i))
                self.sent.set()
                while True:
                    conn.recv()
            except Exception:  # noqa: BLE001 - the client went
                pass

        self.server = serve(handler, "127.0.0.1", 0, compression=None, max_size=None,
                            ping_interval=None)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/public/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def burst():
    made = []

    def make(before=1500, after=1500):
        made.append(Burst(before, after))
        return made[-1]
    yield make
    for b in made:
        b.close()


def feed_for(url: str, q) -> MarketFeed:
    return MarketFeed(FeedConfig(url=url, subscriptions={("BTCUSDT", "depth_book1")},
                                 channel_stale_s=0), q)


def test_a_burst_arrives_whole_and_in_order_through_reads_ahead(burst):
    b = burst(1500, 1500)
    q = FrameQueue(maxsize=5000)
    feed = feed_for(b.url, q)
    feed.start()
    got, sizes = [], []
    try:
        deadline = time.monotonic() + 20
        while len(got) < 3001 and time.monotonic() < deadline:
            try:
                items = q.get_many(timeout=1.0)
            except queue.Empty:
                continue
            sizes.append(len(items))
            got.extend(items)
    finally:
        feed.stop()
    stamps = [it.events[0].ts for it in got]
    assert stamps == [TS + i for i in range(3001)]  # every frame, in order, none twice
    assert got[1500].raw == b.big.encode()  # the fragmented frame, whole
    assert feed.stats.pongs_sent == 1 and feed.stats.dropped == 0
    assert feed.stats.events == 3001 and feed.stats.parse_errors == 0
    assert max(sizes) > 1  # frames of a burst were taken together
    assert isinstance(feed._ws, (ReadAheadWebSocket, type(None)))


def test_a_burst_the_queue_cannot_hold_is_dropped_and_counted(burst):
    b = burst(400, 99)
    q = FrameQueue(maxsize=50)
    feed = feed_for(b.url, q)
    feed.start()
    try:
        assert b.sent.wait(20)
        deadline = time.monotonic() + 10
        while feed.stats.messages < 500 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        items = q.get_many(timeout=1.0)
    finally:
        feed.stop()
    assert feed.stats.messages == 500
    assert len(items) == 50 and feed.stats.dropped == 450
    assert feed.stats.events == 50  # the dropped frames' events are not counted as queued
    assert [it.events[0].ts for it in items] == [TS + i for i in range(50)]  # the first ones


def test_frame_queue_takes_what_fits_and_hands_out_all_that_waits():
    q = FrameQueue(maxsize=5)
    q.put_nowait("a")
    assert q.put_many_nowait(["b", "c", "d", "e", "f", "g"]) == 4
    assert q.full() and q.put_many_nowait(["h"]) == 0
    assert q.get_many(timeout=0.1, limit=2) == ["a", "b"]
    assert q.get_many(timeout=0.1) == ["c", "d", "e"]
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get_many(timeout=0.2)
    assert time.monotonic() - t0 >= 0.19
    # a consumer waiting is woken by a put from another thread
    threading.Timer(0.1, lambda: q.put_many_nowait([1, 2])).start()
    assert q.get_many(timeout=5) in ([1, 2], [1])


@pytest.mark.parametrize("then", ["ping", "slow_fragment", "slow_frame"])
def test_a_frame_read_is_not_held_behind_a_read_that_waits(then):
    """A frame followed by a protocol ping (answered within the send budget), by a message
    whose second fragment comes late, or by a frame whose tail comes late: the frame
    already read reaches the queue before the server sends what comes next."""
    later = threading.Event()

    def handler(conn):
        try:
            conn.recv()
            conn.send(depth(0))
            if then == "ping":
                conn.ping(b"p")
                time.sleep(0.8)
                later.set()
                conn.send(depth(1))
            elif then == "slow_fragment":
                text = depth(1)

                def parts():
                    yield text[:20]
                    time.sleep(0.8)
                    later.set()
                    yield text[20:]
                conn.send(parts())
            else:  # the raw socket: a frame's header and half its payload, the rest late
                payload = depth(1).encode()
                head = bytes([0x81, 126]) + len(payload).to_bytes(2, "big")
                sock = conn.socket
                sock.sendall(head + payload[:10])
                time.sleep(0.8)
                later.set()
                sock.sendall(payload[10:])
            while True:
                conn.recv()
        except Exception:  # noqa: BLE001
            pass

    server = serve(handler, "127.0.0.1", 0, compression=None, max_size=None,
                   ping_interval=None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    q = FrameQueue(maxsize=100)
    feed = feed_for(f"ws://127.0.0.1:{server.socket.getsockname()[1]}/public/", q)
    feed.start()
    try:
        first = q.get_many(timeout=10)
        arrived_before_the_rest = not later.is_set()
        rest = [] if len(first) > 1 else q.get_many(timeout=10)
    finally:
        feed.stop()
        server.shutdown()
    assert arrived_before_the_rest
    assert [it.events[0].ts for it in first + rest] == [TS, TS + 1]
