"""PaperBroker: latency as a due time, fills at the quote in force, exact ledger, funding, recovery."""
from __future__ import annotations

import bisect
import json
import random
from decimal import Decimal

import pytest

from trading.broker import BrokerConfig, PaperBroker
from trading.model import (MONEY_Q, FundingApplied, FundingInfo, OrderCancelled, OrderFilled,
                           OrderRejected, OrderSubmitted, Quote, Side, px_dec)

T0 = 1_700_000_000_000
BUY, SELL = Side.BUY, Side.SELL


# ---- factories ----

def make_quote(ts, bid, ask, bid_size=1.0, ask_size=1.0) -> Quote:
    return Quote(ts=ts, bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size)


def make_funding(ts, next_funding_ts, rate=0.0001, mark=97000.1) -> FundingInfo:
    return FundingInfo(ts=ts, index_px=mark, mark_px=mark, funding_rate=rate,
                       funding_ts=ts - 1, next_funding_ts=next_funding_ts)


def make_broker(**overrides) -> PaperBroker:
    return PaperBroker(BrokerConfig(**overrides))


def fills(events) -> list:
    return [e.fill for e in events if isinstance(e, OrderFilled)]


def only(events, cls) -> list:
    return [e for e in events if isinstance(e, cls)]


def submit(broker, side, now_ts, reason="entry", signal_px=100.0, qty=None, stop=0.0, target=0.0):
    return broker.submit(side, reason, now_ts=now_ts, signal_ts=now_ts, signal_px=signal_px,
                         stop_distance=stop, target_distance=target,
                         qty=None if qty is None else Decimal(qty))


def open_position(broker, side, ts, bid, ask, qty="1", stop=0.0, target=0.0):
    """Quote at ts, submit at ts, fill at ts + latency; return the entry fill."""
    broker.on_quote(make_quote(ts, bid, ask))
    submit(broker, side, ts, signal_px=(bid + ask) / 2, qty=qty, stop=stop, target=target)
    (fill,) = fills(broker.advance(ts + broker.config.latency_ms))
    return fill


def q8(x: Decimal) -> Decimal:
    return x.quantize(MONEY_Q)


def assert_ledger_identity(broker):
    led = broker.ledger
    assert led.reconciles()
    assert led.cash == led.starting_cash + led.realized_pnl - led.fees - led.funding


# ---- latency: due time and the quote in force ----

def test_order_is_due_at_submit_time_plus_latency():
    broker = make_broker(latency_ms=1000)
    broker.on_quote(make_quote(T0, 100.0, 100.5))

    (ev,) = submit(broker, BUY, T0 + 10_000, qty="1")

    assert isinstance(ev, OrderSubmitted)
    assert ev.order.due_ts == T0 + 11_000
    assert ev.order.signal_ts == T0 + 10_000
    assert broker.pending == [ev.order]


def test_order_does_not_fill_before_due():
    broker = make_broker(latency_ms=1000)
    broker.on_quote(make_quote(T0, 100.0, 100.5))
    submit(broker, BUY, T0 + 10_000, qty="1")

    assert broker.advance(T0 + 10_999) == []
    assert broker.on_quote(make_quote(T0 + 10_500, 100.1, 100.6)) == []
    assert broker.on_quote(make_quote(T0 + 10_999, 100.2, 100.7)) == []
    assert broker.position.is_flat
    assert broker.ledger.cash == Decimal("10000")
    assert len(broker.pending) == 1


def test_buy_fills_at_ask_of_quote_in_force_at_due():
    broker = make_broker(latency_ms=1000)
    broker.on_quote(make_quote(T0, 100.0, 100.5))
    submit(broker, BUY, T0 + 1000, signal_px=100.2, qty="1")
    broker.on_quote(make_quote(T0 + 1500, 101.0, 101.5))

    (fill,) = fills(broker.advance(T0 + 2000))

    assert (fill.side, fill.fill_px, fill.bid, fill.ask) == (BUY, 101.5, 101.0, 101.5)
    assert (fill.fill_ts, fill.due_ts, fill.signal_ts, fill.latency_ms) == (
        T0 + 2000, T0 + 2000, T0 + 1000, 1000)
    assert broker.position.qty == Decimal("1")
    assert broker.position.avg_px == Decimal("101.5")
    assert broker.pending == []


def test_sell_fills_at_bid_of_quote_in_force_at_due():
    broker = make_broker(latency_ms=250)
    broker.on_quote(make_quote(T0, 100.0, 100.5))
    submit(broker, SELL, T0, qty="2")
    broker.on_quote(make_quote(T0 + 100, 99.0, 99.4))

    (fill,) = fills(broker.advance(T0 + 300))

    assert (fill.side, fill.fill_px, fill.fill_ts) == (SELL, 99.0, T0 + 250)
    assert broker.position.qty == Decimal("-2")


@pytest.mark.parametrize("side,expected_px", [(BUY, 101.5), (SELL, 101.0)])
def test_quote_after_due_fills_at_the_previous_quote(side, expected_px):
    broker = make_broker(latency_ms=1000)
    broker.on_quote(make_quote(T0, 100.0, 100.5))
    submit(broker, side, T0 + 1000, qty="1")
    broker.on_quote(make_quote(T0 + 1800, 101.0, 101.5))  # the quote in force at due (T0+2000)

    events = broker.on_quote(make_quote(T0 + 2200, 110.0, 110.5))

    (fill,) = fills(events)
    assert fill.fill_px == expected_px
    assert (fill.bid, fill.ask, fill.fill_ts) == (101.0, 101.5, T0 + 2000)
    assert broker.quote.ts == T0 + 2200


