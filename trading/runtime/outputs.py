"""What a session says about itself: the state file's session part, the window's health, the
console's status line, the final report -- and the end-of-run commit sequence.

Commit order at the end of a run (`write_outputs`): the reports (final_report.json, fills.csv,
summary.html, and compare.html for a replay of a recording), then the state file says
"finished", then the journal's session row is closed. A kill between any two resumes the run,
finds no time left, and writes the same reports again.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict

from trading.bitunix import short_channel
from trading.events import HealthSampled, SessionFinished, StatusLine
from trading.compare import fill_costs
from trading.runtime.common import (dumps, iso, log_write_failure, mean, mmss,
                                    seconds_between)

log = logging.getLogger("btc_laptop_agents.session")

FEED_COUNTS = ("reconnects", "dropped", "parse_errors", "messages", "stale_disconnects",
               "connect_failures")


def feed_counts(s) -> dict:
    """Cumulative counters for the state file: earlier segments plus this one's feed."""
    out = dict(s.feed_prev)
    if s.feed is not None:
        for k in FEED_COUNTS:
            out[k] = out.get(k, 0) + getattr(s.feed.stats, k)
    return out


def session_state(s) -> dict:
    return {
        "start_data_ts": s.start_data_ts, "duration_ms": s.config.duration_ms,
        "last_data_ts": s.clock.now_ms() or s.resume_from_ts,
        "started_wall": s.started_wall, "source_used": s.source_used,
        "offline_fallback": s.offline_fallback, "fallback_reason": s.fallback_reason,
        "starting_equity": str(s.starting_equity),
        "restarts": s.restarts, "watchdog_restarts": s.watchdog_restarts,
        "repairs": s.repairs, "account_source": s.account_source,
        "account_note": s.account_note,
        "segments": s.segments, "injected": s.injected,
        "round_trips": [str(x) for x in s.round_trips],
        "feed_totals": feed_counts(s),
        "open_fees": str(s.engine.open_fees), "open_realized": str(s.engine.open_realized),
        "counters": {"blocked_signals": s.blocked_signals,
                     "ignored_signals": s.ignored_signals,
                     "error_count": s.error_count, "stale_quotes": s.stale_quotes,
                     "warmup_candles": s.warmup_candles,
                     "peak_rss_mb": s.peak_rss_mb, "quotes": s.quotes_in,
                     "events": s.events_in, "data_skipped_ms": s.data_skipped_ms,
                     "recording_pos": getattr(s.replay_inputs, "pos", 0),
                     "recorded_frames": recorded_frames(s),
                     "wall_seconds": round(s.wall_seconds_before
                                           + time.monotonic() - s.started_mono, 3)},
    }


def settings(s) -> dict:
    c = s.config
    b = c.broker
    out = {
        "duration_min": c.duration_min, "source": c.source, "speed": c.speed_label,
        "symbol": c.symbol, "seed": c.seed, "chaos": c.chaos or "",
        "replay_file": str(c.replay_file) if c.replay_file else "(bundled dYdX day)",
        "execution_latency_ms": b.latency_ms, "starting_cash": str(b.starting_cash),
        "taker_fee_bps": b.taker_fee_bps, "maker_fee_bps": b.maker_fee_bps,
        "slip_bps": b.slip_bps, "risk_per_trade": b.risk_per_trade,
        "max_leverage": b.max_leverage, "lot_size": str(b.lot_size),
        "flatten_at_end": c.flatten_at_end, "breaker_enabled": c.breaker_enabled,
        "fixed_qty": str(b.fixed_qty) if b.fixed_qty is not None else None,
        "replay_from_start": c.replay_from_start,
    }
    spec = s.strategy_spec
    out.update({k: v for k, v in spec.describe().items() if k != "strategy_params"})
    out.update({f"strategy.{k}": v for k, v in spec.params.items()})
    out.update({f"entry.{k}": v for k, v in asdict(c.entry).items()})
    out.update({f"breaker.{k}": v for k, v in asdict(c.breaker).items()})
    return out


