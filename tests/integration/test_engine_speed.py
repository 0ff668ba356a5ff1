"""Replays at engine speed (`--speed max` on a bar or quote file): the same engine as every
session, checked against the reference loop of bench/peers.py on a slice of the FTX month."""
from __future__ import annotations

import gzip
import math
import re
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from trading.broker import BrokerConfig
from trading.runtime.session import Session, SessionConfig

ROOT = Path(__file__).resolve().parents[2]
FTX = ROOT / "bench" / "data" / "btc_perp_ftx_1m_20211231_20220201.csv.gz"
QUOTES = ROOT / "bench" / "data" / "btcusdt_perp_binance_quote_ticks_3windows.csv.gz"
LAST_LINE = re.compile(r"^engine_bars_per_s=(\d+) best_peer=(\S+) best_peer_bars_per_s=(\d+) "
                       r"ratio=([0-9.]+) identical_fills=(\d+)/(\d+)$")


def test_peers_script_on_a_slice_makes_the_reference_fills():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "peers.py"), "--bars", "4000",
                           "--rounds", "1", "--only", "engine,reference"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    m = LAST_LINE.match(last)
    assert m, last
    n, n_ref = int(m.group(5)), int(m.group(6))
    assert n == n_ref > 100  # every fill equal: ts, side, qty, price; fee to 1e-9
    assert int(m.group(1)) > 0 and m.group(2) == "none"  # no peer asked for


def small_ohlcv(path: Path, closes: list[float]) -> Path:
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
    with gzip.open(path, "wt") as f:
        f.write("ts_ms,open,high,low,close,volume\n")
        prev = closes[0]
        for i, c in enumerate(closes):
            o = prev
            f.write(f"{t0 + i * 60_000},{o},{max(o, c) + 2},{min(o, c) - 2},{c},1.0\n")
            prev = c
    return path


def session(tmp: Path, path: Path, **kw) -> Session:
    broker = kw.pop("broker", BrokerConfig(latency_ms=0, fixed_qty=Decimal("0.01")))
    cfg = SessionConfig(data_dir=tmp, source="replay", speed=math.inf, replay_file=path,
                        duration_min=kw.pop("duration_min", 62 * 24 * 60),
                        strategy=kw.pop("strategy", "sma_cross"),
                        strategy_params=kw.pop("strategy_params", {"fast": 2, "slow": 4}),
                        broker=broker,
                        spread_usd=kw.pop("spread_usd", 0.0), breaker_enabled=False,
                        flatten_at_end=False, replay_from_start=True, record=False, **kw)
    s = Session(cfg)
    assert s.run() == 0, s.error
    return s


def test_a_bar_signal_fills_at_the_quote_in_force_after_the_latency(tmp_path):
    # down, then up: SMA(2) crosses above SMA(4) on bar 6's close (97 > 96.75; before: 95.5
    # <= 96.5)
    closes = [100.0, 99.0, 98.0, 97.0, 96.0, 95.0, 99.0, 104.0, 108.0, 110.0, 111.0]
    path = small_ohlcv(tmp_path / "bars.csv.gz", closes)
    s0 = session(tmp_path / "l0", path)
    s1 = session(tmp_path / "l1", path, broker=BrokerConfig(latency_ms=20_000,
                                                             fixed_qty=Decimal("0.01")),
                 spread_usd=1.0)
    assert s0.fast is not None and s1.fast is not None  # the engine-speed path ran
    (f0,), (f1,) = s0.fills, s1.fills
    t0 = int(s0.closed_candles[0].ts)
    # latency 0: bar 7's open (= bar 6's close, 99), at bar 7's open time
    assert (f0["side"], f0["fill_ts"], f0["fill_px"]) == ("BUY", t0 + 7 * 60_000, 99.0)
    # 20 s: the quote in force 20 s into bar 7 -- its second quote (15 s: the extreme nearer
    # the open, here the low 97, before the high 106) plus half the 1.0 spread; stamped at
    # the due time
    assert f1["fill_ts"] == t0 + 7 * 60_000 + 20_000 and f1["fill_px"] == 97.5
    assert (f1["bid"], f1["ask"]) == (96.5, 97.5)


