"""End-of-run reports: final_report.json, fills.csv, summary.html and compare.html.

A run folder holds the report files (REPORT_FILES: compare.html only for a replay compared
with its original) and may hold others, such as the run's recording; ``runs_dir/latest``
mirrors the newest run's report files only, never the rest.

Every input is redacted here before anything is written. The pages are rendered by
storage/report_pages.py from the Jinja2 templates in resources/templates, autoescape on: every
value taken from the caller is escaped, chart data is embedded as JSON made safe for a <script>
block. Figures are formatted in Python (storage/report_format.py, the templates' filters); the
templates only lay them out. A page needs nothing at view time: its CSS, its script and the
chart library (TradingView Lightweight Charts, from resources/vendor/lightweight-charts) are
inlined, and its Content-Security-Policy forbids every fetch. Without JavaScript the page reads
the same but for the charts, which then say so. A section that fails is logged and left out
with a note; a page that cannot be rendered at all is replaced by a minimal one saying why.
"""

from __future__ import annotations

import csv
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
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from storage.logger import REDACTED, redact, redact_value
from storage.report_format import DASH, as_mapping, as_text, json_safe
from storage.report_pages import (
    CANDLE_MS,
    MAX_CHART_CANDLES,
    MAX_EQUITY_POINTS,
    MAX_EVENT_ROWS,
    MAX_FILL_ROWS,
    downsample_min_max,
    render_compare_html,
    render_summary_html,
)
from storage.state import write_text_atomic

__all__ = [
    "FINAL_REPORT_NAME", "FILLS_CSV_NAME", "SUMMARY_HTML_NAME", "COMPARE_HTML_NAME",
    "LATEST_DIR_NAME", "REPORT_FILES", "FILL_COLUMNS", "MAX_CHART_CANDLES", "MAX_EQUITY_POINTS",
    "MAX_FILL_ROWS", "MAX_EVENT_ROWS", "CANDLE_MS", "write_run_reports", "write_compare_html",
    "render_summary_html", "render_compare_html", "read_report", "run_dir_name",
    "fills_csv_text", "downsample_min_max",
]

log = logging.getLogger(__name__)

FINAL_REPORT_NAME = "final_report.json"
FILLS_CSV_NAME = "fills.csv"
SUMMARY_HTML_NAME = "summary.html"
COMPARE_HTML_NAME = "compare.html"
LATEST_DIR_NAME = "latest"
# The files latest/ mirrors; anything else in a run folder stays there.
REPORT_FILES = (FINAL_REPORT_NAME, FILLS_CSV_NAME, SUMMARY_HTML_NAME, COMPARE_HTML_NAME)

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
    # how the fill was priced (older runs' rows leave them empty: a market order, taker, that
    # filled whole at the best level)
    "order_type",
    "liquidity",
    "order_qty",
    "order_filled",
    "depth_cost_bps",
    "depth_exhausted",
    "price_model",
    "legs",
)

_REDACT_DEPTH = 32  # report values nest a few levels; deeper than this is cut, not written


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
    fills = _redacted_or([], lambda: [_redacted_dict(dict(as_mapping(f))) for f in fills or []])
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


def write_compare_html(run_dir: Path, comparison: dict) -> Path:
    """Write run_dir/compare.html from a comparison of two runs; return the file's path.

    The comparison is redacted first, like the summary's inputs. One that cannot be rendered
    still leaves a minimal page saying why; a disk error writing the page propagates. When
    runs_dir/latest mirrors this run, latest/compare.html is refreshed too (logged on failure).
    """
    run_dir = Path(run_dir)
    comparison = _redacted_comparison(comparison)
    try:
        page = render_compare_html(comparison)
    except Exception as exc:
        log.exception("report_compare_render_failed", extra={"run_dir": run_dir.name})
        page = _minimal_compare_html(comparison, exc)
    path = run_dir / COMPARE_HTML_NAME
    write_text_atomic(path, page)
    try:
        _copy_compare_to_latest(run_dir, page)
    except Exception:
        log.exception("report_latest_compare_failed", extra={"run_dir": run_dir.name})
    return path


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
        row = as_mapping(fill)
        writer.writerow([_legs_cell(row.get(col)) if col == "legs" else _csv_cell(row.get(col))
                         for col in FILL_COLUMNS])
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Disk
# --------------------------------------------------------------------------------------------


