"""The SQLite journal of sessions, orders, fills, equity, funding and events.

One connection shared by every thread, serialised by a lock; each public method is one
transaction. Money and quantities arrive as Decimal and are stored as TEXT so they stay exact.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from enum import Enum
from pathlib import Path, PurePath
from typing import Any

import orjson
from sqlite_utils import Database

from storage.errors import DiskError, as_disk_error
from storage.logger import get_logger, redact
from storage.paths import unique_corrupt_path

log = get_logger("journal")

_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "sessions": (
        ("run_id", "TEXT PRIMARY KEY"),
        ("started_ts", "INTEGER"),
        ("ended_ts", "INTEGER"),
        ("source", "TEXT"),
        ("symbol", "TEXT"),
        ("status", "TEXT"),
        ("exit_code", "INTEGER"),
        ("pnl_absolute", "TEXT"),
        ("report_dir", "TEXT"),
        ("settings_json", "TEXT"),
        ("stopped_reason", "TEXT"),
        ("starting_cash", "TEXT"),  # the paper account's cash when the run began
        ("starting_position", "TEXT"),  # JSON Position.to_dict() when the run began
        ("final_cash", "TEXT"),  # ... and when it ended (after any flatten)
        ("final_position", "TEXT"),
        ("restarts", "INTEGER"),
        ("error", "TEXT"),
    ),
    "orders": (
        ("order_id", "TEXT PRIMARY KEY"),
        ("run_id", "TEXT"),
        ("side", "TEXT"),
        ("qty", "TEXT"),
        ("reason", "TEXT"),
        ("signal_ts", "INTEGER"),
        ("signal_px", "REAL"),
        ("due_ts", "INTEGER"),
        ("status", "TEXT"),
        ("status_ts", "INTEGER"),
        ("detail", "TEXT"),
    ),
    "fills": (
        ("fill_id", "TEXT PRIMARY KEY"),  # order_id#seq: a limit order fills in parts
        ("order_id", "TEXT"),
        ("run_id", "TEXT"),
        ("seq", "INTEGER"),
        ("side", "TEXT"),
        ("qty", "TEXT"),
        ("reason", "TEXT"),
        ("fill_ts", "INTEGER"),
        ("fill_px", "REAL"),
        ("bid", "REAL"),
        ("ask", "REAL"),
        ("mid", "REAL"),
        ("fee", "TEXT"),
        ("fee_bps", "REAL"),
        ("spread_cost_bps", "REAL"),
        ("signal_ts", "INTEGER"),
        ("signal_px", "REAL"),
        ("due_ts", "INTEGER"),
        ("latency_ms", "INTEGER"),
        ("latency_drift_bps", "REAL"),
        ("trigger", "TEXT"),
        ("trigger_px", "REAL"),
        ("realized_pnl", "TEXT"),
        ("position_after", "TEXT"),
        ("cash_after", "TEXT"),
        ("order_qty", "TEXT"),
        ("order_filled", "TEXT"),
        ("order_type", "TEXT"),
        ("liquidity", "TEXT"),
        ("legs", "TEXT"),
        ("depth_cost_bps", "REAL"),
        ("depth_exhausted", "INTEGER"),
        ("price_model", "TEXT"),
    ),
    "equity": (
        ("id", "INTEGER PRIMARY KEY AUTOINCREMENT"),
        ("run_id", "TEXT"),
        ("ts", "INTEGER"),
        ("equity", "TEXT"),
        ("cash", "TEXT"),
        ("realized", "TEXT"),
        ("unrealized", "TEXT"),
        ("position_qty", "TEXT"),
    ),
    "funding": (
        ("id", "INTEGER PRIMARY KEY"),
        ("run_id", "TEXT"),
        ("ts", "INTEGER"),
        ("rate", "REAL"),
        ("mark_px", "REAL"),
        ("position_qty", "TEXT"),
        ("amount", "TEXT"),
    ),
    "candles": (
        ("run_id", "TEXT"),
        ("ts", "INTEGER"),
        ("open", "REAL"),
        ("high", "REAL"),
        ("low", "REAL"),
        ("close", "REAL"),
        ("volume", "REAL"),
    ),
    "events": (
        ("id", "INTEGER PRIMARY KEY"),
        ("run_id", "TEXT"),
        ("ts", "INTEGER"),
        ("kind", "TEXT"),
        ("detail", "TEXT"),
    ),
}
_TABLE_CONSTRAINTS: dict[str, tuple[str, ...]] = {"funding": ("UNIQUE (run_id, ts)",),
                                                  "candles": ("PRIMARY KEY (run_id, ts)",)}
# a new journal keeps its candles in their key's order, without a separate index (a month's
# 45,000 candles are written in half the time); a journal made before keeps its UNIQUE table
_TABLE_OPTIONS: dict[str, str] = {"candles": " WITHOUT ROWID"}
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS idx_orders_run ON orders (run_id)",
    "CREATE INDEX IF NOT EXISTS idx_fills_run ON fills (run_id, fill_ts, seq)",
    "CREATE INDEX IF NOT EXISTS idx_equity_run ON equity (run_id, ts)",
    "CREATE INDEX IF NOT EXISTS idx_events_run ON events (run_id, ts)",
)
TABLE_NAMES = tuple(_TABLES)
# short numbers and words need no redaction pass (most of what a fill row holds)
# and the project's own run, order and fill ids (20261203-171956-3e0d87-00001#2)
# and a fill's legs, price x quantity per level walked (46319.5x0.1;46320.0x0.05)
_NUM = r"[-+0-9.eE]{1,24}"
_PLAIN_RE = re.compile(r"[-+0-9.eE]{0,40}|[A-Za-z_]{0,24}"
                       r"|\d{8}-\d{6}-[0-9a-f]{6}(?:-\d{5,})?(?:#\d+)?"
                       rf"|{_NUM}x{_NUM}(?:;{_NUM}x{_NUM}){{0,9}}")


_RUN_ID_RE = re.compile(r"[0-9A-Za-z_.:-]{1,64}")


class CleanJson(str):
    """JSON text whose every string is plain (numbers, words, the project's ids): it needs no
    redaction pass. Make one with `clean_json`."""


def clean_json(obj: dict) -> str:
    """`json.dumps(obj)`, marked clean when no string in it could carry a secret (else plain
    text, which the journal redacts as usual)."""
    text = orjson.dumps(obj).decode()  # (the same JSON as json.dumps, without spaces)
    values = obj.values()
    if set(map(type, values)) <= _JSON_PLAIN_TYPES and _all_plain(
            [v for v in values if type(v) is str]):
        return CleanJson(text)
    return text


def _all_plain(text: list[str]) -> bool:
    """Whether every string is plain (one regex pass over them all; a string with a line
    break of its own is not)."""
    if not text:
        return True
    joined = "\n".join(text)
    return joined.count("\n") == len(text) - 1 and \
        _PLAIN_LINES_RE.fullmatch(joined) is not None


def _to_sql(value: Any) -> Any:
    t = type(value)
    if t is float or t is int or value is None or t is CleanJson:  # nothing to do
        return value if t is not CleanJson else str(value)
    if t is str and _PLAIN_RE.fullmatch(value):
        return value
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Decimal):
        # sqlite-utils would turn a Decimal into a float; a string keeps every digit.
        return str(value)
    # text columns pass through the one redaction every output uses (a path or a reason may
    # carry a key); the project's own ids are registered and stay readable
    if isinstance(value, (dict, list, tuple)):
        return redact(json.dumps(value, sort_keys=True, default=str))
    if isinstance(value, PurePath):
        return redact(str(value))
    if isinstance(value, str) and not _PLAIN_RE.fullmatch(value):
        return redact(value)
    return value


_PASS_TYPES = frozenset((float, int, type(None)))
_JSON_PLAIN_TYPES = frozenset((float, int, bool, str, type(None)))
# each line matched whole and at once (atomic): alternatives that both match a line (an empty
# one matches three) are never tried again when a later line fails -- that was exponential
_LINE = rf"(?>(?:{_PLAIN_RE.pattern})(?=\n|\Z))"
_PLAIN_LINES_RE = re.compile(rf"{_LINE}(?:\n{_LINE})*")


def _sql_column(values: list) -> list:
    """`_to_sql` of every value of one column: numbers as they are; a column of plain strings
    (numbers, words, the project's ids: checked in one pass) as it is; anything else value by
    value, through the redaction."""
    types = set(map(type, values))
    if types <= _PASS_TYPES:
        return values
    if types <= {str, type(None)} and _all_plain([v for v in values if v is not None]):
        return values
    return [_to_sql(v) for v in values]


def _is_content_error(exc: sqlite3.DatabaseError) -> bool:
    # Only SQLite's own verdict on the bytes (corrupt, not a database) condemns a journal; full,
    # read-only, I/O error, locked or unopenable say nothing about its content.
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _integrity_error(path: Path) -> str | None:
    """Run PRAGMA quick_check; return why the file is corrupt, or None if it is sound.

    Raises DiskError when the check could not be *made* (disk full, I/O error, locked, ...):
    only a check that ran and failed, or SQLite calling the bytes corrupt, is corruption.
    """
    # Read-only: closing a read-write connection would checkpoint a WAL into (or delete it
    # next to) a damaged file, destroying what is left to inspect.
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               isolation_level=None)
    except sqlite3.Error as exc:
        raise _disk(exc, path) from exc
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if not _is_content_error(exc):
            raise _disk(exc, path) from exc
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    if rows == [("ok",)]:
        return None
    return "quick_check: " + "; ".join(str(row[0]) for row in rows[:10])


def _disk(exc: BaseException, path: Path) -> DiskError:
    return as_disk_error(exc, Path(path).parent) or DiskError(
        f"the journal {path} cannot be used right now ({type(exc).__name__}: {exc}); it was "
        f"left as it is", path=Path(path))


def _move_aside(path: Path, error: str) -> Path:
    corrupt_path = unique_corrupt_path(path)
    try:
        os.rename(path, corrupt_path)
    except OSError as exc:
        log.critical(
            "journal_corrupt",
            extra={
                "path": str(path),
                "corrupt_path": None,
                "error": f"{error}; could not move it aside: {type(exc).__name__}: {exc}",
            },
        )
        raise
    for suffix in ("-wal", "-shm"):
        sibling = Path(f"{path}{suffix}")
        if not sibling.exists():
            continue
        # Next to the moved file under the name SQLite looks for, so it can be opened for forensics.
        target = Path(f"{corrupt_path}{suffix}")
        if os.path.lexists(target):
            target = unique_corrupt_path(sibling)
        try:
            os.rename(sibling, target)
        except OSError as exc:
            error = f"{error}; could not move {sibling.name}: {exc}"
    log.critical(
        "journal_corrupt",
        extra={"path": str(path), "corrupt_path": str(corrupt_path), "error": error},
    )
    return corrupt_path


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, check_same_thread=False, isolation_level=None)


class Journal:
    """Thread-safe SQLite journal; build with Journal.open(path)."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, repaired_from: Path | None = None
    ) -> None:
        """Wrap an open connection and create the tables; prefer Journal.open()."""
        self.path = Path(path)
        self.repaired_from = repaired_from
        self._conn = conn
        self._lock = threading.Lock()
        self._db = Database(conn, execute_plugins=False)
        self._columns: dict[str, frozenset[str]] = {}
        self._closed = False
        self._create_schema()

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open or create the journal at path; move a corrupt file aside and start afresh."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _disk(exc, path) from exc
        repaired_from: Path | None = None
        if path.is_file():
            error = _integrity_error(path)
            if error is not None:
                repaired_from = _move_aside(path, error)
        try:
            conn = _connect(path)
        except sqlite3.Error as exc:
            raise _disk(exc, path) from exc
        return cls._wrap(path, conn, repaired_from)

    @classmethod
    def _wrap(cls, path: Path, conn: sqlite3.Connection, repaired_from: Path | None) -> Journal:
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            return cls(path, conn, repaired_from)
        except sqlite3.Error as exc:
            conn.close()
            disk = as_disk_error(exc, path.parent)
            if disk is not None:
                raise disk from exc
            raise
        except BaseException:
            conn.close()
            raise

    def _migrate_fills_key(self) -> None:
        """Journals from before partial fills keyed fills by order_id: rebuild the table keyed
        by order_id#seq, every row kept (one transaction: all or nothing)."""
        cols = {row[1]: row[5] for row in self._conn.execute("PRAGMA table_info(fills)")}
        if not cols or "fill_id" in cols:
            return
        old = [c for c in cols]
        self._db.execute("ALTER TABLE fills RENAME TO fills_before_partial")
        names = [name for name, _ in _TABLES["fills"]]
        self._db.execute(f"CREATE TABLE fills ({', '.join(f'{n} {d}' for n, d in _TABLES['fills'])})")
        keep = [c for c in old if c in names]
        self._db.execute(
            f"INSERT INTO fills (fill_id, {', '.join(keep)}) SELECT order_id || '#' || seq, "
            f"{', '.join(keep)} FROM fills_before_partial")
        self._db.execute("DROP TABLE fills_before_partial")

    def _create_schema(self) -> None:
        with self._lock, self._db.atomic():
            self._migrate_fills_key()
            for table, columns in _TABLES.items():
                parts = [f"{name} {decl}" for name, decl in columns]
                parts.extend(_TABLE_CONSTRAINTS.get(table, ()))
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(parts)})"
                                 f"{_TABLE_OPTIONS.get(table, '')}")
                existing = {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}
                # A journal written by an older version gains the new columns, empty.
                for name, decl in columns:
                    if name not in existing and "PRIMARY KEY" not in decl:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                self._columns[table] = frozenset(name for name, _ in columns)
            for statement in _INDEXES:
                self._db.execute(statement)

    # ----------------------------------------------------------------- helpers

    def _row(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        columns = self._columns[table]
        return {key: _to_sql(value) for key, value in row.items() if key in columns}

    def begin_batch(self) -> None:
        """Hold one transaction open until `commit_batch` (a replay at engine speed: its
        writes reach the disk together at each checkpoint, not one commit per row)."""
        if getattr(self, "_batch", None) is not None:
            return
        ctx = self._db.atomic()
        try:
            with self._lock:
                ctx.__enter__()
        except sqlite3.Error as exc:
            disk = as_disk_error(exc, self.path.parent)
            raise (disk or exc) from exc
        self._batch = ctx

    def commit_batch(self) -> None:
        """Commit what the batch holds (a disk that refuses it is a DiskError)."""
        ctx, self._batch = getattr(self, "_batch", None), None
        if ctx is None:
            return
        try:
            with self._lock:
                ctx.__exit__(None, None, None)
        except sqlite3.Error as exc:
            disk = as_disk_error(exc, self.path.parent)
            if disk is not None:
                raise disk from exc
            raise

    @contextmanager
    def _write(self) -> Iterator[Database]:
        # one transaction; a disk that refuses it is a DiskError (the caller ends the session
        # with advice), never taken for corruption
        try:
            with self._lock, self._db.atomic() as db:
                yield db
        except sqlite3.Error as exc:
            disk = as_disk_error(exc, self.path.parent)
            if disk is not None:
                raise disk from exc
            raise

    def _select(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._db.query(sql, params))

    def _insert_ignore(self, table: str, row: dict[str, Any]) -> bool:
        names = ", ".join(row)
        marks = ", ".join("?" * len(row))
        with self._write() as db:  # (sqlite-utils' insert asks for a rowid: candles have none)
            cursor = db.conn.execute(f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})",
                                     tuple(row.values()))
            return cursor.rowcount > 0

    # ----------------------------------------------------------------- sessions

    def start_session(self, run_id: str, **fields: Any) -> None:
        """Insert or update the session row for run_id with the given columns."""
        row = self._row("sessions", {**fields, "run_id": run_id})
        with self._write() as db:
            db.table("sessions").upsert(row, pk="run_id")

    def end_session(self, run_id: str, **fields: Any) -> None:
        """Record how the session ended (ended_ts, status, exit_code, pnl_absolute ...)."""
        row = self._row("sessions", {**fields, "run_id": run_id})
        with self._write() as db:
            db.table("sessions").upsert(row, pk="run_id")

    def mark_abandoned(self, keep_run_id: str | None, ended_ts: int) -> list[str]:
        """Mark every session still "running" (but keep_run_id) as abandoned; return their ids.

        Called by the data dir's lock holder at start: a "running" row of any other run belongs
        to a process that is gone (one process owns a data dir at a time).
        """
        with self._write() as db:
            rows = [r[0] for r in db.execute(
                "SELECT run_id FROM sessions WHERE status = 'running' AND run_id IS NOT ?",
                (keep_run_id,)).fetchall()]
            for run_id in rows:
                db.execute("UPDATE sessions SET status = 'abandoned', ended_ts = ?, exit_code = "
                           "COALESCE(exit_code, 1), stopped_reason = COALESCE(stopped_reason, "
                           "'the process ended without closing the session') WHERE run_id = ?",
                           (ended_ts, run_id))
        return rows

    def sessions(self) -> list[dict[str, Any]]:
        """Return every session, newest started first."""
        return self._select("SELECT * FROM sessions ORDER BY started_ts DESC, rowid DESC")

    def session(self, run_id: str) -> dict[str, Any] | None:
        """Return the session row for run_id, or None."""
        rows = self._select("SELECT * FROM sessions WHERE run_id = ?", (run_id,))
        return rows[0] if rows else None

    # ----------------------------------------------------------------- orders and fills

    def record_order(self, row: dict[str, Any]) -> None:
        """Insert or update an order by its order_id."""
        prepared = self._row("orders", row)
        if prepared.get("order_id") is None:
            raise ValueError("order row needs an order_id")
        with self._write() as db:
            db.table("orders").upsert(prepared, pk="order_id")

    def set_order_status(
        self, order_id: str, status: str, status_ts: int, detail: Any = None
    ) -> bool:
        """Set an order's status at status_ts (epoch ms); return False for an unknown order."""
        values: dict[str, Any] = {"status": _to_sql(status), "status_ts": status_ts}
        if detail is not None:
            values["detail"] = _to_sql(detail)
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self._write() as db:
            cursor = db.execute(
                f"UPDATE orders SET {assignments} WHERE order_id = ?",
                (*values.values(), order_id),
            )
            return cursor.rowcount > 0

    def orders(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Return the orders of run_id (all runs if None), oldest signal first."""
        if run_id is None:
            return self._select("SELECT * FROM orders ORDER BY signal_ts, rowid")
        return self._select(
            "SELECT * FROM orders WHERE run_id = ? ORDER BY signal_ts, rowid", (run_id,)
        )

    def record_fill(self, row: dict[str, Any]) -> bool:
        """Insert a fill; return False and change nothing if this fill (order id and fill
        sequence number) is already there. An order may have several (partial fills)."""
        prepared = self._row("fills", row)
        if prepared.get("order_id") is None or prepared.get("seq") is None:
            raise ValueError("fill row needs an order_id and a seq")
        prepared["fill_id"] = f"{prepared['order_id']}#{prepared['seq']}"
        return self._insert_ignore("fills", prepared)

    def fills(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Return the fills of run_id (all runs if None) ordered by fill_ts, then seq."""
        if run_id is None:
            return self._select("SELECT * FROM fills ORDER BY fill_ts, seq, rowid")
        return self._select(
            "SELECT * FROM fills WHERE run_id = ? ORDER BY fill_ts, seq, rowid", (run_id,)
        )

    # ----------------------------------------------------------------- equity, funding, events

    def record_equity(self, row: dict[str, Any]) -> None:
        """Append one equity sample."""
        prepared = self._row("equity", row)
        prepared.pop("id", None)
        with self._write() as db:
            db.table("equity").insert(prepared)

    def equity(self, run_id: str) -> list[dict[str, Any]]:
        """Return the equity samples of run_id in time order."""
        return self._select("SELECT * FROM equity WHERE run_id = ? ORDER BY ts, id", (run_id,))

    def record_funding(self, row: dict[str, Any]) -> bool:
        """Insert a funding payment; return False if run_id+ts is already recorded."""
        prepared = self._row("funding", row)
        prepared.pop("id", None)
        return self._insert_ignore("funding", prepared)

    def funding(self, run_id: str) -> list[dict[str, Any]]:
        """Return the funding payments of run_id in time order."""
        return self._select("SELECT * FROM funding WHERE run_id = ? ORDER BY ts, id", (run_id,))

    def record_candle(self, row: dict[str, Any]) -> bool:
        """Insert a closed 1m candle of a run; return False if that minute is already there."""
        return self._insert_ignore("candles", self._row("candles", row))

    def upsert_orders(self, rows: list[dict[str, Any]]) -> None:
        """`record_order` for many orders in one statement (rows of one shape)."""
        self._bulk("orders", rows, "order_id")

    def record_fills(self, rows: list[dict[str, Any]]) -> None:
        """`record_fill` for many fills in one statement (a fill already there is kept)."""
        for row in rows:
            if row.get("order_id") is None or row.get("seq") is None:
                raise ValueError("fill row needs an order_id and a seq")
        self._bulk("fills", [{**r, "fill_id": f"{r['order_id']}#{r['seq']}"} for r in rows],
                   None)

    def _bulk(self, table: str, rows: list[dict[str, Any]], pk: str | None) -> None:
        if not rows:
            return
        known = self._columns[table]
        cols = tuple(k for k in rows[0] if k in known)
        keys = tuple(rows[0])
        if any(tuple(r) != keys for r in rows):
            raise ValueError(f"{table}: bulk rows must all have the same columns")
        # column by column: a column of numbers, or of plain words and ids, passes as it is
        # (the same values `_row` would give, without a call per value)
        values = list(zip(*[_sql_column([r[c] for r in rows]) for c in cols]))
        names = ", ".join(cols)
        marks = ", ".join("?" * len(cols))
        if pk is None:
            sql = f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})"
        else:
            sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c != pk)
            sql = (f"INSERT INTO {table} ({names}) VALUES ({marks}) "
                   f"ON CONFLICT({pk}) DO UPDATE SET {sets}")
        with self._write() as db:
            db.conn.executemany(sql, values)

    def record_many(self, table: str, columns: tuple[str, ...], rows, run_id: str | None = None
                    ) -> None:
        """Insert many rows of plain values (candles, equity samples) in one statement; a
        candle already there is kept (a resumed run sends its minute again). `run_id`: the
        run of every row (not a column of `rows`; it must be one of the project's ids)."""
        if not rows:
            return
        if table not in ("candles", "equity") or not set(columns) <= self._columns[table]:
            raise ValueError(f"record_many: not a bulk table or unknown columns: {table}")
        verb = "INSERT OR IGNORE" if table == "candles" else "INSERT"
        marks = ["?"] * len(columns)
        if run_id is not None:
            if not _RUN_ID_RE.fullmatch(run_id):
                raise ValueError(f"record_many: not a run id: {run_id!r}")
            columns, marks = ("run_id", *columns), [f"'{run_id}'", *marks]
        sql = (f"{verb} INTO {table} ({', '.join(columns)}) "
               f"VALUES ({', '.join(marks)})")
        with self._write() as db:
            db.conn.executemany(sql, rows)

    def candles(self, run_id: str) -> list[dict[str, Any]]:
        """Return the closed candles of run_id in time order."""
        return self._select("SELECT * FROM candles WHERE run_id = ? ORDER BY ts", (run_id,))

    def record_event(self, run_id: str, ts: int, kind: str, detail: dict[str, Any]) -> None:
        """Append an event; detail is stored as JSON."""
        row = {
            "run_id": run_id,
            "ts": ts,
            "kind": _to_sql(kind),
            "detail": redact(json.dumps(detail, sort_keys=True, default=str)),
        }
        with self._write() as db:
            db.table("events").insert(row)

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Return the events of run_id in time order with detail decoded from JSON."""
        rows = self._select("SELECT * FROM events WHERE run_id = ? ORDER BY ts, id", (run_id,))
        for row in rows:
            try:
                row["detail"] = json.loads(row["detail"]) if row["detail"] is not None else None
            except ValueError:
                pass  # written by hand or by an older version: hand back the text
        return rows

    # ----------------------------------------------------------------- lifecycle

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the connection (committing an open batch); later calls raise
        sqlite3.ProgrammingError."""
        if not self._closed:
            self.commit_batch()
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
