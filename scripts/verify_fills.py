"""Check a run's fills against the market data it traded on.

For every fill in <run dir>/fills.csv: BUY at the ask and SELL at the bid it records, and for a
replay run that bid/ask must be the replayed quote in force at the fill time (rebuilt from the
same file and seed); strategy fills must come at least execution_latency_ms after their signal
and differ from the candle close that made the signal.

    python scripts/verify_fills.py <data dir>/runs/latest
Exit 0 when every fill checks out.
"""
from __future__ import annotations

import argparse
import bisect
import csv
import json
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trading.book import priced_from_quote  # noqa: E402


def replay_quotes(report: dict, settings: dict, replay_file: str | None):
    from trading.replay import build_timeline
    from trading.runtime.datafiles import default_replay_file, load_market_file
    path = replay_file or (settings.get("replay_file") if not str(
        settings.get("replay_file", "")).startswith("(") else None) or default_replay_file()
    start = int(datetime.fromisoformat(report["data_start"]).timestamp() * 1000)
    tl = build_timeline(load_market_file(path), seed=int(settings.get("seed", 0)),
                        start_ts=start, spread_usd=float(settings.get("spread_usd", 1.0)))
    ts, books = [], []
    for t, frame in tl:
        if frame["ch"] == "depth_book1":
            ts.append(t)
            books.append((float(frame["data"]["b"][0][0]), float(frame["data"]["a"][0][0])))
        if t > start + report["duration_seconds"] * 1000 + 60_000:
            break
    return ts, books


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--replay-file")
    a = ap.parse_args(argv)
    report = json.loads((a.run_dir / "final_report.json").read_text())
    with open(a.run_dir / "fills.csv", newline="") as f:
        fills = list(csv.DictReader(f))
    latency = int(report["execution_latency_ms"])
    settings = {k: report[k] for k in ("seed", "replay_file", "spread_usd") if k in report}
    check_quotes = report["source"] == "replay" and report.get("restarts", 0) == 0
    qts, books = replay_quotes(report, settings, a.replay_file) if check_quotes else ([], [])
    bad = 0
    print(f"{'order':>8} {'side':4} {'reason':7} {'signal_px':>10} {'fill_px':>10} {'bid':>10} "
          f"{'ask':>10} {'latency':>8}  quote in force")
    for f in fills:
        px, bid, ask = float(f["fill_px"]), float(f["bid"]), float(f["ask"])
        # the quote in force is the first level walked, the price the VWAP of the legs
        ok = priced_from_quote(f)
        lat = ""
        if f["signal_ts"]:
            lat_ms = int(f["fill_ts"]) - int(f["signal_ts"])
            lat = str(lat_ms)
            ok &= lat_ms >= latency
        in_force = "n/a"
        if qts:
            i = bisect.bisect_right(qts, int(f["fill_ts"])) - 1
            in_force = f"{books[i][0]}/{books[i][1]}"
            ok &= books[i] == (bid, ask)
        bad += not ok
        print(f"{f['order_id'][-5:]:>8} {f['side']:4} {f['reason']:7} {f['signal_px'] or '-':>10} "
              f"{px:>10} {bid:>10} {ask:>10} {lat:>8}  {in_force} {'OK' if ok else 'MISMATCH'}")
    strat = [f for f in fills if f["signal_ts"]]
    differs = sum(float(f["fill_px"]) != float(f["signal_px"]) for f in strat)
    print(f"{len(fills)} fills, {bad} mismatches; {differs}/{len(strat)} strategy fills differ "
          f"from their candle close; quotes checked against the replay: {bool(qts)}")
    return 0 if bad == 0 and fills else 1


if __name__ == "__main__":
    sys.exit(main())