@pytest.mark.parametrize("side,expected_px", [(BUY, 103.5), (SELL, 103.0)])
def test_quote_exactly_at_due_is_the_quote_used(side, expected_px):
    broker = make_broker(latency_ms=1000)
    broker.on_quote(make_quote(T0, 100.0, 100.5))
    submit(broker, side, T0 + 1000, qty="1")

    (fill,) = fills(broker.on_quote(make_quote(T0 + 2000, 103.0, 103.5)))

    assert fill.fill_px == expected_px
    assert fill.fill_ts == T0 + 2000


def test_fill_price_is_the_quote_not_the_signal_candle_close():
    broker = make_broker(latency_ms=1000)
    broker.on_candle_close(100.0)
    broker.on_quote(make_quote(T0, 100.3, 100.7))
    submit(broker, BUY, T0, signal_px=100.0, qty="1")

    (fill,) = fills(broker.advance(T0 + 1000))

    assert fill.signal_px == 100.0
    assert fill.fill_px == 100.7
    assert fill.fill_px != fill.signal_px


def test_zero_latency_fills_on_the_same_advance():
    broker = make_broker(latency_ms=0)
    broker.on_quote(make_quote(T0, 100.0, 100.5))
    submit(broker, BUY, T0, qty="1")

    (fill,) = fills(broker.advance(T0))

    assert (fill.fill_px, fill.fill_ts) == (100.5, T0)


# ---- no-quote fallback ----

@pytest.mark.parametrize("side,expected_px", [(BUY, 50010.0), (SELL, 49990.0)])
def test_no_quote_fallback_is_last_close_plus_minus_slip(side, expected_px):
    broker = make_broker(latency_ms=1000, slip_bps=2.0)
    broker.on_candle_close(50000.0)
    submit(broker, side, T0, signal_px=49000.0, qty="0.1")

    (fill,) = fills(broker.advance(T0 + 1000))

    assert fill.fill_px == expected_px
    assert fill.bid == fill.ask == 50000.0
    assert fill.trigger == "no_quote_fallback"
    assert fill.spread_cost_bps == pytest.approx(2.0)


def test_no_quote_and_no_close_falls_back_to_signal_px():
    broker = make_broker(latency_ms=0, slip_bps=10.0)
    submit(broker, BUY, T0, signal_px=1000.0, qty="0.1")

    (fill,) = fills(broker.advance(T0))

    assert fill.fill_px == 1001.0


# ---- fees and cost attribution ----

@pytest.mark.parametrize("qty,ask", [("0.123", "97000.1"), ("1.234", "97000.1"),
                                     ("0.001", "65000.5"), ("0.309", "97123.4")])
def test_taker_fee_is_qty_times_price_times_6_bps_exactly(qty, ask):
    broker = make_broker(latency_ms=0)
    broker.on_quote(make_quote(T0, float(ask) - 0.1, float(ask)))
    submit(broker, BUY, T0, qty=qty)

    (fill,) = fills(broker.advance(T0))

    expected = Decimal(qty) * Decimal(ask) * Decimal(6) / Decimal(10_000)
    assert fill.fee == expected
    assert fill.fee_bps == 6.0
    assert broker.ledger.fees == expected
    assert broker.ledger.cash == Decimal("10000") - expected
    assert fill.cash_after == broker.ledger.cash


def test_fee_is_rounded_half_even_to_ledger_precision():
    broker = make_broker(latency_ms=0)
    broker.on_quote(make_quote(T0, 97000.0, 97000.015))
    submit(broker, BUY, T0, qty="0.005")

    (fill,) = fills(broker.advance(T0))

    # 0.005 * 97000.015 * 0.0006 = 0.291000045: a tie, and half-even keeps the 4
    assert fill.fee == Decimal("0.29100004")


@pytest.mark.parametrize("side", [BUY, SELL])
def test_spread_cost_is_positive_for_crossing_the_spread(side):
    broker = make_broker(latency_ms=0)
    broker.on_quote(make_quote(T0, 99.5, 100.5))
    submit(broker, side, T0, signal_px=100.0, qty="1")

    (fill,) = fills(broker.advance(T0))

    assert fill.mid == 100.0
    assert fill.spread_cost_bps == pytest.approx(50.0)


@pytest.mark.parametrize("side,mid_at_fill,expected_bps", [
    (BUY, 101.0, 100.0),    # price ran away from a buyer: cost
    (BUY, 99.0, -100.0),    # price came to a buyer: gain
    (SELL, 99.0, 100.0),    # price fell away from a seller: cost
    (SELL, 101.0, -100.0),
])
def test_latency_drift_sign_and_value(side, mid_at_fill, expected_bps):
    broker = make_broker(latency_ms=1000)
    broker.on_quote(make_quote(T0, 99.9, 100.1))
    submit(broker, side, T0, signal_px=100.0, qty="1")
    broker.on_quote(make_quote(T0 + 500, mid_at_fill - 0.1, mid_at_fill + 0.1))

    (fill,) = fills(broker.advance(T0 + 1000))

    assert fill.latency_drift_bps == pytest.approx(expected_bps)
    assert fill.spread_cost_bps == pytest.approx(0.1 / mid_at_fill * 1e4)


