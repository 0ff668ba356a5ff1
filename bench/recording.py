"""Recording: its size per hour, what it costs a replay, and how fast a recording replays.

1. size: a session on the local exchange (a real socket, speed 60) is recorded; the figures are
   bytes per frame and frames per market second of that session, and the size of one hour of a
   Bitunix-like stream (`--rate` frames/s, built from the recorded frames themselves, mixed as
   the channels were) written through the same Recorder.
2. cost: the bundled day at `--speed max` with the recorder on vs off (baseline: off), same run.
3. replay: that recording replayed with `--source recording` at `--speed max` vs the inline
   replay of the same market minutes (baseline), in frames/s.

    python bench/recording.py [--minutes 120] [--reps 3] [--rate 20]
"""
from __future__ import annotations

import argparse
import logging
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trading.events import FrameApplied, FrameReceived  # noqa: E402
from trading.runtime.recording import RECORDING_NAME, Recorder, iter_records  # noqa: E402
from trading.runtime.session import Session, SessionConfig  # noqa: E402


def run(cfg: SessionConfig) -> tuple[float, Session]:
    s = Session(cfg)
    t0 = time.perf_counter()
    assert s.run() == 0, s.error
    return time.perf_counter() - t0, s


def socket_session(tmp: Path, minutes: float) -> tuple[Path, float]:
    cfg = SessionConfig(data_dir=tmp / "live", duration_min=minutes, source="replay", speed=60.0,
                        replay_start_index=300, reset_account=True)
    dt, s = run(cfg)
    return Path(s.run_dir) / RECORDING_NAME, minutes * 60


def bitunix_hour(frames: list[dict], rate: float, out: Path) -> int:
    """One hour at `rate` frames/s, drawn from the recorded frames (their channel mix)."""
    rng = random.Random(1)
    r = Recorder(out, {"rec": 1, "run_id": "bench", "config": {}, "settings": {},
                       "clock": "live"})
    n = int(rate * 3600)
    wall = 1_764_000_000_000
    for i in range(n):
        f = rng.choice(frames)
        raw = f["f"].encode()
        r(FrameApplied(FrameReceived(raw, i / rate, wall + int(i * 1000 / rate), ()),
                       wall + int(i * 1000 / rate)))
    r.close()
    return out.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=120, help="market minutes of the speed-max runs")
    ap.add_argument("--socket-minutes", type=float, default=10.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rate", type=float, default=20.0, help="Bitunix-like frames per second")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from storage.logger import setup_logging
        setup_logging(tmp, console=False, level=logging.WARNING)
        # 1. size
        path, market_s = socket_session(tmp, a.socket_minutes)
        recs = list(iter_records(path))
        frames = [r for r in recs if "f" in r]
        size = path.stat().st_size
        raw = sum(len(r["f"]) for r in frames)
        hour = bitunix_hour(frames, a.rate, tmp / "hour.jsonl.gz")
        print(f"1. size: local-exchange session of {market_s / 60:g} market minutes: "
              f"{len(frames):,} frames ({len(frames) / market_s:.1f}/s), {size:,} bytes = "
              f"{size / len(frames):.1f} bytes/frame on disk ({raw / len(frames):.0f} bytes "
              f"raw, gzip ratio {raw / size:.1f}); at that rate {size / market_s * 3600 / 1e6:.2f} "
              f"MB per hour")
        print(f"   a Bitunix-like hour at {a.rate:g} frames/s (those frames, their mix): "
              f"{hour / 1e6:.2f} MB per hour ({hour / (a.rate * 3600):.1f} bytes/frame)")
        # 2. cost of recording at --speed max
        off, on = [], []
        for i in range(a.reps):
            base = dict(duration_min=a.minutes, source="replay", speed=math.inf,
                        replay_start_index=200, reset_account=True)
            off.append(run(SessionConfig(data_dir=tmp / f"off{i}", record=False, **base))[0])
            dt, s = run(SessionConfig(data_dir=tmp / f"on{i}", **base))
            on.append(dt)
            rec_id, rec_frames = s.run_id, s.final_report["recording"]["frames"]
            rec_dir = tmp / f"on{i}"
        m_off, m_on = statistics.median(off), statistics.median(on)
        print(f"2. cost: {a.minutes} market minutes at --speed max, {rec_frames:,} frames: "
              f"recording off median {m_off:.2f}s, on {m_on:.2f}s (ratio {m_on / m_off:.2f})")
        # 3. replay speed of that recording vs the inline replay of the same minutes
        rep = []
        for i in range(a.reps):
            dt, s = run(SessionConfig(data_dir=rec_dir, source="recording", recording=rec_id,
                                      speed=math.inf, duration_min=a.minutes, record=False))
            assert s.final_report["source"] == "recording"
            rep.append(dt)
        m_rep = statistics.median(rep)
        print(f"3. replay: the recording at --speed max median {m_rep:.2f}s = "
              f"{rec_frames / m_rep:,.0f} frames/s ({a.minutes * 60 / m_rep:,.0f}x real time); "
              f"inline replay of the bundled day without recording (baseline) median "
              f"{m_off:.2f}s = {rec_frames / m_off:,.0f} frames/s (ratio {m_rep / m_off:.2f})")


if __name__ == "__main__":
    main()
