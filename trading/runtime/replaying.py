"""Replaying a recording: the recorded frames through the same parser, candles, strategy,
execution and broker, with the recorded receive times as the clock.

Two modes, chosen by comparing the recording's trading settings with this session's:

* exact (nothing that trades changed): every recorded input is applied in its recorded order,
  the execution worker's clock ticks included, so the replay makes the same fills and PnL;
* what-if (a setting changed, e.g. the latency): the recorded frames and clock readings are
  applied in order, and the clock ticks when the *replay's* orders come due -- an order due
  before the next frame's clock reading fills first, at the quote then in force.

A watchdog or supervisor restart in the recorded run is a segment boundary: the replay does
what the restart did (the forming candle is lost, the old quote is not trusted, overdue orders
go out at the first fresh quote) and, in exact mode, takes the strategy and breaker state the
restarted segment loaded from disk. The replay's account starts from the recorded run's.
"""
from __future__ import annotations

import json
import logging
import math
import time
from decimal import Decimal
from pathlib import Path

from trading.candles import CandleBuilder
from trading.events import DataSkipped
from trading.model import FeedReconnected
from trading.runtime.recording import (RecordingError, decode_frame, find_recording, iter_records,
                                       read_head)

log = logging.getLogger("btc_laptop_agents.replay")

# what a replay must keep equal to the recording for the exact mode
EXACT_KEYS = ("broker", "breaker", "strategy", "strategy_params", "entry", "flatten_at_end",
              "equity_every_ms", "symbol", "duration_min", "breaker_enabled")


class ReplayClock:
    """The recorded session clock: set from each input's recorded reading, moved by the data
    as the recorded clock was ("data": the newest timestamp; "live": the newest push)."""

    speed = math.inf

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._now = 0
        self._last_push = 0

    def now_ms(self) -> int:
        return self._now

    def set(self, now_ms: int) -> None:
        self._now = int(now_ms)

    def observe(self, ts: int) -> None:
        if self.kind == "data":
            self._now = max(self._now, ts)
        elif ts > self._last_push:
            self._last_push = self._now = ts

    def wall_seconds_until(self, ts: int) -> float:
        return 0.0


def open_source(ref: str, runs_dir: Path) -> tuple[Path, dict, dict]:
    """Resolve `recording:<ref>` and read its head; raise RecordingError saying what is wrong."""
    path = find_recording(ref, runs_dir)
    header, first = read_head(path)
    if first is None:
        raise RecordingError(f"{path}: the recording has no segment start (it holds no "
                             f"session to replay)")
    return path, header, first


