"""Settings dialog, settings file, report window and history window (pytest-qt, offscreen)."""
from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from gui import report_window as report_module
from gui.history_window import HistoryWindow
from gui.report_window import ReportWindow
from gui.settings_dialog import (BREAKER_FIELDS, AppSettings, SettingsDialog, load_settings,
                                 save_settings, settings_path)
from storage.journal import Journal
from storage.reports import FILL_COLUMNS, read_report, write_run_reports
from trading.broker import BrokerConfig
from trading.risk import BreakerConfig
from trading.runtime.session import Session, SessionConfig
from tests.conftest import read_log
from trading.strategies.ema_momentum import EmaMomentum
from trading.strategy import EntryOrders


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    d = tmp_path / "config"
    monkeypatch.setenv("BTC_LAPTOP_CONFIG_DIR", str(d))
    return d


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real replay runs in one data dir: a successful one, then an error one."""
    from storage.logger import temporary_logging
    data = tmp_path_factory.mktemp("sessions") / "data"
    data.mkdir()
    with temporary_logging(data, console=False):
        ok = Session(SessionConfig(data_dir=data, source="replay", speed=math.inf,
                                   duration_min=10, replay_start_index=700))
        assert ok.run() == 0
        bad = Session(SessionConfig(data_dir=data, source="replay", speed=math.inf,
                                    duration_min=10, replay_start_index=700,
                                    inject_strategy_error_at=2))
        assert bad.run() == 1
    return {"data": data, "ok": Path(ok.run_dir), "error": Path(bad.run_dir),
            "ok_id": ok.run_id, "error_id": bad.run_id}


def _type(qtbot, editor, text):
    editor.selectAll()
    editor.clear()
    qtbot.keyClicks(editor, text)


def _expected_pnl(value) -> str:
    return f"{Decimal(repr(value)):+,.2f} USDT"


# ------------------------------------------------------------------------ settings dialog

def test_dialog_refuses_bad_risk_per_trade_until_fixed(qtbot):
    dialog = SettingsDialog(AppSettings())
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.ok_button.isEnabled()
    assert not dialog.problems_label.isVisibleTo(dialog)

    editor = dialog.editors["risk_per_trade"]
    _type(qtbot, editor, "0.9")
    assert not dialog.ok_button.isEnabled()
    assert dialog.problems_label.isVisibleTo(dialog)
    assert dialog.problems_label.text() == "risk_per_trade must be in (0, 0.5]"
    assert editor.property("invalid") is True
    assert dialog.editors["taker_fee_bps"].property("invalid") is not True

    _type(qtbot, editor, "0.01")
    assert dialog.ok_button.isEnabled()
    assert not dialog.problems_label.isVisibleTo(dialog)
    assert editor.property("invalid") is False
    assert dialog.settings().risk_per_trade == 0.01


def test_dialog_flags_each_bad_field_with_its_reason(qtbot):
    dialog = SettingsDialog(AppSettings())
    qtbot.addWidget(dialog)
    _type(qtbot, dialog.editors["taker_fee_bps"], "abc")
    _type(qtbot, dialog.editors["starting_balance"], "0")
    _type(qtbot, dialog.editors["param.slow"], "2")  # not above fast (3)
    _type(qtbot, dialog.editors["param.hold_bars"], "two")
    dialog.editors["max_rejects"].setValue(0)
    problems = dialog.problems()
    assert set(problems) == {"taker_fee_bps", "starting_balance", "param.fast",
                             "param.hold_bars", "max_rejects"}
    assert problems["taker_fee_bps"] == ["must be a number"]
    assert problems["starting_balance"] == ["must be > 0 and <= 1e+12"]
    assert problems["param.fast"] == ["must be below slow (2)"]
    assert problems["param.hold_bars"] == ["expected an integer, got 'two'"]
    assert dialog.editors["param.fast"].property("invalid") is True
    text = dialog.problems_label.text()
    assert "fast must be below slow (2)" in text
    assert "hold_bars: expected an integer, got 'two'" in text
    for name in problems:
        assert name.removeprefix("param.") in text
    assert not dialog.ok_button.isEnabled()
    # OK does nothing while invalid
    dialog.buttons.accepted.emit()
    assert dialog.result() == 0


def test_dialog_round_trips_settings_and_restores_defaults(qtbot, config_dir):
    start = AppSettings(symbol="ETHUSDT", starting_balance="2500.5", risk_per_trade=0.01,
                        latency_ms=250, strategy_params={**EmaMomentum.params, "fast": 5,
                                                         "slow": 21},
                        speed=math.inf, source="replay", cooldown_s=30.0)
    dialog = SettingsDialog(start)
    qtbot.addWidget(dialog)
    assert dialog.editors["speed"].text() == "max"
    assert dialog.settings() == start
    assert dialog.ok_button.isEnabled()

    assert dialog.editors["param.fast"].text() == "5"
    qtbot.mouseClick(dialog.restore_button, Qt.MouseButton.LeftButton)
    assert dialog.settings() == AppSettings(strategy_params=dict(EmaMomentum.params))
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert not config_dir.exists()  # accepting saves nothing by itself


def test_dialog_disables_replay_fields_for_live_source(qtbot):
    dialog = SettingsDialog(AppSettings(replay_file="/no/such/file.csv", source="replay"))
    qtbot.addWidget(dialog)
    assert dialog.problems()["replay_file"] == ["no such file: /no/such/file.csv"]
    combo = dialog.editors["source"]
    combo.setCurrentIndex(combo.findData("bitunix"))
    assert combo.currentText() == "Bitunix (live)"
    assert not dialog.editors["replay_file"].isEnabled()
    assert "replay_file" not in dialog.problems()
    assert dialog.ok_button.isEnabled()


def test_dialog_sets_limit_entries_and_greys_their_fields_for_market(qtbot, tmp_path):
    dialog = SettingsDialog(AppSettings())
    qtbot.addWidget(dialog)
    dialog.show()
    kind, tif = dialog.editors["order_type"], dialog.editors["limit_tif"]
    assert kind.currentText() == "Market"
    for name in ("limit_offset_bps", "limit_timeout_s", "limit_tif"):
        assert not dialog.editors[name].isEnabled()  # meaningless for market entries
    assert dialog.editors["limit_timeout_s"].text() == "30"

    kind.setCurrentIndex(kind.findData("limit"))
    assert kind.currentText() == "Limit"
    for name in ("limit_offset_bps", "limit_timeout_s", "limit_tif"):
        assert dialog.editors[name].isEnabled()
    tif.setCurrentIndex(tif.findData("POST_ONLY"))
    assert tif.currentText() == "Post-only (maker only)"
    _type(qtbot, dialog.editors["limit_offset_bps"], "2000")
    assert dialog.problems() == {"limit_offset_bps": ["must be in [-100, 1000]"]}
    assert dialog.problems_label.text() == "limit_offset_bps must be in [-100, 1000]"
    assert not dialog.ok_button.isEnabled()
    _type(qtbot, dialog.editors["limit_offset_bps"], "1.5")
    _type(qtbot, dialog.editors["limit_timeout_s"], "45")
    assert dialog.ok_button.isEnabled()
    s = dialog.settings()
    assert (s.order_type, s.limit_offset_bps, s.limit_timeout_s, s.limit_tif) == (
        "limit", 1.5, 45.0, "POST_ONLY")
    cfg = s.to_session_config(tmp_path)
    assert cfg.entry == EntryOrders(order_type="limit", limit_offset_bps=1.5,
                                    limit_timeout_s=45.0, limit_tif="POST_ONLY")
    # a saved file with a bad value is refused by name, as typed would be
    with pytest.raises(ValueError, match="limit_tif: expected text"):
        AppSettings.from_dict({"limit_tif": 3})
    assert AppSettings(order_type="stop").validate() == [
        "order_type: must be market or limit"]


def test_dialog_runs_a_backtest_as_the_peers_do_fixed_qty_no_breaker_no_flatten(
        qtbot, tmp_path):
    """The options of a peer-like backtest are fields: a fixed quantity, the breaker off
    (its limits greyed out), no flatten at the end, the file from its first row."""
    dialog = SettingsDialog(AppSettings())
    qtbot.addWidget(dialog)
    dialog.show()
    ed = dialog.editors
    qty, breaker = ed["fixed_qty"], ed["breaker_enabled"]
    flatten, first = ed["flatten_at_end"], ed["replay_from_start"]
    # what a person sees: an empty quantity saying how entries are sized, ticked boxes
    assert qty.text() == "" and qty.placeholderText() == "by risk"
    assert dialog.unit_labels["fixed_qty"].text() == "BTC"
    assert breaker.text() == "on" and breaker.isChecked() and breaker.isVisible()
    assert flatten.text() == "close the open position" and flatten.isChecked()
    assert first.text() == "the file's first row" and not first.isChecked()
    for box in (breaker, flatten, first):  # the box's words are not cut off
        assert box.width() >= box.sizeHint().width()
    assert all(ed[n].isEnabled() for n in BREAKER_FIELDS)

    _type(qtbot, qty, "0.0005")  # not a multiple of the lot
    assert dialog.problems()["fixed_qty"][0].startswith("must be a multiple of the lot size")
    assert not dialog.ok_button.isEnabled()
    _type(qtbot, qty, "a lot")
    assert dialog.problems() == {
        "fixed_qty": ["must be a quantity in BTC, or empty (sized by risk)"]}
    _type(qtbot, qty, "0.1")
    breaker.setChecked(False)
    assert not any(ed[n].isEnabled() for n in BREAKER_FIELDS)  # meaningless without it
    flatten.setChecked(False)
    first.setChecked(True)
    assert dialog.ok_button.isEnabled() and dialog.problems() == {}
    s = dialog.settings()
    assert (s.fixed_qty, s.breaker_enabled, s.flatten_at_end, s.replay_from_start) == (
        "0.1", False, False, True)
    cfg = s.to_session_config(tmp_path)
    assert cfg.broker.fixed_qty == Decimal("0.1")
    assert (cfg.breaker_enabled, cfg.flatten_at_end, cfg.replay_from_start) == (
        False, False, True)
    # saved and read back, the same; shown again, the same
    path = save_settings(s, tmp_path / "settings.json")
    again, problem = load_settings(path)
    assert problem is None and again == s
    shown = SettingsDialog(again)
    qtbot.addWidget(shown)
    assert shown.editors["fixed_qty"].text() == "0.1"
    assert not shown.editors["breaker_enabled"].isChecked()
    assert not shown.editors["max_rejects"].isEnabled()
    # live data has no first row: the box is greyed out and not used (kept for a replay),
    # and it does not block OK (a greyed-out box cannot be unticked)
    src = shown.editors["source"]
    src.setCurrentIndex(src.findData("bitunix"))
    assert not shown.editors["replay_from_start"].isEnabled()
    assert shown.editors["replay_from_start"].isChecked()
    assert shown.problems() == {} and shown.ok_button.isEnabled()
    live = shown.settings()
    assert live.replay_from_start is True
    assert live.to_session_config(tmp_path).replay_from_start is False
    # a settings file is judged as strictly as typing
    with pytest.raises(ValueError, match="breaker_enabled: expected true or false, got str"):
        AppSettings.from_dict({"breaker_enabled": "no"})
    with pytest.raises(ValueError, match="fixed_qty: expected a quantity"):
        AppSettings.from_dict({"fixed_qty": [1]})
    assert AppSettings.from_dict({"fixed_qty": None}).fixed_qty == ""


def test_command_line_flags_set_the_backtest_fields():
    import main
    from gui.app import cli_overrides
    argv = ["--fixed-qty", "0.2", "--no-breaker", "--no-flatten", "--replay-from-start",
            "--duration", "30"]
    args = main.build_parser().parse_args(argv)
    out = cli_overrides(args, argv)
    assert {k: out[k] for k in ("fixed_qty", "breaker_enabled", "flatten_at_end",
                                "replay_from_start")} == {
        "fixed_qty": "0.2", "breaker_enabled": False, "flatten_at_end": False,
        "replay_from_start": True}
    plain = main.build_parser().parse_args(["--duration", "30"])
    assert "breaker_enabled" not in cli_overrides(plain, ["--duration", "30"])


# ------------------------------------------------------------------------ AppSettings

def test_defaults_come_from_the_engine():
    s = AppSettings()
    assert s.validate() == []
    assert Decimal(s.starting_balance) == BrokerConfig().starting_cash
    assert s.risk_per_trade == BrokerConfig().risk_per_trade == 0.005
    assert s.window_s == BreakerConfig().window_s
    assert (s.strategy, s.strategy_params, s.order_type) == ("ema_momentum", {},
                                                             EntryOrders().order_type)
    assert (s.source, s.duration_min, s.speed, s.replay_file) == ("auto", 10.0, 1.0, None)


def test_validate_reports_every_bad_field():
    s = AppSettings(symbol="b", starting_balance="lots", risk_per_trade=0.9, taker_fee_bps=-1,
                    latency_ms=-5, max_rejects=0, cooldown_s=0.0,
                    strategy_params={"fast": 3, "slow": 2},
                    duration_min=0.0, speed=0.0, source="moon")
    problems = s.validate()
    assert sorted(p.split(":")[0] for p in problems) == sorted([
        "symbol", "starting_balance", "risk_per_trade", "taker_fee_bps", "latency_ms",
        "max_rejects", "cooldown_s", "param.fast", "duration_min", "speed", "source"])
    assert "risk_per_trade: must be in (0, 0.5]" in problems
    assert "max_rejects: must be an integer >= 1" in problems
    assert "param.fast: must be below slow (2)" in problems
    assert "starting_balance: must be a number (USDT)" in problems
    assert AppSettings(speed=math.inf).validate() == []


def test_to_session_config_builds_the_engine_configs(tmp_path):
    s = AppSettings(starting_balance="2500.50", risk_per_trade=0.01, taker_fee_bps=5.5,
                    latency_ms=250, max_session_loss_pct=2.5, strategy="sma_cross",
                    strategy_params={"fast": 5}, speed=math.inf, source="replay",
                    duration_min=3.0)
    cfg = s.to_session_config(tmp_path)
    assert isinstance(cfg, SessionConfig)
    assert cfg.data_dir == tmp_path
    assert (cfg.source, cfg.duration_min, cfg.speed, cfg.replay_file) == ("replay", 3.0,
                                                                          math.inf, None)
    assert cfg.broker == BrokerConfig(starting_cash=Decimal("2500.50"), risk_per_trade=0.01,
                                      taker_fee_bps=5.5, latency_ms=250)
    assert cfg.breaker == BreakerConfig(max_session_loss_pct=2.5)
    assert (cfg.strategy, cfg.strategy_params, cfg.entry) == ("sma_cross",
                                                              {"fast": 5, "slow": 30},
                                                              EntryOrders())

    with pytest.raises(ValueError, match=r"risk_per_trade: must be in \(0, 0.5\]"):
        AppSettings(risk_per_trade=0.0).to_session_config(tmp_path)


def test_from_dict_ignores_unknown_keys_and_names_wrong_types():
    s = AppSettings.from_dict({"risk_per_trade": 0.02, "speed": "max", "future_option": 1,
                               "latency_ms": 500.0, "starting_balance": 1234})
    assert (s.risk_per_trade, s.speed, s.latency_ms, s.starting_balance) == (0.02, math.inf,
                                                                             500, "1234")
    for bad, field in (({"risk_per_trade": "high"}, "risk_per_trade"),
                       ({"strategy_params": [2.5]}, "strategy_params"),
                       ({"strategy": 5}, "strategy"), ({"symbol": 5}, "symbol"),
                       ({"speed": "fast"}, "speed"), ({"max_rejects": True}, "max_rejects")):
        with pytest.raises(ValueError, match=f"^{field}: "):
            AppSettings.from_dict(bad)
    assert AppSettings.from_dict(AppSettings(speed=math.inf).to_dict()) == AppSettings(
        speed=math.inf)
    # a file from before strategies were files: its parameters are the default strategy's,
    # checked as typed ones would be
    old = AppSettings.from_dict({"fast": 2.5, "slow": 9})
    assert (old.strategy, old.strategy_params) == ("ema_momentum", {"fast": 2.5, "slow": 9})
    assert old.validate() == ["param.fast: expected an integer, got 2.5"]


# ------------------------------------------------------------------------ settings file

def test_settings_path_follows_the_env_override(config_dir):
    assert settings_path() == config_dir / "settings.json"


def test_save_and_load_round_trip(config_dir):
    assert load_settings() == (AppSettings(), None)  # missing file: defaults, no message
    s = AppSettings(symbol="ETHUSDT", starting_balance="123.45", speed=math.inf,
                    strategy="sma_cross", strategy_params={"fast": 4, "slow": 40},
                    replay_file=None, cooldown_s=60.0)
    path = save_settings(s)
    assert path == config_dir / "settings.json"
    assert json.loads(path.read_text())["speed"] == "max"
    assert load_settings() == (s, None)
    assert [p.name for p in config_dir.iterdir()] == ["settings.json"]  # no temp file left
    with pytest.raises(ValueError, match="risk_per_trade"):
        save_settings(AppSettings(risk_per_trade=2.0))


def test_corrupt_settings_are_moved_aside_never_overwritten(config_dir, data_dir):
    config_dir.mkdir()
    path = config_dir / "settings.json"
    path.write_text("{broken")
    settings, message = load_settings()
    assert settings == AppSettings()
    assert str(path) in message and "settings.json.corrupt" in message
    assert not path.exists()
    assert (config_dir / "settings.json.corrupt").read_text() == "{broken"
    logged = [e for e in read_log(data_dir) if e.get("message") == "settings_corrupt"]
    assert len(logged) == 1 and logged[0]["level"] == "CRITICAL"
    assert logged[0]["corrupt_path"] == str(config_dir / "settings.json.corrupt")

    path.write_text(json.dumps({"risk_per_trade": 0.9}))  # valid JSON, invalid value
    settings, message = load_settings()
    assert settings == AppSettings()
    assert "risk_per_trade: must be in (0, 0.5]" in message
    assert (config_dir / "settings.json.corrupt").read_text() == "{broken"
    assert json.loads((config_dir / "settings.json.corrupt.1").read_text()) == {
        "risk_per_trade": 0.9}

    path.write_text(json.dumps({"fast": "three"}))  # wrong type
    settings, message = load_settings()
    assert settings == AppSettings() and "fast: expected an integer, got 'three'" in message
    assert (config_dir / "settings.json.corrupt.2").exists()


# ------------------------------------------------------------------------ report window

def test_report_window_shows_a_real_run(qtbot, runs):
    report = read_report(runs["ok"])
    window = ReportWindow(runs["ok"])
    qtbot.addWidget(window)
    window.show()
    assert window.report == report
    assert window.windowTitle() == f"Session report \u2014 {report['run_id']}"
    assert window.pnl_label.text() == _expected_pnl(report["pnl_absolute"])
    assert window.status_label.text() == "SUCCESS"
    assert not window.error_label.isVisibleTo(window)

    table = window.fills_table
    assert report["fills"] > 0
    assert table.rowCount() == report["fills"]
    heads = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert heads == list(report_module.FILL_VIEW_COLUMNS)
    assert sorted(heads) == sorted(FILL_COLUMNS)  # every column of fills.csv, once
    # the order's size and liquidity beside the fill's qty, depth beside spread
    assert heads[3:8] == ["qty", "order_qty", "order_filled", "order_type", "liquidity"]
    assert heads.index("depth_cost_bps") == heads.index("spread_cost_bps") + 1
    seq = heads.index("seq")
    assert [table.item(r, seq).text() for r in range(table.rowCount())] == [
        str(i) for i in range(1, report["fills"] + 1)]
    # sorting is numeric, not textual
    px = heads.index("fill_px")
    table.sortItems(px, Qt.SortOrder.DescendingOrder)
    prices = [float(table.item(r, px).text().replace(",", "")) for r in range(table.rowCount())]
    assert prices == sorted(prices, reverse=True)

    tree = window.fields_tree
    keys = [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())]
    assert keys == list(report)
    segments = tree.topLevelItem(keys.index("segments"))
    assert segments.childCount() == len(report["segments"])
    assert segments.child(0).childCount() == len(report["segments"][0])

    assert window.equity_source == "journal"
    assert len(window.equity_points) >= 2
    assert window.equity_points[-1][1] == pytest.approx(report["final_equity"], abs=0.01)
    assert window.open_summary_button.isEnabled() and window.open_folder_button.isEnabled()


def test_report_window_opens_summary_and_folder(qtbot, runs, monkeypatch):
    opened = []
    monkeypatch.setattr(report_module, "open_local_path",
                        lambda path, parent=None: opened.append(path))
    window = ReportWindow(runs["ok"])
    qtbot.addWidget(window)
    qtbot.mouseClick(window.open_summary_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(window.open_folder_button, Qt.MouseButton.LeftButton)
    assert opened == [runs["ok"] / "summary.html", runs["ok"]]


def test_report_window_shows_an_error_run(qtbot, runs):
    report = read_report(runs["error"])
    assert report["status"] == "error" and report["error"]
    window = ReportWindow(runs["error"])
    qtbot.addWidget(window)
    window.show()
    assert window.status_label.text() == "ERROR"
    assert window.error_label.isVisibleTo(window)
    assert window.error_label.text() == f"Error: {report['error']}"
    assert "injected strategy error" in window.error_label.text()
    assert window.pnl_label.text() == _expected_pnl(report["pnl_absolute"])
    assert window.fills_table.rowCount() == report["fills"]


def test_report_window_reads_latest(qtbot, runs):
    window = ReportWindow(runs["data"] / "runs" / "latest")
    qtbot.addWidget(window)
    assert window.run_id == runs["error_id"]
    assert window.equity_source == "journal"  # data dir found from runs/latest too


def test_report_window_with_no_fills_and_no_journal(qtbot, tmp_path):
    report = {"status": "success", "exit_code": 0, "run_id": "quiet-run", "pnl_absolute": 0.0,
              "starting_equity": 10000.0, "final_equity": 10000.0, "fills": 0,
              "data_start": "2026-01-01T11:40:00.000+00:00",
              "data_end": "2026-01-01T11:45:00.000+00:00", "segments": [], "error": None}
    run_dir = write_run_reports(tmp_path / "runs", "quiet-run", report=report, fills=[],
                                candles=[], equity=[], settings={}, feed={})
    window = ReportWindow(run_dir)
    qtbot.addWidget(window)
    assert window.fills_table.rowCount() == 0
    assert window.no_fills_label.text().startswith("No fills")
    assert window.pnl_label.text() == "0.00 USDT"
    assert window.equity_source == "fills"
    assert [p[1] for p in window.equity_points] == [10000.0, 10000.0]


def test_report_window_says_realized_is_before_fees_and_wins_after(qtbot, tmp_path):
    # a green realized +0.56 next to "Win rate 0.0 %" must not read as a contradiction
    report = {"status": "success", "exit_code": 0, "run_id": "fee-run", "pnl_absolute": -11.35,
              "starting_equity": 10000.0, "final_equity": 9988.65, "fills": 2,
              "realized_pnl": 0.565, "fees": 11.907, "round_trips": 1, "round_trips_won": 0,
              "win_rate": 0.0, "segments": [], "error": None}
    run_dir = write_run_reports(tmp_path / "runs", "fee-run", report=report, fills=[],
                                candles=[], equity=[], settings={}, feed={})
    window = ReportWindow(run_dir)
    qtbot.addWidget(window)
    window.show()
    assert window.stat_values["REALIZED PNL"].text() == "+0.56"
    assert window.stat_notes["REALIZED PNL"].text() == "USDT before fees"
    assert window.stat_values["WIN RATE"].text() == "0.0 %"
    assert window.stat_notes["WIN RATE"].text() == "0 of 1 won after fees"
    note = window.stat_notes["WIN RATE"]
    assert note.isVisible() and note.width() >= note.sizeHint().width()  # not clipped


def test_report_window_survives_a_missing_report(qtbot, tmp_path):
    window = ReportWindow(tmp_path / "runs" / "gone")
    qtbot.addWidget(window)
    assert window.report == {}
    assert window.error_label.isVisibleTo(window)
    assert window.error_label.text().startswith("Error: Could not read")
    assert window.status_label.text() == "UNKNOWN"
    assert not window.open_summary_button.isEnabled()


# ------------------------------------------------------------------------ history window

def test_history_lists_runs_newest_first_and_opens_reports(qtbot, runs):
    window = HistoryWindow(runs["data"] / "journal.sqlite3")
    qtbot.addWidget(window)
    window.show()
    assert window.run_ids() == [runs["error_id"], runs["ok_id"]]
    assert window.table.item(0, 4).text() == "ERROR"
    assert window.table.item(1, 4).text() == "SUCCESS"
    ok_report = read_report(runs["ok"])
    assert window.table.item(1, 6).text() == _expected_pnl(ok_report["pnl_absolute"])
    assert window.selected_run_id() == runs["error_id"]
    assert window.open_button.isEnabled()

    opened = window.open_report(runs["ok_id"])
    assert isinstance(opened, ReportWindow)
    assert opened.run_id == runs["ok_id"]
    assert opened.isVisible()

    rect = window.table.visualItemRect(window.table.item(0, 1))
    # an item view acts on a double click only after the press that selects the item
    qtbot.mouseClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert [w.run_id for w in window.report_windows] == [runs["ok_id"], runs["error_id"]]

    window.table.sortItems(0, Qt.SortOrder.AscendingOrder)
    assert window.run_ids() == [runs["ok_id"], runs["error_id"]]
    qtbot.mouseClick(window.refresh_button, Qt.MouseButton.LeftButton)
    assert window.run_ids() == [runs["error_id"], runs["ok_id"]]
    for w in list(window.report_windows):
        w.close()


def test_history_without_a_journal_says_no_sessions(qtbot, tmp_path):
    path = tmp_path / "journal.sqlite3"
    window = HistoryWindow(path)
    qtbot.addWidget(window)
    window.show()
    assert window.table.rowCount() == 0
    assert window.empty_label.isVisible()
    assert window.empty_label.text().startswith("No sessions yet")
    assert not window.open_button.isEnabled()
    assert not path.exists()  # looking did not create a journal


def test_history_explains_a_missing_report_folder(qtbot, tmp_path):
    path = tmp_path / "journal.sqlite3"
    with Journal.open(path) as journal:
        journal.start_session("old-run", started_ts=1_700_000_000_000, source="replay",
                              symbol="BTCUSDT", status="success", exit_code=0,
                              pnl_absolute="1.5", report_dir=str(tmp_path / "runs" / "old-run"),
                              stopped_reason="duration reached")
    window = HistoryWindow(path)
    qtbot.addWidget(window)
    assert window.run_ids() == ["old-run"]
    assert window.table.item(0, 6).text() == "+1.50 USDT"
    assert not window.open_button.isEnabled()
    assert "no longer exists" in window.detail_label.text()
    assert window.open_report("old-run") is None


def test_open_buttons_say_so_when_nothing_can_open_the_file(qtbot, tmp_path, monkeypatch):
    """No desktop opener (a bare system): a visible error with the path, not a silent no-op."""
    from PySide6.QtGui import QDesktopServices

    import gui.report_window as rw
    shown = []
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: False))
    monkeypatch.setattr(rw, "show_open_failure", lambda parent, path, why: shown.append(
        (path, why)))
    page = tmp_path / "summary.html"
    page.write_text("<html></html>")
    assert rw.open_local_path(page) is False
    assert shown[-1][0] == page and "no application" in shown[-1][1]
    assert rw.open_local_path(tmp_path / "gone") is False
    assert "does not exist" in shown[-1][1]


def test_the_open_failure_dialog_shows_the_path(qtbot, tmp_path):
    from PySide6.QtWidgets import QApplication, QMessageBox

    import gui.report_window as rw
    rw.show_open_failure(None, tmp_path / "summary.html", "no application opens it")
    qtbot.waitUntil(lambda: any(isinstance(w, QMessageBox) and w.isVisible()
                                for w in QApplication.topLevelWidgets()), timeout=5000)
    box = next(w for w in QApplication.topLevelWidgets()
               if isinstance(w, QMessageBox) and w.isVisible())
    assert str(tmp_path / "summary.html") in box.informativeText()
    assert "Cannot open summary.html" in box.text()
    box.close()


def test_report_and_history_repaint_in_the_dark_scheme(qtbot, runs):
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QApplication

    from gui import theme
    rw = ReportWindow(runs["ok"])
    hw = HistoryWindow(runs["data"] / "journal.sqlite3", data_dir=runs["data"])
    qtbot.addWidget(rw)
    qtbot.addWidget(hw)
    rw.show()
    hw.show()
    qtbot.waitExposed(rw)
    pnl_before = rw.pnl_label.text()
    assert QColor(rw.equity_plot.backgroundBrush().color()).lightnessF() > 0.9
    theme.apply_theme(QApplication.instance(), "dark")
    # the report is rebuilt from the same run: same figures, dark colours
    assert rw.pnl_label.text() == pnl_before
    assert rw.pnl_label.isVisible()
    assert QColor(rw.equity_plot.backgroundBrush().color()).lightnessF() < 0.25
    assert theme.DARK.BG in rw.styleSheet() and theme.LIGHT.BG not in rw.styleSheet()
    status_col = [hw.table.horizontalHeaderItem(c).text()
                  for c in range(hw.table.columnCount())].index("Status")
    colours = {hw.table.item(r, status_col).text():
               hw.table.item(r, status_col).foreground().color().name()
               for r in range(hw.table.rowCount())}
    assert colours == {"SUCCESS": theme.DARK.OK_TEXT, "ERROR": theme.DARK.ERR_TEXT}, colours
    assert theme.DARK.BG in hw.styleSheet()


def test_dialog_lists_the_strategies_folder_and_shows_each_ones_parameters(qtbot, config_dir):
    import re as _re
    from gui.settings_dialog import strategies_dir
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    (example,) = [b for b in _re.findall(r"```python\n(.*?)```", readme, _re.S)
                  if "class Breakout" in b]
    folder = strategies_dir()
    folder.mkdir(parents=True)
    (folder / "my_breakout.py").write_text(example, encoding="utf-8")
    (folder / "broken.py").write_text(example.replace("def warm_up(self, candles):",
                                                      "def warm_up(self, candles)"))
    dialog = SettingsDialog(AppSettings())
    qtbot.addWidget(dialog)
    dialog.show()
    combo = dialog.editors["strategy"]
    items = [combo.itemText(i) for i in range(combo.count())]
    assert items == ["ema_momentum (built-in)", "sma_cross (built-in)",
                     "broken.py (does not parse)", "my_breakout.py: Breakout"]
    assert sorted(n for n in dialog.editors if n.startswith("param.")) == sorted(
        f"param.{k}" for k in EmaMomentum.params)
    assert dialog.editors["param.fast"].isVisible()

    combo.setCurrentIndex(combo.findData(f"{folder / 'my_breakout.py'}:Breakout"))
    params = sorted(n for n in dialog.editors if n.startswith("param."))
    assert params == ["param.hold", "param.lookback"]  # no rows left from the last one
    assert dialog.editors["param.lookback"].text() == "20"
    form = dialog._strategy_form
    shown = {form.labelForField(form.itemAt(r, form.ItemRole.FieldRole).widget()).text()
             for r in range(1, form.rowCount())}
    helps = _re.search(r"param_help = \{[^}]*\}", example)
    if helps is None:  # the file describes no parameter: its names, as words
        assert shown == {"Lookback:", "Hold:"}
    else:
        assert len(shown) == 2 and all(t.endswith(":") for t in shown)
    # rows added to a shown dialog are shown by the next turn of the event loop
    qtbot.waitUntil(dialog.editors["param.lookback"].isVisible, timeout=1000)
    _type(qtbot, dialog.editors["param.lookback"], "30")
    assert dialog.ok_button.isEnabled()
    s = dialog.settings()
    assert (s.strategy, s.strategy_params) == (f"{folder / 'my_breakout.py'}:Breakout",
                                               {"lookback": 30, "hold": 5})

    combo.setCurrentIndex(combo.findData(str(folder / "broken.py")))
    assert not dialog.ok_button.isEnabled()
    line = next(i for i, t in enumerate(example.splitlines(), 1)
                if t.startswith("    def warm_up(self, candles)"))
    assert (f"{folder / 'broken.py'} (line {line}): syntax error"
            in dialog.problems_label.text())
    assert combo.property("invalid") is True
