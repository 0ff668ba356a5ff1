"""The window's look: a light and a dark palette, one stylesheet, colours and number formats.

Colours are read as attributes of this module (`theme.GREEN`), which always answer for the
scheme in force: `apply_theme(app, "dark")` switches every later read, and `notifier().changed`
tells open windows to repaint what they drew with the old colours.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

SCHEMES = ("system", "light", "dark")  # what the View menu offers; "system" follows the desktop


@dataclass(frozen=True)
class Palette:
    name: str
    BG: str  # charts, tables, panels
    PANEL: str  # window background
    PANEL_2: str  # headers, toolbar, alternate rows
    BORDER: str
    BORDER_2: str
    TEXT: str
    TEXT_2: str  # headers, dock titles
    MUTED: str
    DISABLED: str
    HOVER: str
    SELECTION: str
    ACCENT: str
    ACCENT_DARK: str
    GREEN: str
    GREEN_DARK: str
    RED: str
    RED_DARK: str
    YELLOW: str
    ORANGE: str
    BLUE: str
    PURPLE: str
    GRID: str
    TOOLTIP_BG: str
    TOOLTIP_TEXT: str
    # tinted backgrounds: success / error / info badges and boxes (bg, text, border)
    OK_BG: str
    OK_TEXT: str
    OK_BORDER: str
    ERR_BG: str
    ERR_TEXT: str
    ERR_BORDER: str
    INFO_BG: str
    INFO_TEXT: str
    INFO_BORDER: str
    WARN_TEXT: str
    LOG_INFO: str
    LOG_WARNING: str
    LOG_ERROR: str
    LOG_CRITICAL: str


# Tailwind grays for light; a dark slate close to the trading terminals traders know
LIGHT = Palette(
    name="light", BG="#ffffff", PANEL="#f3f4f6", PANEL_2="#f9fafb", BORDER="#e5e7eb",
    BORDER_2="#d1d5db", TEXT="#111827", TEXT_2="#374151", MUTED="#6b7280", DISABLED="#9ca3af",
    HOVER="#f3f4f6", SELECTION="#dbeafe", ACCENT="#2563eb", ACCENT_DARK="#1d4ed8",
    GREEN="#16a34a", GREEN_DARK="#15803d", RED="#dc2626", RED_DARK="#b91c1c", YELLOW="#d97706",
    ORANGE="#ea580c", BLUE="#2563eb", PURPLE="#7c3aed", GRID="#eef0f3", TOOLTIP_BG="#1f2937",
    TOOLTIP_TEXT="#f9fafb", OK_BG="#dcfce7", OK_TEXT="#166534", OK_BORDER="#86efac",
    ERR_BG="#fee2e2", ERR_TEXT="#991b1b", ERR_BORDER="#fca5a5", INFO_BG="#dbeafe",
    INFO_TEXT="#1e40af", INFO_BORDER="#93c5fd", WARN_TEXT="#92400e", LOG_INFO="#1f2937",
    LOG_WARNING="#b45309", LOG_ERROR="#b91c1c", LOG_CRITICAL="#9d174d")

DARK = Palette(
    name="dark", BG="#161b22", PANEL="#0d1117", PANEL_2="#1c2128", BORDER="#30363d",
    BORDER_2="#444c56", TEXT="#e6edf3", TEXT_2="#c9d1d9", MUTED="#8b949e", DISABLED="#6e7681",
    HOVER="#262c36", SELECTION="#1f3a5f", ACCENT="#2f81f7", ACCENT_DARK="#1f6feb",
    GREEN="#26a69a", GREEN_DARK="#1f8a80", RED="#ef5350", RED_DARK="#d64541", YELLOW="#d29922",
    ORANGE="#f0883e", BLUE="#58a6ff", PURPLE="#bc8cff", GRID="#21262d", TOOLTIP_BG="#e6edf3",
    TOOLTIP_TEXT="#0d1117", OK_BG="#12261e", OK_TEXT="#56d364", OK_BORDER="#238636",
    ERR_BG="#2d1214", ERR_TEXT="#ff7b72", ERR_BORDER="#da3633", INFO_BG="#0c2d6b",
    INFO_TEXT="#a5d6ff", INFO_BORDER="#1f6feb", WARN_TEXT="#e3b341", LOG_INFO="#c9d1d9",
    LOG_WARNING="#e3b341", LOG_ERROR="#ff7b72", LOG_CRITICAL="#ff7eb6")

PALETTES = {"light": LIGHT, "dark": DARK}
_COLOUR_NAMES = frozenset(f.name for f in fields(Palette)) - {"name"}
_current: Palette = LIGHT


def __getattr__(name: str):
    """`theme.GREEN` and the like: the colour of the scheme in force."""
    if name in _COLOUR_NAMES:
        return getattr(_current, name)
    if name == "FEED_COLOURS":
        p = _current
        return {"live": p.GREEN, "replay": p.BLUE, "inline replay": p.BLUE,
                "connecting": p.YELLOW,
                "reconnecting": p.ORANGE, "stale": p.RED, "stopped": p.DISABLED,
                "idle": p.DISABLED}
    if name == "LEVEL_COLOURS":
        p = _current
        return {"DEBUG": p.DISABLED, "INFO": p.LOG_INFO, "WARNING": p.LOG_WARNING,
                "ERROR": p.LOG_ERROR, "CRITICAL": p.LOG_CRITICAL}
    if name == "STYLESHEET":
        return stylesheet(_current)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def current() -> Palette:
    """The palette in force."""
    return _current


def status_colours(status: str | None) -> tuple[str, str, str]:
    """(background, text, border) of a run-status badge in the scheme in force."""
    p = _current
    return {"success": (p.OK_BG, p.OK_TEXT, p.OK_BORDER),
            "error": (p.ERR_BG, p.ERR_TEXT, p.ERR_BORDER),
            "running": (p.INFO_BG, p.INFO_TEXT, p.INFO_BORDER),
            }.get(str(status or "").lower(), (p.PANEL_2, p.TEXT_2, p.BORDER_2))


class _Notifier(QObject):
    changed = Signal(str)  # the scheme now in force: "light" or "dark"


_notifier: _Notifier | None = None


def notifier() -> _Notifier:
    """One object whose `changed` signal fires after the scheme switched (GUI thread)."""
    global _notifier
    if _notifier is None:
        _notifier = _Notifier()
    return _notifier


def system_scheme() -> str:
    """The desktop's colour scheme, "dark" or "light" ("light" when it does not say)."""
    app = QGuiApplication.instance()
    if app is None:
        return "light"
    try:
        if app.styleHints().colorScheme() == Qt.ColorScheme.Dark:
            return "dark"
    except AttributeError:  # a Qt without colour-scheme hints
        pass
    return "light"


