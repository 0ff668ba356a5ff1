"""sma_cross: SMA(fast) / SMA(slow) crossover of 1m closes, always in the market after the
first cross.

A cross up (fast was at or below slow on the previous candle and is above it now) targets a
long position, a cross down a short one; the engine sends one market order for
target - position, so a reversal is one order. No stop, no target. The size is `--fixed-qty`
(else 1x equity). The averages are kept as exact integer sums of the closes in units of 1e-8,
so a cross is decided the same way whatever the order of the additions.
"""
from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Sequence

from trading.model import Candle
from trading.strategy import Signal

SCALE = 100_000_000  # closes in units of 1e-8 (exact for prices with up to 8 decimals)


class SmaCross:
    name = "sma_cross"
    params = {"fast": 10, "slow": 30}
    param_help = {
        "fast": ("Fast SMA", "bars", "Closes in the fast simple moving average."),
        "slow": ("Slow SMA", "bars", "Closes in the slow simple moving average (more than "
                 "fast, at most 10000)."),
    }

    def __init__(self, fast: int = 10, slow: int = 30) -> None:
        if not (isinstance(fast, int) and isinstance(slow, int) and 1 <= fast < slow <= 10_000):
            raise ValueError("slow: need 1 <= fast < slow <= 10000")
        self.fast, self.slow = fast, slow
        self._fq: deque[int] = deque()
        self._sq: deque[int] = deque()
        self._fs = self._ss = 0
        self._prev: int | None = None  # sign-carrying fast - slow (scaled) of the last candle
        self._seen = 0

    def _push(self, close: float) -> int | None:
        x = round(close * SCALE)
        fq, sq, fast, slow = self._fq, self._sq, self.fast, self.slow
        fq.append(x)
        sq.append(x)
        fs, ss = self._fs + x, self._ss + x
        if len(fq) > fast:
            fs -= fq.popleft()
        if len(sq) > slow:
            ss -= sq.popleft()
        self._fs, self._ss = fs, ss
        self._seen += 1
        if self._seen < slow:
            return None
        return fs * slow - ss * fast  # > 0: fast above slow

    def warm_up(self, candles: Sequence[Candle]) -> None:
        for c in candles:
            self._prev = self._push(c.close)

    def on_candle(self, candle: Candle, position_qty: Decimal) -> Signal | None:
        d = self._push(candle.close)
        prev, self._prev = self._prev, d
        if prev is None or d is None:
            return None
        if prev <= 0 < d:
            return Signal(target=1, note="sma cross up")
        if prev >= 0 > d:
            return Signal(target=-1, note="sma cross down")
        return None

    def state(self) -> dict:
        return {"fast_window": list(self._fq), "slow_window": list(self._sq),
                "prev": self._prev, "seen": self._seen}

    def restore(self, state: dict) -> None:
        self._fq = deque(int(x) for x in state.get("fast_window", []))
        self._sq = deque(int(x) for x in state.get("slow_window", []))
        self._fs, self._ss = sum(self._fq), sum(self._sq)
        prev = state.get("prev")
        self._prev = int(prev) if prev is not None else None
        self._seen = int(state.get("seen", 0))
