"""The report pages, summary.html and compare.html: what each section shows, the charts' data,
and the Jinja2 environment that renders resources/templates.

Python works the figures out and formats them (the templates' filters, storage.report_format);
the templates only lay them out. Autoescape is on, so every value taken from the caller is
escaped; chart data goes in as JSON made safe for a <script> block (|tojson). The page's CSS and
script (resources/templates/report.css, report.js) and the chart library (TradingView
Lightweight Charts, resources/vendor/lightweight-charts) are inlined: a page loads nothing.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from storage.report_format import (
    DASH,
    as_mapping,
    as_text,
    fmt_bps,
    fmt_duration,
    fmt_fixed,
    fmt_int,
    fmt_metric,
    fmt_money,
    fmt_pct,
    fmt_price,
    fmt_qty,
    fmt_rate,
    fmt_signed_int,
    fmt_utc,
    fmt_value,
    side_of,
    sign_class,
    cost_class,
    fill_liquidity,
    fill_order_size,
    fill_order_type,
    fill_pricing_lines,
    is_true,
    parse_legs,
    to_decimal,
    to_float,
    ts_to_ms,
    win_rate_note,
)
from storage.resources import TEMPLATES_DIR, VENDOR_DIR, resource_path

log = logging.getLogger("storage.reports")  # the report's log lines, wherever they come from

MAX_CHART_CANDLES = 300
MAX_EQUITY_POINTS = 2000
MAX_FILL_ROWS = 500
MAX_EVENT_ROWS = 200
CANDLE_MS = 60_000

CHART_LIBRARY = "lightweight-charts/lightweight-charts.standalone.production.js"


def downsample_min_max(
    points: Sequence[tuple[float, float]], max_points: int = MAX_EQUITY_POINTS
) -> list[tuple[float, float]]:
    """Thin an (x, y) series to at most max_points, keeping both ends and each bucket's min and max."""
    n = len(points)
    if n <= max_points:
        return list(points)
    if max_points < 4:
        return [points[0], points[-1]][: max(max_points, 0)]
    inner = points[1:-1]
    buckets = (max_points - 2) // 2
    size = len(inner) / buckets
    out = [points[0]]
    for b in range(buckets):
        chunk = inner[int(b * size) : int((b + 1) * size)]
        if not chunk:
            continue
        i_min = i_max = 0
        y_min = y_max = chunk[0][1]
        for i, (_, y) in enumerate(chunk):
            if y < y_min:
                i_min, y_min = i, y
            elif y > y_max:
                i_max, y_max = i, y
        if i_min == i_max:
            out.append(chunk[i_min])
        else:
            out.extend((chunk[i_min], chunk[i_max]) if i_min < i_max else (chunk[i_max], chunk[i_min]))
    out.append(points[-1])
    return out


def render_summary_html(
    *,
    report: dict,
    fills: list[dict],
    candles: list[dict],
    equity: list[dict],
    settings: dict,
    feed: dict,
    segments: list[dict] | None = None,
    events: list[dict] | None = None,
) -> str:
    """Render the run summary as one self-contained HTML page (pure; no disk, no clock)."""
    report = dict(report or {})
    fills = [as_mapping(f) for f in (fills or [])]
    candles = list(candles or [])
    equity = list(equity or [])
    settings = dict(settings or {})
    feed = dict(feed or {})

    run_id = report.get("run_id")
    status = as_text(report.get("status")) or "unknown"
    price = _guarded("Price", _price_view, candles, [("", "", fills)])
    equity_view = _guarded("Equity", _equity_view, [("", "equity", equity)], report)
    return _render_page("summary.html.j2", {
        "title": f"Run {as_text(run_id) or DASH} \u2014 {status}",
        "header": _guarded("Header", _header_view, report),
        "banner": _guarded("Data source", _banner_view, report),
        "figures": _guarded("Key figures", _key_figures_view, report, fills),
        "costs": _guarded("Costs", _costs_view, report, fills),
        "price": price,
        "equity": equity_view,
        "fills": _guarded("Fills", _fills_view, fills),
        "segments": _guarded("Segments", _table_view, list(segments), _SEGMENT_COLUMNS)
        if segments else None,
        "settings": _guarded("Settings", _kv_view, settings, None),
        "feed": _guarded("Feed health", _kv_view, feed, 3),
        "events": _guarded("Events", _events_view, list(events or [])),
        "report_fields": _guarded("Report fields", _kv_view, report, None),
        "charts": _has_chart(price) or _has_chart(equity_view),
    })


