"""History's "Replay this session" and the report window's "Compare with…", as a user sees them."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from PySide6.QtWidgets import QPushButton

from gui.history_window import HistoryWindow
from gui.report_window import ReportWindow
from trading.runtime.session import Session, SessionConfig


@pytest.fixture
def recorded_run(data_dir):
    from storage.logger import temporary_logging
    with temporary_logging(data_dir, console=False):
        s = Session(SessionConfig(data_dir=data_dir, source="replay", speed=math.inf,
                                  duration_min=10, replay_start_index=700, seed=5))
        assert s.run() == 0
    return s


def _visible_button(window, text: str) -> QPushButton:
    found = [b for b in window.findChildren(QPushButton) if b.text() == text]
    assert len(found) == 1, text
    b = found[0]
    assert b.isVisible() and b.width() >= b.sizeHint().width() - 2, f"{text!r} is clipped"
    return b


def test_history_offers_a_replay_only_for_a_recorded_session(qtbot, recorded_run, data_dir):
    hw = HistoryWindow(data_dir / "journal.sqlite3", data_dir=data_dir)
    qtbot.addWidget(hw)
    hw.show()
    button = _visible_button(hw, "Replay this session")
    hw.table.clearSelection()
    assert not button.isEnabled()  # nothing selected
    hw.table.selectRow(0)
    assert hw.selected_run_id() == recorded_run.run_id
    assert button.isEnabled() and "recording.jsonl.gz" in button.toolTip()
    with qtbot.waitSignal(hw.replay_requested, timeout=2000) as got:
        button.click()
    assert got.args == [recorded_run.run_id]
    (Path(recorded_run.run_dir) / "recording.jsonl.gz").unlink()
    hw.table.clearSelection()
    hw.table.selectRow(0)
    assert not button.isEnabled() and "was recorded" in button.toolTip()


def test_replay_from_the_window_makes_the_same_fills_and_a_comparison(qtbot, make_window,
                                                                      recorded_run, data_dir):
    w = make_window()
    assert w.replay_recording(recorded_run.run_id)
    assert "replay of " + recorded_run.run_id in w.run_label.text()
    qtbot.waitUntil(lambda: not w.controller.is_running, timeout=60_000)
    report = w.last_report
    assert report["source"] == "recording" and report["status"] == "success"
    assert report["fills"] == len(recorded_run.fills) > 0
    assert report["pnl_absolute"] == recorded_run.final_report["pnl_absolute"]
    run_dir = data_dir / "runs" / report["run_id"]
    assert (run_dir / "compare.html").is_file()
    rw = ReportWindow(run_dir)
    qtbot.addWidget(rw)
    rw.show()
    assert _visible_button(rw, "Open compare.html").isEnabled()


def test_compare_with_writes_a_comparison_of_two_runs(qtbot, recorded_run, data_dir,
                                                      monkeypatch):
    from storage.logger import temporary_logging
    with temporary_logging(data_dir, console=False):
        other = Session(SessionConfig(data_dir=data_dir, source="replay", speed=math.inf,
                                      duration_min=10, replay_start_index=700, seed=5,
                                      reset_account=True,
                                      broker=recorded_run.config.broker.__class__(
                                          latency_ms=3000)))
        assert other.run() == 0
    rw = ReportWindow(Path(other.run_dir))
    qtbot.addWidget(rw)
    rw.show()
    button = _visible_button(rw, "Compare with\u2026")
    assert button.isEnabled()
    assert not _visible_button(rw, "Open compare.html").isEnabled()
    assert rw.other_runs() == [recorded_run.run_id]
    opened = []
    monkeypatch.setattr("gui.report_window.open_local_path",
                        lambda path, parent=None: opened.append(Path(path)) or True)
    monkeypatch.setattr("PySide6.QtWidgets.QInputDialog.getItem",
                        lambda *a, **k: (recorded_run.run_id, True))
    button.click()
    page = Path(other.run_dir) / "compare.html"
    assert opened == [page] and page.is_file()
    text = page.read_text()
    assert recorded_run.run_id in text and "execution_latency_ms" in text
    assert _visible_button(rw, "Open compare.html").isEnabled()


def test_a_long_fills_note_never_widens_the_report_window_past_the_screen(qtbot, recorded_run):
    from PySide6.QtWidgets import QLabel
    rw = ReportWindow(Path(recorded_run.run_dir))
    qtbot.addWidget(rw)
    rw.show()
    before = rw.minimumSizeHint().width()
    notes = [lb for lb in rw.findChildren(QLabel) if lb.objectName() == "sectionNote"]
    long_note = next(lb for lb in notes if "fills" in lb.text())
    long_note.setText(long_note.text() + " · " + "a very long explanation " * 20)
    qtbot.wait(50)
    assert rw.minimumSizeHint().width() == before  # it ends in "…" instead of widening
    assert long_note.toolTip() == long_note.text()  # the whole note is one hover away
