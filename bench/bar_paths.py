"""The same bars through the two `--speed max` paths, in the same run, alternating: the frame
path (each bar as Bitunix frames -- 20 synthetic quotes a minute and the kline pushes --
encoded and parsed again, a journal commit per row, the state file after every account event)
and the engine-speed path (typed rows, <= 4 quotes a bar, batched journal). Whole-session wall
time (setup, report and journal included) and, for the engine-speed path, its loop alone.

    python bench/bar_paths.py [--bars 1200] [--reps 3]
"""
from __future__ import annotations

import argparse
import gzip
import logging
import math
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trading.broker import BrokerConfig  # noqa: E402
from trading.runtime import fastpath  # noqa: E402
from trading.runtime.session import Session, SessionConfig  # noqa: E402

DATA = ROOT / "bench" / "data" / "btc_perp_ftx_1m_20211231_20220201.csv.gz"


def run(path: Path, tmp: Path, fast: bool) -> tuple[float, float | None, int, int]:
    real = fastpath.supports
    if not fast:
        fastpath.supports = lambda data: False
    try:
        cfg = SessionConfig(
            data_dir=tmp, source="replay", speed=math.inf, replay_file=path,
            duration_min=62 * 1440, strategy="sma_cross",
            broker=BrokerConfig(starting_cash=Decimal(1000000), latency_ms=0,
                                fixed_qty=Decimal("0.1")),
            spread_usd=0.0, breaker_enabled=False, flatten_at_end=False,
            replay_from_start=True, record=False)
        s = Session(cfg)
        t0 = time.perf_counter()
        assert s.run() == 0, s.error
        total = time.perf_counter() - t0
    finally:
        fastpath.supports = real
    return total, (s.fast.loop_seconds if s.fast else None), len(s.closed_candles), len(s.fills)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1200)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with gzip.open(DATA, "rt") as f:
            lines = [next(f) for _ in range(a.bars + 1)]
        path = tmp / "bars.csv.gz"
        with gzip.open(path, "wt") as f:
            f.writelines(lines)
        got = {True: [], False: []}
        k = 0
        for r in range(a.reps):
            for fast in ((False, True) if r % 2 == 0 else (True, False)):
                k += 1
                got[fast].append(run(path, tmp / f"d{k}", fast))
        frame = statistics.median(t for t, _, _, _ in got[False])
        fast_t = statistics.median(t for t, _, _, _ in got[True])
        loop = statistics.median(lp for _, lp, _, _ in got[True])
        bars = got[True][0][2]
        print(f"{a.bars:,} bars of the FTX month, sma_cross, medians of {a.reps}; fills: frame "
              f"path {got[False][0][3]}, engine speed {got[True][0][3]}")
        print(f"frame path:         session {frame:7.3f} s = {bars / frame:>10,.0f} bars/s")
        print(f"engine-speed path:  session {fast_t:7.3f} s = {bars / fast_t:>10,.0f} bars/s; "
              f"loop {loop:.4f} s = {bars / loop:,.0f} bars/s")
        print(f"ratio (session): {frame / fast_t:.1f}x; (engine-speed loop vs frame session): "
              f"{frame / loop:.0f}x")


if __name__ == "__main__":
    main()