def resolve_scheme(preference: str | None) -> str:
    """The scheme a preference means: "system" (or anything unknown) asks the desktop."""
    return preference if preference in PALETTES else system_scheme()


def stylesheet(p: Palette) -> str:
    """The application's stylesheet in palette `p`."""
    return f"""
QMainWindow {{ background: {p.PANEL}; }}
QMainWindow::separator {{ background: {p.PANEL}; width: 6px; height: 6px; }}
QToolTip {{ background: {p.TOOLTIP_BG}; color: {p.TOOLTIP_TEXT}; border: none; padding: 5px 7px; }}
QMenuBar {{ background: {p.BG}; color: {p.TEXT}; }}
QMenuBar::item:selected {{ background: {p.HOVER}; }}
QMenu {{ background: {p.BG}; color: {p.TEXT}; border: 1px solid {p.BORDER_2}; }}
QMenu::item:selected {{ background: {p.SELECTION}; color: {p.TEXT}; }}
QMenu::item:disabled {{ color: {p.DISABLED}; }}
QMenu::separator {{ height: 1px; background: {p.BORDER}; margin: 4px 8px; }}
QToolBar#mainToolbar {{ background: {p.BG}; border: none; border-bottom: 1px solid {p.BORDER};
                        padding: 5px 8px; spacing: 6px; }}
QToolBar#mainToolbar QLabel {{ color: {p.MUTED}; padding-left: 8px; }}
QToolBar#mainToolbar::separator {{ background: {p.BORDER}; width: 1px; margin: 4px 8px; }}
QToolBar#mainToolbar QToolButton {{ padding: 5px 12px; border: 1px solid {p.BORDER_2};
                                    border-radius: 6px; background: {p.BG}; color: {p.TEXT}; }}
QToolBar#mainToolbar QToolButton:hover {{ background: {p.HOVER}; }}
QToolBar#mainToolbar QToolButton:disabled {{ color: {p.DISABLED}; border-color: {p.BORDER}; }}
QToolBar#mainToolbar QToolButton#startButton {{ background: {p.GREEN}; border-color: {p.GREEN_DARK};
                                               color: white; font-weight: 600; }}
QToolBar#mainToolbar QToolButton#startButton:hover {{ background: {p.GREEN_DARK}; }}
QToolBar#mainToolbar QToolButton#stopButton {{ background: {p.RED}; border-color: {p.RED_DARK};
                                              color: white; font-weight: 600; }}
QToolBar#mainToolbar QToolButton#stopButton:hover {{ background: {p.RED_DARK}; }}
QToolBar#mainToolbar QToolButton#startButton:disabled,
QToolBar#mainToolbar QToolButton#stopButton:disabled {{ background: {p.PANEL}; color: {p.DISABLED};
                                                        border-color: {p.BORDER}; }}
QComboBox, QSpinBox, QDoubleSpinBox, QLineEdit {{
    background: {p.BG}; color: {p.TEXT}; border: 1px solid {p.BORDER_2}; border-radius: 6px;
    padding: 3px 6px; min-height: 20px; }}
QComboBox QAbstractItemView {{ background: {p.BG}; color: {p.TEXT};
    selection-background-color: {p.SELECTION}; selection-color: {p.TEXT}; }}
QAbstractSpinBox::up-button, QAbstractSpinBox::down-button {{
    subcontrol-origin: border; width: 0px; height: 0px; border: none; }}
QComboBox:disabled, QSpinBox:disabled, QDoubleSpinBox:disabled, QLineEdit:disabled {{
    color: {p.DISABLED}; background: {p.PANEL_2}; }}
QPushButton {{ background: {p.BG}; color: {p.TEXT}; border: 1px solid {p.BORDER_2};
               border-radius: 6px; padding: 4px 12px; }}
QPushButton:hover {{ background: {p.HOVER}; }}
QPushButton:disabled {{ color: {p.DISABLED}; }}
QPushButton:default {{ border-color: {p.ACCENT}; }}
QPushButton#followButton {{ background: {p.ACCENT}; color: white; border-color: {p.ACCENT_DARK};
                            font-weight: 600; }}
QPushButton#followButton:hover {{ background: {p.ACCENT_DARK}; }}
QDockWidget {{ font-weight: 600; color: {p.TEXT_2}; }}
QDockWidget::title {{ background: {p.PANEL_2}; padding: 6px 10px; border: 1px solid {p.BORDER};
                      border-bottom: none; text-align: left; }}
QDockWidget > QWidget {{ background: {p.BG}; border: 1px solid {p.BORDER}; }}
QTableView, QTableWidget, QTreeWidget, QTreeView, QListView {{ background: {p.BG};
    color: {p.TEXT}; alternate-background-color: {p.PANEL_2}; gridline-color: {p.GRID};
    border: none; selection-background-color: {p.SELECTION}; selection-color: {p.TEXT}; }}
QHeaderView {{ background: {p.PANEL_2}; }}
QHeaderView::section {{ background: {p.PANEL_2}; color: {p.TEXT_2}; border: none;
    border-right: 1px solid {p.BORDER}; border-bottom: 1px solid {p.BORDER}; padding: 4px 6px;
    font-weight: 600; }}
QTableCornerButton::section {{ background: {p.PANEL_2}; border: none; }}
QPlainTextEdit, QTextEdit, QTextBrowser {{ background: {p.BG}; color: {p.TEXT}; }}
QPlainTextEdit#logText {{ border: none; }}
QScrollBar:vertical, QScrollBar:horizontal {{ background: {p.PANEL_2}; border: none; }}
QScrollBar:vertical {{ width: 12px; }}
QScrollBar:horizontal {{ height: 12px; }}
QScrollBar::handle:vertical, QScrollBar::handle:horizontal {{ background: {p.BORDER_2};
    border-radius: 4px; margin: 2px; min-height: 24px; min-width: 24px; }}
QScrollBar::handle:hover {{ background: {p.MUTED}; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0px; height: 0px; }}
QScrollBar::add-page, QScrollBar::sub-page {{ background: none; }}
QTabWidget::pane {{ border: 1px solid {p.BORDER}; }}
QTabBar::tab {{ background: {p.PANEL_2}; color: {p.MUTED}; padding: 5px 12px;
                border: 1px solid {p.BORDER}; border-bottom: none; }}
QTabBar::tab:selected {{ background: {p.BG}; color: {p.TEXT}; }}
QGroupBox {{ color: {p.TEXT_2}; }}
QCheckBox, QRadioButton, QLabel {{ color: {p.TEXT}; }}
QStatusBar {{ background: {p.BG}; color: {p.TEXT}; border-top: 1px solid {p.BORDER}; }}
QStatusBar::item {{ border: none; }}
QStatusBar QLabel {{ padding: 0 10px; border-right: 1px solid {p.BORDER}; }}
QStatusBar QProgressBar {{ background: {p.PANEL}; border: 1px solid {p.BORDER}; border-radius: 5px;
                           min-height: 10px; max-height: 10px; }}
QStatusBar QProgressBar::chunk {{ background: {p.ACCENT}; border-radius: 4px; }}
QWidget#chartPane {{ background: {p.BG}; border: 1px solid {p.BORDER}; }}
QLabel#panelValue {{ font-size: 10.5pt; }}
QLabel#panelKey {{ color: {p.MUTED}; }}
QLabel#panelHero {{ font-size: 17pt; font-weight: 700; }}
QLabel#chartTitle {{ font-weight: 700; font-size: 11pt; }}
QLabel#chartHint {{ color: {p.MUTED}; }}
"""


