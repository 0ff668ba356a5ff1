"""End-of-run reports: final_report.json, fills.csv and a self-contained summary.html.

A run folder holds exactly these three files; ``runs_dir/latest`` mirrors the newest run.
The HTML page needs nothing at view time: inline CSS, charts as inline SVG, no JavaScript,
no external resources. Every value taken from the caller goes through ``html.escape``.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import html
import io
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from storage.logger import redact, redact_value
from storage.state import write_text_atomic

log = logging.getLogger(__name__)

FINAL_REPORT_NAME = "final_report.json"
FILLS_CSV_NAME = "fills.csv"
SUMMARY_HTML_NAME = "summary.html"
LATEST_DIR_NAME = "latest"

FILL_COLUMNS: tuple[str, ...] = (
    "order_id",
    "seq",
    "side",
    "qty",
    "reason",
    "signal_ts",
    "signal_px",
    "due_ts",
    "fill_ts",
    "latency_ms",
    "fill_px",
    "bid",
    "ask",
    "mid",
    "spread_cost_bps",
    "latency_drift_bps",
    "fee",
    "fee_bps",
    "realized_pnl",
    "trigger",
    "trigger_px",
    "position_after",
    "cash_after",
)

MAX_CHART_CANDLES = 300
MAX_EQUITY_POINTS = 2000
MAX_FILL_ROWS = 500
MAX_EVENT_ROWS = 200
CANDLE_MS = 60_000

_REDACT_DEPTH = 32  # report values nest a few levels; deeper than this is cut, not written
_DASH = "\u2014"
_UTC_FORMAT = "%Y-%m-%d %H:%M:%S"


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def write_run_reports(
    runs_dir: Path,
    run_id: str,
    *,
    report: dict,
    fills: list[dict],
    candles: list[dict],
    equity: list[dict],
    settings: dict,
    feed: dict,
    segments: list[dict] | None = None,
    events: list[dict] | None = None,
) -> Path:
    """Write the run's report files into runs_dir/<run_id>/, mirror them to latest/, return the folder.

    Safe to call from a ``finally`` block: only a disk error while writing final_report.json
    propagates; a failing fills.csv, summary.html or latest/ mirror is logged and skipped.
    The folder name is run_id with characters outside ``[A-Za-z0-9._-]`` replaced by ``_``.
    """
    runs_dir = Path(runs_dir)
    run_dir = runs_dir / run_dir_name(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Everything written below comes from these values: redact them once, here, so no file can
    # carry a secret (a replay path or data dir holding a token, an error quoting a header).
    # An input that cannot even be walked is left out (logged), never written unredacted.
    report = _redacted_dict(dict(report or {}))
    fills = _redacted_or([], lambda: [_redacted_dict(dict(_as_mapping(f))) for f in fills or []])
    candles = _redacted_or([], lambda: _redacted_rows(candles or []))
    equity = _redacted_or([], lambda: _redacted_rows(equity or []))
    settings = _redacted_or({}, lambda: _redacted_dict(dict(settings or {})))
    feed = _redacted_or({}, lambda: _redacted_dict(dict(feed or {})))
    if segments is not None:
        segments = _redacted_or([], lambda: [_redacted(s) for s in segments])
    if events is not None:
        events = _redacted_or([], lambda: [_redacted(e) for e in events])

    write_text_atomic(run_dir / FINAL_REPORT_NAME, _report_json(report))

    try:
        write_text_atomic(run_dir / FILLS_CSV_NAME, fills_csv_text(fills), newline="")
    except Exception:
        log.exception("report_fills_csv_failed", extra={"run_id": run_id})

    # The page shows the run id even when the caller left it out of the report dict.
    page_report = report if "run_id" in report else {**report, "run_id": redact(str(run_id))}
    try:
        page = render_summary_html(
            report=page_report,
            fills=fills,
            candles=list(candles or []),
            equity=list(equity or []),
            settings=dict(settings or {}),
            feed=dict(feed or {}),
            segments=None if segments is None else list(segments),
            events=None if events is None else list(events),
        )
    except Exception as exc:
        log.exception("report_summary_render_failed", extra={"run_id": run_id})
        page = _minimal_summary_html(page_report, exc)
    try:
        write_text_atomic(run_dir / SUMMARY_HTML_NAME, page)
    except Exception:
        log.exception("report_summary_write_failed", extra={"run_id": run_id})

    try:
        _mirror_to_latest(runs_dir, run_dir)
    except Exception:
        log.exception("report_latest_mirror_failed", extra={"run_id": run_id})
    return run_dir


def _redacted(value: Any) -> Any:
    """Return value with secrets redacted; numbers, Decimals and the containers' shapes kept."""
    try:
        return redact_value(value, max_depth=_REDACT_DEPTH)
    except Exception:  # a container that breaks while iterated: keep its text, redacted
        try:
            return redact(str(value))
        except Exception:
            return "[UNPRINTABLE]"


def _redacted_dict(value: dict) -> dict:
    """Redact a plain dict and keep it a dict even when one of its values cannot be walked."""
    try:
        return redact_value(value, max_depth=_REDACT_DEPTH)
    except Exception:
        out: dict = {}
        for k, v in value.items():
            try:
                out.update(redact_value({k: v}, max_depth=_REDACT_DEPTH))
            except Exception:
                out[_redacted(str(k))] = "[UNPRINTABLE]"
        return out


def _redacted_or(default: Any, build: Callable[[], Any]) -> Any:
    """Return build(); on an error log it and return default (an input left out, not leaked)."""
    try:
        return build()
    except Exception:
        log.exception("report_input_redaction_failed")
        return default


_NUMBER_TYPES = (bool, int, float, Decimal)


def _redacted_rows(rows: Sequence[Any]) -> list[Any]:
    """Redact a long list of rows (candles, equity points) at the cost of its strings only.

    A row holding only numbers passes as it is once its set of keys has been seen to need no
    redaction; anything else goes through redact_value.
    """
    clean_keys: dict[tuple, bool] = {}
    out: list[Any] = []
    for row in rows:
        if isinstance(row, dict) and all(
            v is None or isinstance(v, _NUMBER_TYPES) for v in row.values()
        ):
            keys = tuple(row)
            clean = clean_keys.get(keys)
            if clean is None:
                probe = dict.fromkeys(keys, 0)
                clean = clean_keys[keys] = _redacted(probe) == probe
            if clean:
                out.append(row)
                continue
        out.append(_redacted(row))
    return out