# ---- sizing ----

def test_size_by_risk_is_rounded_down_to_the_lot():
    broker = make_broker(latency_ms=0, risk_per_trade=0.01, max_leverage=100.0)
    broker.on_quote(make_quote(T0, 999.9, 1000.0))

    (ev,) = submit(broker, BUY, T0, stop=60.1)

    # 10000 * 1% / 60.1 = 1.66389... -> 1.663 (nearest would be 1.664)
    assert ev.order.qty == Decimal("1.663")


def test_size_uses_bid_for_a_sell_when_leverage_binds():
    broker = make_broker(latency_ms=0, risk_per_trade=0.01, max_leverage=3.0)
    broker.on_quote(make_quote(T0, 50000.0, 60000.0))

    (ev,) = submit(broker, SELL, T0, stop=1.0)

    # cap = 10000 * 3 / bid 50000 = 0.6 exactly
    assert ev.order.qty == Decimal("0.600")


def test_size_is_capped_by_max_leverage():
    broker = make_broker(latency_ms=0, risk_per_trade=0.01, max_leverage=3.0)
    broker.on_quote(make_quote(T0, 97000.0, 97000.1))

    (ev,) = submit(broker, BUY, T0, stop=10.0)

    # risk says 100 / 10 = 10 BTC; leverage caps at 30000 / 97000.1 = 0.30927... -> 0.309
    assert ev.order.qty == Decimal("0.309")
    (fill,) = fills(broker.advance(T0))
    assert fill.qty * px_dec(fill.fill_px) <= Decimal("30000")


def test_size_follows_equity_including_unrealized():
    broker = make_broker(latency_ms=0, risk_per_trade=0.01, max_leverage=100.0)
    open_position(broker, BUY, T0, 999.0, 1000.0, qty="10")
    broker.on_quote(make_quote(T0 + 1, 1099.0, 1101.0))  # mid 1100: +1000 unrealized

    expected_equity = Decimal("10000") - Decimal("6") + Decimal("1000")
    assert broker.equity() == expected_equity
    assert broker.size_for(100.0, 1100.0) == Decimal("1.099")  # 1% of 10994 / 100 = 1.0994


def test_sizes_without_a_stop_and_fixed_sizes():
    broker = make_broker(latency_ms=0)
    broker.on_quote(make_quote(T0, 97000.0, 97000.1))
    # no stop: the notional cap, 1x equity = 10000 / 97000.1 -> 0.103 BTC
    assert broker.size_for(0.0, 97000.1) == Decimal("0.103")
    fixed = PaperBroker(BrokerConfig(fixed_qty="0.25"))
    assert fixed.config.fixed_qty == Decimal("0.25")
    assert fixed.size_for(100.0, 97000.0) == fixed.size_for(0.0, 1.0) == Decimal("0.25")
    for bad in ("0.0005", "-1", "abc", "2e6"):
        with pytest.raises(ValueError, match="fixed_qty must be a multiple of the lot size"):
            BrokerConfig(fixed_qty=bad)


@pytest.mark.parametrize("stop", [1e9, -5.0])
def test_entry_below_minimum_size_is_rejected(stop):
    broker = make_broker(latency_ms=0)
    broker.on_quote(make_quote(T0, 97000.0, 97000.1))

    (ev,) = submit(broker, BUY, T0, stop=stop)

    assert isinstance(ev, OrderRejected)
    assert "below minimum 0.001" in ev.reason
    assert ev.ts == T0
    assert broker.pending == []
    assert broker.advance(T0 + 10_000) == []
    assert broker.position.is_flat


def test_explicit_qty_below_minimum_is_rejected():
    broker = make_broker(latency_ms=0)

    (ev,) = submit(broker, BUY, T0, qty="0.0009")

    assert isinstance(ev, OrderRejected)


def test_exit_without_position_is_rejected():
    broker = make_broker(latency_ms=0)

    (ev,) = submit(broker, SELL, T0, reason="exit")

    assert isinstance(ev, OrderRejected)
    assert ev.reason == "no position to exit"
    assert broker.pending == []


def test_order_ids_are_sequential_and_never_reused():
    broker = make_broker(latency_ms=0)
    broker.on_quote(make_quote(T0, 100.0, 100.5))

    ids = [submit(broker, BUY, T0, qty="1")[0].order.order_id,
           submit(broker, SELL, T0, reason="exit")[0].order_id,  # rejected: still flat
           submit(broker, BUY, T0, qty="1")[0].order.order_id]

    assert ids == ["ord-00001", "ord-00002", "ord-00003"]


# ---- stops and targets ----

def test_long_entry_sets_stop_and_target_from_fill_price():
    broker = make_broker(latency_ms=0)

    fill = open_position(broker, BUY, T0, 100.0, 100.5, stop=2.0, target=3.0)

    assert fill.fill_px == 100.5
    assert (broker.position.stop_px, broker.position.target_px) == (98.5, 103.5)


def test_short_entry_sets_stop_and_target_from_fill_price():
    broker = make_broker(latency_ms=0)

    fill = open_position(broker, SELL, T0, 100.0, 100.5, stop=2.0, target=3.0)

    assert fill.fill_px == 100.0
    assert (broker.position.stop_px, broker.position.target_px) == (102.0, 97.0)


