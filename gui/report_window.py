"""The end-of-run report window: every field of final_report.json, the equity curve and fills.

Reads a run folder (`<data dir>/runs/<run_id>` or `<data dir>/runs/latest`) on the GUI thread:
final_report.json, fills.csv, and the run's equity samples from `<data dir>/journal.sqlite3`
when that journal exists (otherwise the curve is rebuilt from the fills' cash_after).
"""
from __future__ import annotations

import csv
import html
import logging
import math
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QBrush, QColor, QDesktopServices, QFont, QFontDatabase
from PySide6.QtWidgets import (QAbstractItemView, QFrame, QGridLayout, QHBoxLayout,
                               QHeaderView, QLabel, QPushButton, QSizePolicy, QSplitter,
                               QTableWidget, QTableWidgetItem, QTreeWidget, QTreeWidgetItem,
                               QVBoxLayout, QWidget)

from gui import theme
from gui.screen_fit import fit_window
from storage.paths import DataPaths
from storage.report_format import (fill_liquidity, fill_order_size, fill_pricing_lines,
                                   is_true, parse_legs)
from storage.reports import (COMPARE_HTML_NAME, FILL_COLUMNS, FILLS_CSV_NAME, SUMMARY_HTML_NAME,
                             read_report)

log = logging.getLogger("btc_laptop_agents.gui")

DASH = "\u2014"
_TEXT_FILL_COLUMNS = frozenset({"order_id", "side", "reason", "trigger", "order_type",
                                "liquidity", "price_model", "depth_exhausted", "legs"})
_TS_FILL_COLUMNS = frozenset({"signal_ts", "due_ts", "fill_ts"})
# fills.csv's columns in the order the table shows them: the order's size, type and liquidity
# beside the fill's qty, the depth cost beside the spread cost; how it was priced at the end
_FILL_VIEW_ORDER = (
    "order_id", "seq", "side", "qty", "order_qty", "order_filled", "order_type", "liquidity",
    "reason", "signal_ts", "signal_px", "due_ts", "fill_ts", "latency_ms", "fill_px", "bid",
    "ask", "mid", "spread_cost_bps", "depth_cost_bps", "latency_drift_bps", "fee", "fee_bps",
    "realized_pnl", "trigger", "trigger_px", "position_after", "cash_after", "price_model",
    "depth_exhausted", "legs",
)
FILL_VIEW_COLUMNS = tuple(c for c in _FILL_VIEW_ORDER if c in FILL_COLUMNS) + tuple(
    c for c in FILL_COLUMNS if c not in _FILL_VIEW_ORDER)
# what older fills.csv rows (without the order-book columns) were: a market order, taker,
# that filled whole at the best level
_FILL_DEFAULTS = {"order_type": "market", "liquidity": "taker", "depth_cost_bps": "0",
                  "depth_exhausted": "False"}


def _style(p: theme.Palette) -> str:
    return f"""
QWidget#reportRoot {{ background: {p.PANEL}; }}
QFrame#card {{ background: {p.BG}; border: 1px solid {p.BORDER}; border-radius: 8px; }}
QLabel#eyebrow {{ color: {p.MUTED}; font-size: 11px; letter-spacing: 1px; }}
QLabel#runId {{ font-size: 19px; font-weight: 600; color: {p.TEXT}; }}
QLabel#facts {{ color: {p.TEXT_2}; }}
QLabel#statLabel {{ color: {p.MUTED}; font-size: 11px; }}
QLabel#statValue {{ font-size: 16px; font-weight: 600; color: {p.TEXT}; }}
QLabel#pnlSub {{ color: {p.MUTED}; }}
QLabel#sectionTitle {{ font-weight: 600; color: {p.TEXT}; }}
QLabel#sectionNote {{ color: {p.MUTED}; }}
QLabel#errorText {{ color: {p.ERR_TEXT}; background: {p.ERR_BG}; border: 1px solid {p.ERR_BORDER};
                    border-radius: 6px; padding: 8px 10px; }}
QTableWidget, QTreeWidget {{ background: {p.BG}; alternate-background-color: {p.PANEL_2};
                             color: {p.TEXT}; border: 1px solid {p.BORDER};
                             gridline-color: {p.GRID}; selection-background-color: {p.SELECTION};
                             selection-color: {p.TEXT}; }}
QHeaderView::section {{ background: {p.PANEL}; color: {p.TEXT_2}; border: none;
                        border-bottom: 1px solid {p.BORDER}; border-right: 1px solid {p.BORDER};
                        padding: 4px 16px 4px 6px; font-weight: 600; }}
"""


