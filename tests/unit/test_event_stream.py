"""The event stream: one order, commit order of the subscribers, a pure engine, the recorder."""
from __future__ import annotations

import ast
import gzip
import json
import os
import threading
from pathlib import Path

from hypothesis import given, settings, strategies as st

from trading.broker import BrokerConfig, PaperBroker
from trading.engine import TradingEngine
from trading.events import ClockTicked, FrameApplied, FrameReceived, SegmentStarted
from trading.model import OrderFilled, OrderSubmitted, Quote, Side
from trading.risk import CircuitBreaker
from trading.runtime.bus import EventBus
from trading.runtime.execution import DataClock
from trading.runtime.recording import Recorder, RecordingError, iter_records, read_head
from trading.strategies.ema_momentum import EmaMomentum

ROOT = Path(__file__).resolve().parents[2]


def test_subscribers_run_in_subscription_order_with_type_filters():
    bus, seen = EventBus(), []
    bus.subscribe(lambda e: seen.append(("journal", type(e).__name__)), ClockTicked)
    bus.subscribe(lambda e: seen.append(("all", type(e).__name__)))
    bus.subscribe(lambda e: seen.append(("state", type(e).__name__)), ClockTicked)
    bus.publish(ClockTicked(5))
    bus.publish(SegmentStarted(1, False, {}))
    assert seen == [("journal", "ClockTicked"), ("all", "ClockTicked"),
                    ("state", "ClockTicked"), ("all", "SegmentStarted")]
    assert bus.seq == 2


def test_two_publishing_threads_get_one_total_order():
    bus, seen = EventBus(), []

    def slow(e):  # a subscriber that yields mid-event: the lock must keep events whole
        seen.append(("in", e.now_ms))
        threading.Event().wait(0.0005)
        seen.append(("out", e.now_ms))
    bus.subscribe(slow)
    ts = [threading.Thread(target=lambda base=b: [bus.publish(ClockTicked(base + i))
                                                  for i in range(50)]) for b in (0, 1000)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(seen) == 200
    for i in range(0, 200, 2):
        assert seen[i][0] == "in" and seen[i + 1] == ("out", seen[i][1])


def test_a_persistence_error_reaches_the_publisher():
    bus = EventBus()

    def full(_e):
        raise OSError(28, "No space left on device")
    bus.subscribe(full)
    try:
        bus.publish(ClockTicked(1))
    except OSError as e:
        assert e.errno == 28
    else:
        raise AssertionError("a disk error must not be swallowed")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_the_engine_and_the_events_are_pure():
    banned = {"threading", "time", "socket", "websocket", "PySide6", "queue", "urllib",
              "sqlite3", "storage", "gui", "datetime"}
    for name in ("engine.py", "events.py", "compare.py", "broker.py", "candles.py",
                 "strategy.py", "risk.py", "model.py"):
        found = _imports(ROOT / "trading" / name) & banned
        assert not found, f"trading/{name} imports {found}"


def _engine(events: list):
    broker = PaperBroker(BrokerConfig(latency_ms=1000), order_prefix="t")
    return TradingEngine(broker=broker, breaker=CircuitBreaker(), strategy=EmaMomentum(),
                         clock=DataClock(1.0), emit=events.append, symbol="BTCUSDT",
                         duration_ms=600_000)


def test_the_engine_says_what_it_did_in_order_frame_before_its_consequences():
    events: list = []
    eng = _engine(events)
    q = Quote(ts=1_000, bid=100.0, ask=101.0)
    eng.apply_frame(FrameReceived(b"{}", 0.0, 0, (q,), "depth_book1"), 0)
    assert type(events[0]) is FrameApplied
    assert eng.start_data_ts == 1_000 and eng.quotes_in == 1
    eng.broker.submit(Side.BUY, "entry", now_ts=1_000, signal_ts=1_000, signal_px=100.5,
                      stop_distance=5.0)
    events.clear()
    assert eng.tick(1_500) is False and events == []  # nothing due yet: no tick recorded
    assert eng.tick(2_000) is True
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "ClockTicked" and "OrderFilled" in kinds
    fill = next(e.fill for e in events if isinstance(e, OrderFilled))
    assert fill.fill_px == 101.0 and fill.fill_ts == 2_000


def test_a_bad_frame_counts_against_the_breaker_in_stream_order():
    events: list = []
    eng = _engine(events)
    for i in range(25):
        eng.apply_frame(FrameReceived(b"x", 0.0, 0, error="not JSON"), 1_000 + i)
    assert eng.breaker.state == "open"
    assert any(type(e).__name__ == "BreakerTripped" for e in events)


def _write(path: Path, lines: list) -> None:
    with gzip.open(path, "wt") as f:
        for line in lines:
            f.write(line if isinstance(line, str) else json.dumps(line))
            f.write("\n")


def test_the_recorder_writes_a_header_and_appends_members_per_segment(tmp_path):
    path = tmp_path / "recording.jsonl.gz"
    head = {"rec": 1, "run_id": "r1", "config": {}, "settings": {}, "clock": "data"}
    r = Recorder(path, head)
    r(SegmentStarted(1, False, {"broker": {}}))
    r(FrameApplied(FrameReceived(b'{"ch":"x"}', 1.0, 5, ()), 7))
    r(FrameApplied(FrameReceived(b"\xff\xfe", 1.5, 6, ()), 8))  # not UTF-8: base64
    r.close()
    r = Recorder(path, head)  # a restarted segment appends; no second header
    r(ClockTicked(9))
    r.close()
    recs = list(iter_records(path))
    assert recs[0]["run_id"] == "r1" and sum(1 for x in recs if x.get("rec")) == 1
    assert recs[2]["f"] == '{"ch":"x"}' and recs[2]["n"] == 7 and "b" in recs[3]
    assert recs[-1] == {"k": 9}
    header, seg = read_head(path)
    assert header["clock"] == "data" and seg["seg"] == 1


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.one_of(st.none(), st.floats(0.0, 1.0))),
                min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_members_cut_by_kills_lose_only_their_unflushed_tail(tmp_path_factory, members, seed):
    """Each segment appends a gzip member of lines, each line sync-flushed (as the recorder
    flushes before every account change), then more compressed bytes not yet flushed; a kill
    ends the file anywhere in that. Whatever the cuts, every flushed line of every member reads
    back, in order -- no member is lost because the one before it was cut."""
    import random
    import zlib as _z
    rng = random.Random(seed)
    path = tmp_path_factory.mktemp("cut") / "r.jsonl.gz"
    blob = b""
    expect: list[tuple[list[dict], int]] = []  # per member: its lines, how many must be read
    for m, (n, cut) in enumerate(members):
        c = _z.compressobj(6, _z.DEFLATED, 16 + _z.MAX_WBITS)
        part, lines, ends = b"", [], []
        for k in range(n):
            line = json.dumps({"m": m, "k": k, "pad": "x" * rng.randint(0, 300)}) + "\n"
            part += c.compress(line.encode()) + c.flush(_z.Z_SYNC_FLUSH)
            lines.append({"m": m, "k": k})
            ends.append(len(part))
        if cut is None:  # a segment that ended cleanly
            part += c.flush()
            must = n
        else:  # killed: lines being written when it died, never flushed, cut anywhere
            tail = b"".join(c.compress((json.dumps({"m": m, "k": n + i, "pad": "y" * 50})
                                        + "\n").encode()) for i in range(rng.randint(0, 30)))
            whole = part + tail + c.flush(_z.Z_NO_FLUSH)
            at = int(len(whole) * cut)
            # the header goes to the file with the first flush, whole: a kill leaves all of
            # it or none of it (10 bytes)
            at = 0 if at < 10 else at
            part = whole[:at]
            must = sum(1 for e in ends if e <= at)
            lines += [{"m": m, "k": n + i} for i in range(30)]  # a tail line may read back
        blob += part
        expect.append((lines, must))
    path.write_bytes(blob)
    got = [{"m": r["m"], "k": r["k"]} for r in iter_records(path)]
    for m, (lines, must) in enumerate(expect):
        mine = [r for r in got if r["m"] == m]
        assert mine == lines[:len(mine)] and len(mine) >= must, (m, mine, must)
    assert [r["m"] for r in got] == sorted(r["m"] for r in got)  # members in order


