import csv
import json
import re
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from storage import reports
from storage.reports import (
    FILL_COLUMNS,
    downsample_min_max,
    read_report,
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
    assert FILL_COLUMNS[-2:] == ("position_after", "cash_after")
    assert len(FILL_COLUMNS) == 23
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

    assert page.count('class="candle-') == 5
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
    assert "<script" not in page.lower()
    assert "alert(1)</" not in page.lower()
    assert page.count(PAYLOAD_ESCAPED) >= 8


def test_page_is_self_contained():
    page = render(report=make_report(source="replay", offline_fallback=True))

    lowered = page.lower()
    for needle in ("http://", "https://", "<script", "<link", "@import", "url(", "<img", "<iframe"):
        assert needle not in lowered, needle
    assert lowered.startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in lowered


def test_price_chart_has_one_candle_per_candle_and_one_marker_per_fill():
    candles = make_candles(12)
    fills = [
        make_fill(1, side="BUY", minute=2),
        make_fill(2, side="SELL", minute=4, fill_px=94_012.0),
        make_fill(3, side="BUY", minute=7),
        make_fill(4, side="SELL", minute=9, fill_px=94_030.0),
        make_fill(5, side="SELL", minute=10, fill_px=94_031.0),
    ]
    ups = sum(1 for c in candles if c["close"] >= c["open"])

    page = render(candles=candles, fills=fills)

    assert "<svg" in page
    assert page.count('<rect class="candle-up"') == ups
    assert page.count('<rect class="candle-down"') == len(candles) - ups
    assert page.count('class="fill-buy"') == 2
    assert page.count('class="fill-sell"') == 3
    assert "13:00" in page
    assert "94,0" in page


def test_price_chart_shows_only_the_last_300_candles_and_says_so():
    candles = make_candles(1_500)
    late = make_fill(1, side="BUY", minute=1_450)
    early = make_fill(2, side="SELL", minute=10)

    page = render(candles=candles, fills=[early, late])

    assert page.count('<rect class="candle-') == 300
    assert "Showing the last 300 of 1,500 one-minute candles." in page
    assert page.count('class="fill-buy"') == 1
    assert page.count('class="fill-sell"') == 0
    assert "1 fills fall outside the chart window" in page


def test_fills_table_shows_cost_attribution_with_formats():
    fills = [make_fill(1, side="BUY", latency_drift_bps=-0.4567, realized_pnl=Decimal("1.005"))]

    page = render(fills=fills)

    table = page[page.index('<table class="fills">') :]
    table = table[: table.index("</table>")]
    for header in ("Time (UTC)", "Side", "Reason", "Qty", "Signal px", "Fill px", "Bid", "Ask",
                   "Latency ms", "Drift bps", "Spread bps", "Fee", "Realized PnL"):
        assert f">{header}</th>" in table
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

    match = re.search(r'<path class="equity-line [a-z]+" d="([^"]+)"', page)
    assert match
    assert match.group(1).count("L") + 1 <= 2_000
    assert 'class="baseline"' in page
    assert "start 10,000.00" in page
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
    assert "<svg" not in page
    assert "Segments" not in page
    assert "could not be rendered" not in page
    assert read_csv_rows(run_dir / "fills.csv") == [list(FILL_COLUMNS)]
    assert read_report(run_dir) == {}


def test_single_equity_point_and_fills_without_candles():
    page = render(candles=[], equity=make_equity(1), fills=[make_fill(1)])

    assert 'class="equity-end' in page
    assert "Only one equity sample was recorded." in page
    assert page.count('class="fill-buy"') == 1
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
    assert page.count('<rect class="candle-') == 300
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
    assert page.count('class="fill-sell"') == 1 and page.count('class="fill-buy"') == 1
    assert "outside the chart window" not in page
