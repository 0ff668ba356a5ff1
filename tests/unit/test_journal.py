import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from storage.journal import TABLE_NAMES, Journal
from storage.logger import temporary_logging


@pytest.fixture
def log_file(tmp_path):
    # setup_logging(tmp_path, console=False) for the test, then the previous setup comes back.
    with temporary_logging(tmp_path / "data", console=False) as path:
        yield path


@pytest.fixture
def journal(tmp_path):
    j = Journal.open(tmp_path / "journal.sqlite3")
    yield j
    j.close()


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def make_fill(order_id="o-1", **overrides) -> dict:
    fill = {
        "order_id": order_id,
        "run_id": "run-1",
        "seq": 1,
        "side": "BUY",
        "qty": Decimal("0.001"),
        "reason": "entry",
        "fill_ts": 1_700_000_000_500,
        "fill_px": 64250.5,
        "bid": 64250.0,
        "ask": 64250.5,
        "mid": 64250.25,
        "fee": Decimal("0.0385503"),
        "fee_bps": 6.0,
        "spread_cost_bps": 0.078,
        "signal_ts": 1_700_000_000_000,
        "signal_px": 64249.0,
        "due_ts": 1_700_000_000_250,
        "latency_ms": 250,
        "latency_drift_bps": 0.23,
        "trigger": "market",
        "trigger_px": None,
        "realized_pnl": Decimal("0"),
        "position_after": Decimal("0.001"),
        "cash_after": Decimal("9935.7109497"),
    }
    fill.update(overrides)
    return fill


def column_types(path: Path, table: str) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return {row[1]: row[2] for row in conn.execute(f"PRAGMA table_info({table})")}


def write_garbage(path: Path, content: bytes = b"this is not a database\x00" * 100) -> bytes:
    path.write_bytes(content)
    return content


def test_open_creates_tables_with_text_money_columns(journal, tmp_path):
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        tables = {row[0] for row in rows}

    assert set(TABLE_NAMES) == {"sessions", "orders", "fills", "equity", "funding", "candles", "events"}
    assert set(TABLE_NAMES) <= tables
    fills = column_types(path, "fills")
    assert len(fills) == 33
    assert {fills[c] for c in ("qty", "fee", "realized_pnl", "position_after", "cash_after",
                               "order_qty", "order_filled")} == {
        "TEXT"
    }
    assert fills["fill_px"] == "REAL"
    assert column_types(path, "sessions")["pnl_absolute"] == "TEXT"
    assert column_types(path, "equity")["equity"] == "TEXT"
    assert journal.repaired_from is None


def test_journal_uses_wal(journal, tmp_path):
    with sqlite3.connect(tmp_path / "journal.sqlite3") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_record_fill_is_idempotent_by_order_id(journal):
    assert journal.record_fill(make_fill()) is True

    assert journal.record_fill(make_fill(qty=Decimal("5"), fill_px=1.0)) is False

    [fill] = journal.fills("run-1")
    assert fill["qty"] == "0.001"
    assert fill["fill_px"] == 64250.5


def test_decimals_round_trip_exactly(journal):
    fee = Decimal("0.000000012345678901234567")
    cash = Decimal("123456789.123456789123456789")
    journal.record_fill(make_fill(fee=fee, cash_after=cash, realized_pnl=Decimal("-0.10")))
    journal.record_equity(
        {"run_id": "run-1", "ts": 1, "equity": cash, "cash": cash, "position_qty": Decimal("0")}
    )

    [fill] = journal.fills()
    [sample] = journal.equity("run-1")

    assert Decimal(fill["fee"]) == fee
    assert fill["cash_after"] == "123456789.123456789123456789"
    assert fill["realized_pnl"] == "-0.10"
    assert Decimal(sample["equity"]) == cash


def test_unknown_keys_are_ignored(journal):
    journal.record_fill(make_fill(not_a_column="x", order=object()))

    [fill] = journal.fills("run-1")
    assert "not_a_column" not in fill
    assert fill["order_id"] == "o-1"


def test_fills_are_ordered_by_time_then_seq(journal):
    journal.record_fill(make_fill("c", fill_ts=20, seq=1))
    journal.record_fill(make_fill("b", fill_ts=10, seq=2))
    journal.record_fill(make_fill("a", fill_ts=10, seq=1))
    journal.record_fill(make_fill("x", run_id="run-2", fill_ts=5, seq=1))

    assert [f["order_id"] for f in journal.fills("run-1")] == ["a", "b", "c"]
    assert [f["order_id"] for f in journal.fills()] == ["x", "a", "b", "c"]


