"""Rebuild the paper account from the journal, the truth for fills and funding.

Used when the state file is corrupt or missing: a silent reset to the starting balance would
erase every earlier session's PnL. The newest session in the journal decides:
1. it ended and recorded its final account (cash, position): that is the account;
2. it did not end (killed, abandoned) but recorded its starting account: replay its journalled
   fills and funding onto that, with the broker's own fill arithmetic (checked fill by fill
   against each fill's recorded `cash_after`);
3. a journal from before the account columns: start flat from the first fill's cash before it
   and replay the same way;
4. a session with nothing recorded at all changed nothing: look at the one before it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal

from trading.broker import BrokerConfig, PaperBroker
from trading.model import Fill, Position

log = logging.getLogger("btc_laptop_agents.recovery")


@dataclass
class RebuiltAccount:
    broker: PaperBroker  # ledger and position as the journal says they are now
    run_id: str  # the run whose record it came from
    how: str  # one sentence for the log, the console and the report
    fills: int = 0  # fills replayed
    exact: bool = True  # from the recorded account columns (not inferred from fills alone)


def _position(text) -> Position | None:
    if not text:
        return Position()
    try:
        d = json.loads(text)
        if not isinstance(d, dict):
            return None
        pos = Position.from_dict(d)
    except (ValueError, TypeError, ArithmeticError, RecursionError):
        return None
    if not pos.qty.is_finite() or not pos.avg_px.is_finite() or (pos.qty != 0 and
                                                                  pos.avg_px <= 0):
        return None
    return pos


def _money(text) -> Decimal | None:
    try:
        v = Decimal(str(text))
    except (ArithmeticError, ValueError):
        return None
    return v if v.is_finite() else None


def _replay(journal, run_id: str, cash: Decimal, position: Position,
            cfg: BrokerConfig) -> tuple[PaperBroker, int]:
    """Apply a run's journalled fills and funding, in time order, to an account."""
    broker = PaperBroker(cfg, order_prefix=run_id)
    broker.ledger.starting_cash = cash
    broker.ledger.cash = cash
    broker.position = position
    funding = list(journal.funding(run_id))
    fills = [Fill.from_dict(r) for r in journal.fills(run_id)]
    n = 0
    for f in fills:
        while funding and funding[0]["ts"] <= f.fill_ts:
            _pay(broker, funding.pop(0))
        if broker.apply_recorded_fill(f):
            n += 1
    for row in funding:
        _pay(broker, row)
    if not broker.ledger.reconciles():
        raise ValueError(f"run {run_id}: the replayed ledger does not reconcile")
    return broker, n


def _pay(broker: PaperBroker, row: dict) -> None:
    amount = _money(row.get("amount"))
    if amount is None:
        raise ValueError(f"funding row at {row.get('ts')} has no usable amount")
    broker.ledger.funding += amount
    broker.ledger.cash -= amount


def rebuild_account(journal, cfg: BrokerConfig, only_run: str | None = None
                    ) -> RebuiltAccount | None:
    """Return the account the journal records now, or None if it holds none.

    `only_run`: rebuild that run alone (a resumed run whose state file is gone).
    """
    for s in journal.sessions():  # newest first
        run_id = s.get("run_id")
        if not run_id or (only_run is not None and run_id != only_run):
            continue
        if only_run is None and s.get("source") == "recording":
            continue  # a replay of a recording trades a copy: it never moves the account
        final_cash = _money(s.get("final_cash")) if s.get("final_cash") else None
        final_pos = _position(s.get("final_position"))
        if final_cash is not None and final_pos is not None and only_run is None:
            broker = PaperBroker(cfg, order_prefix=run_id)
            broker.ledger.starting_cash = broker.ledger.cash = final_cash
            broker.position = final_pos
            return RebuiltAccount(broker, run_id, f"the final account of run {run_id} "
                                                  f"({s.get('status')})")
        start_cash = _money(s.get("starting_cash")) if s.get("starting_cash") else None
        start_pos = _position(s.get("starting_position"))
        rows = journal.fills(run_id)
        try:
            if start_cash is not None and start_pos is not None:
                broker, n = _replay(journal, run_id, start_cash, start_pos, cfg)
                return RebuiltAccount(broker, run_id, f"run {run_id}'s starting account plus "
                                                      f"its {n} journalled fill(s) and funding",
                                      n)
            if rows:
                first = Fill.from_dict(rows[0])
                cash0 = first.cash_after - first.realized_pnl + first.fee
                broker, n = _replay(journal, run_id, cash0, Position(), cfg)
                return RebuiltAccount(broker, run_id, f"run {run_id}'s {n} journalled fill(s) "
                                                      f"(cash before its first fill {cash0})",
                                      n, exact=False)
        except (ValueError, KeyError, TypeError, ArithmeticError) as e:
            # the journal disagrees with itself: take the last fill's own record of the cash
            log.error("journal_replay_failed", extra={"run_id": run_id, "error": str(e)})
            if rows:
                last = Fill.from_dict(rows[-1])
                broker = PaperBroker(cfg, order_prefix=run_id)
                paid = sum((_money(r.get("amount")) or Decimal("0") for r in journal.funding(run_id)
                            if r["ts"] > last.fill_ts), Decimal("0"))
                broker.ledger.starting_cash = broker.ledger.cash = last.cash_after - paid
                if last.position_after != 0:
                    broker.position = Position(qty=last.position_after,
                                               avg_px=Decimal(repr(last.fill_px)))
                return RebuiltAccount(broker, run_id, f"the cash recorded with run {run_id}'s "
                                                      f"last fill (its fills did not replay: "
                                                      f"{e})", exact=False)
        if only_run is not None:
            return None
    return None
