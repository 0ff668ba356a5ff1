"""The paper account at the start of a segment: carried over, rebuilt, reset, or resumed.

Crash-only: a fresh run carries the account over from the state file (checked against the
journal, the truth for fills); a restarted run resumes from the state file and the journal
exactly where it stopped. Every repair is said in words (log, console, window, report).
These functions set up the session `s` before any market data is applied.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from trading.broker import PaperBroker
from trading.events import AccountNoticed, JournalNote, SessionBegan
from trading.model import Candle, Fill
from trading.risk import CircuitBreaker
from trading.runtime.common import SessionError, dumps, iso, register_identifier_safe
from trading.state_schema import validate_state_doc

log = logging.getLogger("btc_laptop_agents.session")


def validate_state(s, d: dict) -> None:
    """Judge a state document as strictly as typed input; raise on anything wrong."""
    validate_state_doc(d, s.config.broker)
    probe = PaperBroker(s.config.broker)
    probe.restore(d["broker"])
    if not probe.ledger.reconciles():
        raise ValueError("ledger does not reconcile")
    CircuitBreaker(s.config.breaker).restore(d["breaker"])


def on_corrupt_state(s, error: str, moved) -> None:
    where = f"moved aside as {Path(moved).name}" if moved else "could not be moved aside"
    kind, _, detail = error.partition(": ")
    parts = detail.split("; ") if kind == "StateInvalid" else [error]
    first = parts[0][:160] + (f" and {len(parts) - 1} more problem(s)" if len(parts) > 1
                              else "")
    # short for the banner and the console; every problem is in the log and the report
    s.state_problem = f"the state file was corrupt ({first}) and was {where}"
    s.repairs.append(f"state file corrupt, {where}: {error[:2000]}")


def load_or_resume(s) -> None:
    """Start fresh (carrying the paper account over) or resume this run from disk."""
    from storage.state import load_state
    state = load_state(s.state_path, validate=lambda d: validate_state(s, d),
                       on_corrupt=lambda e, m: on_corrupt_state(s, e, m))
    if s.config.resume and state is not None and state.get("run_id") == s.run_id:
        if state.get("status") != "running":
            log.warning("resume_not_needed", extra={"run_id": s.run_id,
                                                    "status": state.get("status")})
            s.outcome = "already finished"
            s.exit_code = 0 if state.get("status") == "finished" else 1
            return
        resume_from(s, state)
    else:
        cfg = s.config
        if cfg.resume:
            # killed before its first state save, or its state file was corrupt: the run
            # goes on from the journal's record of it (every restart still counted)
            s.restarts = (cfg.supervisor_restarts or 0) + (1 if cfg.watchdog_resume
                                                               else 0)
            s.watchdog_restarts = 1 if cfg.watchdog_resume else 0
            log.warning("resume_without_state", extra={
                "run_id": s.run_id, "restarts": s.restarts,
                "reason": s.state_problem or "no running state for this run; "
                "starting it from the journal's record"})
            if not continue_from_journal(s):
                load_account(s, state)
        else:
            s.restarts = cfg.supervisor_restarts or 0
            load_account(s, state)
    s.start_position = s.broker.position.to_dict()
    s.segments.append({"segment": s.segment, "started": iso(time.time() * 1000),
                          "ended": None, "exit_reason": None})
    s._save_state("running")


def continue_from_journal(s) -> bool:
    """Resume this run's ledger from its journalled fills when its state file is gone."""
    from trading.runtime.recovery import rebuild_account
    try:
        got = rebuild_account(s.journal, s.config.broker, only_run=s.run_id)
    except Exception as e:  # noqa: BLE001 - hostile journal rows: fall back to carry-over
        log.error("journal_rebuild_failed", extra={"run_id": s.run_id, "error": str(e)})
        return False
    if got is None:
        return False
    s.broker = got.broker
    s.broker.order_prefix = s.run_id
    s.starting_equity = got.broker.ledger.starting_cash
    s.record.fills = [dict(r) for r in s.journal.fills(s.run_id)]
    for row in s.record.fills:
        s.engine.count_round_trip(Fill.from_dict(row), quiet=True)
    set_account(s, "rebuilt", f"this run's account was rebuilt from {got.how}"
                      + (f" because {s.state_problem}" if s.state_problem else ""))
    return True


