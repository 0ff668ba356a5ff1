"""Bitunix protocol: client frames, every documented push, and the frames we must refuse."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.bitunix import (KLINE_PATH, MAX_SUBSCRIPTIONS, ProtocolError, kline_url,
                             parse_frame, parse_rest_klines, parse_rest_klines_layout,
                             ping_message, subscribe_message, unsubscribe_message)
from trading.model import FundingInfo, KlineUpdate, Pong, Quote, TradeTick

TS = 1732178884994


# ---- factories ----

def raw(frame) -> bytes:
    return json.dumps(frame).encode()


def kline_frame(ts=TS, o="97000.1", h="97020.0", l="96990.2", c="97010.5", b="12.345",
                q="1197654.3", ch="market_kline_1min", symbol="BTCUSDT") -> dict:
    return {"ch": ch, "symbol": symbol, "ts": ts,
            "data": {"o": o, "c": c, "h": h, "l": l, "b": b, "q": q}}


def depth_frame(ts=TS, bid="97000.0", bid_size="0.002", ask="97000.1", ask_size="3.340",
                ch="depth_book1") -> dict:
    return {"ch": ch, "symbol": "BTCUSDT", "ts": ts,
            "data": {"b": [[bid, bid_size]], "a": [[ask, ask_size]]}}


def ticker_row(s="BTCUSDT", bd="97000.0", ak="97000.1", bv="0.97", av="2.36") -> dict:
    return {"s": s, "la": "97000.1", "o": "96500", "h": "97400", "l": "96100", "b": "26295.39",
            "q": "2.5e9", "r": "0.52", "bd": bd, "ak": ak, "bv": bv, "av": av}


def price_frame(ts=TS, ip="97001.2", mp="97000.5", fr="0.0001", ft="2026-04-07T08:00:00Z",
                nft="2026-04-07T16:00:00Z") -> dict:
    return {"ch": "price", "symbol": "BTCUSDT", "ts": ts,
            "data": {"ip": ip, "mp": mp, "fr": fr, "ft": ft, "nft": nft}}


def trade_frame(rows, ts=1775540872598) -> dict:
    return {"ch": "trade", "symbol": "BTCUSDT", "ts": ts, "data": rows}


def rest_body(rows, code=0, msg="Success") -> bytes:
    return json.dumps({"code": code, "msg": msg, "data": rows}).encode()


def rest_row(time_ms, o, h, l, c, coin="1.5", usdt=None, layout="documented") -> dict:
    """A REST kline row; "documented": baseVol = USDT, quoteVol = coin, as Bitunix shows."""
    usdt = f"{float(coin) * float(c):.2f}" if usdt is None else usdt
    base, quote = (usdt, coin) if layout == "documented" else (coin, usdt)
    return {"open": o, "high": h, "low": l, "close": c, "time": time_ms, "quoteVol": quote,
            "baseVol": base, "type": "LAST_PRICE"}


# ---- client -> server ----

def test_subscribe_sends_every_channel_in_one_args_array():
    subs = [("BTCUSDT", "market_kline_1min"), ("BTCUSDT", "depth_book1"), ("BTCUSDT", "price")]

    msg = json.loads(subscribe_message(subs))

    assert set(msg) == {"op", "args"}
    assert msg["op"] == "subscribe"
    assert msg["args"] == [{"symbol": "BTCUSDT", "ch": "depth_book1"},
                           {"symbol": "BTCUSDT", "ch": "market_kline_1min"},
                           {"symbol": "BTCUSDT", "ch": "price"}]


def test_subscribe_collapses_duplicate_pairs():
    msg = json.loads(subscribe_message([("BTCUSDT", "depth_book1")] * 3))

    assert msg["args"] == [{"symbol": "BTCUSDT", "ch": "depth_book1"}]


def test_subscribe_refuses_nothing_and_more_than_the_server_limit():
    with pytest.raises(ValueError, match="nothing to subscribe"):
        subscribe_message([])
    too_many = [(f"SYM{i}USDT", "depth_book1") for i in range(MAX_SUBSCRIPTIONS + 1)]
    with pytest.raises(ValueError, match="301 subscriptions"):
        subscribe_message(too_many)
    at_limit = json.loads(subscribe_message(too_many[:MAX_SUBSCRIPTIONS]))
    assert len(at_limit["args"]) == 300


def test_unsubscribe_frame_shape():
    msg = json.loads(unsubscribe_message([("BTCUSDT", "market_kline_1min")]))

    assert msg == {"op": "unsubscribe", "args": [{"symbol": "BTCUSDT", "ch": "market_kline_1min"}]}


def test_ping_frame_is_json_op_ping_in_unix_seconds():
    assert json.loads(ping_message(1732519687)) == {"op": "ping", "ping": 1732519687}
    assert json.loads(ping_message(1732519687.9)) == {"op": "ping", "ping": 1732519687}


# ---- server -> client pushes ----

def test_parse_kline_push():
    events = parse_frame(raw(kline_frame()))

    assert events == [KlineUpdate(ts=TS, open=97000.1, high=97020.0, low=96990.2, close=97010.5,
                                  base_vol=12.345, quote_vol=1197654.3, symbol="BTCUSDT")]
    assert events[0].minute_ts == 1732178880000


def test_parse_kline_accepts_text_and_missing_volumes():
    frame = kline_frame()
    del frame["data"]["b"], frame["data"]["q"]

    (k,) = parse_frame(json.dumps(frame))

    assert (k.base_vol, k.quote_vol, k.close) == (0.0, 0.0, 97010.5)


@pytest.mark.parametrize("ch", ["market_kline_5min", "market_kline_1day", "mark_kline_1min"])
def test_kline_channels_we_do_not_consume_yield_nothing(ch):
    assert parse_frame(raw(kline_frame(ch=ch))) == []


def test_parse_depth_book1_push():
    events = parse_frame(raw(depth_frame()))

    assert events == [Quote(ts=TS, bid=97000.0, ask=97000.1, bid_size=0.002, ask_size=3.34,
                            symbol="BTCUSDT")]


def test_parse_depth_book5_takes_the_best_level_and_keeps_the_book():
    frame = {"ch": "depth_book5", "symbol": "BTCUSDT", "ts": TS,
             "data": {"b": [["97000.0", "1"], ["96999.5", "2"]],
                      "a": [["97000.4", "3"], ["97001.0", "4"]]}}

    q, book = parse_frame(raw(frame))

    assert (q.bid, q.bid_size, q.ask, q.ask_size) == (97000.0, 1.0, 97000.4, 3.0)
    assert book.bids == ((97000.0, 1.0), (96999.5, 2.0)) and book.ts == TS


def test_parse_tickers_reads_bd_ak_and_sizes_per_row():
    frame = {"ch": "tickers", "ts": TS,
             "data": [ticker_row(), ticker_row(s="ETHUSDT", bd="3500.1", ak="3500.2",
                                               bv="10", av="11")]}

    events = parse_frame(raw(frame))

    assert events == [
        Quote(ts=TS, bid=97000.0, ask=97000.1, bid_size=0.97, ask_size=2.36, symbol="BTCUSDT"),
        Quote(ts=TS, bid=3500.1, ask=3500.2, bid_size=10.0, ask_size=11.0, symbol="ETHUSDT"),
    ]


def test_tickers_row_without_bid_ask_is_skipped():
    row = ticker_row()
    del row["bd"]
    frame = {"ch": "tickers", "ts": TS, "data": [row, ticker_row(bd="1.5", ak="1.6")]}

    events = parse_frame(raw(frame))

    assert [(q.bid, q.ask) for q in events] == [(1.5, 1.6)]


def test_ticker_channel_without_bid_ask_yields_nothing():
    frame = {"ch": "ticker", "symbol": "BTCUSDT", "ts": TS,
             "data": {"s": "BTCUSDT", "la": "97000.1"}}

    assert parse_frame(raw(frame)) == []


def test_parse_trade_converts_iso_time_to_epoch_ms():
    frame = trade_frame([{"t": "2026-04-07T05:47:52Z", "p": "68621.4", "v": "0.7142", "s": "buy"},
                         {"t": "2026-04-07T05:47:52.250Z", "p": "68621.3", "v": "1", "s": "sell"}])

    events = parse_frame(raw(frame))

    assert events == [
        TradeTick(ts=1775540872000, price=68621.4, qty=0.7142, side="buy", symbol="BTCUSDT"),
        TradeTick(ts=1775540872250, price=68621.3, qty=1.0, side="sell", symbol="BTCUSDT"),
    ]


def test_trade_without_time_uses_push_ts():
    (t,) = parse_frame(raw(trade_frame([{"p": "68621.4", "v": "0.5", "s": "buy"}], ts=123456)))

    assert t.ts == 123456


def test_parse_price_push_reads_funding_times_from_iso():
    events = parse_frame(raw(price_frame()))

    assert events == [FundingInfo(ts=TS, index_px=97001.2, mark_px=97000.5, funding_rate=0.0001,
                                  funding_ts=1775548800000, next_funding_ts=1775577600000,
                                  symbol="BTCUSDT")]


def test_ping_reply_becomes_pong_with_our_echo_and_server_time():
    events = parse_frame('{"op":"ping","pong":1732519687,"ping":1732519690}')

    assert events == [Pong(ts=1732519690000, ping=1732519687, pong=1732519690)]


@pytest.mark.parametrize("frame", [
    {"op": "connect", "data": {"whatever": 1}},
    {"op": "subscribe", "args": [{"symbol": "BTCUSDT", "ch": "depth_book1"}]},
    {"op": "brand_new_op"},
    {"op": "ping", "ping": 1732519690},  # a server ping without pong carries nothing for us
    {"ch": "depth_books", "symbol": "BTCUSDT", "ts": TS, "data": {"b": [], "a": []}},
    {"ch": "some_future_channel", "symbol": "BTCUSDT", "ts": TS, "data": {}},
    {"code": 0, "msg": "ok"},
])
def test_frames_that_carry_nothing_for_us_yield_empty_list(frame):
    assert parse_frame(raw(frame)) == []


# ---- rejections ----

@pytest.mark.parametrize("text", ['{"ch":', "not json", b"\xff\xfe", "", "[1, 2, 3]",
                                  '"a string"', "42", "null",
                                  '{"ch":"depth_book1","ts":NaN,"data":{}}'])
def test_invalid_or_non_object_json_is_a_protocol_error(text):
    with pytest.raises(ProtocolError):
        parse_frame(text)


def test_protocol_error_is_a_value_error():
    assert issubclass(ProtocolError, ValueError)


@pytest.mark.parametrize("bad", [{"p": "1"}, True, False, ["97000.0"], None, "NaN", "nan", "inf",
                                 "-inf", "Infinity", "1e999", "abc", "", "-97000.0", "0", 0, -1])
def test_depth_bad_bid_price_is_rejected(bad):
    with pytest.raises(ProtocolError):
        parse_frame(raw(depth_frame(bid=bad)))


@pytest.mark.parametrize("bad", [{"p": "1"}, True, ["1"], "NaN", "inf", "-1"])
def test_depth_bad_size_is_rejected(bad):
    with pytest.raises(ProtocolError):
        parse_frame(raw(depth_frame(ask_size=bad)))


def test_depth_accepts_plain_json_numbers():
    (q,) = parse_frame(raw(depth_frame(bid=97000, ask=97000.5)))

    assert (q.bid, q.ask) == (97000.0, 97000.5)


def test_crossed_book_is_rejected():
    with pytest.raises(ProtocolError, match="crossed"):
        parse_frame(raw(depth_frame(bid="97000.2", ask="97000.1")))


def test_locked_book_is_accepted():
    (q,) = parse_frame(raw(depth_frame(bid="97000.1", ask="97000.1")))

    assert q.bid == q.ask == 97000.1


@pytest.mark.parametrize("data", [
    {"b": [], "a": [["97000.1", "1"]]},
    {"b": [["97000.0", "1"]], "a": []},
    {"b": [["97000.0"]], "a": [["97000.1", "1"]]},
    {"b": ["97000.0", "1"], "a": [["97000.1", "1"]]},
    {"b": {"97000.0": "1"}, "a": [["97000.1", "1"]]},
    {"a": [["97000.1", "1"]]},
    [["97000.0", "1"]],
    None,
])
def test_depth_with_malformed_levels_is_rejected(data):
    frame = depth_frame()
    frame["data"] = data
    with pytest.raises(ProtocolError):
        parse_frame(raw(frame))


@pytest.mark.parametrize("field,bad", [("o", {"v": 1}), ("h", True), ("l", ["1"]), ("c", "NaN"),
                                       ("o", "inf"), ("c", "-5"), ("l", "0"), ("b", "-1"),
                                       ("q", "nan"), ("c", None)])
def test_kline_with_bad_values_is_rejected(field, bad):
    frame = kline_frame()
    frame["data"][field] = bad
    with pytest.raises(ProtocolError):
        parse_frame(raw(frame))


@pytest.mark.parametrize("o,h,l,c", [
    ("100", "110", "101", "105"),   # low above open
    ("105", "110", "101", "100"),   # low above close
    ("100", "104", "95", "105"),    # high below close
    ("106", "105", "95", "100"),    # high below open
])
def test_kline_with_inconsistent_high_low_is_rejected(o, h, l, c):
    with pytest.raises(ProtocolError, match="inconsistent"):
        parse_frame(raw(kline_frame(o=o, h=h, l=l, c=c)))


def test_kline_with_flat_ohlc_is_accepted():
    (k,) = parse_frame(raw(kline_frame(o="100", h="100", l="100", c="100")))

    assert (k.open, k.high, k.low, k.close) == (100.0, 100.0, 100.0, 100.0)


@pytest.mark.parametrize("frame", [
    {"ch": "market_kline_1min", "symbol": "BTCUSDT", "ts": TS},
    {"ch": "depth_book1", "symbol": "BTCUSDT", "ts": TS},
    {"ch": "tickers", "ts": TS},
    {"ch": "trade", "symbol": "BTCUSDT", "ts": TS},
    {"ch": "price", "symbol": "BTCUSDT", "ts": TS},
    {"ch": "market_kline_1min", "symbol": "BTCUSDT", "ts": TS, "data": []},
    {"ch": "price", "symbol": "BTCUSDT", "ts": TS, "data": "x"},
    {"ch": "tickers", "ts": TS, "data": {"s": "BTCUSDT"}},
    {"ch": "tickers", "ts": TS, "data": ["BTCUSDT"]},
    {"ch": "trade", "symbol": "BTCUSDT", "ts": TS, "data": [["68621.4", "1"]]},
])
def test_missing_or_mistyped_data_is_rejected(frame):
    with pytest.raises(ProtocolError):
        parse_frame(raw(frame))


@pytest.mark.parametrize("ts", [None, 0, -1, "abc", "", True, {"t": 1}, [TS], "NaN", "inf"])
def test_bad_push_ts_is_rejected(ts):
    frame = depth_frame()
    if ts is None:
        del frame["ts"]
    else:
        frame["ts"] = ts
    with pytest.raises(ProtocolError):
        parse_frame(raw(frame))


def test_numeric_string_ts_is_accepted():
    (q,) = parse_frame(raw(depth_frame(ts=str(TS))))

    assert q.ts == TS


@pytest.mark.parametrize("frame", [
    {"ch": 5, "ts": TS, "data": {}},
    {"ch": ["depth_book1"], "ts": TS, "data": {}},
    dict(depth_frame(), symbol=7),
])
def test_mistyped_channel_or_symbol_is_rejected(frame):
    with pytest.raises(ProtocolError):
        parse_frame(raw(frame))


@pytest.mark.parametrize("row", [ticker_row(bd="97000.2", ak="97000.1"), ticker_row(bd="NaN"),
                                 ticker_row(ak={"x": 1}), ticker_row(bd="-1"),
                                 ticker_row(av=True)])
def test_bad_ticker_row_is_rejected(row):
    with pytest.raises(ProtocolError):
        parse_frame(raw({"ch": "tickers", "ts": TS, "data": [row]}))


@pytest.mark.parametrize("row", [
    {"t": "yesterday", "p": "1", "v": "1", "s": "buy"},
    {"t": ["2026-04-07T05:47:52Z"], "p": "1", "v": "1", "s": "buy"},
    {"t": "2026-04-07T05:47:52Z", "p": "0", "v": "1", "s": "buy"},
    {"t": "2026-04-07T05:47:52Z", "p": "NaN", "v": "1", "s": "buy"},
    {"t": "2026-04-07T05:47:52Z", "p": "1", "v": "-1", "s": "buy"},
    {"t": "2026-04-07T05:47:52Z", "v": "1", "s": "buy"},
])
def test_bad_trade_row_is_rejected(row):
    with pytest.raises(ProtocolError):
        parse_frame(raw(trade_frame([row])))


@pytest.mark.parametrize("field,bad", [("mp", "NaN"), ("mp", "0"), ("ip", {"x": 1}), ("fr", "inf"),
                                       ("fr", "0.5"), ("fr", True), ("ft", "not a time"),
                                       ("nft", None), ("nft", ["2026-04-07T16:00:00Z"])])
def test_bad_price_push_is_rejected(field, bad):
    with pytest.raises(ProtocolError):
        parse_frame(raw(price_frame(**{field: bad})))


def test_pong_with_bad_numbers_is_rejected():
    with pytest.raises(ProtocolError):
        parse_frame('{"op":"ping","pong":"soon","ping":1732519690}')


# ---- REST klines ----

def test_rest_klines_come_back_oldest_first():
    body = rest_body([rest_row(1732178940000, 60010, 60020, 60000, 60015, coin="2"),
                      rest_row(1732178880000, "60000", "60001", "59989.2", "60000", coin="1",
                               usdt="60000"),
                      rest_row(1732178820000, 59990, 60000, 59980, 59999.5, coin="0.5")])

    candles = parse_rest_klines(body)

    assert candles == [
        {"ts": 1732178820000, "open": 59990.0, "high": 60000.0, "low": 59980.0, "close": 59999.5,
         "volume": 0.5, "quote_volume": 29999.75},
        {"ts": 1732178880000, "open": 60000.0, "high": 60001.0, "low": 59989.2, "close": 60000.0,
         "volume": 1.0, "quote_volume": 60000.0},
        {"ts": 1732178940000, "open": 60010.0, "high": 60020.0, "low": 60000.0, "close": 60015.0,
         "volume": 2.0, "quote_volume": 120030.0},
    ]


def test_the_documentations_own_example_row_is_one_coin_not_60000():
    """The documented example: "quoteVol":"1","baseVol":"60000" for a 60,000 candle."""
    body = json.dumps({"code": 0, "msg": "Success", "data": [
        {"open": 60000, "high": 60001, "low": 59989.2, "close": 60000, "time": 1732178880000,
         "quoteVol": "1", "baseVol": "60000", "type": "LAST_PRICE"}]}).encode()
    candles, layout = parse_rest_klines_layout(body)
    assert layout == "documented"
    assert candles[0]["volume"] == 1.0 and candles[0]["quote_volume"] == 60000.0


@pytest.mark.parametrize("layout", ["documented", "by-name"])
def test_either_rest_layout_gives_coin_volumes(layout):
    rows = [rest_row(1732178880000 + i * 60000, 87000, 87010, 86990, 87005, coin=f"{1 + i}.25",
                     layout=layout) for i in range(5)]
    candles, seen = parse_rest_klines_layout(rest_body(rows))
    assert seen == layout
    assert [c["volume"] for c in candles] == [1.25, 2.25, 3.25, 4.25, 5.25]
    for c in candles:
        assert abs(c["quote_volume"] / c["volume"] / c["close"] - 1) < 0.05


def test_rows_without_both_volumes_give_zero_volume_and_say_unknown():
    rows = [rest_row(1732178880000, 87000, 87010, 86990, 87005, coin="0", usdt="0"),
            rest_row(1732178940000, 87000, 87010, 86990, 87005, coin="3", usdt="0")]
    candles, seen = parse_rest_klines_layout(rest_body(rows))
    assert seen == "unknown" and [c["volume"] for c in candles] == [0.0, 0.0]


def test_contradicting_rest_layouts_are_an_error():
    rows = [rest_row(1732178880000, 87000, 87010, 86990, 87005, layout="documented"),
            rest_row(1732178940000, 87000, 87010, 86990, 87005, layout="by-name")]
    with pytest.raises(ProtocolError, match="contradict"):
        parse_rest_klines_layout(rest_body(rows))


@settings(max_examples=200, deadline=None)
@given(price=st.floats(100, 1e6), coins=st.lists(st.floats(1e-3, 1e4), min_size=1,
                                                   max_size=20),
       layout=st.sampled_from(["documented", "by-name"]))
def test_rest_layout_is_told_by_evidence_for_any_price_and_volume(price, coins, layout):
    rows = [rest_row(1732178880000 + i * 60000, price, price, price, price, coin=repr(c),
                     usdt=repr(c * price), layout=layout) for i, c in enumerate(coins)]
    candles, seen = parse_rest_klines_layout(rest_body(rows))
    assert seen == layout
    assert [c["volume"] for c in candles] == pytest.approx(coins)


def test_rest_klines_empty_data_is_empty_list():
    assert parse_rest_klines(rest_body([])) == []


@pytest.mark.parametrize("code", [1, -1, 10001, "0", None])
def test_rest_klines_nonzero_code_is_an_error(code):
    with pytest.raises(ProtocolError, match="failed"):
        parse_rest_klines(rest_body([rest_row(1732178880000, 1, 2, 1, 2)], code=code,
                                    msg="System error"))


@pytest.mark.parametrize("body", [
    b"<html>502</html>",
    b"[]",
    json.dumps({"code": 0, "msg": "Success"}).encode(),
    json.dumps({"code": 0, "data": {"open": 1}}).encode(),
    rest_body(["row"]),
    rest_body([rest_row(1732178880000, 100, 110, 101, 105)]),   # low above open
    rest_body([rest_row(1732178880000, 100, 104, 95, 105)]),    # high below close
    rest_body([rest_row(1732178880000, 0, 1, 0, 1)]),           # zero prices
    rest_body([rest_row(1732178880000, "NaN", 1, 1, 1)]),
    rest_body([rest_row(None, 1, 1, 1, 1)]),
    rest_body([rest_row(0, 1, 1, 1, 1)]),
])
def test_rest_klines_malformed_bodies_are_errors(body):
    with pytest.raises(ProtocolError):
        parse_rest_klines(body)


def test_kline_url_uses_rest_interval_names_and_end_time():
    url = kline_url("https://fapi.bitunix.com/", "BTCUSDT", end_ts=1732178880000, limit=200)

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://fapi.bitunix.com" + KLINE_PATH
    assert parse_qs(parts.query) == {"symbol": ["BTCUSDT"], "interval": ["1m"], "limit": ["200"],
                                     "type": ["LAST_PRICE"], "endTime": ["1732178880000"]}


def test_kline_url_without_end_time_has_no_end_time():
    url = kline_url("https://fapi.bitunix.com", "BTCUSDT", limit=1)

    query = parse_qs(urlsplit(url).query)
    assert "endTime" not in query
    assert query["limit"] == ["1"]


@pytest.mark.parametrize("limit", [0, -1, 201, 1000])
def test_kline_url_limit_out_of_bounds(limit):
    with pytest.raises(ValueError, match="1..200"):
        kline_url("https://fapi.bitunix.com", "BTCUSDT", limit=limit)


# ---- funding times: ISO-8601, epoch s or epoch ms, as numbers or strings ----

NFT_MS = 1775577600000  # 2026-04-07T16:00:00Z


@pytest.mark.parametrize("nft", ["2026-04-07T16:00:00Z", "2026-04-07T16:00:00+00:00",
                                 "2026-04-07T16:00:00.000Z", "2026-04-07T18:00:00+02:00",
                                 NFT_MS // 1000, str(NFT_MS // 1000), NFT_MS, str(NFT_MS),
                                 float(NFT_MS // 1000), f"{NFT_MS / 1000:.3f}"])
def test_funding_times_in_every_format_mean_the_same_instant(nft):
    (info,) = parse_frame(raw(price_frame(nft=nft)))
    assert isinstance(info, FundingInfo) and info.next_funding_ts == NFT_MS


@pytest.mark.parametrize("bad", ["in eight hours", "", "NaN", "inf", -1, 0, "0", True, None,
                                 ["2026-04-07T16:00:00Z"], {"t": 1}, 1.5e20,
                                 "1970-01-01T00:00:10Z", "2200-01-01T00:00:00Z", 1234])
def test_a_funding_time_that_is_no_time_is_a_protocol_error(bad):
    with pytest.raises(ProtocolError, match="nft"):
        parse_frame(raw(price_frame(nft=bad)))


@settings(max_examples=300, deadline=None)
@given(seconds=st.integers(1_420_070_400, 4_102_444_800),
       form=st.sampled_from(["s", "s-str", "ms", "ms-str", "iso"]))
def test_any_funding_second_reads_exactly_in_any_form(seconds, form):
    from datetime import datetime, timezone
    value = {"s": seconds, "s-str": str(seconds), "ms": seconds * 1000,
             "ms-str": str(seconds * 1000),
             "iso": datetime.fromtimestamp(seconds, timezone.utc).isoformat()}[form]
    (info,) = parse_frame(raw(price_frame(ft=value)))
    assert info.funding_ts == seconds * 1000


def test_a_bad_funding_time_is_counted_and_logged_once_per_kind():
    import logging

    from trading.runtime import feed as feed_module
    from trading.runtime.feed import FeedConfig, FrameQueue, MarketFeed
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    feed_module.log.addHandler(handler)
    try:
        feed = MarketFeed(FeedConfig(url="ws://127.0.0.1:9/public/"), FrameQueue())
        for bad in ("soon", "later", "never"):
            assert feed._handle(raw(price_frame(nft=bad)), 1.0) is False
        assert feed._handle(raw(price_frame(ft="whenever")), 1.0) is False
    finally:
        feed_module.log.removeHandler(handler)
    assert feed.stats.parse_errors == 4
    assert feed.stats.parse_error_kinds == {"nft is not a time": 3, "ft is not a time": 1}
    kinds = [r.kind for r in records if r.getMessage() == "feed_frame_rejected_kind"]
    assert kinds == ["nft is not a time", "ft is not a time"]