def test_long_stop_fills_at_bid_with_trigger_recorded():
    broker = make_broker(latency_ms=0)
    open_position(broker, BUY, T0, 100.0, 100.5, stop=2.0, target=3.0)

    assert broker.on_quote(make_quote(T0 + 100, 98.6, 98.9)) == []
    events = broker.on_quote(make_quote(T0 + 200, 98.5, 98.8))

    (sub,) = only(events, OrderSubmitted)
    (fill,) = fills(events)
    assert sub.order.reason == "stop" and sub.order.reduce_only
    assert (fill.side, fill.reason, fill.fill_px, fill.fill_ts) == (SELL, "stop", 98.5, T0 + 200)
    assert (fill.trigger, fill.trigger_px) == ("stop", 98.5)
    assert (fill.signal_ts, fill.signal_px, fill.due_ts, fill.latency_drift_bps) == (
        None, None, None, None)
    assert fill.realized_pnl == Decimal("-2.0")
    assert fill.fee == Decimal("0.0591")
    assert broker.position.is_flat
    assert broker.position.stop_px is None and broker.position.target_px is None


def test_long_gap_through_stop_fills_at_the_gapped_bid():
    broker = make_broker(latency_ms=0)
    open_position(broker, BUY, T0, 100.0, 100.5, stop=2.0)

    (fill,) = fills(broker.on_quote(make_quote(T0 + 100, 95.0, 95.3)))

    assert fill.fill_px == 95.0
    assert fill.trigger_px == 98.5
    assert fill.realized_pnl == Decimal("-5.5")


def test_long_target_fills_at_bid():
    broker = make_broker(latency_ms=0)
    open_position(broker, BUY, T0, 100.0, 100.5, stop=2.0, target=3.0)

    assert broker.on_quote(make_quote(T0 + 100, 103.4, 103.9)) == []
    (fill,) = fills(broker.on_quote(make_quote(T0 + 200, 104.0, 104.2)))

    assert (fill.reason, fill.trigger, fill.trigger_px, fill.fill_px) == (
        "target", "target", 103.5, 104.0)
    assert fill.realized_pnl == Decimal("3.5")
    assert fill.signal_px is None


def test_short_stop_fills_at_ask_and_gap_uses_gapped_ask():
    broker = make_broker(latency_ms=0)
    open_position(broker, SELL, T0, 100.0, 100.5, stop=2.0, target=3.0)

    assert broker.on_quote(make_quote(T0 + 100, 101.5, 101.9)) == []
    (fill,) = fills(broker.on_quote(make_quote(T0 + 200, 104.0, 105.0)))

    assert (fill.side, fill.reason, fill.fill_px, fill.trigger_px) == (BUY, "stop", 105.0, 102.0)
    assert fill.realized_pnl == Decimal("-5.0")
    assert broker.position.is_flat


def test_short_stop_at_exact_level_fills_at_ask():
    broker = make_broker(latency_ms=0)
    open_position(broker, SELL, T0, 100.0, 100.5, stop=2.0)

    (fill,) = fills(broker.on_quote(make_quote(T0 + 100, 101.8, 102.0)))

    assert (fill.fill_px, fill.trigger) == (102.0, "stop")


def test_short_target_fills_at_ask():
    broker = make_broker(latency_ms=0)
    open_position(broker, SELL, T0, 100.0, 100.5, stop=2.0, target=3.0)

    (fill,) = fills(broker.on_quote(make_quote(T0 + 100, 96.0, 96.5)))

    assert (fill.side, fill.reason, fill.fill_px, fill.trigger_px) == (BUY, "target", 96.5, 97.0)
    assert fill.realized_pnl == Decimal("3.5")


def test_reduce_only_exit_after_stop_closed_is_cancelled():
    broker = make_broker(latency_ms=1000)
    open_position(broker, BUY, T0, 100.0, 100.5, stop=2.0)
    submit(broker, SELL, T0 + 2000, reason="exit")
    broker.on_quote(make_quote(T0 + 2500, 98.0, 98.2))  # stop fires
    fees_before = broker.ledger.fees

    events = broker.advance(T0 + 3000)

    assert events == [OrderCancelled("ord-00002", T0 + 3000, "position already closed")]
    assert broker.ledger.fees == fees_before
    assert broker.position.is_flat
    assert broker.pending == []


def test_stop_and_exit_due_on_the_same_quote_fill_once():
    broker = make_broker(latency_ms=1000)
    open_position(broker, BUY, T0, 100.0, 100.5, stop=2.0)
    submit(broker, SELL, T0 + 2000, reason="exit")

    events = broker.on_quote(make_quote(T0 + 3000, 98.0, 98.2))

    (fill,) = fills(events)
    assert fill.reason == "stop"
    assert only(events, OrderCancelled) == [
        OrderCancelled("ord-00002", T0 + 3000, "position already closed")]
    assert broker.position.is_flat


def test_exit_fills_at_the_quote_in_force_and_realizes_pnl():
    broker = make_broker(latency_ms=1000)
    open_position(broker, BUY, T0, 100.0, 100.5, qty="2")
    submit(broker, SELL, T0 + 5000, reason="exit", signal_px=101.0)
    broker.on_quote(make_quote(T0 + 5500, 101.2, 101.4))

    (fill,) = fills(broker.advance(T0 + 6000))

    assert (fill.reason, fill.fill_px, fill.qty) == ("exit", 101.2, Decimal("2"))
    assert fill.realized_pnl == Decimal("1.4")
    assert broker.ledger.realized_pnl == Decimal("1.4")
    assert broker.position.is_flat


