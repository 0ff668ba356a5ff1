"""Every session is recorded; a recording replays exactly, and a changed setting is compared.

The acceptance case: a session on the local exchange with chaos faults (a drop and a stall) and
a watchdog restart, replayed with --speed max from the command line, gives identical fills and
PnL; a second replay with another latency writes compare.html with the differences.
"""
from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import os
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from trading.runtime.recording import RECORDING_NAME, RecordingError, iter_records, read_head
from trading.runtime.session import Session, SessionConfig, new_run_id
from trading.runtime.watchdog import Watchdog, WatchdogConfig

ROOT = Path(__file__).resolve().parents[2]
SAME = ("side", "qty", "reason", "signal_ts", "signal_px", "due_ts", "fill_ts", "fill_px",
        "bid", "ask", "fee", "realized_pnl", "position_after", "cash_after", "trigger",
        "trigger_px")


def _fills(run_dir: Path) -> list[dict]:
    with open(run_dir / "fills.csv", newline="") as f:
        return list(csv.DictReader(f))


def _report(run_dir: Path) -> dict:
    return json.loads((run_dir / "final_report.json").read_text())


def _main(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--headless", "--quiet",
                           *args], capture_output=True, text=True, timeout=300, env=env,
                          cwd=ROOT)


def _newest_run(data_dir: Path, not_in: set[str]) -> Path:
    runs = [p for p in (data_dir / "runs").iterdir()
            if p.name != "latest" and p.name not in not_in]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A chaos session with a watchdog restart on the local exchange, recorded."""
    data_dir = tmp_path_factory.mktemp("rec")
    cfg = SessionConfig(data_dir=data_dir, source="replay", speed=60.0, seed=1,
                        replay_start_index=475, duration_min=7, stale_after_s=1.0,
                        chaos="drop@90s,stall@200s:2.5s", inject_crash_after_s=5.0)
    run_id = new_run_id()
    sessions: list[Session] = []

    def make(resume: bool) -> Session:
        c = dataclasses.replace(cfg, resume=True, watchdog_resume=True) if resume else cfg
        s = Session(c, run_id=run_id)
        sessions.append(s)
        return s

    dog = Watchdog(make, WatchdogConfig(restart_delay_s=0.3, hang_after_s=20))
    out = []
    t = threading.Thread(target=lambda: out.append(dog.run()))
    t.start()
    t.join(120)
    assert out == [0]
    run_dir = sessions[-1].run_dir
    return data_dir, run_id, Path(run_dir)


def test_the_session_was_recorded_with_its_faults_and_restart(recorded):
    data_dir, run_id, run_dir = recorded
    report = _report(run_dir)
    assert report["restarts"] == 1 and report["reconnects"] >= 2
    assert report["fills"] >= 4
    header, first = read_head(run_dir / RECORDING_NAME)
    assert header["run_id"] == run_id and header["clock"] == "data"
    assert first["seg"] == 1 and "broker" in first["state"]
    records = list(iter_records(run_dir / RECORDING_NAME))
    kinds = {k for r in records for k in r if k in ("f", "k", "r", "seg", "skip", "end",
                                                    "warmup", "segend")}
    assert {"f", "r", "seg", "end", "warmup", "segend"} <= kinds
    assert sum(1 for r in records if "seg" in r) == 2  # the restart is a segment boundary
    assert report["recording"]["frames"] == sum(1 for r in records if "f" in r)


def test_a_replay_of_the_recording_makes_identical_fills_and_pnl(recorded):
    data_dir, run_id, run_dir = recorded
    before = {p.name for p in (data_dir / "runs").iterdir()}
    p = _main("--source", f"recording:{run_id}", "--speed", "max", "--data-dir", str(data_dir))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    replay_dir = _newest_run(data_dir, before)
    a, b = _fills(run_dir), _fills(replay_dir)
    assert len(a) == len(b) >= 4
    for x, y in zip(a, b):
        assert {k: x[k] for k in SAME} == {k: y[k] for k in SAME}
        assert x["order_id"] != y["order_id"]  # each run numbers its own orders
    ra, rb = _report(run_dir), _report(replay_dir)
    assert Decimal(str(ra["pnl_absolute"])) == Decimal(str(rb["pnl_absolute"]))
    assert ra["fees"] == rb["fees"] and ra["cash"] == rb["cash"]
    assert rb["source"] == "recording" and rb["account_source"] == "recording"
    page = (replay_dir / "compare.html").read_text()
    assert run_id in page and "dentical" in page


def test_a_replay_with_another_latency_writes_the_differences_to_compare_html(recorded):
    data_dir, run_id, run_dir = recorded
    before = {p.name for p in (data_dir / "runs").iterdir()}
    p = _main("--source", f"recording:{run_id}", "--speed", "max", "--data-dir", str(data_dir),
              "--execution-latency-ms", "200")
    assert p.returncode == 0, p.stderr[-3000:]
    replay_dir = _newest_run(data_dir, before)
    fills = _fills(replay_dir)
    assert fills and all(f["latency_ms"] in ("200", "") for f in fills)
    page = (replay_dir / "compare.html").read_text()
    assert "execution_latency_ms" in page and "1000" in page and "200" in page
    # the replay never moved the data dir's paper account
    state = json.loads((data_dir / "paper" / "broker_state.json").read_text())
    assert state["run_id"] == run_id


def test_the_same_what_if_twice_gives_the_same_fills(recorded):
    data_dir, run_id, _ = recorded
    dirs = []
    for _ in range(2):
        before = {p.name for p in (data_dir / "runs").iterdir()}
        p = _main("--source", f"recording:{run_id}", "--speed", "max", "--data-dir",
                  str(data_dir), "--execution-latency-ms", "3000", "--no-record")
        assert p.returncode == 0, p.stderr[-3000:]
        dirs.append(_newest_run(data_dir, before))
    a, b = (_fills(d) for d in dirs)
    assert [{k: x[k] for k in SAME} for x in a] == [{k: x[k] for k in SAME} for x in b]
    assert not (dirs[0] / RECORDING_NAME).exists()  # --no-record


def test_a_bad_recording_reference_is_a_clear_error_and_writes_nothing(tmp_path):
    p = _main("--source", "recording:no-such-run", "--data-dir", str(tmp_path))
    assert p.returncode == 2
    assert "no recording for 'no-such-run'" in p.stderr
    assert not list((tmp_path / "runs").glob("2*")) if (tmp_path / "runs").exists() else True
    p = _main("--source", "recording:", "--data-dir", str(tmp_path))
    assert p.returncode == 2 and "recording needs a run id or a path" in p.stderr
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(gzip.compress(b'{"not": "a recording"}\n'))
    p = _main("--source", f"recording:{bad}", "--data-dir", str(tmp_path))
    assert p.returncode == 2 and "is not a recording of this app" in p.stderr
    p = _main("--source", f"recording:{bad}", "--data-dir", str(tmp_path), "--chaos",
              "drop@5s")
    assert p.returncode == 2 and "--chaos: not used with --source recording" in p.stderr


def test_a_recording_cut_off_by_a_kill_still_reads_up_to_the_cut(recorded, tmp_path):
    _, _, run_dir = recorded
    whole = (run_dir / RECORDING_NAME).read_bytes()
    cut = tmp_path / RECORDING_NAME
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    n_whole = sum(1 for _ in iter_records(run_dir / RECORDING_NAME))
    n_cut = sum(1 for _ in iter_records(cut))
    assert 0 < n_cut < n_whole
    with pytest.raises(RecordingError):
        list(iter_records(tmp_path / "missing.jsonl.gz"))
