"""Hostile state files, many of them: the long version of the suite's corrupt-state cases.

Each round: run a short session, replace one randomly chosen value of the state file with a
randomly chosen hostile value (wrong type, NaN/Infinity, huge number, negative, deep nesting,
absurd position ...), run the next session and check what a trader must be able to rely on:
- the session exits 0 with a report (never a restart loop, never a traceback);
- either the state file was accepted unchanged in meaning, or it was moved aside (.corrupt),
  logged CRITICAL, and the next session began with the previous session's final cash exactly;
- the ledger of every report reconciles.

    python scripts/state_fuzz.py --rounds 200 --seed 1
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HOSTILE = ["abc", "", [], {}, [1, 2], True, False, None, "NaN", "Infinity", "-Infinity",
           "1e400", "-5", "0", "-0.001", 1e308, -1, 2**63, "9" * 400, "1" * 60, 0.1,
           {"a": [{}]}, "0.0005", "1000000000", "87000"]


def paths(doc, prefix=()):
    """Every (path, value) of a JSON document, leaves and containers."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((prefix + (k,), v))
            out += paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((prefix + (i,), v))
            out += paths(v, prefix + (i,))
    return out


def set_path(doc, path, value):
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value


def run(data_dir: Path, seed: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--headless", "--source",
                           "replay", "--speed", "max", "--duration", "4", "--quiet", "--seed",
                           str(seed), "--data-dir", str(data_dir)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tally = {"rounds": 0, "accepted": 0, "corrupt_rebuilt": 0, "failed": 0}
    with tempfile.TemporaryDirectory(prefix="state-fuzz-") as tmp:
        d = Path(tmp) / "data"
        first = run(d, 0)
        if first.returncode != 0:
            print(first.stderr)
            return 1
        for n in range(args.rounds):
            tally["rounds"] += 1
            state_path = d / "paper" / "broker_state.json"
            doc = json.loads(state_path.read_text())
            prev_cash = Decimal(json.loads((d / "runs" / "latest" / "final_report.json")
                                           .read_text())["cash"])
            path, _old = rng.choice(paths(doc))
            value = rng.choice(HOSTILE)
            set_path(doc, path, value)
            text = json.dumps(doc)
            if rng.random() < 0.05:
                text = "[" * 50_000 + "]" * 50_000
            corrupt_before = set((d / "paper").glob("*.corrupt*"))
            state_path.write_text(text)
            r = run(d, n + 1)
            report = json.loads((d / "runs" / "latest" / "final_report.json").read_text())
            moved = set((d / "paper").glob("*.corrupt*")) - corrupt_before
            ok = r.returncode == 0 and report["status"] == "success" and \
                report["ledger_reconciles"] and "Traceback" not in r.stderr
            if moved:
                ok = ok and report["account_source"] == "rebuilt" and \
                    Decimal(str(report["starting_equity"])) == prev_cash
                tally["corrupt_rebuilt"] += ok
            else:
                tally["accepted"] += ok
            if not ok:
                tally["failed"] += 1
                print(f"round {n}: {'/'.join(map(str, path))} = {str(value)[:40]!r}: "
                      f"rc {r.returncode}, status {report['status']}, account "
                      f"{report.get('account_source')}, start {report['starting_equity']} vs "
                      f"{prev_cash}\n{r.stderr[-2000:]}", file=sys.stderr)
                for p in (d / "paper").glob("*.corrupt*"):
                    os.remove(p)
    print(f"state_fuzz rounds={tally['rounds']} accepted={tally['accepted']} "
          f"corrupt_rebuilt={tally['corrupt_rebuilt']} failed={tally['failed']}")
    return 1 if tally["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