def test_reduce_only_exit_is_clipped_to_the_held_size():
    broker = make_broker(latency_ms=0)
    open_position(broker, BUY, T0, 100.0, 100.5, qty="1")
    submit(broker, SELL, T0 + 10, reason="exit", qty="5")

    (fill,) = fills(broker.advance(T0 + 10))

    assert fill.qty == Decimal("1")
    assert broker.position.is_flat


# ---- flatten and reversal ----

def test_flatten_long_sells_at_bid_and_cancels_pending():
    broker = make_broker(latency_ms=1000)
    open_position(broker, BUY, T0, 100.0, 100.5, qty="1", stop=5.0)
    broker.on_quote(make_quote(T0 + 1500, 101.0, 101.3))
    submit(broker, SELL, T0 + 1600, reason="exit")

    events = broker.flatten(T0 + 1700)

    assert events[0] == OrderCancelled("ord-00002", T0 + 1700, "cancelled by flatten")
    (fill,) = fills(events)
    assert (fill.side, fill.reason, fill.trigger, fill.fill_px, fill.fill_ts) == (
        SELL, "flatten", "flatten", 101.0, T0 + 1700)
    assert fill.signal_ts is None and fill.due_ts is None
    assert fill.realized_pnl == Decimal("0.5")
    assert broker.pending == []
    assert broker.position.is_flat
    assert broker.advance(T0 + 10_000) == []


def test_flatten_short_buys_at_ask():
    broker = make_broker(latency_ms=0)
    open_position(broker, SELL, T0, 100.0, 100.5, qty="3")
    broker.on_quote(make_quote(T0 + 100, 99.0, 99.2))

    (fill,) = fills(broker.flatten(T0 + 200, reason="shutdown"))

    assert (fill.side, fill.fill_px, fill.reason, fill.qty) == (BUY, 99.2, "shutdown", Decimal("3"))
    assert fill.realized_pnl == Decimal("2.4")


def test_flatten_when_flat_only_cancels():
    broker = make_broker(latency_ms=1000)
    broker.on_quote(make_quote(T0, 100.0, 100.5))
    submit(broker, BUY, T0, qty="1")

    events = broker.flatten(T0 + 10)

    assert events == [OrderCancelled("ord-00001", T0 + 10, "cancelled by flatten")]
    assert broker.flatten(T0 + 20) == []
    assert broker.advance(T0 + 5000) == []
    assert broker.position.is_flat


def test_reversal_closes_then_opens_the_other_side():
    broker = make_broker(latency_ms=0)
    open_position(broker, BUY, T0, 100.0, 100.5, qty="1", stop=2.0)
    broker.on_quote(make_quote(T0 + 100, 101.0, 101.2))

    submit(broker, SELL, T0 + 100, qty="2", stop=1.5, target=2.0)
    (fill,) = fills(broker.advance(T0 + 100))

    assert fill.realized_pnl == Decimal("0.5")
    assert fill.position_after == Decimal("-1")
    pos = broker.position
    assert (pos.qty, pos.avg_px, pos.opened_ts) == (Decimal("-1"), Decimal("101.0"), T0 + 100)
    assert (pos.stop_px, pos.target_px) == (102.5, 99.0)
    assert_ledger_identity(broker)


def test_adding_to_a_position_averages_the_entry():
    broker = make_broker(latency_ms=0)
    open_position(broker, BUY, T0, 99.5, 100.0, qty="1")
    open_position(broker, BUY, T0 + 10, 101.5, 102.0, qty="3")

    assert broker.position.qty == Decimal("4")
    assert broker.position.avg_px == Decimal("101.5")


# ---- equity ----

def test_equity_marks_a_long_to_mid():
    broker = make_broker(latency_ms=0)
    fill = open_position(broker, BUY, T0, 100.0, 100.5, qty="2")
    broker.on_quote(make_quote(T0 + 100, 101.0, 102.0))

    assert broker.mark() == 101.5
    assert broker.unrealized() == Decimal("2.0")
    assert broker.equity() == Decimal("10000") - fill.fee + Decimal("2.0")


def test_equity_marks_a_short_to_mid():
    broker = make_broker(latency_ms=0)
    fill = open_position(broker, SELL, T0, 100.0, 100.5, qty="2")
    broker.on_quote(make_quote(T0 + 100, 101.0, 102.0))

    assert broker.unrealized() == Decimal("-3.0")
    assert broker.equity() == Decimal("10000") - fill.fee - Decimal("3.0")


def test_equity_without_quote_marks_to_last_close():
    broker = make_broker(latency_ms=0)
    broker.on_candle_close(100.0)
    submit(broker, BUY, T0, qty="1")
    fill = fills(broker.advance(T0))[0]
    broker.on_candle_close(103.0)

    assert broker.unrealized() == Decimal("3.0") - (px_dec(fill.fill_px) - Decimal("100.0"))


# ---- funding ----

