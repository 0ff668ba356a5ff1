"""End-to-end sessions on the in-process replay (--speed max): fills, reports, state, errors."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from decimal import Decimal

import pytest

from tests.conftest import ROOT, read_log
from trading.runtime.session import Session, SessionConfig


def run_session(data_dir, **kw) -> Session:
    cfg = SessionConfig(data_dir=data_dir, source="replay", speed=math.inf,
                        replay_start_index=kw.pop("start", 700), **kw)
    s = Session(cfg)
    s.exit = s.run()
    return s


def read_fills(run_dir) -> list[dict]:
    with open(run_dir / "fills.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_inline_session_fills_at_bid_ask_after_latency(data_dir):
    s = run_session(data_dir, duration_min=10, broker=_broker(latency_ms=1500))
    assert s.exit == 0
    report = json.loads((s.run_dir / "final_report.json").read_text())
    assert report["status"] == "success" and report["exit_code"] == 0
    assert report["fills"] >= 2 and report["ledger_reconciles"] is True
    assert report["duration_seconds"] == pytest.approx(600, abs=1)
    fills = read_fills(s.run_dir)
    assert len(fills) == report["fills"]
    strategy = [f for f in fills if f["signal_ts"]]
    assert strategy, "no strategy fills"
    from trading.book import priced_from_quote
    for f in fills:  # the quote in force is the first level walked; the price its VWAP
        assert priced_from_quote(f), f
    for f in strategy:
        assert int(f["fill_ts"]) - int(f["signal_ts"]) >= 1500
        assert int(f["fill_ts"]) == int(f["due_ts"])
    # the fill is not the candle close: a spread is paid on top of it
    assert any(float(f["fill_px"]) != float(f["signal_px"]) for f in strategy)
    # the quote in force at the due time is the replayed one: check it against the data clock
    log = read_log(data_dir)
    sf = [r for r in log if r.get("message") == "Strategy Fill"]
    assert len(sf) == len(strategy)
    assert all(r["fill_px"] >= r["ask"] if r["side"] == "BUY" else r["fill_px"] <= r["bid"]
               for r in sf) and all("candle_close" in r for r in sf)
    # every output exists, latest mirrors the run
    for name in ("final_report.json", "fills.csv", "summary.html"):
        assert (s.run_dir / name).is_file()
        assert (s.run_dir.parent / "latest" / name).read_bytes() == (s.run_dir / name).read_bytes()


def _broker(**kw):
    from trading.broker import BrokerConfig
    return BrokerConfig(**kw)


def test_ledger_final_equity_equals_start_plus_realized_minus_fees(data_dir):
    s = run_session(data_dir, duration_min=30, start=300)
    r = s.final_report
    led = s.broker.ledger
    assert led.cash == led.starting_cash + led.realized_pnl - led.fees - led.funding
    assert Decimal(r["cash"]) == led.cash
    fills = read_fills(s.run_dir)
    assert sum(Decimal(f["fee"]) for f in fills) == led.fees
    assert sum(Decimal(f["realized_pnl"]) for f in fills) == led.realized_pnl
    # journal agrees with fills.csv, row for row
    from storage.journal import Journal
    j = Journal.open(data_dir / "journal.sqlite3")
    jf = j.fills(s.run_id)
    j.close()
    assert [f["order_id"] for f in jf] == [f["order_id"] for f in fills]


def test_corrupt_state_file_is_moved_aside_and_session_starts(data_dir):
    state = data_dir / "paper" / "broker_state.json"
    state.parent.mkdir(parents=True)
    state.write_text("{broken...")
    s = run_session(data_dir, duration_min=3)
    assert s.exit == 0
    corrupt = state.with_name("broker_state.json.corrupt")
    assert corrupt.read_text() == "{broken..."
    assert json.loads(state.read_text())["status"] == "finished"
    crit = [r for r in read_log(data_dir) if r.get("level") == "CRITICAL"]
    assert crit and "broker_state.json" in json.dumps(crit[0])


def test_account_carries_over_between_sessions(data_dir):
    a = run_session(data_dir, duration_min=10)
    b = run_session(data_dir, duration_min=5, start=900)
    assert b.final_report["starting_equity"] == pytest.approx(a.final_report["final_equity"])
    c = run_session(data_dir, duration_min=5, start=900, reset_account=True)
    assert c.final_report["starting_equity"] == 10000.0


def test_strategy_exception_writes_error_report(data_dir):
    s = run_session(data_dir, duration_min=10, inject_strategy_error_at=3)
    assert s.exit == 1
    report = json.loads((s.run_dir / "final_report.json").read_text())
    assert report["status"] == "error" and report["exit_code"] == 1
    assert "injected strategy error" in report["error"]
    assert report["error_count"] >= 1
    html = (s.run_dir / "summary.html").read_text()
    assert "injected strategy error" in html
    assert any(r.get("level") == "ERROR" for r in read_log(data_dir))


def test_breaker_tripped_blocks_signals(data_dir):
    from trading.risk import BreakerConfig
    cfg = SessionConfig(data_dir=data_dir, source="replay", speed=math.inf, duration_min=10,
                        replay_start_index=700, breaker=BreakerConfig(cooldown_s=3600))
    s = Session(cfg)
    assert s.breaker.check_session_loss(10000.0, 9000.0, 1)  # a 10% loss latches the breaker
    assert s.run() == 0
    assert s.final_report["blocked_signals"] >= 1
    assert s.final_report["fills"] == 0
    msgs = [r["message"] for r in read_log(data_dir)]
    assert "SIGNAL BLOCKED: Circuit breaker is tripped." in msgs


@pytest.mark.parametrize("argv, needle", [
    (["--duration", "-3"], "--duration"),
    (["--speed", "fast"], "--speed"),
    (["--execution-latency-ms", "-1"], "--execution-latency-ms"),
    (["--source", "moon"], "--source"),
    (["--chaos", "explode@3s"], "--chaos"),
    (["--starting-balance", "abc"], "--starting-balance"),
    (["--replay-file", "/nonexistent.csv"], "--replay-file"),
])
def test_cli_rejects_bad_values_and_writes_nothing(tmp_path, argv, needle):
    d = tmp_path / "d"
    p = subprocess.run([sys.executable, "main.py", "--headless", "--data-dir", str(d), *argv],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert needle in p.stderr
    assert not d.exists()


def test_cli_speed_max_session_exit_0(tmp_path):
    d = tmp_path / "d"
    p = subprocess.run([sys.executable, "main.py", "--headless", "--duration", "10", "--source",
                        "replay", "--speed", "max", "--data-dir", str(d), "--seed", "3"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "BITUNIX_API_KEY": "sekritKEYvalue42"})
    assert p.returncode == 0, p.stderr[-2000:]
    report = json.loads((d / "runs" / "latest" / "final_report.json").read_text())
    assert report["status"] == "success" and report["fills"] >= 2
    assert "SUCCESS" in p.stdout and "[10:00/10:00]" in p.stdout
    logs = (d / "logs" / "system.jsonl").read_text()
    assert "sekritKEYvalue42" not in logs + p.stdout + p.stderr


def test_verify_fills_script_checks_fills_against_the_replayed_quotes(data_dir):
    s = run_session(data_dir, duration_min=10, seed=3)
    p = subprocess.run([sys.executable, "scripts/verify_fills.py", str(s.run_dir)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 mismatches" in p.stdout and "quotes checked against the replay: True" in p.stdout
    # tamper with one fill: the script must notice
    path = s.run_dir / "fills.csv"
    rows = path.read_text().splitlines()
    cells = rows[1].split(",")
    cells[11] = str(float(cells[11]) - 0.5)  # bid
    rows[1] = ",".join(cells)
    path.write_text("\n".join(rows) + "\n")
    p = subprocess.run([sys.executable, "scripts/verify_fills.py", str(s.run_dir)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "MISMATCH" in p.stdout


def test_the_equity_chart_ends_at_the_final_equity(data_dir):
    """The chart's last point is the account after the flatten, the same as the PnL figure
    (it once ended at the last 5-second sample before the flatten's fee)."""
    import re
    s = run_session(data_dir, duration_min=5, start=475)
    report = json.loads((s.run_dir / "final_report.json").read_text())
    page = (s.run_dir / "summary.html").read_text()
    section = re.sub(r"<[^>]+>", " ", page[page.find("mark-to-market"):][:600])
    assert f"final  {report['final_equity']:,.2f}" in section, section
