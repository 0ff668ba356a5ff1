"""Untrusted files and a shared data dir, as the window meets them (pytest-qt, offscreen).

A corrupt settings.json never stops the window and is kept aside; a data dir another process
holds refuses a second window with a message naming the holder; History finds a run's report
under this data dir even when the journal's report_dir is redacted, and survives a bad report.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

import gui.app as app_module
from gui.history_window import COLUMNS, HistoryWindow
from gui.report_window import ReportWindow
from gui.settings_dialog import MAX_SETTINGS_BYTES, AppSettings, load_settings
from storage.journal import Journal
from storage.reports import FINAL_REPORT_NAME, write_run_reports
from tests.conftest import ROOT, read_log
from trading.runtime.session import SessionConfig

NESTED = "[" * 100_000 + "]" * 100_000

# name -> (file content, text the message must contain: the field when there is one)
CORRUPT_SETTINGS = {
    "400-digit int": ('{"latency_ms": ' + "1" * 400 + "}", "latency_ms: number out of range"),
    "400-digit int for a float field": ('{"risk_per_trade": ' + "9" * 400 + "}",
                                        "risk_per_trade: number out of range"),
    "5000-digit int": ('{"window_s": ' + "7" * 5000 + "}", "window_s: number out of range"),
    "1e400": ('{"fast": 1e400}', "fast: number out of range (1e400)"),
    "-1e400 speed": ('{"speed": -1e400}', "speed: number out of range"),
    "100,000 nested brackets": (NESTED, "nested too deeply"),
    "nested in a field": ('{"symbol": ' + NESTED + "}", "nested too deeply"),
    "NaN": ('{"risk_per_trade": NaN}', "NaN"),
    "Infinity": ('{"cooldown_s": Infinity}', "Infinity"),
    "list top level": ('[{"fast": 4}]', "must be a JSON object, got list"),
    "wrong types": ('{"fast": "three", "symbol": 5}', "expected"),
    "bool for an int": ('{"max_rejects": true}', "max_rejects: expected a number"),
    "lower-case symbol": ('{"symbol": "btcusdt"}', "symbol: must be 3-20 upper-case"),
    "non-ASCII symbol": ('{"symbol": "BTCUSD\u0422"}', "symbol: must be 3-20 upper-case"),
    "out of bounds": ('{"latency_ms": 600001}', "latency_ms: must be an integer in [0, 600000]"),
    "2 MB file": ('{"symbol": "' + "A" * 2_000_000 + '"}', "larger than 1 MB"),
    "not UTF-8": (b'{"symbol": "BTC\xff"}', "not UTF-8"),
    "not JSON": ("{broken", "JSONDecodeError"),
}


@pytest.fixture
def config_dir(tmp_path, monkeypatch, data_dir):
    d = tmp_path / "config"
    d.mkdir()
    monkeypatch.setenv("BTC_LAPTOP_CONFIG_DIR", str(d))
    monkeypatch.setenv("BTC_LAPTOP_DATA_DIR", str(data_dir))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return d


def _write(path: Path, content: str | bytes) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def _logged(data_dir: Path, message: str) -> list[dict]:
    return [e for e in read_log(data_dir) if e.get("message") == message]


# ------------------------------------------------------------------------ settings file

@pytest.mark.parametrize("name", list(CORRUPT_SETTINGS))
def test_corrupt_settings_give_defaults_a_message_and_a_kept_copy(name, config_dir, data_dir):
    content, expected = CORRUPT_SETTINGS[name]
    path = config_dir / "settings.json"
    _write(path, content)
    settings, message = load_settings()
    assert settings == AppSettings()
    assert message is not None and expected in message
    assert "default settings are in effect" in message and "settings.json.corrupt" in message
    assert len(message) < 1000  # a 2 MB value is not pasted into the banner
    assert not path.exists()
    kept = config_dir / "settings.json.corrupt"
    assert kept.read_bytes() == (content if isinstance(content, bytes) else
                                 content.encode("utf-8"))
    [record] = _logged(data_dir, "settings_corrupt")
    assert record["level"] == "CRITICAL"
    assert record["path"] == str(path) and record["corrupt_path"] == str(kept)
    assert expected in record["error"]


def test_a_second_corrupt_file_never_overwrites_the_first(config_dir, data_dir):
    path = config_dir / "settings.json"
    path.write_text('{"fast": 1e400}')
    assert load_settings()[1] is not None
    path.write_text(NESTED)
    settings, message = load_settings()
    assert settings == AppSettings() and "settings.json.corrupt.1" in message
    assert (config_dir / "settings.json.corrupt").read_text() == '{"fast": 1e400}'
    assert (config_dir / "settings.json.corrupt.1").read_text() == NESTED
    assert [r["corrupt_path"] for r in _logged(data_dir, "settings_corrupt")] == [
        str(config_dir / "settings.json.corrupt"), str(config_dir / "settings.json.corrupt.1")]


def test_a_file_just_under_the_size_limit_is_parsed(config_dir):
    body = json.dumps({"symbol": "ETHUSDT"})
    padding = MAX_SETTINGS_BYTES - len(body) - 1
    (config_dir / "settings.json").write_text(body[:-1] + " " * padding + "}")
    settings, message = load_settings()
    assert message is None and settings.symbol == "ETHUSDT"


def test_unreadable_settings_are_left_in_place(config_dir, data_dir):
    path = config_dir / "settings.json"
    path.mkdir()  # open() fails with a disk-level error (EISDIR), not with bad content
    settings, message = load_settings()
    assert settings == AppSettings()
    assert "could not be read" in message and "left as it is" in message
    assert "default settings are in effect" in message
    assert path.is_dir() and not (config_dir / "settings.json.corrupt").exists()
    [record] = _logged(data_dir, "settings_unreadable")
    assert record["level"] == "CRITICAL" and record["path"] == str(path)
    assert _logged(data_dir, "settings_corrupt") == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions that apply (root reads anything)")
def test_settings_without_read_permission_are_left_in_place(config_dir, data_dir):
    path = config_dir / "settings.json"
    path.write_text('{"fast": 4}')
    path.chmod(0)
    try:
        settings, message = load_settings()
    finally:
        path.chmod(0o644)
    assert settings == AppSettings() and "PermissionError" in message
    assert path.read_text() == '{"fast": 4}'
    assert not (config_dir / "settings.json.corrupt").exists()
    assert len(_logged(data_dir, "settings_unreadable")) == 1


@pytest.mark.parametrize("name", ["400-digit int", "1e400", "100,000 nested brackets", "NaN",
                                  "list top level", "wrong types", "2 MB file"])
def test_main_window_opens_with_a_corrupt_settings_file(qtbot, name, config_dir, data_dir,
                                                        tmp_path):
    from gui.main_window import MainWindow
    content, expected = CORRUPT_SETTINGS[name]
    _write(config_dir / "settings.json", content)
    qs = QSettings(str(tmp_path / "ui.ini"), QSettings.IniFormat)
    w = MainWindow(SessionConfig(data_dir=data_dir), qsettings=qs)
    try:
        w.show()
        qtbot.waitExposed(w)
        assert w.isVisible()
        assert w.app_settings == AppSettings()
        assert w.settings_warning and expected in w.settings_warning
        assert w.alert_banner.isVisible()
        assert "could not be used" in w.alert_banner.text()
        assert (config_dir / "settings.json.corrupt").exists()
        assert not (config_dir / "settings.json").exists()
        assert _logged(data_dir, "settings_corrupt")[0]["level"] == "CRITICAL"
    finally:
        w.close()
        w.deleteLater()


# ------------------------------------------------------------------------ data-dir lock

HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from storage.lock import acquire_data_dir_lock
    lock = acquire_data_dir_lock(sys.argv[2], command="holder-for-the-test")
    print("locked", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def held_data_dir(tmp_path):
    """A data dir whose lock another live process holds; yields (dir, that process)."""
    d = tmp_path / "held"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT), str(d)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # the child exits (EOF) rather than hang if it fails
        assert line.strip() == "locked", proc.stderr.read()
        yield d, proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_lock_step_refuses_a_held_data_dir_and_names_the_holder(held_data_dir, data_dir,
                                                                monkeypatch, capsys, qapp):
    d, proc = held_data_dir
    shown = []
    monkeypatch.setattr(app_module, "show_locked_dialog", shown.append)
    assert app_module.lock_data_dir(d) is None
    [text] = shown
    assert f"pid {proc.pid}" in text and "holder-for-the-test" in text
    assert text.startswith("The data dir ") and "is in use" in text
    err = capsys.readouterr().err
    assert app_module.LOCKED_TITLE in err and f"pid {proc.pid}" in err
    [record] = _logged(data_dir, "data_dir_locked")
    assert record["level"] == "CRITICAL"
    assert record["holder"]["pid"] == proc.pid and "token" not in record["holder"]

    shown.clear()  # --exit-on-finish: no box, the message still goes to stderr
    assert app_module.lock_data_dir(d, show_dialog=False) is None
    assert shown == [] and f"pid {proc.pid}" in capsys.readouterr().err


def test_lock_step_takes_a_free_data_dir_and_refuses_an_unusable_one(tmp_path, monkeypatch,
                                                                     capsys, data_dir, qapp):
    lock = app_module.lock_data_dir(tmp_path / "free")
    assert lock is not None and lock.fd >= 0
    try:
        held = json.loads((tmp_path / "free" / ".lock.json").read_text())
        assert held["pid"] == os.getpid()
    finally:
        lock.release()
    assert not (tmp_path / "free" / ".lock.json").exists()

    errors = []
    monkeypatch.setattr(app_module, "show_startup_error",
                        lambda title, text, headline=None: errors.append((title, text)))
    (tmp_path / "a-file").write_text("")
    assert app_module.lock_data_dir(tmp_path / "a-file" / "data") is None
    [(title, text)] = errors
    assert title == app_module.DATA_DIR_TITLE
    assert str(tmp_path / "a-file" / "data") in text and "--data-dir" in text
    assert "cannot be created" in capsys.readouterr().err
    assert _logged(data_dir, "data_dir_unusable")[0]["level"] == "CRITICAL"


RUN_GUI = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import gui.app as app_module
    shown = []
    app_module.show_locked_dialog = shown.append
    import main
    code = main.main(["--data-dir", sys.argv[2]])
    from PySide6.QtWidgets import QApplication
    windows = [w.objectName() for w in QApplication.topLevelWidgets()]
    print(json.dumps({"code": code, "shown": shown, "windows": windows}))
""")


