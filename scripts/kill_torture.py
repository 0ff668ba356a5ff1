"""Kill torture: SIGKILL the session child at random moments under --supervise, then audit.

Runs `main.py --headless --supervise` on the local exchange replay, kills the child process
`--kills` times at random moments (positions opening and closing all the while), waits for the
run to finish, and checks that no fill was lost or duplicated (journal vs fills.csv vs report)
and that final cash == starting equity + realized PnL - fees - funding, exactly.

    python scripts/kill_torture.py --kills 20
Exit 0 when every check holds, 1 otherwise.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wait_for_child(pid_file: Path, not_pid: int | None, deadline: float) -> int | None:
    while time.monotonic() < deadline:
        try:
            pid = int(pid_file.read_text())
            if pid != not_pid:
                os.kill(pid, 0)
                return pid
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return None


def state_at_kill(data_dir: Path) -> tuple[int, int]:
    """Return (position open?, order pending?) from the last saved state, as 0/1."""
    try:
        b = json.loads((data_dir / "paper" / "broker_state.json").read_text())["broker"]
        return int(Decimal(b["position"]["qty"]) != 0), int(bool(b["pending"])
                                                             or bool(b.get("resting")))
    except (OSError, ValueError, KeyError):
        return 0, 0


def audit(data_dir: Path) -> dict:
    report = json.loads((data_dir / "runs" / "latest" / "final_report.json").read_text())
    run_id = report["run_id"]
    with open(data_dir / "runs" / "latest" / "fills.csv", newline="") as f:
        csv_fills = list(csv.DictReader(f))
    db = sqlite3.connect(data_dir / "journal.sqlite3")
    db.row_factory = sqlite3.Row
    j_fills = [dict(r) for r in db.execute(
        "SELECT * FROM fills WHERE run_id = ? ORDER BY seq", (run_id,))]
    funding = [dict(r) for r in db.execute("SELECT * FROM funding WHERE run_id = ?", (run_id,))]
    db.close()
    # a fill is its order id and sequence number (a limit order fills in parts)
    j_ids = [(f["order_id"], int(f["seq"])) for f in j_fills]
    c_ids = [(f["order_id"], int(f["seq"])) for f in csv_fills]
    seqs = [f["seq"] for f in j_fills]
    start = Decimal(str(report["starting_equity"]))
    realized = sum((Decimal(f["realized_pnl"]) for f in j_fills), Decimal(0))
    fees = sum((Decimal(f["fee"]) for f in j_fills), Decimal(0))
    paid = sum((Decimal(f["amount"]) for f in funding), Decimal(0))
    cash = Decimal(report["cash"])
    expected = start + realized - fees - paid
    out = {
        "run_id": run_id, "status": report["status"], "restarts": report["restarts"],
        "fills_journal": len(j_fills), "fills_csv": len(csv_fills), "fills_report": report["fills"],
        "duplicated": len(j_ids) - len(set(j_ids)) + len(c_ids) - len(set(c_ids)),
        # a missing fill sequence number, or a fill in one record and not the other
        "lost": len(set(range(1, max(seqs or [0]) + 1)) - set(seqs))
        + len(set(j_ids) ^ set(c_ids)),
        "seq_contiguous": seqs == list(range(1, len(seqs) + 1)),
        "cash": str(cash), "start_plus_realized_minus_fees_funding": str(expected),
        "cash_exact": cash == expected, "flat": report["open_position_qty"] in ("0", "0.000"),
        "final_equity_exact": Decimal(repr(report["final_equity"])) == cash
        if report["open_position_qty"] in ("0", "0.000") else None,
        "round_trips": report["round_trips"], "duration_seconds": report["duration_seconds"],
        "segments": len(report.get("segments", [])),
    }
    out["ok"] = (out["status"] == "success" and out["duplicated"] == 0 and out["lost"] == 0
                 and out["seq_contiguous"] and out["cash_exact"]
                 and out["fills_journal"] == out["fills_csv"] == out["fills_report"])
    return out


SAME_FILL = ("side", "qty", "reason", "signal_ts", "fill_ts", "fill_px", "fee", "realized_pnl",
             "position_after", "cash_after")


def replay_check(data_dir: Path, run_id: str) -> dict:
    """Replay the killed run's recording at --speed max; compare fills and PnL with it."""
    before = {p.name for p in (data_dir / "runs").iterdir()}
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, str(ROOT / "main.py"), "--headless", "--quiet",
                        "--no-record", "--source", f"recording:{run_id}", "--speed", "max",
                        "--data-dir", str(data_dir)], capture_output=True, text=True,
                       timeout=600)
    new = [d for d in (data_dir / "runs").iterdir() if d.name not in before and
           d.name != "latest"]
    if p.returncode != 0 or len(new) != 1:
        return {"replay_identical": False, "replay_error": p.stderr[-1500:]}

    def rows(d: Path) -> list[tuple]:
        with open(d / "fills.csv", newline="") as f:
            return [tuple(r[k] for k in SAME_FILL) for r in csv.DictReader(f)]
    orig, rep = rows(data_dir / "runs" / run_id), rows(new[0])
    r0 = json.loads((data_dir / "runs" / run_id / "final_report.json").read_text())
    r1 = json.loads((new[0] / "final_report.json").read_text())
    return {"replay_fills": len(rep), "replay_pnl": r1["pnl_absolute"],
            "replay_wall_s": round(time.monotonic() - t0, 1),
            "replay_identical": orig == rep and r0["pnl_absolute"] == r1["pnl_absolute"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--duration", type=float, default=90.0, help="session minutes (data time)")
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--min-gap-s", type=float, default=1.0)
    ap.add_argument("--max-gap-s", type=float, default=4.0)
    ap.add_argument("--latency-ms", type=int, default=20000,
                    help="execution latency (data time): long enough that kills land between "
                         "a signal and its fill")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--timeout-s", type=float, default=900.0)
    ap.add_argument("--order-type", choices=("market", "limit"), default="market",
                    help="limit: entries rest and fill in parts, so kills land on partially "
                         "filled resting orders")
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    data_dir = a.data_dir or Path(tempfile.mkdtemp(prefix="kill-torture-"))
    pid_file = data_dir / "paper" / "child.pid"
    cmd = [sys.executable, str(ROOT / "main.py"), "--headless", "--supervise", "--quiet",
           "--duration", str(a.duration), "--source", "replay", "--speed", str(a.speed),
           "--seed", str(a.seed), "--data-dir", str(data_dir), "--restart-delay-s", "0.3",
           "--max-restarts", str(a.kills + 5), "--reset-account",
           "--execution-latency-ms", str(a.latency_ms), "--order-type", a.order_type,
           # resting entries for most of a candle: kills land on partially filled orders
           "--limit-timeout-s", "50"]
    t0 = time.monotonic()
    deadline = t0 + a.timeout_s
    sup = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kills, gaps_to_resume, last = 0, [], None
    open_pos = pending = 0
    while kills < a.kills and sup.poll() is None and time.monotonic() < deadline:
        pid = wait_for_child(pid_file, last, deadline)
        if pid is None or sup.poll() is not None:
            break
        if last is not None:
            gaps_to_resume.append(time.monotonic() - killed_at)
        time.sleep(rng.uniform(a.min_gap_s, a.max_gap_s))
        if sup.poll() is not None:
            break
        held = state_at_kill(data_dir)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            break
        killed_at = time.monotonic()
        kills += 1
        last = pid
        open_pos += held[0]
        pending += held[1]
    try:
        rc = sup.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        sup.kill()
        rc = "timeout"
    wall = time.monotonic() - t0
    result = {"kills": kills, "supervisor_exit": rc, "wall_seconds": round(wall, 1),
              "median_kill_to_new_child_s": round(statistics.median(gaps_to_resume), 2)
              if gaps_to_resume else None, "kills_with_position_open": open_pos,
              "kills_with_order_pending": pending, "data_dir": str(data_dir)}
    try:
        result.update(audit(data_dir))
    except Exception as e:  # noqa: BLE001
        result.update({"ok": False, "audit_error": f"{type(e).__name__}: {e}",
                       "stderr_tail": sup.stderr.read()[-2000:] if sup.stderr else ""})
    result["ok"] = bool(result.get("ok")) and rc == 0 and kills == a.kills
    if result.get("run_id"):  # the recording of the killed run replays to the same fills
        result.update(replay_check(data_dir, result["run_id"]))
        result["ok"] = result["ok"] and result["replay_identical"]
    log = data_dir / "logs" / "system.jsonl"
    text = log.read_text(encoding="utf-8") if log.exists() else ""
    result["state_repairs_logged"] = text.count("state_repaired_from_journal")
    result["orders_sent_after_restart"] = text.count("orders_due_during_downtime_sent_now")
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
