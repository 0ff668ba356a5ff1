"""Feed ingest throughput: Bitunix frames -> parsed events -> bounded queue, in messages/s.

Baseline in the same run: a bare websocket-client receive loop (UTF-8 validation off, orjson
decode) against the same loopback server, which runs in a process of its own (the exchange's
work is not the client's: in the client's process it shared the client's interpreter lock).
Prints medians over repetitions and the ratio.

    python bench/feed_ingest.py [--messages 50000] [--reps 5]
"""
from __future__ import annotations

import argparse
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trading.runtime.feed import FeedConfig, FrameQueue, MarketFeed  # noqa: E402


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


SERVER = r"""
import sys, threading
sys.path.insert(0, {bench!r})
from feed_ingest import make_frames
from websockets.sync.server import serve
texts = [f.decode() for f in make_frames({n})]
def handler(conn):
    try:
        conn.recv()  # the subscribe
        for t in texts:
            conn.send(t)
        conn.recv()  # hold the socket open until the client goes
    except Exception:
        pass
server = serve(handler, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None)
print(server.socket.getsockname()[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()  # until the parent closes it
server.shutdown()
"""


class BlastServer:
    """Loopback websocket server, in a process of its own (as the exchange is: its work is
    not the client's), that sends all frames as fast as it can after a subscribe."""

    def __init__(self, n: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER.format(bench=str(Path(__file__).parent), n=n)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


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
    q = FrameQueue(maxsize=1000)  # the session's queue
    feed = MarketFeed(FeedConfig(url=f"ws://127.0.0.1:{port}/public/",
                                 subscriptions={("BTCUSDT", "depth_book1")}), q)
    got = first = 0
    feed.start()
    t0 = None
    while got < n:  # as the session loop takes them
        items = q.get_many(timeout=30)
        if t0 is None:  # timed from the first frames' arrival: those are not counted
            t0, first = time.perf_counter(), len(items)
        got += len(items)
    dt = time.perf_counter() - t0
    dropped = feed.stats.dropped
    feed.stop()
    if dropped:
        print(f"  (feed dropped {dropped} messages)")
    return (got - first) / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    raw, handoff, feed = [], [], []
    s = BlastServer(a.messages)
    try:
        for _ in range(a.reps):
            raw.append(run_raw(s.port, a.messages))
            handoff.append(run_raw_handoff(s.port, a.messages))
            feed.append(run_feed(s.port, a.messages))
    finally:
        s.close()
    mr, mh, mf = statistics.median(raw), statistics.median(handoff), statistics.median(feed)
    print(f"messages per run: {a.messages}, repetitions: {a.reps}")
    print(f"baseline: raw websocket-client recv + orjson:          median {mr:,.0f} msg/s")
    print(f"baseline + hand-off to a consumer thread via a queue: median {mh:,.0f} msg/s")
    print(f"feed: recv + parse + validate + bounded queue:        median {mf:,.0f} msg/s")
    print(f"ratio feed/raw: {mf / mr:.2f}; feed/raw+hand-off: {mf / mh:.2f}")


if __name__ == "__main__":
    main()