def render_compare_html(comparison: dict) -> str:
    """Render a comparison of two runs (see write_compare_html) as one self-contained HTML page.

    ``comparison`` has "title", "identical", "base" and "other" (each with "run_id", "label",
    "report", "settings"), "changed_settings", "metrics", "pairs" (matched fills), "candles"
    and "equity" ({"base": [...], "other": [...]}). Pure: no disk, no clock.
    """
    c = dict(as_mapping(comparison))
    base, other = as_mapping(c.get("base")), as_mapping(c.get("other"))
    labels = (as_text(base.get("label")) or "base", as_text(other.get("label")) or "other")
    pairs = [as_mapping(p) for p in (c.get("pairs") or [])]
    fill_sets = [
        ("base", labels[0], [as_mapping(p.get("base")) for p in pairs if p.get("base")]),
        ("other", labels[1], [as_mapping(p.get("other")) for p in pairs if p.get("other")]),
    ]
    equity = as_mapping(c.get("equity"))
    price = _guarded("Price", _price_view, list(c.get("candles") or []), fill_sets)
    equity_view = _guarded(
        "Equity", _equity_view,
        [("base", labels[0], list(equity.get("base") or [])),
         ("other", labels[1], list(equity.get("other") or []))],
        as_mapping(base.get("report")),
    )
    title = as_text(c.get("title")) or f"{labels[1]} vs {labels[0]}"
    return _render_page("compare.html.j2", {
        "title": title,
        "labels": labels,
        "header": _guarded("Header", _compare_header_view, c, title, labels, pairs),
        "changed": _guarded("Changed settings", _changed_settings_view, c),
        "metrics": _guarded("Metrics", _metrics_view, c),
        "price": price,
        "equity": equity_view,
        "pairs": _guarded("Fills", _pairs_view, pairs),
        "charts": _has_chart(price) or _has_chart(equity_view),
    })



def _cell(fmt: Callable[..., str]) -> Callable[..., str]:
    """A template filter: fmt(value), or a dash for None and for an empty result."""
    def apply(value: Any, *args: Any, **kwargs: Any) -> str:
        if value is None:
            return DASH
        return fmt(value, *args, **kwargs) or DASH
    return apply


# Python formats, the templates place: every figure on a page goes through one of these.
_FILTERS: dict[str, Callable[..., Any]] = {
    "utc": _cell(fmt_utc),
    "price": _cell(fmt_price),
    "money": _cell(fmt_money),
    "bps": _cell(fmt_bps),
    "qty": _cell(fmt_qty),
    "count": _cell(fmt_int),
    "signed_count": _cell(fmt_signed_int),
    "pct": _cell(fmt_pct),
    "rate": _cell(fmt_rate),
    "duration": _cell(fmt_duration),
    "fixed": _cell(fmt_fixed),
    "value": _cell(fmt_value),
    "metric": _cell(fmt_metric),
    "side": _cell(side_of),
    "text": as_text,
    "number": to_float,
    "sign_class": sign_class,
    "cost_class": cost_class,
}


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------

_MACROS = "macros.html.j2"


@dataclasses.dataclass(frozen=True)
class _Failed:
    """Stands in for a section whose figures could not be worked out."""

    error: str


def _guarded(name: str, build: Callable[..., Any], *args: Any) -> Any:
    """Work out one section's figures; a section that fails becomes a note, the page stays."""
    try:
        return build(*args)
    except Exception as exc:
        log.exception("report_section_failed", extra={"section": name})
        return _Failed(f"{type(exc).__name__}: {exc}")


def _section(name: str, macro: Callable[..., Any], view: Any, *args: Any) -> Any:
    """Template global: macro(view, *args), one section; a failure is a note in its place."""
    from markupsafe import Markup

    if not isinstance(view, _Failed):
        try:
            return Markup(macro(view, *args))
        except Exception as exc:
            log.exception("report_section_failed", extra={"section": name})
            view = _Failed(f"{type(exc).__name__}: {exc}")
    try:
        return Markup(_environment().get_template(_MACROS).module.failed_section(name, view.error))
    except Exception:
        log.exception("report_section_note_failed", extra={"section": name})
        return Markup("<section class=\"card\"><h2>{}</h2><p class=\"empty\">This section could "
                      "not be rendered: {}</p></section>\n").format(name, view.error)


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    """The Jinja2 environment of the report pages (built once; autoescape on)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_path(TEMPLATES_DIR))),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters.update(_FILTERS)
    env.globals.update(
        DASH=DASH,
        section=_section,
        asset=_asset,
        chart_library=_chart_library,
        chart_library_version=_chart_library_version,
    )
    # |tojson: compact, and no NaN (chart data holds finite numbers only)
    env.policies["json.dumps_kwargs"] = {"separators": (",", ":"), "allow_nan": False}
    return env


def _render_page(name: str, context: dict) -> str:
    return _environment().get_template(name).render(context)


def _script_safe(text: str, source: str) -> str:
    """Text to inline in a <script> or <style> block: it must not end the block early."""
    lowered = text.lower()
    for needle in ("</script", "</style", "<!--"):
        if needle in lowered:
            raise ValueError(f"{source} holds {needle!r}; it cannot be inlined")
    return text


@functools.lru_cache(maxsize=8)
def _asset(name: str) -> Any:
    """Template global: a CSS or JS file of resources/templates, to inline verbatim."""
    from markupsafe import Markup

    path = resource_path(TEMPLATES_DIR) / name
    return Markup(_script_safe(path.read_text(encoding="utf-8"), str(path)))


@functools.lru_cache(maxsize=1)
def _chart_library_text() -> str:
    path = resource_path(VENDOR_DIR) / CHART_LIBRARY
    try:
        return _script_safe(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, ValueError):
        # the page still renders; its charts then say the library is missing
        log.exception("report_chart_library_missing", extra={"path": str(path)})
        return ""


def _chart_library() -> Any:
    """Template global: the chart library's script, or "" when it cannot be read."""
    from markupsafe import Markup

    return Markup(_chart_library_text())


