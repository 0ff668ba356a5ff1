"""Depth costs and limit fill ratios: the figures of the order-book fills.

1. The default strategy on the bundled dYdX day (real quotes, modelled depth behind the top),
   `--speed max`, market entries: mean depth cost of its market orders; then the same with
   `--order-type limit`: the fill ratio of its limit entries (filled qty / ordered qty).
2. Each Binance window with its real recorded books: the default strategy's size of market
   order (the engine's own risk sizing at 10,000 USDT: what it sends) every 5 s of the window,
   both sides, priced against the real book and against the real top plus the calibrated
   model (baseline: the real book); the mean depth cost of each and their ratio.
   And the default strategy on each window with limit entries: their fill ratio.

    python bench/depth_costs.py [--hours 24]
"""
from __future__ import annotations

import argparse
import logging
import math
import random
import sqlite3
import statistics
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trading.book import walk  # noqa: E402
from trading.depth_model import DepthModel  # noqa: E402
from trading.runtime.datafiles import default_depth_model, load_market_file  # noqa: E402
from trading.runtime.session import Session, SessionConfig  # noqa: E402
from trading.strategy import EntryOrders  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEPTH = ROOT / "resources" / "data" / "btcusdt_perp_binance_depth15_2windows.jsonl.gz"


def session(tmp: Path, name: str, **kw) -> Session:
    cfg = SessionConfig(data_dir=tmp / name, source="replay", speed=math.inf,
                        reset_account=True, record=False, **kw)
    s = Session(cfg)
    assert s.run() == 0, s.error
    return s


def limit_fill_ratio(s: Session) -> tuple[float | None, int]:
    """Filled / ordered quantity of the run's entry orders (all limits in a limit run)."""
    db = sqlite3.connect(Path(s.config.data_dir) / "journal.sqlite3")
    rows = db.execute("SELECT qty FROM orders WHERE run_id = ? AND reason = 'entry'",
                      (s.run_id,)).fetchall()
    db.close()
    ordered = sum((Decimal(q) for (q,) in rows), Decimal(0))
    filled = sum((Decimal(f["qty"]) for f in s.fills
                  if f.get("order_type") == "limit" and f["reason"] == "entry"), Decimal(0))
    return (float(filled / ordered) if ordered else None), len(rows)


def window_limit_probe(data, window: int, qty: Decimal) -> tuple[float, int]:
    """On one window with its real books and trades: a limit buy at the best bid and a limit
    sell at the best ask of `qty`, sent every 60 s, 30 s timeout, 1 s latency (the strategy's
    defaults); the fill ratio from the real prints."""
    from trading.bitunix import parse_frame_ch
    from trading.book import Book
    from trading.broker import BrokerConfig, PaperBroker
    from trading.model import Quote, Side, TradeTick
    from trading.replay import build_timeline
    lo, hi = data.windows[window]
    tl = build_timeline(data, start_ts=int(data.rows[lo][0]) + 60_000)
    end = data.rows[hi - 1][0]
    br = PaperBroker(BrokerConfig(latency_ms=1000, max_leverage=100.0), order_prefix="p")
    next_ts, sent, filled = None, Decimal(0), Decimal(0)
    for ts, raw in tl.iter_frames_bytes():
        if ts > end:
            break
        for ev in parse_frame_ch(raw)[1]:
            out = []
            if isinstance(ev, Quote):
                out = br.on_quote(ev)
                if next_ts is None or ts >= next_ts:
                    next_ts = ts + 60_000
                    for side, px in ((Side.BUY, ev.bid), (Side.SELL, ev.ask)):
                        br.submit_limit(side, "entry", now_ts=ts, signal_ts=ts, signal_px=px,
                                        price=px, qty=qty, timeout_ms=30_000)
                        sent += qty
                    br.position.qty = Decimal(0)  # probes: each order on its own, flat
            elif isinstance(ev, Book):
                br.on_book(ev)
            elif isinstance(ev, TradeTick):
                out = br.on_trade(ev)
            for e in out + br.advance(ts):
                if type(e).__name__ == "OrderFilled":
                    filled += e.fill.qty
    return float(filled / sent) if sent else 0.0, int(sent / qty)


def window_probe(data, window: int, qty: Decimal, model: DepthModel) -> tuple[list, list]:
    """Every 5 s of one window: a buy and a sell of `qty` against the real book and against
    the real top plus the model."""
    lo, hi = data.windows[window]
    rng = random.Random(3)
    real, synth = [], []
    next_ts = data.rows[lo][0]
    for i in range(lo, hi):
        if data.rows[i][0] < next_ts:
            continue
        next_ts = data.rows[i][0] + 5_000
        bids, asks = data.books[i]
        for buy, side in ((True, asks), (False, bids)):
            real.append(walk(side, qty, buy).cost_bps(buy))
            levels = model.levels(side[0][0], side[0][1], not buy, 0.1, rng)
            synth.append(walk(levels, qty, buy).cost_bps(buy))
    return real, synth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=20.0, help="market hours of the dYdX day")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from storage.logger import setup_logging
        setup_logging(tmp, console=False, level=logging.ERROR)
        mins = a.hours * 60
        m = session(tmp, "day-market", duration_min=mins, replay_start_index=200)
        market = [f["depth_cost_bps"] for f in m.fills if f.get("signal_ts") is not None]
        qtys = [float(f["qty"]) for f in m.fills if f["reason"] == "entry"]
        print(f"1. bundled dYdX day, {mins:g} market minutes, default strategy, market "
              f"entries: {len(market)} strategy market orders (median size "
              f"{statistics.median(qtys):.3f} BTC), mean depth cost "
              f"{statistics.mean(market):.4f} bps (max {max(market):.4f}); "
              f"depth: {m.final_report['depth_model']}")
        lim = session(tmp, "day-limit", duration_min=mins, replay_start_index=200,
                      entry=EntryOrders(order_type="limit"))
        ratio, n = limit_fill_ratio(lim)
        print(f"   the same with --order-type limit (join the best bid/ask, 30 s timeout): "
              f"{n} limit entries, fill ratio {ratio:.1%}, "
              f"{lim.final_report['fills_by_liquidity']}")
        data = load_market_file(DEPTH)
        model = default_depth_model()
        qty = Decimal(str(statistics.median(qtys))).quantize(Decimal("0.001"))
        for w in range(len(data.windows)):
            real, synth = window_probe(data, w, qty, model)
            mr, ms = statistics.mean(real), statistics.mean(synth)
            lo, hi = data.windows[w]
            minutes = (data.rows[hi - 1][0] - data.rows[lo][0]) / 60_000
            print(f"2. Binance window {w + 1} ({minutes:.1f} min, real books): a {qty} BTC "
                  f"market order every 5 s both sides ({len(real)} probes): mean depth cost "
                  f"real book {mr:.4f} bps, modelled book (same top) {ms:.4f} bps "
                  f"(ratio {ms / mr if mr else float('nan'):.2f})")
            ratio, n = window_limit_probe(data, w, qty)
            print(f"   limit orders of {qty} BTC at the best bid/ask every 60 s (30 s timeout, "
                  f"1 s latency) on the same window, filled by its real trades: {n} orders, "
                  f"fill ratio {ratio:.1%}")


if __name__ == "__main__":
    main()
