"""Kline pushes -> closed 1-minute candles.

Bitunix pushes the forming candle every 500 ms with no open-time and no closed flag: the minute
is floor(ts / 60000) and a push for a later minute closes the previous one, whose *last* push is
its final state.
"""
from __future__ import annotations

from dataclasses import replace

from trading.model import Candle, KlineUpdate

# The first push of a new minute may still carry the previous candle (Bitunix pushes every
# 500 ms and stamps a push with its send time): within this much of the minute boundary, a push
# that continues the previous candle is that candle's late update, not the new one's open.
LATE_WINDOW_MS = 1_000


def continues(prev: KlineUpdate, k: KlineUpdate) -> bool:
    """Whether push `k`, stamped in the minute after `prev`'s, is `prev`'s candle still: the
    same values, or the same open with a volume that grew from the previous push's (a new
    candle's volume starts again from its first trade) and a range that did not shrink."""
    if k.minute_ts != prev.minute_ts + 60_000 or k.ts - k.minute_ts >= LATE_WINDOW_MS:
        return False
    same = (k.open, k.high, k.low, k.close, k.base_vol, k.quote_vol) == \
        (prev.open, prev.high, prev.low, prev.close, prev.base_vol, prev.quote_vol)
    grown = (k.open == prev.open and prev.base_vol > 0 and k.base_vol > prev.base_vol
             and k.high >= prev.high and k.low <= prev.low)
    return same or grown


class CandleBuilder:
    """Turn kline updates into closed candles; stale (earlier-minute) pushes are counted, not used."""

    def __init__(self) -> None:
        self.forming: KlineUpdate | None = None
        self.out_of_order = 0
        self.late_pushes = 0  # previous-minute updates that arrived stamped in the next minute
        self.last_closed: Candle | None = None

    def on_kline(self, k: KlineUpdate) -> Candle | None:
        """Feed one push; return the candle it closed, if any."""
        cur = self.forming
        if cur is None:
            self.forming = k
            return None
        if k.minute_ts == cur.minute_ts:
            if k.ts >= cur.ts:
                self.forming = k
            else:
                self.out_of_order += 1
            return None
        if k.minute_ts < cur.minute_ts:
            self.out_of_order += 1
            return None
        if continues(cur, k):
            self.late_pushes += 1
            # the previous candle's final state, kept in its own minute
            self.forming = replace(k, ts=cur.minute_ts + 59_999)
            return None
        closed = Candle(ts=cur.minute_ts, open=cur.open, high=cur.high, low=cur.low,
                        close=cur.close, volume=cur.base_vol, quote_volume=cur.quote_vol,
                        closed_ts=k.ts)
        self.forming = k
        self.last_closed = closed
        return closed

    def forming_candle(self) -> Candle | None:
        """Return the forming candle as it stands (for charts), not closed."""
        cur = self.forming
        if cur is None:
            return None
        return Candle(ts=cur.minute_ts, open=cur.open, high=cur.high, low=cur.low,
                      close=cur.close, volume=cur.base_vol, quote_volume=cur.quote_vol)
