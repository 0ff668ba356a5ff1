"""Autonomy: the watchdog restarts crashed or hung sessions for the remaining time, the
supervisor restarts killed children, and a restart loses and duplicates no fill."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal

from tests.conftest import ROOT, read_log
from trading.runtime.session import Session, SessionConfig, new_run_id
from trading.runtime.watchdog import Watchdog, WatchdogConfig


def _factory(cfg: SessionConfig, sessions: list):
    run_id = new_run_id()

    def make(resume: bool) -> Session:
        s = Session(dataclasses.replace(cfg, resume=resume) if resume else cfg, run_id=run_id)
        sessions.append(s)
        return s
    return make


def test_crash_with_open_position_is_restarted_and_position_restored(data_dir):
    cfg = SessionConfig(data_dir=data_dir, source="replay", speed=60.0, seed=1,
                        replay_start_index=475, duration_min=8)
    sessions: list[Session] = []
    dog = Watchdog(_factory(cfg, sessions), WatchdogConfig(restart_delay_s=0.5, hang_after_s=10))
    result = []
    t = threading.Thread(target=lambda: result.append(dog.run()))
    t.start()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:  # wait for an open position, then crash a session thread
        if not sessions:
            time.sleep(0.02)
            continue
        s = sessions[0]
        if s.broker.position.qty != 0 and s.worker is not None:
            s.worker.inject_crash(time.monotonic(), s._on_inject_crash)
            crashed_at = time.monotonic()
            break
        time.sleep(0.02)
    else:
        raise AssertionError("no position opened")
    t.join(90)
    assert result == [0]
    assert len(sessions) == 2
    s2 = sessions[1]
    assert s2.resumed and s2.segment == 2
    log = read_log(data_dir)
    crash = next(r for r in log if r["message"] == "injected_crash")
    resumed = next(r for r in log if r["message"] == "session_resumed")
    assert Decimal(crash["position_qty"]) != 0
    assert resumed["position_qty"] == crash["position_qty"]  # the open position came back
    restart = next(r for r in log if r["message"].startswith("Watchdog restarting session"))
    assert "remaining" in restart["message"] and "thread 'execution'" in restart["reason"]
    assert s2.started_mono - crashed_at < 5.0  # restarted within ~5 s (delay 0.5 s here)
    report = json.loads((s2.run_dir / "final_report.json").read_text())
    assert report["status"] == "success" and report["restarts"] == 1
    assert report["duration_seconds"] == 8 * 60  # the whole session, not the last segment
    assert len(report["segments"]) == 2
    assert "crashed" in report["segments"][0]["exit_reason"] or \
        "thread" in report["segments"][0]["exit_reason"]
    ids = [f["order_id"] for f in report_fills(s2)]
    assert len(ids) == len(set(ids)) == report["fills"]
    led = s2.broker.ledger
    assert led.cash == led.starting_cash + led.realized_pnl - led.fees - led.funding


def report_fills(s: Session) -> list[dict]:
    import csv
    with open(s.run_dir / "fills.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_hung_session_is_detected_and_restarted(tmp_path):
    d = tmp_path / "d"
    p = subprocess.run(
        [sys.executable, "main.py", "--headless", "--duration", "5", "--source", "replay",
         "--speed", "60", "--seed", "2", "--data-dir", str(d), "--inject-hang-after-s", "1.5",
         "--hang-after-s", "1.5", "--restart-delay-s", "0.5", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads((d / "runs" / "latest" / "final_report.json").read_text())
    assert report["status"] == "success" and report["restarts"] == 1
    assert report["duration_seconds"] == 300
    assert "hung" in report["segments"][0]["exit_reason"]
    assert "Watchdog restarting session" in p.stderr and "hung" in p.stderr


class _CrashEverySegment(Session):
    def _on_inject_crash(self) -> None:
        pass  # never remembered as fired: every segment crashes again


def test_repeated_crashes_make_the_watchdog_give_up_with_an_error_report(data_dir):
    cfg = SessionConfig(data_dir=data_dir, source="replay", speed=math.inf, duration_min=60,
                        replay_start_index=300, inject_crash_after_s=0.0)
    sessions: list[Session] = []
    run_id = new_run_id()

    def make(resume: bool) -> Session:
        s = _CrashEverySegment(dataclasses.replace(cfg, resume=resume), run_id=run_id)
        sessions.append(s)
        return s
    dog = Watchdog(make, WatchdogConfig(restart_delay_s=0.05, max_restarts=2))
    assert dog.run() == 1
    report = json.loads((sessions[-1].run_dir / "final_report.json").read_text())
    assert report["status"] == "error" and report["exit_code"] == 1
    assert "gave up after 2 restarts" in report["error"]
    assert report["restarts"] == 2 and len(report["segments"]) == 3
    assert report["open_position_qty"] in ("0", "0.000")


class _KilledBeforeStateWrite(Session):
    """Simulates a kill between the journal commit of a fill and the state file write."""

    def _save_state(self, status):
        if self.fills and status == "running" and not self.resumed:
            return  # the state file stays behind the journal from the first fill on
        super()._save_state(status)


def test_state_behind_the_journal_is_repaired_without_duplicating_fills(data_dir):
    cfg = SessionConfig(data_dir=data_dir, source="replay", speed=math.inf, duration_min=20,
                        replay_start_index=700, inject_strategy_error_at=9)
    first = _KilledBeforeStateWrite(cfg)
    assert first.run_segment() == "crashed"
    assert len(first.fills) >= 2
    fills_at_crash = [f["order_id"] for f in first.fills]
    second = Session(dataclasses.replace(cfg, resume=True, inject_strategy_error_at=None),
                     run_id=first.run_id)
    assert second.run_segment() == "completed"
    assert second.repairs and "journalled fill" in second.repairs[0]
    assert second.finalize() == 0
    ids = [f["order_id"] for f in second.fills]
    assert len(ids) == len(set(ids))
    assert ids[:len(fills_at_crash)] == fills_at_crash
    led = second.broker.ledger
    assert led.cash == led.starting_cash + led.realized_pnl - led.fees - led.funding
    assert sum(Decimal(f["fee"]) for f in second.fills) == led.fees
    assert any(r.get("message") == "state_repaired_from_journal" for r in read_log(data_dir))


def test_kill_torture_three_kills_lose_and_duplicate_nothing(tmp_path):
    # limit entries rest and fill in parts: kills land on working, partially filled orders
    p = subprocess.run([sys.executable, "scripts/kill_torture.py", "--kills", "3", "--duration",
                        "6", "--speed", "40", "--data-dir", str(tmp_path / "t"),
                        "--timeout-s", "240", "--order-type", "limit"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = json.loads(p.stdout)
    assert p.returncode == 0, out
    assert out["kills"] == 3 and out["restarts"] == 3
    assert out["lost"] == 0 and out["duplicated"] == 0 and out["cash_exact"] is True
    assert out["fills_journal"] == out["fills_csv"] == out["fills_report"] >= 2
    assert out["replay_identical"] is True  # and the recording of the killed run replays


def test_supervisor_sigterm_stops_cleanly_and_writes_the_report(tmp_path):
    d = tmp_path / "d"
    sup = subprocess.Popen([sys.executable, "main.py", "--headless", "--supervise", "--quiet",
                            "--duration", "30", "--source", "replay", "--speed", "10",
                            "--data-dir", str(d)], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    pid_file = d / "paper" / "child.pid"
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3)
    sup.send_signal(signal.SIGTERM)
    out, err = sup.communicate(timeout=60)
    assert sup.returncode == 0, err[-2000:]
    report = json.loads((d / "runs" / "latest" / "final_report.json").read_text())
    assert report["status"] == "success"
    assert "SIGTERM" in report["stopped_reason"]
    assert report["open_position_qty"] in ("0", "0.000")
    assert not pid_file.exists()
    assert os.path.exists(d / "journal.sqlite3")


def test_a_strategy_error_is_not_restarted(data_dir):
    cfg = SessionConfig(data_dir=data_dir, source="replay", speed=math.inf, duration_min=30,
                        replay_start_index=700, inject_strategy_error_at=2)
    sessions: list[Session] = []
    dog = Watchdog(_factory(cfg, sessions), WatchdogConfig(restart_delay_s=0.05))
    assert dog.run() == 1
    assert len(sessions) == 1
    report = json.loads((sessions[0].run_dir / "final_report.json").read_text())
    assert report["status"] == "error" and report["restarts"] == 0
    assert "not restartable" in report["error"] and "injected strategy error" in report["error"]
