"""Load recorded BTC market data (CSV or gzipped CSV) into compact rows for the replay.

Four layouts are recognised from the header (see resources/data/NOTICE.md for the bundled file):

- ``quote_bars``  dYdX 1m trade bars plus bid/ask quote bars:
  ``ts_ms,open,high,low,close,volume,bid_open,bid_high,bid_low,bid_close,bid_size,
  ask_open,ask_high,ask_low,ask_close,ask_size`` (trade columns may be empty together)
- ``quote_ticks`` best bid/ask updates:
  ``ts_ms,bid,ask,bid_size,ask_size[,local_ts_ms,update_id,window]``
- ``trade_ticks`` trades: ``ts_ms,price,qty[,is_buyer_maker,local_ts_ms,window]``
- ``ohlcv``       plain 1m bars: ``ts_ms,open,high,low,close[,volume]`` (ts = the bar's open)

The timestamp column may also be called ``ts``, ``timestamp``, ``time`` or ``open_time``; seconds,
micro- and nanoseconds are scaled to milliseconds, ISO-8601 text is accepted. Any problem raises
``ValueError`` naming the file, the line and the column. Called from any thread; no shared state.
"""
from __future__ import annotations

import csv
import gzip
import json
import io
import math
import statistics
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["MarketData", "load_market_file", "default_replay_file", "KINDS", "COLUMNS",
           "DEFAULT_REPLAY_NAME", "MAX_GAP_MS"]

DEFAULT_REPLAY_NAME = "btc_perp_dydx_1m_quotes_20260101.csv"
MAX_GAP_MS = 60_000  # a longer silence between rows starts a new window

KINDS = ("quote_bars", "quote_ticks", "trade_ticks", "ohlcv")

TRADE_BAR = ("open", "high", "low", "close", "volume")
BID_BAR = ("bid_open", "bid_high", "bid_low", "bid_close", "bid_size")
ASK_BAR = ("ask_open", "ask_high", "ask_low", "ask_close", "ask_size")

# The order of the values in MarketData.rows, per kind.
COLUMNS: dict[str, tuple[str, ...]] = {
    "quote_bars": ("ts_ms",) + TRADE_BAR + BID_BAR + ASK_BAR,
    "quote_ticks": ("ts_ms", "bid", "ask", "bid_size", "ask_size"),
    "trade_ticks": ("ts_ms", "price", "qty", "is_buyer_maker"),
    "ohlcv": ("ts_ms", "open", "high", "low", "close", "volume"),
}

TS_ALIASES = ("ts_ms", "ts", "timestamp", "time", "open_time")
QUOTE_VOLUME_NAMES = ("quote_volume", "volume_quote", "volume_usd", "quote_vol")

_KNOWN = (set(TS_ALIASES) | set(TRADE_BAR) | set(BID_BAR) | set(ASK_BAR)
          | {"bid", "ask", "bid_size", "ask_size", "local_ts_ms", "update_id", "window",
             "price", "qty", "is_buyer_maker"} | set(QUOTE_VOLUME_NAMES))

_NAN = float("nan")
_BOOLS = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}


@dataclass(frozen=True, eq=False)
class MarketData:
    """Rows of one data file, each a tuple of floats in ``COLUMNS[kind]`` order.

    Timestamps are epoch ms (as floats). Missing trade columns of a quote bar are NaN, a missing
    ``is_buyer_maker`` is NaN. ``windows`` are ``(start, end)`` row ranges (end exclusive) of
    contiguous data: split where the ``window`` column changes or rows are > 60 s apart.
    ``volume_is_quote`` is True when the volume column is in USD rather than BTC.
    """

    kind: str
    rows: list
    windows: list = field(default_factory=list)
    source: str = ""
    volume_is_quote: bool = False
    # real depth: per quote row, the snapshot's levels ((bids), (asks)) of (price, size)
    books: list | None = None
    # real trades of the same span: (ts, price, qty, is_buyer_maker) rows, time order
    trades: list | None = None
    depth_source: str = ""  # what the depth beyond the top is: "" (none) or a description

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown market data kind {self.kind!r}; expected one of {KINDS}")
        if not self.windows:
            object.__setattr__(self, "windows", [(0, len(self.rows))] if self.rows else [])

    @property
    def columns(self) -> tuple[str, ...]:
        return COLUMNS[self.kind]

    @property
    def is_bars(self) -> bool:
        return self.kind in ("quote_bars", "ohlcv")

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return (f"MarketData(kind={self.kind!r}, rows={len(self.rows)}, "
                f"windows={len(self.windows)}, source={self.source!r})")