# ------------------------------------------------------------------------------ formatting

def to_decimal(value: Any) -> Decimal | None:
    """Return value as a finite Decimal, or None (floats go through repr so they stay exact)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def format_money(value: Any, *, sign: bool = False, places: int = 2) -> str:
    """Format money with thousands separators, e.g. -34.0124802 -> "-34.01" ("+" if sign)."""
    d = to_decimal(value)
    if d is None:
        return DASH
    text = format(d, f"{'+' if sign else ''},.{places}f")
    if text.lstrip("+-").replace("0", "").replace(",", "").replace(".", "") == "":
        text = text.lstrip("+-")  # no "-0.00"
    return text


def format_pnl(value: Any) -> str:
    """Format a PnL in USDT the way the report window shows it, e.g. "-34.01 USDT"."""
    text = format_money(value, sign=True)
    return DASH if text == DASH else f"{text} USDT"


def format_number(value: Any) -> str:
    """Format a number keeping every digit it has, with thousands separators."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return format(value, ",")
    d = to_decimal(value)
    if d is None:
        return DASH if value in (None, "") else str(value)
    return format(d, ",f")


def format_utc(value: Any, *, millis: bool = False) -> str:
    """Format epoch ms or an ISO timestamp as "YYYY-MM-DD HH:MM:SS" UTC."""
    dt: datetime | None = None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            d = to_decimal(text)
            if d is None:
                return text
            value = int(d)
    if dt is None:
        d = to_decimal(value)
        if d is None:
            return DASH
        try:
            dt = datetime.fromtimestamp(float(d) / 1000, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return str(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    out = dt.strftime("%Y-%m-%d %H:%M:%S")
    return out + f".{dt.microsecond // 1000:03d}" if millis else out


def format_duration(seconds: Any) -> str:
    """Format seconds as "1h 02m 03s" / "10m 00s" / "12.3s"."""
    d = to_decimal(seconds)
    if d is None:
        return DASH
    s = float(d)
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else f"{m}m {sec:02d}s"


def status_badge(label: QLabel, status: str | None) -> None:
    """Style label as a coloured status badge."""
    status = (status or "unknown").lower()
    bg, fg, border = theme.status_colours(status)
    label.setText(status.upper())
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setStyleSheet(f"background: {bg}; color: {fg}; border: 1px solid {border}; "
                        "border-radius: 11px; padding: 3px 14px; font-weight: 700; "
                        "letter-spacing: 1px;")


def sign_colour(value: Any) -> str | None:
    d = to_decimal(value)
    if d is None or d == 0:
        return None
    return theme.GREEN_DARK if d > 0 else theme.RED


def _won_note(r: dict) -> str:
    """What the win rate counts: "0 of 1 won after fees"."""
    trips, won, rate = to_decimal(r.get("round_trips")), to_decimal(r.get("round_trips_won")), \
        to_decimal(r.get("win_rate"))
    if trips is None or trips < 0 or trips != int(trips):
        return "after fees"
    if won is None and rate is not None:
        won = (rate * trips).to_integral_value()
    if won is None or won < 0 or won > trips:
        return f"of {int(trips):,}, after fees"
    return f"{int(won):,} of {int(trips):,} won after fees"


class SortItem(QTableWidgetItem):
    """A table cell that sorts by a key (numbers numerically, blanks last), not by its text."""

    def __init__(self, text: str, key: Any) -> None:
        super().__init__(text)
        self.sort_key = key

    def __lt__(self, other: QTableWidgetItem) -> bool:
        other_key = getattr(other, "sort_key", (1, other.text()))
        try:
            return self.sort_key < other_key
        except TypeError:
            return str(self.sort_key) < str(other_key)


def sort_key(value: Any) -> tuple:
    """Key for SortItem: numbers first by value, then text, blanks last."""
    if value is None or value == "":
        return (2, "")
    d = to_decimal(value)
    if d is not None:
        return (0, float(d))
    return (1, str(value).lower())


def open_local_path(path: Path, parent=None) -> bool:
    """Open a file or folder with the desktop's default application (the browser for HTML).

    When it is missing or nothing can open it, say so in a dialog that shows the path, ready
    to copy (never a silent no-op). GUI thread.
    """
    path = Path(path)
    if not path.exists():
        show_open_failure(parent, path, "it does not exist (any more)")
        return False
    if QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.resolve()))):
        return True
    show_open_failure(parent, path, "no application on this system opens it (no desktop "
                                    "opener such as xdg-open is set up)")
    return False


