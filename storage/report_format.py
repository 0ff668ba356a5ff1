"""Value conversion and formatting for the report pages: money, bps, quantities, UTC times.

Pure functions of one value; none raises on a value of an unexpected type (it is shown as text,
or as a dash when missing). The report templates reach them as filters (storage.report_pages).
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

DASH = "\u2014"
UTC_FORMAT = "%Y-%m-%d %H:%M:%S"


def json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, Mapping):
        return {_json_key(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    return value


def _json_key(key: Any) -> Any:
    if key is None or isinstance(key, (str, int, bool)):
        return key
    if isinstance(key, float) and math.isfinite(key):
        return key
    return str(key)


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    return str(value)


def as_mapping(item: Any) -> Mapping:
    if isinstance(item, Mapping):
        return item
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    if hasattr(item, "__dict__"):
        return vars(item)
    return {}


def to_decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            return None
        return d if d.is_finite() else None
    return None


def to_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def to_int(value: Any) -> int | None:
    """A whole, non-negative count, or None."""
    f = to_float(value)
    return int(f) if f is not None and f >= 0 and f == int(f) else None


def ts_to_ms(value: Any) -> int | None:
    """Epoch ms from ms/seconds numbers, numeric strings, ISO strings or datetimes."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1000)
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return None
        number = to_float(s)
        if number is None:
            try:
                return ts_to_ms(datetime.fromisoformat(s.replace("Z", "+00:00")))
            except ValueError:
                return None
        value = number
    number = to_float(value)
    if number is None:
        return None
    # Values this small are epoch seconds (epoch ms passed 1e11 in 1973).
    return int(number * 1000) if abs(number) < 1e11 else int(number)


def fmt_utc(value: Any, fmt: str = UTC_FORMAT) -> str:
    ms = ts_to_ms(value)
    if ms is None:
        return as_text(value) or DASH
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime(fmt)
    except (OverflowError, OSError, ValueError):
        return as_text(value)


def fmt_fixed(value: Any, places: int, *, sign: bool = False, sep: bool = True) -> str:
    d = to_decimal(value)
    if d is None:
        return as_text(value) if isinstance(value, str) and value.strip() else DASH
    spec = f"{'+' if sign else ''}{',' if sep else ''}.{places}f"
    out = format(d, spec)
    if re.fullmatch(r"[-+]?[0.,]*", out):
        # Zero after rounding: no sign, no "-0.00".
        out = format(Decimal(0), spec.lstrip("+"))
    return out


def fmt_price(value: Any) -> str:
    return fmt_fixed(value, 1)


def fmt_money(value: Any, *, sign: bool = False) -> str:
    return fmt_fixed(value, 2, sign=sign)


def fmt_bps(value: Any, *, sign: bool = False) -> str:
    return fmt_fixed(value, 2, sign=sign)


def fmt_qty(value: Any) -> str:
    out = fmt_fixed(value, 4)
    if re.fullmatch(r"-?[\d,]+\.\d{3}0", out):
        out = out[:-1]
    return out


def fmt_int(value: Any) -> str:
    f = to_float(value)
    if f is None:
        return as_text(value) or DASH
    return f"{round(f):,}"


def fmt_pct(value: Any, *, sign: bool = False) -> str:
    out = fmt_fixed(value, 2, sign=sign)
    return out if out == DASH or to_decimal(value) is None else out + "%"


def fmt_rate(value: Any) -> str:
    """A win rate given either as a fraction (0..1) or as a percent."""
    f = to_float(value)
    if f is None:
        return as_text(value) or DASH
    return f"{f * 100 if abs(f) <= 1 else f:.1f}%"


def _won_of(report: Mapping) -> tuple[int | None, int | None]:
    """(round trips won, round trips) from a report; won is derived from the rate if absent."""
    trips = to_int(report.get("round_trips"))
    won = to_int(report.get("round_trips_won"))
    rate = to_float(report.get("win_rate"))
    if won is None and trips is not None and rate is not None:
        won = int(round(rate * trips))
    return won, trips


def win_rate_note(report: Mapping) -> str:
    """What the win rate counts: round trips whose PnL after fees was above zero."""
    won, trips = _won_of(report)
    if trips is None:
        return "after fees"
    if won is None:
        return f"of {trips:,} round trips, after fees"
    return f"{won:,} of {trips:,} won after fees"