def default_depth_model():
    """The synthetic-depth model calibrated on real books (resources/data/depth_model.json)."""
    from trading.depth_model import DepthModel
    return DepthModel.load(default_replay_file().parent / "depth_model.json")


def default_replay_file() -> Path:
    """Return the bundled replay file (inside a PyInstaller bundle when frozen)."""
    base = getattr(sys, "_MEIPASS", None)
    if base:
        frozen = Path(base) / "resources" / "data" / DEFAULT_REPLAY_NAME
        if frozen.is_file():
            return frozen
    return Path(__file__).resolve().parents[2] / "resources" / "data" / DEFAULT_REPLAY_NAME


class _Bad(Exception):
    """A row problem, located by column; turned into a ValueError with file and line."""

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(column, problem)
        self.column = column
        self.problem = problem


def _open_text(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def load_market_file(path: str | Path) -> MarketData:
    """Read one CSV / CSV.gz file of any supported layout; raise ValueError on any bad input.
    A `.jsonl.gz` depth recording (top-15 books) is a quote-tick replay with its real depth
    and the trades of the same windows (a trade-ticks file beside it)."""
    path = Path(path)
    if path.name.endswith(".jsonl.gz") or path.name.endswith(".jsonl"):
        return load_depth_file(path)
    try:
        fh = _open_text(path)
    except OSError as e:
        raise ValueError(f"{path}: cannot open: {e.strerror or e}") from None
    try:
        with fh:
            return _parse(path, csv.reader(fh))
    except (gzip.BadGzipFile, EOFError, UnicodeDecodeError, csv.Error, OSError) as e:
        raise ValueError(f"{path}: unreadable data: {type(e).__name__}: {e}") from None


def _detect(path: Path, header: list[str]) -> tuple[str, dict[str, int], bool]:
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    index: dict[str, int] = {}
    for j, name in enumerate(names):
        if name and name not in index:
            index[name] = j
    ts_name = next((a for a in TS_ALIASES if a in index), None)
    cols = set(index)
    if {"bid_open", "ask_open"} <= cols or {"bid_close", "ask_close"} <= cols:
        kind, required = "quote_bars", COLUMNS["quote_bars"][1:]
    elif {"bid", "ask"} <= cols:
        kind, required = "quote_ticks", COLUMNS["quote_ticks"][1:]
    elif {"price", "qty"} <= cols:
        kind, required = "trade_ticks", ("price", "qty")
    elif {"open", "high", "low", "close"} <= cols:
        kind, required = "ohlcv", ("open", "high", "low", "close")
    else:
        unknown = [n for n in names if n not in _KNOWN]
        what = (f"unknown column(s) {', '.join(repr(u) for u in unknown)}" if unknown
                else "the columns fit no layout")
        raise ValueError(f"{path}: line 1: unrecognised header {','.join(names)!r}: {what}; "
                         f"expected dYdX quote bars, quote ticks, trade ticks or OHLCV")
    missing = [c for c in required if c not in cols]
    if ts_name is None:
        missing.insert(0, "ts_ms")
    if missing:
        unknown = [n for n in names if n not in _KNOWN]
        extra = f" (unknown column(s): {', '.join(repr(u) for u in unknown)})" if unknown else ""
        raise ValueError(f"{path}: line 1: {kind} header lacks column(s) "
                         f"{', '.join(repr(m) for m in missing)}{extra}")
    volume_is_quote = False
    if kind == "ohlcv" and "volume" not in index:
        qname = next((q for q in QUOTE_VOLUME_NAMES if q in index), None)
        if qname is not None:
            index["volume"] = index[qname]
            volume_is_quote = True
    index["ts_ms"] = index[ts_name]
    return kind, index, volume_is_quote


def _ts_parser(raw: str, header_name: str):
    """Pick how to turn this file's timestamps into epoch ms, from the first data row."""
    try:
        first = float(raw)
    except ValueError:
        first = None
    if first is not None and math.isfinite(first):
        if first < 1e11:
            scale = 1000.0      # seconds
        elif first >= 1e17:
            scale = 1e-6        # nanoseconds
        elif first >= 1e14:
            scale = 1e-3        # microseconds
        else:
            scale = 1.0
        if scale == 1.0:
            return float
        return lambda s: float(s) * scale

    def iso(s: str) -> float:
        dt = datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp() * 1000.0

    try:
        iso(raw)
    except ValueError:
        raise _Bad(header_name, f"not a timestamp: {raw[:40]!r}") from None
    return iso


def _parse(path: Path, reader) -> MarketData:
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"{path}: line 1: empty file, no header") from None
    kind, index, volume_is_quote = _detect(path, header)
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    ts_header = names[index["ts_ms"]]
    columns = COLUMNS[kind]
    window_j = index.get("window")
    rows: list[tuple[float, ...]] = []
    windows: list[tuple[int, int]] = []
    parse_ts = None
    lineno = 1
    prev_ts = -math.inf
    prev_window = None
    win_start = 0
    is_ticks = kind in ("quote_ticks", "trade_ticks")
    row_parser = _ROW_PARSERS[kind](index)
    try:
        for lineno, rec in enumerate(reader, start=2):
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            if parse_ts is None:
                if index["ts_ms"] >= len(rec):
                    raise _Bad(ts_header, "missing value")
                parse_ts = _ts_parser(rec[index["ts_ms"]], ts_header)
            try:
                ts = parse_ts(rec[index["ts_ms"]])
            except (ValueError, IndexError):
                raise _Bad(ts_header, f"not a timestamp: {_cell(rec, index['ts_ms'])!r}") \
                    from None
            if not (ts > 0 and math.isfinite(ts)):
                raise _Bad(ts_header, f"not a positive finite timestamp: "
                                      f"{_cell(rec, index['ts_ms'])!r}")
            ts = float(round(ts))
            if is_ticks:
                if ts < prev_ts:
                    raise _Bad(ts_header, f"time goes backwards ({ts:.0f} < {prev_ts:.0f})")
            elif ts <= prev_ts:
                raise _Bad(ts_header, f"bars not strictly increasing ({ts:.0f} <= {prev_ts:.0f})")
            row = row_parser(rec, ts)
            label = rec[window_j] if window_j is not None and window_j < len(rec) else None
            n = len(rows)
            if n and (ts - prev_ts > MAX_GAP_MS or label != prev_window):
                windows.append((win_start, n))
                win_start = n
            prev_window = label
            prev_ts = ts
            rows.append(row)
    except _Bad as bad:
        raise ValueError(f"{path}: line {lineno}: column {bad.column!r}: {bad.problem}") from None
    if not rows:
        raise ValueError(f"{path}: line {lineno}: no data rows after the header")
    windows.append((win_start, len(rows)))
    if kind == "ohlcv" and not volume_is_quote and "volume" in index:
        volume_is_quote = _looks_like_quote_volume(rows)
    return MarketData(kind=kind, rows=rows, windows=windows, source=str(path),
                      volume_is_quote=volume_is_quote)


