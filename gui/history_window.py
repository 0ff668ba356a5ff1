"""The run history window: every session in the journal, newest first, each report one click away.

Reads `Journal.sessions()` on the GUI thread (one short query) and closes the journal again, so
the window holds no connection while it is open. A run's folder is looked up where this data
dir keeps it (`runs/<run_dir_name(run_id)>`) before the journal's `report_dir`, which may be
redacted or point into a data dir that has since moved.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QLabel,
                               QPushButton, QTableWidget, QVBoxLayout, QWidget)

from gui import theme
from gui.screen_fit import fit_window
from gui.report_window import (DASH, ReportWindow, SortItem, format_pnl, format_utc, sign_colour,
                               sort_key)
from storage.paths import DataPaths
from storage.reports import FINAL_REPORT_NAME, read_report, run_dir_name

log = logging.getLogger("btc_laptop_agents.gui")

COLUMNS = ("Started (UTC)", "Run ID", "Source", "Symbol", "Status", "Exit code", "PnL",
           "Stopped reason")
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
# A report far beyond any real one (a few kB to a few MB) is not parsed on the GUI thread.
MAX_REPORT_BYTES = 32 * 1024 * 1024
# statuses the report window has no colour for: text colour, and what the status means
_STATUS_NOTES = {
    "abandoned": "Abandoned: the process running this session ended without finishing it "
                 "(crash, kill or power loss).",
}


def _style(p: theme.Palette) -> str:
    return f"""
QLabel#note {{ color: {p.MUTED}; }}
QLabel#warning {{ color: {p.WARN_TEXT}; }}
QLabel#empty {{ color: {p.MUTED}; font-size: 14px; padding: 24px; }}
QTableWidget {{ background: {p.BG}; alternate-background-color: {p.PANEL_2}; color: {p.TEXT};
               gridline-color: {p.GRID}; selection-background-color: {p.SELECTION};
               selection-color: {p.TEXT}; }}
QHeaderView::section {{ background: {p.PANEL}; color: {p.TEXT_2}; border: none;
                       border-bottom: 1px solid {p.BORDER}; border-right: 1px solid {p.BORDER};
                       padding: 4px 16px 4px 6px; font-weight: 600; }}
