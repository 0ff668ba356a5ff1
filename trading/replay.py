"""Turn recorded market data into a deterministic stream of Bitunix public push frames.

Pure: no sockets, threads, files or wall clock. The same ``(data, seed, start)`` always gives the
same frames. Every minute draws its randomness from its own seeded generator, so any minute
(and the REST history of closed candles) can be rebuilt without replaying what came before.

Frames follow BITUNIX_PROTOCOL.md: ``{"ch", "symbol", "ts", "data"}`` with numbers as strings.
Channels produced: ``depth_book1``, ``market_kline_1min`` (every ``kline_every_ms`` of data
time, the forming candle), ``trade``, ``tickers`` and ``price`` (both every second).

Per kind of data (see trading/runtime/datafiles.py):

- quote bars (dYdX): ``quotes_per_minute`` quotes per minute at seeded times, walking each side
  from its open through its high and low (seeded order) to its close, clamped so that the ask
  stays at least one 0.1 tick above the bid. Klines and trades follow a seeded path through the
  trade bar's open/high/low/close; the last kline push of a minute is exactly the bar. A minute
  without a trade bar gets a kline from the quote mids with zero volume and no trades.
- ohlcv: the same kline/trade path; quotes are that path's price -/+ ``spread_usd / 2``.
- quote ticks: every tick is a ``depth_book1`` push; klines from the mid, no trades.
- trade ticks: trades sharing a timestamp form one ``trade`` push; quotes are the last price
  -/+ ``spread_usd / 2``; klines from the trades.

For tick data the last kline push of each minute (at most ``kline_every_ms`` before the minute
ends) already includes the minute's remaining ticks, so that it equals the closed candle the
REST history reports for that minute.
"""
from __future__ import annotations

import bisect
import math
import random
import weakref
from collections import deque
from datetime import datetime, timezone
from math import gcd
from typing import Iterator

import orjson

__all__ = ["Timeline", "build_timeline", "minute_count", "TICK", "MAX_HISTORY"]

TICK = 0.1                      # Bitunix BTCUSDT price tick: the smallest bid/ask distance
MINUTE_MS = 60_000
DAY_MS = 86_400_000
FUNDING_PERIOD_MS = 8 * 3_600_000   # funding at 00:00, 08:00 and 16:00 UTC
FUNDING_RATE = "0.0001"
MAX_HISTORY = 200
_EPS = 1e-9

_dumps = orjson.dumps


