"""CircuitBreaker: sliding failure windows, cool-down, half-open, loss streaks, latched session loss."""
from __future__ import annotations

import json

import pytest

from trading.risk import CLOSED, HALF_OPEN, OPEN, BreakerConfig, CircuitBreaker

T0 = 1_700_000_000_000


def make_breaker(**overrides) -> CircuitBreaker:
    base = dict(max_parse_errors=3, max_reconnects=2, max_rejects=2, window_s=10.0,
                max_consecutive_losses=3, max_session_loss_pct=5.0, cooldown_s=60.0)
    base.update(overrides)
    return CircuitBreaker(BreakerConfig(**base))


def tripped(breaker, at=T0) -> CircuitBreaker:
    """Trip `breaker` with parse errors all at `at`."""
    for _ in range(breaker.config.max_parse_errors - 1):
        assert breaker.record_failure("parse", at) is False
    assert breaker.record_failure("parse", at) is True
    return breaker


# ---- failure windows ----

def test_parse_errors_within_window_trip():
    b = make_breaker()

    results = [b.record_failure("parse", T0 + dt, "bad frame") for dt in (0, 4_000, 9_000)]

    assert results == [False, False, True]
    assert b.state == OPEN
    assert b.trips == 1
    assert b.tripped_ts == T0 + 9_000
    assert b.trip_reason == "3 parse failures in 10s: bad frame"
    assert b.allow(T0 + 9_000) is False


def test_parse_errors_spread_beyond_window_do_not_trip():
    b = make_breaker()

    results = [b.record_failure("parse", T0 + dt) for dt in (0, 6_000, 12_000)]

    assert results == [False, False, False]
    assert b.state == CLOSED
    assert b.allow(T0 + 12_000) is True
    # the window now holds T0+6000 and T0+12000: one more inside it trips
    assert b.record_failure("parse", T0 + 13_000) is True


def test_failure_exactly_window_old_still_counts():
    b = make_breaker()
    b.record_failure("parse", T0)
    b.record_failure("parse", T0 + 5_000)

    assert b.record_failure("parse", T0 + 10_000) is True


def test_failure_kinds_have_separate_windows_and_limits():
    b = make_breaker(max_parse_errors=3, max_rejects=2, max_reconnects=2)

    assert b.record_failure("parse", T0) is False
    assert b.record_failure("parse", T0) is False
    assert b.record_failure("reconnect", T0) is False
    assert b.record_failure("reject", T0) is False
    assert b.state == CLOSED
    assert b.record_failure("reconnect", T0 + 1) is True
    assert b.trip_reason.startswith("2 reconnect failures")


def test_unknown_failure_kind_is_refused():
    with pytest.raises(KeyError):
        make_breaker().record_failure("cosmic_ray", T0)


def test_further_failures_while_open_do_not_count_as_new_trips():
    b = tripped(make_breaker())

    assert b.record_failure("parse", T0 + 1_000) is False
    assert b.state == OPEN
    assert b.trips == 1


# ---- open / half-open / closed ----

def test_open_blocks_until_cooldown_then_half_opens():
    b = tripped(make_breaker(cooldown_s=60.0))

    assert b.allow(T0 + 1) is False
    assert b.allow(T0 + 59_999) is False
    assert b.state == OPEN
    assert b.allow(T0 + 60_000) is True
    assert b.state == HALF_OPEN
    assert b.allow(T0 + 60_001) is True


def test_failure_while_half_open_trips_again_at_once():
    b = tripped(make_breaker(max_parse_errors=3, cooldown_s=60.0))
    b.allow(T0 + 61_000)

    assert b.record_failure("reject", T0 + 62_000, "rejected") is True

    assert b.state == OPEN
    assert b.trips == 2
    assert b.tripped_ts == T0 + 62_000
    assert b.trip_reason == "reject failure while half-open: rejected"
    assert b.allow(T0 + 62_000 + 59_999) is False  # a fresh cool-down
    assert b.allow(T0 + 62_000 + 60_000) is True


def test_loss_while_half_open_trips_again():
    b = tripped(make_breaker(max_consecutive_losses=10))
    b.allow(T0 + 60_000)

    assert b.record_round_trip(-1.0, T0 + 61_000) is True
    assert b.state == OPEN
    assert b.trip_reason == "loss while half-open"


def test_win_while_half_open_does_not_close_it():
    b = tripped(make_breaker())
    b.allow(T0 + 60_000)

    assert b.record_round_trip(5.0, T0 + 61_000) is False
    assert b.state == HALF_OPEN


def test_record_success_closes_half_open_and_clears_windows():
    b = tripped(make_breaker(max_parse_errors=3))
    b.allow(T0 + 60_000)

    b.record_success(T0 + 60_500)

    assert b.state == CLOSED
    assert b.trip_reason is None
    assert b.allow(T0 + 60_500) is True
    # the three old failures are forgotten: two new ones do not trip, the third does
    assert b.record_failure("parse", T0 + 60_600) is False
    assert b.record_failure("parse", T0 + 60_700) is False
    assert b.record_failure("parse", T0 + 60_800) is True