def qpalette(p: Palette) -> QPalette:
    """A QPalette in palette `p` (what Fusion paints with where the stylesheet is silent)."""
    pal = QPalette()
    for role, colour in (
            (QPalette.Window, p.PANEL), (QPalette.WindowText, p.TEXT), (QPalette.Base, p.BG),
            (QPalette.AlternateBase, p.PANEL_2), (QPalette.ToolTipBase, p.TOOLTIP_BG),
            (QPalette.ToolTipText, p.TOOLTIP_TEXT), (QPalette.Text, p.TEXT),
            (QPalette.Button, p.BG), (QPalette.ButtonText, p.TEXT),
            (QPalette.BrightText, "#ffffff"), (QPalette.Highlight, p.ACCENT),
            (QPalette.HighlightedText, "#ffffff"), (QPalette.Link, p.BLUE),
            (QPalette.PlaceholderText, p.MUTED), (QPalette.Light, p.BORDER_2),
            (QPalette.Midlight, p.BORDER), (QPalette.Mid, p.BORDER_2), (QPalette.Dark, p.PANEL),
            (QPalette.Shadow, "#000000")):
        pal.setColor(role, QColor(colour))
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        pal.setColor(QPalette.Disabled, role, QColor(p.DISABLED))
    return pal


def apply_theme(app: QApplication, scheme: str = "light") -> str:
    """Apply the Fusion style, the palette of `scheme` ("light", "dark" or "system"), the
    stylesheet and a readable font; return the scheme applied and tell open windows."""
    global _current
    name = resolve_scheme(scheme)
    changed = name != _current.name
    _current = PALETTES[name]
    app.setStyle("Fusion")
    app.setPalette(qpalette(_current))
    font = QFont(app.font())
    families = set()
    try:
        from PySide6.QtGui import QFontDatabase
        families = set(QFontDatabase.families())
    except Exception:  # noqa: BLE001
        pass
    for fam in ("Inter", "Segoe UI", "SF Pro Text", "Cantarell", "Noto Sans", "DejaVu Sans",
                "Liberation Sans"):
        if fam in families:
            font.setFamily(fam)
            break
    font.setPointSizeF(9.5)
    app.setFont(font)
    app.setStyleSheet(stylesheet(_current))
    if changed:
        notifier().changed.emit(name)
    return name


