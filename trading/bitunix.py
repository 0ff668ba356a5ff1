"""Bitunix public futures websocket protocol as pure functions.

Builds the client's frames (subscribe / unsubscribe / ping) and parses every server push into
domain events. See BITUNIX_PROTOCOL.md: numbers arrive as strings, klines have no open-time and
no closed flag, unknown `op` values are ignored. A frame that cannot be trusted raises
`ProtocolError`; the caller counts it and goes on.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Iterable

import orjson

from trading.book import Book
from trading.model import (FundingInfo, KlineUpdate, Pong, Quote, TradeTick, ValidationError)

PUBLIC_WS_URL = "wss://fapi.bitunix.com/public/"
REST_BASE_URL = "https://fapi.bitunix.com"
KLINE_PATH = "/api/v1/futures/market/kline"
MAX_SUBSCRIPTIONS = 300
MAX_CLIENT_MSGS_PER_S = 5

# depth_book15, not depth_book5: an order of 0.1 BTC and more often walks past five levels when
# the top is thin (the real Binance books shipped here hold a median 6.5 BTC on 15 ask levels,
# as little as 0.056), and a 15-level snapshot costs one push like a 5-level one. depth_book1
# stays: the freshest best bid/ask. trade: the prints that fill resting limit orders.
DEFAULT_CHANNELS = ("market_kline_1min", "depth_book1", "depth_book15", "price", "trade")
QUIET_CHANNELS = ("trade",)  # may rightly be silent for a while: no per-channel rebuild


def short_channel(ch: str) -> str:
    """A channel's name in a status line: "kline", "book", "price"."""
    return {"market_kline_1min": "kline", "depth_book1": "book",
            "depth_book15": "depth"}.get(ch, ch)


class ProtocolError(ValueError):
    """A frame that is malformed, mistyped or carries implausible values."""


def subscribe_message(subscriptions: Iterable[tuple[str, str]]) -> str:
    """Build one subscribe frame carrying every (symbol, channel) pair."""
    args = [{"symbol": s, "ch": ch} for s, ch in sorted(set(subscriptions))]
    if not args:
        raise ValueError("nothing to subscribe to")
    if len(args) > MAX_SUBSCRIPTIONS:
        raise ValueError(f"{len(args)} subscriptions exceed Bitunix's {MAX_SUBSCRIPTIONS}")
    return orjson.dumps({"op": "subscribe", "args": args}).decode()


def unsubscribe_message(subscriptions: Iterable[tuple[str, str]]) -> str:
    """Build one unsubscribe frame for the given (symbol, channel) pairs."""
    args = [{"symbol": s, "ch": ch} for s, ch in sorted(set(subscriptions))]
    return orjson.dumps({"op": "unsubscribe", "args": args}).decode()


def ping_message(now_s: int) -> str:
    """Build the JSON keep-alive ping; `now_s` is Unix seconds."""
    return orjson.dumps({"op": "ping", "ping": int(now_s)}).decode()


# ---- parsing ----