def set_account(s, source: str, note: str) -> None:
    s.account_source, s.account_note = source, note
    if source in ("rebuilt", "reset"):
        # said in words wherever the user looks: the log (CRITICAL), the console, the
        # window's log and banner, and the report
        log.critical("account_" + source, extra={"run_id": s.run_id, "note": note,
                                                 "cash": str(s.broker.ledger.cash)})
        s.bus.publish(AccountNoticed(source, note))
    else:
        name = "account_carried_over" if source == "carried" else "account_" + source
        log.info(name, extra={"run_id": s.run_id, "note": note})


def load_account(s, state: dict | None) -> None:
    """Carry the paper account over: from the state file, else rebuilt from the journal."""
    cfg = s.config
    start = cfg.broker.starting_cash
    if s.replay_inputs is not None:  # a replay trades from the recorded run's account
        set_account(s, "recording", s.replay_inputs.seed_account())
        return
    if cfg.reset_account:
        # asked for: said plainly in the report and the log, not raised as an alarm
        set_account(s, "reset_asked", f"--reset-account: the account starts from the "
                                         f"starting balance {start} USDT as asked")
        return
    from trading.runtime.recovery import rebuild_account
    try:
        got = rebuild_account(s.journal, cfg.broker)
    except Exception as e:  # noqa: BLE001 - hostile rows must not stop the session
        log.error("journal_rebuild_failed", extra={"error": f"{type(e).__name__}: {e}"})
        got = None
    if got is not None:
        register_identifier_safe(got.run_id)
    if state is not None:
        prev = PaperBroker(cfg.broker)
        prev.restore(state["broker"])
        register_identifier_safe(state.get("run_id"))
        j_led, j_pos = (got.broker.ledger, got.broker.position) if got else (None, None)
        if got is not None and got.exact and (j_led.cash != prev.ledger.cash
                                              or j_pos.qty != prev.position.qty):
            # the journal is the truth for fills: a state file written before the last
            # fill, flatten or funding (a kill or a disk error between the two writes)
            why = (f"the state file (run {state.get('run_id')}, cash {prev.ledger.cash}, "
                   f"position {prev.position.qty}) was behind the journal (cash "
                   f"{j_led.cash}, position {j_pos.qty})")
            s.repairs.append(why)
            log.warning("state_behind_journal", extra={"run_id": s.run_id,
                                                       "repair": why})
            take_account(s, got.broker)
            set_account(s, "rebuilt", f"{why}. The journal's account was used: "
                                         f"{got.how}.")
            return
        take_account(s, prev)
        set_account(s, "carried", f"carried over from run {state.get('run_id')}")
        return
    why = s.state_problem or "the state file was missing"
    if got is not None:
        take_account(s, got.broker)
        set_account(s, "rebuilt", f"{why}. The account was rebuilt from the journal: "
                                     f"cash {got.broker.ledger.cash:,.2f} USDT, position "
                                     f"{got.broker.position.qty} BTC, from {got.how}.")
    elif s.state_problem:
        set_account(s, "reset", f"{why}, and the journal holds no account to rebuild "
                                   f"it from: the account was RESET to the starting "
                                   f"balance {start} USDT")
    else:
        set_account(s, "new", f"a new paper account with {start} USDT")


def take_account(s, prev: PaperBroker) -> None:
    cash = prev.ledger.cash
    s.broker.ledger.starting_cash = cash
    s.broker.ledger.cash = cash
    s.broker.position = prev.position
    s.starting_equity = cash + prev.unrealized()


