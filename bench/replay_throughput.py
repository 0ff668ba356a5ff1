"""`--speed max` replay throughput: quotes/s and bars/s through the whole session engine.

Baseline in the same run: generating and parsing the same frames without the engine (timeline ->
parse_frame), so the ratio says what candles, strategy, broker, journal and reports cost.

    python bench/replay_throughput.py [--minutes 600] [--reps 3]
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

from trading.bitunix import parse_frame  # noqa: E402
from trading.model import Quote  # noqa: E402
from trading.replay import build_timeline  # noqa: E402
from trading.runtime.datafiles import default_replay_file, load_market_file  # noqa: E402
from trading.runtime.session import Session, SessionConfig  # noqa: E402


def baseline(data, start: int, minutes: int) -> tuple[float, int, int]:
    tl = build_timeline(data, seed=0, start_index=start)
    end = tl.start_ts + minutes * 60_000
    quotes = frames = 0
    t0 = time.perf_counter()
    for ts, raw in tl.iter_frames_bytes():
        if ts >= end:
            break
        frames += 1
        for ev in parse_frame(raw):
            quotes += isinstance(ev, Quote)
    return time.perf_counter() - t0, quotes, frames


def engine(tmp: Path, start: int, minutes: int, i: int) -> tuple[float, int, int, int]:
    cfg = SessionConfig(data_dir=tmp / f"run{i}", duration_min=minutes, source="replay",
                        speed=math.inf, replay_start_index=start, reset_account=True)
    s = Session(cfg)
    t0 = time.perf_counter()
    assert s.run() == 0, s.error
    dt = time.perf_counter() - t0
    return dt, s.quotes_in, len(s.closed_candles), len(s.fills)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=600)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    data = load_market_file(default_replay_file())
    start = 200
    with tempfile.TemporaryDirectory() as tmp:
        from storage.logger import setup_logging
        setup_logging(Path(tmp), console=False, level=logging.WARNING)
        base, eng = [], []
        for i in range(a.reps):
            base.append(baseline(data, start, a.minutes))
            eng.append(engine(Path(tmp), start, a.minutes, i))
    b_dt = statistics.median(x[0] for x in base)
    e_dt = statistics.median(x[0] for x in eng)
    quotes, bars, fills = eng[0][1], eng[0][2], eng[0][3]
    print(f"replay of {a.minutes} market minutes of the bundled day, {a.reps} repetitions")
    print(f"baseline (timeline + parse only): median {b_dt:.2f}s = "
          f"{base[0][1] / b_dt:,.0f} quotes/s, {base[0][2] / b_dt:,.0f} frames/s")
    print(f"engine --speed max (full session): median {e_dt:.2f}s = {quotes / e_dt:,.0f} quotes/s, "
          f"{bars / e_dt:,.0f} bars/s ({bars} bars, {fills} fills, "
          f"{a.minutes * 60 / e_dt:,.0f}x real time)")
    print(f"ratio engine/baseline time: {e_dt / b_dt:.2f}")


if __name__ == "__main__":
    main()
