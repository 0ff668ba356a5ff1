"""Peer engines for the SMA-cross fill-equality benchmark: a bare-Python reference, backtrader and
nautilus_trader, all running exactly the same trading rules on 1-minute bars.

    python bench/peer_engines.py [path/to/bars.csv.gz] [--qty 0.1]

The rules (identical in every runner)
-------------------------------------
* fast/slow = simple moving averages of the closes (SMA at bar t = mean of closes t-n+1..t).
* For bar index t >= slow (both SMAs exist at t and t-1):
  cross up   (fast[t-1] <= slow[t-1] and fast[t] > slow[t]) -> target position +qty;
  cross down (fast[t-1] >= slow[t-1] and fast[t] < slow[t]) -> target position -qty.
* On a signal at bar t's close: ONE market order for (target - position) (a reversal is a single
  order of 2*qty; nothing when it is 0). It fills at bar t+1's OPEN, stamped with bar t+1's ts_ms,
  no spread, slippage or latency. A signal on the last bar has no fill.
* Fee = |qty| * price * fee_bps / 10_000 (taker). Cash 1,000,000 USDT, never a binding constraint.

Every runner returns ``(fills, seconds)``: ``fills`` is a list of
``(ts_ms: int, side: "BUY"|"SELL", qty: float, price: float, fee: float)`` taken from the engine's
OWN fill reports (reference: its loop; backtrader: ``notify_order`` with ``order.executed``;
nautilus: the ``OrderFilled`` events delivered to the strategy), and ``seconds`` is the
``time.perf_counter`` wall time of the run only (reference: the loop; backtrader:
``cerebro.run()``; nautilus: ``engine.run()``). Building the engine, the data objects and the
strategy happens before the timer. The peer libraries are imported inside their runner, so this
module imports without them (``pip install -r requirements-bench.txt`` installs them).

Prices are not all whole dollars
--------------------------------
The file has a $1 tick except 13 bars (indices 242-248 from 2022-01-01 03:03 UTC and 17522-17528
from 2022-01-13 03:03 UTC, apparently interpolated) whose prices are multiples of $0.125, e.g.
open 46815.5 and close 43613.875. One fill happens at such an open (fill #11, a SELL at 46815.5).
So no runner assumes integers: the nautilus instrument's price precision is the number of decimals
the data needs (3 for this file, 0 for whole-dollar data). With precision 0, ``Price`` rounds
46815.5 to 46816 and fill #11 differed; precision 1 or 2 would round the 1/8 prices.

Exactness of the signals
------------------------
The reference compares the averages exactly: closes are scaled by 10**decimals to integers
(lossless for this data) and the means compared by cross-multiplying integer running sums
(``sum_fast * slow`` vs ``sum_slow * fast``). The peers compare float means: backtrader's SMA is
``math.fsum(window) / n``, nautilus' SimpleMovingAverage a plain float sum of the window divided by
n. The closes here are multiples of 1/8 far below 2**53, so both sums are exact and the division
is correctly rounded: two equal true means give the same double, and two different true means
differ by at least (1/8)/(fast*slow), far more than one rounding error. So the float comparisons,
including the ``<=``/``>=`` ties (fast == slow exactly on 14 bars of this file), give exactly the
reference's answers. (Data that is not a short decimal makes the reference fall back to floats.)

How backtrader is fed
---------------------
A small ``DataBase`` subclass replays a pre-built list (the date numbers are computed with
``bt.date2num`` before the timer, so no CSV parsing and no datetime work happen inside
``cerebro.run()``; backtrader still preloads the lines from that list inside ``run()``, which is
part of its run). ``stdstats=False``, no observers or analyzers, ``runonce=True`` (the SMAs are
computed vectorised; ``next()`` then sees the same values), ``preload=True``,
``cheat_on_open=False``. Orders are default market orders, which backtrader's broker fills at the
next bar's open with no slippage. Commission: ``setcommission(commission=fee_bps/1e4)`` (a
stock-like ``CommissionInfo`` with ``percabs=True``, so comm = |size| * price * 0.0006; short
selling is allowed and only moves cash). The strategy's minimum period is ``slow`` (its first
``next()`` is at t = slow-1, where slow[t-1] does not exist yet), so ``next()`` acts only from
t >= slow. Fills are read per execution bit (``order.executed.iterpending()``: dt, size, price,
closedcomm + openedcomm), not from ``order.executed.price``: backtrader recomputes that as
(size * price) / size, which on a 2*qty reversal comes out one ulp off (46366.99999999999 for
46367). The fill time is the bit's dt (a backtrader date number) mapped back to the bar's ts_ms
through the table built from the same date numbers fed in.

How nautilus_trader is fed, and why
-----------------------------------
Nautilus, fed bars, executes against the bar itself (with ``bar_execution=True`` a bar is turned
into open/high/low/close ticks that move the simulated book, so a market order submitted in
``on_bar`` fills at that bar's CLOSE). To make the same trade as the rules (fill at the NEXT bar's
open) the venue is built with ``bar_execution=False`` - bars no longer touch the book, they only
reach the strategy - and the book is driven by one QuoteTick per bar:

* quote k: ts_event = ts_init = ts_ms[k] (bar k's OPEN time), bid = ask = open[k], sizes 1e6;
* bar t: ts_event = ts_init = ts_ms[t] + 60 s = bar t's CLOSE time (nautilus' own convention) =
  ts_ms[t+1], i.e. the same instant as quote t+1.

What matters is when the order is matched. ``BacktestEngine._run`` handles each data point as:
exchange updates its book from it -> data engine -> strategy handler (``on_bar`` submits the
order) -> ``exchange.process(ts)`` runs the queued commands at once (no latency model), i.e. the
market order is matched against the book as it stands right after the bar, at the same ts. So
the quote of bar t+1 must be applied BEFORE bar t reaches the strategy; if the quote came after
the bar (even 1 ns later), the order would fill at quote t = open[t] instead. Both have the same
ts_init; ``add_data`` sorts the whole stream by ``ts_init`` with Python's stable ``sorted``, so the
quotes are added first and win ties: at ts_ms[t+1] the engine sees quote t+1, then bar t. The order
then fills at open[t+1] with ts_event = ts_ms[t+1] (reported in ms). Economically this is the same
thing the rules describe: the price available at bar t's close instant is the next bar's open.
(Checked: adding the bars before the quotes makes all 1,890 fills land on open[t] instead.)

The last bar is NOT fed (its quote would be the one of bar N, which does not exist): a signal on it
would otherwise fill against the stale quote of the last bar, whereas the rules say it has no fill.
Everything else the strategy sees is unchanged, so the signals on bars 0..N-2 are the same.

Other settings: instrument BTC-PERP.FTX, a linear ``CryptoPerpetual`` (USDT quote/settlement),
price precision = the decimals the data needs (see above), size precision = the decimals of
``qty``; maker = taker fee ``fee_bps/1e4``; MARGIN account with 1,000,000 USDT; OMS NETTING
(a reversal is one 2*qty order); ``FillModel()`` (no slippage, fills certain); no latency model;
L1 book; logging bypassed and ``run_analysis=False``, so neither log output nor the post-run
analysis is inside the timer.
The SMAs are nautilus' ``SimpleMovingAverage`` updated with each bar's close in ``on_bar``; the
position is ``portfolio.net_position`` (a Decimal, so target - position is exact). Fills are
recorded from the ``OrderFilled`` events in ``on_order_filled`` and, after the timer, checked fill
by fill against ``engine.trader.generate_fills_report()``.
"""
from __future__ import annotations