def _mirror_to_latest(runs_dir: Path, run_dir: Path) -> None:
    """Replace runs_dir/latest with a copy of run_dir's report files (REPORT_FILES; nothing else
    a run folder holds), staged in a temp folder and renamed."""
    latest = runs_dir / LATEST_DIR_NAME
    for stale in runs_dir.glob(f".{LATEST_DIR_NAME}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{LATEST_DIR_NAME}-", dir=runs_dir))
    try:
        os.chmod(staging, 0o755)
        for name in REPORT_FILES:
            source = run_dir / name
            if source.is_file():
                shutil.copy2(source, staging / name)
        if latest.is_symlink() or latest.is_file():
            latest.unlink()
        elif latest.exists():
            shutil.rmtree(latest)
        os.rename(staging, latest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _copy_compare_to_latest(run_dir: Path, page: str) -> None:
    """Put compare.html into runs_dir/latest too when latest/ mirrors run_dir."""
    latest = run_dir.parent / LATEST_DIR_NAME
    if not latest.is_dir() or latest.resolve() == run_dir.resolve():
        return
    try:
        mirrored = read_report(latest).get("run_id") == read_report(run_dir).get("run_id")
    except (OSError, ValueError):
        return
    if mirrored:
        write_text_atomic(latest / COMPARE_HTML_NAME, page)


def _report_json(report: dict) -> str:
    """Serialize the report: NaN/inf become null, Decimals and other objects become strings."""
    try:
        return json.dumps(json_safe(report), indent=2, default=str, allow_nan=False) + "\n"
    except (TypeError, ValueError, RecursionError) as exc:
        # A report that cannot be serialized must still leave a readable file behind.
        log.warning("report_json_fallback", extra={"error": str(exc)})
        flat = {str(k): _json_scalar_or_str(v) for k, v in report.items()}
        flat["report_serialization_error"] = str(exc)
        return json.dumps(flat, indent=2, default=str, allow_nan=False) + "\n"


def _json_scalar_or_str(value: Any) -> Any:
    value = json_safe(value) if isinstance(value, (float, Decimal)) else value
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


def _legs_cell(value: Any) -> str:
    """The levels a fill took as fills.csv holds them: "87815.0x0.05;87815.5x0.063"."""
    if isinstance(value, (list, tuple)):
        return ";".join(f"{_csv_cell(p)}x{_csv_cell(q)}" for p, q in value)
    return _csv_cell(value)


def _minimal_summary_html(report: Mapping, exc: BaseException) -> str:
    run_id = _e(as_text(report.get("run_id")) or DASH)
    status = _e(as_text(report.get("status")) or "unknown")
    error = _e(f"{type(exc).__name__}: {exc}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>Run {run_id} \u2014 summary unavailable</title>\n"
        f"<style>{_MINIMAL_CSS}</style>\n</head>\n<body>\n"
        f"<h1>Run {run_id}</h1>\n<p>Status: <strong>{status}</strong></p>\n"
        "<p>The summary page could not be rendered (summary rendering error):</p>\n"
        f"<pre class=\"render-error\">{error}</pre>\n"
        f"<p>{FINAL_REPORT_NAME} and {FILLS_CSV_NAME} in this folder hold the run's results.</p>\n"
        "</body>\n</html>\n"
    )


def _minimal_compare_html(comparison: Any, exc: BaseException) -> str:
    c = comparison if isinstance(comparison, Mapping) else {}
    title = _e(as_text(c.get("title")) or "Run comparison")
    error = _e(f"{type(exc).__name__}: {exc}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{title} \u2014 comparison unavailable</title>\n"
        f"<style>{_MINIMAL_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n"
        "<p>The comparison page could not be rendered (comparison rendering error):</p>\n"
        f"<pre class=\"render-error\">{error}</pre>\n"
        f"<p>Each run's folder holds its own {SUMMARY_HTML_NAME}, {FINAL_REPORT_NAME} and "
        f"{FILLS_CSV_NAME}.</p>\n</body>\n</html>\n"
    )


_MINIMAL_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
    "margin:2rem;color:#1f2937}pre{background:#fef2f2;border:1px solid #fecaca;"
    "padding:1rem;border-radius:6px;white-space:pre-wrap}"
)


def _redacted_comparison(comparison: Any) -> dict:
    """The comparison with secrets redacted, like the summary's inputs; its long candle and
    equity lists at the cost of their strings only. A part that cannot be walked is left out
    (logged)."""
    c = dict(as_mapping(comparison))
    candles = c.pop("candles", None) or []
    equity = as_mapping(c.pop("equity", None))
    metrics = c.pop("metrics", None) or []
    changed = c.pop("changed_settings", None) or []
    out = _redacted_or({}, lambda: _redacted_dict(c))
    out["metrics"] = _redacted_or([], lambda: [_redacted_metric(m) for m in metrics])
    out["changed_settings"] = _redacted_or([], lambda: [_redacted_change(s) for s in changed])
    out["candles"] = _redacted_or([], lambda: _redacted_rows(list(candles)))
    out["equity"] = {
        key: _redacted_or([], lambda rows=rows: _redacted_rows(list(rows or [])))
        for key, rows in (("base", equity.get("base")), ("other", equity.get("other")))
    }
    return out


def _redacted_metric(metric: Any) -> dict:
    """A metric row: its "key" names a report field (e.g. "pnl_absolute"), so its text is
    redacted, not blanked as the value of a field called "key" would be."""
    m = dict(as_mapping(metric))
    key = m.pop("key", None)
    out = _redacted_dict(m)
    if key is not None:
        out["key"] = _redacted(as_text(key))
    return out


def _redacted_change(change: Any) -> dict:
    """A changed setting {"name", "base", "other"}: each value is redacted as the value of a
    setting of that name (an "api_key" setting's values are blanked whatever they look like)."""
    s = dict(as_mapping(change))
    name = as_text(s.get("name"))
    out = _redacted_dict({k: v for k, v in s.items() if k not in ("base", "other")})
    for side in ("base", "other"):
        if side in s:
            named = _redacted_dict({name: s[side]})
            out[side] = next(iter(named.values())) if len(named) == 1 else REDACTED
    return out


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
