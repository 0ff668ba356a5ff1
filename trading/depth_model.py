"""A seeded model of the order book beyond the top level, calibrated on real depth.

Where a replay has no depth (the bundled dYdX day, OHLCV files), the local exchange still pushes
`depth_book15`: the top level is the real quote; the 14 levels behind it are drawn from this
model. Its parameters (`resources/data/depth_model.json`, written by
`scripts/calibrate_depth.py` from the shipped Binance depth recording) are the empirical
quantiles of the gap between neighbouring levels (in bps of the best price, pooled) and of the
size at each level depth 1..14 (BTC). A draw maps a uniform number through the quantile curve
(linear between quantiles), so the model reproduces both distributions; gaps are rounded up to
the replay's own tick. Pure: the random source is passed in.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

LEVELS = 15


def _inverse(qs: list[float], u: float) -> float:
    """The quantile curve `qs` (at evenly spaced probabilities 0..1) evaluated at `u`."""
    x = u * (len(qs) - 1)
    i = min(int(x), len(qs) - 2)
    f = x - i
    return qs[i] + (qs[i + 1] - qs[i]) * f


@dataclass(frozen=True)
class DepthModel:
    gap_bps: tuple  # quantiles of the gap between neighbouring levels, bps of the best price
    sizes: tuple  # per depth 1..LEVELS-1: quantiles of the level's size (BTC)
    source: str = ""

    @classmethod
    def load(cls, path: Path) -> "DepthModel":
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        gaps = tuple(float(x) for x in d["gap_bps"])
        sizes = tuple(tuple(float(x) for x in lvl) for lvl in d["sizes"])
        if len(gaps) < 3 or len(sizes) != LEVELS - 1 or any(len(s) < 3 for s in sizes):
            raise ValueError(f"{path}: not a depth model ({len(gaps)} gap quantiles, "
                             f"{len(sizes)} size levels)")
        for name, qs in [("gap_bps", gaps)] + [(f"sizes[{i}]", s) for i, s in enumerate(sizes)]:
            if any(not math.isfinite(x) or x <= 0 for x in qs) or list(qs) != sorted(qs):
                raise ValueError(f"{path}: {name} must be positive, increasing quantiles")
        return cls(gaps, sizes, str(d.get("source", "")))

    def levels(self, best: float, top_size: float, buy_side: bool, tick: float, rng) -> tuple:
        """One side of a book: the real top level, then LEVELS-1 modelled ones behind it."""
        out = [(best, top_size)]
        px = best
        step = -1 if buy_side else 1
        for k in range(LEVELS - 1):
            gap = best * _inverse(self.gap_bps, rng.random()) / 1e4
            ticks = max(1, math.ceil(gap / tick - 1e-9))
            px = round(px + step * ticks * tick, 10)
            if px <= 0:
                break
            size = _inverse(self.sizes[k], rng.random())
            out.append((px, round(max(size, 0.001), 3)))
        return tuple(out)


def calibrate(rows, n_quantiles: int = 21) -> dict:
    """Quantiles of level gaps and sizes from real depth snapshots ({"bids","asks"} rows)."""
    gaps: list[float] = []
    sizes: list[list[float]] = [[] for _ in range(LEVELS - 1)]
    for r in rows:
        for side in ("bids", "asks"):
            lv = [(float(p), float(s)) for p, s in r[side]]
            best = lv[0][0]
            for i in range(1, len(lv)):
                gaps.append(abs(lv[i][0] - lv[i - 1][0]) / best * 1e4)
                if i - 1 < LEVELS - 1:
                    sizes[i - 1].append(lv[i][1])

    def quantiles(xs: list[float]) -> list[float]:
        xs = sorted(xs)
        out = []
        for j in range(n_quantiles):
            x = (len(xs) - 1) * j / (n_quantiles - 1)
            i = int(x)
            f = x - i
            v = xs[i] if i + 1 >= len(xs) else xs[i] + (xs[i + 1] - xs[i]) * f
            out.append(round(v, 6))
        return out
    return {"gap_bps": quantiles(gaps), "sizes": [quantiles(s) for s in sizes],
            "snapshots": len(rows)}
