"""The session loop: take inputs off the feed queue (or an inline source) and apply them,
with the heartbeat, the periodic state save and the liveness checks in between."""
from __future__ import annotations

import logging
import queue
import time

from trading.runtime import outputs
from trading.runtime.common import FatalSessionError, SessionError, current_rss_mb

log = logging.getLogger("btc_laptop_agents.session")


def run(s) -> None:
    if s.inline is not None:
        return run_inline(s)
    cfg = s.config
    wall_budget = wall_budget_s(s)
    while not s.stop_event.is_set():
        s.beat()
        try:
            items = s.queue.get_many(timeout=0.1)  # what waits, in order (one lock)
        except queue.Empty:
            items = ()
        for item in items:
            s.apply(item)
            if s.worker_errors or s.engine.over() or s.stop_event.is_set():
                break  # the rest is not applied, as if still queued when the session ended
        housekeeping(s)
        if s.worker is not None and not s.worker.alive:
            raise SessionError("execution worker thread died")
        if s.feed is not None and not s.feed.alive and not s.stop_event.is_set():
            raise SessionError("feed thread died")
        if s.exchange is not None and getattr(s.exchange, "failed", None):
            raise FatalSessionError(f"local exchange replay failed: {s.exchange.failed}")
        if s.worker_errors or s.engine.over():
            return
        if s.start_data_ts is None:
            waited = time.monotonic() - s.started_mono
            if waited > max(60.0, cfg.stale_after_s * 6):
                raise FatalSessionError(f"no market data after {waited:.0f}s "
                                        f"({s.feed.stats.last_error if s.feed else ''})")
        elif time.monotonic() - s.started_mono > wall_budget:
            raise SessionError(f"market data stopped advancing: session not over after "
                               f"{wall_budget:.0f}s wall time")
        if s.exchange is not None and getattr(s.exchange, "ended", False) \
                and s.queue.empty():
            s.stopped_reason = "replay data ended"
            return


def run_inline(s) -> None:
    """Frames applied on this thread, as fast as `--speed` allows (no socket)."""
    if hasattr(s.inline, "run"):  # a bar or quote file at engine speed
        s.inline.run()
        s.stopped_reason = s.stopped_reason or s.inline.end_reason or "replay data ended"
        outputs.progress(s, force=True)
        return
    n = 0
    for item in s.inline:
        if item is not None:
            s.apply(item)
        if s.engine.over() or s.stop_event.is_set():
            break
        n += 1
        if n % 256 == 0:
            housekeeping(s)
            if s.worker_errors or (s.worker is not None and not s.worker.alive):
                raise SessionError("execution worker thread died")
    else:
        s.stopped_reason = s.stopped_reason or getattr(
            s.inline, "end_reason", "") or "replay data ended"
    outputs.progress(s, force=True)


def housekeeping(s) -> None:
    """Heartbeat, the window's health and the console line, the periodic state save, the
    memory sample, and the injected hang (session thread)."""
    s.beat()
    outputs.progress(s)
    now = time.monotonic()
    if now - s._last_state_save >= s.config.state_save_every_s:
        s._save_state("running")
        rss = current_rss_mb()
        if rss:
            s.rss_samples.append(rss)
            s.peak_rss_mb = max(s.peak_rss_mb, rss)
    hang = s.config.inject_hang_after_s
    if hang is not None and not s.injected.get("hang") \
            and now - s.started_mono >= hang:
        s.injected["hang"] = True
        s._save_state("running")
        log.warning("injected_hang", extra={"after_s": hang, "run_id": s.run_id})
        while not s.abort_event.is_set():  # no heartbeat from here on
            time.sleep(0.05)


def wall_budget_s(s) -> float:
    remaining = s.remaining_ms() / 1000
    if s.config.source == "bitunix" or s.source_used == "bitunix":
        return remaining * 1.5 + 120
    return remaining / s.config.speed * 2 + 120