def read_report(run_dir: Path) -> dict:
    """Load final_report.json from a run folder (or from runs_dir/latest)."""
    with open(Path(run_dir) / FINAL_REPORT_NAME, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{FINAL_REPORT_NAME} does not hold a JSON object")
    return data


def run_dir_name(run_id: str) -> str:
    """Map a run id to a safe single folder name (never empty, hidden or 'latest')."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(run_id)).lstrip(".")
    if not name:
        name = "run"
    if name == LATEST_DIR_NAME:
        name = "run-latest"
    return name


def fills_csv_text(fills: Sequence[Any]) -> str:
    """Render fills as CSV text in FILL_COLUMNS order; Decimals stay exact, missing keys are empty."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(FILL_COLUMNS)
    for fill in fills:
        row = _as_mapping(fill)
        writer.writerow([_csv_cell(row.get(col)) for col in FILL_COLUMNS])
    return buf.getvalue()


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
    fills = [_as_mapping(f) for f in (fills or [])]
    candles = list(candles or [])
    equity = list(equity or [])
    settings = dict(settings or {})
    feed = dict(feed or {})

    run_id = report.get("run_id")
    status = _text(report.get("status")) or "unknown"
    title = f"Run {_text(run_id) or _DASH} \u2014 {status}"

    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main class=\"page\">\n",
        _guarded("Header", _header_html, report),
        _guarded("Data source", _banner_html, report),
        _guarded("Key figures", _key_figures_html, report),
        _guarded("Price", _price_section_html, candles, fills),
        _guarded("Equity", _equity_section_html, equity, report),
        _guarded("Fills", _fills_section_html, fills),
    ]
    if segments:
        parts.append(_guarded("Segments", _segments_section_html, list(segments)))
    parts.append("<div class=\"grid2\">\n")
    parts.append(_guarded("Settings", _kv_section_html, "Settings", settings, None, "No settings recorded."))
    parts.append(
        _guarded("Feed health", _kv_section_html, "Feed health", feed, 3, "No feed figures recorded.")
    )
    parts.append("</div>\n")
    parts.append(_guarded("Events", _events_section_html, list(events or [])))
    parts.append(
        _guarded("Report fields", _kv_section_html, "All report fields", report, None, "Empty report.")
    )
    parts.append(
        "<footer>Generated from final_report.json, fills.csv and the run's recorded market data. "
        "All times UTC.</footer>\n</main>\n</body>\n</html>\n"
    )
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# Disk
# --------------------------------------------------------------------------------------------


