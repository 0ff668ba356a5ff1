"""Fills that know the order book: depth walks, the impact cap, resting limits and their queue."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from trading.bitunix import ProtocolError, parse_frame
from trading.book import IMPACT_CAP, Book, walk
from trading.broker import BrokerConfig, PaperBroker
from trading.model import (Fill, OrderCancelled, OrderFilled, OrderRested, Quote, Side,
                           TradeTick, ValidationError)

D = Decimal
CFG = BrokerConfig(latency_ms=1000, taker_fee_bps=6.0, maker_fee_bps=2.0)


def book(ts=1_000, bids=((99.0, 1.0), (98.5, 2.0)), asks=((100.0, 0.05), (100.5, 0.1),
                                                         (101.0, 0.2))):
    return Book(ts=ts, bids=tuple(bids), asks=tuple(asks))


def broker_with(b: Book | None = None, q: Quote | None = None) -> PaperBroker:
    br = PaperBroker(CFG, order_prefix="t")
    q = q or Quote(ts=1_000, bid=99.0, ask=100.0, bid_size=1.0, ask_size=0.05)
    if b is not None:
        br.on_book(b)
    br.on_quote(q)
    return br


def fills(events) -> list[Fill]:
    return [e.fill for e in events if isinstance(e, OrderFilled)]


# ---- market orders walk the book ----

def test_a_market_buy_larger_than_the_best_level_fills_at_the_vwap_of_the_levels_it_takes():
    br = broker_with(book())
    br.submit(Side.BUY, "entry", now_ts=1_000, signal_ts=1_000, signal_px=99.5, qty=D("0.12"))
    (f,) = fills(br.advance(2_000))
    # 0.05 @ 100.0 + 0.07 @ 100.5 = 12.035 / 0.12
    assert f.legs == ((100.0, D("0.05")), (100.5, D("0.07")))
    assert f.fill_px == pytest.approx(12.035 / 0.12, abs=1e-8)
    assert f.depth_cost_bps == pytest.approx((12.035 / 0.12 - 100.0) / 100.0 * 1e4)
    assert f.price_model == "book" and f.liquidity == "taker" and not f.depth_exhausted
    assert f.spread_cost_bps == pytest.approx((100.0 - 99.5) / 99.5 * 1e4)  # best vs mid
    assert f.fee == (D("0.12") * D(repr(f.fill_px)) * D("6") / D("10000")).quantize(D("1e-8"))
    assert br.ledger.reconciles()


def test_depth_exhaustion_fills_the_rest_by_the_impact_rule_within_the_cap():
    levels = ((100.0, 0.05), (100.5, 0.1), (101.0, 0.2))
    w = walk(levels, D("1.35"), buy=True)
    assert w.exhausted and w.filled == D("1.35")
    last_px, last_qty = w.legs[-1]
    # the book's slope: (101 - 100) / 0.35 USD per BTC; the rest (1.0 BTC) at last + slope/2
    assert last_qty == D("1.0")
    assert last_px == pytest.approx(101.0 + (1.0 / 0.35) * 1.0 / 2, abs=1e-6)
    huge = walk(levels, D("1000"), buy=True)
    assert huge.legs[-1][0] == pytest.approx(100.0 * (1 + IMPACT_CAP))  # capped at 5 %
    sell = walk(((99.0, 0.01),), D("50"), buy=False)
    assert sell.legs[-1][0] >= 99.0 * (1 - IMPACT_CAP) and sell.exhausted


def test_without_depth_the_top_of_book_holds_the_quantity_and_says_so():
    br = broker_with(None)
    br.submit(Side.BUY, "entry", now_ts=1_000, signal_ts=1_000, signal_px=99.5, qty=D("5"))
    (f,) = fills(br.advance(2_000))
    assert f.fill_px == 100.0 and f.price_model == "top_of_book" and f.depth_cost_bps == 0.0


def test_a_fresher_quote_is_the_top_and_the_snapshot_gives_the_levels_beyond_it():
    br = broker_with(book())
    br.on_quote(Quote(ts=1_500, bid=99.5, ask=100.5, bid_size=1.0, ask_size=0.02))
    br.submit(Side.BUY, "entry", now_ts=1_500, signal_ts=1_500, signal_px=100.0, qty=D("0.1"))
    (f,) = fills(br.advance(2_500))
    assert f.legs == ((100.5, D("0.02")), (101.0, D("0.08")))  # 100.5 of the old book skipped


# ---- limit orders ----

def _limit(br, side=Side.BUY, price=99.0, qty="0.03", tif="GTC", timeout_ms=0):
    return br.submit_limit(side, "entry", now_ts=1_000, signal_ts=1_000, signal_px=99.5,
                           price=price, qty=D(qty), tif=tif, timeout_ms=timeout_ms)


def test_a_resting_limit_fills_only_after_trades_consume_the_queue_ahead_partially_at_maker():
    br = broker_with(book())
    _limit(br, price=99.0, qty="0.03")
    ev = br.advance(2_000)
    (rested,) = [e for e in ev if isinstance(e, OrderRested)]
    assert rested.order.queue_ahead == 1.0  # the 1.0 BTC bid at 99.0 was there first
    assert br.on_trade(TradeTick(2_100, 99.0, 0.6, "sell")) == []  # queue 1.0 -> 0.4
    assert br.on_trade(TradeTick(2_200, 99.0, 0.5, "buy")) == []  # a buyer: not our side
    assert br.on_trade(TradeTick(2_300, 99.5, 0.5, "sell")) == []  # above our bid
    (f1,) = fills(br.on_trade(TradeTick(2_400, 99.0, 0.41, "sell")))  # 0.4 queue + 0.01 us
    assert f1.qty == D("0.010") and f1.liquidity == "maker" and f1.fee_bps == 2.0
    assert f1.fill_px == 99.0 and f1.price_model == "queue"
    assert f1.order_filled == D("0.010") and f1.order_qty == D("0.03")
    assert br.resting and br.resting[0].remaining == D("0.020")
    (f2,) = fills(br.on_trade(TradeTick(2_500, 98.9, 5.0, "sell")))  # a print through it
    assert f2.qty == D("0.020") and f2.order_filled == D("0.030") and not br.resting
    assert br.position.qty == D("0.030") and br.ledger.reconciles()
    assert br.ledger.fees == f1.fee + f2.fee


def test_a_marketable_limit_takes_the_book_up_to_its_price_and_the_rest_rests():
    br = broker_with(book())
    _limit(br, price=100.5, qty="0.2")
    ev = br.advance(2_000)
    (taken,) = fills(ev)
    assert taken.liquidity == "taker" and taken.legs == ((100.0, D("0.05")), (100.5, D("0.1")))
    (rest,) = [e for e in ev if isinstance(e, OrderRested)]
    assert rest.order.remaining == D("0.05") and rest.order.filled_qty == D("0.15")


def test_ioc_cancels_what_it_cannot_take_and_post_only_never_takes():
    br = broker_with(book())
    _limit(br, price=100.0, qty="0.2", tif="IOC")
    ev = br.advance(2_000)
    assert fills(ev)[0].qty == D("0.05")
    (c,) = [e for e in ev if isinstance(e, OrderCancelled)]
    assert c.remaining == D("0.15") and "IOC" in c.reason and not br.resting
    br2 = broker_with(book())
    _limit(br2, price=100.0, qty="0.01", tif="POST_ONLY")
    (c2,) = br2.advance(2_000)
    assert isinstance(c2, OrderCancelled) and "post-only" in c2.reason
    br3 = broker_with(book())
    _limit(br3, price=99.0, qty="0.01", tif="POST_ONLY")
    assert isinstance(br3.advance(2_000)[0], OrderRested)


def test_a_timeout_cancels_the_remainder_a_latency_after_it_is_sent():
    br = broker_with(book())
    _limit(br, price=99.0, qty="0.03", timeout_ms=5_000)
    br.advance(2_000)  # arrives at 2,000; cancel sent at 7,000, effective at 8,000
    assert br.resting[0].cancel_ts == 8_000 and br.next_due() == 8_000
    assert br.advance(7_999) == []
    (c,) = br.advance(8_000)
    assert isinstance(c, OrderCancelled) and c.reason == "timeout" and c.remaining == D("0.03")


def test_a_partially_filled_resting_order_survives_a_restart_with_its_filled_qty_exact():
    br = broker_with(book())
    _limit(br, price=99.0, qty="0.03")
    br.advance(2_000)
    (f1,) = fills(br.on_trade(TradeTick(2_400, 99.0, 1.01, "sell")))
    state = json.loads(json.dumps(br.to_state()))
    # killed after the journal got the fill, before the state file did: the state has none
    before = PaperBroker(CFG, order_prefix="t")
    before.restore(json.loads(json.dumps(state)))
    assert before.resting[0].filled_qty == D("0.010")
    earlier = broker_with(book())
    _limit(earlier, price=99.0, qty="0.03")
    earlier.advance(2_000)
    behind = PaperBroker(CFG, order_prefix="t")
    behind.restore(json.loads(json.dumps(earlier.to_state())))
    assert behind.apply_recorded_fill(Fill.from_dict(json.loads(json.dumps(f1.to_dict()))))
    assert behind.resting[0].filled_qty == D("0.010")  # still working, the rest exact
    assert behind.position.qty == D("0.010") and behind.ledger.cash == br.ledger.cash
    assert not behind.apply_recorded_fill(f1)  # never twice
    (f2,) = fills(behind.on_trade(TradeTick(2_500, 98.9, 5.0, "sell")))
    assert f2.qty == D("0.020") and f2.order_filled == D("0.030")


# ---- the protocol ----

def _frame(bids, asks, ch="depth_book15"):
    return json.dumps({"ch": ch, "symbol": "BTCUSDT", "ts": 1_732_178_884_994,
                       "data": {"b": bids, "a": asks}})


def test_a_depth_book15_push_is_a_quote_and_a_book():
    q, b = parse_frame(_frame([["97000.0", "0.5"], ["96999.5", "1.2"]],
                              [["97000.1", "0.3"], ["97001.0", "2"]]))
    assert isinstance(q, Quote) and (q.bid, q.ask, q.ask_size) == (97000.0, 97000.1, 0.3)
    assert isinstance(b, Book) and b.asks == ((97000.1, 0.3), (97001.0, 2.0))


@pytest.mark.parametrize("bids,asks,why", [
    ([["100", "1"], ["101", "1"]], [["102", "1"]], "not sorted"),
    ([["100", "1"]], [["100", "1"]], "crossed"),
    ([["100", "0"]], [["101", "1"]], "size"),
    ([], [["101", "1"]], "no levels"),
    ([["100", "1"]], [["101", "-1"]], "size"),
])
def test_a_bad_book_is_a_parse_error_naming_what_is_wrong(bids, asks, why):
    with pytest.raises(ProtocolError, match=why):
        parse_frame(_frame(bids, asks))


LEVEL = st.tuples(st.floats(1.0, 1e6, allow_nan=False), st.floats(1e-6, 1e4, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(st.lists(LEVEL, max_size=20), st.lists(LEVEL, max_size=20))
def test_any_levels_make_a_valid_book_or_a_validation_error(bids, asks):
    try:
        b = Book(ts=1, bids=tuple(bids), asks=tuple(asks))
    except ValidationError:
        return
    assert all(b.bids[i][0] > b.bids[i + 1][0] for i in range(len(b.bids) - 1))
    assert all(b.asks[i][0] < b.asks[i + 1][0] for i in range(len(b.asks) - 1))
    assert b.best_bid < b.best_ask


@settings(max_examples=200, deadline=None)
@given(st.lists(LEVEL, min_size=1, max_size=15).map(
    lambda lv: tuple(sorted({p: s for p, s in lv}.items()))), st.integers(1, 5000),
    st.booleans())
def test_a_walk_fills_everything_at_a_vwap_between_best_and_the_cap(levels, lots, buy):
    levels = tuple(reversed(levels)) if not buy else levels
    qty = D(lots) * D("0.001")
    w = walk(levels, qty, buy)
    assert w.filled == qty and sum(q for _, q in w.legs) == qty
    best = levels[0][0]
    assert w.cost_bps(buy) >= -1e-6
    lo, hi = (best, best * (1 + IMPACT_CAP)) if buy else (best * (1 - IMPACT_CAP), best)
    assert lo - 1e-6 <= w.vwap <= hi + 1e-6


# ---- the real Binance books ----

REAL = Path(__file__).resolve().parents[2] / "resources" / "data" / \
    "btcusdt_perp_binance_depth15_2windows.jsonl.gz"


def test_a_market_order_on_a_replayed_binance_book_pays_the_depth_that_book_implies():
    """Replay the shipped window's frames through the parser and the broker; a buy larger than
    the best level at
    a known instant fills at the VWAP of that instant's recorded asks, computed here by hand
    from the file's own lines."""
    import gzip

    from trading.bitunix import parse_frame_ch
    from trading.replay import build_timeline
    from trading.runtime.datafiles import load_market_file
    data = load_market_file(REAL)
    tl = build_timeline(data, start_index=0)
    br = PaperBroker(BrokerConfig(latency_ms=0), order_prefix="t")
    target = None
    for n, (ts, raw) in enumerate(tl.iter_frames_bytes()):
        _ch, events = parse_frame_ch(raw)
        for ev in events:
            if isinstance(ev, Quote):
                br.on_quote(ev)
            elif isinstance(ev, Book):
                br.on_book(ev)
        if n > 4000 and isinstance(events[-1] if events else None, Book):
            target = ts
            break
    assert target is not None and br.book.ts == target
    lines = [json.loads(x) for x in gzip.open(REAL, "rt")]
    rec = [r for r in lines if r["ts_ms"] == target][-1]
    asks = [(float(p), float(s)) for p, s in rec["asks"]]
    # larger than the best level: all of it, the second, and half the third
    qty = D(int((asks[0][1] + asks[1][1] + asks[2][1] / 2) * 1000)) / 1000
    assert qty > D(repr(asks[0][1]))
    left, cost, legs = float(qty), 0.0, 0
    for p, s in asks:
        take = min(left, s)
        cost += take * p
        left -= take
        legs += 1
        if left <= 1e-12:
            break
    assert left <= 1e-9
    by_hand = cost / float(qty)
    br.submit(Side.BUY, "entry", now_ts=target, signal_ts=target, signal_px=asks[0][0],
              qty=qty)
    (f,) = fills(br.advance(target))
    assert f.price_model == "book" and not f.depth_exhausted and len(f.legs) == legs
    assert f.fill_px == pytest.approx(by_hand, abs=1e-6)
    assert f.depth_cost_bps == pytest.approx((by_hand - asks[0][0]) / asks[0][0] * 1e4, abs=1e-6)
    assert f.depth_cost_bps > 0
