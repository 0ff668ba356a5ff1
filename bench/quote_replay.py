"""Quote-tick replay at engine speed: the three Binance windows' real quotes through candles,
the default strategy and the broker (`--speed max` on a quote file).

Baselines in the same run, window by window, alternating:
- "frames alone": the same quotes as Bitunix frames, generated and parsed again, no engine
  (what `--speed max` paid before any engine work, before the engine-speed path);
- "bare loop": the rows only -- a Python loop that builds each quote's mid and the minute's
  OHLC, no engine (the floor of any replay in Python).

    python bench/quote_replay.py [--reps 3]

Figures are quotes per second of the replay loop (medians over the reps); the target of the
month-replay issue is >= 100,000 quotes/s.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trading.replay import _tick_minutes  # noqa: E402
from trading.runtime.datafiles import load_market_file  # noqa: E402
from trading.runtime.session import Session, SessionConfig  # noqa: E402

DATA = ROOT / "bench" / "data" / "btcusdt_perp_binance_quote_ticks_3windows.csv.gz"


def windows(data) -> list[tuple[int, int, int, float]]:
    """(window, first minute index, rows, minutes) of each window."""
    minutes = _tick_minutes(data)
    out = []
    for w, (lo, hi) in enumerate(data.windows):
        idx = next(i for i, m in enumerate(minutes) if m[9] == w)
        span = (data.rows[hi - 1][0] - data.rows[lo][0]) / 60_000
        out.append((w, idx, hi - lo, span))
    return out


def engine(tmp: Path, idx: int, minutes: float, i: int) -> tuple[float, int, int]:
    cfg = SessionConfig(data_dir=tmp / f"r{i}", source="replay", speed=math.inf,
                        replay_file=DATA, replay_start_index=idx,
                        duration_min=minutes + 0.01, reset_account=True, record=False)
    s = Session(cfg)
    assert s.run() == 0, s.error
    assert s.fast is not None, "not the engine-speed path"
    return s.fast.loop_seconds, s.quotes_in, len(s.fills)


def frames_alone(data, idx: int, minutes: float) -> tuple[float, int]:
    from trading.bitunix import parse_frame
    from trading.model import Quote
    from trading.replay import build_timeline
    tl = build_timeline(data, seed=0, start_index=idx)
    end = tl.start_ts + minutes * 60_000
    quotes = 0
    t0 = time.perf_counter()
    for ts, raw in tl.iter_frames_bytes():
        if ts > end:
            break
        for ev in parse_frame(raw):
            quotes += isinstance(ev, Quote)
    return time.perf_counter() - t0, quotes


def bare(data, lo: int, hi: int) -> tuple[float, int]:
    rows = data.rows
    t0 = time.perf_counter()
    minute = None
    o = h = lo_ = c = 0.0
    n = 0
    for i in range(lo, hi):
        r = rows[i]
        mid = (r[1] + r[2]) / 2.0
        m = int(r[0]) // 60_000
        if m != minute:
            minute, o, h, lo_ = m, mid, mid, mid
        elif mid > h:
            h = mid
        elif mid < lo_:
            lo_ = mid
        c = mid
        n += 1
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    logging.disable(logging.WARNING)
    data = load_market_file(DATA)
    print(f"{len(data):,} quotes in {len(data.windows)} windows of {DATA.name}; "
          f"default strategy, latency 1000 ms; medians of {a.reps}")
    print(f"{'window':<7} {'quotes':>8} {'engine q/s':>11} {'frames alone q/s':>17} "
          f"{'bare loop q/s':>14} {'engine/frame':>13} {'engine/bare':>12} {'fills':>6}")
    all_q, all_t = 0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        k = 0
        for w, idx, rows, minutes in windows(data):
            lo, hi = data.windows[w]
            t_eng, t_frame, t_bare = [], [], []
            q = fills = 0
            for r in range(a.reps):
                for kind in (("engine", "frame", "bare") if r % 2 == 0
                             else ("bare", "frame", "engine")):
                    k += 1
                    if kind == "engine":
                        secs, q, fills = engine(tmp, idx, minutes, k)
                        t_eng.append(secs)
                    elif kind == "frame":
                        secs, qf = frames_alone(data, idx, minutes)
                        t_frame.append(secs / max(qf, 1))
                    else:
                        secs, nb = bare(data, lo, hi)
                        t_bare.append(secs / nb)
            e = q / statistics.median(t_eng)
            f = 1 / statistics.median(t_frame)
            b = 1 / statistics.median(t_bare)
            all_q += q
            all_t += statistics.median(t_eng)
            print(f"{w + 1:<7} {q:>8,} {e:>11,.0f} {f:>17,.0f} {b:>14,.0f} {e / f:>13.2f} "
                  f"{e / b:>12.3f} {fills:>6}")
    print(f"all windows: {all_q:,} quotes, engine {all_q / all_t:,.0f} quotes/s (target >= "
          f"100,000)")


if __name__ == "__main__":
    main()