def test_long_pays_funding_exactly_once_at_next_funding_time():
    broker = make_broker(latency_ms=0)
    open_position(broker, BUY, T0, 97000.0, 97000.2, qty="0.5")
    assert broker.on_funding_info(make_funding(T0 + 100, T0 + 10_000, rate=0.0001,
                                               mark=97000.1)) == []
    cash_before = broker.ledger.cash

    assert broker.on_quote(make_quote(T0 + 9_999, 97000.0, 97000.2)) == []
    events = broker.on_quote(make_quote(T0 + 10_000, 97000.0, 97000.2))

    assert events == [FundingApplied(ts=T0 + 10_000, rate=0.0001, mark_px=97000.1,
                                     position_qty=Decimal("0.5"), amount=Decimal("4.850005"))]
    assert broker.ledger.funding == Decimal("4.850005")
    assert broker.ledger.cash == cash_before - Decimal("4.850005")
    # later quotes, advances and a stale price push for the same funding time charge nothing
    assert broker.on_quote(make_quote(T0 + 10_500, 97000.0, 97000.2)) == []
    assert broker.advance(T0 + 20_000) == []
    assert broker.on_funding_info(make_funding(T0 + 9_000, T0 + 10_000)) == []
    assert broker.on_quote(make_quote(T0 + 21_000, 97000.0, 97000.2)) == []
    assert broker.ledger.funding == Decimal("4.850005")
    assert_ledger_identity(broker)


def test_short_receives_funding_on_advance():
    broker = make_broker(latency_ms=0)
    open_position(broker, SELL, T0, 97000.0, 97000.2, qty="0.5")
    broker.on_funding_info(make_funding(T0 + 100, T0 + 10_000, rate=0.0001, mark=97000.1))
    cash_before = broker.ledger.cash

    (ev,) = broker.advance(T0 + 10_001)

    assert ev.amount == Decimal("-4.850005")
    assert ev.position_qty == Decimal("-0.5")
    assert broker.ledger.cash == cash_before + Decimal("4.850005")
    assert broker.ledger.funding == Decimal("-4.850005")
    assert_ledger_identity(broker)


def test_long_receives_when_the_rate_is_negative():
    broker = make_broker(latency_ms=0)
    open_position(broker, BUY, T0, 97000.0, 97000.2, qty="1")
    broker.on_funding_info(make_funding(T0 + 100, T0 + 10_000, rate=-0.0002, mark=97000.0))

    (ev,) = broker.advance(T0 + 10_000)

    assert ev.amount == Decimal("-19.4")


def test_flat_pays_no_funding():
    broker = make_broker(latency_ms=0)
    broker.on_quote(make_quote(T0, 97000.0, 97000.2))
    broker.on_funding_info(make_funding(T0 + 100, T0 + 10_000))

    assert broker.advance(T0 + 10_000) == []
    assert broker.on_quote(make_quote(T0 + 11_000, 97000.0, 97000.2)) == []
    assert broker.ledger.funding == Decimal("0")
    assert broker.ledger.cash == Decimal("10000")


def test_funding_passed_before_a_new_price_push_is_settled_then_next_time_learned():
    broker = make_broker(latency_ms=0)
    open_position(broker, BUY, T0, 97000.0, 97000.2, qty="1")
    broker.on_funding_info(make_funding(T0 + 100, T0 + 10_000, rate=0.0001, mark=97000.0))

    events = broker.on_funding_info(make_funding(T0 + 10_050, T0 + 20_000, rate=0.0002,
                                                 mark=98000.0))

    assert [e.amount for e in events] == [Decimal("9.7")]
    assert broker.funding_due_ts == T0 + 20_000
    (second,) = broker.advance(T0 + 20_000)
    assert second.amount == Decimal("19.6")
    assert broker.ledger.funding == Decimal("29.3")


def test_position_held_through_funding_time_pays_even_if_stopped_on_next_quote():
    broker = make_broker(latency_ms=0)
    open_position(broker, BUY, T0, 99999.9, 100000.1, qty="0.1", stop=50.0)
    broker.on_funding_info(make_funding(T0 + 100, T0 + 5_000, rate=0.0001, mark=100000.0))

    events = broker.on_quote(make_quote(T0 + 6_000, 99900.0, 99900.2))  # funding at T0+5000 passed

    assert [f.reason for f in fills(events)] == ["stop"]
    assert [e.amount for e in only(events, FundingApplied)] == [Decimal("1.0")]


def test_position_opened_after_funding_time_pays_nothing():
    broker = make_broker(latency_ms=1000)
    broker.on_quote(make_quote(T0, 99999.9, 100000.1))
    broker.on_funding_info(make_funding(T0 + 100, T0 + 5_000, rate=0.0001, mark=100000.0))
    submit(broker, BUY, T0 + 4_500, qty="0.1")  # due T0+5500, after the funding time

    events = broker.advance(T0 + 6_000)

    assert [f.fill_ts for f in fills(events)] == [T0 + 5_500]
    assert only(events, FundingApplied) == []


# ---- ledger over a long random session ----

