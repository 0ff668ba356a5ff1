"""Timeline invariants: Bitunix frame shapes, bars honoured exactly, determinism, laziness."""
from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from datetime import datetime, timezone

import orjson
import pytest

from trading.replay import TICK, build_timeline, minute_count
from trading.runtime.datafiles import MarketData, default_replay_file, load_market_file

MINUTE = 60_000


@pytest.fixture(scope="module")
def dydx() -> MarketData:
    return load_market_file(default_replay_file())


def by_minute(frames):
    out: dict[int, list] = defaultdict(list)
    for ts, frame in frames:
        out[ts - ts % MINUTE].append(frame)
    return out


def take_minutes(timeline, n: int):
    """Frames of the first `n` minutes of a bar timeline."""
    end = timeline.start_ts + n * MINUTE
    return list(itertools.takewhile(lambda f: f[0] < end, timeline))


def make_ticks(kind: str, rows: list[tuple], windows=None) -> MarketData:
    return MarketData(kind=kind, rows=rows, windows=windows or [(0, len(rows))])


def quote_tick_rows(start_ts: int, n: int, every_ms: int, bid: float = 100.0):
    return [(float(start_ts + i * every_ms), bid + (i % 7) * 0.1, bid + (i % 7) * 0.1 + 0.2,
             1.0 + i % 3, 2.0) for i in range(n)]


# ---- shape of every frame

def test_frames_are_bitunix_pushes_with_string_numbers(dydx):
    tl = build_timeline(dydx, seed=1, start_index=210)
    seen = set()
    for ts, frame in take_minutes(tl, 3):
        assert set(frame) == {"ch", "symbol", "ts", "data"}
        assert frame["ts"] == ts and isinstance(ts, int)
        assert frame["symbol"] == "BTCUSDT"
        seen.add(frame["ch"])
        ch, data = frame["ch"], frame["data"]
        if ch == "market_kline_1min":
            assert set(data) == {"o", "h", "l", "c", "b", "q"}
            values = list(data.values())
        elif ch == "depth_book1":
            values = data["b"][0] + data["a"][0]
        elif ch == "trade":
            (row,) = data
            assert row["s"] in ("buy", "sell")
            datetime.strptime(row["t"], "%Y-%m-%dT%H:%M:%SZ")
            values = [row["p"], row["v"]]
        elif ch == "tickers":
            (row,) = data
            assert row["s"] == "BTCUSDT"
            values = [row[k] for k in ("la", "o", "h", "l", "b", "q", "r", "bd", "ak", "bv", "av")]
        else:
            assert ch == "price" and data["fr"] == "0.0001"
            values = [data["ip"], data["mp"]]
        for v in values:
            assert isinstance(v, str) and math.isfinite(float(v))
            assert "e" not in v.lower() and not v.endswith(".")
            assert len(v.split(".")[-1]) <= 6 if "." in v else True
    assert seen == {"market_kline_1min", "depth_book1", "trade", "tickers", "price"}


def test_frames_are_in_data_time_order_and_within_the_timeline(dydx):
    tl = build_timeline(dydx, seed=4)
    frames = take_minutes(tl, 30)
    stamps = [ts for ts, _ in frames]
    assert stamps == sorted(stamps)
    assert stamps[0] == tl.start_ts
    assert tl.end_ts == dydx.rows[-1][0] + MINUTE - 500


def test_frames_parse_with_the_project_parser(dydx):
    bitunix = pytest.importorskip("trading.bitunix")
    tl = build_timeline(dydx, seed=2, start_index=400)
    events = 0
    for _, raw in itertools.islice(tl.iter_frames_bytes(), 5000):
        events += len(bitunix.parse_frame(raw))
    assert events >= 5000


def test_iter_frames_bytes_is_the_orjson_of_the_dicts(dydx):
    tl = build_timeline(dydx, seed=3, start_index=500)
    a = list(itertools.islice(tl, 2000))
    b = list(itertools.islice(tl.iter_frames_bytes(), 2000))
    assert [ts for ts, _ in a] == [ts for ts, _ in b]
    assert [orjson.loads(raw) for _, raw in b] == [f for _, f in a]


