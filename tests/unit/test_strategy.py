"""EmaMomentumStrategy: warm-up, entries with stops, time and trend-flip exits, recovery."""
from __future__ import annotations

import json
import math
import re
from decimal import Decimal

import pytest

from trading.model import Candle, Side
from trading.runtime.strategies import StrategyError, load_strategy
from trading.strategies.ema_momentum import EmaMomentum
from trading.strategy import Signal


class MomentumParams(dict):
    """The default strategy's parameters: its declared defaults, some overridden (checked by
    building the strategy, as the loader does)."""

    def __init__(self, **kw):
        super().__init__({**EmaMomentum.params, **kw})
        EmaMomentum(**self)

    def __getattr__(self, name):
        return self[name]


def EmaMomentumStrategy(p=None):  # noqa: N802 - reads like the class it builds
    return EmaMomentum(**(p or MomentumParams()))

T0 = 1_732_178_880_000
FLAT = Decimal("0")
LONG = Decimal("0.1")
SHORT = Decimal("-0.1")


# ---- factories ----

def make_candle(i, close, half_range=5.0) -> Candle:
    return Candle(ts=T0 + i * 60_000, open=close, high=close + half_range,
                  low=close - half_range, close=close, volume=1.0,
                  closed_ts=T0 + (i + 1) * 60_000)


def ramp(start, step, n, first_index=0) -> list[Candle]:
    return [make_candle(first_index + i, start + i * step) for i in range(n)]


def run(strategy, candles, qty=FLAT) -> list:
    return [strategy.on_candle(c, qty) for c in candles]


def reference_indicators(candles, p: MomentumParams):
    """EMA(fast), EMA(slow) seeded at the first close, Wilder ATR seeded at the first range."""
    af, as_ = 2 / (p.fast + 1), 2 / (p.slow + 1)
    fast = slow = atr = prev = None
    for c in candles:
        if fast is None:
            fast = slow = c.close
        else:
            fast += af * (c.close - fast)
            slow += as_ * (c.close - slow)
        tr = c.high - c.low
        if prev is not None:
            tr = max(tr, abs(c.high - prev), abs(c.low - prev))
        atr = tr if atr is None else atr + (tr - atr) / p.atr_len
        prev = c.close
    return fast, slow, atr


# ---- entries ----

def test_no_signal_before_slow_candles_even_on_a_strong_trend():
    p = MomentumParams(fast=3, slow=8)
    s = EmaMomentumStrategy(p)
    candles = ramp(100_000.0, 50.0, 8)

    signals = run(s, candles)

    assert signals[:7] == [None] * 7
    assert s.ready
    assert signals[7] is not None and signals[7].side is Side.BUY


def test_rising_closes_give_a_buy_entry_with_atr_stop_and_target():
    p = MomentumParams()
    s = EmaMomentumStrategy(p)
    candles = ramp(100_000.0, 20.0, p.slow)

    sig = run(s, candles)[-1]

    fast, slow, atr = reference_indicators(candles, p)
    assert (sig.side, sig.reason) == (Side.BUY, "entry")
    assert s.gap_bps == pytest.approx((fast - slow) / slow * 1e4)
    assert s.gap_bps > p.min_gap_bps
    assert sig.stop_distance == pytest.approx(p.stop_atr * atr)
    assert sig.target_distance == pytest.approx(p.target_atr * atr)
    assert sig.stop_distance > 0 and sig.target_distance > sig.stop_distance


def test_falling_closes_give_a_sell_entry():
    p = MomentumParams()
    s = EmaMomentumStrategy(p)
    candles = ramp(100_000.0, -20.0, p.slow)

    sig = run(s, candles)[-1]

    _, _, atr = reference_indicators(candles, p)
    assert (sig.side, sig.reason) == (Side.SELL, "entry")
    assert s.gap_bps < -p.min_gap_bps
    assert sig.stop_distance == pytest.approx(1.5 * atr)
    assert sig.target_distance == pytest.approx(2.5 * atr)


def test_flat_market_gives_no_entry():
    s = EmaMomentumStrategy()

    assert run(s, [make_candle(i, 100_000.0) for i in range(30)]) == [None] * 30