def _random_session(seed: int, steps: int = 900):
    """Drive one broker through a seeded random session; return it, all events and quotes."""
    rng = random.Random(seed)
    broker = make_broker(latency_ms=700)
    events: list = []
    quotes: list[Quote] = []
    ts = T0
    tenths = 970_000  # price in 0.1 USDT ticks, so every price is exact in decimal
    events += broker.on_funding_info(make_funding(ts, ts + 20_000, rate=0.0001, mark=97000.0))
    for _ in range(steps):
        ts += rng.randint(100, 1500)
        tenths += rng.randint(-60, 60)
        q = make_quote(ts, tenths / 10, (tenths + rng.randint(0, 5)) / 10)
        quotes.append(q)
        events += broker.on_quote(q)
        assert_ledger_identity(broker)
        if broker.funding_due_ts is None and rng.random() < 0.2:
            events += broker.on_funding_info(make_funding(
                ts, ts + rng.randint(5_000, 60_000), rate=rng.choice([-3, -1, 1, 2, 5]) / 10_000,
                mark=tenths / 10))
        r = rng.random()
        held = broker.position.qty
        if not broker.pending:
            if held == 0 and r < 0.2:
                events += broker.submit(rng.choice([BUY, SELL]), "entry", now_ts=ts, signal_ts=ts,
                                        signal_px=tenths / 10,
                                        stop_distance=rng.randint(30, 400) / 10,
                                        target_distance=rng.randint(30, 600) / 10)
            elif held != 0 and r < 0.08:
                events += broker.submit(SELL if held > 0 else BUY, "exit", now_ts=ts,
                                        signal_ts=ts, signal_px=tenths / 10)
            elif held != 0 and r < 0.11:
                events += broker.submit(SELL if held > 0 else BUY, "entry", now_ts=ts,
                                        signal_ts=ts, signal_px=tenths / 10,
                                        stop_distance=rng.randint(30, 400) / 10,
                                        qty=abs(held) * 2)
        if rng.random() < 0.01:
            events += broker.flatten(ts)
        if rng.random() < 0.3:
            ts += rng.randint(0, 800)
            events += broker.advance(ts)
        assert_ledger_identity(broker)
    events += broker.flatten(ts + 1)
    return broker, events, quotes


def _quote_in_force(quotes: list[Quote], ts: int) -> Quote:
    i = bisect.bisect_right([q.ts for q in quotes], ts) - 1
    return quotes[i]


@pytest.mark.parametrize("seed", [1, 7, 42, 2024, 31337])
def test_ledger_reconciles_exactly_after_random_session(seed):
    broker, events, quotes = _random_session(seed)
    all_fills = fills(events)
    funding = only(events, FundingApplied)

    # the session really exercised the broker
    reasons = {f.reason for f in all_fills}
    assert len(all_fills) >= 30
    assert {"entry", "exit", "stop", "target"} <= reasons
    assert funding and any(e.amount < 0 for e in funding) and any(e.amount > 0 for e in funding)

    # cash follows every fill and funding payment, in order, to the last 1e-8
    cash = broker.config.starting_cash
    for e in events:
        if isinstance(e, OrderFilled):
            cash += e.fill.realized_pnl - e.fill.fee
            assert e.fill.cash_after == cash
        elif isinstance(e, FundingApplied):
            cash -= e.amount
    led = broker.ledger
    assert cash == led.cash
    assert_ledger_identity(broker)
    assert led.fees == sum((f.fee for f in all_fills), Decimal("0"))
    assert led.realized_pnl == sum((f.realized_pnl for f in all_fills), Decimal("0"))
    assert led.funding == sum((e.amount for e in funding), Decimal("0"))

    # flat at the end: realized PnL is exactly the cash flow of the fills
    assert broker.position.is_flat and broker.pending == []
    assert sum((f.qty * f.side.sign for f in all_fills), Decimal("0")) == 0
    assert led.realized_pnl == sum((-f.qty * f.side.sign * px_dec(f.fill_px) for f in all_fills),
                                   Decimal("0"))
    for f in all_fills:
        assert f.fee == q8(f.qty * px_dec(f.fill_px) * Decimal("0.0006"))
        assert f.fill_px == (f.ask if f.side is BUY else f.bid)
        if f.due_ts is not None:  # strategy orders: the quote in force at the due time
            q = _quote_in_force(quotes, f.due_ts)
            assert (f.bid, f.ask, f.fill_ts) == (q.bid, q.ask, f.due_ts)
    assert broker.equity() == led.cash


def test_random_session_is_deterministic():
    _, first, _ = _random_session(5, steps=300)
    _, second, _ = _random_session(5, steps=300)

    assert first == second


# ---- persistence ----

def _snapshot_broker():
    """A broker with an open long, stop/target, a pending exit and a funding time ahead."""
    broker = make_broker(latency_ms=1000)
    broker.on_quote(make_quote(T0, 97000.0, 97000.2))
    broker.on_candle_close(97000.1)
    submit(broker, BUY, T0, signal_px=97000.1, stop=60.0, target=100.0)
    broker.on_quote(make_quote(T0 + 1000, 97001.0, 97001.2))
    broker.on_funding_info(make_funding(T0 + 1100, T0 + 20_000, rate=0.0001, mark=97001.1))
    broker.on_quote(make_quote(T0 + 2500, 97005.0, 97005.3))
    submit(broker, SELL, T0 + 3000, reason="exit", signal_px=97005.1)
    return broker


def _restored_copy(broker):
    state = json.loads(json.dumps(broker.to_state()))
    copy = make_broker(latency_ms=1000)
    copy.restore(state)
    return copy