def _px(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _px_cached():
    """A `_px` that remembers its answers: prices repeat on a tick grid, formatting is slow."""
    cache: dict[float, str] = {}
    get = cache.get

    def px(x: float) -> str:
        out = get(x)
        if out is None:
            if len(cache) > 100_000:
                cache.clear()
            out = cache[x] = f"{x:.2f}".rstrip("0").rstrip(".")
        return out

    return px


def _vol(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".")


def _size(x: float) -> str:
    return f"{x:.4f}".rstrip("0").rstrip(".")


def _num(x: float) -> float | int:
    r = round(x, 2)
    return int(r) if r == int(r) else r


def _iso_s(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- per-data caches

_TICK_MINUTES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _tick_minutes(data) -> list[tuple]:
    """Closed 1m candles of tick data, one per (window, minute) that holds ticks.

    Each entry: (minute_ts, o, h, l, c, base_vol, quote_vol, row_lo, row_hi, window_index).
    The candle opens at the price in force when the minute starts (the previous tick of the same
    window), else at the minute's first tick.
    """
    cached = _TICK_MINUTES.get(data)
    if cached is not None:
        return cached
    rows = data.rows
    trades = data.kind == "trade_ticks"
    out: list[tuple] = []
    for w, (lo, hi) in enumerate(data.windows):
        prev_px = None
        m = None
        for i in range(lo, hi):
            r = rows[i]
            ts = int(r[0])
            if trades:
                px = r[1]
                qty = r[2]
            else:
                px = (r[1] + r[2]) / 2.0
                qty = 0.0
            mm = ts - ts % MINUTE_MS
            if mm != m:
                if m is not None:
                    out.append((m, o, h, l, c, b, q, start, i, w))
                m = mm
                o = prev_px if prev_px is not None else px
                h = l = c = o
                b = q = 0.0
                start = i
            if px > h:
                h = px
            if px < l:
                l = px
            c = px
            b += qty
            q += qty * px
            prev_px = px
        if m is not None:
            out.append((m, o, h, l, c, b, q, start, hi, w))
    _TICK_MINUTES[data] = out
    return out


def minute_count(data) -> int:
    """Return how many replay minutes `data` holds (bars: rows; ticks: minutes with ticks)."""
    if data.kind in ("quote_bars", "ohlcv"):
        return len(data.rows)
    return len(_tick_minutes(data))


def _price_decimals(data) -> int:
    rows = data.rows
    cols = {"quote_bars": (1, 4, 6, 9, 11, 14), "ohlcv": (1, 2, 3, 4),
            "quote_ticks": (1, 2), "trade_ticks": (1,)}[data.kind]
    decimals = 0
    for r in rows[:: max(1, len(rows) // 3000)]:
        for j in cols:
            x = r[j]
            if x != x:
                continue
            if decimals < 1 and abs(x - round(x)) > 1e-7:
                decimals = 1
            if decimals < 2 and abs(x - round(x, 1)) > 1e-7:
                return 2
    return decimals


class _Rolling24h:
    """Rolling 24 h open/high/low/volume over closed minutes plus the forming one."""

    __slots__ = ("win", "maxq", "minq", "sum_b", "sum_q")

    def __init__(self) -> None:
        self.win: deque = deque()
        self.maxq: deque = deque()
        self.minq: deque = deque()
        self.sum_b = 0.0
        self.sum_q = 0.0

    def push(self, m: int, o: float, h: float, l: float, b: float, q: float) -> None:
        self.win.append((m, o, b, q))
        maxq, minq = self.maxq, self.minq
        while maxq and maxq[-1][1] <= h:
            maxq.pop()
        maxq.append((m, h))
        while minq and minq[-1][1] >= l:
            minq.pop()
        minq.append((m, l))
        self.sum_b += b
        self.sum_q += q

    def evict(self, now_minute: int) -> None:
        cutoff = now_minute - DAY_MS
        win = self.win
        while win and win[0][0] <= cutoff:
            _, _, b, q = win.popleft()
            self.sum_b -= b
            self.sum_q -= q
        while self.maxq and self.maxq[0][0] <= cutoff:
            self.maxq.popleft()
        while self.minq and self.minq[0][0] <= cutoff:
            self.minq.popleft()
        if not win:
            self.sum_b = self.sum_q = 0.0

    def stats(self, o: float, h: float, l: float, b: float, q: float):
        if self.win:
            o = self.win[0][1]
            h = max(h, self.maxq[0][1])
            l = min(l, self.minq[0][1])
            b += max(self.sum_b, 0.0)
            q += max(self.sum_q, 0.0)
        return o, h, l, b, q


def _funding_strings(ts: int) -> tuple[str, str]:
    ft = ts - ts % FUNDING_PERIOD_MS
    return _iso_s(ft), _iso_s(ft + FUNDING_PERIOD_MS)


# ---------------------------------------------------------------- the timeline

class Timeline:
    """A lazy, replayable stream of ``(data_ts_ms, frame_dict)`` in data-time order.

    Iterate it (any number of times, from any thread) for dicts, or call
    :meth:`iter_frames_bytes` for orjson-encoded frames. ``history`` serves the REST klines.
    """

    def __init__(self, data, *, symbol: str = "BTCUSDT", seed: int = 0,
                 start_index: int | None = None, start_ts: int | None = None,
                 spread_usd: float = 1.0, quotes_per_minute: int = 20,
                 kline_every_ms: int = 500, depth_model=None) -> None:
        if not data.rows:
            raise ValueError("no market data rows to replay")
        if not isinstance(symbol, str) or not symbol:
            raise ValueError("symbol must be a non-empty string")
        if not (isinstance(kline_every_ms, int) and 10 <= kline_every_ms <= MINUTE_MS
                and MINUTE_MS % kline_every_ms == 0):
            raise ValueError(f"kline_every_ms must divide 60000 and be >= 10, "
                             f"got {kline_every_ms!r}")
        if not (isinstance(quotes_per_minute, int) and 1 <= quotes_per_minute <= 10_000):
            raise ValueError(f"quotes_per_minute must be 1..10000, got {quotes_per_minute!r}")
        spread_usd = float(spread_usd)
        if not (math.isfinite(spread_usd) and spread_usd >= 0):
            raise ValueError(f"spread_usd must be >= 0, got {spread_usd!r}")
        self.data = data
        self.depth_model = depth_model  # synthetic depth_book15 where the data has no depth
        self.kind = data.kind
        self.symbol = symbol
        self.seed = int(seed)
        self.spread_usd = max(spread_usd, TICK)
        self.quotes_per_minute = quotes_per_minute
        self.kline_every_ms = kline_every_ms
        self._bars = data.kind in ("quote_bars", "ohlcv")
        self._decimals = _price_decimals(data)
        self._closed_cache: dict[int, tuple] = {}
        self._quote_cache: dict[int, list] = {}
        if self._bars:
            self._minute_ts = [int(r[0]) - int(r[0]) % MINUTE_MS for r in data.rows]
            self._tick_minutes = None
        else:
            self._tick_minutes = _tick_minutes(data)
            self._minute_ts = [t[0] for t in self._tick_minutes]
        n = len(self._minute_ts)
        if start_index is not None and start_ts is not None:
            raise ValueError("give start_index or start_ts, not both")
        if start_ts is not None:
            start_index = bisect.bisect_right(self._minute_ts, int(start_ts) - MINUTE_MS)
            if start_index >= n:
                raise ValueError(f"start_ts {start_ts} is after the data ends")
        elif start_index is None:
            if n > MAX_HISTORY:
                start_index = random.Random(self.seed).randrange(MAX_HISTORY,
                                                                 max(MAX_HISTORY + 1, n - 60))
            else:
                start_index = 0
        if isinstance(start_index, bool) or not isinstance(start_index, int) \
                or not 0 <= start_index < n:
            raise ValueError(f"start_index must be 0..{n - 1}, got {start_index!r}")
        self.start_index = start_index
        # The merged schedule of kline steps and whole seconds inside one minute.
        e = kline_every_ms
        offsets = sorted(set(range(0, MINUTE_MS, e)) | set(range(0, MINUTE_MS, 1000)))
        self._grid = [(off, off // e if off % e == 0 else -1, off % 1000 == 0)
                      for off in offsets]
        self._steps = MINUTE_MS // e
        self._last_step_off = MINUTE_MS - e
        if self._bars:
            self.start_ts = self._minute_ts[start_index]
            self.end_ts = self._minute_ts[-1] + offsets[-1]
        else:
            m = self._tick_minutes[start_index]
            first_ts = int(data.rows[m[7]][0])
            w_lo = data.windows[m[9]][0]
            self.start_ts = first_ts - first_ts % e if m[7] == w_lo else m[0]
            self.end_ts = int(data.rows[-1][0])

    # ---- public API

    @property
    def minutes(self) -> int:
        """Number of minutes in the data (history included)."""
        return len(self._minute_ts)

    def minute_ts(self, index: int) -> int:
        """Return the open time (epoch ms) of minute `index`."""
        return self._minute_ts[index]

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        base = self._iter_bars() if self._bars else self._iter_ticks()
        books = getattr(self.data, "books", None)
        trades = getattr(self.data, "trades", None)
        if books is None and self.depth_model is None and not trades:
            return base
        return self._with_depth_and_trades(base, books, trades)

    @property
    def depth_source(self) -> str:
        """What the depth_book15 pushes of this replay are, in words."""
        if getattr(self.data, "books", None) is not None:
            return self.data.depth_source
        if self.depth_model is not None:
            return "synthetic beyond the top level (calibrated model); the top is the real quote"
        return "top of book only"

    def _with_depth_and_trades(self, base, books, trades):
        """After each best bid/ask push, the depth_book15 push of the same instant: the
        recorded book, or the real top plus modelled levels; real trades merged in time."""
        sym = self.symbol
        by_ts = {}
        if books is not None:
            for r, bk in zip(self.data.rows, books):
                by_ts[int(r[0])] = bk
        rng = random.Random(self.seed * 7919 + 15)
        tick = 10.0 ** -self._decimals if self._decimals else 1.0
        px, size = _px_cached(), _size
        model = self.depth_model
        ti = 0
        if trades:
            ti = bisect.bisect_left([t[0] for t in trades], self.start_ts)
        nt = len(trades) if trades else 0
        for ts, frame in base:
            while ti < nt and trades[ti][0] <= ts:
                t = trades[ti]
                batch = []
                t_ts = t[0]
                while ti < nt and trades[ti][0] == t_ts:
                    t = trades[ti]
                    side = "sell" if t[3] == 1.0 else "buy"
                    batch.append({"t": _iso_s(int(t[0])), "p": px(t[1]), "v": _vol(t[2]),
                                  "s": side})
                    ti += 1
                yield int(t_ts), {"ch": "trade", "symbol": sym, "ts": int(t_ts),
                                  "data": batch}
            yield ts, frame
            if frame.get("ch") != "depth_book1":
                continue
            d = frame["data"]
            real = by_ts.get(ts)
            if real is not None:
                bids, asks = real
            elif model is not None:
                bid, bsz = float(d["b"][0][0]), float(d["b"][0][1]) or 0.001
                ask, asz = float(d["a"][0][0]), float(d["a"][0][1]) or 0.001
                bids = model.levels(bid, bsz, True, tick, rng)
                asks = model.levels(ask, asz, False, tick, rng)
            else:
                continue
            yield ts, {"ch": "depth_book15", "symbol": sym, "ts": ts,
                       "data": {"b": [[px(p), size(s)] for p, s in bids],
                                "a": [[px(p), size(s)] for p, s in asks]}}

    def iter_frames_bytes(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(data_ts_ms, frame_json_bytes)``: the same frames, pre-serialised."""
        dumps = _dumps
        for ts, frame in self:
            yield ts, dumps(frame)

    def history(self, end_ts: int, limit: int = MAX_HISTORY, *, start_ts: int | None = None,
                interval_min: int = 1, layout: str = "documented") -> list[dict]:
        """Return up to `limit` (max 200) klines of `interval_min` minutes, newest first, from
        the closed 1m klines before `end_ts` (and at or after `start_ts`), as Bitunix's REST
        rows. `layout` "documented" writes the USDT amount in `baseVol` and the coin amount in
        `quoteVol`, as Bitunix's documentation shows; "by-name" the other way round."""
        if layout not in ("documented", "by-name"):
            raise ValueError(f"layout must be 'documented' or 'by-name', not {layout!r}")
        limit = max(0, min(int(limit), MAX_HISTORY))
        span = MINUTE_MS * int(interval_min)
        hi = bisect.bisect_right(self._minute_ts, int(end_ts) - MINUTE_MS)
        buckets: list[list] = []  # newest first: [start, o, h, l, c, base, quote]
        for i in range(hi - 1, -1, -1):
            m, o, h, l, c, b, q = self.closed_kline(i)
            if start_ts is not None and m < start_ts:
                break
            start = m - m % span
            if buckets and buckets[-1][0] == start:
                bk = buckets[-1]  # walking back in time: this minute opened the bucket
                bk[1], bk[2], bk[3] = o, max(bk[2], h), min(bk[3], l)
                bk[5] += b
                bk[6] += q
                continue
            if len(buckets) == limit:
                break
            buckets.append([start, o, h, l, c, b, q])
        out = []
        for start, o, h, l, c, b, q in buckets:
            usdt, coin = _px(q), _vol(b)
            out.append({"open": _num(o), "high": _num(h), "low": _num(l), "close": _num(c),
                        "time": start,
                        "quoteVol": coin if layout == "documented" else usdt,
                        "baseVol": usdt if layout == "documented" else coin,
                        "type": "LAST_PRICE"})
        return out

    def closed_kline(self, index: int) -> tuple:
        """Return minute `index`'s final candle: (minute_ts, o, h, l, c, base_vol, quote_vol)."""
        if not self._bars:
            t = self._tick_minutes[index]
            return t[:7]
        hit = self._closed_cache.get(index)
        if hit is not None:
            return hit
        row = self.data.rows[index]
        m = self._minute_ts[index]
        if row[1] == row[1]:
            o, h, l, c = row[1], row[2], row[3], row[4]
            b, q = self._bar_volumes(row)
        else:
            mids = [(bid + ask) / 2.0 for _, bid, ask, _, _ in self._quote_path(index)]
            o, h, l, c = mids[0], max(mids), min(mids), mids[-1]
            b = q = 0.0
        out = (m, o, h, l, c, b, q)
        if len(self._closed_cache) > 4096:
            self._closed_cache.clear()
        self._closed_cache[index] = out
        return out

    # ---- bars

    def _rng(self, index: int, salt: int) -> random.Random:
        return random.Random((self.seed * 1_000_003 + self._minute_ts[index] // MINUTE_MS) * 8
                             + salt)

    def _bar_volumes(self, row) -> tuple[float, float]:
        o, h, l, c, v = row[1], row[2], row[3], row[4], row[5]
        typical = (o + h + l + c) / 4.0
        if self.data.volume_is_quote:
            return round(v / typical, 6), round(v, 2)
        return round(v, 6), round(v * typical, 2)

    def _quote_offsets(self, rng: random.Random, n: int, last_off: int, pin_last: bool):
        if n == 1:
            return [last_off if pin_last else 0]
        if pin_last:
            k = min(n - 2, max(last_off - 1, 0))
            mid = sorted(rng.sample(range(1, last_off), k)) if k > 0 else []
            return [0] + mid + [last_off]
        k = min(n - 1, last_off)
        return [0] + sorted(rng.sample(range(1, last_off + 1), k))

    def _quote_path(self, index: int) -> list:
        """Quotes of a dYdX quote-bar minute: [(offset_ms, bid, ask, bid_size, ask_size)]."""
        hit = self._quote_cache.get(index)
        if hit is not None:
            return hit
        row = self.data.rows[index]
        rng = self._rng(index, 1)
        offs = self._quote_offsets(rng, self.quotes_per_minute, self._last_step_off, False)
        n = len(offs)
        bo, bh, bl, bc, bs = row[6], row[7], row[8], row[9], row[10]
        ao, ah, al, ac, asz = row[11], row[12], row[13], row[14], row[15]
        if n == 1:
            anchors = [(0, bc, ac)]
        elif n == 2:
            anchors = [(0, bo, ao), (1, bc, ac)]
        elif n == 3:
            hi_first = rng.random() < 0.5
            anchors = [(0, bo, ao), (1, bh, ah) if hi_first else (1, bl, al), (2, bc, ac)]
        else:
            i1, i2 = rng.sample(range(1, n - 1), 2)
            anchors = sorted([(0, bo, ao), (i1, bh, ah), (i2, bl, al), (n - 1, bc, ac)])
        bids = [0.0] * n
        asks = [0.0] * n
        d = self._decimals
        rand = rng.random
        for (ia, ba, aa), (ib, bb, ab) in zip(anchors, anchors[1:]):
            span = ib - ia
            for k in range(ia + 1, ib):
                u = (k - ia) / span + (rand() - 0.5) / span
                u = 0.0 if u < 0.0 else 1.0 if u > 1.0 else u
                bids[k] = round(ba + (bb - ba) * u, d)
                asks[k] = round(aa + (ab - aa) * u, d)
        for k, b, a in anchors:
            bids[k] = b
            asks[k] = a
        out = []
        last = n - 1
        for k in range(n):
            bid, ask = _uncross(bids[k], asks[k], bl, bh, al, ah)
            if k == last:
                sb, sa = bs, asz
            else:
                sb = round(bs * (0.5 + rand()), 4)
                sa = round(asz * (0.5 + rand()), 4)
            out.append((offs[k], bid, ask, sb, sa))
        if len(self._quote_cache) > 256:
            self._quote_cache.clear()
        self._quote_cache[index] = out
        return out

    def _price_path(self, rng: random.Random, o: float, h: float, l: float, c: float) -> list:
        """Kline closes at each step: open first, close last, high and low touched on the way."""
        n = self._steps
        if n == 1:
            return [c]
        if n < 4:
            return ([o] + [h if rng.random() < 0.5 else l] * (n - 2) + [c])
        i1, i2 = rng.sample(range(1, n - 1), 2)
        anchors = sorted([(0, o), (i1, h), (i2, l), (n - 1, c)])
        path = [0.0] * n
        d = self._decimals
        rand = rng.random
        for (ia, va), (ib, vb) in zip(anchors, anchors[1:]):
            span = ib - ia
            lo, hi = (va, vb) if va <= vb else (vb, va)
            step = vb - va
            for k in range(ia + 1, ib):
                v = va + step * (k - ia) / span + (rand() - 0.5) * (hi - lo) * 0.6
                v = round(lo if v < lo else hi if v > hi else v, d)
                path[k] = v
        for k, v in anchors:
            path[k] = v
        return path

    def _init_rolling(self) -> _Rolling24h:
        roll = _Rolling24h()
        start = self.start_index
        start_m = self._minute_ts[start]
        i = bisect.bisect_right(self._minute_ts, start_m - DAY_MS)
        for j in range(i, start):
            m, o, h, l, c, b, q = self.closed_kline(j)
            roll.push(m, o, h, l, b, q)
        return roll

    def _iter_bars(self) -> Iterator[tuple[int, dict]]:
        rows = self.data.rows
        sym = self.symbol
        kind_quote_bars = self.kind == "quote_bars"
        grid = self._grid
        e = self.kline_every_ms
        n_steps = self._steps
        last_off = self._last_step_off
        half = self.spread_usd / 2.0
        qpm = self.quotes_per_minute
        roll = self._init_rolling()
        px, vol, size = _px_cached(), _vol, _size
        sec_strs = [f"{s:02d}Z" for s in range(60)]
        prev_close = None
        bid_s = ask_s = bv_s = av_s = None
        bid_f = ask_f = None
        last_px = None
        for i in range(self.start_index, len(rows)):
            row = rows[i]
            m = self._minute_ts[i]
            roll.evict(m)
            iso_prefix = _iso_s(m)[:-3]
            ft_s, nft_s = _funding_strings(m)
            has_trades = row[1] == row[1]
            # --- the kline path for this minute
            if has_trades:
                o, h, l, c = row[1], row[2], row[3], row[4]
                big_b, big_q = self._bar_volumes(row)
                krng = self._rng(i, 2)
                path = self._price_path(krng, o, h, l, c)
                weights = [krng.random() + 0.05 for _ in range(n_steps)]
                total_w = sum(weights)
                cum_b = [0.0] * n_steps
                cum_q = [0.0] * n_steps
                acc = 0.0
                for k in range(n_steps):
                    acc += weights[k]
                    share = acc / total_w
                    cum_b[k] = round(big_b * share, 6)
                    cum_q[k] = round(big_q * share, 2)
                cum_b[-1] = big_b
                cum_q[-1] = big_q
            else:
                path = None
            # --- the quotes for this minute
            if kind_quote_bars:
                quotes = self._quote_path(i)
            else:
                qrng = self._rng(i, 1)
                offs = self._quote_offsets(qrng, qpm, last_off, True)
                quotes = []
                for off in offs:
                    p = path[off // e]
                    quotes.append((off, p - half, p + half,
                                   round(0.05 + 2.0 * qrng.random(), 3),
                                   round(0.05 + 2.0 * qrng.random(), 3)))
            qi = 0
            nq = len(quotes)
            k_o = k_h = k_l = k_c = None
            ko_s = None
            prev_b = 0.0
            for off, k, is_sec in grid:
                ts = m + off
                while qi < nq and quotes[qi][0] <= off:
                    q_off, bid_f, ask_f, bsz, asz = quotes[qi]
                    qi += 1
                    bid_s, ask_s, bv_s, av_s = px(bid_f), px(ask_f), size(bsz), size(asz)
                    q_ts = m + q_off
                    yield q_ts, {"ch": "depth_book1", "symbol": sym, "ts": q_ts,
                                  "data": {"b": [[bid_s, bv_s]], "a": [[ask_s, av_s]]}}
                    if path is None:
                        mid = (bid_f + ask_f) / 2.0
                        if k_o is None:
                            k_o = k_h = k_l = mid
                            ko_s = px(mid)
                        elif mid > k_h:
                            k_h = mid
                        elif mid < k_l:
                            k_l = mid
                        k_c = mid
                b_now = q_now = 0.0
                if k >= 0:
                    if path is not None:
                        p = path[k]
                        if k == 0:
                            k_o = o
                            k_h, k_l = (o, p) if o >= p else (p, o)
                            ko_s = px(o)
                        elif p > k_h:
                            k_h = p
                        elif p < k_l:
                            k_l = p
                        k_c = p
                        b_now, q_now = cum_b[k], cum_q[k]
                        qty = b_now - prev_b
                        prev_b = b_now
                        if qty > 5e-7:
                            side = "buy" if prev_close is None or p >= prev_close else "sell"
                            prev_close = p
                            yield ts, {"ch": "trade", "symbol": sym, "ts": ts,
                                       "data": [{"t": iso_prefix + sec_strs[off // 1000],
                                                 "p": px(p), "v": vol(qty), "s": side}]}
                        if k == n_steps - 1:    # the final push is exactly the bar
                            k_h, k_l = h, l
                    if k_o is not None:
                        last_px = k_c
                        yield ts, {"ch": "market_kline_1min", "symbol": sym, "ts": ts,
                                   "data": {"o": ko_s, "c": px(k_c), "h": px(k_h),
                                            "l": px(k_l), "b": vol(b_now), "q": _px(q_now)}}
                elif path is not None and k_o is not None:
                    b_now, q_now = cum_b[off // e], cum_q[off // e]
                if is_sec and bid_s is not None and last_px is not None:
                    o24, h24, l24, b24, q24 = roll.stats(k_o, k_h, k_l, b_now, q_now)
                    mid = (bid_f + ask_f) / 2.0
                    yield ts, {"ch": "tickers", "symbol": sym, "ts": ts, "data": [{
                        "s": sym, "la": px(last_px), "o": px(o24), "h": px(h24),
                        "l": px(l24), "b": vol(b24), "q": _px(q24),
                        "r": f"{(last_px - o24) / o24 * 100.0:.2f}",
                        "bd": bid_s, "ak": ask_s, "bv": bv_s, "av": av_s}]}
                    mid_s = px(mid)
                    yield ts, {"ch": "price", "symbol": sym, "ts": ts,
                               "data": {"ip": mid_s, "mp": mid_s, "fr": FUNDING_RATE,
                                        "ft": ft_s, "nft": nft_s}}
            cm, co, ch_, cl, cc, cb, cq = self.closed_kline(i)
            roll.push(cm, co, ch_, cl, cb, cq)

    # ---- ticks

    def _iter_ticks(self) -> Iterator[tuple[int, dict]]:
        data = self.data
        rows = data.rows
        sym = self.symbol
        trades = self.kind == "trade_ticks"
        e = self.kline_every_ms
        g = gcd(e, 1000)
        half = self.spread_usd / 2.0
        px, vol, size = _px_cached(), _vol, _size
        minutes = self._tick_minutes
        first = minutes[self.start_index]
        roll = _Rolling24h()
        start_m = first[0]
        for t in minutes[bisect.bisect_right(self._minute_ts, start_m - DAY_MS):self.start_index]:
            roll.push(t[0], t[1], t[2], t[3], t[5], t[6])
        bid_s = ask_s = bv_s = av_s = None
        mid = None
        for w in range(first[9], len(data.windows)):
            lo, hi = data.windows[w]
            if w == first[9]:
                start_row = first[7]
            else:
                start_row = lo
            if start_row >= hi:
                continue
            last_ts = int(rows[hi - 1][0])
            t0 = int(rows[start_row][0])
            # start on a kline step so that every minute's last step is visited
            s = t0 - t0 % e if start_row == lo else t0 - t0 % MINUTE_MS
            # price in force before the first replayed tick (same window only)
            if start_row > lo:
                pr = rows[start_row - 1]
                price = pr[1] if trades else (pr[1] + pr[2]) / 2.0
            else:
                price = None
            i = j = start_row           # i: next tick to send, j: next tick in the candle
            cm = None                    # candle minute
            co = ch_ = cl = cc = None
            cb = cq = 0.0
            co_s = None
            ft_s = nft_s = None
            fund_m = None
            while True:
                # send the ticks up to s; after the last grid point, the rest of the window
                done = s > last_ts
                upto = last_ts if done else s
                while i < hi and rows[i][0] <= upto:
                    r = rows[i]
                    ts = int(r[0])
                    if trades:
                        batch = []
                        t_iso = _iso_s(ts)
                        while i < hi and rows[i][0] == r[0]:
                            t = rows[i]
                            maker = t[3]
                            side = "sell" if maker == 1.0 else "buy" if maker == 0.0 else (
                                "buy" if price is None or t[1] >= price else "sell")
                            batch.append({"t": t_iso, "p": px(t[1]), "v": vol(t[2]),
                                          "s": side})
                            price = t[1]
                            i += 1
                        yield ts, {"ch": "trade", "symbol": sym, "ts": ts, "data": batch}
                        nb, na = px(price - half), px(price + half)
                        if nb != bid_s or na != ask_s:
                            bid_s, ask_s, bv_s, av_s = nb, na, "1", "1"
                            mid = price
                            yield ts, {"ch": "depth_book1", "symbol": sym, "ts": ts,
                                       "data": {"b": [[bid_s, bv_s]], "a": [[ask_s, av_s]]}}
                    else:
                        bid_s, ask_s, bv_s, av_s = px(r[1]), px(r[2]), size(r[3]), size(r[4])
                        mid = price = (r[1] + r[2]) / 2.0
                        i += 1
                        yield ts, {"ch": "depth_book1", "symbol": sym, "ts": ts,
                                   "data": {"b": [[bid_s, bv_s]], "a": [[ask_s, av_s]]}}
                if done:
                    break
                m = s - s % MINUTE_MS
                is_step = s % e == 0
                if is_step or s % 1000 == 0:
                    if m != cm:
                        if cm is not None and co is not None:
                            roll.push(cm, co, ch_, cl, cb, cq)
                        roll.evict(m)
                        cm = m
                        cb = cq = 0.0
                        co = cc
                        if co is None and j > lo:
                            pj = rows[j - 1]
                            co = pj[1] if trades else (pj[1] + pj[2]) / 2.0
                        ch_ = cl = cc = co
                        co_s = px(co) if co is not None else None
                    # the last step of a minute takes in the rest of the minute's ticks
                    limit = (m + MINUTE_MS) if (is_step and (s + e >= m + MINUTE_MS
                                                            or s + e > last_ts)) else s + 1
                    while j < hi and rows[j][0] < limit:
                        r = rows[j]
                        if trades:
                            p = r[1]
                            cb += r[2]
                            cq += r[2] * p
                        else:
                            p = (r[1] + r[2]) / 2.0
                        if co is None:
                            co = ch_ = cl = p
                            co_s = px(p)
                        elif p > ch_:
                            ch_ = p
                        elif p < cl:
                            cl = p
                        cc = p
                        j += 1
                    if is_step and co is not None:
                        yield s, {"ch": "market_kline_1min", "symbol": sym, "ts": s,
                                  "data": {"o": co_s, "c": px(cc), "h": px(ch_), "l": px(cl),
                                           "b": vol(cb), "q": _px(cq)}}
                    if s % 1000 == 0 and bid_s is not None and price is not None:
                        o24, h24, l24, b24, q24 = roll.stats(co, ch_, cl, cb, cq)
                        yield s, {"ch": "tickers", "symbol": sym, "ts": s, "data": [{
                            "s": sym, "la": px(price), "o": px(o24), "h": px(h24),
                            "l": px(l24), "b": vol(b24), "q": _px(q24),
                            "r": f"{(price - o24) / o24 * 100.0:.2f}",
                            "bd": bid_s, "ak": ask_s, "bv": bv_s, "av": av_s}]}
                        fm = s - s % FUNDING_PERIOD_MS
                        if fm != fund_m:
                            fund_m = fm
                            ft_s, nft_s = _funding_strings(s)
                        mid_s = px(mid)
                        yield s, {"ch": "price", "symbol": sym, "ts": s,
                                  "data": {"ip": mid_s, "mp": mid_s, "fr": FUNDING_RATE,
                                           "ft": ft_s, "nft": nft_s}}
                s += g
            if cm is not None and co is not None:
                roll.push(cm, co, ch_, cl, cb, cq)
                cm = None


def _uncross(bid: float, ask: float, bl: float, bh: float, al: float, ah: float):
    """Keep ask >= bid + one tick, moving the ask up (within its range) before the bid down."""
    if ask - bid >= TICK - _EPS:
        return bid, ask
    a = min(ah, round(bid + TICK, 2))
    if a - bid >= TICK - _EPS:
        return bid, a
    b = max(bl, round(a - TICK, 2))
    if a - b >= TICK - _EPS:
        return b, a
    return b, round(b + TICK, 2)


def build_timeline(data, *, symbol: str = "BTCUSDT", seed: int = 0,
                   start_index: int | None = None, start_ts: int | None = None,
                   spread_usd: float = 1.0, quotes_per_minute: int = 20,
                   kline_every_ms: int = 500, depth_model=None) -> Timeline:
    """Build a lazy timeline of Bitunix push frames from loaded market data (see Timeline)."""
    return Timeline(data, symbol=symbol, seed=seed, start_index=start_index, start_ts=start_ts,
                    spread_usd=spread_usd, quotes_per_minute=quotes_per_minute,
                    kline_every_ms=kline_every_ms, depth_model=depth_model)