def test_gap_below_threshold_gives_no_entry():
    s = EmaMomentumStrategy(MomentumParams(min_gap_bps=50.0))

    assert run(s, ramp(100_000.0, 20.0, 30)) == [None] * 30


def test_stop_distance_never_zero_on_zero_range_candles():
    s = EmaMomentumStrategy(MomentumParams(fast=2, slow=3, min_gap_bps=0.1))
    candles = [make_candle(i, 1000.0 + i, half_range=0.0) for i in range(3)]

    sig = run(s, candles)[-1]

    assert sig.side is Side.BUY
    assert sig.stop_distance >= 1.5 * 1002.0 * 1e-4


def test_warm_up_seeds_indicators_without_signals():
    p = MomentumParams()
    history = ramp(100_000.0, 20.0, p.slow)
    s = EmaMomentumStrategy(p)

    assert s.warm_up(history) is None
    assert s.ready

    sig = s.on_candle(make_candle(p.slow, 100_000.0 + p.slow * 20.0), FLAT)
    assert sig is not None and sig.side is Side.BUY


def test_zero_gap_never_enters_even_with_zero_threshold():
    s = EmaMomentumStrategy(MomentumParams(min_gap_bps=0.0))

    assert run(s, [make_candle(i, 100_000.0) for i in range(12)]) == [None] * 12


# ---- exits ----

def _enter(p: MomentumParams, step: float):
    s = EmaMomentumStrategy(p)
    sig = run(s, ramp(100_000.0, step, p.slow))[-1]
    assert sig is not None and sig.reason == "entry"
    return s


def test_long_exits_after_hold_bars_candles_in_position():
    p = MomentumParams(hold_bars=3)
    s = _enter(p, 20.0)
    more = ramp(100_000.0 + p.slow * 20.0, 20.0, 3, first_index=p.slow)  # trend still up

    signals = run(s, more, LONG)

    assert signals[:2] == [None, None]
    assert signals[2] == Signal(side=Side.SELL, reason="exit", note="held 3 bars")


def test_short_exits_after_hold_bars_with_a_buy():
    p = MomentumParams(hold_bars=2)
    s = _enter(p, -20.0)
    more = ramp(100_000.0 - p.slow * 20.0, -20.0, 2, first_index=p.slow)

    signals = run(s, more, SHORT)

    assert signals == [None, Signal(side=Side.BUY, reason="exit", note="held 2 bars")]


def test_long_exits_early_when_trend_flips():
    p = MomentumParams(hold_bars=50)
    s = _enter(p, 20.0)
    top = 100_000.0 + (p.slow - 1) * 20.0
    crash = [make_candle(p.slow + i, top - 150.0 * (i + 1)) for i in range(5)]

    signals = run(s, crash, LONG)

    first = next(i for i, sig in enumerate(signals) if sig is not None)
    assert first < 5
    assert signals[first] == Signal(side=Side.SELL, reason="exit", note="trend flipped")
    assert s.gap_bps < 0


def test_short_exits_early_when_trend_flips():
    p = MomentumParams(hold_bars=50)
    s = _enter(p, -20.0)
    bottom = 100_000.0 - (p.slow - 1) * 20.0
    rally = [make_candle(p.slow + i, bottom + 150.0 * (i + 1)) for i in range(5)]

    signals = run(s, rally, SHORT)

    flips = [sig for sig in signals if sig is not None]
    assert flips[0] == Signal(side=Side.BUY, reason="exit", note="trend flipped")


def test_hold_count_restarts_after_going_flat():
    p = MomentumParams(hold_bars=2)
    s = _enter(p, 20.0)
    i = p.slow
    price = 100_000.0 + i * 20.0

    assert s.on_candle(make_candle(i, price), LONG) is None
    assert s.on_candle(make_candle(i + 1, price + 20), LONG).reason == "exit"
    assert s.on_candle(make_candle(i + 2, price + 40), FLAT).reason == "entry"
    assert s.on_candle(make_candle(i + 3, price + 60), LONG) is None
    assert s.on_candle(make_candle(i + 4, price + 80), LONG).note == "held 2 bars"


# ---- recovery ----