def resume_from(s, state: dict) -> None:
    """Crash-only recovery: the state file, reconciled against the journal (truth for fills)."""
    from trading.model import Fill, Order
    sess = state.get("session", {})
    s.resumed = True
    s.broker.restore(state["broker"])
    s.breaker.restore(state["breaker"])
    restore_strategy(s, state.get("strategy", {}))
    c = sess.get("counters", {})
    s.engine.restore({
        "start_data_ts": sess.get("start_data_ts"), "round_trips": sess.get("round_trips", []),
        "open_fees": sess.get("open_fees", "0"), "open_realized": sess.get("open_realized", "0"),
        "starting_equity": sess.get("starting_equity", str(s.starting_equity)),
        "counters": {"blocked_signals": c.get("blocked_signals", 0),
                     "ignored_signals": c.get("ignored_signals", 0),
                     "error_count": c.get("error_count", 0),
                     "stale_quotes": c.get("stale_quotes", 0),
                     "warmup_candles": c.get("warmup_candles", 0),
                     "quotes_in": c.get("quotes", 0), "events_in": c.get("events", 0)}})
    s.started_wall = sess.get("started_wall", s.started_wall)
    s.source_used = sess.get("source_used", s.source_used)
    s.offline_fallback = sess.get("offline_fallback", False)
    s.fallback_reason = sess.get("fallback_reason", "")
    s.peak_rss_mb = c.get("peak_rss_mb", 0.0)
    s.recording_pos = c.get("recording_pos", 0)
    s.recorded_frames_before = int(c.get("recorded_frames", 0))
    s.feed_prev = dict(sess.get("feed_totals", {}))
    s.injected = dict(sess.get("injected", {}))
    s.account_source = sess.get("account_source", "resumed")
    s.account_note = sess.get("account_note", "")
    s.segments = list(sess.get("segments", []))
    s.repairs = list(sess.get("repairs", [])) + s.repairs
    earlier_repairs = len(s.repairs)
    cfg = s.config
    s.watchdog_restarts = int(sess.get("watchdog_restarts", 0)) + (
        1 if cfg.watchdog_resume else 0)
    if cfg.supervisor_restarts is not None:
        # every restart counted by whoever made it: the supervisor's (some killed a child
        # before it saved anything) plus the in-process watchdog's
        s.restarts = cfg.supervisor_restarts + s.watchdog_restarts
    else:
        s.restarts = int(sess.get("restarts", 0)) + 1
    s.segment = len(s.segments) + 1
    if s.segments and not s.segments[-1].get("ended"):
        last = s.segments[-1]
        last["ended"] = iso(state.get("saved_ts"))
        last["exit_reason"] = (s.config.previous_exit
                               or "process died (no clean exit)")
    j = s.journal
    # 1. fills in the journal that the state file missed (a kill between the two writes)
    applied = 0
    for row in j.fills(s.run_id):
        f = Fill.from_dict(row)
        if s.broker.apply_recorded_fill(f):
            applied += 1
            s.engine.count_round_trip(f, quiet=True)
    if applied:
        s.repairs.append(f"{applied} journalled fill(s) applied to the state")
    # 2. orders the journal has as pending that the state file never saw
    known = {o.order_id for o in s.broker.pending + s.broker.resting} \
        | s.broker.filled_order_ids
    filled: dict = {}
    for row in j.fills(s.run_id):
        filled[row["order_id"]] = filled.get(row["order_id"], Decimal("0")) + Decimal(row["qty"])
    for row in j.orders(s.run_id):
        working = row.get("status") in ("pending", "resting", "partially_filled")
        if working and row["order_id"] not in known:
            try:
                order = Order.from_dict(json.loads(row.get("detail") or "{}"))
                done = filled.get(order.order_id, Decimal("0"))
                if order.order_type == "limit":  # it goes out again: a new queue position
                    order = replace(order, filled_qty=done, queue_ahead=0.0, cancel_ts=None)
                if done >= order.qty:
                    continue
            except (ValueError, KeyError, TypeError):
                j.set_order_status(row["order_id"], "cancelled", int(time.time() * 1000),
                                   "lost in a crash before it was saved")
                s.repairs.append(f"order {row['order_id']} cancelled (unreadable)")
                continue
            s.broker.pending.append(order)
            s.repairs.append(f"pending order {order.order_id} restored from the journal")
        num = row["order_id"].rsplit("-", 1)[-1]
        if num.isdigit():
            s.broker.next_order_num = max(s.broker.next_order_num, int(num) + 1)
    s.broker.pending.sort(key=lambda o: (o.due_ts, o.order_id))
    # 3. funding payments journalled after the last state save
    paid = sum((Decimal(r["amount"]) for r in j.funding(s.run_id)), Decimal("0"))
    if paid != s.broker.ledger.funding:  # the ledger's funding is this run's alone
        delta = paid - s.broker.ledger.funding
        s.broker.ledger.funding += delta
        s.broker.ledger.cash -= delta
        s.repairs.append(f"funding {delta} from the journal applied")
    if not s.broker.ledger.reconciles():
        raise SessionError("restored ledger does not reconcile")
    for r in s.repairs[earlier_repairs:]:
        log.warning("state_repaired_from_journal", extra={"run_id": s.run_id,
                                                          "repair": r})
    rec = s.record
    rec.fills = [dict(r) for r in j.fills(s.run_id)]
    rec.equity = [dict(r) for r in j.equity(s.run_id)]
    rec.candles = [Candle(ts=r["ts"], open=r["open"], high=r["high"], low=r["low"],
                          close=r["close"], volume=r["volume"] or 0.0)
                   for r in j.candles(s.run_id)]
    rec.events = [dict(r) for r in j.events(s.run_id)][-500:]
    s.resume_from_ts = sess.get("last_data_ts")
    # the restored quote was in force before the crash, not now: nothing fills on it
    s.broker.mark_quote_stale()
    s.wall_seconds_before = float(c.get("wall_seconds", 0.0))
    s.data_skipped_ms = int(c.get("data_skipped_ms", 0))
    s.downtime_ms = max(0, int(time.time() * 1000) - int(state.get("saved_ts", 0)))
    s.engine.retime_pending = True
    pos = s.broker.position
    log.warning("session_resumed", extra={
        "run_id": s.run_id, "segment": s.segment, "restarts": s.restarts,
        "position_qty": str(pos.qty), "avg_px": str(pos.avg_px), "stop_px": pos.stop_px,
        "target_px": pos.target_px, "cash": str(s.broker.ledger.cash),
        "pending_orders": len(s.broker.pending), "fills_so_far": len(s.fills),
        "remaining_s": round(s.remaining_ms() / 1000, 1)})
    s.bus.publish(SessionBegan(s.run_id, s.source_used, s.start_data_ts, s.config.duration_ms,
                               True, s.segment, tuple(rec.candles), tuple(rec.fills)))
    s.bus.publish(JournalNote(int(time.time() * 1000), "session_resumed", {
        "segment": s.segment, "position_qty": str(pos.qty),
        "repairs": s.repairs[earlier_repairs:],
        "previous_exit": s.segments[-1]["exit_reason"] if s.segments else ""}))


