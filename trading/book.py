"""The order book as the paper exchange sees it: validated snapshots, walking them, the queue.

Pure: no I/O, no clock. Prices are floats as parsed (the exchange's decimal strings round-trip
exactly through `px_dec`); quantities are Decimal lots.

* `Book`: one snapshot of the top levels (Bitunix `depth_book15` pushes a full snapshot each
  time), checked like a quote: best first, strictly ordered, positive sizes, uncrossed.
* `walk`: how a taker order of `qty` fills against one side, optionally up to a limit price:
  the legs taken level by level, their VWAP, and -- when the visible depth runs out -- the
  documented impact rule for the rest (`IMPACT_CAP`, like freqtrade's 5 % slippage cap).
* the queue rule of a resting limit order lives in `trading.broker` (it needs trade prints).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from trading.model import ValidationError, px_dec

MAX_LEVELS = 50
IMPACT_CAP = 0.05  # no fill beyond the best price +/- 5 % (freqtrade's cap, the same idea)
MIN_SLOPE_BPS = 1.0  # beyond a one-level book: 1 bp of the best price per visible-size unit


@dataclass(frozen=True, slots=True)
class Book:
    """Top-of-book levels at `ts`: `bids` high to low, `asks` low to high, `(price, size)`."""

    ts: int
    bids: tuple
    asks: tuple
    symbol: str = "BTCUSDT"
    synthetic_from: int = 0  # levels at this depth and deeper are modelled (0: all real)

    def __post_init__(self) -> None:
        for name, side, better in (("bids", self.bids, 1), ("asks", self.asks, -1)):
            if not side:
                raise ValidationError(f"empty {name}")
            if len(side) > MAX_LEVELS:
                raise ValidationError(f"{len(side)} {name} levels (at most {MAX_LEVELS})")
            prev = None
            for i, lvl in enumerate(side):
                if not (isinstance(lvl, tuple) and len(lvl) == 2):
                    raise ValidationError(f"{name}[{i}] is not a (price, size) pair")
                px, size = lvl
                if not (isinstance(px, float) and math.isfinite(px) and px > 0):
                    raise ValidationError(f"{name}[{i}] price {px!r} is not a positive number")
                if not (isinstance(size, float) and math.isfinite(size) and size > 0):
                    raise ValidationError(f"{name}[{i}] size {size!r} is not positive")
                if prev is not None and not (px - prev) * better < 0:
                    raise ValidationError(f"{name} not sorted best first at level {i}: "
                                          f"{prev} then {px}")
                prev = px
        if self.bids[0][0] >= self.asks[0][0]:
            raise ValidationError(f"crossed book: bid {self.bids[0][0]} >= ask "
                                  f"{self.asks[0][0]}")

    @property
    def best_bid(self) -> float:
        return self.bids[0][0]

    @property
    def best_ask(self) -> float:
        return self.asks[0][0]

    def side_for(self, buy: bool) -> tuple:
        """The levels a taker order meets: asks for a buy, bids for a sell."""
        return self.asks if buy else self.bids

    def size_at(self, px: float, buy: bool) -> float:
        """The size resting at exactly `px` on the side a buy (bids) / sell (asks) joins."""
        for p, s in (self.bids if buy else self.asks):
            if p == px:
                return s
        return 0.0

    def to_dict(self) -> dict:
        return {"ts": self.ts, "bids": [list(x) for x in self.bids],
                "asks": [list(x) for x in self.asks], "synthetic_from": self.synthetic_from}


@dataclass(frozen=True, slots=True)
class Walk:
    """How a taker quantity meets one side of the book."""

    legs: tuple  # ((price, Decimal qty), ...) level by level; the impact leg last
    filled: Decimal  # what filled (less than asked only when a limit price stopped it)
    vwap: float | None
    best: float | None
    levels_used: int  # visible levels touched
    exhausted: bool  # the visible depth ran out: the rest filled by the impact rule

    def cost_bps(self, buy: bool) -> float:
        """VWAP against the best price, in bps (a cost: >= 0)."""
        if not self.vwap or not self.best:
            return 0.0
        return (self.vwap - self.best) / self.best * 1e4 * (1 if buy else -1)

    def legs_dicts(self) -> list:
        return [{"px": p, "qty": str(q)} for p, q in self.legs]


def _vwap(legs) -> float | None:
    qty = sum((q for _, q in legs), Decimal("0"))
    if not qty:
        return None
    if len({p for p, _ in legs}) == 1:  # one price: exactly it, never a rounded neighbour
        return legs[0][0]
    notional = sum((px_dec(p) * q for p, q in legs), Decimal("0"))
    return float(round(notional / qty, 8))


def walk(levels, qty: Decimal, buy: bool, limit_px: float | None = None) -> Walk:
    """Fill `qty` against `levels` (best first). With `limit_px` only levels at or better than
    it are taken and nothing beyond the book; without it (a market order) the rest beyond the
    visible depth fills by the impact rule: at the last level's price moved by the book's own
    average slope (price distance best -> last over the visible size) times half the remaining
    size -- the VWAP of a book that goes on as it was -- never beyond best +/- IMPACT_CAP."""
    legs: list = []
    left = qty
    best = levels[0][0] if levels else None
    used = 0
    visible = Decimal("0")
    band = None if best is None or limit_px is not None else (
        best * (1 + IMPACT_CAP) if buy else best * (1 - IMPACT_CAP))
    for px, size in levels:
        if limit_px is not None and ((px > limit_px) if buy else (px < limit_px)):
            break
        if band is not None and ((px > band) if buy else (px < band)):
            break  # a market order never fills beyond best +/- IMPACT_CAP, not even on the book
        if left <= 0:
            break
        take = min(left, Decimal(repr(size)))
        legs.append((px, take))
        left -= take
        visible += Decimal(repr(size))
        used += 1
    exhausted = False
    if left > 0 and limit_px is None and levels:
        exhausted = True
        inside = levels[:max(used, 1)]
        last = inside[-1][0]
        seen = sum((Decimal(repr(s)) for _, s in inside), Decimal("0"))
        slope = abs(last - best) / float(seen) if seen and last != best else 0.0
        slope = max(slope, best * MIN_SLOPE_BPS / 1e4 / max(float(seen), 1e-9))
        move = slope * float(left) / 2.0
        cap = best * IMPACT_CAP
        px = last + min(move, cap) if buy else last - min(move, cap)
        px = min(px, best + cap) if buy else max(px, best - cap)
        legs.append((float(px_dec(round(px, 8))), left))
        left = Decimal("0")
    filled = qty - left
    return Walk(tuple(legs), filled, _vwap(legs), best, used, exhausted)


def priced_from_quote(row: dict) -> bool:
    """Whether a fill row (fills.csv / journal / Fill.to_dict) was priced from the quote it
    records: its first leg at the best price of its side (ask for a buy, bid for a sell), its
    price the VWAP of its legs, every further leg worse than the one before. A row without legs
    (older files) must be at the best price itself. Maker fills sit at their own limit price."""
    from trading.model import parse_legs
    buy = row["side"] == "BUY"
    best = float(row["ask"] if buy else row["bid"])
    px = float(row["fill_px"])
    if (row.get("liquidity") or "taker") == "maker":
        return (px <= best) if buy else (px >= best)
    legs = parse_legs(row.get("legs"))
    if not legs:
        return px == best
    if legs[0][0] != best or any((b[0] < a[0]) if buy else (b[0] > a[0])
                                 for a, b in zip(legs, legs[1:])):
        return False
    vwap = _vwap(legs)
    return vwap is not None and abs(vwap - px) <= 1e-6
