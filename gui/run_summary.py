"""A compact end-of-run summary, used when the full report window is not part of this build."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QGridLayout, QLabel, QPushButton,
                               QVBoxLayout, QWidget)

from gui import theme
from gui.theme import fmt_bps, fmt_money, fmt_pct_or_dash


class RunSummaryWindow(QDialog):
    """Key figures of final_report.json, with buttons for summary.html and the run folder."""

    FIGURES = (
        ("status", "Status", str),
        ("pnl_absolute", "PnL (USDT)", lambda v: fmt_money(v, sign=True)),
        ("pnl_pct", "PnL (%)", fmt_pct_or_dash),
        ("final_equity", "Final equity", fmt_money),
        ("fills", "Fills", str),
        ("round_trips", "Round trips", str),
        ("fees", "Fees (USDT)", fmt_money),
        ("mean_spread_cost_bps", "Mean spread cost (bps)", fmt_bps),
        ("mean_latency_drift_bps", "Mean latency drift (bps)", fmt_bps),
        ("max_drawdown", "Max drawdown (USDT)", fmt_money),
        ("reconnects", "Reconnects", str),
        ("restarts", "Watchdog restarts", str),
        ("source", "Source", str),
        ("stopped_reason", "Ended because", str),
    )

    def __init__(self, run_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_dir = Path(run_dir)
        self.setWindowTitle(f"Run report — {self.run_dir.name}")
        self.values: dict[str, QLabel] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(18, 16, 18, 12)
        try:
            from storage.reports import read_report
            self.report = read_report(self.run_dir)
            error = None
        except (OSError, ValueError) as e:
            self.report, error = {}, f"Could not read the report in {self.run_dir}: {e}"
        head = QLabel(f"<b>Run {self.report.get('run_id', self.run_dir.name)}</b>")
        head.setTextFormat(Qt.RichText)
        lay.addWidget(head)
        if error:
            lay.addWidget(QLabel(error))
        grid = QGridLayout()
        grid.setHorizontalSpacing(24)
        for i, (key, title, fmt) in enumerate(self.FIGURES):
            k = QLabel(title)
            k.setObjectName("panelKey")
            raw = self.report.get(key)
            v = QLabel("–" if raw is None else fmt(raw))
            v.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
            v.setTextInteractionFlags(Qt.TextSelectableByMouse)
            if key == "pnl_absolute":
                v.setStyleSheet(f"color: {theme.sign_colour(raw)}; font-weight: 600;")
            if key == "status":
                v.setStyleSheet(f"color: {theme.GREEN if raw == 'success' else theme.RED};"
                                " font-weight: 600;")
            grid.addWidget(k, i, 0)
            grid.addWidget(v, i, 1)
            self.values[key] = v
        lay.addLayout(grid)
        if self.report.get("error"):
            err = QLabel(f"Error: {self.report['error']}")
            err.setWordWrap(True)
            err.setStyleSheet(f"color: {theme.RED};")
            lay.addWidget(err)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        html_button = QPushButton("Open summary.html")
        from gui.report_window import open_local_path
        html_button.clicked.connect(lambda: open_local_path(self.run_dir / "summary.html", self))
        folder_button = QPushButton("Open folder")
        folder_button.clicked.connect(lambda: open_local_path(self.run_dir, self))
        buttons.addButton(html_button, QDialogButtonBox.ActionRole)
        buttons.addButton(folder_button, QDialogButtonBox.ActionRole)
        buttons.rejected.connect(self.close)
        lay.addWidget(buttons)
        self.resize(460, 0)