class RecordingInputs:
    """The inputs of a recording, applied to session `s` in order (iterate: frames)."""

    def __init__(self, s, path: Path) -> None:
        from trading.runtime.config import config_to_dict
        self.s = s
        self.path = Path(path)
        self.header, self.first = read_head(self.path)
        mine = config_to_dict(s.config)
        from trading.runtime.config import _migrate
        theirs = _migrate(self.header["config"])
        self.changed = [k for k in EXACT_KEYS if str(mine.get(k)) != str(theirs.get(k))]
        self.exact = not self.changed
        self.same_strategy = all(str(mine.get(k)) == str(theirs.get(k))
                                 for k in ("strategy", "strategy_params"))
        self.speed = s.config.speed
        self.pos = 0  # records consumed (the state file keeps it: a restart goes on from it)
        self.end_reason = ""
        self.end_now: int | None = None
        self.end_flatten = False
        self._records = None
        log.info("recording_replay", extra={
            "path": str(self.path), "of_run": self.header["run_id"],
            "mode": "exact" if self.exact else "what-if", "changed": self.changed})

    # ---- the account it starts from ----
    def seed_account(self) -> str:
        """Start from the recorded run's own account, strategy and breaker state."""
        s, st = self.s, self.first["state"]
        s.broker.restore(st["broker"])
        s.broker.order_prefix = s.run_id
        s.broker.filled_order_ids = set()
        s.broker.pending = []  # the recorded pending orders were the original run's
        s.breaker.restore(st["breaker"])
        if self.same_strategy:
            s.strategy.restore(st.get("strategy") or {})
        sess = st.get("session") or {}
        s.starting_equity = Decimal(sess["starting_equity"]) if sess.get("starting_equity") \
            else s.broker.equity()
        return (f"the recorded run {self.header['run_id']}'s starting account (cash "
                f"{s.broker.ledger.cash}, position {s.broker.position.qty})")

    # ---- the inputs ----
    def __iter__(self):
        from trading.runtime.sources import to_frame
        s = self.s
        records = iter_records(self.path)
        self._records = records
        skip = int(getattr(s, "recording_pos", 0) or 0) if s.resumed else 0
        wall0 = mono0 = None
        for rec in records:
            self.pos += 1
            if self.pos <= 2 or self.pos <= skip:  # the header, segment 1: already applied
                continue
            if "f" in rec or "b" in rec:
                n = int(rec["n"])
                if not math.isinf(self.speed):  # pace by the recorded receive times
                    m = float(rec.get("m", 0.0))
                    if mono0 is None or m < mono0:
                        wall0, mono0 = time.monotonic(), m
                    wait = wall0 + (m - mono0) / self.speed - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                with s.lock:
                    self._model_ticks(n)
                    s.clock.set(n)
                yield to_frame(decode_frame(rec))
            elif "k" in rec:
                if self.exact:
                    with s.lock:
                        s.engine.tick(int(rec["k"]))
            elif "r" in rec:
                n = int(rec["n"])
                with s.lock:
                    self._model_ticks(n)
                    s.clock.set(n)
                    s.engine.reconnected(FeedReconnected(ts=int(rec["r"]),
                                                         connects=int(rec["c"])), n)
            elif "warmup" in rec:
                from trading.runtime.sources import apply_warmup
                apply_warmup(s, list(rec["warmup"]), str(rec.get("layout")),
                             f"recording ({rec.get('src')})")
            elif "skip" in rec:
                s.engine.skip_until = int(rec["skip"])
                s.bus.publish(DataSkipped(int(rec["skip"])))
            elif "seg" in rec:
                with s.lock:
                    self._restart(rec)
            elif "end" in rec:
                self._ended(rec)
                return
            elif "truncated" in rec:
                self.end_reason = f"the recording ends here: {rec['truncated']}"
                return
            yield None  # a non-frame input applied: let the loop check the time

    def _model_ticks(self, n: int) -> None:
        """What-if: the clock reaches `n`; orders of this replay due by then fill first."""
        if self.exact:
            return
        b, e = self.s.broker, self.s.engine
        while b.pending and b.pending[0].due_ts <= n:
            now = b.pending[0].due_ts if self.header["clock"] == "live" else n
            if not e.tick(now):
                break

    def _restart(self, rec: dict) -> None:
        """A restart of the recorded run: do to this run what the restart did to it."""
        s, st = self.s, rec.get("state") or {}
        s.engine.candles = CandleBuilder()  # the forming candle died with the process
        s.broker.mark_quote_stale()
        s.broker.book = None  # so did the depth snapshot: the next push brings one
        s.engine.retime_pending = True
        s.engine.last_equity_ts = 0  # a new process samples the account at its first quote
        if self.exact:  # what the restarted segment loaded from disk
            s.breaker.restore(st["breaker"])
            s.strategy.restore(st.get("strategy") or {})
            for k in ("funding_due_ts", "funding_rate", "mark_px", "last_funding_ts",
                      "last_close"):
                if k in st.get("broker", {}):
                    setattr(s.broker, k, st["broker"][k])
        elif self.same_strategy:
            s.strategy.restore(st.get("strategy") or {})
        log.info("recording_segment", extra={"segment": rec.get("seg"),
                                             "mode": "exact" if self.exact else "what-if"})

    def _ended(self, rec: dict) -> None:
        self.end_reason = str(rec.get("why") or "recording ended")
        self.end_flatten = bool(rec.get("flat"))
        if self.exact or "duration_min" not in self.changed:
            self.end_now = int(rec["end"])
            self.s.clock.set(self.end_now)

    def finish(self) -> None:
        """The loop stopped at the session's end: take the recorded end (its clock reading)."""
        if self.end_now is not None or self._records is None:
            return
        for rec in self._records:
            if "end" in rec:
                self._ended(rec)
                return
            if "f" in rec or "b" in rec or "r" in rec:
                return  # data after the end: this replay ended elsewhere (a what-if)

    # ---- the comparison with the recorded run ----
    def write_comparison(self, run_dir: Path, report: dict) -> Path | None:
        from trading.runtime import outputs
        s = self.s
        return write_comparison(self.path.parent, Path(run_dir), journal=s.journal,
                                base_label="original", other_label="replay",
                                base_settings=self.header.get("settings"),
                                other_settings=outputs.settings(s),
                                title=f"Replay {s.run_id} of run {self.header['run_id']}")


def compare_run_folders(base_dir: Path, other_dir: Path, *, journal=None,
                        base_label: str = "base", other_label: str = "other",
                        base_settings: dict | None = None, other_settings: dict | None = None,
                        title: str = "") -> dict:
    """Compare two run folders (final_report.json + fills.csv; equity, candles and settings
    from the journal where it has them). Raise ValueError when a folder has no report."""
    from storage.reports import read_report
    from trading.compare import compare_runs
    runs = []
    for d, label, settings in ((base_dir, base_label, base_settings),
                               (other_dir, other_label, other_settings)):
        try:
            report = read_report(d)
        except Exception as e:  # noqa: BLE001 - missing or unreadable: say which
            raise ValueError(f"{d} has no readable final_report.json ({e})") from None
        run_id = str(report.get("run_id") or Path(d).name)
        equity, candles = [], []
        if journal is not None and not journal.closed:
            try:
                equity = [dict(r) for r in journal.equity(run_id)]
                candles = [dict(r) for r in journal.candles(run_id)]
                if settings is None:
                    row = journal.session(run_id) or {}
                    settings = json.loads(row.get("settings_json") or "{}")
            except Exception:  # noqa: BLE001 - the figures and fills are enough
                equity, candles = [], []
        runs.append({"run_id": run_id, "label": label, "report": report,
                     "settings": settings or {}, "fills": _read_fills(Path(d) / "fills.csv"),
                     "equity": equity, "candles": candles})
    return compare_runs(base=runs[0], other=runs[1], candles=runs[1]["candles"]
                        or runs[0]["candles"], title=title)


def write_comparison(base_dir: Path, other_dir: Path, **kw) -> Path | None:
    """compare.html in `other_dir` (the later run's folder); None (logged) if it cannot be."""
    from storage.reports import write_compare_html
    try:
        comparison = compare_run_folders(base_dir, other_dir, **kw)
        path = write_compare_html(other_dir, comparison)
    except Exception as e:  # noqa: BLE001 - the run's own report is already written
        from trading.runtime.common import log_write_failure
        log_write_failure("compare_write_failed", e)
        return None
    log.info("compare_written", extra={"path": str(path), "identical": comparison["identical"],
                                       "base": str(base_dir)})
    return path


def _read_fills(path: Path) -> list[dict]:
    import csv
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [dict(r) for r in csv.DictReader(f)]
    except OSError:
        return []
