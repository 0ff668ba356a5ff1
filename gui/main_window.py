"""The main window: toolbar, chart, docks (position, orders, fills, log) and the status bar.

Everything here runs on the GUI thread. The engine is reached only through `SessionController`
(start / stop) and heard only through the `Bridge` signals.
"""
from __future__ import annotations

import dataclasses
import html
import logging
import math
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QApplication, QComboBox, QDialog, QDockWidget, QDoubleSpinBox,
                               QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressDialog,
                               QSpinBox, QToolBar, QVBoxLayout, QWidget)

from gui.bridge import Bridge, BridgeLogHandler
from gui.bundle import bundled_file, data_sources
from gui.chart import TradingChart
from gui.controller import SessionController
from gui import theme
from gui.panels import Banner, ElidedLabel, FillsPanel, LogView, OrdersTable, PositionPanel, StatusIndicators
from storage.paths import DataPaths
from trading.runtime.config import MAX_DURATION_MIN

log = logging.getLogger("btc_laptop_agents.gui")

ORGANIZATION = "BTC Laptop Agents"
APPLICATION = "btc-laptop-agents"
APP_TITLE = "BTC Laptop Agents"

# the other windows of the app; the main window works (with a plainer fallback) without them
try:
    from gui.settings_dialog import (AppSettings, SettingsDialog, load_settings, save_settings,
                                     settings_path)
    SETTINGS_UNAVAILABLE: str | None = None
except Exception as _e:  # noqa: BLE001 - any import failure means: run without it
    AppSettings = SettingsDialog = load_settings = save_settings = settings_path = None
    SETTINGS_UNAVAILABLE = f"{type(_e).__name__}: {_e}"
try:
    from gui.report_window import ReportWindow
    REPORT_UNAVAILABLE: str | None = None
except Exception as _e:  # noqa: BLE001
    ReportWindow = None
    REPORT_UNAVAILABLE = f"{type(_e).__name__}: {_e}"
try:
    from gui.history_window import HistoryWindow
    HISTORY_UNAVAILABLE: str | None = None
except Exception as _e:  # noqa: BLE001
    HistoryWindow = None
    HISTORY_UNAVAILABLE = f"{type(_e).__name__}: {_e}"

# SessionConfig fields that the settings (or the toolbar) decide; every other field comes from
# the command line (seed, chaos, reset_account, fault injection ...) or its default
SETTINGS_OWNED = frozenset({"data_dir", "duration_min", "source", "replay_file", "speed",
                            "symbol", "broker", "breaker", "strategy", "strategy_params",
                            "entry", "breaker_enabled", "flatten_at_end",
                            "replay_from_start"})
NOT_CARRIED = frozenset({"resume", "previous_exit", "progress_stream"})

def _override_key(field: str) -> str:
    """The settings field a problem's name belongs to (a strategy parameter's: the params)."""
    return "strategy_params" if field.startswith("param.") else field


SPEEDS = (("1×", 1.0), ("10×", 10.0), ("60×", 60.0), ("300×", 300.0), ("max", math.inf))


def parse_speed(text: str) -> float:
    """'60', '60×', '60x' or 'max' -> market seconds per wall second; ValueError otherwise."""
    t = str(text).strip().lower()
    if t in ("max", "inf"):
        return math.inf
    if t.endswith(("×", "x")):
        t = t[:-1].strip()
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"replay speed must be a number or max, got {text!r}") from None
    if not (math.isfinite(v) and 0 < v <= 10_000):
        raise ValueError(f"replay speed must be in (0, 10000] or max, got {text!r}")
    return v


def speed_text(v: float) -> str:
    return "max" if math.isinf(v) else f"{v:g}×"