def test_record_success_does_not_close_an_open_breaker():
    b = tripped(make_breaker())

    b.record_success(T0 + 1_000)

    assert b.state == OPEN
    assert b.allow(T0 + 1_000) is False


# ---- losses ----

def test_consecutive_losses_trip():
    b = make_breaker(max_consecutive_losses=3)

    results = [b.record_round_trip(-10.0, T0 + i) for i in range(3)]

    assert results == [False, False, True]
    assert b.state == OPEN
    assert b.trip_reason == "3 consecutive losses"
    assert b.allow(T0 + 10) is False


def test_a_win_resets_the_loss_count():
    b = make_breaker(max_consecutive_losses=3)

    for pnl in (-1.0, -1.0, 2.0, -1.0, -1.0):
        assert b.record_round_trip(pnl, T0) is False

    assert b.consecutive_losses == 2
    assert b.state == CLOSED
    assert b.record_round_trip(-1.0, T0 + 1) is True


def test_breakeven_round_trip_is_not_a_loss():
    b = make_breaker(max_consecutive_losses=2)
    b.record_round_trip(-1.0, T0)

    assert b.record_round_trip(0.0, T0 + 1) is False
    assert b.consecutive_losses == 0
    assert b.record_round_trip(-1.0, T0 + 2) is False


# ---- session loss ----

def test_session_loss_below_limit_does_not_trip():
    b = make_breaker(max_session_loss_pct=5.0)

    assert b.check_session_loss(10_000.0, 9_501.0, T0) is False
    assert b.state == CLOSED and b.latched is False


def test_session_loss_latches_with_no_half_open_ever():
    b = make_breaker(max_session_loss_pct=5.0, cooldown_s=60.0)

    assert b.check_session_loss(10_000.0, 9_500.0, T0) is True

    assert b.state == OPEN and b.latched is True
    assert b.trip_reason == "session loss 5.00% >= 5.0%"
    for later in (T0 + 60_000, T0 + 3_600_000, T0 + 86_400_000):
        assert b.allow(later) is False
        assert b.state == OPEN
    b.record_success(T0 + 86_400_001)
    assert b.state == OPEN
    assert b.check_session_loss(10_000.0, 11_000.0, T0 + 86_400_002) is False  # recovery: still
    assert b.allow(T0 + 86_400_003) is False


def test_session_loss_latches_even_when_already_open():
    b = tripped(make_breaker())

    assert b.check_session_loss(10_000.0, 9_000.0, T0 + 1) is True
    assert b.latched is True
    assert b.allow(T0 + 10_000_000) is False


def test_session_loss_ignores_nonpositive_starting_equity():
    b = make_breaker()

    assert b.check_session_loss(0.0, -100.0, T0) is False
    assert b.state == CLOSED


# ---- persistence ----

def test_state_round_trips_through_json_with_windows():
    a = make_breaker(max_parse_errors=3)
    a.record_failure("parse", T0)
    a.record_failure("parse", T0 + 1_000)
    a.record_failure("reject", T0 + 1_500)
    a.record_round_trip(-3.0, T0 + 2_000)

    state = json.loads(json.dumps(a.to_state()))
    b = make_breaker(max_parse_errors=3)
    b.restore(state)

    assert b.to_state() == a.to_state()
    assert state["windows"]["parse"] == [T0, T0 + 1_000]
    assert b.consecutive_losses == 1
    # the restored windows keep counting: the next parse error trips both alike
    assert b.record_failure("parse", T0 + 2_500) is True
    assert a.record_failure("parse", T0 + 2_500) is True
    assert b.to_state() == a.to_state()


def test_restored_open_breaker_keeps_its_cooldown():
    a = tripped(make_breaker(cooldown_s=60.0), at=T0)
    b = make_breaker(cooldown_s=60.0)
    b.restore(json.loads(json.dumps(a.to_state())))

    assert (b.state, b.tripped_ts, b.trips) == (OPEN, T0, 1)
    assert b.allow(T0 + 59_999) is False
    assert b.allow(T0 + 60_000) is True
    assert b.state == HALF_OPEN


def test_restored_latched_breaker_stays_latched():
    a = make_breaker()
    a.check_session_loss(10_000.0, 9_000.0, T0)
    b = make_breaker()
    b.restore(json.loads(json.dumps(a.to_state())))

    assert b.latched is True
    assert b.allow(T0 + 10 * 86_400_000) is False


# ---- configuration ----

@pytest.mark.parametrize("field,value", [
    ("max_parse_errors", 0), ("max_reconnects", -1), ("max_rejects", 2.5),
    ("max_consecutive_losses", 0), ("window_s", 0.0), ("window_s", float("nan")),
    ("cooldown_s", -1.0), ("max_session_loss_pct", float("inf")),
])
def test_breaker_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"breaker: {field}"):
        BreakerConfig(**{field: value})


def test_breaker_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['cooldown'\]"):
        BreakerConfig.from_dict({"cooldown": 5})
    assert BreakerConfig.from_dict({"cooldown_s": 5.0}).cooldown_s == 5.0
