import csv
import hashlib
import json
import random
import re
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from storage import reports
from storage.reports import (
    FILL_COLUMNS,
    downsample_min_max,
    read_report,
    render_compare_html,
    render_summary_html,
    write_run_reports,
)

T0 = 1_735_736_400_000  # 2025-01-01 13:00:00 UTC
PAYLOAD = "<script>alert(1)</script>"
PAYLOAD_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def make_candle(i, *, open_=94_000.0, close=94_010.0):
    return {
        "ts": T0 + i * 60_000,
        "open": open_,
        "high": max(open_, close) + 5.0,
        "low": min(open_, close) - 5.0,
        "close": close,
        "volume": 1.5,
    }


def make_candles(n, *, start_px=94_000.0):
    out = []
    px = start_px
    for i in range(n):
        close = px + (7.0 if i % 3 else -11.0)
        out.append(make_candle(i, open_=px, close=close))
        px = close
    return out


def make_fill(seq, *, side="BUY", minute=1, fill_px=94_001.5, **extra):
    fill = {
        "order_id": f"o-{seq}",
        "seq": seq,
        "side": side,
        "qty": Decimal("0.010"),
        "reason": "ema_cross",
        "signal_ts": T0 + minute * 60_000,
        "signal_px": 94_000.0,
        "due_ts": T0 + minute * 60_000 + 250,
        "fill_ts": T0 + minute * 60_000 + 312,
        "latency_ms": 312,
        "fill_px": fill_px,
        "bid": fill_px - 0.1,
        "ask": fill_px,
        "mid": fill_px - 0.05,
        "spread_cost_bps": 0.0053,
        "latency_drift_bps": 0.16,
        "fee": Decimal("0.56400900"),
        "fee_bps": 6,
        "realized_pnl": Decimal("0"),
        "trigger": "candle_close",
        "trigger_px": 94_000.0,
        "position_after": Decimal("0.010"),
        "cash_after": Decimal("9999.43599100"),
    }
    fill.update(extra)
    return fill


def make_equity(n, *, start=10_000.0):
    return [
        {"ts": T0 + k * 5_000, "equity": start + k * 0.01, "realized": 0, "unrealized": k * 0.01}
        for k in range(n)
    ]


def make_report(**overrides):
    report = {
        "status": "success",
        "exit_code": 0,
        "run_id": "run-1",
        "source": "bitunix-live",
        "symbol": "BTCUSDT",
        "started": "2025-01-01T13:00:00+00:00",
        "ended": "2025-01-01T13:30:00+00:00",
        "duration_seconds": 1800.0,
        "pnl_absolute": Decimal("12.34"),
        "starting_equity": Decimal("10000"),
        "final_equity": Decimal("10012.34"),
        "realized_pnl": Decimal("10.00"),
        "fees": Decimal("1.128"),
        "funding": Decimal("0"),
        "fills": 2,
        "round_trips": 1,
        "win_rate": 1.0,
        "max_drawdown": 3.5,
        "max_drawdown_pct": 0.035,
        "reconnects": 0,
        "dropped_messages": 0,
        "error_count": 0,
        "blocked_signals": 0,
        "stopped_reason": "duration_reached",
        "mean_latency_drift_bps": 0.16,
        "mean_spread_cost_bps": 0.0053,
        "restarts": 0,
        "offline_fallback": False,
        "error": None,
    }
    report.update(overrides)
    return report


def make_inputs(**overrides):
    inputs = {
        "report": make_report(),
        "fills": [make_fill(1, side="BUY", minute=2), make_fill(2, side="SELL", minute=6, fill_px=94_020.1)],
        "candles": make_candles(10),
        "equity": make_equity(50),
        "settings": {"latency_ms": 250, "fee_bps": 6.0, "strategy": "ema_cross"},
        "feed": {"reconnects": 0, "dropped_messages": 0, "parse_errors": 0, "last_message_age_s": 0.41},
        "segments": [
            {
                "segment": 1,
                "started": "2025-01-01T13:00:00+00:00",
                "ended": "2025-01-01T13:30:00+00:00",
                "exit_reason": "duration_reached",
                "duration_seconds": 1800.0,
            }
        ],
        "events": [{"ts": T0 + 60_000, "kind": "order_filled", "detail": "o-1"}],
    }
    inputs.update(overrides)
    return inputs


def render(**overrides):
    return render_summary_html(**make_inputs(**overrides))


