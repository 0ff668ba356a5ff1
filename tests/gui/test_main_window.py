"""The desktop window against real sessions on the local exchange (pytest-qt, offscreen)."""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QLabel

from tests.conftest import ROOT
from trading.model import Quote


def _report(run_dir: str) -> dict:
    return json.loads((Path(run_dir) / "final_report.json").read_text(encoding="utf-8"))


def _numbers(text: str) -> list[float]:
    text = text.replace("\u2212", "-").replace(",", "")
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+", text)]


def _shown_pnl(report_window) -> list[float]:
    """The PnL figure(s) the report window shows (its PnL label, else every label)."""
    label = getattr(report_window, "pnl_label", None)
    if label is None and hasattr(report_window, "values"):
        label = report_window.values.get("pnl_absolute")
    labels = [label] if label is not None else report_window.findChildren(QLabel)
    return [n for lab in labels for n in _numbers(lab.text())]


def test_session_from_the_window_fills_charts_reconnects_and_reports(make_window, qtbot,
                                                                     tmp_path):
    from gui.panels import FillsModel, OrdersTable
    from gui.theme import fmt_price
    w = make_window(chaos="drop@40s")
    w.set_toolbar(source="replay", replay_file=None, speed=60, duration_min=10,
                  latency_ms=15_000)
    assert w.start_session()
    assert not w.start_action.isEnabled() and w.stop_action.isEnabled()
    assert not w.source_combo.isEnabled()

    # a signal's order waits out the 15 s latency in the orders table, counting down
    qtbot.waitUntil(lambda: w.orders_table.rowCount() >= 1, timeout=60_000)
    due = w.orders_table.item(0, OrdersTable.STATE_COL).text()
    assert re.fullmatch(r"in flight(, \d+\.\d s|, due)?", due), due
    assert w.orders_table.item(0, OrdersTable.TYPE_COL).text() == "market"
    assert w.orders_table.item(0, OrdersTable.LIMIT_COL).text() == "–"
    qtbot.waitUntil(lambda: w.fills_panel.row_count >= 1, timeout=60_000)
    model = w.fills_panel.model
    f = model.fills[0]
    # a market order fills at the quote in force: BUY from the ask, SELL from the bid,
    # walking the book behind it (its price the VWAP of the levels it took)
    from trading.book import priced_from_quote
    assert priced_from_quote(f), f
    cols = [c[1] for c in FillsModel.COLUMNS]
    assert model.data(model.index(0, cols.index("fill_px"))) == fmt_price(f["fill_px"])
    assert model.data(model.index(0, cols.index("side"))) == f["side"]
    assert f["signal_ts"] is not None and f["latency_ms"] >= 15_000
    qtbot.waitUntil(lambda: f["order_id"] not in w.orders_table.order_ids, timeout=5_000)

    # the chart holds the candles and a marker per fill
    qtbot.waitUntil(lambda: w.chart.drawn_fill_marker_count >= 1, timeout=5_000)
    assert w.chart.closed_candle_count >= 50  # warm-up history + closed candles
    assert w.chart.candle_count >= w.chart.closed_candle_count
    assert w.chart.fill_marker_count == w.fills_panel.row_count
    assert w.chart.following and w.chart.follow_button.isHidden()
    # the user scrolls back in time: the chart stops following until "Follow latest"
    (x0, x1), _ = w.chart.price_plot.getViewBox().viewRange()
    w.chart.price_plot.setXRange(x0 - 3600, x1 - 3600, padding=0)
    w.chart._price_vb.userPanned.emit()
    assert not w.chart.following and not w.chart.follow_button.isHidden()
    qtbot.mouseClick(w.chart.follow_button, Qt.LeftButton)
    assert w.chart.following and w.chart.follow_button.isHidden()
    (_x0, x1_now), _ = w.chart.price_plot.getViewBox().viewRange()
    assert x1_now >= x1 - 60

    # the exchange drops the connection 40 s (market time) in: the status bar shows it
    qtbot.waitUntil(lambda: w.indicators.reconnects >= 1, timeout=30_000)
    assert "reconnects 1" in w.indicators.feed_label.text()
    qtbot.waitUntil(lambda: w.indicators.feed_state == "replay", timeout=15_000)
    assert "restarts 0" in w.indicators.restarts_label.text()

    with qtbot.waitSignal(w.sessionFinished, timeout=30_000) as finished:
        w.stop_session()
    code, run_dir = finished.args
    assert code == 0
    report = _report(run_dir)
    assert report["status"] == "success"
    assert report["stopped_reason"] == "stopped by user"
    assert report["reconnects"] >= 1
    assert w.fills_panel.row_count == report["fills"]
    assert w.chart.fill_marker_count == report["fills"]
    assert w.last_report["pnl_absolute"] == report["pnl_absolute"]
    assert w.start_action.isEnabled() and not w.stop_action.isEnabled()

    # the report window opens on the run, showing final_report.json's PnL
    rw = w.last_report_window
    assert rw is not None and rw.isVisible()
    shown = _shown_pnl(rw)
    assert any(abs(v - report["pnl_absolute"]) < 0.005 for v in shown), (shown, report)

    # every fill exports, exactly as the engine recorded it
    out = w.fills_panel.export_csv(tmp_path / "fills.csv")
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == report["fills"]
    assert [float(r["fill_px"]) for r in rows] == [x["fill_px"] for x in model.fills]

    # sortable by value, not by text
    fill_col = cols.index("fill_px")
    w.fills_panel.view.sortByColumn(fill_col, Qt.DescendingOrder)
    proxy = w.fills_panel.proxy
    top = proxy.data(proxy.index(0, fill_col))
    assert top == fmt_price(max(x["fill_px"] for x in model.fills))

    # the log view tails the app log, filtered by level
    qtbot.waitUntil(lambda: any("Strategy Fill" in ln or "Exit Fill" in ln
                                for ln in w.log_view.lines()), timeout=5_000)
    w.log_view.set_min_level(logging.WARNING)
    lines = [ln for ln in w.log_view.lines() if re.match(r"\d\d:\d\d:\d\d\.\d{3} ", ln)]
    assert lines, "the dropped connection logs a warning"
    assert all(ln.split()[1] in ("WARNING", "ERROR", "CRITICAL") for ln in lines), lines[:5]