def fmt_duration(seconds: Any) -> str:
    s = to_float(seconds)
    if s is None:
        return as_text(seconds) or DASH
    if s < 60:
        return f"{s:.1f}s"
    total = int(round(s))
    days, rem = divmod(total, 86_400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


def fmt_value(value: Any, float_places: int | None = None) -> str:
    """Plain text for a generic table cell (settings, feed figures, report fields)."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return as_text(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if float_places is not None:
            text = f"{value:,.{float_places}f}"
            return text.rstrip("0").rstrip(".") if "." in text else text
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        try:
            text = json.dumps(json_safe(value), default=str, separators=(", ", ": "))
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
        return text if len(text) <= 1000 else text[:1000] + "\u2026"
    return str(value)


def sign_class(value: Any) -> str:
    f = to_float(value)
    if f is None or f == 0:
        return ""
    return "pos" if f > 0 else "neg"


def cost_class(value: Any) -> str:
    """A cost in bps (drift, spread): positive was paid (red), negative was gained (green)."""
    f = to_float(value)
    if f is None or f == 0:
        return ""
    return "neg" if f > 0 else "pos"


def side_of(value: Any) -> str:
    s = as_text(value).upper()
    if "BUY" in s or s in ("B", "LONG"):
        return "BUY"
    if "SELL" in s or s in ("S", "SHORT"):
        return "SELL"
    return s


def fmt_signed_int(value: Any, unit: str = "") -> str:
    f = to_float(value)
    if f is None:
        return as_text(value) or DASH
    n = round(f)
    text = f"{n:+,}" if n else "0"
    return f"{text} {unit}" if unit else text


def fmt_metric(value: Any, unit: Any = "", *, sign: bool = False) -> str:
    """A comparison metric in its unit: USDT (cents), bps, count, % or as it is."""
    unit = as_text(unit)
    if unit == "USDT":
        return fmt_money(value, sign=sign)
    if unit == "bps":
        return fmt_bps(value, sign=sign)
    if unit == "count":
        return fmt_signed_int(value) if sign else fmt_int(value)
    if unit == "%":
        return fmt_pct(value, sign=sign)
    return fmt_fixed(value, 4, sign=True) if sign else fmt_value(value, 4)


# ---- how a fill was priced: order size, liquidity, the book levels it took ----------------

# what each price model means, in words (a fill dict's "price_model")
PRICE_MODEL_WORDS = {
    "book": "walked the book",
    "top_of_book": "top of book: no depth known",
    "queue": "resting limit order filled by trades",
    "no_quote_fallback": "no quote in force: fallback price",
}
DEPTH_EXHAUSTED_NOTE = "depth exhausted: the rest filled by the impact rule"


def is_true(value: Any) -> bool:
    """A flag as a fill dict, the journal or fills.csv holds it (True, "True", "true", 1)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == 1
    return as_text(value).strip().lower() in ("true", "1", "yes")


def parse_legs(value: Any) -> list[tuple[Decimal | None, Decimal | None]]:
    """The levels a fill took, (price, qty) each, from `"87815.0x0.05;87815.5x0.063"` or a
    list of pairs; [] for a fill without legs (old data). A malformed leg keeps its place with
    None for what could not be read."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        parts = [tuple(p) if isinstance(p, (list, tuple)) else (p, None) for p in value]
    else:
        parts = [tuple(p.partition("x")[::2]) for p in as_text(value).split(";") if p.strip()]
    return [(to_decimal(p[0] if len(p) > 0 else None), to_decimal(p[1] if len(p) > 1 else None))
            for p in parts]


def fill_liquidity(fill: Mapping) -> str:
    """"maker" or "taker" (old data, without the key: taker)."""
    return as_text(fill.get("liquidity")).strip().lower() or "taker"


def fill_order_type(fill: Mapping) -> str:
    """"market" or "limit" (old data: market)."""
    return as_text(fill.get("order_type")).strip().lower() or "market"


def fill_order_size(fill: Mapping) -> tuple[Decimal | None, Decimal | None, bool]:
    """(order qty, filled after this fill, partial): old data filled its whole order at once."""
    qty = to_decimal(fill.get("qty"))
    order_qty = to_decimal(fill.get("order_qty"))
    if order_qty is None:
        order_qty = qty
    filled = to_decimal(fill.get("order_filled"))
    if filled is None:
        filled = order_qty
    partial = order_qty is not None and filled is not None and filled < order_qty
    return order_qty, filled, partial


def fmt_order_qty(fill: Mapping) -> str:
    """The order's quantity, "0.010" or "0.010 partial" when this fill left some unfilled."""
    order_qty, _filled, partial = fill_order_size(fill)
    if order_qty is None:
        return DASH
    return f"{fmt_qty(order_qty)} partial" if partial else fmt_qty(order_qty)


def fill_pricing_lines(fill: Mapping) -> list[str]:
    """What priced the fill, in words, one line each: the order (type, liquidity, how much of
    it had filled), the price model, each level taken (price x size; the last one an impact
    leg when the visible depth ran out). Nothing is claimed for old data that lacks the keys."""
    lines = []
    order_qty, filled, partial = fill_order_size(fill)
    head = f"{fill_order_type(fill)} order, {fill_liquidity(fill)}"
    if partial:
        head += f", partial: {fmt_qty(filled)} of {fmt_qty(order_qty)} BTC filled so far"
    lines.append(head)
    model = as_text(fill.get("price_model")).strip()
    if model:
        lines.append(PRICE_MODEL_WORDS.get(model, f"priced by: {model}"))
    depth = to_float(fill.get("depth_cost_bps"))
    legs = parse_legs(fill.get("legs"))
    exhausted = is_true(fill.get("depth_exhausted"))
    if legs and model in ("queue", "top_of_book") and not exhausted:
        where = "its limit price" if model == "queue" else "the best level"
        lines.append(f"filled at {where}: " + "; ".join(
            f"{fmt_price(px)} \u00d7 {fmt_qty(qty)} BTC" for px, qty in legs))
    elif legs:
        lines.append(f"levels taken ({len(legs)}), price \u00d7 size:")
        for i, (px, qty) in enumerate(legs):
            impact = exhausted and i == len(legs) - 1
            lines.append(f"  {fmt_price(px)} \u00d7 {fmt_qty(qty)} BTC"
                         + ("  (impact leg, beyond the visible book)" if impact else ""))
    if depth is not None and (depth or (legs and model not in ("queue", "top_of_book"))):
        lines.append(f"depth cost {fmt_bps(depth)} bps (VWAP vs best price)")
    if exhausted:
        lines.append(DEPTH_EXHAUSTED_NOTE)
    return lines