def mono_font(point_size: float = 9.0) -> QFont:
    """A fixed-pitch font for the log view."""
    f = QFont("DejaVu Sans Mono")
    f.setStyleHint(QFont.Monospace)
    f.setPointSizeF(point_size)
    return f


# ---------------------------------------------------------------------------- numbers

def to_float(value) -> float | None:
    """Return value as a finite float, or None (accepts str, Decimal, int, float, None)."""
    if value is None or value == "":
        return None
    try:
        v = float(value) if not isinstance(value, Decimal) else float(value)
    except (TypeError, ValueError, InvalidOperation):
        return None
    return v if math.isfinite(v) else None


def _fixed(value, places: int, sign: bool = False) -> str:
    v = to_float(value)
    if v is None:
        return "–"
    if round(v, places) == 0:
        return f"{0.0:,.{places}f}"  # neither "-0.00" nor "+0.00"
    return f"{v:{'+' if sign else ''},.{places}f}"


def fmt_price(value) -> str:
    """Price with 1 decimal and thousands separators: 87,654.3."""
    return _fixed(value, 1)


def fmt_money(value, sign: bool = False) -> str:
    """Money (USDT) with 2 decimals."""
    return _fixed(value, 2, sign)


def fmt_pnl_exact(value) -> str:
    """A fill's realized PnL with 4 decimals and a sign: a lot (0.001) times a tick (0.1) is
    0.0001, so rows shown this way add up to the total shown."""
    return _fixed(value, 4, True)


