"""Data safety end to end: one writer per data dir, strict state loading with the account rebuilt
from the journal, disk errors that are not corruption, a journal that always tells the truth.

Every case runs the real `main.py` (or a real Session) on a real data dir; RELIABILITY.md
counts the cases.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import ROOT

PY = sys.executable
FAST = ["--headless", "--source", "replay", "--speed", "max", "--quiet"]


def cli(data_dir: Path, *args: str, timeout: float = 120, env: dict | None = None):
    e = {**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})}
    e.pop("BTC_LAPTOP_LOCK_FD", None)
    return subprocess.run([PY, str(ROOT / "main.py"), *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=e)


def spawn(data_dir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.Popen([PY, str(ROOT / "main.py"), *args, "--data-dir", str(data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=env)


def latest_report(data_dir: Path) -> dict:
    return json.loads((data_dir / "runs" / "latest" / "final_report.json").read_text())


def log_records(data_dir: Path) -> list[dict]:
    p = data_dir / "logs" / "system.jsonl"
    return [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()] \
        if p.exists() else []


def journal_sessions(data_dir: Path) -> list[dict]:
    con = sqlite3.connect(data_dir / "journal.sqlite3")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM sessions ORDER BY started_ts")]
    finally:
        con.close()


def wait_for_lock(data_dir: Path, proc: subprocess.Popen, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = data_dir / ".lock.json"
        if p.exists():
            try:
                return json.loads(p.read_text())
            except ValueError:
                pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the first process never took the lock")


# ---------------------------------------------------------------- one writer per data dir

@pytest.mark.parametrize("first", ["headless", "supervisor", "gui"])
def test_second_process_on_a_locked_data_dir_is_refused(tmp_path, first):
    d = tmp_path / "data"
    args = {"headless": ["--headless", "--source", "replay", "--speed", "20", "--duration", "2",
                         "--quiet"],
            "supervisor": ["--headless", "--supervise", "--source", "replay", "--speed", "20",
                           "--duration", "2", "--quiet"],
            "gui": ["--autostart", "--exit-on-finish", "--source", "replay", "--speed", "20",
                    "--duration", "2"]}[first]
    proc = spawn(d, *args)
    try:
        holder = wait_for_lock(d, proc)
        t0 = time.monotonic()
        second = cli(d, *FAST, "--duration", "1")
        assert time.monotonic() - t0 < 20  # refused at once, not after a wait
        assert second.returncode == 2, second.stderr
        assert f"pid {holder['pid']}" in second.stderr
        assert "in use" in second.stderr and "started" in second.stderr
        # a supervisor's child and a second supervisor are refused the same way
        third = cli(d, "--headless", "--supervise", "--source", "replay", "--speed", "max",
                    "--duration", "1", "--quiet")
        assert third.returncode == 2 and f"pid {holder['pid']}" in third.stderr
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    report = latest_report(d)
    assert report["status"] == "success" and report["ledger_reconciles"] is True
    sessions = journal_sessions(d)
    assert len(sessions) == 1 and sessions[0]["status"] == "success"  # only the first one ran


def test_sigkilled_holder_never_blocks_the_next_start(tmp_path):
    d = tmp_path / "data"
    proc = spawn(d, "--headless", "--source", "replay", "--speed", "5", "--duration", "5",
                 "--quiet")
    wait_for_lock(d, proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until its journal row says "running"
        if (d / "journal.sqlite3").exists() and journal_sessions(d):
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    r = cli(d, *FAST, "--duration", "2")
    assert r.returncode == 0, r.stderr
    # the killed run was left "running" in the journal: the next holder marks it abandoned
    status = {s["run_id"]: s["status"] for s in journal_sessions(d)}
    assert sorted(status.values()) == ["abandoned", "success"]
    assert any(x.get("message") == "session_marked_abandoned" for x in log_records(d))


def test_supervisor_child_shares_the_lock_and_it_dies_with_both(tmp_path):
    d = tmp_path / "data"
    proc = spawn(d, "--headless", "--supervise", "--source", "replay", "--speed", "40",
                 "--duration", "4", "--quiet", "--restart-delay-s", "0.2")
    try:
        wait_for_lock(d, proc)
        pid_file = d / "paper" / "child.pid"
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        time.sleep(1.0)
        os.kill(child, signal.SIGKILL)  # the supervisor restarts it with the same lock
        time.sleep(0.5)
        r = cli(d, *FAST, "--duration", "1")
        assert r.returncode == 2 and "in use" in r.stderr
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    report = latest_report(d)
    assert report["status"] == "success" and report["restarts"] == 1
    assert cli(d, *FAST, "--duration", "1").returncode == 0  # released once both are gone


# ---------------------------------------------------------------- strict state loading

def _state(d: Path) -> dict:
    return json.loads((d / "paper" / "broker_state.json").read_text())


def _corrupt(doc: dict, how: str) -> str:
    b = doc["broker"]
    if how == "cash_text":
        b["ledger"]["cash"] = "abc"
    elif how == "cash_list":
        b["ledger"]["cash"] = [1, 2]
    elif how == "cash_true":
        b["ledger"]["cash"] = True
    elif how == "cash_infinity":
        b["ledger"]["cash"] = "Infinity"
    elif how == "qty_nan":
        b["position"]["qty"] = "NaN"
    elif how == "negative_at_zero":
        b["position"].update(qty="-5", avg_px="0")
    elif how == "absurd_qty":
        b["position"].update(qty="1000000000", avg_px="87000")
    elif how == "json_nan":
        return json.dumps(doc).replace('"funding_rate": 0.0', '"funding_rate": NaN', 1) \
            .replace('"fill_seq": ', '"fill_seq": NaN, "x": ', 1)
    elif how == "huge_int":
        b["fill_seq"] = int("9" * 400)
    elif how == "deep":
        return "[" * 100_000 + "]" * 100_000
    elif how == "not_json":
        return '{"version": 2, "broker": '
    elif how == "wrong_top":
        return "[1, 2, 3]"
    elif how == "stop_text":
        b["position"].update(qty="0.010", avg_px="87000", stop_px="low")
    elif how == "not_lot":
        b["position"].update(qty="0.0005", avg_px="87000")
    elif how == "unreconciled":
        b["ledger"]["cash"] = str(Decimal(b["ledger"]["cash"]) + 1000)
    return json.dumps(doc)


CORRUPTIONS = ["cash_text", "cash_list", "cash_true", "cash_infinity", "qty_nan",
               "negative_at_zero", "absurd_qty", "json_nan", "huge_int", "deep", "not_json",
               "wrong_top", "stop_text", "not_lot", "unreconciled"]


@pytest.fixture(scope="module")
def traded_dir(tmp_path_factory):
    """A data dir after one session that traded (each corruption test works on a copy)."""
    d = tmp_path_factory.mktemp("traded") / "data"
    first = cli(d, *FAST, "--duration", "15", "--seed", "3")
    assert first.returncode == 0, first.stderr
    return d


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_corrupt_state_is_moved_aside_and_the_account_rebuilt_from_the_journal(tmp_path, how,
                                                                               traded_dir):
    import shutil
    d = tmp_path / "data"
    shutil.copytree(traded_dir, d)
    before = latest_report(d)
    final_cash = Decimal(before["cash"])
    assert final_cash != Decimal("10000")  # the first run traded: a reset would show
    path = d / "paper" / "broker_state.json"
    path.write_text(_corrupt(_state(d), how))
    second = cli(d, *FAST, "--duration", "5", "--seed", "4")
    assert second.returncode == 0, second.stderr
    assert (d / "paper" / "broker_state.json.corrupt").is_file()
    crit = [r for r in log_records(d) if r.get("level") == "CRITICAL"]
    assert any(r["message"] == "state_file_corrupt" for r in crit)
    assert any(r["message"] == "account_rebuilt" for r in crit)
    after = latest_report(d)
    assert after["status"] == "success" and after["account_source"] == "rebuilt"
    assert "journal" in after["account_note"]
    assert Decimal(str(after["starting_equity"])) == final_cash
    # the second run's ledger started at the first run's final cash, exactly
    assert Decimal(_state(d)["broker"]["ledger"]["starting_cash"]) == final_cash
    assert "account_rebuilt" in second.stderr  # said on the console too (CRITICAL)


def test_a_second_corrupt_state_never_overwrites_the_first(tmp_path):
    d = tmp_path / "data"
    assert cli(d, *FAST, "--duration", "5").returncode == 0
    for n in range(2):
        (d / "paper" / "broker_state.json").write_text("not json")
        assert cli(d, *FAST, "--duration", "2").returncode == 0
    assert (d / "paper" / "broker_state.json.corrupt").read_text() == "not json"
    assert (d / "paper" / "broker_state.json.corrupt.1").read_text() == "not json"


def test_missing_state_is_rebuilt_not_reset(tmp_path):
    d = tmp_path / "data"
    assert cli(d, *FAST, "--duration", "15", "--seed", "3").returncode == 0
    cash = Decimal(latest_report(d)["cash"])
    (d / "paper" / "broker_state.json").unlink()
    assert cli(d, *FAST, "--duration", "2").returncode == 0
    assert Decimal(str(latest_report(d)["starting_equity"])) == cash


def test_reset_is_said_in_words_when_it_is_the_only_way(tmp_path):
    d = tmp_path / "data"
    assert cli(d, *FAST, "--duration", "5").returncode == 0
    (d / "paper" / "broker_state.json").write_text('{"cash": ')
    (d / "journal.sqlite3").unlink()  # nothing to rebuild from
    for suffix in ("-wal", "-shm"):
        Path(f"{d / 'journal.sqlite3'}{suffix}").unlink(missing_ok=True)
    r = cli(d, "--headless", "--source", "replay", "--speed", "max", "--duration", "2")
    assert r.returncode == 0, r.stderr
    rep = latest_report(d)
    assert rep["account_source"] == "reset" and "RESET" in rep["account_note"]
    assert "ACCOUNT RESET" in r.stdout


# ---------------------------------------------------------------- bad input, exit 2

@pytest.mark.parametrize("argv,needle", [
    (["--data-dir", ""], "--data-dir must not be empty"),
    (["--duration", "1e-300"], "--duration must be from 1 second"),
    (["--duration", "nan"], "--duration"),
    (["--chaos", "stall@" + "9" * 400 + "s"], "too many digits"),
    (["--chaos", "stall@10s:" + "9" * 400], "too many digits"),
    (["--chaos", "stall@10s:7200s"], "at most 3600s"),
    (["--chaos", "drop@20m"], "after the session ends"),
    (["--symbol", "ＢＴＣＵＳＤＴ"], "ASCII"),
    (["--symbol", "BTC٣USDT"], "ASCII"),
])
def test_bad_values_are_refused_with_exit_2_and_nothing_written(tmp_path, argv, needle):
    d = tmp_path / "data"
    argv = list(argv)
    if argv[0] == "--data-dir":
        r = subprocess.run([PY, str(ROOT / "main.py"), "--headless", *argv], capture_output=True,
                           text=True, timeout=60, cwd=tmp_path)
        assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())  # nothing in the cwd
    else:
        if argv[0] == "--chaos":
            argv = ["--speed", "60", *argv]
        r = cli(d, "--headless", "--duration", "10", *argv)
        assert not d.exists()
    assert r.returncode == 2
    assert needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_uncreatable_data_dir_is_a_message_and_exit_2(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    for bad in (f / "sub", Path("/proc/btc-laptop-test/x")):
        r = subprocess.run([PY, str(ROOT / "main.py"), "--headless", "--data-dir", str(bad)],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "--data-dir" in r.stderr


def test_session_without_market_data_is_never_success(tmp_path):
    d = tmp_path / "data"
    # Bitunix is unreachable here: the feed never delivers a price; SIGTERM ends it
    proc = spawn(d, "--headless", "--source", "bitunix", "--duration", "5", "--quiet")
    wait_for_lock(d, proc)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    rep = latest_report(d)
    assert rep["status"] == "error" and "no market data" in rep["error"]
    assert journal_sessions(d)[-1]["status"] == "error"


# ---------------------------------------------------------------- the disk

def _mount_tmpfs(where: Path, size_mb: int) -> None:
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    _mount_tmpfs(mnt, 48)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(path: Path) -> None:
    chunk = b"\0" * (256 * 1024)
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError:
            pass
    # the last few KB too
    with open(path.with_suffix(".tail"), "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass


def test_full_disk_ends_the_session_cleanly_and_loses_no_history(small_disk):
    d = small_disk / "data"
    env = {"BTC_LAPTOP_MIN_FREE_MB": "10"}
    assert cli(d, *FAST, "--duration", "10", env=env).returncode == 0
    proc = subprocess.Popen([PY, str(ROOT / "main.py"), "--headless", "--source", "replay",
                             "--speed", "30", "--duration", "10", "--quiet", "--data-dir",
                             str(d)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(journal_sessions(d)) < 2:
            time.sleep(0.2)
        time.sleep(2.0)  # trading by now
        _fill(small_disk / "filler")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "disk full" in err and "Traceback" not in err, err
    assert "free some space" in err
    assert not list(d.glob("journal.sqlite3.corrupt*"))  # a full disk is not corruption
    assert not list((d / "paper").glob("*.corrupt*"))
    restarts = err.count("Watchdog restarting")
    assert restarts == 0  # not restartable: no loop
    (small_disk / "filler").unlink()
    (small_disk / "filler.tail").unlink()
    third = cli(d, *FAST, "--duration", "2", env=env)
    assert third.returncode == 0, third.stderr
    sessions = journal_sessions(d)
    assert len(sessions) == 3  # every earlier run is still listed
    assert sessions[1]["status"] in ("error", "abandoned") and sessions[1]["ended_ts"]
    assert sessions[0]["status"] == sessions[2]["status"] == "success"


def test_too_little_free_space_is_refused_at_start(small_disk):
    d = small_disk / "data"
    r = cli(d, *FAST, "--duration", "2")  # 48 MB disk < the 50 MB minimum
    assert r.returncode == 2 and "bytes free" in r.stderr and "Traceback" not in r.stderr


def test_read_only_paper_dir_is_an_error_not_a_traceback(tmp_path):
    if os.geteuid() == 0:
        # root ignores permission bits: make the folder a read-only file system instead
        mnt = tmp_path / "ro"
        _mount_tmpfs(mnt, 8)
        try:
            d = mnt / "data"
            assert cli(d, *FAST, "--duration", "2",
                       env={"BTC_LAPTOP_MIN_FREE_MB": "1"}).returncode == 0
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
            r = cli(d, *FAST, "--duration", "2", env={"BTC_LAPTOP_MIN_FREE_MB": "1"})
        finally:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    else:
        d = tmp_path / "data"
        assert cli(d, *FAST, "--duration", "2").returncode == 0
        (d / "paper").chmod(0o500)
        r = cli(d, *FAST, "--duration", "2")
        (d / "paper").chmod(0o700)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "read-only" in r.stderr or "not writable" in r.stderr or "permission" in r.stderr


# ---------------------------------------------------------------- the journal's story

def test_watchdog_give_up_ends_the_journal_row(tmp_path):
    d = tmp_path / "data"
    r = cli(d, "--headless", "--source", "replay", "--speed", "30", "--duration", "3", "--quiet",
            "--inject-crash-after-s", "1", "--max-restarts", "0", "--restart-delay-s", "0.1")
    assert r.returncode == 1
    rep = latest_report(d)
    assert rep["status"] == "error" and "gave up" in rep["error"]
    row = journal_sessions(d)[-1]
    assert row["status"] == "error" and row["ended_ts"] and row["exit_code"] == 1
    assert row["final_cash"] == rep["cash"]


def test_supervisor_restarts_are_all_counted_even_kills_at_start_up(tmp_path):
    d = tmp_path / "data"
    proc = subprocess.Popen([PY, str(ROOT / "main.py"), "--headless", "--supervise", "--source",
                             "replay", "--speed", "20", "--duration", "2", "--quiet",
                             "--restart-delay-s", "0", "--max-restarts", "20", "--data-dir",
                             str(d)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    pid_file = d / "paper" / "child.pid"
    killed, seen = 0, set()
    try:
        deadline = time.monotonic() + 60
        while killed < 4 and time.monotonic() < deadline:
            try:
                pid = int(pid_file.read_text())
            except (OSError, ValueError):
                time.sleep(0.005)
                continue
            if pid in seen:
                time.sleep(0.005)
                continue
            seen.add(pid)
            try:
                os.kill(pid, signal.SIGKILL)  # during its imports: before any state save
                killed += 1
            except ProcessLookupError:
                pass
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    printed = [int(x.split("(restart ")[1].rstrip(")")) for x in err.splitlines()
               if "(restart " in x]
    rep = latest_report(d)
    assert printed and rep["restarts"] == max(printed) == killed
    repairs = [x for x in log_records(d) if x.get("message") == "state_repaired_from_journal"]
    assert len(rep["state_repairs"]) >= len(repairs)


def test_a_state_file_behind_the_journal_yields_to_the_journal(tmp_path):
    """A valid state file that missed the last fills (a kill or a disk error between the
    journal row and the state write) is not trusted over the journal."""
    d = tmp_path / "data"
    assert cli(d, *FAST, "--duration", "15", "--seed", "3").returncode == 0
    final_cash = Decimal(latest_report(d)["cash"])
    doc = _state(d)
    led = doc["broker"]["ledger"]
    for k in ("cash", "realized_pnl"):  # still reconciles: only the journal can tell
        led[k] = str(Decimal(led[k]) + Decimal("5.5"))
    (d / "paper" / "broker_state.json").write_text(json.dumps(doc))
    r = cli(d, *FAST, "--duration", "2")
    assert r.returncode == 0, r.stderr
    rep = latest_report(d)
    assert rep["account_source"] == "rebuilt" and "behind the journal" in rep["account_note"]
    assert Decimal(str(rep["starting_equity"])) == final_cash
    assert any("behind the journal" in x for x in rep["state_repairs"])


def test_the_journal_records_the_source_that_ran_not_auto(tmp_path):
    d = tmp_path / "data"
    r = cli(d, "--headless", "--source", "auto", "--speed", "max", "--duration", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    assert latest_report(d)["offline_fallback"] is True
    assert journal_sessions(d)[-1]["source"] == "replay"
