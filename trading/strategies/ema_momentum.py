"""ema_momentum, the default strategy: follow short-term momentum on 1m candles, exit by time.

- Trend = EMA(fast) - EMA(slow) of closes. When flat and the gap exceeds `min_gap_bps` of price,
  enter in its direction.
- Exit after `hold_bars` closed candles, or earlier when the trend flips against the position.
- Every entry carries a stop-loss at `stop_atr` x ATR and a take-profit at `target_atr` x ATR
  (ATR = Wilder's average true range over `atr_len` candles), which the broker enforces on every
  quote.

Defaults are chosen so that a 10-minute session on the bundled day trades (entry and exit) in
almost every window: see bench/strategy_coverage.py.
"""
from __future__ import annotations

import math
from decimal import Decimal
from typing import Sequence

from trading.model import Candle, Side
from trading.strategy import Signal


class EmaMomentum:
    name = "ema_momentum"
    params = {"fast": 3, "slow": 8, "hold_bars": 3, "atr_len": 14, "stop_atr": 1.5,
              "target_atr": 2.5, "min_gap_bps": 0.5}
    # optional: (label, unit, help) per parameter, for the Settings dialog
    param_help = {
        "fast": ("Fast EMA", "bars", "Length of the fast EMA in 1-minute candles; must be "
                 "below the slow EMA."),
        "slow": ("Slow EMA", "bars", "Length of the slow EMA in 1-minute candles (at most "
                 "500)."),
        "hold_bars": ("Hold", "bars", "Closed 1-minute candles after which a position is "
                      "exited (1-1000)."),
        "atr_len": ("ATR length", "bars", "Candles in the average true range used for stops "
                    "and targets (2-500)."),
        "stop_atr": ("Stop", "× ATR", "Stop-loss distance as a multiple of the ATR, in "
                     "(0, 100]."),
        "target_atr": ("Target", "× ATR", "Take-profit distance as a multiple of the ATR, in "
                       "(0, 100]."),
        "min_gap_bps": ("Min EMA gap", "bps", "Smallest fast-slow EMA gap, in basis points of "
                        "price, that counts as a trend."),
    }

    def __init__(self, fast: int = 3, slow: int = 8, hold_bars: int = 3, atr_len: int = 14,
                 stop_atr: float = 1.5, target_atr: float = 2.5,
                 min_gap_bps: float = 0.5) -> None:
        if not 1 <= fast <= 499:
            raise ValueError("fast: must be 1..499 and below slow")
        if not 2 <= slow <= 500:
            raise ValueError("slow: must be 2..500 and above fast")
        if fast >= slow:
            raise ValueError(f"fast: must be below slow ({slow})")
        if not 1 <= hold_bars <= 1000:
            raise ValueError("hold_bars: must be 1..1000")
        if not 2 <= atr_len <= 500:
            raise ValueError("atr_len: must be 2..500")
        for key, v in (("stop_atr", stop_atr), ("target_atr", target_atr)):
            if not (math.isfinite(v) and 0 < v <= 100):
                raise ValueError(f"{key}: must be in (0, 100]")
        if not (math.isfinite(min_gap_bps) and 0 <= min_gap_bps <= 1000):
            raise ValueError("min_gap_bps: must be in [0, 1000]")
        self.fast, self.slow, self.hold_bars, self.atr_len = fast, slow, hold_bars, atr_len
        self.stop_atr, self.target_atr, self.min_gap_bps = stop_atr, target_atr, min_gap_bps
        self._ema_fast: float | None = None
        self._ema_slow: float | None = None
        self._atr: float | None = None
        self._prev_close: float | None = None
        self._seen = 0
        self._bars_in_position = 0

    # -- indicators --
    def _update(self, c: Candle) -> None:
        af, as_ = 2.0 / (self.fast + 1), 2.0 / (self.slow + 1)
        if self._ema_fast is None:
            self._ema_fast = self._ema_slow = c.close
        else:
            self._ema_fast += af * (c.close - self._ema_fast)
            self._ema_slow += as_ * (c.close - self._ema_slow)
        tr = c.high - c.low
        if self._prev_close is not None:
            tr = max(tr, abs(c.high - self._prev_close), abs(c.low - self._prev_close))
        if self._atr is None:
            self._atr = tr
        else:
            self._atr += (tr - self._atr) / self.atr_len
        self._prev_close = c.close
        self._seen += 1

    @property
    def ready(self) -> bool:
        return self._seen >= self.slow

    @property
    def gap_bps(self) -> float:
        if self._ema_fast is None or not self._ema_slow:
            return 0.0
        return (self._ema_fast - self._ema_slow) / self._ema_slow * 1e4

    def warm_up(self, candles: Sequence[Candle]) -> None:
        for c in candles:
            self._update(c)

    def on_candle(self, candle: Candle, position_qty: Decimal) -> Signal | None:
        self._update(candle)
        if not self.ready:
            return None
        gap = self.gap_bps
        if position_qty != 0:
            self._bars_in_position += 1
            long = position_qty > 0
            flipped = (gap < 0) if long else (gap > 0)
            if self._bars_in_position >= self.hold_bars or flipped:
                why = "trend flipped" if flipped else f"held {self._bars_in_position} bars"
                return Signal(side=Side.SELL if long else Side.BUY, reason="exit", note=why)
            return None
        self._bars_in_position = 0
        atr = max(self._atr or 0.0, candle.close * 1e-4)  # never a zero-width stop
        if abs(gap) <= self.min_gap_bps:  # "exceeds": a zero gap has no direction
            return None
        side = Side.BUY if gap > 0 else Side.SELL
        return Signal(side=side, reason="entry", stop_distance=self.stop_atr * atr,
                      target_distance=self.target_atr * atr, note=f"ema gap {gap:.2f} bps")

    def state(self) -> dict:
        return {"ema_fast": self._ema_fast, "ema_slow": self._ema_slow, "atr": self._atr,
                "prev_close": self._prev_close, "seen": self._seen,
                "bars_in_position": self._bars_in_position}

    def restore(self, state: dict) -> None:
        self._ema_fast = state.get("ema_fast")
        self._ema_slow = state.get("ema_slow")
        self._atr = state.get("atr")
        self._prev_close = state.get("prev_close")
        self._seen = int(state.get("seen", 0))
        self._bars_in_position = int(state.get("bars_in_position", 0))