def _looks_like_quote_volume(rows: list) -> bool:
    # A 1-minute BTC volume above the BTC price itself can only be a USD amount (FTX files).
    sample = rows[:: max(1, len(rows) // 2000)]
    vols = [r[5] for r in sample if r[5] > 0]
    if not vols:
        return False
    return statistics.median(vols) > statistics.median(r[4] for r in sample)


def _cell(rec: list[str], j: int) -> str:
    return rec[j] if j < len(rec) else ""


def _floats(rec: list[str], idx: list[int], names: tuple[str, ...]) -> list[float]:
    try:
        vals = [float(rec[j]) for j in idx]
    except (ValueError, IndexError):
        for j, name in zip(idx, names):
            raw = _cell(rec, j)
            try:
                float(raw)
            except ValueError:
                raise _Bad(name, f"not a number: {raw[:40]!r}" if raw.strip()
                           else "missing value") from None
        raise
    if not math.isfinite(sum(vals)):
        for v, name in zip(vals, names):
            if not math.isfinite(v):
                raise _Bad(name, f"not finite: {v!r}")
    return vals


def _check_bar(vals: list[float], names: tuple[str, ...], o: int) -> None:
    # vals[o:o+4] = open, high, low, close
    op, hi, lo, cl = vals[o], vals[o + 1], vals[o + 2], vals[o + 3]
    if min(op, hi, lo, cl) <= 0:
        k = min(range(4), key=lambda i: vals[o + i])
        raise _Bad(names[o + k], f"price must be > 0: {vals[o + k]!r}")
    if hi < max(op, cl) or hi < lo:
        raise _Bad(names[o + 1], f"high {hi!r} below open/close/low")
    if lo > min(op, cl):
        raise _Bad(names[o + 2], f"low {lo!r} above open/close")


def _quote_bar_parser(index: dict[str, int]):
    trade_names = TRADE_BAR
    quote_names = BID_BAR + ASK_BAR
    trade_idx = [index[n] for n in trade_names]
    quote_idx = [index[n] for n in quote_names]
    all_names = trade_names + quote_names
    all_idx = trade_idx + quote_idx
    nan5 = [_NAN] * 5

    def parse(rec: list[str], ts: float) -> tuple[float, ...]:
        try:
            vals = _floats(rec, all_idx, all_names)
            trade = vals[:5]
            quote = vals[5:]
        except _Bad as bad:
            if bad.column not in trade_names:
                raise
            cells = [_cell(rec, j).strip() for j in trade_idx]
            if any(cells):
                raise
            trade = nan5
            quote = _floats(rec, quote_idx, quote_names)
        if trade is not nan5:
            _check_bar(trade, trade_names, 0)
            if trade[4] < 0:
                raise _Bad("volume", f"must be >= 0: {trade[4]!r}")
        _check_bar(quote, quote_names, 0)
        _check_bar(quote, quote_names, 5)
        if quote[4] < 0 or quote[9] < 0:
            j = 4 if quote[4] < 0 else 9
            raise _Bad(quote_names[j], f"must be >= 0: {quote[j]!r}")
        return (ts, *trade, *quote)

    return parse


def _quote_tick_parser(index: dict[str, int]):
    names = ("bid", "ask", "bid_size", "ask_size")
    idx = [index[n] for n in names]

    def parse(rec: list[str], ts: float) -> tuple[float, ...]:
        bid, ask, bs, asz = _floats(rec, idx, names)
        if bid <= 0:
            raise _Bad("bid", f"price must be > 0: {bid!r}")
        if ask <= 0:
            raise _Bad("ask", f"price must be > 0: {ask!r}")
        if bid >= ask:
            raise _Bad("ask", f"crossed or locked quote: bid {bid!r} >= ask {ask!r}")
        if bs < 0 or asz < 0:
            raise _Bad("bid_size" if bs < 0 else "ask_size", "size must be >= 0")
        return (ts, bid, ask, bs, asz)

    return parse


def _trade_tick_parser(index: dict[str, int]):
    names = ("price", "qty")
    idx = [index[n] for n in names]
    maker_j = index.get("is_buyer_maker")

    def parse(rec: list[str], ts: float) -> tuple[float, ...]:
        price, qty = _floats(rec, idx, names)
        if price <= 0:
            raise _Bad("price", f"price must be > 0: {price!r}")
        if qty < 0:
            raise _Bad("qty", f"must be >= 0: {qty!r}")
        maker = _NAN
        if maker_j is not None:
            raw = _cell(rec, maker_j).strip().lower()
            if raw:
                maker = _BOOLS.get(raw)
                if maker is None:
                    raise _Bad("is_buyer_maker", f"not a boolean: {raw[:40]!r}")
        return (ts, price, qty, maker)

    return parse


def _ohlcv_parser(index: dict[str, int]):
    has_volume = "volume" in index
    names = TRADE_BAR if has_volume else TRADE_BAR[:4]
    idx = [index[n] for n in names]

    def parse(rec: list[str], ts: float) -> tuple[float, ...]:
        vals = _floats(rec, idx, names)
        _check_bar(vals, names, 0)
        if has_volume:
            if vals[4] < 0:
                raise _Bad(names[4], f"must be >= 0: {vals[4]!r}")
        else:
            vals.append(0.0)
        return (ts, *vals)

    return parse


_ROW_PARSERS = {
    "quote_bars": _quote_bar_parser,
    "quote_ticks": _quote_tick_parser,
    "trade_ticks": _trade_tick_parser,
    "ohlcv": _ohlcv_parser,
}


def load_depth_file(path: Path, trades_path: Path | None = None) -> MarketData:
    """Real top-15 books, one JSON object a line (`ts_ms`, `window`, `bids`, `asks` as
    [price, size] strings, best first), as quote ticks with their books; trades from
    `trades_path` (default: a `*trade_ticks*.csv*` file beside it) within the same windows."""
    from trading.book import Book
    from trading.model import ValidationError
    path = Path(path)
    rows, books, windows, names = [], [], [], []
    try:
        fh = gzip.open(path, "rt", encoding="utf-8") if path.name.endswith(".gz") \
            else open(path, encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{path}: cannot open: {e.strerror or e}") from None
    try:
        with fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    ts = int(d["ts_ms"])
                    bids = tuple((float(p), float(s)) for p, s in d["bids"])
                    asks = tuple((float(p), float(s)) for p, s in d["asks"])
                    Book(ts=ts, bids=bids, asks=asks)  # validated like a pushed book
                except (ValueError, KeyError, TypeError, ValidationError) as e:
                    raise ValueError(f"{path}: line {n}: not a depth snapshot: "
                                     f"{type(e).__name__}: {e}") from None
                if rows and ts < rows[-1][0]:
                    raise ValueError(f"{path}: line {n}: time goes backwards")
                w = str(d.get("window", ""))
                if not names or w != names[-1] or ts - rows[-1][0] > 60_000:
                    if rows:
                        windows.append((windows[-1][1] if windows else 0, len(rows)))
                    names.append(w)
                rows.append((float(ts), bids[0][0], asks[0][0], bids[0][1], asks[0][1]))
                books.append((bids, asks))
    except (gzip.BadGzipFile, EOFError, UnicodeDecodeError, OSError) as e:
        raise ValueError(f"{path}: unreadable data: {type(e).__name__}: {e}") from None
    if not rows:
        raise ValueError(f"{path}: no depth snapshots")
    windows.append((windows[-1][1] if windows else 0, len(rows)))
    if trades_path is None:
        near = sorted(path.parent.glob("*trade_ticks*.csv*"))
        trades_path = near[0] if near else None
    trades = []
    if trades_path is not None:
        t = load_market_file(trades_path)
        if t.kind != "trade_ticks":
            raise ValueError(f"{trades_path}: not trade ticks")
        spans = [(rows[lo][0], rows[hi - 1][0]) for lo, hi in windows]
        trades = [r for r in t.rows if any(a <= r[0] <= b for a, b in spans)]
    return MarketData("quote_ticks", rows, windows, source=str(path), books=books,
                      trades=trades or None,
                      depth_source=f"real depth ({path.name}: top 15 levels)")