class MainWindow(QMainWindow):
    """The trading window; one session at a time."""

    sessionStarted = Signal(str)  # run_id
    sessionFinished = Signal(int, str)  # exit code, run folder

    def __init__(self, base_config=None, *, qsettings: QSettings | None = None,
                 settings_file: Path | None = None, cli_overrides: dict | None = None,
                 watchdog_config=None, use_watchdog: bool = True, exit_on_finish: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from trading.runtime.session import SessionConfig
        if base_config is None:
            from storage.paths import default_data_dir
            base_config = SessionConfig(data_dir=default_data_dir())
        self.base_config = base_config
        self.data_dir = Path(base_config.data_dir)
        self.qsettings = qsettings or QSettings(ORGANIZATION, APPLICATION)
        self.settings_file = settings_file
        self.cli_overrides = dict(cli_overrides or {})
        self.watchdog_config = watchdog_config
        self.use_watchdog = use_watchdog
        self.exit_on_finish = exit_on_finish
        self.exit_code: int | None = None
        self.last_report: dict | None = None
        self.last_run_dir: str | None = None
        self.report_windows: list[QWidget] = []
        self.last_report_window: QWidget | None = None
        self.history_window: QWidget | None = None
        self._closing = False
        self._force_close = False
        self._stopping_dialog: QProgressDialog | None = None
        self._replay_file: Path | None = base_config.replay_file
        self._source_prev = 0
        self._run_source_text = ""
        self.settings_warning: str | None = None
        pref = str(self.qsettings.value("view/theme", "system") or "system")
        self.theme_preference = pref if pref in theme.SCHEMES else "system"
        app = QApplication.instance()
        if app is not None:  # before any widget is built: nothing is painted twice
            theme.apply_theme(app, self.theme_preference)

        # exactly the application's display name: Qt appends that name to any other title
        # ("X — BTC Laptop Agents"), which read "BTC Laptop Agents — paper trading — BTC ..."
        self.setWindowTitle(APP_TITLE)
        self.setObjectName("mainWindow")
        self._fit_to_screen()
        self.setDockOptions(QMainWindow.AnimatedDocks | QMainWindow.AllowNestedDocks
                            | QMainWindow.AllowTabbedDocks)

        self.bridge = Bridge(self)
        self.controller = SessionController(self.bridge, self)
        self.log_handler = BridgeLogHandler(self.bridge)
        for name in ("btc_laptop_agents", "websocket", "websockets"):
            logging.getLogger(name).addHandler(self.log_handler)

        self.app_settings = self._load_app_settings()
        self._build_toolbar()
        self._build_central()
        self._build_docks()
        self._build_status_bar()
        self._build_menus()
        self._connect_bridge()
        self._restore_ui_state()
        self._set_running(False)
        theme.notifier().changed.connect(self._on_theme_changed)
        hints = QGuiApplication.styleHints()
        if hasattr(hints, "colorSchemeChanged"):
            hints.colorSchemeChanged.connect(self._on_system_scheme_changed)
        if self.settings_warning:
            self.alert_banner.show_message(html.escape(self.settings_warning), "warning")

    # ================================================================== construction
    def _load_app_settings(self):
        if AppSettings is None:
            log.warning("settings_dialog_unavailable", extra={"error": SETTINGS_UNAVAILABLE})
            return None
        settings, warning = load_settings(self.settings_file)
        self.settings_warning = warning
        fields = {f.name for f in dataclasses.fields(AppSettings)}
        over = {k: v for k, v in self.cli_overrides.items() if k in fields}
        ignored: list[str] = []
        while over:  # what the saved settings refuse is left out, and said; the rest applies
            try:
                cand = dataclasses.replace(settings, **over)
                bad = [(f, r) for f, r in cand.problems() if _override_key(f) in over]
            except (TypeError, ValueError) as e:
                ignored.append(str(e))
                break
            if not bad:  # (the saved settings' own problems, if any, the dialog says)
                settings = cand
                break
            for f, reason in bad:
                over.pop(_override_key(f), None)
                ignored.append(f"{f} {reason}" if reason.startswith("must") else
                               f"{f}: {reason}")
        if ignored:
            log.warning("cli_overrides_ignored", extra={"error": "; ".join(ignored)})
            text = "Command-line options not used: " + "; ".join(ignored)
            self.settings_warning = f"{self.settings_warning}\n{text}" \
                if self.settings_warning else text
        return settings

    def _build_toolbar(self) -> None:
        tb = QToolBar("Session")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.setFloatable(False)
        tb.setToolButtonStyle(Qt.ToolButtonTextOnly)
        self.addToolBar(Qt.TopToolBarArea, tb)
        self.toolbar = tb

        self.start_action = QAction("▶  Start", self)
        self.start_action.setShortcut(QKeySequence("F5"))
        self.start_action.setToolTip("Start a paper-trading session (F5)")
        self.start_action.triggered.connect(lambda: self.start_session())
        self.stop_action = QAction("■  Stop", self)
        self.stop_action.setShortcut(QKeySequence("Shift+F5"))
        self.stop_action.setToolTip("Stop: flatten the position and write the report (Shift+F5)")
        self.stop_action.triggered.connect(self.stop_session)
        tb.addAction(self.start_action)
        tb.widgetForAction(self.start_action).setObjectName("startButton")
        tb.addAction(self.stop_action)
        tb.widgetForAction(self.stop_action).setObjectName("stopButton")
        tb.addSeparator()

        self.source_combo = QComboBox()
        self.source_combo.setToolTip("Where market data comes from. Auto tries Bitunix for 3 s "
                                     "and otherwise replays the bundled real BTC data.")
        self.source_combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.source_combo.activated.connect(self._on_source_activated)
        self.source_combo.currentIndexChanged.connect(self._on_source_changed)
        self.duration_spin = QDoubleSpinBox()
        self.duration_spin.setRange(0.1, MAX_DURATION_MIN)  # a month's replay fits
        self.duration_spin.setDecimals(1)
        self.duration_spin.setSuffix(" min")
        self.duration_spin.setToolTip("Session length in minutes of market-data time")
        self.duration_spin.setAlignment(Qt.AlignRight)
        self.latency_spin = QSpinBox()
        self.latency_spin.setRange(0, 600_000)
        self.latency_spin.setSingleStep(100)
        self.latency_spin.setSuffix(" ms")
        self.latency_spin.setToolTip("Execution latency: delay from the signal to the fill")
        self.latency_spin.setAlignment(Qt.AlignRight)
        for spin in (self.duration_spin, self.latency_spin):
            spin.setMinimumWidth(96)  # no arrows (stylesheet): type, wheel or arrow keys
        self.speed_combo = QComboBox()
        self.speed_combo.setEditable(True)
        for text, value in SPEEDS:
            self.speed_combo.addItem(text, value)
        self.speed_combo.setToolTip("Replay speed: market seconds per wall second (replay only);"
                                    " type any value up to 10000, or max")
        self.speed_combo.setMinimumContentsLength(5)
        for label, w in (("Source", self.source_combo), ("Duration", self.duration_spin),
                         ("Latency", self.latency_spin), ("Speed", self.speed_combo)):
            tb.addWidget(QLabel(label))
            tb.addWidget(w)
        tb.addSeparator()
        self.settings_action = QAction("Settings…", self)
        self.settings_action.setToolTip("Account, fees, risk, circuit breaker and strategy")
        self.settings_action.triggered.connect(self.open_settings)
        self.history_action = QAction("History…", self)
        self.history_action.setToolTip("Past sessions from the journal")
        self.history_action.triggered.connect(self.open_history)
        tb.addAction(self.settings_action)
        tb.addAction(self.history_action)
        self._rebuild_source_items()
        self._init_toolbar_values()

    def _rebuild_source_items(self, select: tuple | None = None) -> None:
        combo = self.source_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("Auto", ("auto", ""))
        combo.addItem("Bitunix (live)", ("bitunix", ""))
        combo.addItem("Replay: bundled day", ("replay", ""))
        if self._replay_file is not None:
            combo.addItem(f"Replay: {self._replay_file.name}", ("replay", str(self._replay_file)))
            combo.setItemData(combo.count() - 1, str(self._replay_file), Qt.ToolTipRole)
        combo.addItem("Replay file…", ("choose", ""))
        if select is not None:
            for i in range(combo.count()):
                if combo.itemData(i) == select:
                    combo.setCurrentIndex(i)
                    break
        combo.blockSignals(False)
        self._source_prev = combo.currentIndex()

    def _init_toolbar_values(self) -> None:
        # precedence: an option given on the command line, then the last toolbar values,
        # then the saved settings, then the engine's defaults
        s, base, q, cli = self.app_settings, self.base_config, self.qsettings, self.cli_overrides

        def pick(key: str, settings_attr: str, default):
            if settings_attr in cli:
                return cli[settings_attr]
            v = q.value(f"toolbar/{key}")
            if v not in (None, ""):
                return v
            if s is not None and hasattr(s, settings_attr):
                return getattr(s, settings_attr)
            return default

        source = str(pick("source", "source", base.source))
        known = q.value("toolbar/known_replay_file")
        if known and Path(str(known)).is_file():
            self._replay_file = Path(str(known))  # listed in the combo, chosen or not
        replay = pick("replay_file", "replay_file", base.replay_file)
        replay = Path(str(replay)) if replay not in (None, "", "None") else None
        if replay is not None and not replay.is_file():
            log.warning("replay_file_missing", extra={"path": str(replay)})
            replay = None
        try:
            duration = float(pick("duration_min", "duration_min", base.duration_min))
        except (TypeError, ValueError):
            duration = base.duration_min
        try:
            latency = int(float(pick("latency_ms", "latency_ms", base.broker.latency_ms)))
        except (TypeError, ValueError):
            latency = base.broker.latency_ms
        raw_speed = pick("speed", "speed", base.speed)
        try:
            speed = raw_speed if isinstance(raw_speed, float) else parse_speed(str(raw_speed))
        except ValueError:
            speed = base.speed
        self.set_toolbar(source=source, replay_file=replay, duration_min=duration,
                         latency_ms=latency, speed=speed)

    def set_toolbar(self, *, source: str | None = None, replay_file: Path | None | str = "",
                    duration_min: float | None = None, latency_ms: int | None = None,
                    speed: float | None = None) -> None:
        """Set the toolbar's session fields (tests, scripts and the settings dialog).

        With source "replay", replay_file None selects the bundled day and a path selects that
        file; left out (""), the selection keeps its file.
        """
        if replay_file not in ("", None):
            self._replay_file = Path(replay_file)
        if source is not None:
            if replay_file == "":
                keep = self.source_combo.currentData() or ("auto", "")
                path = keep[1] if source == "replay" and keep[0] == "replay" else ""
            else:
                path = str(self._replay_file) if source == "replay" and replay_file else ""
            self._rebuild_source_items(select=(source, path))
        elif replay_file not in ("", None):
            self._rebuild_source_items(select=self.source_combo.currentData())
        if duration_min is not None:
            self.duration_spin.setValue(float(duration_min))
        if latency_ms is not None:
            self.latency_spin.setValue(int(latency_ms))
        if speed is not None:
            self.speed_combo.setEditText(speed_text(float(speed)))
            for i in range(self.speed_combo.count()):
                if self.speed_combo.itemData(i) == float(speed):
                    self.speed_combo.setCurrentIndex(i)
        self._on_source_changed()

    def toolbar_values(self) -> dict:
        """The session fields as the toolbar shows them; ValueError on a bad speed."""
        source, path = self.source_combo.currentData() or ("auto", "")
        if source == "choose":
            source, path = "auto", ""
        return {"source": source, "replay_file": Path(path) if path else None,
                "duration_min": float(self.duration_spin.value()),
                "latency_ms": int(self.latency_spin.value()),
                "speed": parse_speed(self.speed_combo.currentText())}

    def _build_central(self) -> None:
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.offline_banner = Banner()
        self.alert_banner = Banner()
        self.chart = TradingChart()
        self.chart.setObjectName("chartPane")
        self.chart.setAttribute(Qt.WA_StyledBackground, True)
        lay.addWidget(self.offline_banner)
        lay.addWidget(self.alert_banner)
        lay.addWidget(self.chart, 1)
        self.setCentralWidget(central)

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                         | QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        self.position_panel = PositionPanel()
        self.orders_table = OrdersTable()
        self.fills_panel = FillsPanel()
        self.log_view = LogView()
        self.position_dock = self._dock("Position", "positionDock", self.position_panel,
                                        Qt.RightDockWidgetArea)
        self.orders_dock = self._dock("Pending orders", "ordersDock", self.orders_table,
                                      Qt.RightDockWidgetArea)
        self.fills_dock = self._dock("Fills", "fillsDock", self.fills_panel,
                                     Qt.BottomDockWidgetArea)
        self.log_dock = self._dock("Log", "logDock", self.log_view, Qt.BottomDockWidgetArea)
        self.splitDockWidget(self.fills_dock, self.log_dock, Qt.Horizontal)
        # a short screen (a 1280x720 laptop) cannot stack Position over Pending orders and
        # still leave the fills table whole rows: Pending orders becomes a tab beside the Log
        # there, its title counting what is pending
        self.compact_layout = self.height() < 760
        if self.compact_layout:
            self.removeDockWidget(self.orders_dock)
            self.tabifyDockWidget(self.log_dock, self.orders_dock)
            self.orders_dock.show()
            self.log_dock.raise_()
        else:
            self.splitDockWidget(self.position_dock, self.orders_dock, Qt.Vertical)
        self.setCorner(Qt.BottomRightCorner, Qt.BottomDockWidgetArea)
        self.setCorner(Qt.BottomLeftCorner, Qt.BottomDockWidgetArea)
        for sig in (self.orders_table.model().rowsInserted, self.orders_table.model().rowsRemoved,
                    self.orders_table.model().modelReset):
            sig.connect(self._update_orders_title)
        self._default_dock_sizes()

    def _update_orders_title(self, *_args) -> None:
        try:
            n = self.orders_table.rowCount()
        except RuntimeError:  # the table is being destroyed with the window
            return
        self.orders_dock.setWindowTitle(f"Pending orders ({n})" if n else "Pending orders")

    def _default_dock_sizes(self) -> None:
        """Dock sizes in proportion to the window: at 1280x720 the fills table keeps room for
        a few whole rows, on a large screen the chart gets the space."""
        w, h = max(self.width(), self.MIN_SIZE[0]), max(self.height(), self.MIN_SIZE[1])
        bottom = max(200, int(h * 0.34))
        # on a tall screen Pending orders sits under Position: room for its seven columns
        side = (max(320, min(540, int(w * 0.3))) if not self.compact_layout
                else max(320, min(380, int(w * 0.27))))
        if not self.compact_layout:
            self.resizeDocks([self.position_dock, self.orders_dock],
                             [int((h - bottom) * 0.62), int((h - bottom) * 0.38)], Qt.Vertical)
        self.resizeDocks([self.position_dock], [side], Qt.Horizontal)
        self.resizeDocks([self.fills_dock], [bottom], Qt.Vertical)
        # compact: Pending orders is a tab beside the Log, and its seven columns need ~45 %
        share = 0.45 if self.compact_layout else 0.34
        self.resizeDocks([self.fills_dock, self.log_dock], [int(w * (1 - share)), int(w * share)],
                         Qt.Horizontal)

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        sb.setSizeGripEnabled(False)
        # the one part of the status bar that gives way: it ends in "…" when it does not fit,
        # with the whole line as its tooltip; the run id comes first so it stays readable
        self.run_label = ElidedLabel("Idle — press Start")
        self.run_label.setStyleSheet("border: none;")
        self.run_label.setMinimumWidth(120)
        sb.addWidget(self.run_label, 1)
        self.indicators = StatusIndicators()
        sb.addPermanentWidget(self.indicators)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&Session")
        m.addAction(self.start_action)
        m.addAction(self.stop_action)
        m.addSeparator()
        m.addAction(self.settings_action)
        m.addAction(self.history_action)
        m.addSeparator()
        export = QAction("Export fills CSV…", self)
        export.triggered.connect(self.fills_panel.export_csv_dialog)
        m.addAction(export)
        folder = QAction("Open data folder", self)
        folder.triggered.connect(self._open_data_folder)
        m.addAction(folder)
        m.addSeparator()
        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence.Quit)
        quit_action.triggered.connect(self.close)
        m.addAction(quit_action)
        v = mb.addMenu("&View")
        for dock in (self.position_dock, self.orders_dock, self.fills_dock, self.log_dock):
            v.addAction(dock.toggleViewAction())
        v.addSeparator()
        follow = QAction("Follow latest candle", self)
        follow.setShortcut(QKeySequence("End"))
        follow.triggered.connect(lambda: self.chart.set_following(True))
        v.addAction(follow)
        reset = QAction("Reset layout", self)
        reset.triggered.connect(self.reset_layout)
        v.addAction(reset)
        v.addSeparator()
        tm = v.addMenu("Theme")
        group = QActionGroup(self)
        group.setExclusive(True)
        self.theme_actions: dict[str, QAction] = {}
        for key, label in (("system", "Follow system"), ("light", "Light"), ("dark", "Dark")):
            a = QAction(label, self)
            a.setCheckable(True)
            a.setChecked(key == self.theme_preference)
            a.triggered.connect(lambda _checked=False, k=key: self.set_theme(k))
            group.addAction(a)
            tm.addAction(a)
            self.theme_actions[key] = a
        self._build_help_menu(mb)
        self._default_state = self.saveState()

    # ================================================================== theme
    def set_theme(self, preference: str) -> str:
        """Switch to "system", "light" or "dark", remember it, repaint; return the scheme."""
        if preference not in theme.SCHEMES:
            raise ValueError(f"theme must be one of {', '.join(theme.SCHEMES)}, not {preference!r}")
        self.theme_preference = preference
        self.qsettings.setValue("view/theme", preference)
        self.theme_actions[preference].setChecked(True)
        return theme.apply_theme(QApplication.instance(), preference)

    # ================================================================== help
    def _build_help_menu(self, mb) -> None:
        h = mb.addMenu("&Help")
        self.help_actions: dict[str, QAction] = {}
        for key, label, slot in (
                ("about", "About BTC Laptop Agents", self.show_about),
                ("data", "Open data folder", lambda: self._open_path(self.data_dir)),
                ("logs", "Open logs", lambda: self._open_path(DataPaths(self.data_dir).logs_dir)),
                ("readme", "Open README", lambda: self._open_path(bundled_file("README.md")))):
            a = QAction(label, self)
            a.triggered.connect(slot)
            h.addAction(a)
            self.help_actions[key] = a
            if key == "about":
                h.addSeparator()

    def _open_path(self, path: Path) -> bool:
        from gui.report_window import open_local_path
        return open_local_path(Path(path), self)

    def about_html(self) -> str:
        """What About shows: version, where the data comes from and under which licence."""
        import platform

        import PySide6
        from PySide6.QtCore import qVersion
        from trading import __version__
        notice = bundled_file("resources/data/NOTICE.md")
        sources = data_sources(notice)
        rows = "".join(
            f"<li><b>{html.escape(name)}</b>: {html.escape(src)}<br>"
            f"<span style='color:{theme.MUTED}'>{html.escape(lic)}</span></li>"
            for name, src, lic in sources) or "<li>(data notice not found)</li>"
        return (
            f"<h3>BTC Laptop Agents {html.escape(__version__)}</h3>"
            "<p>Paper trading of BTCUSDT perpetual futures on Bitunix market data, or on a "
            "replay of recorded real BTC data through the local exchange. No real orders are "
            "ever sent.</p>"
            f"<p><b>Bundled market data</b></p><ul>{rows}</ul>"
            f"<p>Full notice: <code>{html.escape(str(notice))}</code><br>"
            f"Data folder: <code>{html.escape(str(self.data_dir))}</code></p>"
            f"<p style='color:{theme.MUTED}'>Python {html.escape(platform.python_version())} · "
            f"Qt {html.escape(qVersion())} · PySide6 {html.escape(PySide6.__version__)}</p>")

    def show_about(self) -> QMessageBox:
        box = QMessageBox(QMessageBox.Information, "About BTC Laptop Agents", "",
                          QMessageBox.Close, self)
        box.setTextFormat(Qt.RichText)
        box.setText(self.about_html())
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)
        box.setIconPixmap(self.windowIcon().pixmap(64, 64))
        self._about_box = box
        box.open()
        return box

    def _on_system_scheme_changed(self, *_args) -> None:
        if self.theme_preference == "system":
            theme.apply_theme(QApplication.instance(), "system")

    def _on_theme_changed(self, _name: str) -> None:
        for part in (self.chart, self.position_panel, self.fills_panel, self.log_view,
                     self.indicators, self.orders_table):
            part.apply_palette()

    def _connect_bridge(self) -> None:
        b = self.bridge
        b.session_started.connect(self._on_session_started)
        b.history.connect(self.chart.add_history)
        b.quote_changed.connect(self._on_quote)
        b.kline.connect(self._on_kline)
        b.candle.connect(self.chart.on_candle)
        b.order.connect(self.orders_table.add_order)  # upsert: again when a limit rests
        b.order_progress.connect(self.orders_table.on_progress)
        b.order_done.connect(self._on_order_done)
        b.fill.connect(self._on_fill)
        b.position.connect(self._on_position)
        b.equity.connect(self.chart.add_equity)
        b.health.connect(self._on_health)
        b.offline_fallback.connect(self._on_offline_fallback)
        b.watchdog_restart.connect(self._on_watchdog_restart)
        b.watchdog_gave_up.connect(self._on_watchdog_gave_up)
        b.account_notice.connect(self._on_account_notice)
        b.finished.connect(self._on_report)
        b.log_record.connect(self.log_view.append)
        b.status.connect(lambda text: self.run_label.setToolTip(
            f"{self.run_label.text()}\n{text}" if text else self.run_label.text()))
        b.error.connect(self.show_error)
        self.controller.finished.connect(self._on_session_finished)

    # ================================================================== session control
    def build_config(self):
        """The SessionConfig for the next session: settings + toolbar + command line."""
        tb = self.toolbar_values()
        base = self.base_config
        if self.app_settings is not None:
            s = dataclasses.replace(
                self.app_settings, source=tb["source"], duration_min=tb["duration_min"],
                speed=tb["speed"], latency_ms=tb["latency_ms"],
                replay_file=str(tb["replay_file"]) if tb["replay_file"] else None)
            cfg = s.to_session_config(self.data_dir)  # ValueError lists every problem
        else:
            cfg = dataclasses.replace(
                base, source=tb["source"], duration_min=tb["duration_min"], speed=tb["speed"],
                replay_file=tb["replay_file"],
                broker=dataclasses.replace(base.broker, latency_ms=tb["latency_ms"]))
        carried = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)
                   if f.name not in SETTINGS_OWNED | NOT_CARRIED}
        cfg = dataclasses.replace(cfg, data_dir=self.data_dir, progress_stream=None,
                                  resume=False, previous_exit="", **carried)
        if cfg.chaos:
            if cfg.source == "bitunix":
                raise ValueError(f"fault injection ({cfg.chaos}) needs the local exchange: "
                                 "choose Auto or a replay source")
            if math.isinf(cfg.speed):
                raise ValueError(f"fault injection ({cfg.chaos}) needs a socket: choose a "
                                 "finite replay speed instead of max")
        if cfg.replay_file is not None and not Path(cfg.replay_file).is_file():
            raise ValueError(f"replay file not found: {cfg.replay_file}")
        return cfg

    def replay_recording(self, run_id: str) -> bool:
        """Replay a recorded run exactly (its account and settings; the toolbar's speed)."""
        from storage.paths import DataPaths
        from trading.runtime.config import config_from_dict
        from trading.runtime.recording import RecordingError
        from trading.runtime.replaying import open_source
        if self.controller.is_running:
            QMessageBox.information(self, "Replay", "A session is running: stop it first.")
            return False
        try:
            path, header, _ = open_source(run_id, DataPaths(self.data_dir).runs_dir)
            cfg = config_from_dict(
                header["config"], data_dir=self.data_dir, source="recording",
                recording=str(path), speed=self.toolbar_values()["speed"],
                progress_stream=None, chaos="", replay_file=None, reset_account=False,
                resume=False, previous_exit="")
        except (RecordingError, ValueError, TypeError, KeyError) as e:
            QMessageBox.warning(self, "Cannot replay this session", str(e))
            return False
        return self.start_session(cfg, f"replay of {run_id} · {speed_text(cfg.speed)}")

    def start_session(self, cfg=None, source_text: str | None = None) -> bool:
        """Start a session from the toolbar values (or `cfg`); False if it could not start."""
        if self.controller.is_running:
            return False
        try:
            cfg = cfg or self.build_config()
        except ValueError as e:
            log.warning("session_not_started", extra={"error": str(e)})
            if self.exit_on_finish:  # unattended: no dialog to wait for
                self.exit_code = 2
                QTimer.singleShot(0, lambda: QApplication.exit(2))
            else:
                QMessageBox.warning(self, "Cannot start the session", str(e))
            return False
        self._reset_views()
        # at max speed the data outruns the eye: repaint less often and leave the CPU to
        # the engine (it shares the interpreter with this thread)
        self.chart.set_frame_interval(250 if math.isinf(cfg.speed) else 33)
        self._save_toolbar_state()
        src = source_text or {"auto": "auto", "bitunix": "Bitunix live",
                              "replay": "replay"}[cfg.source]
        if cfg.source in ("auto", "replay") and not source_text:
            src += f" · {Path(cfg.replay_file).name if cfg.replay_file else 'bundled day'}"
            src += f" · {speed_text(cfg.speed)}"
        if cfg.chaos:
            src += f" · chaos {cfg.chaos}"
        self._run_source_text = src
        run_id = self.controller.start(cfg, self.watchdog_config, self.use_watchdog)
        self.run_label.setText(f"Starting run {run_id} ({src})…")
        self.chart.title.setText(f"{cfg.symbol} · 1m · UTC")
        self.chart.set_run(run_id)
        self._set_running(True)
        self.sessionStarted.emit(run_id)
        return True

    def stop_session(self) -> None:
        if not self.controller.is_running:
            return
        self.controller.stop("stopped by user")
        self.stop_action.setEnabled(False)
        self.run_label.setText("Stopping: flattening the position and writing the report…")

    def _reset_views(self) -> None:
        self.bridge.drain()  # anything left from the previous session goes first
        self.bridge.reset_quote()
        self.chart.reset()
        self.orders_table.clear_orders()
        self.fills_panel.clear()
        self.position_panel.clear()
        self.indicators.reset()
        self.offline_banner.reset()
        self.alert_banner.reset()
        self.last_report = None

    def _set_running(self, running: bool) -> None:
        self.start_action.setEnabled(not running)
        self.stop_action.setEnabled(running)
        for w in (self.source_combo, self.duration_spin, self.latency_spin, self.speed_combo,
                  self.settings_action):
            w.setEnabled(not running)
        if not running:
            self._on_source_changed()

    # ================================================================== toolbar slots
    def _on_source_changed(self, *_):
        data = self.source_combo.currentData() or ("auto", "")
        self.speed_combo.setEnabled(data[0] != "bitunix" and not self.controller.is_running)

    def _on_source_activated(self, index: int) -> None:
        data = self.source_combo.itemData(index)
        if data and data[0] == "choose":
            path, _ = QFileDialog.getOpenFileName(
                self, "Choose market data to replay", str(self._replay_file or Path.home()),
                "Market data (*.csv *.csv.gz *.gz);;All files (*)")
            if path and self.choose_replay_file(Path(path)):
                return
            self.source_combo.setCurrentIndex(self._source_prev)
            return
        self._source_prev = index

    def choose_replay_file(self, path: Path) -> bool:
        """Check a replay file and select it as the source; False (with a message) if bad."""
        from trading.runtime.datafiles import load_market_file
        try:
            load_market_file(path)
        except (ValueError, OSError) as e:
            QMessageBox.warning(self, "Cannot use this file", f"{path}:\n{e}")
            return False
        self._replay_file = Path(path)
        self._rebuild_source_items(select=("replay", str(self._replay_file)))
        self._on_source_changed()
        return True

    def open_settings(self) -> None:
        if SettingsDialog is None:
            QMessageBox.information(
                self, "Settings", "The settings dialog is not part of this build "
                f"({SETTINGS_UNAVAILABLE}). Sessions use the command-line options "
                "(python main.py --help).")
            return
        current = self.app_settings
        try:
            tb = self.toolbar_values()
            current = dataclasses.replace(
                current, source=tb["source"], duration_min=tb["duration_min"],
                speed=tb["speed"], latency_ms=tb["latency_ms"],
                replay_file=str(tb["replay_file"]) if tb["replay_file"] else None)
        except (ValueError, TypeError):
            pass
        dlg = SettingsDialog(current, self)
        if dlg.exec() != QDialog.Accepted:
            return
        new = dlg.settings()
        try:
            path = save_settings(new, self.settings_file)
            log.info("settings_saved", extra={"path": str(path)})
        except (OSError, ValueError) as e:
            QMessageBox.warning(self, "Settings not saved", str(e))
        self.app_settings = new
        self.set_toolbar(source=new.source, replay_file=new.replay_file or None,
                         duration_min=new.duration_min, latency_ms=new.latency_ms,
                         speed=new.speed)

    def open_history(self) -> None:
        if HistoryWindow is None:
            QMessageBox.information(
                self, "History", "The session history window is not part of this build "
                f"({HISTORY_UNAVAILABLE}). Past runs are in {self.data_dir / 'runs'}.")
            return
        from storage.paths import DataPaths
        journal = DataPaths(self.data_dir).journal_file
        if self.history_window is not None:
            try:
                self.history_window.refresh()
                self._raise(self.history_window)
                return
            except RuntimeError:  # its C++ side is gone
                self.history_window = None
        self.history_window = HistoryWindow(journal, self)
        self.history_window.replay_requested.connect(self.replay_recording)
        self._raise(self.history_window)

    @staticmethod
    def _raise(w: QWidget) -> None:
        if not w.isWindow():
            w.setWindowFlag(Qt.Window, True)
        w.show()
        w.raise_()
        w.activateWindow()

    def open_report(self, run_dir: str | Path) -> QWidget:
        """Show the report of a finished run (the full report window, else a summary)."""
        run_dir = Path(run_dir)
        w = None
        if ReportWindow is not None:
            try:
                w = ReportWindow(run_dir, self)
            except Exception:  # noqa: BLE001 - fall back to the summary rather than nothing
                log.exception("report_window_failed", extra={"run_dir": str(run_dir)})
        if w is None:
            from gui.run_summary import RunSummaryWindow
            w = RunSummaryWindow(run_dir, self)
        w.setAttribute(Qt.WA_DeleteOnClose, True)
        w.destroyed.connect(lambda *_a, ref=w: self._forget_report(ref))
        self.report_windows.append(w)
        self.last_report_window = w
        self._raise(w)
        return w

    def _forget_report(self, w) -> None:
        if w in self.report_windows:
            self.report_windows.remove(w)
        if self.last_report_window is w:
            self.last_report_window = None

    def reset_layout(self) -> None:
        self.restoreState(self._default_state)
        for dock in (self.position_dock, self.orders_dock, self.fills_dock, self.log_dock):
            dock.show()
        self._default_dock_sizes()

    # ================================================================== bridge slots
    def _on_session_started(self, d: dict) -> None:
        resumed = d.get("resumed")
        seg = f" · segment {d.get('segment')}" if d.get("segment", 1) and resumed else ""
        src = self._run_source_text
        if d.get("source") and d.get("source") != "replay" and "auto" in src:
            src = f"auto → {d.get('source')}"
        self.run_label.setText(f"Running {d.get('run_id')} · {src}{seg}")

    def _on_quote(self, q) -> None:
        self.chart.on_quote(q)
        self.position_panel.on_quote(q)
        self.orders_table.set_data_time(q.ts)

    def _on_kline(self, k) -> None:
        self.chart.on_kline(k)
        self.orders_table.set_data_time(k.ts)

    def _on_order_done(self, d: dict) -> None:
        line = self.orders_table.finish_order(d)
        if line:  # a cancel, in words (the engine's own log line has the bare fields)
            self._say_in_log(logging.INFO, line)

    def _say_in_log(self, level: int, text: str) -> None:
        """A line of the window's own in the Log view (not the app's log file), formatted as
        the log lines are."""
        record = logging.LogRecord("btc_laptop_agents.gui", level, __file__, 0, text, None, None)
        self.log_handler.filter(record)  # the redaction every log line gets
        head, sep, rest = self.log_handler.format(record).partition(" | ")
        self.log_view.append((level, head, sep + rest))

    def _on_fill(self, f: dict) -> None:
        self.fills_panel.add_fill(f)
        self.chart.add_fill(f)

    def _on_position(self, p: dict) -> None:
        self.position_panel.set_position(p)
        self.chart.set_position(p)

    def _on_health(self, h: dict) -> None:
        self.indicators.set_health(h)
        self.position_panel.set_health(h)
        if isinstance(h.get("position"), dict):
            self.chart.set_position(h["position"])
        self.chart.set_starting_equity(h.get("starting_equity"))
        self.orders_table.set_data_time(h.get("data_ts"))
        self.orders_table.sync(h.get("pending_orders") or [], h.get("resting_orders"))
        if h.get("offline_fallback") and self.offline_banner.isHidden() \
                and not self.offline_banner.dismissed:
            self._on_offline_fallback({"reason": ""})

    def _on_offline_fallback(self, d: dict) -> None:
        import html as _html
        reason = str(d.get("reason") or "")
        why = f" ({_html.escape(reason)})" if reason else ""
        self.offline_banner.show_message(
            f"OFFLINE — Bitunix is unreachable{why}. Replaying the bundled real BTC data: "
            "this session is NOT live market data.", "warning")
        self.offline_banner.setToolTip(reason)

    def _open_data_folder(self) -> None:
        self._open_path(self.data_dir)

    def _on_account_notice(self, d: dict) -> None:
        """The paper account was rebuilt from the journal or reset: say so above the chart."""
        import html as _html
        source = str(d.get("source", ""))
        head = {"rebuilt": "ACCOUNT REBUILT FROM THE JOURNAL",
                "reset": "ACCOUNT RESET"}.get(source, "ACCOUNT")
        self.alert_banner.show_message(
            f"<b>{head}</b> — {_html.escape(str(d.get('note', '')))}",
            "error" if source == "reset" else "warning")

    def _on_watchdog_restart(self, d: dict) -> None:
        import html as _html
        from gui.theme import fmt_duration_ms
        reason = str(d.get("reason", ""))
        self.indicators.set_restarts(int(d.get("restarts") or 0), reason)
        self.alert_banner.show_message(
            f"Watchdog restarted the session ({_html.escape(reason)}); it resumes from the saved "
            f"state with {fmt_duration_ms(d.get('remaining_ms'))} left.", "info")

    def _on_watchdog_gave_up(self, reason: str) -> None:
        import html as _html
        self.alert_banner.show_message(f"Watchdog gave up: {_html.escape(reason)}", "error")

    def _on_report(self, report: dict) -> None:
        self.last_report = report

    def _on_session_finished(self, code: int, run_dir: str) -> None:
        self.exit_code = code
        self.last_run_dir = run_dir
        self.bridge.drain()  # the final events (fills of the flatten, health) first
        self._set_running(False)
        self.indicators.set_finished()
        r = self.last_report or {}
        from gui.theme import fmt_money
        status = r.get("status", "error" if code else "success")
        pnl = r.get("pnl_absolute")
        self.run_label.setText(
            f"Finished {self.controller.run_id}: {status}"
            + (f", PnL {fmt_money(pnl, sign=True)} USDT" if pnl is not None else "")
            + f" · report in {run_dir}")
        if code != 0 and r.get("error"):
            import html as _html
            self.alert_banner.show_message(
                f"The session ended with an error: {_html.escape(str(r.get('error')))}",
                "error")
        self.sessionFinished.emit(code, run_dir)
        if self._closing:
            dlg, self._stopping_dialog = self._stopping_dialog, None
            if dlg is not None:
                dlg.canceled.disconnect(self._quit_without_waiting)
                dlg.close()
            self.close()
            return
        if self.exit_on_finish:
            self.save_ui_state()
            QApplication.exit(code)
            return
        self.open_report(run_dir)

    # ================================================================== errors
    def show_error(self, title: str, text: str) -> None:
        """Show an error without blocking the event loop (GUI thread)."""
        if getattr(self, "_error_box", None) is not None and self._error_box.isVisible():
            self._error_box.setDetailedText((self._error_box.detailedText() or "")
                                            + "\n\n" + text)
            return
        box = QMessageBox(QMessageBox.Critical, title,
                          "An unexpected error occurred. It has been written to the log.", 
                          QMessageBox.Ok, self)
        box.setInformativeText(text.strip().splitlines()[-1] if text.strip() else "")
        box.setDetailedText(text)
        box.setModal(False)
        box.show()
        self._error_box = box

    # ================================================================== persistence
    def _save_toolbar_state(self) -> None:
        q = self.qsettings
        try:
            tb = self.toolbar_values()
        except ValueError:
            return
        q.setValue("toolbar/source", tb["source"])
        q.setValue("toolbar/replay_file", str(tb["replay_file"] or ""))
        q.setValue("toolbar/known_replay_file", str(self._replay_file or ""))
        q.setValue("toolbar/duration_min", tb["duration_min"])
        q.setValue("toolbar/latency_ms", tb["latency_ms"])
        q.setValue("toolbar/speed", "max" if math.isinf(tb["speed"]) else tb["speed"])
        q.sync()

    def save_ui_state(self) -> None:
        q = self.qsettings
        q.setValue("window/geometry", self.saveGeometry())
        q.setValue("window/state", self.saveState())
        q.setValue("log/level", self.log_view.min_level)
        self._save_toolbar_state()
        q.sync()

    MIN_SIZE = (1000, 600)  # fits a 1280x720 laptop screen with its panel and title bar

    def _fit_to_screen(self) -> None:
        """Default geometry: 90% of the available screen, centred; never below MIN_SIZE."""
        self.setMinimumSize(*self.MIN_SIZE)
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(1280, 800)
            return
        avail = screen.availableGeometry()
        w = max(self.MIN_SIZE[0], min(int(avail.width() * 0.9), 1800))
        h = max(self.MIN_SIZE[1], min(int(avail.height() * 0.9), 1100))
        w, h = min(w, avail.width()), min(h, avail.height())
        self.resize(w, h)
        self.move(avail.x() + (avail.width() - w) // 2, avail.y() + (avail.height() - h) // 2)

    def _clamp_to_screens(self) -> None:
        """A restored geometry must be on a screen that exists now (a monitor may be gone)."""
        frame = self.frameGeometry()
        screens = QGuiApplication.screens()
        if not screens:
            return
        if any(sc.availableGeometry().intersects(frame) and
               sc.availableGeometry().intersected(frame).width() >= 200 and
               sc.availableGeometry().intersected(frame).height() >= 100 for sc in screens):
            avail = (self.screen() or screens[0]).availableGeometry()
            if self.width() > avail.width() or self.height() > avail.height():
                self._fit_to_screen()
            return
        self._fit_to_screen()

    def _restore_ui_state(self) -> None:
        q = self.qsettings
        geo = q.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
            self._clamp_to_screens()
        state = q.value("window/state")
        self._state_restored = state is not None and bool(self.restoreState(state))
        level = q.value("log/level")
        if level not in (None, ""):
            try:
                self.log_view.set_min_level(int(level))
            except (TypeError, ValueError):
                pass

    # ================================================================== closing
    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if not getattr(self, "_shown_once", False):
            self._shown_once = True
            if not self._state_restored:  # first launch: size the docks for this screen
                QTimer.singleShot(0, self._default_dock_sizes)
            # read by scripts/check_built_app.py to time launch-to-window
            QTimer.singleShot(0, lambda: log.info("gui_window_shown", extra={
                "width": self.width(), "height": self.height()}))

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self.controller.is_running and not self._force_close:
            event.ignore()
            if not self._closing:
                self._closing = True
                self.controller.stop("window closed")
                dlg = QProgressDialog("Stopping the session: flattening the position and "
                                      "writing the report…", "Quit without waiting", 0, 0, self)
                dlg.setWindowTitle("Stopping…")
                dlg.setWindowModality(Qt.WindowModal)
                dlg.setMinimumDuration(0)
                dlg.setAutoClose(False)
                dlg.setAutoReset(False)
                dlg.canceled.connect(self._quit_without_waiting)
                dlg.show()
                self._stopping_dialog = dlg
            return
        self.save_ui_state()
        self.log_handler.detach()
        for w in list(self.report_windows) + [self.history_window]:
            if w is not None:
                try:
                    w.close()
                except RuntimeError:
                    pass
        event.accept()

    def _quit_without_waiting(self) -> None:
        log.warning("gui_quit_without_waiting", extra={"run_id": self.controller.run_id})
        self._force_close = True
        self._stopping_dialog = None
        self.close()
