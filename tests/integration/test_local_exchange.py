"""The local exchange over real sockets on 127.0.0.1: websocket-client and urllib as clients."""
from __future__ import annotations

import json
import struct
import time
import urllib.error
import urllib.request

import orjson
import pytest
import websocket

from trading.runtime.datafiles import MarketData, default_replay_file, load_market_file
from trading.runtime.exchange import ChaosPlan, Fault, LocalExchange, main

SYMBOL = "BTCUSDT"
KLINE = "market_kline_1min"
DEPTH = "depth_book1"


@pytest.fixture(scope="module")
def dydx() -> MarketData:
    return load_market_file(default_replay_file())


@pytest.fixture(scope="module")
def exchange(dydx):
    ex = LocalExchange(dydx, speed=60, seed=0, start_index=300)
    with ex:
        yield ex


def connect(ex: LocalExchange, timeout: float = 3.0) -> websocket.WebSocket:
    ws = websocket.create_connection(ex.ws_url, timeout=timeout)
    greeting = json.loads(ws.recv())
    assert greeting == {"op": "connect", "data": {"result": True}}
    return ws


def subscribe(ws, *channels: str, op: str = "subscribe") -> None:
    ws.send(json.dumps({"op": op, "args": [{"symbol": SYMBOL, "ch": ch} for ch in channels]}))