def journal_session_start(s) -> None:
    from trading.runtime.outputs import settings
    cfg = s.config
    fields = dict(started_ts=int(s.started_wall * 1000), source=cfg.source,
                  symbol=cfg.symbol, status="running", restarts=s.restarts,
                  settings_json=dumps(settings(s)))
    if s.journal.session(s.run_id) is None:
        # the account this run began with: what a rebuild from the journal starts from
        fields.update(starting_cash=str(s.broker.ledger.starting_cash),
                      starting_position=dumps(s.start_position))
    s.journal.start_session(s.run_id, **fields)


def reopen_journal(s) -> None:
    """Finalize needs the journal even after the watchdog closed it (give-up path)."""
    from storage.journal import Journal
    if s.journal is not None and not s.journal.closed:
        return
    try:
        s.journal = Journal.open(s.paths.journal_file)
    except Exception as e:  # noqa: BLE001 - the report is still written without it
        s.journal = None
        from trading.runtime.common import as_disk_error
        log.critical("journal_unavailable_at_finalize", extra={
            "run_id": s.run_id, "error": str(as_disk_error(e) or e)})


def restore_strategy(s, state) -> None:
    """Load the strategy's saved indicators; a state it refuses starts it fresh, said loudly
    (its values are read back, so they are checked by the strategy's own restore)."""
    try:
        if not isinstance(state, dict):
            raise ValueError(f"expected an object, got {type(state).__name__}")
        s.strategy.restore(state)
    except Exception as e:  # noqa: BLE001 - any refusal: a fresh strategy, never a crash loop
        s.strategy = s.strategy_spec.build()
        s.repairs.append(f"strategy state refused ({type(e).__name__}: {e}); the strategy "
                         f"starts fresh")
        log.warning("strategy_state_refused", extra={"error": f"{type(e).__name__}: {e}"})