def _chart_library_version() -> str:
    """The inlined library's version, from its licence header ("" when unknown)."""
    m = re.search(r"Lightweight Charts\S* v(\d+\.\d+\.\d+)", _chart_library_text()[:400])
    return m.group(1) if m else ""


def _has_chart(view: Any) -> bool:
    return isinstance(view, Mapping) and view.get("chart") is not None


# --------------------------------------------------------------------------------------------
# Summary sections: the figures each one shows, raw; the templates format and place them
# --------------------------------------------------------------------------------------------


def _header_view(report: Mapping) -> dict:
    status = as_text(report.get("status")).strip().lower()
    error = report.get("error")
    return {
        "symbol": report.get("symbol"),
        "run_id": report.get("run_id"),
        "source": report.get("source"),
        "started": report.get("started"),
        "ended": report.get("ended"),
        "stopped_reason": report.get("stopped_reason"),
        "exit_code": report.get("exit_code"),
        "error": error,
        "show_error": error not in (None, "") or status == "error",
        "badge_class": {"success": "ok", "error": "bad"}.get(status, "neutral"),
        "badge_text": status.upper() if status else "UNKNOWN",
    }


def _banner_view(report: Mapping) -> str | None:
    source = as_text(report.get("source"))
    offline = report.get("offline_fallback") is True or as_text(report.get("offline_fallback")).lower() == "true"
    replay = "replay" in source.lower()
    if not (offline or replay):
        return None
    if offline:
        text = (
            "Offline fallback: the live Bitunix feed was unavailable, so this run used recorded "
            "replay data. Results do not reflect live market conditions."
        )
    else:
        text = "Replay run: prices come from recorded market data, not the live Bitunix feed."
    if source:
        text += f" Source: {source}."
    return text


_FIGURE_KEYS = (
    "pnl_absolute", "final_equity", "starting_equity", "realized_pnl", "fills", "round_trips",
    "win_rate", "max_drawdown", "max_drawdown_pct", "fees", "funding", "mean_spread_cost_bps",
    "mean_latency_drift_bps", "duration_seconds", "reconnects", "dropped_messages",
    "error_count", "blocked_signals", "restarts",
)