def realistic_run(minutes=90, *, start_px=87_811.0, seed=7):
    """A replay-like run: one-minute candles on a random walk, a round trip every ~9 minutes
    (entries, exits, stops, targets and the end-of-session flatten), equity every 5 s."""
    rng = random.Random(seed)
    candles, px = [], start_px
    for i in range(minutes):
        o = px
        c = round(o + rng.gauss(0, 9), 1)
        candles.append({"ts": T0 + i * 60_000, "open": o, "high": round(max(o, c) + abs(rng.gauss(0, 4)), 1),
                        "low": round(min(o, c) - abs(rng.gauss(0, 4)), 1), "close": c,
                        "volume": round(rng.uniform(2, 20), 3)})
        px = c
    fills, seq, cash = [], 0, Decimal("10000")
    qty = Decimal("0.113")
    for start in range(1, minutes - 4, 9):
        side = "BUY" if (start // 9) % 2 == 0 else "SELL"
        entry = candles[start]
        exit_minute = start + 3 + (start % 4)
        reason = ("exit", "stop", "target", "exit")[(start // 9) % 4]
        for minute, fill_side, why in ((start, side, "entry"),
                                       (exit_minute, "SELL" if side == "BUY" else "BUY", reason)):
            seq += 1
            c = candles[min(minute, minutes - 1)]
            fill_px = round(c["close"] + (3.5 if fill_side == "BUY" else -3.5), 1)
            pnl = Decimal("0") if why == "entry" else (
                (Decimal(str(fill_px)) - Decimal(str(entry["close"]))) * qty * (1 if side == "BUY" else -1))
            fee = (Decimal(str(fill_px)) * qty * Decimal("0.0006")).quantize(Decimal("0.00000001"))
            cash += pnl - fee
            fills.append(make_fill(seq, side=fill_side, minute=minute, fill_px=fill_px, qty=qty,
                                   reason=why, realized_pnl=pnl, fee=fee,
                                   fill_ts=c["ts"] + 1_000 + (0 if why == "entry" else 17_000),
                                   position_after=(qty if fill_side == "BUY" else -qty) if why == "entry" else Decimal("0.000"),
                                   trigger=why if why in ("stop", "target") else None, cash_after=cash))
    equity, eq = [], 10_000.0
    for k in range(minutes * 12):
        eq += rng.gauss(-0.02, 0.6)
        equity.append({"ts": T0 + k * 5_000, "equity": round(eq, 4)})
    report = make_report(source="replay", fills=len(fills), round_trips=len(fills) // 2,
                         final_equity=Decimal(str(round(eq, 4))),
                         pnl_absolute=Decimal(str(round(eq - 10_000, 4))),
                         duration_seconds=minutes * 60.0)
    return make_inputs(report=report, fills=fills, candles=candles, equity=equity)


def sample_comparison():
    """A compact comparison as trading/compare.py makes it: a replay at 200 ms against its
    original at 1000 ms over 40 minutes; fill 4 only in the original, fill 6 only in the replay."""
    candles = make_candles(40, start_px=88_000.0)

    def fill(seq, side, minute, px, reason, pnl="0", latency=1000, qty="0.113"):
        ts = T0 + minute * 60_000
        return {"order_id": f"o-{latency}-{seq}", "seq": seq, "side": side, "qty": qty,
                "reason": reason, "signal_ts": ts, "signal_px": px - 1.0, "due_ts": ts + latency,
                "fill_ts": ts + latency, "latency_ms": latency, "fill_px": px, "bid": px - 0.5,
                "ask": px + 0.5, "spread_cost_bps": 0.4, "latency_drift_bps": 0.1, "fee": "5.96",
                "fee_bps": 6.0, "realized_pnl": pnl, "trigger": None, "trigger_px": None,
                "position_after": "0" if reason != "entry" else qty, "cash_after": "9990.0"}

    base = [fill(1, "BUY", 3, 88_012.0, "entry"), fill(2, "SELL", 9, 88_030.5, "exit", "2.0905"),
            fill(3, "SELL", 14, 88_041.0, "entry"), fill(4, "BUY", 18, 88_060.0, "stop", "-2.147"),
            fill(5, "BUY", 25, 88_070.0, "entry"), fill(6, "SELL", 31, 88_090.0, "target", "2.26")]
    other = [fill(1, "BUY", 3, 88_011.0, "entry", latency=200),
             fill(2, "SELL", 9, 88_031.0, "exit", "2.26", latency=200),
             fill(3, "SELL", 14, 88_041.0, "entry", latency=200),
             fill(5, "BUY", 25, 88_069.5, "entry", latency=200),
             fill(6, "SELL", 31, 88_090.0, "target", "2.3165", latency=200),
             fill(7, "BUY", 36, 88_101.0, "entry", latency=200)]
    pairs = [
        {"index": 1, "match": "matched", "base": base[0], "other": other[0], "price_diff": -1.0,
         "ts_diff_ms": -800, "qty_diff": "0", "fee_diff": "0", "pnl_diff": "0"},
        {"index": 2, "match": "matched", "base": base[1], "other": other[1], "price_diff": 0.5,
         "ts_diff_ms": -800, "qty_diff": "0", "fee_diff": "0", "pnl_diff": "0.1695"},
        {"index": 3, "match": "matched", "base": base[2], "other": other[2], "price_diff": 0.0,
         "ts_diff_ms": -800, "qty_diff": "0", "fee_diff": "0", "pnl_diff": "0"},
        {"index": 4, "match": "only_base", "base": base[3], "other": None, "price_diff": None,
         "ts_diff_ms": None, "qty_diff": None, "fee_diff": None, "pnl_diff": None},
        {"index": 5, "match": "matched", "base": base[4], "other": other[3], "price_diff": -0.5,
         "ts_diff_ms": -800, "qty_diff": "0", "fee_diff": "0", "pnl_diff": "0"},
        {"index": 6, "match": "matched", "base": base[5], "other": other[4], "price_diff": 0.0,
         "ts_diff_ms": -800, "qty_diff": "0", "fee_diff": "0", "pnl_diff": "0.0565"},
        {"index": 7, "match": "only_other", "base": None, "other": other[5], "price_diff": None,
         "ts_diff_ms": None, "qty_diff": None, "fee_diff": None, "pnl_diff": None},
    ]

    def metric(name, key, unit, a, b):
        return {"name": name, "key": key, "unit": unit, "base": a, "other": b,
                "diff": None if a is None or b is None else round(b - a, 8)}

    return {
        "title": "Replay of run-1 vs its original",
        "identical": False,
        "base": {"run_id": "run-1", "label": "original",
                 "report": make_report(run_id="run-1", source="replay", fills=6),
                 "settings": {"execution_latency_ms": 1000, "taker_fee_bps": 6.0}},
        "other": {"run_id": "run-2", "label": "replay",
                  "report": make_report(run_id="run-2", source="replay", fills=6),
                  "settings": {"execution_latency_ms": 200, "taker_fee_bps": 6.0}},
        "changed_settings": [{"name": "execution_latency_ms", "base": 1000, "other": 200}],
        "metrics": [
            metric("PnL", "pnl_absolute", "USDT", -33.59, -30.12),
            metric("Realized before fees", "realized_pnl", "USDT", 2.2035, 4.5765),
            metric("Fees", "fees", "USDT", 35.76, 35.76),
            metric("Funding", "funding", "USDT", 0.0, 0.0),
            metric("Spread cost", "spread_cost_usdt", "USDT", 2.41, 2.38),
            metric("Latency drift cost", "drift_cost_usdt", "USDT", 0.6, 0.1),
            metric("Mean latency drift", "mean_latency_drift_bps", "bps", 0.1, 0.02),
            metric("Mean spread cost", "mean_spread_cost_bps", "bps", 0.4, 0.4),
            metric("Max drawdown", "max_drawdown", "USDT", 40.0, 36.5),
            metric("Fills", "fills", "count", 6, 6),
            metric("Round trips", "round_trips", "count", 3, 2),
        ],
        "pairs": pairs,
        "candles": candles,
        "equity": {
            "base": [{"ts": T0 + k * 30_000, "equity": 10_000 - k * 0.42} for k in range(80)],
            "other": [{"ts": T0 + k * 30_000, "equity": 10_000 - k * 0.37} for k in range(80)],
        },
    }


def chart_data(page, chart_id):
    """The JSON a chart of the page draws from."""
    match = re.search(
        rf'<script type="application/json" class="chart-data" data-for="{chart_id}">(.*?)</script>',
        page, flags=re.S)
    assert match, f"no data for {chart_id}"
    return json.loads(match.group(1))


def script_free(page):
    """The page without its <script> blocks (the inlined chart library holds URLs of its own)."""
    return re.sub(r"<script\b[^>]*>.*?</script>", "", page, flags=re.S | re.I)


def read_csv_rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


# -- files on disk ----------------------------------------------------------------------------


def test_writes_run_files_and_mirrors_them_to_latest(tmp_path):
    run_dir = write_run_reports(tmp_path, "run-1", **make_inputs())

    assert run_dir == tmp_path / "run-1"
    names = {"final_report.json", "fills.csv", "summary.html"}
    assert {p.name for p in run_dir.iterdir()} == names
    latest = tmp_path / "latest"
    assert {p.name for p in latest.iterdir()} == names
    for name in names:
        assert (latest / name).read_bytes() == (run_dir / name).read_bytes()
    assert read_report(run_dir)["run_id"] == "run-1"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_second_run_replaces_everything_in_latest(tmp_path):
    write_run_reports(tmp_path, "run-1", **make_inputs())
    (tmp_path / "latest" / "stale.txt").write_text("from an older run")

    write_run_reports(tmp_path, "run-2", **make_inputs(report=make_report(run_id="run-2")))

    latest = tmp_path / "latest"
    assert sorted(p.name for p in latest.iterdir()) == ["fills.csv", "final_report.json", "summary.html"]
    assert read_report(latest)["run_id"] == "run-2"
    assert (tmp_path / "run-1" / "final_report.json").exists()
    assert "run-2" in (latest / "summary.html").read_text(encoding="utf-8")


def test_final_report_is_the_report_verbatim_with_nan_and_inf_as_null(tmp_path):
    report = make_report(
        win_rate=float("nan"),
        max_drawdown_pct=float("inf"),
        fees=Decimal("1.12800000"),
        funding=Decimal("NaN"),
        extra={"nested": [1.5, float("-inf")]},
    )

    run_dir = write_run_reports(tmp_path, "run-1", **make_inputs(report=report))

    text = (run_dir / "final_report.json").read_text(encoding="utf-8")
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert data["win_rate"] is None
    assert data["max_drawdown_pct"] is None
    assert data["funding"] is None
    assert data["extra"] == {"nested": [1.5, None]}
    assert data["fees"] == "1.12800000"
    assert data["pnl_absolute"] == "12.34"
    assert list(data) == list(report)
    assert text.startswith('{\n  "status": "success"')
    assert read_report(run_dir) == data


def test_fills_csv_has_fixed_column_order_and_exact_decimals(tmp_path):
    fill = make_fill(1, qty=Decimal("0.00012345678901234567"), realized_pnl=Decimal("-1.10"))
    partial = {"order_id": "o-2", "side": "SELL", "fill_px": 94_010.25}

    run_dir = write_run_reports(tmp_path, "run-1", **make_inputs(fills=[fill, partial]))

    rows = read_csv_rows(run_dir / "fills.csv")
    assert tuple(rows[0]) == FILL_COLUMNS
    assert FILL_COLUMNS[:4] == ("order_id", "seq", "side", "qty")
    # the order-book columns come after the older ones: a reader by position still works
    assert FILL_COLUMNS[21:23] == ("position_after", "cash_after")
    assert FILL_COLUMNS[23:] == ("order_type", "liquidity", "order_qty", "order_filled",
                                 "depth_cost_bps", "depth_exhausted", "price_model", "legs")
    assert len(FILL_COLUMNS) == 31
    first = dict(zip(rows[0], rows[1]))
    assert first["qty"] == "0.00012345678901234567"
    assert first["fee"] == "0.56400900"
    assert first["realized_pnl"] == "-1.10"
    assert first["cash_after"] == "9999.43599100"
    assert first["fill_ts"] == str(T0 + 60_000 + 312)
    assert first["fill_px"] == "94001.5"
    second = dict(zip(rows[0], rows[2]))
    assert second["order_id"] == "o-2"
    assert second["fill_px"] == "94010.25"
    assert second["qty"] == ""
    assert second["seq"] == ""
    assert len(rows) == 3


def test_run_id_with_unsafe_characters_gets_a_safe_folder(tmp_path):
    run_dir = write_run_reports(tmp_path, PAYLOAD, **make_inputs(report=make_report(run_id=PAYLOAD)))

    assert run_dir.parent == tmp_path
    assert "/" not in run_dir.name and "<" not in run_dir.name
    assert read_report(run_dir)["run_id"] == PAYLOAD


# -- robustness when called from a finally block ------------------------------------------------


def test_failing_renderer_still_leaves_report_csv_and_minimal_summary(tmp_path, monkeypatch):
    def broken_render(**_kwargs):
        raise RuntimeError("chart exploded <b>")

    monkeypatch.setattr(reports, "render_summary_html", broken_render)

    run_dir = write_run_reports(tmp_path, "run-1", **make_inputs())

    assert read_report(run_dir)["status"] == "success"
    assert len(read_csv_rows(run_dir / "fills.csv")) == 3
    page = (run_dir / "summary.html").read_text(encoding="utf-8")
    assert "could not be rendered" in page
    assert "RuntimeError: chart exploded &lt;b&gt;" in page
    assert "<b>" not in page
    assert (tmp_path / "latest" / "summary.html").read_text(encoding="utf-8") == page


def test_garbage_values_do_not_break_the_page():
    candles = make_candles(5) + [{"ts": None, "open": "x"}, {"ts": T0, "close": float("nan")}]
    fills = [{**make_fill(1), "fill_px": None}, make_fill(2, qty="lots", fee=object(), side=None)]
    equity = [{"ts": T0, "equity": "not a number"}, {"ts": "2025-01-01T13:00:05Z", "equity": "10000.5"}]

    page = render(candles=candles, fills=fills, equity=equity, report={"status": 3, "duration_seconds": "n/a"})

    assert len(chart_data(page, "price-chart")["bars"]) == 5
    assert "could not be rendered" not in page
    assert "1 fills lack a fill time or price." in page


def test_missing_report_fields_render_placeholders():
    page = render(report={})

    assert "UNKNOWN" in page
    assert "could not be rendered" not in page
    assert ">\u2014<" in page


# -- HTML content -----------------------------------------------------------------------------


def test_untrusted_values_appear_only_escaped(tmp_path):
    report = make_report(run_id=PAYLOAD, status="error", error=PAYLOAD, source=PAYLOAD, **{PAYLOAD: PAYLOAD})
    inputs = make_inputs(
        report=report,
        settings={"strategy": PAYLOAD, PAYLOAD: 1},
        feed={"note": PAYLOAD},
        fills=[make_fill(1, reason=PAYLOAD, side=PAYLOAD)],
        segments=[{"segment": 1, "exit_reason": PAYLOAD}],
        events=[{"ts": T0, "kind": PAYLOAD, "detail": {"why": PAYLOAD}}],
    )

    run_dir = write_run_reports(tmp_path, PAYLOAD, **inputs)

    page = (run_dir / "summary.html").read_text(encoding="utf-8")
    assert PAYLOAD not in page and PAYLOAD.upper() not in page
    assert "alert(1)</" not in page.lower()
    assert page.count(PAYLOAD_ESCAPED) >= 8
    # the only scripts are the page's own: the chart library, its wiring and the charts' JSON,
    # in which no "<" can end the block early
    tags = re.findall(r"<script\b[^>]*>", page, flags=re.I)
    assert set(tags) == {"<script>", '<script type="application/json" class="chart-data" data-for="price-chart">',
                         '<script type="application/json" class="chart-data" data-for="equity-chart">'}
    for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', page, flags=re.S):
        assert "<" not in block and ">" not in block
    tips = [m["tip"] for m in chart_data(page, "price-chart")["fills"]]
    assert any(PAYLOAD in t for t in tips)  # the data is kept, only its markup is neutered


def test_page_is_self_contained():
    page = render(report=make_report(source="replay", offline_fallback=True))

    lowered = page.lower()
    assert lowered.startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in lowered
    # no src or href leaves the page but the link the chart library's licence asks for
    links = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"' >]+)""", script_free(page), flags=re.I)
    assert links == ["https://www.tradingview.com/"]
    for needle in ("<link", "@import", "<img", "<iframe", "<object", "<embed", "url(", "http://",
                   " src="):
        assert needle not in script_free(lowered), needle
    for tag in re.findall(r"<script\b[^>]*>", lowered):
        assert "src" not in tag, tag
    # the one URL the inlined library builds is the attribution logo's link (an <a href>)
    library = re.findall(r"https?://[^\s\"'`)]+", page[page.index("<script>"):])
    assert {re.sub(r"\?.*", "", u) for u in library} <= {
        "https://www.apache.org/licenses/LICENSE-2.0", "https://www.tradingview.com/",
        "http://www.w3.org/2000/svg"}
    assert "fetch(" not in lowered and "xmlhttprequest" not in lowered


def test_page_policy_forbids_every_fetch():
    page = render()
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert policy
    directives = dict(d.strip().split(" ", 1) for d in policy.group(1).split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'unsafe-inline'"
    assert directives["style-src"] == "'unsafe-inline'"
    assert directives["img-src"] == "data:"
    assert page.index("Content-Security-Policy") < page.index("<style>") < page.index("<script>")


def test_price_chart_has_one_candle_per_candle_and_one_marker_per_fill():
    candles = make_candles(12)
    fills = [
        make_fill(1, side="BUY", minute=2),
        make_fill(2, side="SELL", minute=4, fill_px=94_012.0),
        make_fill(3, side="BUY", minute=7),
        make_fill(4, side="SELL", minute=9, fill_px=94_030.0),
        make_fill(5, side="SELL", minute=10, fill_px=94_031.0),
    ]
    page = render(candles=candles, fills=fills)

    data = chart_data(page, "price-chart")
    assert data["kind"] == "price" and data["placement"] == "price"
    assert data["bars"] == [[c["ts"] // 1000, c["open"], c["high"], c["low"], c["close"]] for c in candles]
    markers = data["fills"]
    assert [m["side"] for m in markers] == ["BUY", "SELL", "BUY", "SELL", "SELL"]
    # each marker sits on its minute's candle, at the fill price
    assert [m["t"] for m in markers] == [(T0 + k * 60_000) // 1000 for k in (2, 4, 7, 9, 10)]
    assert [m["px"] for m in markers] == [f["fill_px"] for f in fills]
    assert markers[0]["tip"] == "BUY 0.010 @ 94,001.5 \u00b7 2025-01-01 13:02:00 UTC \u00b7 ema_cross"
    # entries are labelled by side, exits by their reason
    assert [(m["role"], m["text"]) for m in markers[:2]] == [("entry", "Buy"), ("exit", "ema_cross")]
    assert "buy entry (2)" in page and "sell entry (0)" in page and "exit (3), labelled by reason" in page
    assert "2025-01-01 13:00 &rarr; 2025-01-01 13:12 UTC" in page
    assert "94,0" in page


def test_price_chart_shows_only_the_last_300_candles_and_says_so():
    candles = make_candles(1_500)
    late = make_fill(1, side="BUY", minute=1_450)
    early = make_fill(2, side="SELL", minute=10)

    page = render(candles=candles, fills=[early, late])

    data = chart_data(page, "price-chart")
    assert len(data["bars"]) == 300
    assert data["bars"][0][0] == candles[1_200]["ts"] // 1000
    assert "Showing the last 300 of 1,500 one-minute candles." in page
    assert [m["side"] for m in data["fills"]] == ["BUY"]
    assert "1 fills fall outside the chart window" in page


def test_fills_table_shows_cost_attribution_with_formats():
    fills = [make_fill(1, side="BUY", latency_drift_bps=-0.4567, realized_pnl=Decimal("1.005"))]

    page = render(fills=fills)

    table = page[page.index('<table class="fills">') :]
    table = table[: table.index("</table>")]
    heads = [re.sub(r"<[^>]+>", " ", h).split() for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]
    assert [" ".join(h) for h in heads] == [
        "Time (UTC)", "Side", "Reason", "Liquidity", "Qty", "Order qty", "Signal px", "Fill px",
        "Bid", "Ask", "Latency ms", "Drift bps", "Spread bps", "Depth bps", "Fee",
        "Realized PnL"]
    assert ">2025-01-01 13:01:00<" in table
    assert ">0.010<" in table
    assert ">94,001.5<" in table
    assert ">94,001.4<" in table
    assert ">312<" in table
    assert ">-0.46<" in table
    assert ">0.01<" in table
    assert ">0.5640<" in table
    assert ">+1.0050<" in table  # exact: realized PnL moves in steps of lot x tick = 0.0001


def test_fills_rows_add_up_to_the_total_shown():
    # rounded to cents the rows would read +0.56, -1.70, -3.96 (sum -5.10) beside a total of -5.08
    pnls = ["0.5650", "-1.7035", "-3.9415"]
    fills = [make_fill(i + 1, realized_pnl=Decimal(p)) for i, p in enumerate(pnls)]
    table = render(fills=fills)
    table = table[table.index('<table class="fills">'):]
    table = table[:table.index("</table>")]
    body, foot = table[:table.index("<tfoot")], table[table.index("<tfoot"):]
    cells = re.findall(r">([+-]\d+\.\d{4})</td></tr>", body)
    assert cells == ["+0.5650", "-1.7035", "-3.9415"]
    total = re.findall(r">([+-]\d+\.\d{4})</td></tr>", foot)
    assert total == ["-5.0800"]
    assert sum(Decimal(c) for c in cells) == Decimal(total[0])


def test_win_rate_says_it_counts_round_trips_after_fees():
    page = render(report=make_report(win_rate=0.0, round_trips=1, round_trips_won=0,
                                     realized_pnl=Decimal("0.56")))
    assert "0.0%" in page and "0 of 1 won after fees" in page
    assert "closed trades, before fees" in page  # the green realized figure is gross
    old = render(report=make_report(win_rate=0.5, round_trips=4))  # a report without the count
    assert "2 of 4 won after fees" in old


def test_key_figures_show_pnl_percent_and_formats():
    page = render(report=make_report(pnl_absolute=Decimal("-25.5"), starting_equity=Decimal("10000")))

    assert "-25.50" in page
    assert "-0.26%" in page
    assert "10,012.34" in page
    assert "100.0%" in page  # win rate given as a fraction
    assert "30m 00s" in page


def test_equity_curve_has_baseline_and_is_downsampled():
    page = render(equity=make_equity(20_000))

    data = chart_data(page, "equity-chart")
    assert data["kind"] == "equity" and data["start"] == 10_000.0  # the dashed baseline
    (series,) = data["series"]
    assert 1_000 < len(series["points"]) <= 2_000
    assert series["points"][0] == [T0 // 1000, 10_000.0]
    assert series["points"][-1] == [(T0 + 19_999 * 5_000) // 1000, 10_000.0 + 19_999 * 0.01]
    times = [t for t, _ in series["points"]]
    assert times == sorted(set(times))  # strictly increasing, as the chart needs
    assert "start <b>10,000.00</b>" in page
    assert "20,000 samples drawn as" in page


def test_downsample_keeps_ends_and_extremes():
    points = [(float(i), 100.0) for i in range(20_000)]
    points[7_777] = (7_777.0, 250.0)
    points[12_345] = (12_345.0, -40.0)

    thin = downsample_min_max(points, 2_000)

    assert len(thin) <= 2_000
    assert thin[0] == points[0] and thin[-1] == points[-1]
    assert (7_777.0, 250.0) in thin and (12_345.0, -40.0) in thin
    assert [x for x, _ in thin] == sorted(x for x, _ in thin)
    assert downsample_min_max(points[:10], 2_000) == points[:10]


def test_empty_inputs_render_no_data_placeholders(tmp_path):
    inputs = make_inputs(report={}, fills=[], candles=[], equity=[], settings={}, feed={},
                         segments=None, events=None)

    run_dir = write_run_reports(tmp_path, "empty", **inputs)

    page = (run_dir / "summary.html").read_text(encoding="utf-8")
    assert page.count("No data") >= 4
    assert "<script" not in page  # no chart, so neither the library nor its data
    assert "TradingView" not in page
    assert "Segments" not in page
    assert "could not be rendered" not in page
    assert read_csv_rows(run_dir / "fills.csv") == [list(FILL_COLUMNS)]
    assert read_report(run_dir) == {}


def test_single_equity_point_and_fills_without_candles():
    page = render(candles=[], equity=make_equity(1), fills=[make_fill(1)])

    assert chart_data(page, "equity-chart")["series"][0]["points"] == [[T0 // 1000, 10_000.0]]
    assert "Only one equity sample was recorded." in page
    price = chart_data(page, "price-chart")
    assert price["bars"] == [] and price["line"] == [[(T0 + 60_312) // 1000, 94_001.5]]
    assert [m["side"] for m in price["fills"]] == ["BUY"]
    assert "No candle data was recorded" in page


def test_error_status_renders_red_badge_and_error_text():
    page = render(report=make_report(status="error", exit_code=1, error="RuntimeError: feed stale 30.0 s"))

    assert '<span class="badge bad">ERROR</span>' in page
    assert "RuntimeError: feed stale 30.0 s" in page
    assert "exit code 1" in page


def test_success_status_renders_green_badge_without_error_box():
    page = render()

    assert '<span class="badge ok">SUCCESS</span>' in page
    assert 'class="error-box"' not in page


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        ({"offline_fallback": True}, True),
        ({"source": "replay:btcusdt-2025-01-01.jsonl"}, True),
        ({"source": "bitunix-live", "offline_fallback": False}, False),
    ],
)
def test_offline_banner(overrides, shown):
    page = render(report=make_report(**overrides))

    assert ('class="banner"' in page) is shown


def test_segments_settings_feed_and_events_tables():
    events = [{"ts": T0 + i * 1_000, "kind": "tick", "detail": f"event-{i}"} for i in range(250)]

    page = render(events=events, settings={"latency_ms": 250, "paper_only": True}, feed={"last_message_age_s": 0.41234})

    assert "duration_reached" in page
    assert ">latency_ms</th><td class=\"num\">250<" in page
    assert ">paper_only</th><td>true<" in page
    assert ">0.412<" in page
    assert "event-249" in page and "event-50<" in page
    assert "event-49<" not in page
    assert "Showing the last 200 of 250 events." in page


def test_large_inputs_render_fast_and_small():
    fills = [make_fill(i, side="BUY" if i % 2 else "SELL", minute=i % 1_500) for i in range(2_000)]
    inputs = make_inputs(candles=make_candles(1_500), fills=fills, equity=make_equity(20_000))

    started = time.perf_counter()
    page = render_summary_html(**inputs)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert len(page.encode("utf-8")) < 2_000_000
    assert len(chart_data(page, "price-chart")["bars"]) == 300
    assert "Showing the last 500 of 2,000 fills" in page


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (apt-get install chromium)")
def test_summary_renders_in_headless_chromium(tmp_path):
    run_dir = write_run_reports(tmp_path / "runs", "run-1", **make_inputs(candles=make_candles(120)))
    shot = tmp_path / "shot.png"

    subprocess.run(
        [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
            "--window-size=1280,2000", (run_dir / "summary.html").resolve().as_uri(),
        ],
        timeout=60,
        capture_output=True,
        check=False,
    )

    assert shot.exists()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000


def test_a_fill_after_the_last_closed_candle_is_on_the_chart():
    """The end-of-session flatten comes after the last closed candle: it is marked (it was
    once left off as "outside the chart window", and it was the session's largest loss)."""
    candles = make_candles(10)
    flatten = make_fill(1, side="SELL", minute=10, fill_ts=T0 + 10 * 60_000 + 1_000)
    page = render(candles=candles, fills=[make_fill(2, side="BUY", minute=3), flatten])
    data = chart_data(page, "price-chart")
    assert [m["side"] for m in data["fills"]] == ["BUY", "SELL"]
    # the flatten's minute has no candle: an empty bar puts it on the time axis
    after = (T0 + 10 * 60_000) // 1000
    assert data["bars"][-1] == [after] and data["fills"][-1]["t"] == after
    assert "outside the chart window" not in page


# -- what latest/ mirrors ---------------------------------------------------------------------


def test_latest_mirrors_only_the_report_files(tmp_path):
    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    (run_dir / "recording.jsonl.gz").write_bytes(b"\x1f\x8b" + b"x" * 100_000)
    (run_dir / "notes").mkdir()
    (run_dir / "compare.html").write_text("<!DOCTYPE html><p>compare</p>", encoding="utf-8")

    write_run_reports(tmp_path, "run-1", **make_inputs())

    assert {p.name for p in (tmp_path / "latest").iterdir()} == {
        "final_report.json", "fills.csv", "summary.html", "compare.html"}
    assert (run_dir / "recording.jsonl.gz").exists()
    assert reports.REPORT_FILES == ("final_report.json", "fills.csv", "summary.html", "compare.html")


# -- compare.html ----------------------------------------------------------------------------


def test_write_compare_html_writes_the_page_and_refreshes_latest(tmp_path):
    run_dir = write_run_reports(tmp_path, "run-2", **make_inputs(report=make_report(run_id="run-2")))
    other = write_run_reports(tmp_path, "run-3", **make_inputs(report=make_report(run_id="run-3")))

    path = reports.write_compare_html(run_dir, sample_comparison())

    assert path == run_dir / reports.COMPARE_HTML_NAME == run_dir / "compare.html"
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Replay of run-1 vs its original" in page
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # no temp file left
    # latest/ mirrors run-3, not run-2: it gets no compare.html of run-2's
    assert not (tmp_path / "latest" / "compare.html").exists()
    path = reports.write_compare_html(other, sample_comparison())
    assert (tmp_path / "latest" / "compare.html").read_text(encoding="utf-8") == page


def test_compare_page_is_redacted_like_the_summary(tmp_path):
    secret = "Zq8Xw2LmN4pR7tY1vB6cD9fG3hJ5kS0a"
    comparison = sample_comparison()
    comparison["title"] = f"Replay token={secret}"
    comparison["changed_settings"].append({"name": "api_key", "base": "hunter2pass", "other": "x9y8z7"})
    comparison["base"]["settings"]["api_secret"] = secret
    comparison["pairs"][0]["base"]["reason"] = f"Bearer {secret}"

    page = reports.write_compare_html(tmp_path, comparison).read_text(encoding="utf-8")

    for leaked in (secret, "hunter2pass", "x9y8z7"):
        assert leaked not in page
    assert ">api_key</th><td>[REDACTED]</td><td>[REDACTED]</td>" in page
    # metric keys survive the redaction of fields called "key": the colours need them
    assert '<th scope="row">PnL</th><td class="num">-33.59</td><td class="num">-30.12</td><td class="num pos">+3.47</td>' in page


def test_compare_page_shows_verdict_settings_metrics_and_fills_side_by_side():
    page = render_compare_html(sample_comparison())

    assert "<title>Replay of run-1 vs its original</title>" in page
    assert '<span class="badge warn">DIFFERS</span>' in page
    verdict = re.search(r'<p class="verdict differs">([^<]+)</p>', page).group(1)
    assert verdict == ("Differs: PnL -33.59 vs -30.12 USDT (+3.47); 6 fills each; 4 of 5 matched "
                       "fills differ in price, quantity, fee or PnL; 5 filled at another time; "
                       "1 only in the original; 1 only in the replay")
    assert "<tr><th scope=\"row\">execution_latency_ms</th><td>1000</td><td>200</td></tr>" in page
    # better or worse for the replay, by what the metric measures
    assert '<td class="num pos">-0.50</td>' in page  # latency drift cost fell
    assert '<td class="num neg">-1</td>' in page or '<td class="num">-1</td>' in page  # a count
    assert '<td class="num">0.00</td><td class="muted">USDT</td>' in page  # fees equal: no colour
    body = page[page.index('<table class="fills pairs">'):]
    body = body[:body.index("</table>")]
    rows = re.findall(r"<tr class=\"([^\"]*)\"><td class=\"num\">(\d+)</td>", body)
    assert rows == [("differs", "1"), ("differs", "2"), ("", "3"), ("only differs", "4"),
                    ("differs", "5"), ("differs", "6"), ("only differs", "7")]
    assert '<span class="tag only-base">only original</span>' in body
    assert '<span class="tag only-other">only replay</span>' in body
    assert ">-800 ms<" in body and ">2025-01-01 13:03:01<" in body and ">2025-01-01 13:03:00<" in body
    # a buy filled 1.00 lower is better, a sell filled 0.50 higher too
    assert '<td class="num sep pos">-1.00</td>' in body and '<td class="num sep pos">+0.50</td>' in body
    price = chart_data(page, "price-chart")
    assert price["placement"] == "bar" and len(price["bars"]) == 40
    assert [m["run"] for m in price["fills"]].count("base") == 6
    assert [m["run"] for m in price["fills"]].count("other") == 6
    assert price["fills"][0]["tip"].startswith("original: BUY 0.113 @ 88,012.0")
    equity = chart_data(page, "equity-chart")
    assert [s["label"] for s in equity["series"]] == ["original", "replay"]
    assert all(len(s["points"]) == 80 for s in equity["series"])
    assert "https://www.tradingview.com/" in page


def test_identical_comparison_says_so():
    c = sample_comparison()
    pairs = [p for p in c["pairs"] if p["match"] == "matched"]
    for p in pairs:
        p["other"] = dict(p["base"])
        p.update(price_diff=0.0, ts_diff_ms=0, qty_diff="0", fee_diff="0", pnl_diff="0")
    c.update(identical=True, pairs=pairs)

    page = render_compare_html(c)

    assert '<p class="verdict same">Identical: 5 fills, PnL equal</p>' in page
    assert '<span class="badge ok">IDENTICAL</span>' in page
    assert 'class="differs"' not in page


def test_empty_comparison_renders_placeholders():
    page = render_compare_html({})

    assert "could not be rendered" not in page
    assert page.count("No data") == 3 and "No setting that changes the trading differs" in page
    assert "<script" not in page


def test_compare_render_failure_leaves_a_minimal_page(tmp_path, monkeypatch):
    def broken(_comparison):
        raise RuntimeError("template <missing>")

    monkeypatch.setattr(reports, "render_compare_html", broken)
    page = reports.write_compare_html(tmp_path, sample_comparison()).read_text(encoding="utf-8")

    assert "could not be rendered" in page and "RuntimeError: template &lt;missing&gt;" in page
    assert "<missing>" not in page


# -- robustness of the page ----------------------------------------------------------------------


def test_a_failing_section_is_logged_and_the_rest_of_the_page_stays(monkeypatch, caplog):
    from storage import report_pages

    def broken(*_args):
        raise ValueError("bad fills")

    monkeypatch.setattr(report_pages, "_fills_view", broken)
    with caplog.at_level("ERROR", logger="storage.reports"):
        page = render()

    assert "<h2>Fills</h2><p class=\"empty\">This section could not be rendered: ValueError: bad fills</p>" in page
    assert page.count("could not be rendered") == 1
    for still in ("Key figures", "All report fields", "Feed health", 'id="price-chart"'):
        assert still in page
    assert [r.section for r in caplog.records if r.msg == "report_section_failed"] == ["Fills"]


def test_a_section_whose_template_fails_is_skipped_too(monkeypatch):
    from storage import report_pages

    def broken_qty(_value):
        raise ArithmeticError("qty")

    # a template takes its filters when it is compiled: build the environment afresh
    monkeypatch.setitem(report_pages._FILTERS, "qty", broken_qty)
    report_pages._environment.cache_clear()
    try:
        page = render()
    finally:
        monkeypatch.undo()
        report_pages._environment.cache_clear()

    assert "<h2>Fills</h2><p class=\"empty\">This section could not be rendered: ArithmeticError: qty</p>" in page
    assert "Key figures" in page and "All report fields" in page


def test_without_the_chart_library_the_page_still_renders(monkeypatch):
    from storage import report_pages

    monkeypatch.setattr(report_pages, "_chart_library_text", lambda: "")
    page = render()

    assert "LightweightCharts" not in page.split("report's charts")[0]
    assert "The interactive chart needs JavaScript" in page  # the note the script then rewrites
    assert "Key figures" in page and '<table class="fills">' in page


def test_chart_data_cannot_end_its_script_block():
    evil = "</script><script>alert(1)</script><!--"
    page = render(fills=[make_fill(1, reason=evil)], events=[{"ts": T0, "kind": evil}])

    assert evil not in page and "</script><script>alert" not in page
    assert chart_data(page, "price-chart")["fills"][0]["tip"].endswith(evil)


def test_templates_and_library_are_found_in_a_bundle(tmp_path, monkeypatch):
    from storage import report_pages, resources

    root = Path(reports.__file__).resolve().parents[1]
    for part in ("resources/templates", "resources/vendor"):
        shutil.copytree(root / part, tmp_path / part)
    (tmp_path / "resources/templates/macros.html.j2").write_text(
        (root / "resources/templates/macros.html.j2").read_text(encoding="utf-8").replace(
            "run summary</h1>", "run summary (bundled)</h1>"), encoding="utf-8")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    for cached in (report_pages._environment, report_pages._asset, report_pages._chart_library_text):
        cached.cache_clear()
    try:
        assert resources.resource_path("resources/templates") == tmp_path / "resources/templates"
        page = render()
        assert "BTCUSDT run summary (bundled)</h1>" in page
        assert "TradingView Lightweight Charts v5.2.1" in page
    finally:
        monkeypatch.undo()
        for cached in (report_pages._environment, report_pages._asset, report_pages._chart_library_text):
            cached.cache_clear()
    assert "run summary (bundled)" not in render()


def test_the_vendored_library_is_the_one_its_notice_describes():
    root = Path(reports.__file__).resolve().parents[1] / "resources/vendor/lightweight-charts"
    library = (root / "lightweight-charts.standalone.production.js").read_bytes()
    notice = (root / "NOTICE.md").read_text(encoding="utf-8")
    assert hashlib.sha256(library).hexdigest() in notice
    assert "Lightweight Charts\u2122 v5.2.1" in library[:300].decode("utf-8")
    assert "lightweight-charts` 5.2.1" in notice and "https://www.tradingview.com/" in notice
    assert "Apache License" in (root / "LICENSE").read_text(encoding="utf-8")


# ---- fills that know the order book: depth, limit orders, partial fills ------------------

def book_fills():
    """A market BUY that walked three levels and ran out of visible depth, a maker SELL that
    filled 0.004 of a 0.010 limit order from the queue, and an old fill without the keys.

    Notional (qty x mid): 0.1 x 100,000 = 10,000 USDT and 0.05 x 100,000 = 5,000 USDT."""
    taker = make_fill(1, side="BUY", minute=1, fill_px=100_005.3, qty=Decimal("0.1"),
                      bid=99_995.0, ask=100_005.0, mid=100_000.0, spread_cost_bps=0.5,
                      latency_drift_bps=2.0, fee=Decimal("5.00"), fee_bps=5.0,
                      order_qty="0.1", order_filled="0.1", order_type="market",
                      liquidity="taker", legs="100005.0x0.05;100005.5x0.04;100006.0x0.01",
                      depth_cost_bps=0.3, depth_exhausted=True, price_model="book")
    maker = make_fill(2, side="SELL", minute=3, fill_px=100_010.0, qty=Decimal("0.004"),
                      bid=99_990.0, ask=100_010.0, mid=100_000.0, spread_cost_bps=-1.0,
                      latency_drift_bps=-1.0, fee=Decimal("1.00"), fee_bps=2.0,
                      order_qty="0.010", order_filled="0.004", order_type="limit",
                      liquidity="maker", legs="100010.0x0.004", depth_cost_bps=0.0,
                      depth_exhausted=False, price_model="queue")
    # the maker fill's notional is 0.004 x 100,000 = 400 USDT: make it 0.05 BTC for round sums
    maker["qty"] = Decimal("0.05")
    old = make_fill(3, side="BUY", minute=5)
    return taker, maker, old


def costs_section(page):
    part = page[page.index("<h2>Where the money went"):]
    return part[:part.index("</section>")]


def cost_row(section, name):
    row = re.search(rf'<th scope="row">{name}</th>(.*?)</tr>', section).group(1)
    return re.findall(r"<td[^>]*>([^<]*)</td>", row)


def test_fills_csv_has_the_order_book_columns_and_old_rows_leave_them_empty(tmp_path):
    taker, maker, old = book_fills()
    from trading.model import Fill
    as_tuple = dict(taker, legs=((100_005.0, Decimal("0.05")), (100_005.5, Decimal("0.04"))))
    run_dir = write_run_reports(tmp_path, "run-1",
                                **make_inputs(fills=[taker, maker, old, as_tuple]))
    rows = list(csv.DictReader(open(run_dir / "fills.csv", encoding="utf-8", newline="")))
    cols = ("order_type", "liquidity", "order_qty", "order_filled", "depth_cost_bps",
            "depth_exhausted", "price_model", "legs")
    assert [rows[0][c] for c in cols] == ["market", "taker", "0.1", "0.1", "0.3", "True", "book",
                                          "100005.0x0.05;100005.5x0.04;100006.0x0.01"]
    assert [rows[1][c] for c in cols] == ["limit", "maker", "0.010", "0.004", "0.0", "False",
                                          "queue", "100010.0x0.004"]
    assert [rows[2][c] for c in cols] == [""] * 8  # older data: nothing made up
    assert rows[3]["legs"] == "100005.0x0.05;100005.5x0.04"  # legs as the engine holds them
    # and the engine reads its own legs back from the file
    assert Fill.from_dict({**rows[0], "side": "BUY"}).legs == (
        (100_005.0, Decimal("0.05")), (100_005.5, Decimal("0.04")), (100_006.0, Decimal("0.01")))


def test_cost_split_sums_qty_times_mid_times_bps_from_the_fills():
    taker, maker, old = book_fills()
    report = make_report()
    for key in ("mean_latency_drift_bps", "mean_spread_cost_bps", "fees"):
        report.pop(key)  # an older report: every figure from the fills
    section = costs_section(render(report=report, fills=[taker, maker]))
    # by hand: notional 10,000 and 5,000 USDT
    # spread  10,000 x 0.5 / 1e4 = 0.50;  5,000 x -1.0 / 1e4 = -0.50  -> 0.00; mean -0.25 bps
    # depth   10,000 x 0.3 / 1e4 = 0.30;  the maker fill takes no depth -> 0.30; mean 0.30 bps
    #         (over the market orders' fills)
    # drift   10,000 x 2.0 / 1e4 = 2.00;  5,000 x -1.0 / 1e4 = -0.50 -> +1.50; mean +0.50 bps
    # fees    5.00 + 1.00 = 6.00 USDT; mean fee 3.50 bps
    assert cost_row(section, "Spread")[1:3] == ["-0.25", "0.00"]
    assert cost_row(section, "Depth")[1:3] == ["0.30", "0.30"]
    assert cost_row(section, "Latency drift")[1:3] == ["+0.50", "+1.50"]
    assert cost_row(section, "Fees")[1:3] == ["3.50", "6.00"]
    total = re.search(r"<tfoot>.*?<td class=\"num\">([^<]+)</td>", section, re.S).group(1)
    assert total == "7.80"  # 0.00 + 0.30 + 1.50 + 6.00
    # the bars are to scale: fees the widest, spread nothing
    widths = dict(re.findall(r'<tr class="cost-(\w+)">.*?width:([\d.]+)%', section))
    assert widths == {"spread": "0.0", "depth": "5.0", "drift": "25.0", "fees": "100.0"}


def test_the_reports_own_cost_figures_win_over_the_fills_sums():
    taker, maker, _ = book_fills()
    report = make_report(spread_cost_usdt=1.234, depth_cost_usdt=0.456, drift_cost_usdt=-0.789,
                         mean_depth_cost_bps=0.25, mean_spread_cost_bps=0.4,
                         mean_latency_drift_bps=-0.1, fees=Decimal("7.5"))
    section = costs_section(render(report=report, fills=[taker, maker]))
    assert cost_row(section, "Spread")[1:3] == ["0.40", "1.23"]
    assert cost_row(section, "Depth")[1:3] == ["0.25", "0.46"]
    assert cost_row(section, "Latency drift")[1:3] == ["-0.10", "-0.79"]
    assert cost_row(section, "Fees")[2] == "7.50"
    assert '<span class="bar gain"' in section  # the drift was a gain: green


def test_how_fills_were_priced_and_the_depth_model_are_said_in_words():
    taker, maker, old = book_fills()
    page = render(fills=[taker, maker, old],
                  report=make_report(depth_model="synthetic beyond the top level (calibrated model)"))
    section = costs_section(page)
    priced = re.search(r'<p class="priced"><span class="k">How fills were priced</span> ([^<]+)</p>',
                       section).group(1)
    assert priced == ("1 walked the book, 1 filled from the queue as resting limit orders, "
                      "1 with no price model recorded (older data) \u00b7 1 maker, 2 taker \u00b7 "
                      "1 partial fill (part of an order; the rest filled later or was cancelled) "
                      "\u00b7 1 ran out of visible depth (the rest filled by the impact rule)")
    assert ('<p class="priced modelled">Depth beyond the best level was modelled, not observed: '
            "synthetic beyond the top level (calibrated model).</p>") in section
    real = costs_section(render(fills=[taker], report=make_report(
        depth_model="real depth (Binance depth15)")))
    assert '<p class="priced">Depth: real depth (Binance depth15).</p>' in real
    top = costs_section(render(fills=[old], report=make_report(depth_model="top of book only")))
    assert "no level beyond the best was known" in top
    unsaid = costs_section(render(fills=[old]))  # no depth_model in the report: not said
    assert "Depth:" not in unsaid and "modelled" not in unsaid


def test_fills_table_shows_liquidity_order_qty_partial_depth_and_the_legs_on_hover():
    taker, maker, old = book_fills()
    page = render(fills=[taker, maker, old])
    table = page[page.index('<table class="fills">'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r'<tr title="([^"]*)">(.*?)</tr>', table, re.S)
    assert len(rows) == 3
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", body, re.S) for _, body in rows]
    # Time, Side, Reason, Liquidity, Qty, Order qty, Signal, Fill, Bid, Ask, Latency, Drift,
    # Spread, Depth, Fee, Realized
    assert [c[3] for c in cells] == ["taker", "maker", "taker"]
    assert cells[0][5] == "0.100"
    assert cells[1][4] == "0.050"
    assert cells[1][5].startswith("0.010 <span class=\"tag partial\"") and "partial</span>" in cells[1][5]
    assert cells[2][5] == "0.010"  # an old fill filled its whole order
    assert cells[0][13] == '<span class="tag impact" title="depth exhausted: the rest filled by the impact rule">impact</span> 0.30'
    assert [c[13] for c in cells[1:]] == ["0.00", "0.00"]
    tips = [t for t, _ in rows]
    assert tips[0].splitlines() == [
        "market order, taker", "walked the book", "levels taken (3), price \u00d7 size:",
        "  100,005.0 \u00d7 0.050 BTC", "  100,005.5 \u00d7 0.040 BTC",
        "  100,006.0 \u00d7 0.010 BTC  (impact leg, beyond the visible book)",
        "depth cost 0.30 bps (VWAP vs best price)",
        "depth exhausted: the rest filled by the impact rule"]
    assert tips[1].splitlines() == [
        "limit order, maker, partial: 0.004 of 0.010 BTC filled so far",
        "resting limit order filled by trades",
        "filled at its limit price: 100,010.0 \u00d7 0.004 BTC"]
    assert tips[2] == "market order, taker"  # old data: the defaults, no levels claimed
    foot = table[table.index("<tfoot"):]
    assert ">0.10<" in foot  # the depth column's mean: (0.3 + 0 + 0) / 3


def test_top_of_book_fill_says_no_depth_was_known():
    f = make_fill(1, price_model="top_of_book", legs="94001.5x0.010", depth_cost_bps=0.0)
    page = render(fills=[f])
    tip = re.search(r'<tr title="([^"]*)">', page).group(1)
    assert tip.splitlines() == ["market order, taker", "top of book: no depth known",
                                "filled at the best level: 94,001.5 \u00d7 0.010 BTC"]


def test_a_fill_without_the_new_keys_renders_everywhere(tmp_path):
    old = make_fill(1)
    assert "liquidity" not in old and "legs" not in old
    page = render(fills=[old])
    assert "could not be rendered" not in page
    section = costs_section(page)
    assert cost_row(section, "Depth")[1:3] == ["0.00", "0.00"]
    run_dir = write_run_reports(tmp_path, "run-old", **make_inputs(fills=[old]))
    assert "could not be rendered" not in (run_dir / "summary.html").read_text(encoding="utf-8")


def test_compare_shows_depth_cost_when_the_metric_is_there():
    c = sample_comparison()
    c["metrics"].insert(5, {"name": "Depth cost", "key": "depth_cost_usdt", "unit": "USDT",
                            "base": 1.25, "other": 0.5, "diff": -0.75})
    page = render_compare_html(c)
    row = re.search(r'<tr><th scope="row">Depth cost</th>(.*?)</tr>', page).group(1)
    assert re.findall(r"<td[^>]*>([^<]*)</td>", row) == ["1.25", "0.50", "-0.75", "USDT"]
    assert '<td class="num pos">-0.75</td>' in row  # less depth cost: better
    assert "Depth cost" not in render_compare_html(sample_comparison())  # not required
