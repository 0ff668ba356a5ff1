"""Feed ingest throughput: Bitunix frames -> parsed events -> bounded queue, in messages/s.

Baseline in the same run: a bare websocket-client receive loop (UTF-8 validation off, orjson
decode) against the same loopback server. Prints medians over repetitions and the ratio.

    python bench/feed_ingest.py [--messages 50000] [--reps 5]
"""
from __future__ import annotations

import argparse
import queue
import statistics
import sys
import threading
import time
from pathlib import Path

import orjson
import websocket
from websockets.sync.server import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trading.runtime.feed import FeedConfig, MarketFeed  # noqa: E402


def make_frames(n: int) -> list[bytes]:
    frames = []
    ts = 1767225600000
    for i in range(n):
        ts += 50
        if i % 2:
            frames.append(orjson.dumps({"ch": "depth_book1", "symbol": "BTCUSDT", "ts": ts, "data": {
                "b": [[f"{87480 + i % 7}.5", "0.120"]], "a": [[f"{87481 + i % 7}.5", "0.330"]]}}))
        else:
            frames.append(orjson.dumps({"ch": "market_kline_1min", "symbol": "BTCUSDT", "ts": ts,
                                        "data": {"o": "87480.5", "h": "87500.0", "l": "87470.1",
                                                 "c": f"{87480 + i % 9}.5", "b": "12.5",
                                                 "q": "1093512.3"}}))
    return frames


class BlastServer:
    """Loopback websocket server that sends all frames as fast as it can after a subscribe."""

    def __init__(self, frames: list[bytes]) -> None:
        texts = [f.decode() for f in frames]

        def handler(conn):
            try:
                conn.recv()  # the subscribe
                for t in texts:
                    conn.send(t)
                conn.recv()  # hold the socket open until the client goes
            except Exception:  # noqa: BLE001
                pass

        self.server = serve(handler, "127.0.0.1", 0, compression=None, max_size=None,
                            ping_interval=None)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()


def run_raw(port: int, n: int) -> float:
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/public/", skip_utf8_validation=True)
    ws.send('{"op":"subscribe","args":[]}')
    t0 = time.perf_counter()
    for _ in range(n):
        orjson.loads(ws.recv())
    dt = time.perf_counter() - t0
    ws.close()
    return n / dt


def run_raw_handoff(port: int, n: int) -> float:
    """Baseline 2: the same bare loop, handing each decoded frame to a consumer thread."""
    q: queue.Queue = queue.Queue(maxsize=1000)
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/public/", skip_utf8_validation=True)
    ws.send('{"op":"subscribe","args":[]}')

    def consume() -> None:
        for _ in range(n):
            q.get()

    t = threading.Thread(target=consume)
    t.start()
    t0 = time.perf_counter()
    for _ in range(n):
        q.put(orjson.loads(ws.recv()))
    t.join()
    dt = time.perf_counter() - t0
    ws.close()
    return n / dt


def run_feed(port: int, n: int) -> float:
    q: queue.Queue = queue.Queue(maxsize=1000)
    feed = MarketFeed(FeedConfig(url=f"ws://127.0.0.1:{port}/public/",
                                 subscriptions={("BTCUSDT", "depth_book1")}), q)
    got = 0
    feed.start()
    t0 = None
    while got < n:
        q.get(timeout=30)
        if t0 is None:
            t0 = time.perf_counter()
        got += 1
    dt = time.perf_counter() - t0
    dropped = feed.stats.dropped
    feed.stop()
    if dropped:
        print(f"  (feed dropped {dropped} messages)")
    return (n - 1) / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    frames = make_frames(a.messages)
    raw, handoff, feed = [], [], []
    for _ in range(a.reps):
        s = BlastServer(frames)
        raw.append(run_raw(s.port, a.messages))
        s.close()
        s = BlastServer(frames)
        handoff.append(run_raw_handoff(s.port, a.messages))
        s.close()
        s = BlastServer(frames)
        feed.append(run_feed(s.port, a.messages))
        s.close()
    mr, mh, mf = statistics.median(raw), statistics.median(handoff), statistics.median(feed)
    print(f"messages per run: {a.messages}, repetitions: {a.reps}")
    print(f"baseline: raw websocket-client recv + orjson:          median {mr:,.0f} msg/s")
    print(f"baseline + hand-off to a consumer thread via a queue: median {mh:,.0f} msg/s")
    print(f"feed: recv + parse + validate + bounded queue:        median {mf:,.0f} msg/s")
    print(f"ratio feed/raw: {mf / mr:.2f}; feed/raw+hand-off: {mf / mh:.2f}")


if __name__ == "__main__":
    main()