def test_state_round_trips_through_json_and_continues_identically():
    p = MomentumParams(fast=4, slow=10, hold_bars=4, atr_len=7)
    a = EmaMomentumStrategy(p)
    history = ramp(100_000.0, 15.0, 12)
    run(a, history[:10])
    a.on_candle(history[10], LONG)
    a.on_candle(history[11], LONG)

    state = json.loads(json.dumps(a.state()))
    b = EmaMomentumStrategy(p)
    b.restore(state)

    assert b.state() == a.state()
    assert state["seen"] == 12 and state["bars_in_position"] == 2
    tail = [make_candle(12 + i, 100_165.0 + 40.0 * math.sin(i)) for i in range(20)]
    qtys = [LONG, LONG, FLAT, FLAT, SHORT, SHORT, SHORT, FLAT] * 3
    got = [b.on_candle(c, q) for c, q in zip(tail, qtys)]
    expected = [a.on_candle(c, q) for c, q in zip(tail, qtys)]

    assert got == expected
    assert got[:2] == [None, Signal(side=Side.SELL, reason="exit", note="held 4 bars")]
    assert sum(sig is not None for sig in got) >= 10
    assert b.state() == a.state()


def test_fresh_strategy_differs_from_restored_one():
    p = MomentumParams()
    a = EmaMomentumStrategy(p)
    run(a, ramp(100_000.0, 20.0, p.slow - 1))
    b = EmaMomentumStrategy(p)
    b.restore(json.loads(json.dumps(a.state())))
    fresh = EmaMomentumStrategy(p)
    nxt = make_candle(p.slow, 100_000.0 + p.slow * 20.0)

    assert b.on_candle(nxt, FLAT).side is Side.BUY
    assert fresh.on_candle(nxt, FLAT) is None


# ---- parameters ----

@pytest.mark.parametrize("kwargs,message", [
    ({"fast": 0}, "fast: must be 1..499 and below slow"),
    ({"fast": 8, "slow": 8}, "fast: must be below slow (8)"),
    ({"fast": 9, "slow": 8}, "fast: must be below slow (8)"),
    ({"slow": 501}, "slow: must be 2..500 and above fast"),
    ({"hold_bars": 0}, "hold_bars: must be 1..1000"),
    ({"hold_bars": 1001}, "hold_bars: must be 1..1000"),
    ({"atr_len": 1}, "atr_len: must be 2..500"),
    ({"atr_len": 501}, "atr_len: must be 2..500"),
    ({"stop_atr": 0.0}, "stop_atr: must be in (0, 100]"),
    ({"stop_atr": float("nan")}, "stop_atr: must be in (0, 100]"),
    ({"stop_atr": 100.5}, "stop_atr: must be in (0, 100]"),
    ({"target_atr": -1.0}, "target_atr: must be in (0, 100]"),
    ({"target_atr": float("inf")}, "target_atr: must be in (0, 100]"),
    ({"min_gap_bps": -0.1}, "min_gap_bps: must be in [0, 1000]"),
    ({"min_gap_bps": 1000.5}, "min_gap_bps: must be in [0, 1000]"),
    ({"min_gap_bps": float("nan")}, "min_gap_bps: must be in [0, 1000]"),
])
def test_params_validation_messages(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MomentumParams(**kwargs)
    # the loader refuses it too, naming the parameter (a non-finite number before the class)
    name = message.split(":")[0]
    with pytest.raises(StrategyError, match=rf"bad parameters?:? {name}: "):
        load_strategy("ema_momentum", kwargs)


def test_params_at_bounds_are_accepted():
    p = MomentumParams(fast=1, slow=500, hold_bars=1000, atr_len=2, stop_atr=100.0,
                       target_atr=0.01, min_gap_bps=0.0)

    assert (p.fast, p.slow, p.min_gap_bps) == (1, 500, 0.0)


def test_overrides_build_params_typed_like_their_defaults():
    spec = load_strategy("ema_momentum", {"fast": "5", "slow": "21", "hold_bars": 7})
    assert spec.params == MomentumParams(fast=5, slow=21, hold_bars=7)


def test_unknown_and_mistyped_overrides_are_refused_by_name():
    with pytest.raises(StrategyError, match=re.escape("unknown parameter 'slwo'")):
        load_strategy("ema_momentum", {"fast": 3, "slwo": 9})
    with pytest.raises(StrategyError, match="bad parameter hold_bars: expected an integer"):
        load_strategy("ema_momentum", {"hold_bars": "two"})