import gzip
import math
import sys
import time
from decimal import Decimal
from pathlib import Path

Fill = tuple  # (ts_ms: int, side: "BUY" | "SELL", qty: float, price: float, fee: float)
Bar = tuple  # (ts_ms: int, open, high, low, close, volume)

DEFAULT_DATA = Path("/work/shared/data/btc_perp_ftx_1m_20211231_20220201.csv.gz")
START_CASH = 1_000_000.0
BAR_MS = 60_000


def load_bars(path) -> list[tuple[int, float, float, float, float, float]]:
    """Read a ``ts_ms,open,high,low,close,volume`` CSV (gzip if the name ends in .gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", newline="") as f:
        header = f.readline().strip().split(",")
        if header[:6] != ["ts_ms", "open", "high", "low", "close", "volume"]:
            raise ValueError(f"unexpected header {header!r} in {path}")
        for line in f:
            if not line.strip():
                continue
            ts, o, h, l, c, v = line.split(",")[:6]
            out.append((int(ts), float(o), float(h), float(l), float(c), float(v)))
    return out


def _check(fast: int, slow: int, qty: float) -> None:
    if not (0 < fast and 0 < slow):
        raise ValueError("fast and slow must be positive")
    if not qty > 0:
        raise ValueError("qty must be positive")


def _decimals(x: float) -> int:
    """Decimal places of the shortest repr of x (0.1 -> 1, 46815.5 -> 1, 43613.875 -> 3)."""
    exp = Decimal(repr(float(x))).normalize().as_tuple().exponent
    return max(0, -exp)


_qty_decimals = _decimals


def _price_decimals(bars) -> int:
    """Decimal places needed to write every open/high/low/close exactly."""
    d = 0
    for b in bars:
        for v in b[1:5]:
            if not v.is_integer():
                d = max(d, _decimals(v))
    return d


def _scaled_closes(bars):
    """The closes as exact integers (scaled by 10**decimals) when that is lossless, else floats.

    Returns (closes, exact). Comparing means of scaled integers by cross-multiplying the sums is
    exact; the float fallback is only for data that is not a short decimal.
    """
    d = max((_decimals(b[4]) for b in bars if not b[4].is_integer()), default=0)
    if d <= 9:
        scale = 10 ** d
        ints = [round(b[4] * scale) for b in bars]
        if all(i / scale == b[4] for i, b in zip(ints, bars)):
            return ints, True
    return [b[4] for b in bars], False


# --------------------------------------------------------------------------------------------
# reference
# --------------------------------------------------------------------------------------------

def run_reference(bars, fast=10, slow=30, qty=0.1, fee_bps=6.0) -> tuple[list[Fill], float]:
    """Bare Python loop over the rules; the ground truth."""
    _check(fast, slow, qty)
    closes, exact = _scaled_closes(bars)
    n = len(bars)
    fee_rate = fee_bps / 10_000.0
    dec = _qty_decimals(qty)

    t0 = time.perf_counter()
    fills: list[Fill] = []
    pos = 0  # in units of qty: -1, 0, +1
    sf = ss = 0
    pf = ps = None  # fast/slow sums at t-1
    for t in range(n):
        c = closes[t]
        sf += c
        ss += c
        if t >= fast:
            sf -= closes[t - fast]
        if t >= slow:
            ss -= closes[t - slow]
        if t >= slow:
            if exact:
                # fast[t] ? slow[t]  <=>  sf/fast ? ss/slow  <=>  sf*slow ? ss*fast
                a_prev, b_prev = pf * slow, ps * fast
                a, b = sf * slow, ss * fast
            else:
                a_prev, b_prev = pf / fast, ps / slow
                a, b = sf / fast, ss / slow
            if a_prev <= b_prev and a > b:
                target = 1
            elif a_prev >= b_prev and a < b:
                target = -1
            else:
                target = pos
            delta = target - pos
            if delta != 0 and t + 1 < n:
                nxt = bars[t + 1]
                price = nxt[1]
                q = round(abs(delta) * qty, dec)
                fills.append((nxt[0], "BUY" if delta > 0 else "SELL", q, price,
                              q * price * fee_rate))
                pos = target
        pf, ps = sf, ss
    return fills, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# backtrader
# --------------------------------------------------------------------------------------------

def run_backtrader(bars, fast=10, slow=30, qty=0.1, fee_bps=6.0) -> tuple[list[Fill], float]:
    """backtrader Cerebro, list-backed feed, bt.indicators.SMA, default market orders."""
    import datetime as _dt

    import backtrader as bt

    _check(fast, slow, qty)
    dec = _qty_decimals(qty)
    epoch = _dt.datetime(1970, 1, 1)
    rows = []
    num_to_ts = {}
    for ts, o, h, l, c, v in bars:
        num = bt.date2num(epoch + _dt.timedelta(milliseconds=ts))
        if num in num_to_ts:
            raise ValueError(f"two bars map to one backtrader date number at ts={ts}")
        num_to_ts[num] = ts
        rows.append((num, o, h, l, c, v))

    class ListFeed(bt.feed.DataBase):
        params = (("rows", None),)

        def start(self):
            super().start()
            self._it = iter(self.p.rows)

        def _load(self):
            try:
                num, o, h, l, c, v = next(self._it)
            except StopIteration:
                return False
            ln = self.lines
            ln.datetime[0] = num
            ln.open[0] = o
            ln.high[0] = h
            ln.low[0] = l
            ln.close[0] = c
            ln.volume[0] = v
            ln.openinterest[0] = 0.0
            return True

    fills: list[Fill] = []

    def _bt_ts(num: float) -> int:
        ts = num_to_ts.get(num)
        return ts if ts is not None else int(round((num - 719163.0) * 86_400_000))

    class SmaCross(bt.Strategy):
        params = (("fast", fast), ("slow", slow), ("qty", qty))

        def __init__(self):
            self.f = bt.indicators.SMA(self.data.close, period=self.p.fast)
            self.s = bt.indicators.SMA(self.data.close, period=self.p.slow)

        def next(self):
            t = len(self) - 1  # bar index
            if t < self.p.slow:
                return
            f0, f1 = self.f[0], self.f[-1]
            s0, s1 = self.s[0], self.s[-1]
            if f1 <= s1 and f0 > s0:
                target = self.p.qty
            elif f1 >= s1 and f0 < s0:
                target = -self.p.qty
            else:
                return
            delta = round(target - self.position.size, dec)
            if delta > 0:
                self.buy(size=delta)
            elif delta < 0:
                self.sell(size=-delta)

        def notify_order(self, order):
            if order.status in (order.Partial, order.Completed):
                # One OrderExecutionBit per execution by the broker. Not order.executed.price:
                # that is recomputed as value/size and is off by an ulp on a 2*qty reversal.
                for bit in order.executed.iterpending():
                    fills.append((_bt_ts(bit.dt), "BUY" if bit.size > 0 else "SELL",
                                  round(abs(bit.size), dec), float(bit.price),
                                  float(bit.closedcomm + bit.openedcomm)))
            elif order.status in (order.Canceled, order.Margin, order.Rejected):
                raise RuntimeError(f"backtrader refused an order: {order.getstatusname()}")

    cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True, cheat_on_open=False,
                         optreturn=True, quicknotify=False)
    cerebro.adddata(ListFeed(rows=rows, timeframe=bt.TimeFrame.Minutes, compression=1))
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcash(START_CASH)
    cerebro.broker.setcommission(commission=fee_bps / 10_000.0)

    t0 = time.perf_counter()
    cerebro.run()
    dt = time.perf_counter() - t0
    return fills, dt


# --------------------------------------------------------------------------------------------
# nautilus_trader
# --------------------------------------------------------------------------------------------

def run_nautilus(bars, fast=10, slow=30, qty=0.1, fee_bps=6.0) -> tuple[list[Fill], float]:
    """nautilus_trader BacktestEngine; bars to the strategy, one quote per bar drives the book."""
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.backtest.models import FillModel
    from nautilus_trader.config import LoggingConfig, StrategyConfig
    from nautilus_trader.indicators.averages import SimpleMovingAverage
    from nautilus_trader.model.currencies import BTC, USDT
    from nautilus_trader.model.data import Bar as NBar
    from nautilus_trader.model.data import BarType, QuoteTick
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, TraderId, Venue
    from nautilus_trader.model.instruments import CryptoPerpetual
    from nautilus_trader.model.objects import Money, Price, Quantity
    from nautilus_trader.trading.strategy import Strategy

    _check(fast, slow, qty)
    if len(bars) < 2:
        return [], 0.0
    dec = _qty_decimals(qty)
    pdec = _price_decimals(bars)
    fee = Decimal(repr(fee_bps)) / Decimal(10_000)
    venue = Venue("FTX")
    instrument_id = InstrumentId(Symbol("BTC-PERP"), venue)
    step = f"{Decimal(1).scaleb(-dec):f}"
    instrument = CryptoPerpetual(
        instrument_id=instrument_id,
        raw_symbol=Symbol("BTC-PERP"),
        base_currency=BTC,
        quote_currency=USDT,
        settlement_currency=USDT,
        is_inverse=False,
        price_precision=pdec,
        price_increment=Price.from_str(f"{Decimal(1).scaleb(-pdec):f}"),
        size_precision=dec,
        size_increment=Quantity.from_str(step),
        max_quantity=Quantity.from_str(f"{Decimal(1_000_000):.{dec}f}"),
        min_quantity=Quantity.from_str(step),
        max_notional=None,
        min_notional=None,
        max_price=Price(10_000_000, pdec),
        min_price=Price(1, pdec),
        margin_init=Decimal("0.05"),
        margin_maint=Decimal("0.025"),
        maker_fee=fee,
        taker_fee=fee,
        ts_event=0,
        ts_init=0,
    )
    bar_type = BarType.from_str(f"{instrument_id}-1-MINUTE-LAST-EXTERNAL")

    class SmaCrossConfig(StrategyConfig, frozen=True):
        instrument_id: InstrumentId
        bar_type: BarType
        fast: int
        slow: int
        qty: Decimal

    raw_fills: list = []

    class SmaCross(Strategy):
        def __init__(self, config: SmaCrossConfig):
            super().__init__(config)
            self.iid = config.instrument_id
            self.btype = config.bar_type
            self.nslow = config.slow
            self.qty = config.qty
            self.f = SimpleMovingAverage(config.fast)
            self.s = SimpleMovingAverage(config.slow)
            self.t = -1
            self.prev = None
            self.instrument = None

        def on_start(self):
            self.instrument = self.cache.instrument(self.iid)
            self.subscribe_bars(self.btype)

        def on_bar(self, bar):
            self.t += 1
            close = bar.close.as_double()
            self.f.update_raw(close)
            self.s.update_raw(close)
            f0, s0 = self.f.value, self.s.value
            prev, self.prev = self.prev, (f0, s0)
            if self.t < self.nslow:
                return
            f1, s1 = prev
            if f1 <= s1 and f0 > s0:
                target = self.qty
            elif f1 >= s1 and f0 < s0:
                target = -self.qty
            else:
                return
            delta = target - self.portfolio.net_position(self.iid)
            if delta == 0:
                return
            order = self.order_factory.market(
                self.iid,
                OrderSide.BUY if delta > 0 else OrderSide.SELL,
                self.instrument.make_qty(abs(delta)),
            )
            self.submit_order(order)

        def on_order_filled(self, event):
            raw_fills.append((event.ts_event, event.order_side, event.last_qty, event.last_px,
                              event.commission))

        def on_order_rejected(self, event):
            raise RuntimeError(f"nautilus rejected an order: {event}")

        def on_order_denied(self, event):
            raise RuntimeError(f"nautilus denied an order: {event}")

    engine = BacktestEngine(config=BacktestEngineConfig(
        trader_id=TraderId("BENCH-001"),
        logging=LoggingConfig(log_level="ERROR", bypass_logging=True),
        run_analysis=False,
    ))
    engine.add_venue(
        venue=venue,
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        starting_balances=[Money(START_CASH, USDT)],
        base_currency=USDT,
        default_leverage=Decimal(1),
        fill_model=FillModel(prob_fill_on_limit=1.0, prob_slippage=0.0, random_seed=0),
        latency_model=None,
        bar_execution=False,
    )
    engine.add_instrument(instrument)

    big = Quantity(1_000_000, dec)
    ns = 1_000_000
    quotes = []
    nbars = []
    for ts, o, h, l, c, v in bars:
        px = Price(o, pdec)
        quotes.append(QuoteTick(instrument_id, px, px, big, big, ts * ns, ts * ns))
    for ts, o, h, l, c, v in bars[:-1]:  # the last bar's signal has no next open to fill at
        te = (ts + BAR_MS) * ns
        nbars.append(NBar(bar_type, Price(o, pdec), Price(h, pdec), Price(l, pdec), Price(c, pdec),
                          instrument.make_qty(v), te, te))
    # Quotes first: add_data's stable sort by ts_init keeps quote t+1 ahead of bar t (same ts).
    engine.add_data(quotes)
    engine.add_data(nbars)
    engine.add_strategy(SmaCross(SmaCrossConfig(
        instrument_id=instrument_id, bar_type=bar_type, fast=fast, slow=slow,
        qty=Decimal(repr(qty)))))

    try:
        t0 = time.perf_counter()
        engine.run()
        dt = time.perf_counter() - t0
        fills = [(ts_ns // ns, "BUY" if side == OrderSide.BUY else "SELL",
                  round(q.as_double(), dec), px.as_double(), comm.as_double())
                 for ts_ns, side, q, px, comm in raw_fills]
        _cross_check_nautilus(engine, fills)
    finally:
        engine.dispose()
    return fills, dt


def _cross_check_nautilus(engine, fills) -> None:
    """The strategy's OrderFilled events must agree with the engine's own fills report."""
    rep = engine.trader.generate_fills_report()
    if len(rep) != len(fills):
        raise RuntimeError(f"nautilus fills report has {len(rep)} fills, events {len(fills)}")
    if not len(rep):
        return
    rep = rep.sort_values("ts_event", kind="stable")

    def num(x) -> float:
        return float(str(x).split()[0])

    for i, (row, f) in enumerate(zip(rep.itertuples(index=False), fills)):
        got = (row.ts_event.value // 1_000_000, str(row.order_side), num(row.last_qty),
               num(row.last_px), num(row.commission))
        if got[:4] != f[:4] or abs(got[4] - f[4]) > 1e-9:
            raise RuntimeError(f"nautilus fill #{i}: report {got} != event {f}")


# --------------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------------

def compare(ref: list[Fill], got: list[Fill]) -> str | None:
    """None when equal fill by fill (ts, side, qty, price exact; fee within 1e-9), else why."""
    if len(ref) != len(got):
        n = min(len(ref), len(got))
        first = next((i for i in range(n) if ref[i][:4] != got[i][:4]), n)
        return (f"{len(got)} fills vs {len(ref)}; first difference at #{first}: "
                f"ref={ref[first] if first < len(ref) else None} "
                f"got={got[first] if first < len(got) else None}")
    for i, (a, b) in enumerate(zip(ref, got)):
        if a[:4] != b[:4] or not math.isclose(a[4], b[4], rel_tol=0.0, abs_tol=1e-9):
            return f"fill #{i}: ref={a} got={b}"
    return None


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=str(DEFAULT_DATA))
    ap.add_argument("--fast", type=int, default=10)
    ap.add_argument("--slow", type=int, default=30)
    ap.add_argument("--qty", type=float, default=0.1)
    ap.add_argument("--fee-bps", type=float, default=6.0)
    args = ap.parse_args(argv)

    bars = load_bars(args.path)
    kw = dict(fast=args.fast, slow=args.slow, qty=args.qty, fee_bps=args.fee_bps)
    print(f"{len(bars):,} bars from {args.path}")
    ref = None
    ok = True
    for name, fn in (("reference", run_reference), ("backtrader", run_backtrader),
                     ("nautilus", run_nautilus)):
        try:
            fills, secs = fn(bars, **kw)
        except ImportError as e:
            print(f"{name:11s} skipped ({e})")
            continue
        if ref is None:
            ref = fills
        why = compare(ref, fills)
        ok &= why is None
        print(f"{name:11s} fills={len(fills):5d}  {secs:8.4f} s  {len(bars) / secs:12,.0f} bars/s  "
              f"same as reference: {'yes' if why is None else 'NO - ' + why}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