# ---- quote bars (the bundled dYdX day)

def test_quotes_stay_inside_the_bar_ranges_and_never_cross(dydx):
    tl = build_timeline(dydx, seed=5, start_index=100)
    rows = {int(r[0]): r for r in dydx.rows}
    checked = 0
    for minute, frames in by_minute(take_minutes(tl, 300)).items():
        r = rows[minute]
        bid_lo, bid_hi, ask_lo, ask_hi = r[8], r[7], r[13], r[12]
        quotes = [f["data"] for f in frames if f["ch"] == "depth_book1"]
        assert len(quotes) == 20
        for q in quotes:
            bid, ask = float(q["b"][0][0]), float(q["a"][0][0])
            assert ask - bid >= TICK - 1e-9
            assert bid_lo <= bid <= bid_hi
            if ask_hi >= bid_lo + TICK:         # true for every bar of this file
                assert ask_lo <= ask <= ask_hi or ask == pytest.approx(bid + TICK)
            checked += 1
        first, last = quotes[0], quotes[-1]
        assert (float(first["b"][0][0]), float(first["a"][0][0])) == (r[6], r[11])
        assert (float(last["b"][0][0]), float(last["a"][0][0])) == (r[9], r[14])
    assert checked == 300 * 20


def test_each_side_touches_its_high_and_low(dydx):
    tl = build_timeline(dydx, seed=6, start_index=100)
    rows = {int(r[0]): r for r in dydx.rows}
    touched = 0
    for minute, frames in by_minute(take_minutes(tl, 200)).items():
        r = rows[minute]
        bids = [float(f["data"]["b"][0][0]) for f in frames if f["ch"] == "depth_book1"]
        if r[12] - r[7] >= TICK and r[13] - r[8] >= TICK:
            assert max(bids) == r[7] and min(bids) == r[8]
            touched += 1
    assert touched > 150


def test_final_kline_of_each_minute_is_the_bar_and_matches_history(dydx):
    tl = build_timeline(dydx, seed=7, start_index=0)
    empty = {int(r[0]) for r in dydx.rows if math.isnan(r[1])}
    finals: dict[int, dict] = {}
    mids: dict[int, list] = defaultdict(list)
    trades_in_empty = 0
    for ts, f in tl:    # the whole day, streamed: keep only what is checked
        m = ts - ts % MINUTE
        ch = f["ch"]
        if ch == "market_kline_1min":
            finals[m] = f["data"]
        elif m in empty:
            if ch == "depth_book1":
                d = f["data"]
                mids[m].append((float(d["b"][0][0]) + float(d["a"][0][0])) / 2)
            elif ch == "trade":
                trades_in_empty += 1
    assert len(finals) == 1440 and trades_in_empty == 0
    for i, r in enumerate(dydx.rows):
        m = int(r[0])
        final = finals[m]
        if m not in empty:
            assert [float(final[k]) for k in "ohlc"] == [r[1], r[2], r[3], r[4]]
            assert float(final["b"]) == pytest.approx(r[5], abs=1e-9)
        else:   # no trades: a kline from the quote mids, zero volume
            q = mids[m]
            assert len(q) == 20
            assert [float(final[k]) for k in "ohlc"] == [q[0], max(q), min(q), q[-1]]
            assert final["b"] == "0" and final["q"] == "0"
        closed = tl.closed_kline(i)
        assert closed[0] == m and [float(final[k]) for k in "ohlc"] == list(closed[1:5])
    history = tl.history(tl.end_ts + 1, 200)
    assert history[0]["time"] == int(dydx.rows[-2][0])      # the last minute still forms
    for h in history:
        final = finals[h["time"]]
        assert [h["open"], h["high"], h["low"], h["close"]] == [float(final[k]) for k in "ohlc"]
        # Bitunix's documented layout: baseVol is the USDT amount, quoteVol the coin amount
        assert (h["quoteVol"], h["baseVol"]) == (final["b"], final["q"])
    by_name = tl.history(tl.end_ts + 1, 200, layout="by-name")
    assert [(h["baseVol"], h["quoteVol"]) for h in by_name] == \
        [(h["quoteVol"], h["baseVol"]) for h in history]