"""


class HistoryWindow(QWidget):
    """A top-level window listing past sessions from the journal at journal_path."""

    replay_requested = Signal(str)  # a run id whose recording the main window should replay

    def __init__(self, journal_path: Path, parent: QWidget | None = None, *,
                 data_dir: Path | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.journal_path = Path(journal_path)
        # the journal sits at the data dir's root (DataPaths.journal_file)
        self.data_dir = Path(data_dir) if data_dir is not None else self.journal_path.parent
        self.open_error: str | None = None  # why the last open_report() showed no window
        self.sessions: list[dict[str, Any]] = []
        self._windows: list[ReportWindow] = []  # keeps open windows from being collected
        self.setWindowTitle("Session history")
        self.setStyleSheet(_style(theme.current()))
        fit_window(self, 1100, 560, parent.window() if parent is not None else None)

        self.summary_label = QLabel()
        self.summary_label.setObjectName("note")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setStretchLastSection(True)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for c in (COLUMNS.index("Exit code"), COLUMNS.index("PnL")):
            self.table.horizontalHeaderItem(c).setTextAlignment(_RIGHT)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        self.table.cellDoubleClicked.connect(self._on_double_clicked)

        self.empty_label = QLabel("No sessions yet. Run a session and it will be listed here.")
        self.empty_label.setObjectName("empty")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.detail_label = QLabel()
        self.detail_label.setObjectName("note")
        self.detail_label.setWordWrap(True)
        self.open_button = QPushButton("Open report")
        self.open_button.setDefault(True)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.replay_button = QPushButton("Replay this session")
        self.replay_button.setEnabled(False)
        self.replay_button.clicked.connect(self._on_replay_clicked)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Read the journal again.")
        self.refresh_button.clicked.connect(self.refresh)
        close = QPushButton("Close")
        close.clicked.connect(self.close)

        buttons = QHBoxLayout()
        buttons.addWidget(self.detail_label, 1)
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.replay_button)
        buttons.addWidget(self.open_button)
        buttons.addWidget(close)

        root = QVBoxLayout(self)
        root.setContentsMargins(12, 12, 12, 10)
        root.addWidget(self.summary_label)
        root.addWidget(self.table, 1)
        root.addWidget(self.empty_label, 1)
        root.addLayout(buttons)
        self.refresh()
        theme.notifier().changed.connect(self._on_theme_changed)

    # ---- data ----
    def _read_sessions(self) -> tuple[list[dict[str, Any]], str | None]:
        if not self.journal_path.is_file():
            return [], None  # opening would create an empty journal: nothing to list
        from storage.journal import Journal
        try:
            journal = Journal.open(self.journal_path)
        except Exception as exc:  # a locked or unreadable journal: say so, keep the window
            log.warning("history_journal_failed", extra={"path": str(self.journal_path),
                                                         "error": str(exc)})
            return [], f"Could not open the journal {self.journal_path}: {exc}"
        try:
            return journal.sessions(), None
        except Exception as exc:
            log.warning("history_journal_failed", extra={"path": str(self.journal_path),
                                                         "error": str(exc)})
            return [], f"Could not read the journal {self.journal_path}: {exc}"
        finally:
            journal.close()

    def _on_theme_changed(self, _name: str) -> None:
        self.setStyleSheet(_style(theme.current()))
        self.refresh()  # the rows' colours are set when they are filled

    def refresh(self) -> None:
        """Re-read the journal and rebuild the list (newest first); keep the selected run."""
        selected = self.selected_run_id()
        sessions, error = self._read_sessions()
        self.sessions = sessions
        table = self.table
        table.setSortingEnabled(False)
        table.clearContents()
        table.setRowCount(len(sessions))
        for r, s in enumerate(sessions):
            self._fill_row(r, s)
        table.setSortingEnabled(True)
        table.sortItems(0, Qt.SortOrder.DescendingOrder)
        table.resizeColumnsToContents()
        for c in range(table.columnCount() - 1):
            table.setColumnWidth(c, min(table.columnWidth(c) + 12, 320))

        has_rows = bool(sessions)
        table.setVisible(has_rows)
        self.empty_label.setVisible(not has_rows)
        if error:
            self.empty_label.setText(error)
        else:
            self.empty_label.setText("No sessions yet. Run a session and it will be listed "
                                     "here.")
        n = len(sessions)
        self.summary_label.setText(
            f"{n:,} session{'s' if n != 1 else ''} in {self.journal_path} \u00b7 double-click a "
            "row to open its report" if has_rows else str(self.journal_path))
        row = self._row_of(selected) if selected else None
        if row is None and has_rows:
            row = 0
        if row is not None:
            table.selectRow(row)
        self._on_selection_changed()

    def _fill_row(self, r: int, s: dict[str, Any]) -> None:
        status = str(s.get("status") or "")
        pnl = s.get("pnl_absolute")
        cells = [
            (format_utc(s.get("started_ts")) if s.get("started_ts") else DASH,
             sort_key(s.get("started_ts")), False),
            (str(s.get("run_id") or ""), sort_key(s.get("run_id")), False),
            (str(s.get("source") or DASH), sort_key(s.get("source")), False),
            (str(s.get("symbol") or DASH), sort_key(s.get("symbol")), False),
            (status.upper() or DASH, sort_key(status), False),
            (DASH if s.get("exit_code") is None else str(s.get("exit_code")),
             sort_key(s.get("exit_code")), True),
            (format_pnl(pnl), sort_key(pnl), True),
            (str(s.get("stopped_reason") or DASH), sort_key(s.get("stopped_reason")), False),
        ]
        for c, (text, key, numeric) in enumerate(cells):
            item = SortItem(text, key)
            if numeric:
                item.setTextAlignment(_RIGHT)
            item.setToolTip(text)
            item.setData(Qt.ItemDataRole.UserRole, s.get("run_id"))
            self.table.setItem(r, c, item)
        status_item = self.table.item(r, COLUMNS.index("Status"))
        note = _STATUS_NOTES.get(status)
        status_item.setForeground(QColor(
            theme.WARN_TEXT if note else theme.status_colours(status)[1]))
        if note:
            status_item.setToolTip(note)
        font = status_item.font()
        font.setBold(True)
        status_item.setFont(font)
        colour = sign_colour(pnl)
        if colour:
            self.table.item(r, COLUMNS.index("PnL")).setForeground(QColor(colour))
        if self.run_dir(s) is None:
            why = _no_report_reason(status)
            for c in range(len(COLUMNS)):
                item = self.table.item(r, c)
                if c != COLUMNS.index("Status"):
                    item.setForeground(QColor(theme.DISABLED))
                item.setToolTip(f"{item.toolTip()}\nNo report: {why}.")

    # ---- selection ----
    def _row_of(self, run_id: str) -> int | None:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == run_id:
                return row
        return None

    def selected_run_id(self) -> str | None:
        """Return the run id of the selected row, or None."""
        rows = self.table.selectionModel().selectedRows() if self.table.rowCount() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def run_ids(self) -> list[str]:
        """Return the run ids in the order the table shows them."""
        return [self.table.item(r, 0).data(Qt.ItemDataRole.UserRole)
                for r in range(self.table.rowCount())]

    def _session(self, run_id: str | None) -> dict[str, Any] | None:
        return next((s for s in self.sessions if s.get("run_id") == run_id), None)

    def _on_selection_changed(self) -> None:
        s = self._session(self.selected_run_id())
        rec = self.recording_of(s) if s is not None else None
        self.replay_button.setEnabled(rec is not None)
        self.replay_button.setToolTip(
            f"Replay {rec} exactly, from the run's own account and settings; the report then "
            f"compares the replay with it." if rec is not None else
            "Select a session that was recorded (its run folder holds recording.jsonl.gz).")
        if s is None:
            self.open_button.setEnabled(False)
            self.open_button.setToolTip("Select a session first.")
            self.detail_label.setText("")
            return
        folder = self.run_dir(s)
        self.open_button.setEnabled(folder is not None)
        if folder is not None:
            self.open_button.setToolTip(f"Open the report in {folder}.")
            self._set_detail(str(folder), warning=False)
        else:
            where = s.get("report_dir") or "(not recorded)"
            reason = _no_report_reason(s.get("status"))
            self.open_button.setToolTip(f"No report: {reason}.")
            self._set_detail(f"No report for {s.get('run_id')}: {reason} ({where}).",
                             warning=True)

    def _set_detail(self, text: str, *, warning: bool) -> None:
        self.detail_label.setObjectName("warning" if warning else "note")
        self.detail_label.setText(text)
        self.detail_label.style().unpolish(self.detail_label)
        self.detail_label.style().polish(self.detail_label)

    # ---- locating ----
    def run_dir(self, session: dict[str, Any]) -> Path | None:
        """Return the folder holding the session's final report, or None if there is none.

        This data dir's runs/<run_dir_name(run_id)> first; the journal's report_dir only as a
        fallback, and only if a report is there (it may be "[REDACTED]" or stale).
        """
        candidates = []
        run_id = session.get("run_id")
        if run_id:
            candidates.append(DataPaths(self.data_dir).runs_dir / run_dir_name(str(run_id)))
        if isinstance(session.get("report_dir"), str) and session["report_dir"].strip():
            candidates.append(session["report_dir"])
        for candidate in candidates:
            try:
                folder = Path(candidate)
                if (folder / FINAL_REPORT_NAME).is_file():
                    return folder
            except (OSError, ValueError):  # a NUL byte or an over-long name from the journal
                continue
        return None

    def recording_of(self, session: dict[str, Any]) -> Path | None:
        """The session's recording in this data dir, if it was recorded."""
        from trading.runtime.recording import RECORDING_NAME
        run_id = session.get("run_id")
        if not run_id:
            return None
        path = DataPaths(self.data_dir).runs_dir / run_dir_name(str(run_id)) / RECORDING_NAME
        try:
            return path if path.is_file() and path.stat().st_size > 0 else None
        except OSError:
            return None

    def _on_replay_clicked(self) -> None:
        run_id = self.selected_run_id()
        if run_id:
            self.replay_requested.emit(run_id)

    # ---- opening ----
    def open_report(self, run_id: str | None = None) -> ReportWindow | None:
        """Open the report of run_id (default: the selected run); return the window or None."""
        run_id = run_id or self.selected_run_id()
        s = self._session(run_id)
        self.open_error = None
        folder = self.run_dir(s) if s is not None else None
        if folder is None:
            return None
        error = check_report(folder)
        window = None
        if error is None:
            try:
                window = ReportWindow(folder, parent=self)
            except Exception as exc:  # noqa: BLE001 - a damaged report must not close History
                error = f"Could not show the report in {folder}: {_describe(exc)}"
                for orphan in self.findChildren(ReportWindow):  # the half-built one
                    if orphan not in self._windows:
                        orphan.deleteLater()
        if error is not None:
            log.warning("history_report_failed", extra={"run_id": run_id,
                                                        "run_dir": str(folder), "error": error})
            self.open_error = error
            self._set_detail(error, warning=True)
            return None
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        self._windows = [w for w in self._windows if shiboken6.isValid(w)] + [window]
        window.show()
        window.raise_()
        window.activateWindow()
        return window

    @property
    def report_windows(self) -> list[ReportWindow]:
        """Return the report windows opened from here that are still open."""
        # Pruned by validity, not via `destroyed`: a Python slot on a widget being destroyed
        # crashes PySide.
        return [w for w in self._windows if shiboken6.isValid(w) and w.isVisible()]

    def _on_open_clicked(self) -> None:
        self.open_report()

    def _on_double_clicked(self, row: int, _column: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            self.open_report(item.data(Qt.ItemDataRole.UserRole))


def _no_report_reason(status: Any) -> str:
    if status == "running":
        return "the session has not written it yet"
    if status == "abandoned":
        return "the session was abandoned before it wrote one"
    return "its folder no longer exists"


def check_report(run_dir: Path) -> str | None:
    """Return why run_dir's final report cannot be shown, or None if it reads as a JSON object.

    The file is untrusted: too big, not UTF-8, not JSON, nested too deeply or not an object
    all come back as a message, never as an exception. GUI thread.
    """
    path = Path(run_dir) / FINAL_REPORT_NAME
    try:
        size = path.stat().st_size
        if size > MAX_REPORT_BYTES:
            return (f"Could not read {path}: it is {size / 1e6:,.0f} MB, more than any report "
                    f"this app writes ({MAX_REPORT_BYTES // (1024 * 1024)} MB at most).")
        read_report(Path(run_dir))
    except Exception as exc:  # noqa: BLE001 - whatever the file holds, the window stays up
        return f"Could not read {path}: {_describe(exc)}"
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "the JSON is nested too deeply"
    if isinstance(exc, MemoryError):
        return "the file is too large to read"
    text = str(exc)
    if len(text) > 300:
        text = text[:299] + "\u2026"
    return f"{type(exc).__name__}: {text}"