def test_run_gui_returns_2_without_a_window_when_the_data_dir_is_held(held_data_dir, tmp_path):
    d, proc = held_data_dir
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "BTC_LAPTOP_CONFIG_DIR": str(tmp_path / "config"),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    done = subprocess.run([sys.executable, "-c", RUN_GUI, str(ROOT), str(d)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["code"] == 2
    [text] = out["shown"]
    assert f"pid {proc.pid}" in text and "is in use" in text
    assert "mainWindow" not in out["windows"]
    assert f"pid {proc.pid}" in done.stderr and "data_dir_locked" in done.stderr


# ------------------------------------------------------------------------ history window

def _report(run_id: str, status: str = "success") -> dict:
    return {"status": status, "exit_code": 0, "run_id": run_id, "pnl_absolute": 2.5,
            "starting_equity": 10000.0, "final_equity": 10002.5, "fills": 0,
            "data_start": "2026-01-01T11:40:00.000+00:00",
            "data_end": "2026-01-01T11:45:00.000+00:00", "segments": [], "error": None}


def _journal_with(data: Path, *sessions: dict) -> Path:
    path = data / "journal.sqlite3"
    with Journal.open(path) as journal:
        for i, s in enumerate(sessions):
            fields = {"started_ts": 1_700_000_000_000 + i * 60_000, "source": "replay",
                      "symbol": "BTCUSDT", "status": "success", "exit_code": 0,
                      "pnl_absolute": "2.5", "stopped_reason": "duration reached", **s}
            journal.start_session(fields.pop("run_id"), **fields)
    return path


def _write_run(data: Path, run_id: str) -> Path:
    return write_run_reports(data / "runs", run_id, report=_report(run_id), fills=[],
                             candles=[], equity=[], settings={}, feed={})


def test_history_opens_a_report_under_runs_when_report_dir_is_redacted(qtbot, tmp_path):
    data = tmp_path / "data"
    run_dir = _write_run(data, "run:2026-01-01")  # the folder name is run_dir_name(run_id)
    assert run_dir.name == "run_2026-01-01"
    path = _journal_with(data, {"run_id": "run:2026-01-01", "report_dir": "[REDACTED]"})
    window = HistoryWindow(path)
    qtbot.addWidget(window)
    window.show()
    assert window.run_ids() == ["run:2026-01-01"]
    assert window.open_button.isEnabled()
    assert window.detail_label.text() == str(run_dir)
    opened = window.open_report("run:2026-01-01")
    assert isinstance(opened, ReportWindow)
    assert opened.run_dir == run_dir and opened.run_id == "run:2026-01-01"
    assert opened.pnl_label.text() == "+2.50 USDT"
    assert window.open_error is None
    opened.close()


def test_history_prefers_this_data_dir_over_a_stale_report_dir(qtbot, tmp_path):
    data, old = tmp_path / "moved", tmp_path / "old"
    here = _write_run(data, "r1")
    elsewhere = _write_run(old, "r2")  # only the journal's path has it
    path = _journal_with(data, {"run_id": "r1", "report_dir": str(old / "runs" / "r1")},
                         {"run_id": "r2", "report_dir": str(elsewhere)},
                         {"run_id": "r3", "report_dir": str(old / "runs" / "r3")})
    window = HistoryWindow(path)
    qtbot.addWidget(window)
    by_id = {s["run_id"]: s for s in window.sessions}
    assert window.run_dir(by_id["r1"]) == here
    assert window.run_dir(by_id["r2"]) == elsewhere  # fallback: it exists
    assert window.run_dir(by_id["r3"]) is None
    assert window.open_report("r3") is None


@pytest.mark.parametrize("content, expected", [
    (NESTED, "nested too deeply"),
    ("[1, 2]", "does not hold a JSON object"),
    (b"\xff\xfe{}", "UnicodeDecodeError"),
    ("{", "JSONDecodeError"),
])
def test_history_shows_a_bad_report_instead_of_crashing(qtbot, tmp_path, content, expected):
    data = tmp_path / "data"
    run_dir = _write_run(data, "bad-run")
    _write(run_dir / FINAL_REPORT_NAME, content)
    window = HistoryWindow(_journal_with(data, {"run_id": "bad-run",
                                                "report_dir": "[REDACTED]"}))
    qtbot.addWidget(window)
    window.show()
    assert window.open_button.isEnabled()  # the file is there; reading it is what fails
    assert window.open_report("bad-run") is None
    assert window.open_error.startswith(f"Could not read {run_dir / FINAL_REPORT_NAME}")
    assert expected in window.open_error
    assert window.detail_label.text() == window.open_error
    assert window.detail_label.objectName() == "warning"
    assert window.isVisible() and window.report_windows == []


def test_history_refuses_a_huge_report_without_reading_it(qtbot, tmp_path):
    data = tmp_path / "data"
    run_dir = _write_run(data, "huge-run")
    with open(run_dir / FINAL_REPORT_NAME, "r+b") as fh:
        fh.truncate(64 * 1024 * 1024)  # sparse: big on paper, nothing to write
    window = HistoryWindow(_journal_with(data, {"run_id": "huge-run"}))
    qtbot.addWidget(window)
    assert window.open_report("huge-run") is None
    assert "67 MB" in window.open_error and "more than any report" in window.open_error


def test_history_lists_an_abandoned_session(qtbot, tmp_path):
    data = tmp_path / "data"
    _write_run(data, "finished")
    path = _journal_with(data, {"run_id": "finished"},
                         {"run_id": "dead", "status": "abandoned", "exit_code": None,
                          "pnl_absolute": None, "stopped_reason": None,
                          "report_dir": str(data / "runs" / "dead")})
    window = HistoryWindow(path)
    qtbot.addWidget(window)
    window.show()
    assert window.run_ids() == ["dead", "finished"]
    status = window.table.item(0, COLUMNS.index("Status"))
    assert status.text() == "ABANDONED"
    assert "ended without finishing" in status.toolTip()
    assert status.foreground().color().name() == "#92400e"
    assert window.selected_run_id() == "dead"
    assert not window.open_button.isEnabled()
    assert "abandoned before it wrote one" in window.detail_label.text()
    # a NUL byte in a journal's report_dir does not break the lookup
    assert window.run_dir({"run_id": "x", "report_dir": "a\x00b"}) is None
