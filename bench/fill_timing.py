"""Fill timing on the live code path: how late, in wall time, does a fill happen after its due?

The session runs exactly as against Bitunix (`source="bitunix"`: the live clock, the REST
warm-up, the websocket feed, the execution worker), pointed at the local exchange in its
"wall" clock mode: real time, pushes stamped with the exchange's clock as Bitunix's are. A
trader thread places a small market order every `--every-s` seconds (entry, then exit), with
the configured execution latency, so a few minutes give hundreds of fills. For every fill:

    lateness = wall time the broker filled it - wall time of its due (due_ts on the
               exchange's clock); also shown: until the fill was journaled and published
    quote age = fill_ts - the push time of the quote it filled at

Baseline measured in the same run: the lateness of a bare `threading.Condition.wait(timeout)`
on this machine, the timer the worker sleeps on. Figures are medians / p99 / max.

    python bench/fill_timing.py --minutes 3 [--latency-ms 200] [--every-s 0.4]

The last line is exactly: fill_lateness_ms p50=<float> p99=<float> max=<float> fills=<int>
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.logger import temporary_logging  # noqa: E402
from trading.broker import BrokerConfig  # noqa: E402
from trading.model import Side  # noqa: E402
from trading.runtime.datafiles import default_replay_file, load_market_file  # noqa: E402
from trading.runtime.exchange import LocalExchange  # noqa: E402
from trading.runtime.session import Session, SessionConfig  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def timer_baseline(samples: int, wait_s: float) -> list[float]:
    """Lateness (ms) of Condition.wait(wait_s) itself: what no worker can beat."""
    cond = threading.Condition()
    out = []
    with cond:
        for _ in range(samples):
            due = time.time() + wait_s
            cond.wait(wait_s)
            out.append((time.time() - due) * 1000)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=3.0, help="session length (default 3)")
    p.add_argument("--latency-ms", type=int, default=200, help="execution latency (default 200)")
    p.add_argument("--every-s", type=float, default=0.4,
                   help="one order every S wall seconds (default 0.4)")
    p.add_argument("--seed", type=int, default=5)
    args = p.parse_args()
    if args.minutes <= 0 or args.every_s <= 0 or args.latency_ms < 0:
        p.error("--minutes and --every-s must be > 0, --latency-ms >= 0")

    baseline = timer_baseline(200, args.latency_ms / 1000)
    data_dir = Path(tempfile.mkdtemp(prefix="fill-timing-")) / "data"
    data_dir.mkdir()
    fills: list[tuple[float, dict, int | None]] = []  # (wall ms, fill, quote push ts)
    with temporary_logging(data_dir, console=False), \
            LocalExchange(load_market_file(default_replay_file()), speed=1.0, seed=args.seed,
                          start_index=700, clock="wall", quotes_per_minute=240) as ex:
        holder: dict = {}

        def publish(kind: str, payload) -> None:
            # runs in the worker thread right after broker.advance, with the session lock held
            if kind == "fill" and payload.get("due_ts") is not None:
                s = holder["s"]
                q = s.broker.quote
                fills.append((time.time() * 1000, dict(payload), q.ts if q else None))

        cfg = SessionConfig(data_dir=data_dir, source="bitunix", duration_min=args.minutes,
                            bitunix_ws_url=ex.ws_url, bitunix_rest_url=ex.rest_url,
                            probe_timeout_s=2.0, reset_account=True, seed=args.seed,
                            broker=BrokerConfig(latency_ms=args.latency_ms),
                            progress_stream=None)
        s = Session(cfg, publish=publish)
        holder["s"] = s
        result: dict = {}
        runner = threading.Thread(target=lambda: result.setdefault("exit", s.run()),
                                  name="bench-session", daemon=True)
        runner.start()
        deadline = time.monotonic() + 30
        while not (getattr(s, "_begun", False) and s.worker is not None and s.broker.quote):
            if time.monotonic() > deadline or not runner.is_alive():
                print("the session never started trading", file=sys.stderr)
                return 1
            time.sleep(0.05)
        filled_at: dict[str, float] = {}  # order id -> wall ms of the broker call that filled it
        advance = s.broker.advance

        def timed_advance(now_ts: int, advance=advance) -> list:
            t = time.time() * 1000
            events = advance(now_ts)
            for ev in events:
                fill = getattr(ev, "fill", None)
                if fill is not None:
                    filled_at[fill.order_id] = t
            return events

        s.broker.advance = timed_advance  # timestamps only; the broker's own code fills
        placed = 0
        entry = True
        while runner.is_alive():
            with s.lock:
                now = s.clock.now_ms()
                q = s.broker.quote
                if entry:
                    events = s.broker.submit(Side.BUY, "entry", now_ts=now, signal_ts=now,
                                             signal_px=q.ask, qty=Decimal("0.001"))
                elif s.broker.position.qty > 0:
                    events = s.broker.submit(Side.SELL, "exit", now_ts=now, signal_ts=now,
                                             signal_px=q.bid)
                else:
                    events = []
                if events:
                    s._on_broker_events(events)  # journal + publish, as a strategy order is
                    placed += 1
            s.worker.notify()
            entry = not entry
            time.sleep(args.every_s)
        runner.join()
    skew = ex.clock_skew_ms  # the exchange's clock = this machine's wall clock + skew
    late = [filled_at[f["order_id"]] - (f["due_ts"] - skew) for _, f, _ in fills
            if f["order_id"] in filled_at]
    published = [wall - (f["due_ts"] - skew) for wall, f, _ in fills]
    age = [f["fill_ts"] - qts for _, f, qts in fills if qts is not None]
    print(f"session exit {result.get('exit')}, orders placed {placed}, fills with a due time "
          f"{len(fills)}, latency {args.latency_ms} ms, {args.minutes:g} min")
    print(f"timer baseline (Condition.wait {args.latency_ms} ms, 200 samples): "
          f"p50={statistics.median(baseline):.3f} p99={pct(baseline, 99):.3f} "
          f"max={max(baseline):.3f} ms")
    print(f"until journaled and published: p50={pct(published, 50):.3f} "
          f"p99={pct(published, 99):.3f} max={max(published) if published else float('nan'):.3f}"
          " ms")
    print(f"quote age at fill: p50={pct(age, 50):.1f} p99={pct(age, 99):.1f} "
          f"max={max(age) if age else float('nan'):.1f} ms")
    if late:
        ratio = statistics.median(late) / statistics.median(baseline) \
            if statistics.median(baseline) > 0 else float("nan")
        print(f"fill lateness / timer baseline (medians): {ratio:.2f}x")
    print(f"fill_lateness_ms p50={pct(late, 50):.3f} p99={pct(late, 99):.3f} "
          f"max={max(late) if late else float('nan'):.3f} fills={len(late)}")
    return 0 if result.get("exit") == 0 and late else 1


if __name__ == "__main__":
    sys.exit(main())
