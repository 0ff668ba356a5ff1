"""The state file's schema: property-based (hypothesis) — a real state passes, hostile ones don't,
and the checker never raises whatever JSON it is given."""
from __future__ import annotations

import copy
import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading.broker import BrokerConfig, PaperBroker
from trading.model import Position, Quote, Side
from trading.risk import BreakerConfig, CircuitBreaker
from trading.state_schema import check_state_doc

CFG = BrokerConfig()


def real_doc(qty: str = "0.012", avg: str = "87000.5") -> dict:
    """A state document as the session writes it, with an open position and a pending order."""
    b = PaperBroker(CFG, order_prefix="20261202-101010-abcdef")
    b.on_quote(Quote(ts=1_700_000_000_000, bid=87000.0, ask=87001.0, symbol="BTCUSDT"))
    b.submit(Side.BUY, "entry", now_ts=1_700_000_000_000, signal_ts=1_700_000_000_000,
             signal_px=87000.0, stop_distance=50.0, target_distance=80.0)
    b.position = Position(qty=Decimal(qty), avg_px=Decimal(avg), stop_px=86900.0,
                          target_px=87100.0, opened_ts=1_700_000_000_000)
    doc = {"version": 2, "run_id": "20261202-101010-abcdef", "status": "running",
           "saved_ts": 1_700_000_000_500, "broker": b.to_state(),
           "breaker": CircuitBreaker(BreakerConfig()).to_state(),
           "strategy": {"ema_fast": 87000.1, "ema_slow": 86990.0, "atr": 12.5,
                        "prev_close": 87000.0, "seen": 30, "bars_in_position": 1},
           "session": {"start_data_ts": 1_700_000_000_000, "restarts": 1,
                       "watchdog_restarts": 1, "repairs": ["x"], "round_trips": ["1.5"],
                       "counters": {"quotes": 10, "wall_seconds": 1.5},
                       "feed_totals": {"reconnects": 2}, "injected": {"crash": True},
                       "segments": [{"segment": 1}], "source_used": "replay"}}
    return json.loads(json.dumps(doc, default=str))  # exactly what the file holds


def test_a_real_state_document_passes():
    assert check_state_doc(real_doc(), CFG) == []


def _paths(doc, prefix=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


MONEY = [("broker", "ledger", k) for k in ("starting_cash", "cash", "realized_pnl", "fees",
                                            "funding")] + [("broker", "position", "qty"),
                                                           ("broker", "position", "avg_px")]
NOT_A_DECIMAL = st.one_of(
    st.sampled_from(["abc", "", "NaN", "Infinity", "-Infinity", "sNaN", "1e400", "1_0", "0x10",
                     "9" * 400]),
    st.booleans(), st.none(), st.floats(allow_nan=True), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(MONEY), value=NOT_A_DECIMAL)
def test_every_money_field_that_is_not_a_finite_decimal_is_refused(path, value):
    doc = real_doc()
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    problems = check_state_doc(doc, CFG)
    assert problems and any(".".join(path) in p for p in problems), problems


@settings(max_examples=200)
@given(qty=st.decimals(min_value=-10**12, max_value=10**12, allow_nan=False, places=4),
       avg=st.decimals(min_value=0, max_value=10**7, allow_nan=False, places=2))
def test_a_position_is_refused_unless_the_account_could_hold_it(qty, avg):
    doc = real_doc(str(qty), str(avg))
    problems = check_state_doc(doc, CFG)
    lot_ok = qty % CFG.lot_size == 0
    cash = Decimal(doc["broker"]["ledger"]["cash"])
    sane = qty == 0 or (avg > 0 and abs(qty) * avg <= 2 * cash)
    assert (problems == []) == (lot_ok and sane), (qty, avg, problems)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=8), children, max_size=4), max_leaves=30)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(path_index=st.integers(min_value=0), value=JSON)
def test_the_checker_never_raises_and_type_changes_are_seen(path_index, value):
    doc = real_doc()
    paths = list(_paths(doc))
    path = paths[path_index % len(paths)]
    original = copy.deepcopy(doc)
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    before = cur[path[-1]]
    cur[path[-1]] = value
    problems = check_state_doc(doc, CFG)  # must not raise, whatever was put there
    assert isinstance(problems, list)
    if path == ("broker", "ledger", "cash") and value != before:
        assert problems  # a changed cash never reconciles
    assert check_state_doc(original, CFG) == []


@settings(max_examples=200)
@given(JSON)
def test_arbitrary_json_is_judged_without_raising(doc):
    problems = check_state_doc(doc, CFG)
    assert problems  # nothing random is a usable state file
