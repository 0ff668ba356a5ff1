"""This engine against backtrader, nautilus_trader and a bare reference loop, on one month of
1-minute bars, with the same SMA(10)/SMA(30) crossover, next-open fills and a 6 bps taker fee.

    pip install -r requirements-bench.txt      # backtrader, nautilus_trader (bench only)
    python bench/peers.py [--rounds 3] [--bars N] [--only engine,reference] [--all-quotes]

Each round runs every engine once, in a rotating order (the machine is shared and noisy); each
run is checked fill by fill against the reference loop (timestamp, side, quantity and price
exact, fee to 1e-9). Timed is each engine's run only (the data loaded and the engine built
before the clock starts): this engine's replay loop at engine speed (`--speed max` on a bar
file: candles, strategy, broker, ledger, and the journal's commits included), backtrader's
`cerebro.run()`, nautilus' `engine.run()`, the reference's loop. How each peer is fed:
bench/peer_engines.py. The table gives medians; the last line, exactly:

    engine_bars_per_s=<int> best_peer=<name> best_peer_bars_per_s=<int> ratio=<float> identical_fills=<n>/<n_ref>

(`identical_fills`: this engine's fills equal to the reference's, of the reference's count;
`ratio`: this engine's median bars/s over the faster peer's, measured in the same run.)
"""
from __future__ import annotations

import argparse
import gzip
import logging
import math
import statistics
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import peer_engines  # noqa: E402

DATA = ROOT / "bench" / "data" / "btc_perp_ftx_1m_20211231_20220201.csv.gz"
PEERS = ("backtrader", "nautilus")


def write_slice(src: Path, n: int, out: Path) -> Path:
    """The first `n` bars of `src` as a file of their own (a replay runs a whole file)."""
    with gzip.open(src, "rt") as f:
        lines = [next(f) for _ in range(n + 1)]
    with gzip.open(out, "wt") as f:
        f.writelines(lines)
    return out


def run_engine(path: Path, fast=10, slow=30, qty=0.1, fee_bps=6.0):
    """This engine on `path` as the peers run: from the first bar, latency 0, spread 0, no
    breaker, no flatten at the end, a fixed quantity. Returns (fills, loop seconds)."""
    from trading.broker import BrokerConfig
    from trading.runtime.session import Session, SessionConfig
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SessionConfig(
            data_dir=Path(tmp), source="replay", speed=math.inf, replay_file=path,
            duration_min=62 * 24 * 60, strategy="sma_cross",
            strategy_params={"fast": fast, "slow": slow},
            broker=BrokerConfig(starting_cash=Decimal("1000000"), latency_ms=0,
                                taker_fee_bps=fee_bps, fixed_qty=Decimal(repr(qty))),
            spread_usd=0.0, breaker_enabled=False, flatten_at_end=False,
            replay_from_start=True, record=False)
        s = Session(cfg)
        if s.run() != 0:
            raise RuntimeError(f"the engine's session failed: {s.error}")
        fills = [(int(f["fill_ts"]), str(f["side"]), float(Decimal(str(f["qty"]))),
                  float(f["fill_px"]), float(Decimal(str(f["fee"])))) for f in s.fills]
        return fills, s.fast.loop_seconds


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bars", type=int, default=0, help="only the first N bars (0: all)")
    ap.add_argument("--only", default="", help="comma list of engine,reference,"
                    "backtrader,nautilus (default: all)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--all-quotes", action="store_true",
                    help="this engine applies every quote of a bar, also the extremes that "
                    "nothing can act on (what skipping them buys)")
    args = ap.parse_args(argv)
    if args.all_quotes:
        from trading.runtime.fastpath import FastReplay
        FastReplay.skip_idle = False
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    logging.disable(logging.WARNING)
    names = ["engine", "reference", *PEERS]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
        if "reference" not in names:
            names.append("reference")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.data
        if args.bars:
            path = write_slice(args.data, args.bars, Path(tmp) / "slice.csv.gz")
        bars = peer_engines.load_bars(path)
        n = len(bars)
        runners = {
            "engine": lambda: run_engine(path),
            "reference": lambda: peer_engines.run_reference(bars),
            "backtrader": lambda: peer_engines.run_backtrader(bars),
            "nautilus": lambda: peer_engines.run_nautilus(bars),
        }
        ref, _ = peer_engines.run_reference(bars)
        times: dict[str, list[float]] = {k: [] for k in names}
        same: dict[str, list[int]] = {k: [] for k in names}
        missing: dict[str, str] = {}
        print(f"{n:,} bars of {args.data.name}; SMA(10)/SMA(30), next-open fills, 6 bps; "
              f"{args.rounds} rounds; reference fills: {len(ref):,}")
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                if name in missing:
                    continue
                try:
                    fills, secs = runners[name]()
                except ImportError as e:
                    missing[name] = f"not installed ({e.name or e}): pip install -r " \
                                    "requirements-bench.txt"
                    continue
                why = peer_engines.compare(ref, fills)
                times[name].append(secs)
                same[name].append(sum(1 for a, b in zip(ref, fills)
                                      if a[:4] == b[:4] and abs(a[4] - b[4]) <= 1e-9))
                if why:
                    print(f"  round {r + 1}: {name} differs from the reference: {why}")
        print(f"\n{'engine':<11} {'median s':>9} {'bars/s':>11} {'min s':>8} {'max s':>8} "
              f"{'fills same':>12}")
        med = {}
        for name in names:
            if name in missing:
                print(f"{name:<11} {missing[name]}")
                continue
            m = statistics.median(times[name])
            med[name] = n / m
            print(f"{name:<11} {m:>9.4f} {n / m:>11,.0f} {min(times[name]):>8.4f} "
                  f"{max(times[name]):>8.4f} {min(same[name]):>5,}/{len(ref):<6,}")
        peers = {k: v for k, v in med.items() if k in PEERS}
        best = max(peers, key=peers.get) if peers else "none"
        best_bps = peers.get(best, 0.0)
        eng = med.get("engine", 0.0)
        ident = min(same["engine"]) if same.get("engine") else 0
        if "reference" in med and eng:
            print(f"\nthis engine / bare reference loop: {eng / med['reference']:.3f}")
        ratio = eng / best_bps if best_bps else 0.0
        print(f"engine_bars_per_s={int(eng)} best_peer={best} best_peer_bars_per_s="
              f"{int(best_bps)} ratio={ratio:.2f} identical_fills={ident}/{len(ref)}")
    return 0 if ident == len(ref) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
