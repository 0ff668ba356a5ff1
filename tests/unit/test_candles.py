"""Kline pushes -> closed 1-minute candles: the last push of a minute is the candle."""
from __future__ import annotations

from trading.candles import CandleBuilder
from trading.model import Candle, KlineUpdate

M0 = 1732178880000  # a minute boundary (epoch ms)
M1 = M0 + 60_000
M2 = M0 + 120_000


def make_kline(ts, o=100.0, h=None, l=None, c=100.0, b=1.0, q=100.0) -> KlineUpdate:
    h = max(o, c) if h is None else h
    l = min(o, c) if l is None else l
    return KlineUpdate(ts=ts, open=o, high=h, low=l, close=c, base_vol=b, quote_vol=q)


def feed(builder, klines) -> list:
    return [c for c in (builder.on_kline(k) for k in klines) if c is not None]


def test_first_push_and_same_minute_pushes_close_nothing():
    b = CandleBuilder()

    closed = feed(b, [make_kline(M0 + 500, c=100.5), make_kline(M0 + 1000, c=101.0),
                      make_kline(M0 + 59_999, c=99.0)])

    assert closed == []
    assert b.last_closed is None


def test_push_for_next_minute_closes_with_the_last_push_of_the_minute():
    b = CandleBuilder()
    feed(b, [make_kline(M0 + 100, o=100.0, h=100.5, l=99.8, c=100.2, b=0.5, q=50.1),
             make_kline(M0 + 30_000, o=100.0, h=101.0, l=99.5, c=100.9, b=3.0, q=301.0),
             make_kline(M0 + 59_600, o=100.0, h=101.2, l=99.1, c=99.7, b=7.25, q=725.5)])

    closed = b.on_kline(make_kline(M1 + 150, o=99.7, c=99.9))

    assert closed == Candle(ts=M0, open=100.0, high=101.2, low=99.1, close=99.7, volume=7.25,
                            quote_volume=725.5, closed_ts=M1 + 150)
    assert b.last_closed == closed


def test_closed_candle_is_not_the_first_push_of_its_minute():
    b = CandleBuilder()
    feed(b, [make_kline(M0, o=100.0, c=100.0), make_kline(M0 + 500, o=100.0, h=105.0, c=104.0)])

    closed = b.on_kline(make_kline(M1))

    assert closed.close == 104.0
    assert closed.high == 105.0


def test_closed_ts_is_the_ts_of_the_push_that_closed_it():
    b = CandleBuilder()
    b.on_kline(make_kline(M0 + 10))

    closed = b.on_kline(make_kline(M1 + 4321))

    assert closed.ts == M0
    assert closed.closed_ts == M1 + 4321


def test_minute_boundary_is_floor_of_ts():
    b = CandleBuilder()
    b.on_kline(make_kline(M1 - 1, c=100.0))

    assert b.on_kline(make_kline(M1 - 1, c=100.0)) is None
    closed = b.on_kline(make_kline(M1, c=101.0))
    assert closed.ts == M0
    assert closed.close == 100.0


def test_each_minute_closes_once_in_a_500ms_stream():
    b = CandleBuilder()
    stream = [make_kline(M0 + i * 500, o=100.0, h=100.0 + i, l=100.0, c=100.0 + i / 2)
              for i in range(360)]  # three minutes of pushes

    closed = feed(b, stream)

    assert [c.ts for c in closed] == [M0, M1]
    assert [c.close for c in closed] == [100.0 + 119 / 2, 100.0 + 239 / 2]
    assert [c.high for c in closed] == [100.0 + 119, 100.0 + 239]
    assert [c.closed_ts for c in closed] == [M1, M2]
    assert b.forming_candle().close == 100.0 + 359 / 2
    assert b.out_of_order == 0


def test_earlier_ts_in_same_minute_is_counted_and_ignored():
    b = CandleBuilder()
    feed(b, [make_kline(M0 + 2000, c=102.0), make_kline(M0 + 1000, c=101.0)])

    assert b.out_of_order == 1
    assert b.forming_candle().close == 102.0
    assert b.on_kline(make_kline(M1)).close == 102.0


def test_push_for_an_earlier_minute_is_counted_and_ignored():
    b = CandleBuilder()
    b.on_kline(make_kline(M0 + 100, c=100.0))
    first = b.on_kline(make_kline(M1 + 100, c=101.0))

    late = b.on_kline(make_kline(M0 + 59_900, c=150.0, h=150.0))

    assert first.close == 100.0
    assert late is None
    assert b.out_of_order == 1
    assert b.last_closed == first
    assert b.forming_candle().close == 101.0
    second = b.on_kline(make_kline(M2, c=102.0))
    assert (second.ts, second.close, second.high) == (M1, 101.0, 101.0)


