"""The window's look: a light palette, one stylesheet, colours and number formats."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

# colours: a light theme matching the report and history windows (Tailwind grays)
BG = "#ffffff"  # charts, tables, panels
PANEL = "#f3f4f6"  # window background
PANEL_2 = "#f9fafb"  # headers, toolbar
BORDER = "#e5e7eb"
BORDER_2 = "#d1d5db"
TEXT = "#111827"
MUTED = "#6b7280"
ACCENT = "#2563eb"
GREEN = "#16a34a"
RED = "#dc2626"
YELLOW = "#d97706"
ORANGE = "#ea580c"
BLUE = "#2563eb"
PURPLE = "#7c3aed"
GRID = "#eef0f3"

FEED_COLOURS = {
    "live": GREEN, "inline replay": GREEN, "connecting": YELLOW, "reconnecting": ORANGE,
    "stale": RED, "stopped": "#9ca3af", "idle": "#9ca3af",
}
LEVEL_COLOURS = {"DEBUG": "#9ca3af", "INFO": "#1f2937", "WARNING": "#b45309", "ERROR": "#b91c1c",
                 "CRITICAL": "#9d174d"}

STYLESHEET = f"""
QMainWindow {{ background: {PANEL}; }}
QMainWindow::separator {{ background: {PANEL}; width: 6px; height: 6px; }}
QToolTip {{ background: #1f2937; color: #f9fafb; border: none; padding: 5px 7px; }}
QToolBar#mainToolbar {{ background: {BG}; border: none; border-bottom: 1px solid {BORDER};
                        padding: 5px 8px; spacing: 6px; }}
QToolBar#mainToolbar QLabel {{ color: {MUTED}; padding-left: 8px; }}
QToolBar#mainToolbar::separator {{ background: {BORDER}; width: 1px; margin: 4px 8px; }}
QToolBar#mainToolbar QToolButton {{ padding: 5px 12px; border: 1px solid {BORDER_2};
                                    border-radius: 6px; background: {BG}; }}
QToolBar#mainToolbar QToolButton:hover {{ background: #f3f4f6; }}
QToolBar#mainToolbar QToolButton:disabled {{ color: #9ca3af; border-color: {BORDER}; }}
QToolBar#mainToolbar QToolButton#startButton {{ background: {GREEN}; border-color: #15803d;
                                               color: white; font-weight: 600; }}
QToolBar#mainToolbar QToolButton#startButton:hover {{ background: #15803d; }}
QToolBar#mainToolbar QToolButton#stopButton {{ background: {RED}; border-color: #b91c1c;
                                              color: white; font-weight: 600; }}
QToolBar#mainToolbar QToolButton#stopButton:hover {{ background: #b91c1c; }}
QToolBar#mainToolbar QToolButton#startButton:disabled,
QToolBar#mainToolbar QToolButton#stopButton:disabled {{ background: {PANEL}; color: #9ca3af;
                                                        border-color: {BORDER}; }}
QMainWindow QComboBox, QMainWindow QSpinBox, QMainWindow QDoubleSpinBox {{
    background: {BG}; border: 1px solid {BORDER_2}; border-radius: 6px; padding: 3px 6px;
    min-height: 20px; }}
QMainWindow QAbstractSpinBox::up-button, QMainWindow QAbstractSpinBox::down-button {{
    subcontrol-origin: border; width: 0px; height: 0px; border: none; }}
QMainWindow QComboBox:disabled, QMainWindow QSpinBox:disabled,
QMainWindow QDoubleSpinBox:disabled {{ color: #9ca3af; background: {PANEL_2}; }}
QMainWindow QPushButton {{ background: {BG}; border: 1px solid {BORDER_2}; border-radius: 6px;
                           padding: 4px 12px; }}
QMainWindow QPushButton:hover {{ background: #f3f4f6; }}
QMainWindow QPushButton:disabled {{ color: #9ca3af; }}
QPushButton#followButton {{ background: {ACCENT}; color: white; border-color: #1d4ed8;
                            font-weight: 600; }}
QPushButton#followButton:hover {{ background: #1d4ed8; }}
QDockWidget {{ font-weight: 600; color: #374151; }}
QDockWidget::title {{ background: {PANEL_2}; padding: 6px 10px; border: 1px solid {BORDER};
                      border-bottom: none; text-align: left; }}
QDockWidget > QWidget {{ background: {BG}; border: 1px solid {BORDER}; }}
QMainWindow QTableView, QMainWindow QTableWidget {{ background: {BG};
    alternate-background-color: {PANEL_2}; gridline-color: {GRID}; border: none;
    selection-background-color: #dbeafe; selection-color: {TEXT}; }}
QMainWindow QHeaderView::section {{ background: {PANEL_2}; color: #374151; border: none;
    border-right: 1px solid {BORDER}; border-bottom: 1px solid {BORDER}; padding: 4px 6px;
    font-weight: 600; }}
QPlainTextEdit#logText {{ background: {BG}; border: none; }}
QStatusBar {{ background: {BG}; border-top: 1px solid {BORDER}; }}
QStatusBar::item {{ border: none; }}
QStatusBar QLabel {{ padding: 0 10px; border-right: 1px solid {BORDER}; }}
QStatusBar QProgressBar {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 5px;
                           min-height: 10px; max-height: 10px; }}
QStatusBar QProgressBar::chunk {{ background: {ACCENT}; border-radius: 4px; }}
QWidget#chartPane {{ background: {BG}; border: 1px solid {BORDER}; }}
QLabel#panelValue {{ font-size: 10.5pt; }}
QLabel#panelKey {{ color: {MUTED}; }}
QLabel#panelHero {{ font-size: 17pt; font-weight: 700; }}
QLabel#chartTitle {{ font-weight: 700; font-size: 11pt; }}
QLabel#chartHint {{ color: {MUTED}; }}
"""


def apply_theme(app: QApplication) -> None:
    """Apply the Fusion style, a light palette, the stylesheet and a readable font."""
    app.setStyle("Fusion")
    pal = QPalette()
    for role, colour in (
            (QPalette.Window, PANEL), (QPalette.WindowText, TEXT), (QPalette.Base, BG),
            (QPalette.AlternateBase, PANEL_2), (QPalette.ToolTipBase, "#1f2937"),
            (QPalette.ToolTipText, "#f9fafb"), (QPalette.Text, TEXT), (QPalette.Button, BG),
            (QPalette.ButtonText, TEXT), (QPalette.BrightText, "#ffffff"),
            (QPalette.Highlight, ACCENT), (QPalette.HighlightedText, "#ffffff"),
            (QPalette.Link, BLUE), (QPalette.PlaceholderText, MUTED)):
        pal.setColor(role, QColor(colour))
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        pal.setColor(QPalette.Disabled, role, QColor("#9ca3af"))
    app.setPalette(pal)
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
    app.setStyleSheet(STYLESHEET)


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
        return TEXT
    return GREEN if v > 0 else RED


def fmt_pct_or_dash(value) -> str:
    """Percent with 2 decimals and a sign."""
    v = to_float(value)
    return "–" if v is None else f"{v:+.2f} %"