def fmt_bps(value, sign: bool = False) -> str:
    """Basis points with 2 decimals."""
    return _fixed(value, 2, sign)


def fmt_qty(value) -> str:
    """Quantity in BTC with 3 decimals (the lot size)."""
    return _fixed(value, 3)


def fmt_int(value) -> str:
    v = to_float(value)
    return "–" if v is None else f"{int(round(v)):,}"


def fmt_time_utc(ts_ms, with_ms: bool = False) -> str:
    """Epoch ms as HH:MM:SS (UTC)."""
    v = to_float(ts_ms)
    if not v:
        return "–"
    t = datetime.fromtimestamp(v / 1000, timezone.utc)
    return t.strftime("%H:%M:%S") + (f".{t.microsecond // 1000:03d}" if with_ms else "")


def fmt_datetime_utc(ts_ms) -> str:
    v = to_float(ts_ms)
    if not v:
        return "–"
    return datetime.fromtimestamp(v / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] \
        + " UTC"


def fmt_duration_ms(ms) -> str:
    """Milliseconds as mm:ss or h:mm:ss."""
    v = to_float(ms)
    if v is None:
        return "–"
    s = max(0, int(v // 1000))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60:02d}:{s % 60:02d}"


def sign_colour(value) -> str:
    v = to_float(value)
    if v is None or round(v, 2) == 0:
        return _current.TEXT
    return _current.GREEN if v > 0 else _current.RED


def fmt_pct_or_dash(value) -> str:
    """Percent with 2 decimals and a sign."""
    v = to_float(value)
    return "–" if v is None else f"{v:+.2f} %"