def test_kline_pushes_every_500ms_with_a_valid_forming_candle(dydx):
    tl = build_timeline(dydx, seed=8, start_index=300)
    for minute, frames in by_minute(take_minutes(tl, 60)).items():
        klines = [f for f in frames if f["ch"] == "market_kline_1min"]
        assert [f["ts"] - minute for f in klines] == list(range(0, MINUTE, 500))
        prev_b = 0.0
        for f in klines:
            d = {k: float(v) for k, v in f["data"].items()}
            assert d["l"] <= min(d["o"], d["c"]) and d["h"] >= max(d["o"], d["c"])
            assert d["b"] >= prev_b
            prev_b = d["b"]
        assert len({f["data"]["o"] for f in klines}) == 1


def test_trades_follow_the_kline_and_add_up_to_its_volume(dydx):
    tl = build_timeline(dydx, seed=9, start_index=600)
    for minute, frames in by_minute(take_minutes(tl, 20)).items():
        trades = [f for f in frames if f["ch"] == "trade"]
        klines = [f for f in frames if f["ch"] == "market_kline_1min"]
        by_ts = {f["ts"]: f["data"]["c"] for f in klines}
        for t in trades:
            assert t["data"][0]["p"] == by_ts[t["ts"]]
        total = sum(float(t["data"][0]["v"]) for t in trades)
        assert total == pytest.approx(float(klines[-1]["data"]["b"]), abs=1e-5)


def test_tickers_and_price_every_second_with_funding_times(dydx):
    tl = build_timeline(dydx, seed=10, start_index=500)
    frames = take_minutes(tl, 2)
    tickers = [f for _, f in frames if f["ch"] == "tickers"]
    prices = [f for _, f in frames if f["ch"] == "price"]
    assert [f["ts"] for f in tickers] == list(range(tl.start_ts, tl.start_ts + 2 * MINUTE, 1000))
    assert [f["ts"] for f in prices] == [f["ts"] for f in tickers]
    start = datetime.fromtimestamp(tl.start_ts / 1000, timezone.utc)
    for f in prices:
        d = f["data"]
        ft = datetime.fromisoformat(d["ft"].replace("Z", "+00:00"))
        nft = datetime.fromisoformat(d["nft"].replace("Z", "+00:00"))
        assert ft <= start < nft and (nft - ft).total_seconds() == 8 * 3600
        assert ft.hour in (0, 8, 16) and ft.minute == 0
    last_quote = None
    for _, f in frames:
        if f["ch"] == "depth_book1":
            last_quote = f["data"]
        elif f["ch"] == "tickers":
            row = f["data"][0]
            assert (row["bd"], row["ak"]) == (last_quote["b"][0][0], last_quote["a"][0][0])
            assert float(row["l"]) <= float(row["la"]) <= float(row["h"])


def test_same_seed_same_frames_other_seed_other_frames(dydx):
    def first(seed):
        return list(itertools.islice(build_timeline(dydx, seed=seed).iter_frames_bytes(), 3000))

    assert first(11) == first(11)
    assert first(11) != first(12)
    a = build_timeline(dydx, seed=11, start_index=700)
    b = build_timeline(dydx, seed=12, start_index=700)
    fa = [f for _, f in itertools.islice(a, 3000)]
    fb = [f for _, f in itertools.islice(b, 3000)]
    assert fa != fb
    assert {f["ts"] for f in fa if f["ch"] == "tickers"} == \
        {f["ts"] for f in fb if f["ch"] == "tickers"}


def test_a_minute_is_the_same_whatever_the_start(dydx):
    a = by_minute(take_minutes(build_timeline(dydx, seed=13, start_index=300), 3))
    b = by_minute(take_minutes(build_timeline(dydx, seed=13, start_index=301), 2))
    m = int(dydx.rows[301][0])
    keep = ("depth_book1", "market_kline_1min", "trade")
    assert [f for f in a[m] if f["ch"] in keep] == [f for f in b[m] if f["ch"] in keep]