def test_the_journal_holds_every_row_of_a_batched_run(tmp_path):
    lines = gzip.open(FTX, "rt").read().splitlines()[:3001]
    path = tmp_path / "slice.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    s = session(tmp_path / "d", path, strategy_params={"fast": 10, "slow": 30})
    db = sqlite3.connect(tmp_path / "d" / "journal.sqlite3")
    fills = db.execute("SELECT fill_id, qty, fill_px, fee FROM fills ORDER BY fill_ts, seq")
    fills = fills.fetchall()
    assert len(fills) == len(s.fills) > 50
    assert [(r[1], r[2]) for r in fills] == [(str(f["qty"]), f["fill_px"]) for f in s.fills]
    statuses = dict(db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status"))
    assert statuses == {"filled": len(s.fills)}
    (candles,) = db.execute("SELECT COUNT(*) FROM candles").fetchone()
    assert candles == 2999  # every bar but the last (no next bar closes it)
    (samples,) = db.execute("SELECT COUNT(*) FROM equity").fetchone()
    assert 40 <= samples <= 3001  # by market time (a minute at least), not per quote
    report = s.final_report
    assert report["engine_speed_replay"]["rows"] == 3000
    assert report["ledger_reconciles"] is True


def _journal_rows(d: Path) -> dict:
    db = sqlite3.connect(d / "journal.sqlite3")
    out = {t: db.execute(f"SELECT {cols} FROM {t} ORDER BY ts").fetchall() for t, cols in (
        ("candles", "ts, open, high, low, close, volume"),
        ("equity", "ts, equity, cash, realized, unrealized, position_qty"))}
    out["fills"] = db.execute("SELECT seq, side, qty, fill_ts, fill_px, bid, ask, fee, "
                              "realized_pnl, position_after, cash_after, trigger, "
                              "trigger_px FROM fills ORDER BY fill_ts, seq").fetchall()
    db.close()
    return out


def test_idle_extremes_not_applied_change_no_fill_sample_or_row(tmp_path, monkeypatch):
    """A bar's two intra-bar extremes are not applied when nothing can act on them (nothing
    pending, no stop or target, no sample due): with stops and latency (ema_momentum) and
    without (sma_cross), every fill, equity sample and journal row is the same as when every
    quote is applied -- and fewer quotes were applied."""
    from trading.runtime.fastpath import FastReplay
    lines = gzip.open(FTX, "rt").read().splitlines()[:2401]
    path = tmp_path / "slice.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    runs = {}
    for name, kw in (("sma", {"strategy_params": {"fast": 10, "slow": 30}}),
                     # a sample every 80 s: many fall due within a bar, after its extremes
                     ("sma80", {"strategy_params": {"fast": 10, "slow": 30},
                                "duration_min": 6667}),
                     ("ema", {"strategy": "ema_momentum", "strategy_params": {},
                              "spread_usd": 1.0, "broker": BrokerConfig(latency_ms=20_000)})):
        for skip in (True, False):
            monkeypatch.setattr(FastReplay, "skip_idle", skip)
            d = tmp_path / f"{name}{int(skip)}"
            s = session(d, path, **dict(kw))
            runs[name, skip] = (s, _journal_rows(d))
    for name in ("sma", "sma80", "ema"):
        (s1, j1), (s0, j0) = runs[name, True], runs[name, False]
        assert j1 == j0 and len(j1["fills"]) > 20 and len(j1["equity"]) > 20
        strip = [{k: v for k, v in f.items() if k != "order_id"} for f in s1.fills]
        assert strip == [{k: v for k, v in f.items() if k != "order_id"} for f in s0.fills]
        assert s1.final_report["final_equity"] == s0.final_report["final_equity"]
        assert s0.engine.quotes_idle == 0 and s1.engine.quotes_idle > 0
        assert s1.final_report["engine_speed_replay"]["quotes_idle"] == s1.engine.quotes_idle
        assert s1.quotes_in < s0.quotes_in
    # with a stop and a target on every position, fewer extremes are idle
    assert runs["ema", True][0].engine.quotes_idle < runs["sma", True][0].engine.quotes_idle


def test_quote_ticks_replay_at_engine_speed_through_candles_and_broker(tmp_path):
    cfg_broker = BrokerConfig(latency_ms=200, fixed_qty=Decimal("0.01"))
    s = session(tmp_path / "q", QUOTES, broker=cfg_broker,
                strategy_params={"fast": 1, "slow": 2}, duration_min=5.0)
    assert s.fast is not None and s.quotes_in > 10_000
    assert 4 <= len(s.closed_candles) <= 6
    c = s.closed_candles[0]
    assert c.low <= c.open <= c.high and c.low <= c.close <= c.high
    for f in s.fills:  # every fill is at the bid/ask of a real quote in force at its due time
        assert f["fill_px"] in (f["bid"], f["ask"])
        assert f["fill_ts"] == f["due_ts"] and f["due_ts"] - f["signal_ts"] == 200


def test_a_crash_mid_replay_resumes_at_its_checkpoint_and_makes_the_same_fills(tmp_path):
    """Crash-only at engine speed: the loop crashes after a checkpoint (journal, then state
    file); the watchdog resumes the run from them, the rows after the checkpoint are replayed,
    and the run ends with the fills, cash and journal of a run that never crashed."""
    import dataclasses
    import threading

    from trading.runtime.session import new_run_id
    from trading.runtime.watchdog import Watchdog, WatchdogConfig
    lines = gzip.open(FTX, "rt").read().splitlines()[:40_001]
    path = tmp_path / "slice.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    whole = session(tmp_path / "whole", path, strategy_params={"fast": 10, "slow": 30})
    cfg = SessionConfig(
        data_dir=tmp_path / "crash", source="replay", speed=math.inf, replay_file=path,
        duration_min=62 * 24 * 60, strategy="sma_cross", strategy_params={"fast": 10, "slow": 30},
        broker=BrokerConfig(latency_ms=0, fixed_qty=Decimal("0.01")), spread_usd=0.0,
        breaker_enabled=False, flatten_at_end=False, replay_from_start=True, record=False,
        state_save_every_s=0.02, inject_crash_after_s=0.0)
    sessions: list[Session] = []
    run_id = new_run_id()

    def make(resume: bool) -> Session:
        s = Session(dataclasses.replace(cfg, resume=True, watchdog_resume=True) if resume
                    else cfg, run_id=run_id)
        sessions.append(s)
        return s
    result = []
    dog = Watchdog(make, WatchdogConfig(restart_delay_s=0.1, hang_after_s=20))
    t = threading.Thread(target=lambda: result.append(dog.run()))
    t.start()
    t.join(120)
    assert result == [0] and len(sessions) == 2, (result, [s.error for s in sessions])
    first, second = sessions
    assert first.injected.get("crash") and second.resumed
    crashed_at = len(first.fills)
    assert 0 < crashed_at < len(whole.fills)  # the crash came mid-run, with fills behind it
    key = ("side", "qty", "fill_ts", "fill_px", "fee", "realized_pnl", "position_after")

    def rows(fills):
        return [tuple(str(f[k]) for k in key) for f in fills]
    assert rows(second.fills) == rows(whole.fills)
    db = sqlite3.connect(tmp_path / "crash" / "journal.sqlite3")
    journalled = db.execute("SELECT side, qty, fill_ts, fill_px, fee, realized_pnl, "
                            "position_after FROM fills ORDER BY fill_ts, seq").fetchall()
    assert [tuple(str(x) for x in r) for r in journalled] == rows(whole.fills)  # none twice
    led, ref = second.broker.ledger, whole.broker.ledger
    assert (led.cash, led.fees, led.realized_pnl) == (ref.cash, ref.fees, ref.realized_pnl)
