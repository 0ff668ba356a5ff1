"""Fixtures of the window tests: data, settings and QSettings under tmp_path."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from trading.runtime.session import SessionConfig
from trading.runtime.watchdog import WatchdogConfig


@pytest.fixture
def gui_env(tmp_path, monkeypatch, data_dir):
    """Data, settings and QSettings all under tmp_path: nothing touches the user's dirs."""
    monkeypatch.setenv("BTC_LAPTOP_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BTC_LAPTOP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path


@pytest.fixture
def make_window(qtbot, gui_env, data_dir):
    from gui.main_window import MainWindow
    made = []

    def make(cli_overrides=None, **cfg_kw):
        cfg_kw.setdefault("seed", 5)
        cfg_kw.setdefault("replay_start_index", 700)
        cfg_kw.setdefault("reset_account", True)
        qs = QSettings(str(gui_env / "ui.ini"), QSettings.IniFormat)
        w = MainWindow(SessionConfig(data_dir=data_dir, **cfg_kw), qsettings=qs,
                       settings_file=gui_env / "config" / "settings.json",
                       cli_overrides=cli_overrides, watchdog_config=WatchdogConfig(restart_delay_s=0.3, hang_after_s=20))
        w.show()  # not qtbot.addWidget: its teardown deletes widgets before ours stops sessions
        made.append(w)
        return w

    yield make
    for w in made:  # never leave a session thread behind, whatever the test did
        if w.controller.is_running:
            w.controller.stop("test teardown")
            qtbot.waitUntil(lambda w=w: not w.controller.is_running, timeout=30_000)
        for rw in list(w.report_windows):
            rw.close()
        w.close()
        w.deleteLater()


@pytest.fixture(autouse=True)
def light_theme_after():
    """A test that switched to the dark scheme leaves the light one for the next."""
    yield
    from PySide6.QtWidgets import QApplication

    from gui import theme
    app = QApplication.instance()
    if app is not None and theme.current().name != "light":
        theme.apply_theme(app, "light")
