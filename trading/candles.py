"""Kline pushes -> closed 1-minute candles.

Bitunix pushes the forming candle every 500 ms with no open-time and no closed flag: the minute
is floor(ts / 60000) and a push for a later minute closes the previous one, whose *last* push is
its final state.
"""
from __future__ import annotations

from trading.model import Candle, KlineUpdate


class CandleBuilder:
    """Turn kline updates into closed candles; stale (earlier-minute) pushes are counted, not used."""

    def __init__(self) -> None:
        self.forming: KlineUpdate | None = None
        self.out_of_order = 0
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