def test_auto_falls_back_offline_with_a_banner_and_close_waits_for_the_report(make_window,
                                                                              qtbot):
    w = make_window()
    w.set_toolbar(source="auto", speed=60, duration_min=10)
    assert not w.offline_banner.isVisible()
    assert w.start_session()
    qtbot.waitUntil(lambda: w.offline_banner.isVisible(), timeout=20_000)
    text = w.offline_banner.text()
    assert "OFFLINE" in text and "Bitunix" in text and "NOT live" in text
    qtbot.waitUntil(lambda: w.chart.candle_count > 0, timeout=20_000)

    # closing while a session runs: stop cleanly, wait for the report, then close
    w.close()
    assert w.isVisible() and w._stopping_dialog is not None
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=30_000)
    assert not w.controller.is_running
    report = _report(w.controller.last_run_dir)
    assert report["offline_fallback"] is True
    assert report["source"] == "replay" and report["requested_source"] == "auto"
    assert report["stopped_reason"] == "window closed"
    assert w.last_report_window is None  # no report window pops up while quitting


def test_watchdog_restart_is_highlighted_in_the_status_bar(make_window, qtbot):
    w = make_window(inject_crash_after_s=0.8)
    w.set_toolbar(source="replay", replay_file=None, speed=60, duration_min=4)
    with qtbot.waitSignal(w.sessionFinished, timeout=60_000) as finished:
        assert w.start_session()
        qtbot.waitUntil(lambda: w.indicators.restarts >= 1, timeout=30_000)
        assert "restarts 1" in w.indicators.restarts_label.text()
        assert "Injected" in w.indicators.restarts_label.toolTip() or \
            "crash" in w.indicators.restarts_label.toolTip()
        assert w.alert_banner.isVisible() and "Watchdog restarted" in w.alert_banner.text()
    code, run_dir = finished.args
    report = _report(run_dir)
    assert code == 0 and report["restarts"] == 1
    assert w.fills_panel.row_count == report["fills"]  # resumed fills are not duplicated


