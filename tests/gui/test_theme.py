"""Dark and light schemes, the View > Theme switch and the Help menu, as displayed."""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from gui import theme


def _lightness(colour) -> float:
    return QColor(colour).lightnessF()


def _menu(window, title: str):
    for action in window.menuBar().actions():
        if action.text().replace("&", "") == title:
            return action.menu()
    raise AssertionError(f"no {title} menu")


def _fill(seq: int, side: str, realized: str) -> dict:
    return {"order_id": f"o{seq}", "seq": seq, "fill_ts": 1_767_225_600_000 + seq * 60_000,
            "side": side, "reason": "exit", "qty": "0.010", "fill_px": "87000.0",
            "bid": "87000.0", "ask": "87001.0", "fee": "0.5", "realized_pnl": realized}


def test_the_view_menu_switches_every_part_to_dark_and_back(make_window, qtbot):
    w = make_window()
    qtbot.waitExposed(w)
    assert theme.current().name == "light"  # offscreen Qt reports no dark desktop
    w.fills_panel.add_fill(_fill(1, "BUY", "1.25"))
    w.log_view.append((logging.WARNING, "feed stale for 3.0 s"))
    w.log_view.flush()
    col_side = [c[1] for c in w.fills_panel.model.COLUMNS].index("side")
    side_index = w.fills_panel.view.model().index(0, col_side)
    light_buy = side_index.data(role=9)  # Qt.ForegroundRole
    assert _lightness(w.chart.glw.backgroundBrush().color()) > 0.9

    theme_menu = next(a.menu() for a in _menu(w, "View").actions()
                      if a.menu() is not None and a.text() == "Theme")
    labels = [a.text() for a in theme_menu.actions()]
    assert labels == ["Follow system", "Light", "Dark"]
    with qtbot.waitSignal(theme.notifier().changed, timeout=2_000) as switched:
        theme_menu.actions()[2].trigger()
    assert switched.args == ["dark"]

    app = QApplication.instance()
    assert _lightness(app.palette().color(QPalette.Window)) < 0.25
    assert _lightness(app.palette().color(QPalette.WindowText)) > 0.75
    assert _lightness(w.chart.glw.backgroundBrush().color()) < 0.25
    axis = w.chart.price_plot.getAxis("right")
    assert _lightness(axis.textPen().color()) > 0.45  # readable on the dark plot
    dark_buy = side_index.data(role=9)
    assert dark_buy.name() == theme.DARK.GREEN and dark_buy != light_buy
    # the log keeps its lines and repaints them in the dark palette's warning colour
    assert w.log_view.lines() == ["feed stale for 3.0 s"]
    cursor = w.log_view.text.textCursor()
    cursor.setPosition(2)
    assert cursor.charFormat().foreground().color().name() == theme.DARK.LOG_WARNING
    assert w.theme_actions["dark"].isChecked()
    assert w.qsettings.value("view/theme") == "dark"

    w.theme_actions["light"].trigger()
    assert theme.current().name == "light"
    assert _lightness(w.chart.glw.backgroundBrush().color()) > 0.9
    assert side_index.data(role=9).name() == theme.LIGHT.GREEN


def test_the_chosen_theme_is_remembered_for_the_next_launch(make_window, gui_env):
    w = make_window()
    w.set_theme("dark")
    w.qsettings.sync()
    w.close()
    theme.apply_theme(QApplication.instance(), "light")  # as a fresh process starts
    again = make_window()
    assert again.theme_preference == "dark"
    assert again.theme_actions["dark"].isChecked()
    assert theme.current().name == "dark"
    assert _lightness(again.chart.glw.backgroundBrush().color()) < 0.25


def test_a_bad_saved_theme_falls_back_to_following_the_system(qtbot, gui_env, data_dir):
    from gui.main_window import MainWindow
    from trading.runtime.session import SessionConfig
    qs = QSettings(str(gui_env / "ui.ini"), QSettings.IniFormat)
    qs.setValue("view/theme", "neon")
    w = MainWindow(SessionConfig(data_dir=data_dir), qsettings=qs,
                   settings_file=gui_env / "config" / "settings.json")
    try:
        assert w.theme_preference == "system"
        assert w.theme_actions["system"].isChecked()
    finally:
        w.close()
        w.deleteLater()


def test_follow_system_tracks_the_desktop_scheme_and_a_fixed_choice_does_not(
        make_window, monkeypatch):
    w = make_window()
    assert w.theme_preference == "system"
    monkeypatch.setattr(theme, "system_scheme", lambda: "dark")
    w._on_system_scheme_changed()  # what Qt's colorSchemeChanged calls
    assert theme.current().name == "dark"
    assert _lightness(w.chart.glw.backgroundBrush().color()) < 0.25
    w.set_theme("light")
    w._on_system_scheme_changed()
    assert theme.current().name == "light"


def test_set_theme_refuses_an_unknown_name(make_window):
    w = make_window()
    try:
        w.set_theme("neon")
    except ValueError as e:
        assert "system, light, dark" in str(e) and "neon" in str(e)
    else:
        raise AssertionError("set_theme accepted 'neon'")


def test_help_menu_has_about_and_the_three_openers(make_window, qtbot):
    w = make_window()
    assert [a.text() for a in _menu(w, "Help").actions() if not a.isSeparator()] == [
        "About BTC Laptop Agents", "Open data folder", "Open logs", "Open README"]
    from trading import __version__
    box = w.show_about()
    qtbot.waitExposed(box)
    shown = box.text()
    assert f"BTC Laptop Agents {__version__}" in shown
    assert "btc_perp_dydx_1m_quotes_20260101.csv" in shown
    assert "QuantConnect/Lean" in shown and "Apache License 2.0" in shown
    assert "Qt 6.11" in shown and "Python 3." in shown
    box.close()


def test_each_help_opener_names_the_path_when_nothing_opens_it(make_window, monkeypatch,
                                                               data_dir):
    import gui.report_window as rw
    from PySide6.QtGui import QDesktopServices
    failures: list[tuple[Path, str]] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: False))
    monkeypatch.setattr(rw, "show_open_failure",
                        lambda parent, path, why: failures.append((Path(path), why)))
    w = make_window()
    (data_dir / "logs").mkdir(exist_ok=True)
    for key in ("data", "logs", "readme"):
        w.help_actions[key].trigger()
    readme = Path(__file__).resolve().parents[2] / "README.md"
    assert [p for p, _ in failures] == [data_dir, data_dir / "logs", readme]
    assert all("no application" in why for _, why in failures)


def test_the_failure_dialog_shows_the_full_path_to_copy(qtbot, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    from gui.report_window import _OPEN_BOXES, show_open_failure
    target = tmp_path / "logs"
    show_open_failure(None, target, "no application on this system opens it")
    box = _OPEN_BOXES[-1]
    qtbot.waitExposed(box)
    assert str(target) in box.informativeText()
    copy = next(b for b in box.buttons() if b.text() == "Copy path")
    copy.click()
    assert QApplication.clipboard().text() == str(target)
    assert box.icon() == QMessageBox.Warning
    box.close()