def collect(ws, seconds: float) -> list:
    """Read raw text frames for `seconds` of wall time."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ws.settimeout(max(left, 0.01))
        try:
            out.append(ws.recv())
        except websocket.WebSocketTimeoutException:
            break
    return out


def wait_for(predicate, timeout: float = 5.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def close_code(ws, timeout: float = 5.0):
    """Read until the server closes: its close code, or None when the TCP link just died."""
    ws.settimeout(timeout)
    while True:
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005


def rest(ex: LocalExchange, query: str, path: str = "/api/v1/futures/market/kline"):
    with urllib.request.urlopen(f"{ex.rest_url}{path}?{query}", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        return json.loads(resp.read())


def tiny_ohlcv(minutes: int = 3) -> MarketData:
    rows = [(float(1_700_000_040_000 + i * 60_000), 100.0, 101.0, 99.0, 100.5, 2.0)
            for i in range(minutes)]
    return MarketData(kind="ohlcv", rows=rows)


# ---- protocol

def test_urls_are_loopback_on_the_bound_port(exchange):
    assert exchange.port > 0
    assert exchange.ws_url == f"ws://127.0.0.1:{exchange.port}/public/"
    assert exchange.rest_url == f"http://127.0.0.1:{exchange.port}"


def test_subscribe_sends_a_snapshot_then_only_the_subscribed_channels(exchange):
    ws = connect(exchange)
    try:
        subscribe(ws, KLINE, DEPTH)
        first = [json.loads(ws.recv()) for _ in range(2)]
        assert [f["ch"] for f in first] == [DEPTH, KLINE]      # the snapshot
        frames = [json.loads(raw) for raw in collect(ws, 1.0)]
    finally:
        ws.close()
    assert {f["ch"] for f in frames} == {KLINE, DEPTH}
    klines = [f for f in frames if f["ch"] == KLINE]
    assert len(klines) > 40
    steps = [b["ts"] - a["ts"] for a, b in zip(klines, klines[1:])]
    assert set(steps) == {500}
    for f in klines:
        d = {k: float(v) for k, v in f["data"].items()}
        assert d["l"] <= min(d["o"], d["c"]) and d["h"] >= max(d["o"], d["c"])
    for f in frames:
        if f["ch"] == DEPTH:
            bid, ask = float(f["data"]["b"][0][0]), float(f["data"]["a"][0][0])
            assert 0 < bid < ask
    assert exchange.connections >= 1


def test_pushes_parse_with_the_project_parser(exchange):
    bitunix = pytest.importorskip("trading.bitunix")
    ws = connect(exchange)
    try:
        subscribe(ws, KLINE, DEPTH, "trade", "tickers", "price")
        raws = collect(ws, 0.8)
    finally:
        ws.close()
    kinds = set()
    for raw in raws:
        for event in bitunix.parse_frame(raw):
            kinds.add(type(event).__name__)
    assert {"KlineUpdate", "Quote", "TradeTick", "FundingInfo"} <= kinds


def test_ping_gets_a_json_pong_with_server_time(exchange):
    ws = connect(exchange)
    try:
        before = exchange.pings_answered
        ws.send(json.dumps({"op": "ping", "ping": 1732519687}))
        reply = json.loads(ws.recv())
    finally:
        ws.close()
    assert reply["op"] == "ping" and reply["pong"] == 1732519687
    assert abs(reply["ping"] - time.time()) < 5
    assert wait_for(lambda: exchange.pings_answered > before, 2)


def test_unsubscribe_stops_a_channel_and_unknown_ops_are_ignored(exchange):
    ws = connect(exchange)
    try:
        ws.send(json.dumps({"op": "hello", "args": []}))
        subscribe(ws, KLINE, DEPTH)
        time.sleep(0.25)
        subscribe(ws, KLINE, op="unsubscribe")
        collect(ws, 0.2)        # frames already on the way
        later = [json.loads(raw)["ch"] for raw in collect(ws, 0.6)]
    finally:
        ws.close()
    assert KLINE not in later and DEPTH in later


def test_rest_klines_are_closed_newest_first_and_before_data_time(exchange, dydx):
    body = rest(exchange, f"symbol={SYMBOL}&interval=1m&limit=200&type=LAST_PRICE")
    now = exchange.data_ts()
    assert body["code"] == 0 and body["msg"] == "Success"
    rows = body["data"]
    assert 0 < len(rows) <= 200
    times = [r["time"] for r in rows]
    assert times == sorted(times, reverse=True)
    assert all(t + 60_000 <= now for t in times)
    assert times[0] >= exchange.timeline.start_ts - 60_000
    bars = {int(r[0]): r for r in dydx.rows}
    for r in rows[:20]:
        bar = bars[r["time"]]
        if bar[1] == bar[1]:
            assert [r["open"], r["high"], r["low"], r["close"]] == list(bar[1:5])
    end = times[10]
    older = rest(exchange, f"symbol={SYMBOL}&interval=1m&limit=5&endTime={end}")["data"]
    assert [r["time"] for r in older] == [end - 60_000 * k for k in range(1, 6)]


@pytest.mark.parametrize("query", [
    f"symbol={SYMBOL}&interval=1m&limit=201",
    f"symbol={SYMBOL}&interval=1m&limit=abc",
    f"symbol={SYMBOL}&interval=7m&limit=10",
    "symbol=ETHUSDT&interval=1m&limit=10",
    f"symbol={SYMBOL}&interval=1m&endTime=soon",
])
def test_rest_bad_parameters_get_a_nonzero_code(exchange, query):
    body = rest(exchange, query)
    assert body["code"] == 10002 and body["msg"]  # Bitunix's parameter-error code
    assert "data" not in body


def test_rest_klines_are_in_the_documented_volume_layout_unless_asked(dydx):
    """baseVol is the USDT amount and quoteVol the coin amount, as Bitunix documents it."""
    from trading.bitunix import parse_rest_klines_layout
    for layout in ("documented", "by-name"):
        with LocalExchange(dydx, speed="max", start_index=700, rest_layout=layout) as ex:
            body = rest(ex, f"symbol={SYMBOL}&interval=1m&limit=200")
        rows = [r for r in body["data"] if float(r["baseVol"]) > 0 and float(r["quoteVol"]) > 0]
        assert len(rows) > 50
        usdt, coin = ("baseVol", "quoteVol") if layout == "documented" else \
            ("quoteVol", "baseVol")
        for r in rows:
            assert abs(float(r[usdt]) / float(r[coin]) / r["close"] - 1) < 0.05, r
        candles, seen = parse_rest_klines_layout(json.dumps(body).encode())
        assert seen == layout
        for c in candles:
            if c["volume"]:
                assert abs(c["quote_volume"] / c["volume"] / c["close"] - 1) < 0.05


def test_rest_honours_start_time_and_serves_longer_intervals(exchange):
    one = rest(exchange, f"symbol={SYMBOL}&interval=1m&limit=200")["data"]
    start = one[9]["time"]
    since = rest(exchange, f"symbol={SYMBOL}&interval=1m&limit=200&startTime={start}")["data"]
    assert [r["time"] for r in since] == [r["time"] for r in one[:10]]
    five = rest(exchange, f"symbol={SYMBOL}&interval=5m&limit=4")["data"]
    assert len(five) == 4 and all(r["time"] % 300_000 == 0 for r in five)
    by_time = {r["time"]: r for r in one}
    full = five[1]  # the newest bucket may still be forming
    minutes = [by_time[full["time"] + k * 60_000] for k in range(5)]
    assert full["open"] == minutes[0]["open"] and full["close"] == minutes[-1]["close"]
    assert full["high"] == max(m["high"] for m in minutes)
    assert full["low"] == min(m["low"] for m in minutes)
    assert float(full["quoteVol"]) == pytest.approx(sum(float(m["quoteVol"]) for m in minutes),
                                                    abs=1e-5)
    for bad in ("interval=1M", f"startTime={one[0]['time'] + 10**9}", "startTime=-1"):
        body = rest(exchange, f"symbol={SYMBOL}&limit=5&{bad}")
        assert body["code"] == 10002, bad


def test_other_paths_are_404(exchange):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{exchange.rest_url}/api/v1/futures/market/depth", timeout=5)
    assert err.value.code == 404


def test_more_than_5_messages_a_second_disconnects_with_1008(exchange):
    before = exchange.rate_limit_disconnects
    ws = connect(exchange)
    for i in range(10):
        ws.send(json.dumps({"op": "ping", "ping": i}))
    assert close_code(ws) == 1008
    ws.shutdown()
    assert wait_for(lambda: exchange.rate_limit_disconnects == before + 1, 2)


# ---- chaos

def test_chaos_plan_parses_times_and_arguments():
    plan = ChaosPlan.parse("garbage@120s, drop@30s,stall@1.5m:15s,close@10s:4001,flood@1s,dup@2:7")
    assert [f.kind for f in plan] == ["flood", "dup", "close", "drop", "stall", "garbage"]
    assert plan.faults[0] == Fault("flood", 1.0, 50_000)
    assert plan.faults[1] == Fault("dup", 2.0, 7)
    assert plan.faults[2] == Fault("close", 10.0, 4001)
    assert plan.faults[4] == Fault("stall", 90.0, 15.0)
    assert Fault("close", 10.0, 1011) == ChaosPlan.parse("close@10s").faults[0]
    assert not ChaosPlan.parse("")
    assert ChaosPlan.parse(str(plan)) == plan


@pytest.mark.parametrize("spec, bad", [
    ("drop@30s,explode@5s", "explode@5s"),
    ("drop", "drop"),
    ("drop@soon", "drop@soon"),
    ("garbage@5s:3", "garbage@5s:3"),
    ("close@5s:1006", "close@5s:1006"),
    ("flood@5s:0", "flood@5s:0"),
    ("stall@5s:-1s", "stall@5s:-1s"),
    ("dup@5s:two", "dup@5s:two"),
])
def test_chaos_plan_rejects_bad_items_by_name(spec, bad):
    with pytest.raises(ValueError) as err:
        ChaosPlan.parse(spec)
    assert repr(bad) in str(err.value)


def test_drop_cuts_the_connection_without_a_close_frame(dydx):
    with LocalExchange(dydx, speed=10, start_index=300, chaos="drop@5s") as ex:
        ws = connect(ex)
        subscribe(ws, KLINE, DEPTH)
        t0 = time.monotonic()
        assert close_code(ws, timeout=3) is None
        assert time.monotonic() - t0 < 2.0
        assert [f.kind for f in ex.faults_fired] == ["drop"]
        ws.close()
        # the exchange itself lives on: a new connection works
        ws2 = connect(ex)
        subscribe(ws2, KLINE)
        assert json.loads(ws2.recv())["ch"] == KLINE
        ws2.close()


def test_close_fault_sends_the_given_close_code(dydx):
    with LocalExchange(dydx, speed=10, start_index=300, chaos="close@5s:4001") as ex:
        ws = connect(ex)
        subscribe(ws, KLINE)
        assert close_code(ws, timeout=3) == 4001
        ws.shutdown()


def test_stall_sends_nothing_answers_no_ping_then_resumes_ahead(dydx):
    with LocalExchange(dydx, speed=10, start_index=300, chaos="stall@5s:1.5s") as ex:
        ws = connect(ex)
        try:
            subscribe(ws, KLINE, DEPTH)
            last_ts = 0
            ws.settimeout(0.02)     # short reads: notice the stall as soon as it starts
            deadline = time.monotonic() + 3
            while not ex.faults_fired:
                assert time.monotonic() < deadline
                try:
                    last_ts = max(last_ts, json.loads(ws.recv()).get("ts", 0))
                except websocket.WebSocketTimeoutException:
                    pass
            fired = time.monotonic()
            for raw in collect(ws, 0.15):    # frames that were already on the wire
                last_ts = max(last_ts, json.loads(raw).get("ts", 0))
            ws.send(json.dumps({"op": "ping", "ping": 7}))
            assert collect(ws, 0.9) == []   # nothing at all, not even the pong
            ws.settimeout(3)
            resumed = json.loads(ws.recv())
            assert time.monotonic() - fired >= 1.4
            assert resumed.get("op") != "ping"
            assert resumed["ts"] - last_ts >= 10_000     # ~15 s of data went by unseen
        finally:
            ws.close()


def test_bad_frames_are_sent_as_specified(dydx):
    spec = "garbage@5s,bigframe@5s,crossed@5s,nan@5s,negative@5s,wrongtypes@5s"
    with LocalExchange(dydx, speed=10, start_index=300, chaos=spec) as ex:
        ws = connect(ex)
        try:
            subscribe(ws, KLINE)
            raws = []
            deadline = time.monotonic() + 4
            while len(ex.faults_fired) < 6 or len(raws) < 2000:
                assert time.monotonic() < deadline
                raws.append(ws.recv())
                if len(ex.faults_fired) == 6 and len([r for r in raws if len(r) > 1000]):
                    raws.extend(collect(ws, 0.3))
                    break
        finally:
            ws.close()
    garbage = bigframe = 0
    depth = []
    for raw in raws:
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            garbage += 1
            continue
        if len(raw.encode()) >= 1 << 20:
            bigframe += 1
        elif frame.get("ch") == DEPTH:
            depth.append(frame["data"])
    assert garbage == 1 and bigframe == 1
    bids = [d["b"][0][0] for d in depth]
    assert "NaN" in bids
    assert any(isinstance(b, dict) for b in bids)
    assert any(isinstance(b, str) and b.startswith("-") for b in bids)
    assert any(isinstance(b, str) and b != "NaN" and not b.startswith("-")
               and float(b) > float(d["a"][0][0]) for b, d in zip(bids, depth))


def test_bad_frames_are_rejected_by_the_project_parser(dydx):
    bitunix = pytest.importorskip("trading.bitunix")
    ex = LocalExchange(dydx, speed=10, start_index=300)
    for kind in ("garbage", "crossed", "nan", "negative", "wrongtypes"):
        raw = ex._bad_frame(kind, ex.timeline.start_ts)
        with pytest.raises(bitunix.ProtocolError):
            bitunix.parse_frame(raw)


def test_flood_and_dup_deliver_extra_valid_frames(dydx):
    with LocalExchange(dydx, speed=10, start_index=300, chaos="flood@5s:3000,dup@6s:40") as ex:
        ws = connect(ex)
        try:
            subscribe(ws, KLINE, DEPTH, "depth_book15", "trade", "tickers", "price")
            frames = [json.loads(raw) for raw in collect(ws, 1.3)]
        finally:
            ws.close()
    assert [f.kind for f in ex.faults_fired] == ["flood", "dup"]
    depth_ts = [f["ts"] for f in frames if f["ch"] == DEPTH]
    flood_ts = max(set(depth_ts), key=depth_ts.count)
    assert depth_ts.count(flood_ts) >= 3000
    after = [json.dumps(f, sort_keys=True) for f in frames if f["ts"] != flood_ts]
    doubled = sum(1 for a, b in zip(after, after[1:]) if a == b)
    assert doubled == 40


def test_disorder_shuffles_the_next_pushes(dydx):
    with LocalExchange(dydx, speed=10, start_index=300, chaos="disorder@5s:30") as ex:
        ws = connect(ex)
        try:
            subscribe(ws, KLINE)
            frames = [json.loads(raw) for raw in collect(ws, 1.0)]
        finally:
            ws.close()
    assert [f.kind for f in ex.faults_fired] == ["disorder"]
    ts = [f["ts"] for f in frames]
    assert any(b < a for a, b in zip(ts, ts[1:]))


# ---- end of data, slow clients, command line

def test_after_the_end_only_pings_are_answered():
    with LocalExchange(tiny_ohlcv(), speed="max") as ex:
        assert wait_for(lambda: ex.ended, 5)
        ws = connect(ex)
        try:
            subscribe(ws, KLINE, DEPTH)
            ws.send(json.dumps({"op": "ping", "ping": 99}))
            replies = [json.loads(r) for r in collect(ws, 0.5)]
        finally:
            ws.close()
        assert [r.get("pong") for r in replies] == [99]
        assert ex.data_ts() == ex.timeline.end_ts


def test_a_client_that_does_not_read_loses_the_oldest_frames_not_the_replay(dydx):
    with LocalExchange(dydx, speed="max", start_index=300, queue_size=200) as ex:
        lazy = connect(ex)
        subscribe(lazy, KLINE, DEPTH, "trade", "tickers", "price")
        assert wait_for(lambda: ex.frames_dropped > 0, 10)
        lazy.sock.close()                   # vanish without a close frame
        assert wait_for(lambda: ex.active_connections == 0, 5)
        assert wait_for(lambda: ex.data_ts() > ex.timeline.start_ts + 3_600_000, 10)


@pytest.mark.parametrize("argv", [
    ["--speed", "-1"], ["--speed", "fast"], ["--port", "70000"], ["--spread-usd", "0"],
    ["--chaos", "boom@1s"], ["--file", "/nonexistent/data.csv"], ["--start-index", "99999"],
])
def test_command_line_rejects_bad_values_with_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--port", "0"] if "--port" not in argv else argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