def _key_figures_view(report: Mapping, fills: Sequence[Mapping] = ()) -> dict:
    pnl_pct: Any = None
    pnl_d, start_d = to_decimal(report.get("pnl_absolute")), to_decimal(report.get("starting_equity"))
    if pnl_d is not None and start_d:
        pnl_pct = pnl_d / start_d * 100
    elif report.get("pnl_pct") is not None:
        pnl_pct = report.get("pnl_pct")
    r = {k: report.get(k) for k in _FIGURE_KEYS}
    for key, bps_key in (("mean_spread_cost_bps", "spread_cost_bps"),
                         ("mean_latency_drift_bps", "latency_drift_bps")):
        if r[key] is None and fills:  # an older report: the mean of its fills
            r[key] = _cost_mean_bps(bps_key, fills)
    return {
        "r": r,
        "unit": "USDT" if as_text(report.get("symbol") or "BTCUSDT").upper().endswith("USDT") else "",
        "pnl_pct": pnl_pct,
        "win_rate_note": win_rate_note(report),
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _fill_mid(f: Mapping) -> float | None:
    mid = to_float(f.get("mid"))
    if mid is None:
        bid, ask = to_float(f.get("bid")), to_float(f.get("ask"))
        mid = (bid + ask) / 2 if bid is not None and ask is not None else None
    return mid


# (key, name, what it measures, the fill's bps key, the report's USDT key, its mean bps key)
_COST_PARTS = (
    ("spread", "Spread", "best price vs mid", "spread_cost_bps", "spread_cost_usdt",
     "mean_spread_cost_bps"),
    ("depth", "Depth", "VWAP of the levels taken vs the best price (mean: market orders)",
     "depth_cost_bps",
     "depth_cost_usdt", "mean_depth_cost_bps"),
    ("drift", "Latency drift", "mid at the fill vs the signal price", "latency_drift_bps",
     "drift_cost_usdt", "mean_latency_drift_bps"),
)

_PRICE_MODEL_COUNTS = (
    ("book", "walked the book"),
    ("top_of_book", "at the top of book (no depth known)"),
    ("queue", "filled from the queue as resting limit orders"),
    ("no_quote_fallback", "without a quote (fallback price)"),
)


def _cost_mean_bps(key: str, fills: Sequence[Mapping]) -> float | None:
    """A part's mean bps over the fills it concerns: depth over market-order fills of a signal
    (a resting limit order takes no depth), drift over fills of a signal, spread over all."""
    if key == "depth_cost_bps":
        fills = [f for f in fills if fill_order_type(f) == "market"
                 and f.get("signal_ts") not in (None, "")]
        return _mean([to_float(f.get(key)) or 0.0 for f in fills])
    return _mean([x for x in (to_float(f.get(key)) for f in fills) if x is not None])


def _depth_model_words(depth_model: str) -> tuple[str, bool]:
    """(what priced the depth, whether depth beyond the best level was modelled, not seen)."""
    text = depth_model.strip()
    low = text.lower()
    modelled = "synthetic" in low or "model" in low
    if modelled:
        return (f"Depth beyond the best level was modelled, not observed: {text}.", True)
    if "top of book" in low:
        return (f"Depth: {text} \u2014 no level beyond the best was known, so every market "
                "order filled at the best price.", False)
    return (f"Depth: {text}.", False)


def _costs_view(report: Mapping, fills: Sequence[Mapping]) -> dict:
    """Where the money went: spread, depth and latency drift (mean bps and USDT, qty x mid x
    bps / 10,000 summed over the fills) and fees; how the fills were priced. The report's own
    figures are shown where it has them, the fills' sums where it does not (older runs)."""
    rows = []
    for key, name, what, bps_key, usdt_key, mean_key in _COST_PARTS:
        usdt = to_float(report.get(usdt_key))
        if usdt is None and fills:
            usdt = 0.0
            for f in fills:
                qty, mid = to_float(f.get("qty")), _fill_mid(f)
                bps = to_float(f.get(bps_key)) or 0.0
                if qty is not None and mid is not None:
                    usdt += qty * mid * bps / 1e4
        bps = to_float(report.get(mean_key))
        if bps is None:
            bps = _cost_mean_bps(bps_key, fills)
        rows.append({"key": key, "name": name, "what": what, "bps": bps, "usdt": usdt})
    fees = to_float(report.get("fees"))
    if fees is None and fills:
        fees = sum(to_float(f.get("fee")) or 0.0 for f in fills)
    fee_bps = _mean([x for x in (to_float(f.get("fee_bps")) for f in fills) if x is not None])
    rows.append({"key": "fees", "name": "Fees", "what": "taker fee, or the maker fee for a "
                 "resting limit order's fills", "bps": fee_bps, "usdt": fees})
    known = [r["usdt"] for r in rows if r["usdt"] is not None]
    if not known or not (fills or any(report.get(p[4]) is not None for p in _COST_PARTS)):
        return {"rows": []}
    total = sum(known)
    widest = max(abs(x) for x in known) or 1.0
    for r in rows:
        u = r["usdt"]
        r["bar"] = 0.0 if u is None else round(abs(u) / widest * 100, 1)
        r["class"] = "" if not u else ("cost" if u > 0 else "gain")

    by_model: dict[str, int] = {}
    by_liquidity: dict[str, int] = {}
    partial = exhausted = 0
    for f in fills:
        model = as_text(f.get("price_model")).strip() or "unrecorded"
        by_model[model] = by_model.get(model, 0) + 1
        liq = fill_liquidity(f)
        by_liquidity[liq] = by_liquidity.get(liq, 0) + 1
        partial += fill_order_size(f)[2]
        exhausted += is_true(f.get("depth_exhausted"))
    if not fills:
        by_model = {as_text(k): int(to_float(v) or 0)
                    for k, v in as_mapping(report.get("fills_by_price_model")).items()}
        by_liquidity = {as_text(k): int(to_float(v) or 0)
                        for k, v in as_mapping(report.get("fills_by_liquidity")).items()}
    words = dict(_PRICE_MODEL_COUNTS)
    order = [k for k, _ in _PRICE_MODEL_COUNTS] + sorted(k for k in by_model if k not in words)
    words["unrecorded"] = "with no price model recorded (older data)"
    models = [f"{by_model[k]:,} {words.get(k, f'priced by {k}')}"
              for k in order if by_model.get(k)]
    liquidity = [f"{by_liquidity[k]:,} {k}" for k in ("maker", "taker") if by_liquidity.get(k)]
    liquidity += [f"{n:,} {k}" for k, n in sorted(by_liquidity.items())
                  if k not in ("maker", "taker") and n]
    priced = []
    if models:
        priced.append(", ".join(models))
    if liquidity:
        priced.append(", ".join(liquidity))
    if partial:
        priced.append(f"{partial:,} partial fill{'s' if partial != 1 else ''} (part of an "
                      "order; the rest filled later or was cancelled)")
    if exhausted:
        priced.append(f"{exhausted:,} ran out of visible depth (the rest filled by the impact "
                      "rule)")
    depth_model = as_text(report.get("depth_model")).strip()
    depth_text, modelled = _depth_model_words(depth_model) if depth_model else ("", False)
    return {
        "rows": rows,
        "total": total,
        "priced": priced,
        "depth_model": depth_text,
        "modelled": modelled,
    }


_FILL_VIEW_KEYS = ("fill_ts", "side", "reason", "qty", "signal_px", "fill_px", "bid", "ask",
                   "latency_ms", "latency_drift_bps", "spread_cost_bps", "fee", "realized_pnl")


def _fill_row(f: Mapping) -> dict:
    row = {k: f.get(k) for k in _FILL_VIEW_KEYS}
    order_qty, filled, partial = fill_order_size(f)
    row.update({
        "liquidity": fill_liquidity(f),
        "order_qty": order_qty,
        "order_filled": filled,
        "partial": partial,
        "depth_cost_bps": to_float(f.get("depth_cost_bps")) or 0.0,
        "depth_exhausted": is_true(f.get("depth_exhausted")),
        "legs": bool(parse_legs(f.get("legs"))),
        "tip": "\n".join(fill_pricing_lines(f)),
    })
    return row


def _fills_view(fills: Sequence[Mapping]) -> dict:
    if not fills:
        return {"rows": []}
    shown = fills[-MAX_FILL_ROWS:]
    fee_total = sum((d for d in (to_decimal(f.get("fee")) for f in fills) if d is not None), Decimal(0))
    pnl_total = sum(
        (d for d in (to_decimal(f.get("realized_pnl")) for f in fills) if d is not None), Decimal(0)
    )
    spreads = [x for x in (to_float(f.get("spread_cost_bps")) for f in fills) if x is not None]
    drifts = [x for x in (to_float(f.get("latency_drift_bps")) for f in fills) if x is not None]
    depths = [to_float(f.get("depth_cost_bps")) or 0.0 for f in fills]
    return {
        "rows": [_fill_row(f) for f in shown],
        "mean_depth": _mean(depths),
        "total": len(fills),
        "fee_total": fee_total,
        "pnl_total": pnl_total,
        "mean_spread": sum(spreads) / len(spreads) if spreads else None,
        "mean_drift": sum(drifts) / len(drifts) if drifts else None,
        "note": f"Showing the last {len(shown):,} of {len(fills):,} fills; fills.csv has them all."
        if len(shown) < len(fills) else "",
    }


_SEGMENT_COLUMNS = (
    # header, key, formatter, numeric
    ("Segment", "segment", fmt_value, True),
    ("Started (UTC)", "started", fmt_utc, False),
    ("Ended (UTC)", "ended", fmt_utc, False),
    ("Duration", "duration_seconds", fmt_duration, True),
    ("Exit reason", "exit_reason", fmt_value, False),
)
_EVENT_COLUMNS = (
    ("Time (UTC)", "ts", fmt_utc, False),
    ("Kind", "kind", fmt_value, False),
    ("Detail", "detail", fmt_value, False),
)


def _table_view(rows: Sequence[Any], columns: Sequence[tuple[str, str, Callable[[Any], str], bool]]) -> dict:
    """Dict rows as text cells: the given columns first, any other keys after them as text."""
    maps = [as_mapping(r) for r in rows]
    known = {key for _, key, _, _ in columns}
    extra: list[str] = []
    for m in maps:
        for k in m:
            if k not in known and k not in extra and len(extra) < 12:
                extra.append(k)
    cols = list(columns) + [(str(k), k, fmt_value, False) for k in extra]
    return {
        "head": [(h, num) for h, _, _, num in cols],
        "rows": [
            [((fmt(m.get(key)) if m.get(key) is not None else DASH) or DASH, num)
             for _, key, fmt, num in cols]
            for m in maps
        ],
    }


def _events_view(events: Sequence[Any]) -> dict:
    shown = events[-MAX_EVENT_ROWS:]
    return {
        "table": _table_view(shown, _EVENT_COLUMNS) if shown else None,
        "shown": len(shown),
        "note": f"Showing the last {len(shown):,} of {len(events):,} events."
        if len(shown) < len(events) else "",
    }


def _kv_view(data: Mapping, float_places: int | None) -> list[tuple[str, str, bool]]:
    """(key, value text, numeric) per entry of a flat mapping."""
    return [
        (as_text(k), fmt_value(v, float_places),
         isinstance(v, (int, float, Decimal)) and not isinstance(v, bool))
        for k, v in data.items()
    ]


# --------------------------------------------------------------------------------------------
# Charts: the data each chart draws, as JSON for the page's script
# --------------------------------------------------------------------------------------------


def _clean_candles(candles: Sequence[Any]) -> list[tuple[int, float, float, float, float]]:
    out = []
    for raw in candles:
        c = as_mapping(raw)
        ts = ts_to_ms(c.get("ts"))
        o, h, l, cl = (to_float(c.get(k)) for k in ("open", "high", "low", "close"))
        if ts is None or o is None or cl is None:
            continue
        h = max(x for x in (h, o, cl) if x is not None)
        l = min(x for x in (l, o, cl) if x is not None)
        out.append((ts, o, h, l, cl))
    out.sort(key=lambda r: r[0])
    return out


def _fill_role(fill: Mapping) -> str:
    """"entry" for a fill that opened or grew the position, else "exit"."""
    side = side_of(fill.get("side"))
    after, qty = to_decimal(fill.get("position_after")), to_decimal(fill.get("qty"))
    if after is not None and qty is not None and side in ("BUY", "SELL"):
        before = after - qty if side == "BUY" else after + qty
        if before * after < 0:
            return "entry"  # a reversal: it closes one position and opens the next
        return "entry" if abs(after) > abs(before) else "exit"
    if as_text(fill.get("reason")).strip().lower() == "entry":
        return "entry"
    return "exit" if to_decimal(fill.get("realized_pnl")) else "entry"


def _fill_marker(ts: int, px: float, run: str, label: str, fill: Mapping) -> dict:
    side = side_of(fill.get("side"))
    role = _fill_role(fill)
    reason = as_text(fill.get("reason")) or DASH
    tip = f"{side or '?'} {fmt_qty(fill.get('qty'))} @ {fmt_price(px)} \u00b7 {fmt_utc(ts)} UTC \u00b7 {reason}"
    if role == "exit" and to_decimal(fill.get("realized_pnl")) is not None:
        tip += f" \u00b7 PnL {fmt_fixed(fill.get('realized_pnl'), 4, sign=True)}"
    if run:
        tip = f"{label}: {tip}"
        text = ""
    elif role == "entry":
        text = {"BUY": "Buy", "SELL": "Sell"}.get(side, "Fill")
    else:
        text = reason[:12] if reason != DASH else "exit"
    return {"t": ts // 1000, "px": px, "side": side, "role": role, "run": run, "text": text,
            "tip": tip}


def _price_view(candles: Sequence[Any], fill_sets: Sequence[tuple[str, str, Sequence[Mapping]]]) -> dict:
    """Candlesticks (the last MAX_CHART_CANDLES) and a marker per fill of each (run, label, fills)."""
    all_candles = _clean_candles(candles)
    shown = all_candles[-MAX_CHART_CANDLES:]
    points = []
    total = 0
    for run, label, fills in fill_sets:
        for f in fills:
            total += 1
            ts, px = ts_to_ms(f.get("fill_ts")), to_float(f.get("fill_px"))
            if ts is not None and px is not None:
                points.append((ts, px, run, label, f))
    points.sort(key=lambda p: p[0])

    notes = []
    if len(all_candles) > len(shown):
        notes.append(f"Showing the last {len(shown):,} of {len(all_candles):,} one-minute candles.")
    if shown:
        t0 = shown[0][0]
        in_window = [p for p in points if t0 <= p[0]]
        # fills after the last closed candle (the end-of-session flatten, a stop in the last
        # minute) widen the chart to the right instead of falling off it
        t1 = max([shown[-1][0] + CANDLE_MS] + [p[0] for p in in_window])
    elif points:
        in_window = points
        t0, t1 = points[0][0], points[-1][0]
        notes.append("No candle data was recorded; fills are plotted on their own.")
    else:
        return {"chart": None}
    skipped = len(points) - len(in_window)
    if skipped:
        notes.append(f"{skipped:,} fills fall outside the chart window and are not marked.")
    if len(points) < total:
        notes.append(f"{total - len(points):,} fills lack a fill time or price.")

    markers = []
    bars: list[list[float]] = []
    line: list[list[float]] = []
    if shown:
        # each fill is marked on the bar of the minute it fell in; a minute without a candle
        # (after the last one, or a gap) gets an empty bar so the time axis reaches it
        bar_ms = {c[0] for c in shown}
        offset = shown[0][0] % CANDLE_MS
        extra = set()
        for ts, px, run, label, f in in_window:
            bucket = ts - (ts - offset) % CANDLE_MS
            marker = _fill_marker(bucket, px, run, label, f)
            if bucket not in bar_ms:
                extra.add(bucket)
                marker["free"] = True  # drawn on a bar of its own (report.js)
            markers.append(marker)
        rows = [(c[0], [c[0] // 1000, c[1], c[2], c[3], c[4]]) for c in shown]
        rows += [(t, [t // 1000]) for t in extra]
        rows.sort(key=lambda r: r[0])
        seen: dict[int, list[float]] = {}
        for _, row in rows:  # one bar per second of the time axis, the last one kept
            seen[int(row[0])] = row
        bars = list(seen.values())
    else:
        by_second: dict[int, float] = {}
        for ts, px, run, label, f in in_window:
            by_second[ts // 1000] = px
            markers.append(_fill_marker(ts - ts % 1000, px, run, label, f))
        line = [[t, px] for t, px in by_second.items()]
    # on a bar holding both runs' fills, the base run's come first (stacked nearest the bar)
    markers.sort(key=lambda m: (m["t"], m["run"] == "other"))

    def count(run: str, side: str, role: str = "") -> int:
        return sum(1 for m in markers
                   if m["run"] == run and m["side"] == side and (not role or m["role"] == role))

    return {
        "chart": {
            "kind": "price",
            "bars": bars,
            "line": line,
            "fills": markers,
            "placement": "price" if len(fill_sets) == 1 else "bar",
            "precision": 1,
        },
        "notes": notes,
        "start": t0,
        "end": t1,
        "runs": [
            {"run": run, "label": label, "buys": count(run, "BUY"), "sells": count(run, "SELL"),
             "buy_entries": count(run, "BUY", "entry"), "sell_entries": count(run, "SELL", "entry"),
             "exits": sum(1 for m in markers if m["run"] == run and m["role"] == "exit")}
            for run, label, _ in fill_sets
        ],
    }


def _equity_points(equity: Sequence[Any]) -> list[tuple[int, float]]:
    points = []
    for raw in equity:
        p = as_mapping(raw)
        ts, v = ts_to_ms(p.get("ts")), to_float(p.get("equity"))
        if ts is not None and v is not None:
            points.append((ts, v))
    points.sort(key=lambda p: p[0])
    return points


def _chart_points(points: Sequence[tuple[float, float]]) -> list[list[float]]:
    """[[epoch seconds, value], ...] with one point per second (the last one kept)."""
    by_second: dict[int, float] = {}
    for ts, v in points:
        by_second[int(ts // 1000)] = v
    return [[t, v] for t, v in by_second.items()]


def _equity_view(series: Sequence[tuple[str, str, Sequence[Any]]], report: Mapping) -> dict:
    """One curve per (run, label, samples), each thinned to MAX_EQUITY_POINTS."""
    curves = []
    for run, label, samples in series:
        points = _equity_points(samples)
        if not points:
            continue
        thin = downsample_min_max(points, MAX_EQUITY_POINTS)
        values = [v for _, v in points]
        note = ""
        if len(thin) < len(points):
            note = f"{len(points):,} samples drawn as {len(thin):,} points (min and max kept per bucket)."
        elif len(points) == 1:
            note = "Only one equity sample was recorded."
        if note and run:
            note = f"{label}: {note}"
        curves.append({"run": run, "label": label, "points": _chart_points(thin),
                       "final": points[-1][1], "low": min(values), "high": max(values),
                       "first": points[0][1], "note": note})
    if not curves:
        return {"chart": None}
    start = to_float(report.get("starting_equity"))
    if start is None:
        start = curves[0]["first"]
    for c in curves:
        c["change"] = c["final"] - start
    return {
        "chart": {
            "kind": "equity",
            "start": start,
            "precision": 2,
            "series": [{"run": c["run"], "label": c["label"], "points": c.pop("points")}
                       for c in curves],
        },
        "start": start,
        "curves": curves,
        "notes": [c["note"] for c in curves if c["note"]],
    }


# --------------------------------------------------------------------------------------------
# Comparison sections
# --------------------------------------------------------------------------------------------

# which way a metric should move for the other run to be better; unlisted ones have no colour
_HIGHER_IS_BETTER = frozenset({"pnl_absolute", "realized_pnl", "funding", "final_equity",
                               "win_rate"})
_LOWER_IS_BETTER = frozenset({"fees", "mean_latency_drift_bps", "mean_spread_cost_bps",
                              "spread_cost_usdt", "drift_cost_usdt", "max_drawdown",
                              "max_drawdown_pct", "depth_cost_usdt", "mean_depth_cost_bps"})


def _shows_nonzero(text: str) -> bool:
    """Whether a formatted number reads as something other than zero."""
    return re.search(r"[1-9]", text) is not None


def _better_class(diff: Any, higher_is_better: bool, places: int) -> str:
    """ "pos" when the other run did better by a difference that shows, "neg" when worse."""
    d = to_float(diff)
    if d is None or not _shows_nonzero(fmt_fixed(d, places)):
        return ""
    return "pos" if (d > 0) == higher_is_better else "neg"


def _nonzero(value: Any) -> bool:
    d = to_decimal(value)
    return d is not None and d != 0


def _pair_differs(pair: Mapping) -> bool:
    """A matched pair whose fills differ in what they traded or cost (a time shift alone, which
    a latency change gives every fill, does not count)."""
    return any(_nonzero(pair.get(k)) for k in ("price_diff", "qty_diff", "fee_diff", "pnl_diff"))


def _compare_header_view(c: Mapping, title: str, labels: tuple[str, str],
                         pairs: Sequence[Mapping]) -> dict:
    base, other = as_mapping(c.get("base")), as_mapping(c.get("other"))
    identical = c.get("identical") is True
    matched = [p for p in pairs if p.get("match") == "matched"]
    only_base = sum(1 for p in pairs if p.get("match") == "only_base")
    only_other = sum(1 for p in pairs if p.get("match") == "only_other")
    metrics = {as_text(m.get("key")): m for m in (as_mapping(x) for x in c.get("metrics") or [])}
    pnl = as_mapping(metrics.get("pnl_absolute"))
    if identical:
        verdict = f"Identical: {len(matched):,} fills, PnL equal"
    else:
        parts = []
        if pnl:
            if _nonzero(pnl.get("diff")):
                parts.append(f"PnL {fmt_money(pnl.get('base'), sign=True)} vs "
                             f"{fmt_money(pnl.get('other'), sign=True)} USDT "
                             f"({fmt_money(pnl.get('diff'), sign=True)})")
            else:
                parts.append("PnL equal")
        n_base, n_other = len(matched) + only_base, len(matched) + only_other
        parts.append(f"{n_base:,} vs {n_other:,} fills" if n_base != n_other else f"{n_base:,} fills each")
        differing = sum(1 for p in matched if _pair_differs(p))
        if differing:
            parts.append(f"{differing:,} of {len(matched):,} matched fills differ in price, "
                         "quantity, fee or PnL")
        elif matched:
            parts.append("every matched fill at the same price, quantity, fee and PnL")
        shifted = [p for p in matched if _nonzero(p.get("ts_diff_ms"))]
        if shifted:
            parts.append(f"{len(shifted):,} filled at another time")
        if only_base:
            parts.append(f"{only_base:,} only in the {labels[0]}")
        if only_other:
            parts.append(f"{only_other:,} only in the {labels[1]}")
        verdict = "Differs: " + "; ".join(parts)
    runs = []
    for label, run in zip(labels, (base, other)):
        report = as_mapping(run.get("report"))
        runs.append({"label": label, "run_id": run.get("run_id"), "status": report.get("status"),
                     "source": report.get("source"), "data_start": report.get("data_start"),
                     "data_end": report.get("data_end")})
    return {"title": title, "identical": identical, "verdict": verdict, "runs": runs}


def _changed_settings_view(c: Mapping) -> list[tuple[str, str, str]]:
    rows = []
    for raw in c.get("changed_settings") or []:
        s = as_mapping(raw)
        rows.append((as_text(s.get("name")) or DASH, fmt_value(s.get("base")), fmt_value(s.get("other"))))
    return rows


def _metrics_view(c: Mapping) -> list[dict]:
    rows = []
    for raw in c.get("metrics") or []:
        m = as_mapping(raw)
        key, unit = as_text(m.get("key")), as_text(m.get("unit"))
        diff = to_float(m.get("diff"))
        shown = diff is not None and _shows_nonzero(fmt_metric(diff, unit, sign=True))
        better = ""
        if shown and key in _HIGHER_IS_BETTER:
            better = "pos" if diff > 0 else "neg"
        elif shown and key in _LOWER_IS_BETTER:
            better = "pos" if diff < 0 else "neg"
        rows.append({"name": as_text(m.get("name")) or key or DASH, "unit": unit,
                     "base": m.get("base"), "other": m.get("other"), "diff": m.get("diff"),
                     "class": better})
    return rows


_PAIR_FILL_KEYS = ("fill_ts", "side", "qty", "fill_px", "reason")


def _pairs_view(pairs: Sequence[Mapping]) -> dict:
    shown = pairs[:MAX_FILL_ROWS]
    rows = []
    for p in shown:
        match = as_text(p.get("match"))
        sides = {}
        for key in ("base", "other"):
            f = p.get(key)
            sides[key] = {k: as_mapping(f).get(k) for k in _PAIR_FILL_KEYS} if f else None
        # a higher price is better for a sale, worse for a purchase
        fill_side = side_of((sides["base"] or sides["other"] or {}).get("side"))
        rows.append({"index": p.get("index"), "match": match, **sides,
                     "price_diff": p.get("price_diff"), "ts_diff_ms": p.get("ts_diff_ms"),
                     "pnl_diff": p.get("pnl_diff"),
                     "price_class": _better_class(p.get("price_diff"), fill_side == "SELL", 2)
                     if fill_side in ("BUY", "SELL") else "",
                     "pnl_class": _better_class(p.get("pnl_diff"), True, 4),
                     "differs": match != "matched" or _pair_differs(p)})
    return {
        "rows": rows,
        "total": len(pairs),
        "note": f"Showing the first {len(shown):,} of {len(pairs):,} fills."
        if len(shown) < len(pairs) else "",
    }