def test_bridge_coalesces_quotes_and_keeps_event_order(qtbot):
    from gui.bridge import Bridge
    bridge = Bridge()
    quotes, fills, statuses = [], [], []
    bridge.quote_changed.connect(quotes.append)
    bridge.fill.connect(fills.append)
    bridge.status.connect(statuses.append)
    n = 20_000
    t0 = time.monotonic()

    def engine():
        for i in range(n):
            bridge.publish("quote", Quote(ts=1_000 + i, bid=100.0 + i, ask=101.0 + i))
            if i % 200 == 0:
                bridge.publish("fill", {"order_id": "o", "seq": i // 200})
                bridge.publish("status", f"line {i}")

    th = threading.Thread(target=engine)
    th.start()
    th.join()
    qtbot.waitUntil(lambda: bool(quotes) and quotes[-1].ts == 1_000 + n - 1, timeout=2_000)
    elapsed_ms = (time.monotonic() - t0) * 1000
    st = bridge.stats()
    assert st["quotes_received"] == n
    assert st["quotes_emitted"] == len(quotes) <= elapsed_ms / 33 + 3
    assert [f["seq"] for f in fills] == list(range(100))  # nothing lost, in order
    assert statuses[-1] == f"line {n - 200}" and len(statuses) <= len(fills)
    bridge.deleteLater()


def test_toolbar_and_layout_are_remembered(make_window, qtbot, gui_env):
    w = make_window()
    w.set_toolbar(source="replay", replay_file=None, speed=10, duration_min=7.5,
                  latency_ms=2500)
    w.log_view.set_min_level(logging.WARNING)
    w.orders_dock.hide()  # the user closed a dock
    w.close()
    w2 = make_window()
    tb = w2.toolbar_values()
    assert tb == {"source": "replay", "replay_file": None, "duration_min": 7.5,
                  "latency_ms": 2500, "speed": 10.0}
    assert w2.log_view.min_level == logging.WARNING
    assert w2.orders_dock.isHidden() and not w2.fills_dock.isHidden()
    assert QSettings(str(gui_env / "ui.ini"), QSettings.IniFormat).value("window/geometry")
    cfg = w2.build_config()
    assert (cfg.source, cfg.speed, cfg.duration_min, cfg.broker.latency_ms) == \
        ("replay", 10.0, 7.5, 2500)
    assert cfg.seed == 5 and cfg.replay_start_index == 700  # carried from the command line


def test_invalid_combination_is_refused_before_anything_starts(make_window, monkeypatch):
    from PySide6.QtWidgets import QMessageBox
    w = make_window(chaos="drop@30s")
    w.set_toolbar(source="replay", speed=math.inf)
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    assert not w.start_session()
    assert not w.controller.is_running
    assert shown and "finite replay speed" in shown[0]


def test_error_hooks_log_and_show_a_dialog(make_window, qtbot, data_dir):
    from gui.app import install_excepthooks
    w = make_window()
    restore = install_excepthooks(w)
    try:
        def boom():
            raise RuntimeError("helper failed api_key=abcd1234secret")
        t = threading.Thread(target=boom, name="gui-helper")
        t.start()
        t.join()
    finally:
        restore()
    qtbot.waitUntil(lambda: getattr(w, "_error_box", None) is not None
                    and w._error_box.isVisible(), timeout=3_000)
    box = w._error_box
    assert "gui-helper" in box.windowTitle()
    assert "helper failed" in box.detailedText()
    assert "abcd1234secret" not in box.detailedText()  # secrets never shown
    box.close()
    logged = (data_dir / "logs" / "system.jsonl").read_text(encoding="utf-8")
    assert "thread_crashed" in logged and "abcd1234secret" not in logged


def test_cli_options_override_saved_settings(monkeypatch):
    import main
    from gui.app import cli_overrides
    argv = ["--dur", "3", "--speed", "max", "--source", "replay", "--seed", "4"]
    args, _cfg = main.parse_config(argv)
    assert cli_overrides(args, argv) == {"duration_min": 3.0, "speed": math.inf,
                                         "source": "replay"}
    argv = ["--order-type", "limit", "--limit-tif", "IOC", "--limit-offset-bps", "2"]
    args, _cfg = main.parse_config(argv)
    assert cli_overrides(args, argv) == {"order_type": "limit", "limit_tif": "IOC",
                                         "limit_offset_bps": 2.0}


def test_order_options_on_the_command_line_beat_saved_settings(make_window, gui_env):
    from gui.settings_dialog import AppSettings, save_settings
    save_settings(AppSettings(order_type="market", limit_timeout_s=12.0))
    w = make_window(cli_overrides={"order_type": "limit", "limit_tif": "POST_ONLY"})
    cfg = w.build_config()
    assert (cfg.entry.order_type, cfg.entry.limit_tif, cfg.entry.limit_timeout_s) == (
        "limit", "POST_ONLY", 12.0)  # the saved timeout stays; the given options win


def test_strategy_on_the_command_line_beats_saved_settings(make_window, gui_env):
    import main
    from gui.app import cli_overrides
    from gui.settings_dialog import AppSettings, save_settings
    save_settings(AppSettings(strategy_params={"fast": 4}))
    argv = ["--strategy", "sma_cross", "--strategy-param", "slow=50"]
    args, _cfg = main.parse_config(argv)
    w = make_window(cli_overrides=cli_overrides(args, argv))
    cfg = w.build_config()
    assert (cfg.strategy, cfg.strategy_params) == ("sma_cross", {"fast": 10, "slow": 50})


def test_the_peers_month_on_the_command_line_reaches_the_window(make_window, gui_env):
    """A month replayed as the peers run it, launched with the window: every flag reaches the
    session's config (a month is within the window's duration limit, as on the command line);
    an option the saved settings refuse is left out alone, and the window says so."""
    import main
    from gui.app import cli_overrides
    month = str(ROOT / "bench" / "data" / "btc_perp_ftx_1m_20211231_20220201.csv.gz")
    argv = ["--source", "replay", "--replay-file", month, "--speed", "max",
            "--strategy", "sma_cross", "--fixed-qty", "0.1", "--replay-from-start",
            "--execution-latency-ms", "0", "--no-breaker", "--no-flatten",
            "--starting-balance", "1000000", "--duration", "45032"]
    args, _cfg = main.parse_config(argv)
    w = make_window(cli_overrides=cli_overrides(args, argv))
    cfg = w.build_config()
    assert (cfg.duration_min, cfg.strategy, cfg.broker.fixed_qty, cfg.broker.latency_ms) == (
        45032.0, "sma_cross", Decimal("0.1"), 0)
    assert (cfg.breaker_enabled, cfg.flatten_at_end, cfg.replay_from_start) == (
        False, False, True)
    assert cfg.broker.starting_cash == Decimal("1000000") and math.isinf(cfg.speed)
    assert w.duration_spin.text().replace(",", "") == "45032.0 min"  # what the toolbar shows
    assert not w.alert_banner.isVisible() or "not used" not in w.alert_banner.label.text()

    # a quantity off the lot of a saved symbol's broker: that option alone is left out
    bad = make_window(cli_overrides={"fixed_qty": "0.0005", "no_such": 1,
                                     "breaker_enabled": False})
    cfg = bad.build_config()
    assert cfg.broker.fixed_qty is None and cfg.breaker_enabled is False
    bad.show()
    text = bad.alert_banner.label.text()
    assert bad.alert_banner.isVisible() and "Command-line options not used: fixed_qty must " \
        "be a multiple of the lot size" in text


@pytest.mark.parametrize("extra, want_code, want_status", [
    ([], 0, "success"),
    (["--no-watchdog", "--inject-strategy-error", "1"], 1, "error"),
])
def test_main_py_window_autostarts_and_exits_with_the_session_code(tmp_path, extra, want_code,
                                                                   want_status):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "xdg"),
               BTC_LAPTOP_CONFIG_DIR=str(tmp_path / "config"),
               BTC_LAPTOP_DATA_DIR=str(tmp_path / "data"))
    data = tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--autostart", "--exit-on-finish",
         "--source", "replay", "--speed", "60", "--duration", "2", "--seed", "5",
         "--data-dir", str(data), "--quiet", *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == want_code, proc.stderr[-3000:]
    report = json.loads((data / "runs" / "latest" / "final_report.json").read_text())
    assert report["status"] == want_status
    # the window's remembered layout went to the throwaway config dir
    assert (tmp_path / "xdg" / "BTC Laptop Agents" / "btc-laptop-agents.conf").is_file()