def test_default_start_leaves_200_minutes_of_history(dydx):
    starts = {build_timeline(dydx, seed=s).start_index for s in range(20)}
    assert min(starts) >= 200 and max(starts) < 1440 and len(starts) > 10
    tl = build_timeline(dydx, seed=3)
    assert len(tl.history(tl.start_ts, 200)) == 200
    assert minute_count(dydx) == 1440


def test_start_ts_picks_the_minute_that_contains_it(dydx):
    target = int(dydx.rows[345][0]) + 12_345
    tl = build_timeline(dydx, start_ts=target)
    assert tl.start_index == 346 or tl.start_index == 345
    assert tl.start_ts <= target + MINUTE
    with pytest.raises(ValueError):
        build_timeline(dydx, start_ts=int(dydx.rows[-1][0]) + 10 * MINUTE)


def test_history_is_closed_newest_first_and_capped(dydx):
    tl = build_timeline(dydx, seed=0, start_index=900)
    end = tl.start_ts + 30_500      # mid-minute: the forming minute is excluded
    rows = tl.history(end, 200)
    assert len(rows) == 200
    times = [r["time"] for r in rows]
    assert times == sorted(times, reverse=True)
    assert times[0] == tl.start_ts - MINUTE and times[0] + MINUTE <= end
    assert all(b - a == MINUTE for a, b in zip(times[1:], times))
    assert len(tl.history(end, 5000)) == 200
    assert len(tl.history(end, 3)) == 3
    assert tl.history(int(dydx.rows[0][0]) + MINUTE - 1, 200) == []
    r = rows[0]
    assert set(r) == {"open", "high", "low", "close", "time", "quoteVol", "baseVol", "type"}
    assert r["type"] == "LAST_PRICE" and isinstance(r["quoteVol"], str)
    assert r["low"] <= min(r["open"], r["close"]) <= max(r["open"], r["close"]) <= r["high"]


def test_timeline_is_lazy():
    # 45,000 synthetic minutes: building must not generate frames up front
    rows = [(float(1_600_000_000_000 + i * MINUTE), 100.0, 101.0, 99.0, 100.5, 3.0)
            for i in range(45_000)]
    data = MarketData(kind="ohlcv", rows=rows)
    t0 = time.perf_counter()
    tl = build_timeline(data, seed=1, start_index=40_000)
    first = list(itertools.islice(tl, 50))
    assert time.perf_counter() - t0 < 1.0
    assert len(first) == 50
    assert iter(tl) is not iter(tl)     # each iteration is a fresh generator


# ---- ohlcv and ticks