def _mirror_to_latest(runs_dir: Path, run_dir: Path) -> None:
    """Replace runs_dir/latest with a copy of run_dir, staged in a temp folder and renamed."""
    latest = runs_dir / LATEST_DIR_NAME
    for stale in runs_dir.glob(f".{LATEST_DIR_NAME}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{LATEST_DIR_NAME}-", dir=runs_dir))
    try:
        os.chmod(staging, 0o755)
        shutil.copytree(run_dir, staging, dirs_exist_ok=True)
        if latest.is_symlink() or latest.is_file():
            latest.unlink()
        elif latest.exists():
            shutil.rmtree(latest)
        os.rename(staging, latest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _report_json(report: dict) -> str:
    """Serialize the report: NaN/inf become null, Decimals and other objects become strings."""
    try:
        return json.dumps(_json_safe(report), indent=2, default=str, allow_nan=False) + "\n"
    except (TypeError, ValueError, RecursionError) as exc:
        # A report that cannot be serialized must still leave a readable file behind.
        log.warning("report_json_fallback", extra={"error": str(exc)})
        flat = {str(k): _json_scalar_or_str(v) for k, v in report.items()}
        flat["report_serialization_error"] = str(exc)
        return json.dumps(flat, indent=2, default=str, allow_nan=False) + "\n"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, Mapping):
        return {_json_key(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in value]
    return value


def _json_key(key: Any) -> Any:
    if key is None or isinstance(key, (str, int, bool)):
        return key
    if isinstance(key, float) and math.isfinite(key):
        return key
    return str(key)


def _json_scalar_or_str(value: Any) -> Any:
    value = _json_safe(value) if isinstance(value, (float, Decimal)) else value
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _minimal_summary_html(report: Mapping, exc: BaseException) -> str:
    run_id = _e(_text(report.get("run_id")) or _DASH)
    status = _e(_text(report.get("status")) or "unknown")
    error = _e(f"{type(exc).__name__}: {exc}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>Run {run_id} \u2014 summary unavailable</title>\n"
        "<style>body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
        "margin:2rem;color:#1f2937}pre{background:#fef2f2;border:1px solid #fecaca;"
        "padding:1rem;border-radius:6px;white-space:pre-wrap}</style>\n</head>\n<body>\n"
        f"<h1>Run {run_id}</h1>\n<p>Status: <strong>{status}</strong></p>\n"
        "<p>The summary page could not be rendered (summary rendering error):</p>\n"
        f"<pre class=\"render-error\">{error}</pre>\n"
        f"<p>{FINAL_REPORT_NAME} and {FILLS_CSV_NAME} in this folder hold the run's results.</p>\n"
        "</body>\n</html>\n"
    )


# --------------------------------------------------------------------------------------------
# Value conversion and formatting
# --------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    return str(value)


def _as_mapping(item: Any) -> Mapping:
    if isinstance(item, Mapping):
        return item
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    if hasattr(item, "__dict__"):
        return vars(item)
    return {}


def _to_decimal(value: Any) -> Decimal | None:
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


def _to_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _to_int(value: Any) -> int | None:
    """A whole, non-negative count, or None."""
    f = _to_float(value)
    return int(f) if f is not None and f >= 0 and f == int(f) else None


def _ts_to_ms(value: Any) -> int | None:
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
        number = _to_float(s)
        if number is None:
            try:
                return _ts_to_ms(datetime.fromisoformat(s.replace("Z", "+00:00")))
            except ValueError:
                return None
        value = number
    number = _to_float(value)
    if number is None:
        return None
    # Values this small are epoch seconds (epoch ms passed 1e11 in 1973).
    return int(number * 1000) if abs(number) < 1e11 else int(number)


def _fmt_utc(value: Any, fmt: str = _UTC_FORMAT) -> str:
    ms = _ts_to_ms(value)
    if ms is None:
        return _text(value) or _DASH
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime(fmt)
    except (OverflowError, OSError, ValueError):
        return _text(value)


def _fmt_fixed(value: Any, places: int, *, sign: bool = False, sep: bool = True) -> str:
    d = _to_decimal(value)
    if d is None:
        return _text(value) if isinstance(value, str) and value.strip() else _DASH
    spec = f"{'+' if sign else ''}{',' if sep else ''}.{places}f"
    out = format(d, spec)
    if re.fullmatch(r"[-+]?[0.,]*", out):
        # Zero after rounding: no sign, no "-0.00".
        out = format(Decimal(0), spec.lstrip("+"))
    return out


def _fmt_price(value: Any) -> str:
    return _fmt_fixed(value, 1)


def _fmt_money(value: Any, *, sign: bool = False) -> str:
    return _fmt_fixed(value, 2, sign=sign)


def _fmt_bps(value: Any, *, sign: bool = False) -> str:
    return _fmt_fixed(value, 2, sign=sign)


def _fmt_qty(value: Any) -> str:
    out = _fmt_fixed(value, 4)
    if re.fullmatch(r"-?[\d,]+\.\d{3}0", out):
        out = out[:-1]
    return out


def _fmt_int(value: Any) -> str:
    f = _to_float(value)
    if f is None:
        return _text(value) or _DASH
    return f"{round(f):,}"


def _fmt_pct(value: Any, *, sign: bool = False) -> str:
    out = _fmt_fixed(value, 2, sign=sign)
    return out if out == _DASH or _to_decimal(value) is None else out + "%"


def _fmt_rate(value: Any) -> str:
    """A win rate given either as a fraction (0..1) or as a percent."""
    f = _to_float(value)
    if f is None:
        return _text(value) or _DASH
    return f"{f * 100 if abs(f) <= 1 else f:.1f}%"


def _won_of(report: Mapping) -> tuple[int | None, int | None]:
    """(round trips won, round trips) from a report; won is derived from the rate if absent."""
    trips = _to_int(report.get("round_trips"))
    won = _to_int(report.get("round_trips_won"))
    rate = _to_float(report.get("win_rate"))
    if won is None and trips is not None and rate is not None:
        won = int(round(rate * trips))
    return won, trips


def _win_rate_note(report: Mapping) -> str:
    """What the win rate counts: round trips whose PnL after fees was above zero."""
    won, trips = _won_of(report)
    if trips is None:
        return "after fees"
    if won is None:
        return f"of {trips:,} round trips, after fees"
    return f"{won:,} of {trips:,} won after fees"


def _fmt_duration(seconds: Any) -> str:
    s = _to_float(seconds)
    if s is None:
        return _text(seconds) or _DASH
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


def _fmt_value(value: Any, float_places: int | None = None) -> str:
    """Plain text for a generic table cell (settings, feed figures, report fields)."""
    if value is None:
        return _DASH
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return _text(value)
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
            text = json.dumps(_json_safe(value), default=str, separators=(", ", ": "))
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
        return text if len(text) <= 1000 else text[:1000] + "\u2026"
    return str(value)


def _sign_class(value: Any) -> str:
    f = _to_float(value)
    if f is None or f == 0:
        return ""
    return "pos" if f > 0 else "neg"


def _side(value: Any) -> str:
    s = _text(value).upper()
    if "BUY" in s or s in ("B", "LONG"):
        return "BUY"
    if "SELL" in s or s in ("S", "SHORT"):
        return "SELL"
    return s


# --------------------------------------------------------------------------------------------
# Page sections
# --------------------------------------------------------------------------------------------


def _guarded(name: str, build: Callable[..., str], *args: Any) -> str:
    """Build one section; a section that fails is replaced by a note, the rest of the page stays."""
    try:
        return build(*args)
    except Exception as exc:
        log.exception("report_section_failed", extra={"section": name})
        return (
            f"<section class=\"card\"><h2>{_e(name)}</h2>"
            f"<p class=\"empty\">This section could not be rendered: {_e(type(exc).__name__)}: "
            f"{_e(exc)}</p></section>\n"
        )


def _header_html(report: Mapping) -> str:
    status = _text(report.get("status")).strip().lower()
    badge_class = {"success": "ok", "error": "bad"}.get(status, "neutral")
    badge_text = status.upper() if status else "UNKNOWN"
    symbol = _text(report.get("symbol")) or "BTCUSDT"
    facts = [
        ("Run", _text(report.get("run_id")) or _DASH),
        ("Source", _text(report.get("source")) or _DASH),
        ("Started", _fmt_utc(report.get("started")) if report.get("started") is not None else _DASH),
        ("Ended", _fmt_utc(report.get("ended")) if report.get("ended") is not None else _DASH),
    ]
    if report.get("stopped_reason") not in (None, ""):
        facts.append(("Stopped", _text(report.get("stopped_reason"))))
    facts_html = "".join(
        f"<span class=\"fact\"><span class=\"k\">{_e(k)}</span> <span class=\"v\">{_e(v)}</span></span>"
        for k, v in facts
    )
    exit_code = report.get("exit_code")
    exit_html = (
        f"<div class=\"exit\">exit code {_e(_text(exit_code))}</div>" if exit_code is not None else ""
    )
    error = report.get("error")
    error_html = ""
    if error not in (None, "") or status == "error":
        error_html = (
            "<div class=\"error-box\"><div class=\"error-title\">Error</div>"
            f"<pre class=\"error-text\">{_e(_text(error) or 'No error text recorded.')}</pre></div>"
        )
    return (
        "<header class=\"card head\">"
        "<div class=\"head-row\"><div>"
        f"<div class=\"eyebrow\">Paper trading run \u00b7 perpetual futures</div>"
        f"<h1>{_e(symbol)} run summary</h1>"
        f"<div class=\"facts\">{facts_html}</div></div>"
        f"<div class=\"head-status\"><span class=\"badge {badge_class}\">{_e(badge_text)}</span>{exit_html}</div>"
        f"</div>{error_html}</header>\n"
    )


def _banner_html(report: Mapping) -> str:
    source = _text(report.get("source"))
    offline = report.get("offline_fallback") is True or _text(report.get("offline_fallback")).lower() == "true"
    replay = "replay" in source.lower()
    if not (offline or replay):
        return ""
    if offline:
        text = (
            "Offline fallback: the live Bitunix feed was unavailable, so this run used recorded "
            "replay data. Results do not reflect live market conditions."
        )
    else:
        text = "Replay run: prices come from recorded market data, not the live Bitunix feed."
    if source:
        text += f" Source: {source}."
    return f"<div class=\"banner\" role=\"note\"><strong>Offline data</strong> {_e(text)}</div>\n"


def _key_figures_html(report: Mapping) -> str:
    unit = "USDT" if _text(report.get("symbol") or "BTCUSDT").upper().endswith("USDT") else ""
    pnl = report.get("pnl_absolute")
    start_eq = report.get("starting_equity")
    pnl_pct: Any = None
    pnl_d, start_d = _to_decimal(pnl), _to_decimal(start_eq)
    if pnl_d is not None and start_d:
        pnl_pct = pnl_d / start_d * 100
    elif report.get("pnl_pct") is not None:
        pnl_pct = report.get("pnl_pct")
    dd_pct = report.get("max_drawdown_pct")
    round_trips = report.get("round_trips")

    cards = [
        ("PnL", _fmt_money(pnl, sign=True), unit, _fmt_pct(pnl_pct, sign=True), _sign_class(pnl)),
        ("Final equity", _fmt_money(report.get("final_equity")), unit, f"start {_fmt_money(start_eq)}", ""),
        ("Realized PnL", _fmt_money(report.get("realized_pnl"), sign=True), unit, "closed trades, before fees",
         _sign_class(report.get("realized_pnl"))),
        ("Fills", _fmt_int(report.get("fills")), "", "orders filled", ""),
        ("Round trips", _fmt_int(round_trips), "", "entry + exit", ""),
        ("Win rate", _fmt_rate(report.get("win_rate")), "", _win_rate_note(report), ""),
        ("Max drawdown", _fmt_money(report.get("max_drawdown")), unit,
         f"{_fmt_pct(dd_pct)} of peak" if dd_pct is not None else "", "neg" if _to_float(report.get("max_drawdown")) else ""),
        ("Fees", _fmt_money(report.get("fees")), unit, "all fills", ""),
        ("Funding", _fmt_money(report.get("funding"), sign=True), unit, "paid (\u2212) / received (+)",
         _sign_class(report.get("funding"))),
        ("Spread cost", _fmt_bps(report.get("mean_spread_cost_bps")), "bps", "mean per fill vs mid", ""),
        ("Latency drift", _fmt_bps(report.get("mean_latency_drift_bps"), sign=True), "bps",
         "mean, signal \u2192 fill", ""),
        ("Duration", _fmt_duration(report.get("duration_seconds")), "", "market-data time", ""),
    ]
    stats = "".join(
        f"<div class=\"stat\"><div class=\"label\">{_e(label)}</div>"
        f"<div class=\"value {cls}\">{_e(value)}"
        f"{f' <span class=unit>{_e(u)}</span>' if u and value != _DASH else ''}</div>"
        f"<div class=\"sub\">{_e(sub)}</div></div>"
        for label, value, u, sub, cls in cards
    )

    ops = [
        ("Reconnects", _fmt_int(report.get("reconnects"))),
        ("Dropped messages", _fmt_int(report.get("dropped_messages"))),
        ("Errors", _fmt_int(report.get("error_count"))),
        ("Blocked signals", _fmt_int(report.get("blocked_signals"))),
        ("Restarts", _fmt_int(report.get("restarts"))),
    ]
    ops_html = "".join(
        f"<div class=\"op\"><span class=\"k\">{_e(k)}</span><span class=\"v\">{_e(v)}</span></div>"
        for k, v in ops
    )
    return (
        "<section class=\"card\"><h2>Key figures</h2>"
        f"<div class=\"stats\">{stats}</div><div class=\"ops\">{ops_html}</div></section>\n"
    )


# --------------------------------------------------------------------------------------------
# Charts (inline SVG)
# --------------------------------------------------------------------------------------------

_SVG_W = 1200
_PRICE_H = 440
_EQUITY_H = 280
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 14, 86, 14, 34


def _nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    if not hi > lo:
        hi = lo + 1.0
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = mag * 10
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            step = m * mag
            break
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(k * step)
        k += 1
    return ticks


def _tick_places(ticks: Sequence[float], minimum: int) -> int:
    if len(ticks) < 2:
        return minimum
    step = abs(ticks[1] - ticks[0])
    places = max(0, -math.floor(math.log10(step))) if step > 0 else minimum
    return max(minimum, min(places, 8))


_TIME_STEPS_MIN = (1, 2, 5, 10, 15, 30, 60, 120, 180, 240, 360, 720, 1440, 2880, 10080)


def _time_ticks(t0: int, t1: int, target: int = 8) -> list[int]:
    span_min = max((t1 - t0) / CANDLE_MS, 1)
    step_min = next((s for s in _TIME_STEPS_MIN if span_min / s <= target), _TIME_STEPS_MIN[-1])
    step = step_min * CANDLE_MS
    first = -(-t0 // step) * step
    return list(range(first, t1 + 1, step))


def _time_axis_svg(t0: int, t1: int, x_of: Callable[[float], float], y_axis: float) -> str:
    out = []
    last_day = None
    for t in _time_ticks(t0, t1):
        x = x_of(t)
        day = _fmt_utc(t, "%Y-%m-%d")
        label = _fmt_utc(t, "%H:%M") if day == last_day else _fmt_utc(t, "%m-%d %H:%M")
        last_day = day
        # Labels near the plot edges are anchored inwards so they are never clipped.
        anchor = "start" if x < _PAD_L + 40 else "end" if x > _SVG_W - _PAD_R - 40 else "middle"
        out.append(f"<line class=\"grid\" x1=\"{x:.1f}\" y1=\"{_PAD_T}\" x2=\"{x:.1f}\" y2=\"{y_axis:.1f}\"/>")
        out.append(f"<text class=\"axis\" x=\"{x:.1f}\" y=\"{y_axis + 18:.1f}\" text-anchor=\"{anchor}\">{_e(label)}</text>")
    out.append(
        f"<text class=\"axis unit\" x=\"{_SVG_W - 6}\" y=\"{y_axis + 18:.1f}\" text-anchor=\"end\">UTC</text>"
    )
    return "".join(out)


def _value_axis_svg(
    ticks: Sequence[float],
    y_of: Callable[[float], float],
    places: int,
    x_plot_end: float,
    avoid_y: float | None = None,
) -> str:
    out = []
    for v in ticks:
        y = y_of(v)
        out.append(f"<line class=\"grid\" x1=\"{_PAD_L}\" y1=\"{y:.1f}\" x2=\"{x_plot_end:.1f}\" y2=\"{y:.1f}\"/>")
        if avoid_y is not None and abs(y - avoid_y) < 16:
            continue  # the last-price tag sits here
        out.append(
            f"<text class=\"axis\" x=\"{x_plot_end + 8:.1f}\" y=\"{y + 4:.1f}\">{_e(f'{v:,.{places}f}')}</text>"
        )
    return "".join(out)


def _clean_candles(candles: Sequence[Any]) -> list[tuple[int, float, float, float, float]]:
    out = []
    for raw in candles:
        c = _as_mapping(raw)
        ts = _ts_to_ms(c.get("ts"))
        o, h, l, cl = (_to_float(c.get(k)) for k in ("open", "high", "low", "close"))
        if ts is None or o is None or cl is None:
            continue
        h = max(x for x in (h, o, cl) if x is not None)
        l = min(x for x in (l, o, cl) if x is not None)
        out.append((ts, o, h, l, cl))
    out.sort(key=lambda r: r[0])
    return out


def _price_section_html(candles: Sequence[Any], fills: Sequence[Mapping]) -> str:
    all_candles = _clean_candles(candles)
    shown = all_candles[-MAX_CHART_CANDLES:]
    fill_points = []
    for f in fills:
        ts, px = _ts_to_ms(f.get("fill_ts")), _to_float(f.get("fill_px"))
        if ts is not None and px is not None:
            fill_points.append((ts, px, f))

    notes = []
    if len(all_candles) > len(shown):
        notes.append(
            f"Showing the last {len(shown):,} of {len(all_candles):,} one-minute candles."
        )
    if shown:
        t0 = shown[0][0]
        # fills after the last closed candle (the end-of-session flatten, a stop in the last
        # minute) widen the chart to the right instead of falling off it
        in_window = [p for p in fill_points if t0 <= p[0]]
        t1 = max([shown[-1][0] + CANDLE_MS] + [p[0] for p in in_window])
    elif fill_points:
        t0 = min(p[0] for p in fill_points)
        t1 = max(p[0] for p in fill_points)
        in_window = fill_points
        notes.append("No candle data was recorded; fills are plotted on their own.")
    else:
        return (
            "<section class=\"card\"><h2>Price</h2>"
            "<p class=\"empty\">No data: no candles or fills were recorded for this run.</p></section>\n"
        )
    skipped = len(fill_points) - len(in_window)
    if skipped:
        notes.append(f"{skipped:,} fills fall outside the chart window and are not marked.")
    if len(fill_points) < len(fills):
        notes.append(f"{len(fills) - len(fill_points):,} fills lack a fill time or price.")

    if t1 <= t0:
        t0, t1 = t0 - CANDLE_MS, t1 + CANDLE_MS
    lows = [c[3] for c in shown] + [p[1] for p in in_window]
    highs = [c[2] for c in shown] + [p[1] for p in in_window]
    lo, hi = min(lows), max(highs)
    pad = (hi - lo) * 0.06 if hi > lo else max(abs(hi) * 0.001, 1.0)
    lo, hi = lo - pad, hi + pad

    plot_x1 = _SVG_W - _PAD_R
    plot_y1 = _PRICE_H - _PAD_B
    sx = (plot_x1 - _PAD_L) / (t1 - t0)
    sy = (plot_y1 - _PAD_T) / (hi - lo)

    def x_of(t: float) -> float:
        return _PAD_L + (t - t0) * sx

    def y_of(v: float) -> float:
        return plot_y1 - (v - lo) * sy

    ticks = [v for v in _nice_ticks(lo, hi) if lo <= v <= hi]
    places = _tick_places(ticks, 1)
    svg = [
        f"<svg class=\"chart price-chart\" viewBox=\"0 0 {_SVG_W} {_PRICE_H}\" role=\"img\" "
        f"aria-label=\"Price chart, one-minute candles with fills\">",
        f"<rect class=\"plot-bg\" x=\"{_PAD_L}\" y=\"{_PAD_T}\" width=\"{plot_x1 - _PAD_L}\" height=\"{plot_y1 - _PAD_T}\"/>",
        _value_axis_svg(ticks, y_of, places, plot_x1, y_of(shown[-1][4]) if shown else None),
        _time_axis_svg(t0, t1, x_of, plot_y1),
    ]

    body_w = max(1.0, CANDLE_MS * sx * 0.7)
    wicks = {"up": [], "down": []}
    bodies = []
    for ts, o, h, l, c in shown:
        cx = x_of(ts + CANDLE_MS / 2)
        kind = "up" if c >= o else "down"
        wicks[kind].append(f"M{cx:.1f} {y_of(h):.1f}V{y_of(l):.1f}")
        top = y_of(max(o, c))
        height = max(1.0, y_of(min(o, c)) - top)
        bodies.append(
            f"<rect class=\"candle-{kind}\" x=\"{cx - body_w / 2:.1f}\" y=\"{top:.1f}\" "
            f"width=\"{body_w:.1f}\" height=\"{height:.1f}\"/>"
        )
    for kind, segs in wicks.items():
        if segs:
            svg.append(f"<path class=\"wick-{kind}\" d=\"{''.join(segs)}\"/>")
    svg.extend(bodies)

    if shown:
        last = shown[-1][4]
        y = y_of(last)
        svg.append(f"<line class=\"last-line\" x1=\"{_PAD_L}\" y1=\"{y:.1f}\" x2=\"{plot_x1}\" y2=\"{y:.1f}\"/>")
        svg.append(
            f"<rect class=\"last-tag\" x=\"{plot_x1 + 2}\" y=\"{y - 10:.1f}\" width=\"{_PAD_R - 4}\" height=\"20\" rx=\"3\"/>"
            f"<text class=\"last-text\" x=\"{plot_x1 + 8}\" y=\"{y + 4:.1f}\">{_e(_fmt_price(last))}</text>"
        )

    size, height = 7.0, 11.0
    for ts, px, f in in_window:
        x, y = x_of(ts), y_of(px)
        side = _side(f.get("side"))
        tip = (
            f"{side or '?'} {_fmt_qty(f.get('qty'))} @ {_fmt_price(px)} \u00b7 {_fmt_utc(ts)} UTC"
            f" \u00b7 {_text(f.get('reason')) or _DASH}"
        )
        if side == "SELL":
            d = f"M{x:.1f} {y:.1f}L{x - size:.1f} {y - height:.1f}H{x + size:.1f}Z"
            cls = "fill-sell"
        else:
            d = f"M{x:.1f} {y:.1f}L{x - size:.1f} {y + height:.1f}H{x + size:.1f}Z"
            cls = "fill-buy" if side == "BUY" else "fill-other"
        svg.append(f"<path class=\"{cls}\" d=\"{d}\"><title>{_e(tip)}</title></path>")
    svg.append("</svg>")

    n_buy = sum(1 for p in in_window if _side(p[2].get("side")) == "BUY")
    n_sell = sum(1 for p in in_window if _side(p[2].get("side")) == "SELL")
    legend = (
        "<div class=\"legend\">"
        "<span><i class=\"sw sw-up\"></i>up candle</span>"
        "<span><i class=\"sw sw-down\"></i>down candle</span>"
        f"<span><b class=\"mk-buy\">\u25b2</b>buy fill ({n_buy:,})</span>"
        f"<span><b class=\"mk-sell\">\u25bc</b>sell fill ({n_sell:,})</span>"
        f"<span class=\"muted\">{_e(_fmt_utc(t0, '%Y-%m-%d %H:%M'))} \u2192 {_e(_fmt_utc(t1, '%Y-%m-%d %H:%M'))} UTC</span>"
        "</div>"
    )
    notes_html = "".join(f"<p class=\"note\">{_e(n)}</p>" for n in notes)
    return (
        "<section class=\"card\"><h2>Price <span class=\"h-sub\">1m candles \u00b7 fills at fill price</span></h2>"
        f"{legend}{''.join(svg)}{notes_html}</section>\n"
    )


def _equity_section_html(equity: Sequence[Any], report: Mapping) -> str:
    points = []
    for raw in equity:
        p = _as_mapping(raw)
        ts, v = _ts_to_ms(p.get("ts")), _to_float(p.get("equity"))
        if ts is not None and v is not None:
            points.append((ts, v))
    if not points:
        return (
            "<section class=\"card\"><h2>Equity</h2>"
            "<p class=\"empty\">No data: no equity samples were recorded for this run.</p></section>\n"
        )
    points.sort(key=lambda p: p[0])
    thin = downsample_min_max(points, MAX_EQUITY_POINTS)
    start = _to_float(report.get("starting_equity"))
    if start is None:
        start = points[0][1]

    t0, t1 = points[0][0], points[-1][0]
    single = t1 <= t0
    if single:
        t0, t1 = t0 - CANDLE_MS, t1 + CANDLE_MS
    values = [v for _, v in thin] + [start]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 if hi > lo else max(abs(hi) * 0.001, 1.0)
    lo, hi = lo - pad, hi + pad

    plot_x1 = _SVG_W - _PAD_R
    plot_y1 = _EQUITY_H - _PAD_B
    sx = (plot_x1 - _PAD_L) / (t1 - t0)
    sy = (plot_y1 - _PAD_T) / (hi - lo)

    def x_of(t: float) -> float:
        return _PAD_L + (t - t0) * sx

    def y_of(v: float) -> float:
        return plot_y1 - (v - lo) * sy

    ticks = [v for v in _nice_ticks(lo, hi, 5) if lo <= v <= hi]
    coords = [f"{x_of(t):.1f} {y_of(v):.1f}" for t, v in thin]
    line = "M" + "L".join(coords)
    final = points[-1][1]
    trend = "up" if final >= start else "down"
    area = f"{line}L{x_of(thin[-1][0]):.1f} {plot_y1}L{x_of(thin[0][0]):.1f} {plot_y1}Z"
    y_base = y_of(start)
    lx, ly = x_of(thin[-1][0]), y_of(final)
    svg = [
        f"<svg class=\"chart equity-chart\" viewBox=\"0 0 {_SVG_W} {_EQUITY_H}\" role=\"img\" aria-label=\"Equity curve\">",
        f"<rect class=\"plot-bg\" x=\"{_PAD_L}\" y=\"{_PAD_T}\" width=\"{plot_x1 - _PAD_L}\" height=\"{plot_y1 - _PAD_T}\"/>",
        _value_axis_svg(ticks, y_of, _tick_places(ticks, 2), plot_x1),
        _time_axis_svg(t0, t1, x_of, plot_y1),
        f"<path class=\"equity-area {trend}\" d=\"{area}\"/>" if len(thin) > 1 else "",
        f"<line class=\"baseline\" x1=\"{_PAD_L}\" y1=\"{y_base:.1f}\" x2=\"{plot_x1}\" y2=\"{y_base:.1f}\"/>",
        f"<text class=\"base-text\" x=\"{_PAD_L + 6}\" y=\"{y_base - 6:.1f}\">{_e('start ' + _fmt_money(start))}</text>",
        f"<path class=\"equity-line {trend}\" d=\"{line}\"/>",
        f"<circle class=\"equity-end {trend}\" cx=\"{lx:.1f}\" cy=\"{ly:.1f}\" r=\"3.5\"/>",
        "</svg>",
    ]
    note = ""
    if len(thin) < len(points):
        note = (
            f"<p class=\"note\">{_e(f'{len(points):,} samples drawn as {len(thin):,} points (min and max kept per bucket).')}</p>"
        )
    elif single:
        note = "<p class=\"note\">Only one equity sample was recorded.</p>"
    change = final - start
    legend = (
        "<div class=\"legend\">"
        f"<span>start <b>{_e(_fmt_money(start))}</b></span>"
        f"<span>final <b>{_e(_fmt_money(final))}</b></span>"
        f"<span>change <b class=\"{'pos' if change > 0 else 'neg' if change < 0 else ''}\">{_e(_fmt_money(change, sign=True))}</b></span>"
        f"<span>low <b>{_e(_fmt_money(min(v for _, v in points)))}</b></span>"
        f"<span>high <b>{_e(_fmt_money(max(v for _, v in points)))}</b></span>"
        "</div>"
    )
    return (
        "<section class=\"card\"><h2>Equity <span class=\"h-sub\">mark-to-market, dashed line = starting equity</span></h2>"
        f"{legend}{''.join(svg)}{note}</section>\n"
    )


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

_FILL_TABLE = (
    # header, key, formatter, numeric
    ("Time (UTC)", "fill_ts", _fmt_utc, False),
    ("Side", "side", _side, False),
    ("Reason", "reason", _text, False),
    ("Qty", "qty", _fmt_qty, True),
    ("Signal px", "signal_px", _fmt_price, True),
    ("Fill px", "fill_px", _fmt_price, True),
    ("Bid", "bid", _fmt_price, True),
    ("Ask", "ask", _fmt_price, True),
    ("Latency ms", "latency_ms", _fmt_int, True),
    ("Drift bps", "latency_drift_bps", lambda v: _fmt_bps(v, sign=True), True),
    ("Spread bps", "spread_cost_bps", _fmt_bps, True),
    ("Fee", "fee", lambda v: _fmt_fixed(v, 4), True),
    # 4 places: a lot (0.001) times a tick (0.1) is 0.0001, so the rows add up to the total shown
    ("Realized PnL", "realized_pnl", lambda v: _fmt_fixed(v, 4, sign=True), True),
)


def _fills_section_html(fills: Sequence[Mapping]) -> str:
    if not fills:
        return (
            "<section class=\"card\"><h2>Fills</h2>"
            "<p class=\"empty\">No data: the run made no fills.</p></section>\n"
        )
    shown = fills[-MAX_FILL_ROWS:]
    head = "".join(
        f"<th class=\"{'num' if num else ''}\">{_e(h)}</th>" for h, _, _, num in _FILL_TABLE
    )
    rows = []
    for f in shown:
        cells = []
        for _, key, fmt, num in _FILL_TABLE:
            raw = f.get(key)
            text = fmt(raw) if raw is not None else _DASH
            text = text or _DASH
            cls = "num" if num else ""
            if key == "side":
                cls = {"BUY": "side-buy", "SELL": "side-sell"}.get(text, "")
            elif key in ("realized_pnl", "latency_drift_bps"):
                cls = f"num {_sign_class(raw)}".strip()
            cells.append(f"<td class=\"{cls}\">{_e(text)}</td>" if cls else f"<td>{_e(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")

    fee_total = sum((d for d in (_to_decimal(f.get("fee")) for f in fills) if d is not None), Decimal(0))
    pnl_total = sum(
        (d for d in (_to_decimal(f.get("realized_pnl")) for f in fills) if d is not None), Decimal(0)
    )
    spreads = [x for x in (_to_float(f.get("spread_cost_bps")) for f in fills) if x is not None]
    drifts = [x for x in (_to_float(f.get("latency_drift_bps")) for f in fills) if x is not None]
    mean_spread = _fmt_bps(sum(spreads) / len(spreads)) if spreads else _DASH
    mean_drift = _fmt_bps(sum(drifts) / len(drifts), sign=True) if drifts else _DASH
    label = f"All {len(fills):,} fills: totals and means"
    foot = (
        f"<tr><td colspan=\"9\">{_e(label)}</td><td class=\"num\">{_e(mean_drift)}</td>"
        f"<td class=\"num\">{_e(mean_spread)}</td><td class=\"num\">{_e(_fmt_fixed(fee_total, 4))}</td>"
        f"<td class=\"num {_sign_class(pnl_total)}\">{_e(_fmt_fixed(pnl_total, 4, sign=True))}</td></tr>"
    )
    note = ""
    if len(shown) < len(fills):
        note = f"<p class=\"note\">{_e(f'Showing the last {len(shown):,} of {len(fills):,} fills; fills.csv has them all.')}</p>"
    return (
        "<section class=\"card\"><h2>Fills <span class=\"h-sub\">cost attribution: drift = signal \u2192 fill move, "
        "spread = fill vs mid</span></h2>"
        f"<div class=\"table-wrap\"><table class=\"fills\"><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody><tfoot>{foot}</tfoot></table></div>{note}</section>\n"
    )


def _rows_table(rows: Sequence[Any], columns: Sequence[tuple[str, str, Callable[[Any], str], bool]]) -> str:
    """Render dict rows with the given columns first and any other keys appended as text columns."""
    maps = [_as_mapping(r) for r in rows]
    known = {key for _, key, _, _ in columns}
    extra: list[str] = []
    for m in maps:
        for k in m:
            if k not in known and k not in extra and len(extra) < 12:
                extra.append(k)
    cols = list(columns) + [(str(k), k, _fmt_value, False) for k in extra]
    head = "".join(f"<th class=\"{'num' if num else ''}\">{_e(h)}</th>" for h, _, _, num in cols)
    body = []
    for m in maps:
        cells = []
        for _, key, fmt, num in cols:
            raw = m.get(key)
            text = (fmt(raw) if raw is not None else _DASH) or _DASH
            cells.append(f"<td class=\"num\">{_e(text)}</td>" if num else f"<td>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<div class=\"table-wrap\"><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _segments_section_html(segments: Sequence[Any]) -> str:
    columns = (
        ("Segment", "segment", _fmt_value, True),
        ("Started (UTC)", "started", _fmt_utc, False),
        ("Ended (UTC)", "ended", _fmt_utc, False),
        ("Duration", "duration_seconds", _fmt_duration, True),
        ("Exit reason", "exit_reason", _fmt_value, False),
    )
    return (
        "<section class=\"card\"><h2>Segments <span class=\"h-sub\">feed sessions within the run</span></h2>"
        f"{_rows_table(segments, columns)}</section>\n"
    )


def _events_section_html(events: Sequence[Any]) -> str:
    if not events:
        return (
            "<section class=\"card\"><h2>Events</h2>"
            "<p class=\"empty\">No data: no events were recorded.</p></section>\n"
        )
    shown = events[-MAX_EVENT_ROWS:]
    columns = (
        ("Time (UTC)", "ts", _fmt_utc, False),
        ("Kind", "kind", _fmt_value, False),
        ("Detail", "detail", _fmt_value, False),
    )
    note = ""
    if len(shown) < len(events):
        note = f"<p class=\"note\">{_e(f'Showing the last {len(shown):,} of {len(events):,} events.')}</p>"
    return (
        f"<section class=\"card\"><h2>Events <span class=\"h-sub\">{_e(f'last {len(shown):,}')}</span></h2>"
        f"{_rows_table(shown, columns)}{note}</section>\n"
    )


def _kv_section_html(
    title: str, data: Mapping, float_places: int | None, empty_text: str
) -> str:
    if not data:
        return f"<section class=\"card\"><h2>{_e(title)}</h2><p class=\"empty\">{_e(empty_text)}</p></section>\n"
    rows = []
    for k, v in data.items():
        text = _fmt_value(v, float_places)
        num = isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)
        cls = " class=\"num\"" if num else ""
        rows.append(f"<tr><th scope=\"row\">{_e(_text(k))}</th><td{cls}>{_e(text)}</td></tr>")
    return (
        f"<section class=\"card\"><h2>{_e(title)}</h2>"
        f"<div class=\"table-wrap\"><table class=\"kv\"><tbody>{''.join(rows)}</tbody></table></div></section>\n"
    )


_CSS = """
:root{--bg:#f3f4f6;--card:#fff;--ink:#111827;--muted:#6b7280;--line:#e5e7eb;--zebra:#f9fafb;
--up:#16a34a;--down:#dc2626;--cup:#26a69a;--cdown:#ef5350;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.page{max-width:1240px;margin:0 auto;padding:20px 20px 32px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px;
margin:0 0 16px;box-shadow:0 1px 2px rgba(16,24,40,.04)}
h1{font-size:22px;margin:2px 0 8px;letter-spacing:-.01em}
h2{font-size:15px;margin:0 0 12px;font-weight:650}
.h-sub{font-weight:400;color:var(--muted);font-size:12.5px;margin-left:6px}
.eyebrow{font-size:11.5px;text-transform:uppercase;letter-spacing:.08em;color:var(--muted)}
.head-row{display:flex;justify-content:space-between;align-items:flex-start;gap:16px}
.facts{display:flex;flex-wrap:wrap;gap:6px 18px;font-size:13px}
.fact .k{color:var(--muted)}
.fact .v{font-variant-numeric:tabular-nums;word-break:break-all}
.head-status{text-align:right;white-space:nowrap}
.badge{display:inline-block;padding:5px 12px;border-radius:999px;font-weight:700;font-size:12.5px;
letter-spacing:.06em}
.badge.ok{background:#dcfce7;color:#166534;border:1px solid #86efac}
.badge.bad{background:#fee2e2;color:#991b1b;border:1px solid #fca5a5}
.badge.neutral{background:#e5e7eb;color:#374151;border:1px solid #d1d5db}
.exit{color:var(--muted);font-size:12px;margin-top:6px}
.error-box{margin-top:14px;border:1px solid #fecaca;background:#fef2f2;border-radius:8px;padding:10px 12px}
.error-title{font-weight:650;color:#991b1b;font-size:12.5px;margin-bottom:4px}
.error-text{margin:0;white-space:pre-wrap;word-break:break-word;font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#7f1d1d}
.banner{background:#fffbeb;border:1px solid #fcd34d;color:#78350f;border-radius:10px;padding:10px 14px;margin:0 0 16px}
.banner strong{margin-right:6px}
.stats{display:grid;grid-template-columns:repeat(6,minmax(0,1fr));gap:10px}
.stat{border:1px solid var(--line);border-radius:8px;padding:10px 12px;background:#fcfcfd}
.stat .label{font-size:11.5px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.stat .value{font-size:19px;font-weight:650;margin-top:2px;font-variant-numeric:tabular-nums;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.stat .unit{font-size:11.5px;font-weight:500;color:var(--muted)}
.stat .sub{font-size:12px;color:var(--muted);font-variant-numeric:tabular-nums;min-height:1em}
.ops{display:flex;flex-wrap:wrap;gap:8px 22px;margin-top:12px;font-size:13px}
.op .k{color:var(--muted);margin-right:6px}
.op .v{font-weight:600;font-variant-numeric:tabular-nums}
.pos{color:var(--up)}
.neg{color:var(--down)}
.legend{display:flex;flex-wrap:wrap;gap:4px 18px;font-size:12.5px;color:#374151;margin:-4px 0 6px}
.legend b{font-weight:650;font-variant-numeric:tabular-nums}
.legend .muted{color:var(--muted);margin-left:auto}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.sw-up{background:var(--cup)}
.sw-down{background:var(--cdown)}
.mk-buy{color:var(--up);margin-right:4px}
.mk-sell{color:var(--down);margin-right:4px}
.note,.empty{color:var(--muted);font-size:12.5px;margin:6px 0 0}
.empty{padding:18px;text-align:center;border:1px dashed var(--line);border-radius:8px;margin:0}
svg.chart{display:block;width:100%;height:auto}
svg .plot-bg{fill:#fcfcfd;stroke:var(--line)}
svg .grid{stroke:#eef0f3;stroke-width:1}
svg .axis{fill:#6b7280;font-size:11.5px;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
svg .axis.unit{font-weight:600}
svg .candle-up{fill:var(--cup)}
svg .candle-down{fill:var(--cdown)}
svg .wick-up{stroke:var(--cup);stroke-width:1;fill:none}
svg .wick-down{stroke:var(--cdown);stroke-width:1;fill:none}
svg .fill-buy{fill:#15803d;stroke:#fff;stroke-width:1.2}
svg .fill-sell{fill:#b91c1c;stroke:#fff;stroke-width:1.2}
svg .fill-other{fill:#6b7280;stroke:#fff;stroke-width:1.2}
svg .last-line{stroke:#64748b;stroke-dasharray:3 3;stroke-width:1}
svg .last-tag{fill:#334155}
svg .last-text{fill:#fff;font-size:11.5px;font-weight:600;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
svg .equity-line{fill:none;stroke-width:1.8;stroke-linejoin:round}
svg .equity-line.up{stroke:var(--up)}
svg .equity-line.down{stroke:var(--down)}
svg .equity-area.up{fill:rgba(22,163,74,.08)}
svg .equity-area.down{fill:rgba(220,38,38,.07)}
svg .equity-end.up{fill:var(--up)}
svg .equity-end.down{fill:var(--down)}
svg .baseline{stroke:#64748b;stroke-dasharray:6 4;stroke-width:1.2}
svg .base-text{fill:#475569;font-size:11.5px;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.table-wrap{overflow-x:auto;border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:12.5px}
table.fills{font-size:12px}
table.fills th,table.fills td{padding:5px 7px}
th,td{padding:6px 10px;text-align:left;border-bottom:1px solid var(--line);white-space:nowrap}
thead th{background:#f3f4f6;font-weight:600;color:#374151;position:sticky;top:0}
tbody tr:nth-child(even){background:var(--zebra)}
tbody tr:last-child td,tbody tr:last-child th{border-bottom:none}
tfoot td{background:#f3f4f6;font-weight:600;border-top:1px solid #d1d5db;border-bottom:none}
.num{text-align:right;font-variant-numeric:tabular-nums}
th.num{text-align:right}
td.side-buy{color:var(--up);font-weight:600}
td.side-sell{color:var(--down);font-weight:600}
table.kv th{width:42%;font-weight:500;color:#374151;white-space:normal;word-break:break-word}
table.kv td{white-space:normal;word-break:break-word}
table.kv td.num{text-align:left}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px;align-items:start;margin-bottom:16px}
.grid2>.card{margin:0}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:8px}
@media (max-width:900px){.stats{grid-template-columns:repeat(2,minmax(0,1fr))}.grid2{grid-template-columns:1fr}}
""".strip()