def test_orders_upsert_and_status(journal):
    journal.record_order(
        {"order_id": "o-1", "run_id": "run-1", "side": "SELL", "qty": Decimal("0.002"),
         "signal_ts": 1, "due_ts": 251, "status": "pending", "status_ts": 1}
    )

    assert journal.set_order_status("o-1", "filled", 260, {"fill_px": 64000.5}) is True
    assert journal.set_order_status("o-404", "filled", 260) is False
    journal.record_order({"order_id": "o-1", "reason": "exit"})

    [order] = journal.orders("run-1")
    assert (order["status"], order["status_ts"], order["qty"]) == ("filled", 260, "0.002")
    assert json.loads(order["detail"]) == {"fill_px": 64000.5}
    assert order["reason"] == "exit"


def test_funding_is_idempotent_on_run_and_ts(journal):
    row = {"run_id": "run-1", "ts": 28_800_000, "rate": 0.0001, "mark_px": 64000.0,
           "position_qty": Decimal("0.001"), "amount": Decimal("-0.0064")}

    assert journal.record_funding(row) is True
    assert journal.record_funding({**row, "amount": Decimal("-99")}) is False
    assert journal.record_funding({**row, "run_id": "run-2"}) is True

    [payment] = journal.funding("run-1")
    assert payment["amount"] == "-0.0064"


def test_events_keep_their_detail(journal):
    journal.record_event("run-1", 2, "feed_reconnected", {"attempt": 2, "gap_ms": 1500})
    journal.record_event("run-1", 1, "session_started", {"px": Decimal("64000.5")})

    events = journal.events("run-1")

    assert [e["kind"] for e in events] == ["session_started", "feed_reconnected"]
    assert events[0]["detail"] == {"px": "64000.5"}
    assert events[1]["detail"] == {"attempt": 2, "gap_ms": 1500}


def test_sessions_newest_first(journal):
    for run_id, started_ts in (("old", 1_000), ("new", 3_000), ("mid", 2_000)):
        journal.start_session(run_id, started_ts=started_ts, symbol="BTCUSDT", status="running")
    journal.end_session("old", ended_ts=1_500, status="stopped", exit_code=0,
                        pnl_absolute=Decimal("-1.25"), stopped_reason="user")

    assert [s["run_id"] for s in journal.sessions()] == ["new", "mid", "old"]
    old = journal.session("old")
    assert (old["started_ts"], old["ended_ts"], old["status"]) == (1_000, 1_500, "stopped")
    assert old["pnl_absolute"] == "-1.25"
    assert journal.session("missing") is None


def test_settings_dict_is_stored_as_json(journal):
    journal.start_session("run-1", started_ts=1, settings_json={"latency_ms": 250, "fee_bps": 6})

    stored = journal.session("run-1")["settings_json"]
    assert json.loads(stored) == {"fee_bps": 6, "latency_ms": 250}


def test_data_survives_reopen(tmp_path):
    path = tmp_path / "journal.sqlite3"
    with Journal.open(path) as first:
        first.record_fill(make_fill())

    with Journal.open(path) as second:
        assert second.repaired_from is None
        assert [f["order_id"] for f in second.fills()] == ["o-1"]


def test_garbage_file_is_moved_aside_and_a_new_journal_starts(tmp_path, log_file):
    path = tmp_path / "journal.sqlite3"
    garbage = write_garbage(path)
    Path(f"{path}-wal").write_bytes(b"stale wal")

    with Journal.open(path) as journal:
        assert journal.repaired_from == tmp_path / "journal.sqlite3.corrupt"
        assert journal.record_fill(make_fill()) is True
        assert len(journal.fills()) == 1

    assert (tmp_path / "journal.sqlite3.corrupt").read_bytes() == garbage
    assert (tmp_path / "journal.sqlite3.corrupt-wal").read_bytes() == b"stale wal"
    [record] = read_records(log_file)
    assert (record["level"], record["message"]) == ("CRITICAL", "journal_corrupt")
    assert record["path"] == str(path)
    assert record["corrupt_path"] == str(tmp_path / "journal.sqlite3.corrupt")
    assert "not a database" in record["error"]


def test_second_corrupt_journal_goes_to_next_name(tmp_path, log_file):
    path = tmp_path / "journal.sqlite3"
    first = write_garbage(path, b"first garbage" * 100)
    Journal.open(path).close()
    path.unlink()
    for sibling in ("-wal", "-shm"):
        Path(f"{path}{sibling}").unlink(missing_ok=True)
    second = write_garbage(path, b"second garbage" * 100)

    with Journal.open(path) as journal:
        assert journal.repaired_from == tmp_path / "journal.sqlite3.corrupt.1"

    assert (tmp_path / "journal.sqlite3.corrupt").read_bytes() == first
    assert (tmp_path / "journal.sqlite3.corrupt.1").read_bytes() == second