def test_settings_dialog_result_is_saved_and_drives_the_next_session(make_window, monkeypatch,
                                                                     gui_env):
    import dataclasses

    from PySide6.QtWidgets import QDialog

    import gui.main_window as mw
    from gui.settings_dialog import load_settings

    class AcceptingDialog:
        def __init__(self, settings, parent=None):
            self.given = settings

        def exec(self):
            return QDialog.Accepted

        def settings(self):
            return dataclasses.replace(self.given, source="replay", duration_min=12.0,
                                       latency_ms=750, speed=300.0, taker_fee_bps=4.5)

    monkeypatch.setattr(mw, "SettingsDialog", AcceptingDialog)
    w = make_window()
    w.open_settings()
    saved, warning = load_settings(gui_env / "config" / "settings.json")
    assert warning is None and saved.taker_fee_bps == 4.5 and saved.latency_ms == 750
    assert w.toolbar_values() == {"source": "replay", "replay_file": None, "duration_min": 12.0,
                                  "latency_ms": 750, "speed": 300.0}
    cfg = w.build_config()
    assert (cfg.broker.taker_fee_bps, cfg.broker.latency_ms, cfg.speed) == (4.5, 750, 300.0)


def test_replay_file_choice_is_checked(make_window, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    from trading.runtime.datafiles import default_replay_file
    w = make_window()
    good = tmp_path / "day.csv"
    good.write_bytes(default_replay_file().read_bytes())
    assert w.choose_replay_file(good)
    assert w.source_combo.currentText() == "Replay: day.csv"
    assert w.toolbar_values()["replay_file"] == good and w.toolbar_values()["source"] == "replay"
    assert w.build_config().replay_file == good

    bad = tmp_path / "notes.csv"
    bad.write_text("hello,world\n1,2\n")
    warned = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warned.append(a[2]))
    assert not w.choose_replay_file(bad)
    assert warned and "notes.csv" in warned[0]
    assert w.toolbar_values()["replay_file"] == good  # the previous choice stands

    # back to the bundled day: the file stays listed; both choices survive a restart
    w.set_toolbar(source="replay", replay_file=None)
    assert w.toolbar_values()["replay_file"] is None
    assert w.source_combo.findText("Replay: day.csv") >= 0
    w.close()
    w2 = make_window()
    assert w2.toolbar_values()["replay_file"] is None
    assert w2.source_combo.currentText() == "Replay: bundled day"
    assert w2.source_combo.findText("Replay: day.csv") >= 0