def test_late_push_after_a_close_does_not_close_again():
    b = CandleBuilder()
    feed(b, [make_kline(M0), make_kline(M1), make_kline(M2)])

    assert feed(b, [make_kline(M0 + 5), make_kline(M1 + 5)]) == []
    assert b.out_of_order == 2


def test_duplicate_pushes_are_harmless():
    b = CandleBuilder()
    k = make_kline(M0 + 500, o=100.0, h=101.0, l=99.0, c=100.5, b=2.0)

    closed = feed(b, [k, k, k, make_kline(M1), make_kline(M1)])

    assert closed == [Candle(ts=M0, open=100.0, high=101.0, low=99.0, close=100.5, volume=2.0,
                             quote_volume=100.0, closed_ts=M1)]
    assert b.out_of_order == 0


def test_same_ts_push_replaces_forming_candle():
    b = CandleBuilder()
    feed(b, [make_kline(M0 + 500, c=100.0), make_kline(M0 + 500, c=100.3)])

    assert b.on_kline(make_kline(M1)).close == 100.3


def test_a_gap_of_several_minutes_closes_the_last_seen_minute():
    b = CandleBuilder()
    b.on_kline(make_kline(M0 + 100, c=100.0))

    closed = b.on_kline(make_kline(M0 + 5 * 60_000 + 7, c=90.0, o=90.0))

    assert (closed.ts, closed.close, closed.closed_ts) == (M0, 100.0, M0 + 5 * 60_000 + 7)
    assert b.forming_candle().ts == M0 + 5 * 60_000


def test_forming_candle_shows_latest_push_and_is_not_closed():
    b = CandleBuilder()
    assert b.forming_candle() is None

    b.on_kline(make_kline(M0 + 700, o=100.0, h=101.0, l=99.0, c=100.4, b=3.0, q=300.0))

    assert b.forming_candle() == Candle(ts=M0, open=100.0, high=101.0, low=99.0, close=100.4,
                                        volume=3.0, quote_volume=300.0, closed_ts=0)
    assert b.last_closed is None


def test_a_late_push_of_the_old_candle_updates_it_and_does_not_open_the_new_one():
    """The old candle's last update arrives stamped 100 ms into the next minute."""
    b = CandleBuilder()
    feed(b, [make_kline(M0 + 100, o=100.0, h=100.5, l=99.8, c=100.2, b=0.5, q=50.1),
             make_kline(M0 + 59_000, o=100.0, h=101.0, l=99.5, c=100.9, b=3.0, q=301.0)])
    late = make_kline(M1 + 100, o=100.0, h=101.4, l=99.5, c=101.3, b=3.4, q=341.5)
    assert b.on_kline(late) is None
    assert b.late_pushes == 1
    closed = b.on_kline(make_kline(M1 + 600, o=101.3, c=101.2, b=0.02, q=2.0))
    assert (closed.ts, closed.open, closed.high, closed.low, closed.close, closed.volume) == \
        (M0, 100.0, 101.4, 99.5, 101.3, 3.4)
    forming = b.forming_candle()
    assert forming.ts == M1 and forming.open == 101.3 and forming.volume == 0.02


def test_a_repeat_of_the_old_candle_in_the_new_minute_is_not_the_new_open():
    b = CandleBuilder()
    old = make_kline(M0 + 59_500, o=100.0, h=101.0, l=99.0, c=100.5, b=2.0, q=200.0)
    feed(b, [old])
    assert b.on_kline(make_kline(M1 + 50, o=100.0, h=101.0, l=99.0, c=100.5, b=2.0,
                                 q=200.0)) is None
    closed = b.on_kline(make_kline(M1 + 550, o=100.6, c=100.7, b=0.1, q=10.0))
    assert closed.ts == M0 and closed.close == 100.5
    assert b.forming_candle().open == 100.6


def test_a_new_candle_is_never_taken_for_a_late_push():
    b = CandleBuilder()
    feed(b, [make_kline(M0 + 59_500, o=100.0, h=101.0, l=99.0, c=100.5, b=2.0, q=200.0)])
    # same open by chance, but its volume started again from one push
    closed = b.on_kline(make_kline(M1 + 100, o=100.0, h=100.2, l=100.0, c=100.1, b=0.05,
                                   q=5.0))
    assert closed is not None and closed.ts == M0 and b.late_pushes == 0
    # and past the window a continuing-looking push is the new minute's (a flat market)
    b2 = CandleBuilder()
    feed(b2, [make_kline(M0 + 59_500, o=100.0, c=100.0, b=0.0, q=0.0)])
    assert b2.on_kline(make_kline(M1 + 1_500, o=100.0, c=100.0, b=0.0, q=0.0)) is not None