def health(s) -> dict:
    """Everything the window's status bar and position panel show (any thread)."""
    with s.lock:
        eq = s.broker.equity()
        pos = s.broker.position
        position = {"qty": str(pos.qty), "avg_px": str(pos.avg_px), "stop_px": pos.stop_px,
                    "target_px": pos.target_px}
        realized = s.broker.ledger.realized_pnl
        unrealized = s.broker.unrealized()
        pending = [o.to_dict() for o in s.broker.pending]
        resting = [o.to_dict() for o in s.broker.resting]
        quote = s.broker.quote
    feed = feed_totals(s)
    dur = s.config.duration_ms
    remaining = s.remaining_ms()
    return {
        "run_id": s.run_id, "segment": s.segment, "restarts": s.restarts,
        "source": s.source_used, "offline_fallback": s.offline_fallback,
        "feed_state": feed.get("state", "inline replay"),
        "reconnects": feed.get("reconnects", 0), "dropped": feed.get("dropped", 0),
        "channel_ages_s": feed.get("channel_ages_s") or {},
        "channel_stale_s": s.config.channel_stale_s,
        "parse_errors": feed.get("parse_errors", 0),
        "last_message_age_s": feed.get("last_message_age_s"),
        "queue_depth": s.queue.qsize(), "queue_max": s.config.queue_maxsize,
        "breaker_state": s.breaker.state, "breaker_reason": s.breaker.trip_reason,
        "duration_ms": dur, "remaining_ms": remaining, "elapsed_ms": dur - remaining,
        "speed": s.config.speed if s.source_used != "bitunix" else 1.0,
        "data_ts": s.clock.now_ms(), "equity": float(eq),
        "starting_equity": float(s.starting_equity),
        "realized": float(realized), "unrealized": float(unrealized),
        "fees": float(s.broker.ledger.fees), "position": position,
        "pending_orders": pending, "resting_orders": resting, "fills": len(s.fills),
        "bid": quote.bid if quote else None, "ask": quote.ask if quote else None,
    }


def progress(s, force: bool = False) -> None:
    now = time.monotonic()
    if force or now - s._last_health >= 0.5:
        s._last_health = now
        s.bus.publish(HealthSampled(health(s)))
    if not force and now - s._last_progress < s.config.progress_every_s:
        return
    s._last_progress = now
    s.bus.publish(StatusLine(status_line(s)))


def status_line(s) -> str:
    dur = s.config.duration_ms
    elapsed = 0 if s.start_data_ts is None else max(0, s.clock.now_ms()
                                                       - s.start_data_ts)
    elapsed = min(elapsed, dur)
    with s.lock:
        eq = s.broker.equity()
        pos = s.broker.position.qty
    feed = s.feed.stats if s.feed else None
    feed_txt = (f"feed {feed.state} msgs {feed.messages} drops {feed.dropped} "
                f"reconnects {feed.reconnects}") if feed else "feed inline replay"
    if feed is not None and feed.channel_last_mono:
        now = time.monotonic()
        feed_txt += " | ages " + " ".join(  # per channel: seconds since its last push
            f"{short_channel(ch)} {now - t:.1f}s"
            for ch, t in sorted(feed.channel_last_mono.items()))
    return (f"[{mmss(elapsed)}/{mmss(dur)}] left {mmss(dur - elapsed)} | "
            f"equity {eq:.2f} ({eq - s.starting_equity:+.2f}) | fills {len(s.fills)} | "
            f"pos {pos} | {feed_txt} | breaker {s.breaker.state}")


def feed_totals(s) -> dict:
    """Feed figures over every segment of the run (earlier segments' counts carried)."""
    cur = s.feed.stats.snapshot() if s.feed else {"mode": "inline replay (no socket)"}
    for k, v in s.feed_prev.items():
        cur[k] = cur.get(k, 0) + v
    cur.update({"queue_maxsize": s.config.queue_maxsize,
                "events_processed": s.events_in, "other_symbol_events": s.other_symbol,
                "peak_rss_mb": round(s.peak_rss_mb, 1)})
    if s.exchange is not None:
        cur["exchange_faults_fired"] = ", ".join(
            str(f) for f in getattr(s.exchange, "faults_fired", [])) or "none"
    return cur