def _tail(broker) -> list:
    ev = []
    ev += broker.on_quote(make_quote(T0 + 3500, 97010.0, 97010.3))
    ev += broker.on_quote(make_quote(T0 + 4000, 97012.0, 97012.4))  # exit due exactly now
    broker.on_candle_close(97012.1)
    ev += broker.submit(SELL, "entry", now_ts=T0 + 5000, signal_ts=T0 + 5000, signal_px=97012.1,
                        stop_distance=50.0, target_distance=80.0)
    ev += broker.on_quote(make_quote(T0 + 6000, 97000.0, 97000.3))
    ev += broker.on_quote(make_quote(T0 + 15_000, 97001.0, 97001.3))
    ev += broker.advance(T0 + 20_000)  # funding: the short receives
    ev += broker.on_quote(make_quote(T0 + 21_000, 97060.0, 97060.4))  # gap through the stop
    ev += broker.submit(BUY, "entry", now_ts=T0 + 22_000, signal_ts=T0 + 22_000,
                        signal_px=97060.2, stop_distance=40.0)
    ev += broker.on_quote(make_quote(T0 + 23_000, 97070.0, 97070.5))
    ev += broker.flatten(T0 + 24_000)
    return ev


def test_state_survives_json_and_restores_identically():
    original = _snapshot_broker()
    restored = _restored_copy(original)

    assert restored.to_state() == original.to_state()
    assert restored.position == original.position
    assert restored.pending == original.pending
    assert restored.ledger == original.ledger


def test_restored_broker_behaves_like_the_original():
    original = _snapshot_broker()
    restored = _restored_copy(original)

    expected = _tail(original)
    got = _tail(restored)

    assert got == expected
    assert [f.reason for f in fills(expected)] == ["exit", "entry", "stop", "entry", "flatten"]
    assert len(only(expected, FundingApplied)) == 1
    assert only(expected, FundingApplied)[0].amount < 0
    assert restored.to_state() == original.to_state()
    assert restored.equity() == original.equity()
    assert fills(got)[0].order_id == "ord-00002"


def test_restored_broker_fills_pending_order_at_the_quote_in_force_at_due():
    original = _snapshot_broker()
    restored = _restored_copy(original)
    later = make_quote(T0 + 4500, 97020.0, 97020.4)  # after the exit's due time (T0+4000)

    expected = fills(original.on_quote(later))
    got = fills(restored.on_quote(later))

    assert expected[0].fill_px == 97005.0
    assert got == expected


# ---- configuration ----

@pytest.mark.parametrize("field,value", [
    ("starting_cash", Decimal("0")), ("starting_cash", Decimal("-1")),
    ("taker_fee_bps", -1.0), ("taker_fee_bps", float("nan")), ("taker_fee_bps", 1001.0),
    ("maker_fee_bps", float("inf")), ("slip_bps", -0.1),
    ("latency_ms", -1), ("latency_ms", 1.5), ("latency_ms", 600_001),
    ("lot_size", Decimal("0")),
    ("risk_per_trade", 0.0), ("risk_per_trade", 0.51), ("risk_per_trade", float("nan")),
    ("max_leverage", 0.0), ("max_leverage", 126.0), ("max_leverage", float("inf")),
])
def test_broker_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        BrokerConfig(**{field: value})


def test_broker_config_min_qty_below_lot_size_is_refused():
    with pytest.raises(ValueError, match="min_qty >= lot_size"):
        BrokerConfig(lot_size=Decimal("0.01"), min_qty=Decimal("0.001"))


def test_broker_config_reports_every_problem():
    with pytest.raises(ValueError) as err:
        BrokerConfig(taker_fee_bps=-1.0, latency_ms=-5, max_leverage=0.0)

    msg = str(err.value)
    assert msg.startswith("broker: ")
    assert all(name in msg for name in ("taker_fee_bps", "latency_ms", "max_leverage"))


def test_broker_config_defaults_are_bitunix_vip0():
    cfg = BrokerConfig()

    assert (cfg.taker_fee_bps, cfg.maker_fee_bps, cfg.lot_size) == (6.0, 2.0, Decimal("0.001"))


def test_broker_config_nan_starting_cash_names_the_field():
    with pytest.raises(ValueError, match="starting_cash"):
        BrokerConfig(starting_cash=Decimal("NaN"))


# ---- stale quote after a restart or reconnect ----

def test_stale_quote_blocks_fills_until_a_fresh_quote_then_fills_there():
    b = make_broker()
    b.on_quote(make_quote(1_000, 100.0, 100.5))
    submit(b, Side.BUY, now_ts=1_000, qty=Decimal("1"))  # due at 2_000
    b.mark_quote_stale()  # the feed was down: 100.0/100.5 is no longer known to be in force
    assert b.advance(5_000) == []  # nothing fills on the stale quote, however late it is
    events = b.on_quote(make_quote(6_000, 101.0, 101.4))
    [f] = fills(events)
    assert (f.fill_px, f.bid, f.ask, f.fill_ts) == (101.4, 101.0, 101.4, 6_000)
    assert f.latency_ms == 5_000  # the delay the outage caused is visible, not hidden
    assert b.quote_stale is False


def test_stale_flag_survives_a_state_round_trip():
    b = make_broker()
    b.on_quote(make_quote(1_000, 100.0, 100.5))
    b.mark_quote_stale()
    r = make_broker()
    r.restore(json.loads(json.dumps(b.to_state())))
    assert r.quote_stale is True and r.advance(10_000) == []