def test_history_window_opens_on_the_journal(make_window, data_dir):
    w = make_window()
    w.open_history()
    hw = w.history_window
    assert hw is not None and hw.isVisible() and hw.isWindow()
    assert Path(hw.journal_path) == data_dir / "journal.sqlite3"
    hw.close()


def test_run_summary_stands_in_when_the_report_window_is_missing(make_window, monkeypatch,
                                                                 tmp_path):
    import gui.main_window as mw
    from gui.run_summary import RunSummaryWindow
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "final_report.json").write_text(json.dumps({
        "status": "error", "run_id": "r1", "pnl_absolute": -12.345, "fills": 3,
        "error": "SessionError: boom"}))
    monkeypatch.setattr(mw, "ReportWindow", None)
    w = make_window()
    rw = w.open_report(run_dir)
    assert isinstance(rw, RunSummaryWindow) and rw.isVisible()
    assert rw.values["pnl_absolute"].text() == "-12.35"
    assert rw.values["status"].text() == "error" and rw.values["fills"].text() == "3"
    assert _shown_pnl(rw) == [-12.35]


def test_rebuilt_account_is_said_in_words_above_the_chart(make_window, qtbot, data_dir):
    """A corrupt state file: the window says the account came from the journal, visibly."""
    first = subprocess.run([sys.executable, str(ROOT / "main.py"), "--headless", "--source",
                            "replay", "--speed", "max", "--duration", "15", "--seed", "3",
                            "--quiet", "--data-dir", str(data_dir)],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    (data_dir / "paper" / "broker_state.json").write_text('{"broker": {"ledger": "abc"}}')
    w = make_window(reset_account=False)
    w.set_toolbar(source="replay", replay_file=None, speed=600, duration_min=2)
    with qtbot.waitSignal(w.sessionFinished, timeout=60_000):
        assert w.start_session()
        qtbot.waitUntil(lambda: w.alert_banner.isVisible(), timeout=30_000)
        text = w.alert_banner.text()
        assert "ACCOUNT REBUILT FROM THE JOURNAL" in text and "journal" in text
        label = w.alert_banner.label
        assert label.isVisible() and label.width() > 200


def test_settings_opened_from_the_window_shows_every_value(make_window, qtbot):
    """Each field displays its value, readable: the window's style once left every spin box
    of the dialog with a 1-pixel text area (the values were there, but blank on screen)."""
    from PySide6.QtWidgets import QApplication

    from gui.theme import apply_theme
    app = QApplication.instance()
    before = (app.styleSheet(), app.palette(), app.font())
    apply_theme(app)  # what the app does at launch: the style rules are the point here
    try:
        _check_settings_fields(make_window, qtbot)
    finally:
        app.setStyleSheet(before[0])
        app.setPalette(before[1])
        app.setFont(before[2])


def _check_settings_fields(make_window, qtbot):
    from PySide6.QtWidgets import QAbstractSpinBox, QLineEdit

    from gui.settings_dialog import AppSettings, SettingsDialog
    w = make_window()
    dlg = SettingsDialog(AppSettings(), w)
    dlg.show()
    qtbot.waitExposed(dlg)
    checked = 0
    for name, editor in dlg.editors.items():
        field = editor.lineEdit() if isinstance(editor, QAbstractSpinBox) else editor
        if not isinstance(field, QLineEdit):
            continue
        text = field.text() or field.placeholderText()
        assert text, name
        if isinstance(editor, QAbstractSpinBox):
            assert text == str(editor.value()), name
        need = field.fontMetrics().horizontalAdvance(text)
        assert field.isVisible() and field.contentsRect().width() >= need, \
            (name, field.contentsRect().width(), need)
        checked += 1
    assert checked >= 20
    dlg.close()


def test_after_stop_the_panels_show_the_final_account_and_the_clock_says_finished(
        make_window, qtbot):
    from gui.theme import fmt_money
    w = make_window()
    w.set_toolbar(source="replay", replay_file=None, speed=60, duration_min=20)
    with qtbot.waitSignal(w.sessionFinished, timeout=90_000) as done:
        assert w.start_session()
        qtbot.waitUntil(lambda: w.position_panel.values["side"].text() in ("LONG", "SHORT"),
                        timeout=60_000)
        w.stop_session()  # with a position open: the flatten fill comes after the last tick
    report = _report(done.args[1])
    assert report["open_position_qty"] in ("0", "0.000") and report["fills"] >= 2
    panel = w.position_panel.values
    assert panel["side"].text() == "FLAT"
    assert panel["realized"].text() == fmt_money(report["realized_pnl"], sign=True)
    assert panel["fees"].text() == fmt_money(report["fees"])
    # the fills table's Realized cells, as displayed, add up to the realized total displayed
    model = w.fills_panel.model
    col = [c[1] for c in model.COLUMNS].index("realized_pnl")
    shown = [model.data(model.index(r, col)) for r in range(model.rowCount())]
    assert len(shown) == report["fills"]
    total = sum(Decimal(t.replace(",", "")) for t in shown if t != "–")
    assert fmt_money(total, sign=True) == panel["realized"].text(), (shown, panel["realized"].text())
    ind = w.indicators
    assert ind.remaining_label.text() == "finished"
    assert ind.age_label.text() == "msg –" and "stopped" in ind.feed_label.text()
    # on a 1280-wide laptop screen (the window takes 90%) no status word is cut
    w.resize(1152, 648)
    qtbot.wait(100)
    for lab in (ind.feed_label, ind.age_label, ind.queue_label, ind.breaker_label,
                ind.restarts_label, ind.remaining_label):
        assert lab.isVisible() and lab.width() >= lab.sizeHint().width(), \
            (lab.text(), lab.width(), lab.sizeHint().width())
    # the status line gives way with "…", never cutting the run id it starts with
    shown = w.run_label.shown_text()
    assert shown.startswith(f"Finished {report['run_id']}"), shown
    assert shown == w.run_label.text() or shown.endswith("…"), shown
    # the PnL chart ends at the final account, after the flatten, as the report does
    w.chart.refresh()
    xs, ys = w.chart._net_curve.getData()
    assert ys is not None and len(ys) >= 2
    assert round(float(ys[-1]), 2) == round(float(report["pnl_absolute"]), 2), \
        (ys[-1], report["pnl_absolute"])


def test_on_a_short_screen_pending_orders_is_a_tab_and_the_fills_keep_whole_rows(
        make_window, qtbot):
    """At 1280x720 Position stacked over Pending orders left the fills table 1.5 rows."""
    w = make_window()
    qtbot.waitExposed(w)
    w.resize(1152, 648)  # 90% of a 1280x720 screen, as the window opens there
    w._default_dock_sizes()
    qtbot.wait(50)
    assert w.compact_layout, w.size()
    assert w.orders_dock in w.tabifiedDockWidgets(w.log_dock)
    row = w.fills_panel.view.verticalHeader().defaultSectionSize()
    assert w.fills_panel.view.viewport().height() >= 3 * row, \
        (w.fills_panel.view.viewport().height(), row)
    assert w.orders_dock.windowTitle() == "Pending orders"
    w.orders_table.add_order({"order_id": "o1", "side": "BUY", "reason": "entry",
                              "qty": "0.010", "signal_px": "87000", "signal_ts": 0,
                              "due_ts": 1000})
    assert w.orders_dock.windowTitle() == "Pending orders (1)"
    w.orders_table.remove_order("o1")
    assert w.orders_dock.windowTitle() == "Pending orders"


def test_at_1280_wide_the_run_id_stays_whole_beside_busy_indicators(make_window, qtbot):
    """The status line gives way (ending in "…", the whole line in its tooltip); the run id
    is whole in the chart's header."""
    w = make_window()
    w.set_toolbar(source="replay", speed=60, duration_min=10)
    assert w.start_session()
    run_id = w.controller.run_id
    w.resize(1152, 648)  # the window on a 1280x720 screen
    qtbot.waitUntil(lambda: w.chart.candle_count > 0, timeout=20_000)
    w.indicators.set_health({
        "feed_state": "reconnecting", "reconnects": 12, "source": "replay",
        "last_message_age_s": 12.3, "queue_depth": 1000, "queue_max": 1000, "dropped": 1234,
        "breaker_state": "half_open", "restarts": 3, "duration_ms": 36_000_000,
        "remaining_ms": 35_999_000, "speed": 60.0})
    qtbot.wait(100)
    hint = w.chart.hint_label
    assert hint.text() == f"run {run_id}"
    assert hint.isVisible() and hint.width() >= hint.sizeHint().width(), \
        (hint.width(), hint.sizeHint().width())
    shown = w.run_label.shown_text()
    assert shown == w.run_label.text() or shown.endswith("…"), shown
    assert w.run_label.toolTip().startswith(w.run_label.text())


def test_the_readme_strategy_chosen_in_settings_runs_from_the_window(make_window, qtbot, gui_env,
                                                                     monkeypatch):
    """Settings › Strategy: the README's example, copied into the strategies folder, picked
    in the real dialog and started from the window, is what the session runs."""
    from PySide6.QtWidgets import QDialog

    import gui.main_window as mw
    from gui.settings_dialog import SettingsDialog, strategies_dir
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (example,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S)
                  if "class Breakout" in b]
    folder = strategies_dir()
    folder.mkdir(parents=True)
    (folder / "my_breakout.py").write_text(example, encoding="utf-8")
    ref = f"{folder / 'my_breakout.py'}:Breakout"

    class PickIt(SettingsDialog):  # the real dialog: the user picks the file and a lookback
        def exec(self):
            combo = self.editors["strategy"]
            combo.setCurrentIndex(combo.findData(ref))
            self.editors["param.lookback"].setText("5")
            assert self.ok_button.isEnabled(), self.problems_label.text()
            return QDialog.Accepted
    monkeypatch.setattr(mw, "SettingsDialog", PickIt)
    w = make_window()
    w.open_settings()
    w.set_toolbar(source="replay", replay_file=None, speed=math.inf, duration_min=120,
                  latency_ms=1000)
    with qtbot.waitSignal(w.sessionFinished, timeout=60_000) as finished:
        assert w.start_session()
    code, run_dir = finished.args
    assert code == 0
    report = _report(run_dir)
    assert (report["strategy"], report["strategy_ref"]) == ("breakout", ref)
    assert report["strategy_params"] == {"lookback": 5, "hold": 5}
    assert report["fills"] >= 2  # it traded
