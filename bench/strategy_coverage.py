"""How often does a 10-minute session on the bundled data trade? (entry + exit)

Runs the real session (in-process replay, --speed max) on 10-minute windows starting every
`--step` minutes across the bundled day, and prints the share of windows with at least one entry
and one exit (strategy exit, stop or target; the end-of-session flatten counted separately).

    python bench/strategy_coverage.py [--step 10] [--duration 10]
"""
from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trading.replay import minute_count  # noqa: E402
from trading.runtime.datafiles import default_replay_file, load_market_file  # noqa: E402
from trading.runtime.session import Session, SessionConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step", type=int, default=10)
    ap.add_argument("--duration", type=float, default=10.0)
    a = ap.parse_args()
    n = minute_count(load_market_file(default_replay_file()))
    starts = list(range(200, n - int(a.duration) - 3, a.step))
    traded = with_flatten = 0
    fills, pnls = [], []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        from storage.logger import setup_logging
        setup_logging(Path(tmp), console=False, level=logging.WARNING)
        for i, start in enumerate(starts):
            cfg = SessionConfig(data_dir=Path(tmp) / str(i), duration_min=a.duration,
                                source="replay", speed=math.inf, replay_start_index=start,
                                reset_account=True)
            s = Session(cfg)
            assert s.run() == 0, s.error
            reasons = [f["reason"] for f in s.fills]
            entry = "entry" in reasons
            exit_ = any(r in ("exit", "stop", "target") for r in reasons)
            traded += entry and exit_
            with_flatten += entry and (exit_ or "flatten" in reasons)
            fills.append(len(reasons))
            pnls.append(s.final_report["pnl_absolute"])
    dt = time.perf_counter() - t0
    print(f"windows: {len(starts)} x {a.duration:g} min, starting every {a.step} min "
          f"(bundled dYdX day), {dt:.1f}s")
    print(f"entry + exit (strategy/stop/target): {traded}/{len(starts)} = "
          f"{traded / len(starts):.0%}")
    print(f"entry + any exit incl. end flatten:  {with_flatten}/{len(starts)} = "
          f"{with_flatten / len(starts):.0%}")
    print(f"fills per window: median {statistics.median(fills):g}, min {min(fills)}, "
          f"max {max(fills)}; pnl per window: median {statistics.median(pnls):+.2f} USDT")


if __name__ == "__main__":
    main()