def show_open_failure(parent, path: Path, why: str) -> None:
    """The visible error of open_local_path; a module function so tests can watch it."""
    from PySide6.QtWidgets import QApplication, QMessageBox
    box = QMessageBox(QMessageBox.Warning, "Cannot open", f"Cannot open {path.name}: {why}.",
                      QMessageBox.Close, parent)
    box.setInformativeText(f"Its full path (select to copy):\n{path}")
    box.setTextInteractionFlags(Qt.TextSelectableByMouse)
    copy = box.addButton("Copy path", QMessageBox.ActionRole)
    copy.clicked.disconnect()
    copy.clicked.connect(lambda: QApplication.clipboard().setText(str(path)))
    _OPEN_BOXES.append(box)  # a parentless box must outlive this call
    box.finished.connect(lambda _=0, b=box: _OPEN_BOXES.remove(b) if b in _OPEN_BOXES else None)
    box.open()


_OPEN_BOXES: list = []


def _mono() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


# ------------------------------------------------------------------------------ the window

class ReportWindow(QWidget):
    """A top-level window showing one run's report; build with ReportWindow(run_dir)."""

    def __init__(self, run_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.run_dir = Path(run_dir)
        self.data_dir = self.run_dir.parent.parent
        self.load_error: str | None = None
        try:
            self.report: dict = read_report(self.run_dir)
        except (OSError, ValueError) as exc:
            self.report = {}
            self.load_error = f"Could not read {self.run_dir / 'final_report.json'}: {exc}"
            log.warning("report_window_read_failed", extra={"run_dir": str(self.run_dir),
                                                            "error": str(exc)})
        self.run_id = str(self.report.get("run_id") or self.run_dir.name)
        self.fills = self._load_fills()
        self.equity_points, self.equity_source = self._load_equity()

        self.setObjectName("reportRoot")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setWindowTitle(f"Session report \u2014 {self.run_id}")
        fit_window(self, 1280, 860, parent.window() if parent is not None else None)
        QVBoxLayout(self)
        self._content: QWidget | None = None
        self._build_ui()
        theme.notifier().changed.connect(self._on_theme_changed)

    def _on_theme_changed(self, _name: str) -> None:
        """Rebuild in the new scheme: every colour of this window is set when it is built."""
        self._build_ui()

    def _build_ui(self) -> None:
        self.setStyleSheet(_style(theme.current()))
        outer = self.layout()
        if self._content is not None:
            outer.removeWidget(self._content)
            self._content.deleteLater()
        outer.setContentsMargins(0, 0, 0, 0)
        self._content = QWidget(self)
        outer.addWidget(self._content)
        root = QVBoxLayout(self._content)
        root.setContentsMargins(14, 14, 14, 12)
        root.setSpacing(10)
        root.addWidget(self._build_header())
        root.addWidget(self._build_stats())

        upper = QSplitter(Qt.Orientation.Horizontal)
        upper.addWidget(self._card("Equity", self.equity_note(), self._build_chart()))
        upper.addWidget(self._card("All report fields", "final_report.json",
                                   self._build_fields_tree()))
        upper.setStretchFactor(0, 3)
        upper.setStretchFactor(1, 2)
        upper.setSizes([760, 480])
        lower = self._card("Fills", self._fills_note(), self._build_fills_table())
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(upper)
        split.addWidget(lower)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([470, 300])
        split.setChildrenCollapsible(False)
        root.addWidget(split, 1)
        root.addLayout(self._build_buttons())
        if self.isVisible():  # a child added to a window already on screen starts hidden
            self._content.show()

    # ---- data ----
    def _journal_path(self) -> Path:
        return DataPaths(self.data_dir).journal_file

    def _load_fills(self) -> list[dict]:
        path = self.run_dir / FILLS_CSV_NAME
        if path.is_file():
            try:
                with open(path, encoding="utf-8", newline="") as fh:
                    return [dict(row) for row in csv.DictReader(fh)]
            except (OSError, csv.Error, UnicodeDecodeError) as exc:
                log.warning("report_window_fills_failed", extra={"path": str(path),
                                                                 "error": str(exc)})
        journal = self._read_journal(lambda j: j.fills(self.run_id))
        return [{k: ("" if v is None else str(v)) for k, v in row.items()}
                for row in journal or []]

    def _read_journal(self, query):
        path = self._journal_path()
        if not path.is_file():
            return None
        from storage.journal import Journal  # only when a journal exists: opening creates one
        try:
            journal = Journal.open(path)
        except Exception as exc:  # a locked or damaged journal must not stop the report
            log.warning("report_window_journal_failed", extra={"path": str(path),
                                                               "error": str(exc)})
            return None
        try:
            return query(journal)
        except Exception as exc:
            log.warning("report_window_journal_failed", extra={"path": str(path),
                                                               "error": str(exc)})
            return None
        finally:
            journal.close()

    def _load_equity(self) -> tuple[list[tuple[float, float]], str]:
        """Return [(epoch s, equity USDT)] and where it came from."""
        rows = self._read_journal(lambda j: j.equity(self.run_id)) if self.report else None
        points = []
        for row in rows or []:
            eq, ts = to_decimal(row.get("equity")), to_decimal(row.get("ts"))
            if eq is not None and ts is not None:
                points.append((float(ts) / 1000, float(eq)))
        if len(points) >= 2:
            # Samples come every few seconds; the exit at the end of the run lands after the
            # last one, so the report's final equity closes the curve.
            end = _iso_to_epoch_s(self.report.get("data_end"))
            final_eq = to_decimal(self.report.get("final_equity"))
            if end is not None and final_eq is not None and end >= points[-1][0]:
                if end == points[-1][0]:
                    points.pop()
                points.append((end, float(final_eq)))
            return points, "journal"
        # Cash after each fill equals equity whenever the position is flat, so the curve is
        # exact at the ends and at every exit.
        points = []
        start = _iso_to_epoch_s(self.report.get("data_start"))
        end = _iso_to_epoch_s(self.report.get("data_end"))
        start_eq = to_decimal(self.report.get("starting_equity"))
        if start is not None and start_eq is not None:
            points.append((start, float(start_eq)))
        for f in self.fills:
            ts, cash = to_decimal(f.get("fill_ts")), to_decimal(f.get("cash_after"))
            if ts is not None and cash is not None:
                points.append((float(ts) / 1000, float(cash)))
        final_eq = to_decimal(self.report.get("final_equity"))
        if end is not None and final_eq is not None:
            points.append((end, float(final_eq)))
        points.sort(key=lambda p: p[0])
        return points, "fills"

    def equity_note(self) -> str:
        n = len(self.equity_points)
        if self.equity_source == "journal":
            return f"{n:,} samples from the journal \u00b7 UTC"
        if n:
            return "rebuilt from the fills' cash_after (journal not available) \u00b7 UTC"
        return "no equity data"

    def _fills_note(self) -> str:
        n = len(self.fills)
        parts = [f"{n:,} fill{'s' if n != 1 else ''}"]
        makers = sum(1 for f in self.fills if fill_liquidity(f) == "maker")
        partial = sum(1 for f in self.fills if fill_order_size(f)[2])
        if n:
            parts.append(f"{makers:,} maker, {n - makers:,} taker")
        if partial:
            parts.append(f"{partial:,} partial")
        depth = str(self.report.get("depth_model") or "").strip()
        if depth:
            parts.append(f"depth: {depth}")
        parts += ["hover a row for the levels it took", "click a header to sort", "times UTC"]
        return " \u00b7 ".join(parts)

    # ---- building ----
    def _card(self, title: str, note: str, body: QWidget) -> QFrame:
        card = QFrame()
        card.setObjectName("card")
        lay = QVBoxLayout(card)
        lay.setContentsMargins(12, 10, 12, 12)
        lay.setSpacing(6)
        head = QHBoxLayout()
        t = QLabel(title)
        t.setObjectName("sectionTitle")
        from gui.panels import ElidedLabel  # a long note ends in "…" (whole in its tooltip)
        n = ElidedLabel(note)  # instead of widening the window past the screen
        n.setObjectName("sectionNote")
        head.addWidget(t)
        head.addSpacing(8)
        head.addWidget(n, 1)
        lay.addLayout(head)
        lay.addWidget(body, 1)
        return card

    def _build_header(self) -> QFrame:
        r = self.report
        card = QFrame()
        card.setObjectName("card")
        grid = QGridLayout(card)
        grid.setContentsMargins(16, 12, 16, 12)
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(4)

        eyebrow = QLabel("SESSION REPORT")
        eyebrow.setObjectName("eyebrow")
        run = QLabel(self.run_id)
        run.setObjectName("runId")
        run.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label = QLabel()
        status_badge(self.status_label, r.get("status"))
        self.status_label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

        source = str(r.get("source") or DASH)
        if r.get("offline_fallback"):
            source += f" (fallback from {r.get('requested_source', '?')})"
        if r.get("source") in ("replay", "local") or r.get("offline_fallback"):
            replay = str(r.get("replay_file") or "bundled data").strip("()")
            source += f" \u00b7 {replay} \u00b7 " \
                      f"speed {r.get('speed', DASH)}"
        facts = [
            ("Symbol", r.get("symbol") or DASH),
            ("Source", source),
            ("Started", (format_utc(r.get("started")) + " UTC") if r.get("started") else DASH),
            ("Data", f"{format_utc(r.get('data_start'))} \u2192 {format_utc(r.get('data_end'))}"
                     + (f" ({format_duration(r['duration_seconds'])})"
                        if r.get("duration_seconds") is not None else "")),
            ("Ended", r.get("stopped_reason") or DASH),
        ]
        spans = [f"<span style='color:{theme.MUTED}'>{_html(k)}</span>&nbsp;{_html(v)}"
                 for k, v in facts]
        gap = "&nbsp;" * 4
        facts_label = QLabel(gap.join(spans[:3]) + "<br>" + gap.join(spans[3:]))
        facts_label.setObjectName("facts")
        facts_label.setWordWrap(True)
        facts_label.setTextFormat(Qt.TextFormat.RichText)
        self.facts_label = facts_label

        pnl = r.get("pnl_absolute")
        self.pnl_label = QLabel(format_pnl(pnl))
        self.pnl_label.setObjectName("pnl")
        colour = sign_colour(pnl) or theme.TEXT
        self.pnl_label.setStyleSheet(f"font-size: 26px; font-weight: 700; color: {colour};")
        self.pnl_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.pnl_label.setToolTip(f"pnl_absolute = {pnl!r}")
        pct = to_decimal(r.get("pnl_pct"))
        sub_parts = ["net PnL"]
        if pct is not None:
            sub_parts.append(f"{format_money(pct, sign=True)} %")
        if "exit_code" in r:
            sub_parts.append(f"exit code {r.get('exit_code')}")
        sub = QLabel(" \u00b7 ".join(sub_parts))
        sub.setObjectName("pnlSub")
        sub.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        top = QHBoxLayout()
        top.addWidget(eyebrow)
        top.addSpacing(10)
        top.addWidget(self.status_label)
        top.addStretch(1)
        grid.addLayout(top, 0, 0)
        grid.addWidget(run, 1, 0)
        grid.addWidget(facts_label, 2, 0)
        grid.addWidget(self.pnl_label, 0, 1, 2, 1)
        grid.addWidget(sub, 2, 1)
        grid.setColumnStretch(0, 1)

        error = r.get("error") or self.load_error
        self.error_label = QLabel()
        self.error_label.setObjectName("errorText")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.setText(f"Error: {error}" if error else "")
        self.error_label.setVisible(bool(error))
        grid.addWidget(self.error_label, 3, 0, 1, 2)
        return card

    def _build_stats(self) -> QWidget:
        r = self.report
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(10)
        win = to_decimal(r.get("win_rate"))
        dd_pct = to_decimal(r.get("max_drawdown_pct"))
        stats = [
            ("STARTING EQUITY", format_money(r.get("starting_equity")), "USDT", None),
            ("FINAL EQUITY", format_money(r.get("final_equity")), "USDT", None),
            ("REALIZED PNL", format_money(r.get("realized_pnl"), sign=True), "USDT before fees",
             sign_colour(r.get("realized_pnl"))),
            ("FEES", format_money(r.get("fees")), "USDT", None),
            ("FILLS", format_number(r.get("fills")),
             f"{format_number(r['round_trips'])} round trips" if "round_trips" in r else "",
             None),
            ("WIN RATE", DASH if win is None else f"{float(win) * 100:.1f} %", _won_note(r), None),
            ("MAX DRAWDOWN", format_money(r.get("max_drawdown")),
             "USDT" + ("" if dd_pct is None else f" \u00b7 {float(dd_pct):.2f} %"), None),
        ]
        self.stat_values: dict[str, QLabel] = {}
        self.stat_notes: dict[str, QLabel] = {}
        for title, value, unit, colour in stats:
            card = QFrame()
            card.setObjectName("card")
            v = QVBoxLayout(card)
            v.setContentsMargins(12, 8, 12, 8)
            v.setSpacing(1)
            t = QLabel(title)
            t.setObjectName("statLabel")
            val = QLabel(value)
            val.setObjectName("statValue")
            if colour:
                val.setStyleSheet(f"color: {colour};")
            u = QLabel(unit)
            u.setObjectName("statLabel")
            v.addWidget(t)
            v.addWidget(val)
            v.addWidget(u)
            self.stat_values[title] = val
            self.stat_notes[title] = u
            lay.addWidget(card, 1)
        return row

    def _build_chart(self) -> QWidget:
        axis = pg.DateAxisItem(orientation="bottom", utcOffset=0)
        plot = pg.PlotWidget(background=theme.BG, axisItems={"bottom": axis})
        self.equity_plot = plot
        item = plot.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.12)
        item.setMenuEnabled(False)
        item.hideButtons()
        item.getAxis("left").setLabel("USDT")
        for name in ("left", "bottom"):
            ax = item.getAxis(name)
            ax.setPen(pg.mkPen(theme.DISABLED))
            ax.setTextPen(pg.mkPen(theme.TEXT_2))
        item.getAxis("left").setWidth(70)
        pts = self.equity_points
        if not pts:
            text = pg.TextItem("No equity data for this run", color=theme.MUTED,
                               anchor=(0.5, 0.5))
            plot.addItem(text)
            return plot
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        base_d = to_decimal(self.report.get("starting_equity"))
        base = float(base_d) if base_d is not None else ys[0]
        up = ys[-1] >= base
        colour = QColor(theme.GREEN_DARK if up else theme.RED)
        fill = QColor(colour)
        fill.setAlpha(28)
        step = self.equity_source == "fills"
        item.setDownsampling(auto=True, mode="peak")  # a week-long run has ~120k samples
        item.setClipToView(True)
        item.plot(xs, ys, pen=pg.mkPen(colour, width=2), fillLevel=base, brush=QBrush(fill),
                  symbol="o" if step else None, symbolSize=5, symbolBrush=colour,
                  symbolPen=None)
        baseline = pg.InfiniteLine(pos=base, angle=0, pen=pg.mkPen(theme.MUTED, width=1,
                                                                   style=Qt.PenStyle.DashLine))
        plot.addItem(baseline)
        label = pg.TextItem(f"start {format_money(base)}", color=theme.TEXT_2, anchor=(0, 1))
        label.setPos(xs[0], base)
        plot.addItem(label)
        lo, hi = min(ys + [base]), max(ys + [base])
        pad = max((hi - lo) * 0.12, 0.5)
        plot.setYRange(lo - pad, hi + pad, padding=0)
        plot.setXRange(xs[0], xs[-1], padding=0.02)
        return plot

    def _build_fields_tree(self) -> QTreeWidget:
        tree = QTreeWidget()
        tree.setColumnCount(2)
        tree.setHeaderLabels(["Field", "Value"])
        tree.setAlternatingRowColors(True)
        tree.setRootIsDecorated(True)
        tree.setUniformRowHeights(True)
        tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        mono = _mono()
        for key, value in self.report.items():
            item = QTreeWidgetItem([str(key), ""])
            self._fill_tree_item(item, key, value, mono)
            tree.addTopLevelItem(item)
        if not self.report:
            tree.addTopLevelItem(QTreeWidgetItem(["(no report)", self.load_error or ""]))
        tree.expandAll()
        tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        tree.header().setStretchLastSection(True)
        self.fields_tree = tree
        return tree

    def _fill_tree_item(self, item: QTreeWidgetItem, key: Any, value: Any, mono: QFont) -> None:
        if isinstance(value, dict):
            item.setText(1, f"{len(value)} field{'s' if len(value) != 1 else ''}"
                         if value else "(empty)")
            item.setForeground(1, QColor(theme.MUTED))
            for k, v in value.items():
                child = QTreeWidgetItem([str(k), ""])
                self._fill_tree_item(child, k, v, mono)
                item.addChild(child)
            return
        if isinstance(value, (list, tuple)):
            item.setText(1, f"{len(value)} item{'s' if len(value) != 1 else ''}"
                         if value else "none")
            item.setForeground(1, QColor(theme.MUTED))
            for i, v in enumerate(value, 1):
                child = QTreeWidgetItem([f"#{i}", ""])
                self._fill_tree_item(child, i, v, mono)
                item.addChild(child)
            return
        if value is None:
            text = DASH
        elif isinstance(value, str):
            text = format_utc(value) + " UTC" if _looks_iso(value) else value
        else:
            text = format_number(value)
        item.setText(1, text)
        item.setToolTip(1, f"{key} = {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            item.setFont(1, mono)
        colour = None
        if key == "status":
            colour = theme.status_colours(str(value))[1]
        elif key == "error" and value:
            colour = theme.RED
        elif key in ("pnl_absolute", "pnl_pct", "realized_pnl"):
            colour = sign_colour(value)
        if colour:
            item.setForeground(1, QColor(colour))
            font = item.font(1)
            font.setBold(True)
            item.setFont(1, font)

    @staticmethod
    def fill_cell(fill: dict, col: str) -> tuple[str, str, bool]:
        """(text, raw value, shown by default) of one cell: older rows without a column of
        the order book show what they were (market, taker, depth 0, the whole order)."""
        raw = fill.get(col)
        raw = "" if raw is None else str(raw)
        default = False
        if not raw and col in _FILL_DEFAULTS:
            raw, default = _FILL_DEFAULTS[col], True
        elif not raw and col in ("order_qty", "order_filled"):
            raw, default = str(fill.get("qty") or ""), True
        if col in _TS_FILL_COLUMNS and raw:
            text = format_utc(raw, millis=True)
        elif col == "depth_exhausted":
            text = "yes" if is_true(raw) else "no"
        elif col == "legs":
            legs = parse_legs(raw)
            text = (f"{len(legs)} level{'s' if len(legs) != 1 else ''}"
                    + (", impact" if is_true(fill.get("depth_exhausted")) else "")) if legs else ""
        elif col in _TEXT_FILL_COLUMNS:
            text = raw
        else:
            text = format_number(raw) if raw else ""
        if col == "order_qty" and text and fill_order_size(fill)[2]:
            text += " partial"
        return text, raw, default

    def _build_fills_table(self) -> QTableWidget:
        columns = FILL_VIEW_COLUMNS
        table = QTableWidget(len(self.fills), len(columns))
        table.setHorizontalHeaderLabels(list(columns))
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setAlternatingRowColors(True)
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setDefaultSectionSize(22)
        table.setWordWrap(False)
        mono = _mono()
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        for r, fill in enumerate(self.fills):
            # every cell's tooltip: its own value, then how the fill was priced (the levels)
            pricing = "\n".join(fill_pricing_lines(fill))
            for c, col in enumerate(columns):
                text, raw, default = self.fill_cell(fill, col)
                cell = SortItem(text or DASH, sort_key(raw))
                tip = (f"{col}: not recorded (older data), so {raw}" if default
                       else f"{col} = {raw}" if raw else f"{col}: empty")
                cell.setToolTip(f"{tip}\n\n{pricing}")
                if not raw or default:
                    cell.setForeground(QColor(theme.DISABLED))
                if col not in _TEXT_FILL_COLUMNS:
                    cell.setTextAlignment(right)
                    cell.setFont(mono)
                if col == "side":
                    cell.setForeground(QColor({"BUY": theme.GREEN_DARK, "SELL": theme.RED}.get(
                        raw.upper(), theme.TEXT)))
                    font = cell.font()
                    font.setBold(True)
                    cell.setFont(font)
                elif col == "realized_pnl" and sign_colour(raw):
                    cell.setForeground(QColor(sign_colour(raw)))
                elif col == "liquidity" and raw == "maker":
                    cell.setForeground(QColor(theme.BLUE))
                elif (col == "order_qty" and text.endswith(" partial")) or (
                        col in ("depth_exhausted", "legs") and is_true(
                            fill.get("depth_exhausted"))):
                    cell.setForeground(QColor(theme.ORANGE))
                table.setItem(r, c, cell)
        table.setSortingEnabled(True)
        table.sortItems(columns.index("seq"), Qt.SortOrder.AscendingOrder)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        table.resizeColumnsToContents()
        for c in range(table.columnCount()):
            table.setColumnWidth(c, min(max(table.columnWidth(c) + 10, 64), 260))
        for c, col in enumerate(columns):
            h = table.horizontalHeaderItem(c)
            if col not in _TEXT_FILL_COLUMNS:
                h.setTextAlignment(right)
        self.fills_table = table
        if self.fills:
            return table
        # An empty grid of 23 headers says less than one sentence.
        holder = QWidget()
        lay = QVBoxLayout(holder)
        lay.setContentsMargins(0, 0, 0, 0)
        table.setMaximumHeight(table.horizontalHeader().sizeHint().height() + 4)
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        empty = QLabel("No fills: this run placed no orders that filled.")
        empty.setObjectName("sectionNote")
        empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_fills_label = empty
        lay.addWidget(table)
        lay.addWidget(empty, 1)
        return holder

    def _build_buttons(self) -> QHBoxLayout:
        lay = QHBoxLayout()
        path = QLabel(str(self.run_dir))
        path.setObjectName("sectionNote")
        path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(path, 1)
        summary = self.run_dir / SUMMARY_HTML_NAME
        self.open_summary_button = QPushButton("Open summary.html")
        self.open_summary_button.setToolTip(f"Open {summary} in the web browser.")
        self.open_summary_button.setEnabled(summary.is_file())
        if not summary.is_file():
            self.open_summary_button.setToolTip("This run folder has no summary.html.")
        self.open_summary_button.clicked.connect(self._on_open_summary)
        self.open_folder_button = QPushButton("Open run folder")
        self.open_folder_button.setToolTip(f"Show {self.run_dir} in the file manager.")
        self.open_folder_button.setEnabled(self.run_dir.is_dir())
        self.open_folder_button.clicked.connect(self._on_open_folder)
        self.open_compare_button = QPushButton("Open compare.html")
        self.open_compare_button.clicked.connect(self._on_open_compare)
        self._update_compare_button()
        self.compare_button = QPushButton("Compare with\u2026")
        self.compare_button.setToolTip("Compare this run's fills, PnL, fees, drift and spread "
                                       "cost with another run of this data dir.")
        self.compare_button.setEnabled(bool(self.other_runs()))
        self.compare_button.clicked.connect(self._on_compare)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        for b in (self.compare_button, self.open_compare_button, self.open_summary_button,
                  self.open_folder_button, close):
            lay.addWidget(b)
        return lay

    def _update_compare_button(self) -> None:
        page = self.run_dir / COMPARE_HTML_NAME
        self.open_compare_button.setEnabled(page.is_file())
        self.open_compare_button.setToolTip(
            f"Open {page} in the web browser." if page.is_file() else
            "No comparison yet: a replay of a recording writes one, or use Compare with\u2026")

    def other_runs(self) -> list[str]:
        """Run folders of this data dir with a report, newest first (this one left out)."""
        runs = self.run_dir.parent
        try:
            out = [p.name for p in runs.iterdir() if p.name not in (self.run_dir.name, "latest")
                   and (p / "final_report.json").is_file()]
        except OSError:
            return []
        return sorted(out, reverse=True)

    def compare_with(self, other: str) -> Path | None:
        """Write compare.html here: `other` as the base, this run as the one compared."""
        from storage.journal import Journal
        from trading.runtime.replaying import write_comparison
        journal = None
        try:
            if self._journal_path().is_file():
                journal = Journal.open(self._journal_path())
            path = write_comparison(self.run_dir.parent / other, self.run_dir,
                                    journal=journal, base_label="base", other_label="this run",
                                    title=f"Run {self.run_id} compared with run {other}")
        finally:
            if journal is not None:
                journal.close()
        self._update_compare_button()
        return path

    def _on_compare(self) -> None:
        from PySide6.QtWidgets import QInputDialog
        runs = self.other_runs()
        other, ok = QInputDialog.getItem(self, "Compare with\u2026",
                                         f"Compare run {self.run_id} with:", runs, 0, False)
        if not ok or not other:
            return
        path = self.compare_with(other)
        if path is None:
            show_open_failure(self, self.run_dir / COMPARE_HTML_NAME,
                              "the comparison could not be written (see the log)")
            return
        open_local_path(path, self)

    def _on_open_compare(self) -> None:
        open_local_path(self.run_dir / COMPARE_HTML_NAME, self)

    # ---- slots ----
    def _on_open_summary(self) -> None:
        open_local_path(self.run_dir / SUMMARY_HTML_NAME, self)

    def _on_open_folder(self) -> None:
        open_local_path(self.run_dir, self)


def _html(value: Any) -> str:
    return html.escape(str(value))


def _looks_iso(text: str) -> bool:
    return len(text) >= 19 and text[4] == "-" and text[7] == "-" and text[10] == "T"


def _iso_to_epoch_s(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    ts = dt.timestamp()
    return ts if math.isfinite(ts) else None