def test_a_segment_after_a_cut_one_is_not_lost():
    """A real recording of a kill torture run (4 segments, 3 killed by SIGKILL; segment 2 was
    killed within its first second, before its frames were flushed). Reading the cut member
    of segment 2 on into segment 3's bytes once lost segment 3 whole, and the replay diverged."""
    path = Path(__file__).resolve().parents[1] / "data" / "recording_killed_segments.jsonl.gz"
    frames: dict[int, int] = {}
    seg = None
    for rec in iter_records(path):
        if "seg" in rec:
            seg = rec["seg"]
            frames[seg] = 0
        elif "f" in rec or "b" in rec:
            frames[seg] += 1
    assert frames == {1: 223, 2: 0, 3: 454, 4: 678}


def test_the_recorder_stops_at_its_size_limit_and_says_so(tmp_path):
    path = tmp_path / "recording.jsonl.gz"
    r = Recorder(path, {"rec": 1, "run_id": "r", "config": {}, "settings": {}, "clock": "data"},
                 max_mb=0.002, flush_every_s=0.0)
    import os
    for i in range(2000):
        r(FrameApplied(FrameReceived(os.urandom(64).hex().encode(), i, i, ()), i))
    assert r.truncated and r.frames < 2000
    recs = list(iter_records(path))
    assert "truncated" in recs[-1]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=40), st.dictionaries(st.text(max_size=5),
                                                                 st.integers(), max_size=3)),
                max_size=6))
def test_any_file_is_a_recording_or_a_clear_error(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("h") / "r.jsonl.gz"
    _write(path, lines)
    try:
        header, _ = read_head(path)
    except RecordingError as e:
        assert str(path) in str(e)
    else:
        assert header["rec"] == 1 and isinstance(header["config"], dict)


def test_the_session_module_is_wiring_under_400_lines():
    n = len((ROOT / "trading" / "runtime" / "session.py").read_text().splitlines())
    assert n < 400, f"session.py has {n} lines"


def test_a_member_cut_by_a_kill_loses_only_its_unflushed_tail(tmp_path):
    """A process killed mid-member; the next one appends its own member after the cut."""
    path = tmp_path / "recording.jsonl.gz"
    head = {"rec": 1, "run_id": "r", "config": {}, "settings": {}, "clock": "data"}
    r = Recorder(path, head)
    for i in range(50):
        r(FrameApplied(FrameReceived(b'{"i":%d}' % i, i, i, ()), i))
    r.sync()  # the last flush before the kill
    for i in range(50, 60):
        r(FrameApplied(FrameReceived(b'{"i":%d}' % i, i, i, ()), i))
    r._gz.write(b'{"m":1,"w":2,"n":3,"f":"half a li')  # written, never flushed: the kill
    r._raw.flush()
    r._raw.close()  # the process is gone: no close of the member
    r2 = Recorder(path, head)
    r2(ClockTicked(999))
    r2.close()
    recs = list(iter_records(path))
    frames = [json.loads(x["f"])["i"] for x in recs if "f" in x]
    assert frames[:50] == list(range(50))  # everything flushed before the kill
    assert recs[-1] == {"k": 999}  # and the next process's member after it
    assert not any("half" in x.get("f", "") for x in recs)