def test_ohlcv_quotes_are_price_plus_minus_half_spread():
    rows = [(float(1_640_995_200_000 + i * MINUTE), 100.0 + i, 105.0 + i, 98.0 + i, 101.0 + i,
             5000.0) for i in range(5)]
    data = MarketData(kind="ohlcv", rows=rows, volume_is_quote=True)
    tl = build_timeline(data, seed=2, spread_usd=2.0)
    assert tl.start_index == 0
    for minute, frames in by_minute(tl).items():
        r = rows[(minute - int(rows[0][0])) // MINUTE]
        quotes = [f["data"] for f in frames if f["ch"] == "depth_book1"]
        for q in quotes:
            bid, ask = float(q["b"][0][0]), float(q["a"][0][0])
            assert ask - bid == pytest.approx(2.0)
            assert r[3] - 1 <= bid and ask <= r[2] + 1
        assert float(quotes[-1]["b"][0][0]) + 1 == r[4]
        final = [f for f in frames if f["ch"] == "market_kline_1min"][-1]["data"]
        assert [float(final[k]) for k in "ohlc"] == list(r[1:5])
        assert float(final["q"]) == 5000.0      # USD volume stays the quote volume
        assert float(final["b"]) == pytest.approx(5000.0 / ((r[1] + r[2] + r[3] + r[4]) / 4),
                                                  abs=1e-6)


def test_quote_ticks_every_tick_is_a_depth_push_and_klines_use_the_mid():
    start = 1_700_000_010_123
    rows = quote_tick_rows(start, 900, 150)
    data = make_ticks("quote_ticks", rows)
    tl = build_timeline(data)
    frames = list(tl)
    depth = [f for _, f in frames if f["ch"] == "depth_book1"]
    assert len(depth) == len(rows)
    assert [f["ts"] for f in depth] == [int(r[0]) for r in rows]
    assert not [f for _, f in frames if f["ch"] == "trade"]
    klines = [f for _, f in frames if f["ch"] == "market_kline_1min"]
    assert all(b["ts"] - a["ts"] == 500 for a, b in zip(klines, klines[1:]))
    finals = {}
    for f in klines:
        finals[f["ts"] // MINUTE * MINUTE] = f["data"]
    history = {h["time"]: h for h in tl.history(tl.end_ts + MINUTE, 200)}
    assert set(finals) == set(history)
    for m, d in finals.items():
        h = history[m]
        assert [float(d[k]) for k in "ohlc"] == [h["open"], h["high"], h["low"], h["close"]]
        mids = [(r[1] + r[2]) / 2 for r in rows if m <= r[0] < m + MINUTE]
        assert float(d["c"]) == pytest.approx(mids[-1]) and d["b"] == "0"


def test_trade_ticks_make_trades_quotes_and_klines():
    start = 1_700_000_000_000
    rows = []
    for i in range(600):
        ts = float(start + i * 200 - (i % 2) * 0)
        rows.append((ts, 50_000.0 + (i % 11) - 5, 0.01 * (1 + i % 4), float(i % 2)))
    rows.append((rows[-1][0], 50_010.0, 0.5, 0.0))   # two trades in one push
    data = make_ticks("trade_ticks", rows)
    tl = build_timeline(data, spread_usd=1.0)
    frames = [f for _, f in tl]
    trades = [f for f in frames if f["ch"] == "trade"]
    assert sum(len(f["data"]) for f in trades) == len(rows)
    assert len(trades[-1]["data"]) == 2
    assert {t["s"] for f in trades for t in f["data"]} == {"buy", "sell"}
    for f in frames:
        if f["ch"] == "depth_book1":
            assert float(f["data"]["a"][0][0]) - float(f["data"]["b"][0][0]) == \
                pytest.approx(1.0)
    volume = sum(r[2] for r in rows)
    finals = {}
    for f in frames:
        if f["ch"] == "market_kline_1min":
            finals[f["ts"] // MINUTE] = f["data"]
    assert sum(float(d["b"]) for d in finals.values()) == pytest.approx(volume, abs=1e-5)
    assert float(list(finals.values())[-1]["c"]) == 50_010.0


def test_tick_windows_replay_back_to_back_and_skip_the_gap():
    a = quote_tick_rows(1_700_000_000_000, 300, 200)
    b = quote_tick_rows(1_800_000_000_000, 300, 200, bid=200.0)
    data = make_ticks("quote_ticks", a + b, windows=[(0, 300), (300, 600)])
    tl = build_timeline(data)
    # window a spans two clock minutes (it starts 20 s into one), window b one
    assert minute_count(data) == len(tl.history(tl.end_ts + MINUTE, 200)) == 3
    frames = list(tl)
    gaps = [b[0] - a[0] for a, b in zip(frames, frames[1:])]
    assert max(gaps) > 10**10 and sorted(gaps)[-2] <= 1000
    second = [f for ts, f in frames if ts >= 1_800_000_000_000 and f["ch"] == "market_kline_1min"]
    assert float(second[0]["data"]["o"]) == pytest.approx(200.1)     # no carry-over


@pytest.mark.parametrize("kwargs", [
    {"kline_every_ms": 700}, {"quotes_per_minute": 0}, {"spread_usd": -0.5},
    {"start_index": 1440}, {"start_index": -1}, {"symbol": ""},
])
def test_bad_arguments_raise_value_error(dydx, kwargs):
    with pytest.raises(ValueError):
        build_timeline(dydx, **kwargs)
