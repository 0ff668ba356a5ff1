"""GUI bridge under a quote storm: publish cost on the engine thread, repaints that follow.

An engine thread publishes quotes at --rate per second in 1 ms bursts (plus one fill per 1,000
quotes) while the GUI thread runs its event loop; the bridge keeps only the latest quote and
emits it at most once per frame (~30/s). Prints quotes received / emitted, the publish cost per
quote and the event loop's worst gap. --rate 0 publishes flat out (then the GIL, not the
bridge, decides how often the GUI thread runs).

    QT_QPA_PLATFORM=offscreen python bench/gui_bridge.py [--seconds 3] [--rate 5000]
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rate", type=float, default=5000.0, help="quotes per second; 0 = max")
    args = p.parse_args()
    from PySide6.QtCore import QCoreApplication, QTimer

    from gui.bridge import Bridge
    from trading.model import Quote

    app = QCoreApplication.instance() or QCoreApplication([])
    bridge = Bridge()
    seen = {"quotes": 0, "fills": 0, "last": None}
    bridge.quote_changed.connect(lambda q: seen.update(quotes=seen["quotes"] + 1, last=q))
    bridge.fill.connect(lambda f: seen.update(fills=seen["fills"] + 1))
    quotes = [Quote(ts=1_767_225_600_000 + i, bid=87_000.0 + i % 50, ask=87_001.0 + i % 50)
              for i in range(10_000)]
    stop = threading.Event()
    published = {"n": 0, "s": 0.0, "cost": 0.0}
    burst = max(1, int(args.rate / 1000)) if args.rate else 1000

    def engine() -> None:
        n, cost, t0 = 0, 0.0, time.perf_counter()
        while not stop.is_set():
            c0 = time.perf_counter()
            for _ in range(burst):
                bridge.publish("quote", quotes[n % len(quotes)])
                n += 1
                if n % 1000 == 0:
                    bridge.publish("fill", {"order_id": "bench", "seq": n})
            cost += time.perf_counter() - c0
            if args.rate:
                time.sleep(max(0.0, t0 + n / args.rate - time.perf_counter()))
        published.update(n=n, s=time.perf_counter() - t0, cost=cost)

    gaps = {"last": time.perf_counter(), "max": 0.0}

    def tick() -> None:
        now = time.perf_counter()
        gaps["max"] = max(gaps["max"], now - gaps["last"])
        gaps["last"] = now

    beat = QTimer()
    beat.timeout.connect(tick)
    beat.start(5)
    t = threading.Thread(target=engine, name="bench-engine")
    t.start()
    QTimer.singleShot(int(args.seconds * 1000), lambda: (stop.set(), t.join(), app.quit()))
    app.exec()
    bridge.drain()
    st = bridge.stats()
    n, secs = published["n"], published["s"]
    print(f"quotes published {n:,} in {secs:.2f}s ({n / secs:,.0f}/s), publish cost "
          f"{published['cost'] / n * 1e6:.2f} us per quote")
    print(f"quotes received {st['quotes_received']:,}, emitted {st['quotes_emitted']:,} "
          f"({st['quotes_emitted'] / args.seconds:.1f}/s); fills emitted {seen['fills']:,} of "
          f"{n // 1000:,}; worst event-loop gap {gaps['max'] * 1000:.1f} ms")
    return 0 if seen["fills"] == n // 1000 and st["quotes_received"] == n else 1


if __name__ == "__main__":
    sys.exit(main())