def _num(value, name: str) -> float:
    # Bitunix sends numbers as strings; accept real numbers too, never bools/containers.
    if isinstance(value, str):
        try:
            out = float(value)
        except ValueError:
            raise ProtocolError(f"{name} is not numeric: {value[:40]!r}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out = float(value)
    else:
        raise ProtocolError(f"{name} has wrong type {type(value).__name__}")
    if not math.isfinite(out):
        raise ProtocolError(f"{name} is not finite: {value!r}")
    return out


def _ts(value, name: str = "ts") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ProtocolError(f"{name} has wrong type {type(value).__name__}")
    try:
        out = int(float(value))
    except (ValueError, OverflowError):
        raise ProtocolError(f"{name} is not a timestamp: {value!r}") from None
    if out <= 0:
        raise ProtocolError(f"{name} must be > 0: {value!r}")
    return out


# epoch values in seconds are below 1e11 (year 5138), in milliseconds from 1e11 (1973) on; a
# funding time outside 2015..2100 is no funding time at all
_EPOCH_S_MAX = 100_000_000_000
_FUNDING_MS_RANGE = (1_420_070_400_000, 4_102_444_800_000)


def _iso_ms(value, name: str) -> int:
    """A time in epoch ms from ISO-8601, epoch seconds or epoch milliseconds (number or string).

    The unit of a bare number is told by its size, never assumed: seconds read as
    milliseconds would put every funding time in 1970. Anything else is a ProtocolError.
    """
    if isinstance(value, bool) or value is None:
        raise ProtocolError(f"{name} has wrong type {type(value).__name__}")
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii():
            raise ProtocolError(f"{name} is not a time: {value[:40]!r}")
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is None:
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ProtocolError(f"{name} is not a time: {value[:40]!r}") from None
            if dt.tzinfo is None:  # Bitunix times are UTC; never read them as local time
                dt = dt.replace(tzinfo=timezone.utc)
            return int(round(dt.timestamp() * 1000))
        value = number
    if not isinstance(value, (int, float)):
        raise ProtocolError(f"{name} has wrong type {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ProtocolError(f"{name} is not a time: {value!r}")
    return int(round(value * 1000)) if value < _EPOCH_S_MAX else int(round(value))


def _funding_ms(value, name: str) -> int:
    out = _iso_ms(value, name)
    lo, hi = _FUNDING_MS_RANGE
    if not lo <= out <= hi:
        raise ProtocolError(f"{name} is not a funding time (outside 2015..2100): {value!r}")
    return out


def _obj(value, name: str) -> dict:
    if not isinstance(value, dict):
        raise ProtocolError(f"{name} is not an object")
    return value


def _parse_kline(frame: dict, ts: int, symbol: str) -> list:
    d = _obj(frame.get("data"), "data")
    try:
        return [KlineUpdate(ts=ts, open=_num(d.get("o"), "o"), high=_num(d.get("h"), "h"),
                            low=_num(d.get("l"), "l"), close=_num(d.get("c"), "c"),
                            base_vol=_num(d.get("b", "0"), "b"),
                            quote_vol=_num(d.get("q", "0"), "q"), symbol=symbol)]
    except ValidationError as e:
        raise ProtocolError(str(e)) from None


def _level(levels, name: str) -> tuple[float, float]:
    if not isinstance(levels, list) or not levels:
        raise ProtocolError(f"{name} has no levels")
    top = levels[0]
    if not isinstance(top, list) or len(top) < 2:
        raise ProtocolError(f"{name}[0] is not [price, size]")
    return _num(top[0], f"{name} price"), _num(top[1], f"{name} size")


def _parse_depth(frame: dict, ts: int, symbol: str) -> list:
    d = _obj(frame.get("data"), "data")
    bid, bid_size = _level(d.get("b"), "b")
    ask, ask_size = _level(d.get("a"), "a")
    try:
        return [Quote(ts=ts, bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size,
                      symbol=symbol)]
    except ValidationError as e:
        raise ProtocolError(str(e)) from None


def _levels(levels, name: str) -> tuple:
    if not isinstance(levels, list) or not levels:
        raise ProtocolError(f"{name} has no levels")
    out = []
    for i, lvl in enumerate(levels):
        if not isinstance(lvl, list) or len(lvl) < 2:
            raise ProtocolError(f"{name}[{i}] is not [price, size]")
        out.append((_num(lvl[0], f"{name}[{i}] price"), _num(lvl[1], f"{name}[{i}] size")))
    return tuple(out)


def _parse_book(frame: dict, ts: int, symbol: str) -> list:
    """depth_book5 / depth_book15: each push a whole snapshot of the top levels. The top
    level is the quote; the snapshot is a Book (validated: best first, uncrossed, sizes > 0)."""
    d = _obj(frame.get("data"), "data")
    bids, asks = _levels(d.get("b"), "b"), _levels(d.get("a"), "a")
    try:
        book = Book(ts=ts, bids=bids, asks=asks, symbol=symbol)
        quote = Quote(ts=ts, bid=bids[0][0], ask=asks[0][0], bid_size=bids[0][1],
                      ask_size=asks[0][1], symbol=symbol)
    except ValidationError as e:
        raise ProtocolError(str(e)) from None
    return [quote, book]


def _parse_tickers(frame: dict, ts: int) -> list:
    rows = frame.get("data")
    if not isinstance(rows, list):
        raise ProtocolError("tickers data is not a list")
    out = []
    for row in rows:
        row = _obj(row, "tickers row")
        if "bd" not in row or "ak" not in row:
            continue
        try:
            out.append(Quote(ts=ts, bid=_num(row["bd"], "bd"), ask=_num(row["ak"], "ak"),
                             bid_size=_num(row.get("bv", "0"), "bv"),
                             ask_size=_num(row.get("av", "0"), "av"),
                             symbol=str(row.get("s", ""))))
        except ValidationError as e:
            raise ProtocolError(str(e)) from None
    return out


def _parse_trades(frame: dict, ts: int, symbol: str) -> list:
    rows = frame.get("data")
    if not isinstance(rows, list):
        raise ProtocolError("trade data is not a list")
    out = []
    for row in rows:
        row = _obj(row, "trade row")
        t = _iso_ms(row["t"], "t") if "t" in row else ts
        try:
            out.append(TradeTick(ts=t, price=_num(row.get("p"), "p"), qty=_num(row.get("v"), "v"),
                                 side=str(row.get("s", "")), symbol=symbol))
        except ValidationError as e:
            raise ProtocolError(str(e)) from None
    return out


def _parse_price(frame: dict, ts: int, symbol: str) -> list:
    d = _obj(frame.get("data"), "data")
    try:
        return [FundingInfo(ts=ts, index_px=_num(d.get("ip"), "ip"), mark_px=_num(d.get("mp"), "mp"),
                            funding_rate=_num(d.get("fr"), "fr"),
                            funding_ts=_funding_ms(d.get("ft"), "ft"),
                            next_funding_ts=_funding_ms(d.get("nft"), "nft"), symbol=symbol)]
    except ValidationError as e:
        raise ProtocolError(str(e)) from None


def parse_frame(raw: str | bytes) -> list:
    """Parse one websocket text frame into events; [] for frames that carry nothing for us.

    Raises ProtocolError for malformed JSON, wrong types, NaN, non-positive or crossed prices.
    """
    return parse_frame_ch(raw)[1]


def parse_frame_ch(raw: str | bytes) -> tuple[str | None, list]:
    """Parse one frame into (its channel, or None for op frames, and its events)."""
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(f"invalid JSON: {e}") from None
    if not isinstance(frame, dict):
        raise ProtocolError(f"frame is a {type(frame).__name__}, not an object")
    op = frame.get("op")
    if op is not None:
        if op == "ping" and "pong" in frame:
            server_s = _ts(frame.get("ping", frame["pong"]), "ping")
            return None, [Pong(ts=server_s * 1000, ping=_ts(frame["pong"], "pong"),
                               pong=server_s)]
        return None, []  # connect greeting, subscribe acks and unknown ops
    ch = frame.get("ch")
    if ch is None:
        return None, []
    if not isinstance(ch, str):
        raise ProtocolError("ch is not a string")
    ts = _ts(frame.get("ts"))
    symbol = frame.get("symbol", "")
    if not isinstance(symbol, str):
        raise ProtocolError("symbol is not a string")
    if ch.startswith("market_kline_") or ch.startswith("mark_kline_"):
        if ch != "market_kline_1min":
            return ch, []
        return ch, _parse_kline(frame, ts, symbol)
    if ch == "depth_book1":
        return ch, _parse_depth(frame, ts, symbol)
    if ch in ("depth_book5", "depth_book15"):
        return ch, _parse_book(frame, ts, symbol)
    if ch == "tickers":
        return ch, _parse_tickers(frame, ts)
    if ch == "trade":
        return ch, _parse_trades(frame, ts, symbol)
    if ch == "price":
        return ch, _parse_price(frame, ts, symbol)
    return ch, []  # channels we do not consume (ticker without bid/ask, depth_books deltas)


REST_LAYOUT_DOCUMENTED = "documented"  # baseVol = USDT amount, quoteVol = coin amount
REST_LAYOUT_BY_NAME = "by-name"  # baseVol = coin amount, quoteVol = USDT amount
REST_LAYOUT_UNKNOWN = "unknown"  # no row had both volumes > 0: nothing to tell them apart


def rest_volume_layout(rows: list[dict]) -> str:
    """Which of `baseVol` / `quoteVol` carries the coin amount, told by evidence.

    Bitunix's documented example row has `"baseVol":"60000"` (USDT) and `"quoteVol":"1"` (coin)
    for a 60,000 candle: the reverse of the names. A USDT amount is about coin x price, so
    for every row with both volumes > 0 the ratio of one to the other says which is which
    (within a factor of 2 of the candle's close). The majority of rows decides; rows that fit
    neither reading are not evidence. Raises ProtocolError when the rows contradict each other.
    """
    documented = by_name = 0
    for r in rows:
        base, quote, close = r["base_vol_field"], r["quote_vol_field"], r["close"]
        if base <= 0 or quote <= 0:
            continue
        if 0.5 <= (base / quote) / close <= 2.0:
            documented += 1
        elif 0.5 <= (quote / base) / close <= 2.0:
            by_name += 1
    if documented and by_name:
        raise ProtocolError(f"kline volumes contradict each other: {documented} rows read "
                            f"baseVol as USDT, {by_name} as coin")
    if documented:
        return REST_LAYOUT_DOCUMENTED
    if by_name:
        return REST_LAYOUT_BY_NAME
    return REST_LAYOUT_UNKNOWN


def parse_rest_klines_layout(body: bytes | str) -> tuple[list[dict], str]:
    """Parse a REST kline response into candles oldest first, and the volume layout seen.

    Each candle is a dict ts/open/high/low/close/volume/quote_volume, `volume` in coin (BTC)
    as the websocket's `b`, `quote_volume` in USDT, whichever REST field carried them.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(f"kline response is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ProtocolError("kline response is not an object")
    if doc.get("code") != 0:
        raise ProtocolError(f"kline request failed: code={doc.get('code')!r} msg={doc.get('msg')!r}")
    rows = doc.get("data")
    if not isinstance(rows, list):
        raise ProtocolError("kline response has no data list")
    out = []
    for row in rows:
        row = _obj(row, "kline row")
        c = {"ts": _ts(row.get("time"), "time"), "open": _num(row.get("open"), "open"),
             "high": _num(row.get("high"), "high"), "low": _num(row.get("low"), "low"),
             "close": _num(row.get("close"), "close"),
             "base_vol_field": _num(row.get("baseVol", 0), "baseVol"),
             "quote_vol_field": _num(row.get("quoteVol", 0), "quoteVol")}
        if min(c["open"], c["high"], c["low"], c["close"]) <= 0:
            raise ProtocolError("kline row has a non-positive price")
        if c["low"] > min(c["open"], c["close"]) or c["high"] < max(c["open"], c["close"]):
            raise ProtocolError("kline row violates low/high")
        if c["base_vol_field"] < 0 or c["quote_vol_field"] < 0:
            raise ProtocolError("kline row has a negative volume")
        out.append(c)
    layout = rest_volume_layout(out)
    for c in out:
        base, quote = c.pop("base_vol_field"), c.pop("quote_vol_field")
        if layout == REST_LAYOUT_DOCUMENTED:
            c["volume"], c["quote_volume"] = quote, base
        elif layout == REST_LAYOUT_BY_NAME:
            c["volume"], c["quote_volume"] = base, quote
        else:  # no row has both volumes: one alone cannot say its unit, so none is used
            c["volume"] = c["quote_volume"] = 0.0
    out.sort(key=lambda c: c["ts"])
    return out, layout


def parse_rest_klines(body: bytes | str) -> list[dict]:
    """Parse a REST kline response into candles oldest first (see parse_rest_klines_layout)."""
    return parse_rest_klines_layout(body)[0]


def kline_url(base: str, symbol: str, end_ts: int | None = None, limit: int = 200) -> str:
    """Build the REST 1m kline URL (newest first, at most 200 rows)."""
    if not 1 <= limit <= 200:
        raise ValueError("limit must be 1..200")
    url = f"{base.rstrip('/')}{KLINE_PATH}?symbol={symbol}&interval=1m&limit={limit}&type=LAST_PRICE"
    if end_ts is not None:
        url += f"&endTime={int(end_ts)}"
    return url
