"""Memory of a long replay at engine speed: RSS at the start, the peak and the end of
`--speed max` over N market hours of the FTX bars (default 60), sampled every 20 ms by a thread
reading /proc/self/statm, each run in a fresh process.

Before the measured run, a two-hour session in the same process loads every module and the
report's templates, so the growth is the replay's own memory (candles, equity samples, fills
kept for the report; the journal's batches; the report). Baseline in the same run: the same
bars through the bare reference loop of bench/peers.py in a fresh process. Target: growth
<= 10 MB.

    python bench/replay_memory.py [--hours 60] [--reps 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import gzip, json, math, os, sys, tempfile, threading, time, logging
from decimal import Decimal
from pathlib import Path
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
logging.disable(logging.WARNING)
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page / 2**20
tmp = Path(tempfile.mkdtemp())
src = Path({data!r})
with gzip.open(src, "rt") as f:
    lines = [next(f) for _ in range({bars} + 1)]
path = tmp / "slice.csv.gz"
with gzip.open(path, "wt") as f:
    f.writelines(lines)
kind = {kind!r}
small = tmp / "warm.csv.gz"
with gzip.open(small, "wt") as f:
    f.writelines(lines[:121])
def make(p, d):
    from trading.broker import BrokerConfig
    from trading.runtime.session import Session, SessionConfig
    cfg = SessionConfig(data_dir=tmp / d, source="replay", speed=math.inf, replay_file=p,
                        duration_min=62 * 1440, strategy="sma_cross",
                        broker=BrokerConfig(starting_cash=Decimal(1000000), latency_ms=0,
                                            fixed_qty=Decimal("0.1")),
                        spread_usd=0.0, breaker_enabled=False, flatten_at_end=False,
                        replay_from_start=True, record=False)
    return Session(cfg)
if kind == "engine":
    # a two-hour session first: every module the run imports and the report's templates
    # are loaded, so what grows after is the replay's own memory
    assert make(small, "warm").run() == 0
    s = make(path, "d")
else:
    import peer_engines
import gc
gc.collect()
start = rss()
peak = [start]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss()); time.sleep(0.02)
t = threading.Thread(target=sample, daemon=True); t.start()
if kind == "engine":
    assert s.run() == 0, s.error
    n = s.fast.rows_applied
else:
    bars = peer_engines.load_bars(path); peer_engines.run_reference(bars); n = len(bars)
done.set(); t.join()
end = rss()
print(json.dumps({{"start": start, "peak": max(peak[0], end), "end": end, "bars": n}}))
"""


def run(kind: str, bars: int) -> dict:
    code = CHILD.format(root=str(ROOT), bench=str(ROOT / "bench"),
                        data=str(ROOT / "bench" / "data" /
                                 "btc_perp_ftx_1m_20211231_20220201.csv.gz"),
                        bars=bars, kind=kind)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=60.0)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    bars = int(a.hours * 60)
    got: dict[str, list[dict]] = {"engine": [], "reference": []}
    for r in range(a.reps):
        for kind in (("engine", "reference") if r % 2 == 0 else ("reference", "engine")):
            got[kind].append(run(kind, bars))
    print(f"{bars:,} bars ({a.hours:g} market hours) of the FTX month at --speed max; "
          f"medians of {a.reps} fresh processes (MB)")
    print(f"{'run':<10} {'start':>7} {'peak':>7} {'end':>7} {'growth (peak-start)':>20}")
    for kind, rows in got.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("start", "peak", "end")}
        growth = statistics.median(r["peak"] - r["start"] for r in rows)
        print(f"{kind:<10} {med['start']:>7.1f} {med['peak']:>7.1f} {med['end']:>7.1f} "
              f"{growth:>20.1f}")
    eng = statistics.median(r["peak"] - r["start"] for r in got["engine"])
    print(f"engine RSS growth {eng:.1f} MB over {a.hours:g} market hours (target <= 10 MB)")


if __name__ == "__main__":
    main()