def report(s) -> dict:
    with s.lock:
        ledger = s.broker.ledger
        equity = s.broker.equity()
        position = s.broker.position.qty
    pnl = equity - s.starting_equity
    eq_points = [float(r["equity"]) for r in s.equity_curve] + [float(equity)]
    peak, mdd, mdd_pct = float(s.starting_equity), 0.0, 0.0
    for v in eq_points:
        peak = max(peak, v)
        if peak - v > mdd:
            mdd, mdd_pct = peak - v, (peak - v) / peak * 100 if peak else 0.0
    strat = [f for f in s.fills if f.get("latency_drift_bps") is not None]
    wins = sum(1 for r in s.round_trips if r > 0)
    feed = feed_totals(s)
    end_ts = s.end_data_ts or s.clock.now_ms() or s.resume_from_ts or None
    return {
        "status": s.status, "exit_code": s.exit_code, "run_id": s.run_id,
        "source": s.source_used, "requested_source": s.config.source,
        "offline_fallback": s.offline_fallback, "fallback_reason": s.fallback_reason,
        "symbol": s.config.symbol, "speed": s.config.speed_label,
        "seed": s.config.seed, "spread_usd": s.config.spread_usd,
        "replay_file": str(s.config.replay_file) if s.config.replay_file
        else "(bundled dYdX day)",
        "started": iso(s.started_wall * 1000), "ended": iso(time.time() * 1000),
        "data_start": iso(s.start_data_ts), "data_end": iso(end_ts),
        "duration_seconds": round((end_ts - s.start_data_ts) / 1000, 3)
        if s.start_data_ts and end_ts else 0.0,
        "wall_seconds": round(s.wall_seconds_before + time.monotonic()
                              - s.started_mono, 3),
        "data_skipped_while_down_s": round(s.data_skipped_ms / 1000, 3),
        "requested_duration_min": s.config.duration_min,
        "starting_equity": float(s.starting_equity), "final_equity": float(equity),
        "pnl_absolute": float(pnl),
        "pnl_pct": float(pnl / s.starting_equity * 100) if s.starting_equity else 0.0,
        "realized_pnl": float(ledger.realized_pnl), "fees": float(ledger.fees),
        "funding": float(ledger.funding), "ledger_reconciles": ledger.reconciles(),
        "cash": str(ledger.cash), "open_position_qty": str(position),
        "fills": len(s.fills), "round_trips": len(s.round_trips),
        "round_trips_won": wins,
        "win_rate": round(wins / len(s.round_trips), 4) if s.round_trips else None,
        "max_drawdown": round(mdd, 8), "max_drawdown_pct": round(mdd_pct, 4),
        "reconnects": feed.get("reconnects", 0),
        "dropped_messages": feed.get("dropped", 0),
        "parse_errors": feed.get("parse_errors", 0),
        "error_count": s.error_count + feed.get("parse_errors", 0),
        "blocked_signals": s.blocked_signals, "ignored_signals": s.ignored_signals,
        "breaker_state": s.breaker.state, "breaker_trips": s.breaker.trips,
        "stopped_reason": s.stopped_reason,
        "mean_latency_drift_bps": mean([f["latency_drift_bps"] for f in strat]),
        "mean_spread_cost_bps": mean([f["spread_cost_bps"] for f in s.fills]),
        "execution_latency_ms": s.config.broker.latency_ms,
        "min_fill_latency_ms": min((f["latency_ms"] for f in strat), default=None),
        "candles_closed": len(s.closed_candles), "warmup_candles": s.warmup_candles,
        "warmup_volume_layout": s.rest_volume_layout,
        "clock_skew_ms": s.feed.stats.clock_skew_ms if s.feed is not None else None,
        "channel_ages_s": feed.get("channel_ages_s", {}),
        "channel_resubscribes": feed.get("channel_resubscribes", 0),
        "channel_rebuilds": feed.get("channel_rebuilds", 0),
        "quotes": s.quotes_in, "stale_quotes_ignored": s.stale_quotes,
        "out_of_order_klines": s.candles.out_of_order,
        "late_kline_pushes": s.candles.late_pushes, "restarts": s.restarts,
        "segments": s.segments, "state_repairs": s.repairs,
        "account_source": s.account_source, "account_note": s.account_note,
        "peak_rss_mb": round(s.peak_rss_mb, 1),
        "error": s.error,
        "recording": recording_summary(s),
        "depth_model": s.depth_source or ("as recorded (the recording's depth pushes)"
                                          if s.source_used == "recording" else ""),
        **fill_costs(s.fills),
        **s.strategy_spec.describe(), "entry_orders": asdict(s.config.entry),
        "engine_speed_replay": fast_summary(s),
    }


def fast_summary(s) -> dict | None:
    """A bar or quote file replayed at engine speed: how much and how fast (None: another
    path)."""
    f = getattr(s, "fast", None)
    if f is None:
        return None
    return {"rows": f.rows_applied, "loop_seconds": round(f.loop_seconds, 4),
            "rows_per_s": round(f.rows_applied / f.loop_seconds) if f.loop_seconds else None,
            "equity_every_ms": s.engine.equity_every_ms,
            # a bar's extremes not applied: nothing could act on them (see fastpath)
            "quotes_idle": s.engine.quotes_idle}