def test_damaged_pages_are_detected(tmp_path, log_file):
    path = tmp_path / "journal.sqlite3"
    with Journal.open(path) as journal:
        for ts in range(300):
            journal.record_event("run-1", ts, "tick", {"pad": "x" * 200})
    raw = bytearray(path.read_bytes())
    raw[3 * 4096 : 4 * 4096] = b"\x07" * 4096
    path.write_bytes(bytes(raw))

    with Journal.open(path) as journal:
        assert journal.repaired_from == tmp_path / "journal.sqlite3.corrupt"
        assert journal.events("run-1") == []


def test_journal_left_by_a_crash_keeps_its_wal_data(tmp_path):
    live = Journal.open(tmp_path / "live.sqlite3")
    live.record_fill(make_fill())
    crashed = tmp_path / "crashed.sqlite3"
    # Copy while the writer is still open: the fill sits only in the -wal file, as after a crash.
    for suffix in ("", "-wal"):
        source = Path(f"{tmp_path / 'live.sqlite3'}{suffix}")
        Path(f"{crashed}{suffix}").write_bytes(source.read_bytes())
    live.close()

    with Journal.open(crashed) as journal:
        assert journal.repaired_from is None
        assert [f["order_id"] for f in journal.fills()] == ["o-1"]
    assert not Path(f"{crashed}.corrupt").exists()


def test_an_order_filled_in_parts_keeps_every_part_once(journal):
    row = {"order_id": "r-00001", "run_id": "r", "side": "BUY", "qty": "0.004", "reason": "entry",
           "fill_ts": 1, "fill_px": 100.0, "fee": "0.1", "realized_pnl": "0",
           "position_after": "0.004", "cash_after": "99.9", "order_qty": "0.010",
           "order_filled": "0.004", "liquidity": "maker"}
    assert journal.record_fill({**row, "seq": 1})
    assert journal.record_fill({**row, "seq": 2, "fill_ts": 2, "order_filled": "0.008"})
    assert not journal.record_fill({**row, "seq": 2})  # the same part again: ignored
    got = journal.fills("r")
    assert [(f["seq"], f["order_filled"]) for f in got] == [(1, "0.004"), (2, "0.008")]


def test_a_journal_keyed_by_order_id_is_rebuilt_with_every_fill(tmp_path):
    from storage.journal import Journal
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the fills table of earlier versions
        conn.execute("CREATE TABLE fills (order_id TEXT PRIMARY KEY, run_id TEXT, seq INTEGER, "
                     "side TEXT, qty TEXT, fill_ts INTEGER, fill_px REAL, fee TEXT)")
        conn.executemany("INSERT INTO fills VALUES (?, 'old', ?, 'BUY', '0.1', ?, 100.0, '0.5')",
                         [("old-00001", 1, 10), ("old-00002", 2, 20)])
    j = Journal.open(path)
    try:
        got = j.fills("old")
        assert [(f["order_id"], f["seq"], f["fee"]) for f in got] == [
            ("old-00001", 1, "0.5"), ("old-00002", 2, "0.5")]
        assert j.record_fill({"order_id": "old-00002", "run_id": "old", "seq": 3, "fill_ts": 30})
        assert len(j.fills("old")) == 3
    finally:
        j.close()


def test_candles_are_keyed_by_run_and_minute_in_new_and_older_journals(tmp_path):
    """A new journal keeps candles WITHOUT ROWID, keyed (run_id, ts); a journal made before,
    with a UNIQUE (run_id, ts) table, keeps its table: in both a minute written again (a
    resumed run sends it again) is kept once, by the single and the bulk write alike."""
    old = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(old)
    conn.execute("CREATE TABLE candles (run_id TEXT, ts INTEGER, open REAL, high REAL, "
                 "low REAL, close REAL, volume REAL, UNIQUE (run_id, ts))")
    conn.execute("INSERT INTO candles VALUES ('r1', 0, 1.0, 2.0, 0.5, 1.5, 3.0)")
    conn.commit()
    conn.close()
    for path in (tmp_path / "new.sqlite3", old):
        with Journal.open(path) as j:
            row = {"run_id": "r1", "ts": 0, "open": 1.0, "high": 2.0, "low": 0.5,
                   "close": 1.5, "volume": 3.0}
            j.record_candle(row)
            assert j.record_candle(row) is False
            j.record_many("candles", ("ts", "open", "high", "low", "close", "volume"),
                          [(0, 9.0, 9.0, 9.0, 9.0, 9.0), (60_000, 1.5, 2.5, 1.0, 2.0, 4.0)],
                          run_id="r1")
            assert [(c["ts"], c["close"]) for c in j.candles("r1")] == [(0, 1.5),
                                                                        (60_000, 2.0)]
            with pytest.raises(ValueError, match="not a run id"):
                j.record_many("candles", ("ts",), [(1,)], run_id="r1'); DROP TABLE x; --")
        sql = sqlite3.connect(path).execute(
            "SELECT sql FROM sqlite_master WHERE name = 'candles'").fetchone()[0]
        assert ("WITHOUT ROWID" in sql) == (path != old)