def final_equity_point(s) -> list[dict]:
    """The account at the end (after the flatten): the equity chart ends where the PnL
    figure does, not at the last 5-second sample before it."""
    end_ts = s.end_data_ts or s.clock.now_ms()
    if not end_ts or (s.equity_curve and s.equity_curve[-1]["ts"] > end_ts):
        return []
    with s.lock:
        return [{"ts": end_ts, "equity": s.broker.equity(), "cash": s.broker.ledger.cash,
                 "realized": s.broker.ledger.realized_pnl,
                 "unrealized": s.broker.unrealized(),
                 "position_qty": s.broker.position.qty}]


def write_outputs(s) -> None:
    from storage.reports import write_run_reports
    rep = report(s)
    feed = feed_totals(s)
    # the page's feed health is read by a person: ages and error kinds as words, not JSON
    ages = feed.get("channel_ages_s")
    if isinstance(ages, dict):
        feed["channel_ages_s"] = " · ".join(
            f"{short_channel(ch)} {age:.1f} s" for ch, age in ages.items()) or "none"
    kinds = feed.get("parse_error_kinds")
    if isinstance(kinds, dict):
        feed["parse_error_kinds"] = ", ".join(f"{k} ({n})" for k, n in kinds.items()) \
            or "none"
    segments = [{**seg, "duration_seconds": seconds_between(seg.get("started"),
                                                             seg.get("ended"))}
                for seg in s.segments]
    from storage.reports import run_dir_name
    run_dir = s.paths.runs_dir / run_dir_name(s.run_id)
    final_point = final_equity_point(s)
    try:
        run_dir = write_run_reports(
            s.paths.runs_dir, s.run_id, report=rep, fills=s.fills,
            candles=[c.to_dict() for c in s.closed_candles],
            equity=s.equity_curve + final_point,
            settings=settings(s), feed=feed, events=s.events_log, segments=segments)
    except Exception as e:  # noqa: BLE001 - the session must still close its books
        why = log_write_failure("report_write_failed", e, run_id=s.run_id)
        s.status, s.exit_code = "error", 1
        s.error = f"the report could not be written: {why}" + (
            f" (the session had: {s.error})" if s.error else "")
        s.stopped_reason = s.stopped_reason or f"error: {s.error}"
        rep = report(s)
    s.run_dir = run_dir
    if s.source_used == "recording" and s.inline is not None:
        s.inline.write_comparison(run_dir, rep)
    # commit order at the end: reports, then the state file says "finished" (a kill between
    # the two resumes the run, finds no time left and writes the same reports again)
    try:
        s._save_state("finished" if s.status == "success" else "error")
    except Exception as e:  # noqa: BLE001
        log_write_failure("state_save_failed", e, run_id=s.run_id)
    if s.journal is not None:
        # every path ends the journal's row: success, error, give-up, a failed report
        with s.lock:
            final_cash = str(s.broker.ledger.cash)
            final_position = dumps(s.broker.position.to_dict())
        try:
            s.journal.end_session(s.run_id, ended_ts=int(time.time() * 1000),
                                     status=s.status, exit_code=s.exit_code,
                                     pnl_absolute=str(rep["pnl_absolute"]),
                                     report_dir=str(run_dir),
                                     stopped_reason=s.stopped_reason,
                                     final_cash=final_cash, final_position=final_position,
                                     restarts=s.restarts, error=s.error)
        except Exception as e:  # noqa: BLE001
            log_write_failure("journal_end_session_failed", e, run_id=s.run_id)
        try:
            s.journal.close()
        except Exception:  # noqa: BLE001
            log.exception("journal_close_failed")
    log.info("session_finished", extra={
        "run_id": s.run_id, "status": s.status, "exit_code": s.exit_code,
        "pnl_absolute": rep["pnl_absolute"], "fills": rep["fills"],
        "report_dir": str(run_dir), "stopped_reason": s.stopped_reason})
    s.final_report = rep
    try:  # the window's panels show the account after the flatten, not before it
        s.bus.publish(HealthSampled(health(s)))
    except Exception:  # noqa: BLE001 - a display refresh must not fail the session's end
        log.exception("final_health_failed")
    # the window's PnL chart ends where the report's does
    s.bus.publish(SessionFinished(rep, str(run_dir), tuple(final_point)))




def recorded_frames(s) -> int:
    return s.recorded_frames_before + (s.recorder.frames if s.recorder is not None else 0)


def recording_summary(s) -> dict | None:
    """Where the run's recording is, how many frames and bytes it holds (None: not recorded)."""
    rec = s.recorder
    if rec is None:
        return None
    try:
        size = rec.path.stat().st_size
    except OSError:
        size = None
    return {"path": str(rec.path), "frames": recorded_frames(s), "bytes": size,
            "truncated": rec.truncated or None, "failed": rec.failed or None}

