"""Recording a session's inputs, and reading them back for an exact replay.

A recording is `recording.jsonl.gz` in the run's folder: gzipped JSON lines, one per input, in
the order the session applied them (the event bus's order):

    {"rec": 1, "run_id": ..., "config": {...}, "settings": {...}, "clock": "live"|"data", ...}
    {"seg": 1, "resumed": false, "state": {...}}      a segment started from this state
    {"warmup": [...], "layout": "...", "src": "..."}   the REST warm-up candles
    {"f": "<frame text>", "m": 12.345678, "w": 1764763200123, "n": 1764763200100}
    {"k": 1764763201100}                               the execution clock filled what was due
    {"r": 1764763205000, "c": 2, "n": ...}             the feed reconnected
    {"skip": 1764763260000}                            a resumed replay drops data before this
    {"end": 1764763800000, "why": "duration reached", "flat": true}
    {"truncated": "the recording reached its size limit (256 MB)"}

`f` frames carry their receive times (`m` monotonic seconds since the segment began, `w` wall
ms) and the session clock before they were applied (`n`); a frame that is not UTF-8 is `b`
(base64). Each segment appends its own gzip member and flushes at least once a second, so a
kill -9 loses at most the last second and the rest still reads.
"""
from __future__ import annotations

import base64
import gzip
import json
import logging
import time
import zlib
from pathlib import Path

import orjson

from trading.events import (ClockTicked, DataSkipped, FrameApplied, FundingApplied,
                            OrderCancelled, OrderFilled, OrderRejected, OrderRested,
                            OrderSubmitted,
                            ReconnectApplied, SegmentEnded, SegmentStarted, SessionEnded,
                            WarmupFetched)

log = logging.getLogger("btc_laptop_agents.recording")

RECORDING_NAME = "recording.jsonl.gz"
FORMAT_VERSION = 1
DEFAULT_MAX_MB = 256.0


class RecordingError(ValueError):
    """A recording that cannot be replayed (missing, unreadable, not a recording)."""


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)


class Recorder:
    """Event-bus subscriber that appends the session's inputs to the run's recording."""

    TYPES = (FrameApplied, ClockTicked, ReconnectApplied, SegmentStarted, SessionEnded,
             WarmupFetched, DataSkipped, SegmentEnded)

    SYNC_TYPES = (OrderSubmitted, OrderFilled, OrderCancelled, OrderRejected, FundingApplied,
                  OrderRested)

    def __init__(self, path: Path, header: dict, max_mb: float = DEFAULT_MAX_MB,
                 flush_every_s: float = 1.0) -> None:
        self.path = Path(path)
        self.max_bytes = int(max_mb * 1e6)
        self.flush_every_s = flush_every_s
        self.frames = 0
        self.lines = 0
        self.truncated = ""
        self.failed = ""
        self.t0 = time.monotonic()
        self._last_flush = self.t0
        self._buf: list[bytes] = []
        self._buffered = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._raw = open(self.path, "ab")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="ab", compresslevel=6, mtime=0)
        if new:
            self._write(header)
        self.flush()

    @property
    def bytes_on_disk(self) -> int:
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

    def __call__(self, ev) -> None:
        if self._gz is None:
            return
        if isinstance(ev, FrameApplied):  # the hot path: one line per frame, built by hand
            fr = ev.frame
            try:
                body = b'"f":' + orjson.dumps(fr.raw.decode("utf-8"))
            except UnicodeDecodeError:
                body = b'"b":"' + base64.b64encode(fr.raw) + b'"'
            self._write_bytes(b'{"m":%.6f,"w":%d,"n":%d,%s}\n' % (
                fr.mono - self.t0, fr.wall_ms, ev.now_ms, body))
            self.frames += 1
            now = time.monotonic()
            if now - self._last_flush >= self.flush_every_s:
                self.flush()
                self._last_flush = now
            return
        elif isinstance(ev, ClockTicked):
            rec = {"k": ev.now_ms}
        elif isinstance(ev, ReconnectApplied):
            rec = {"r": ev.event.ts, "c": ev.event.connects, "n": ev.now_ms}
        elif isinstance(ev, SegmentStarted):
            rec = {"seg": ev.segment, "resumed": ev.resumed, "state": ev.state}
        elif isinstance(ev, SegmentEnded):
            rec = {"segend": ev.segment, "outcome": ev.outcome, "why": ev.reason}
        elif isinstance(ev, SessionEnded):
            rec = {"end": ev.now_ms, "why": ev.reason, "flat": ev.flatten}
        elif isinstance(ev, DataSkipped):
            rec = {"skip": ev.until_ts}
        elif isinstance(ev, WarmupFetched):
            rec = {"warmup": list(ev.rows), "layout": ev.layout, "src": ev.source}
        else:
            return
        self._write(rec)
        self.flush()  # every non-frame record is rare and worth keeping at once
        self._last_flush = time.monotonic()

    def _write(self, rec: dict) -> None:
        self._write_bytes((_dumps(rec) + "\n").encode("utf-8"))

    def _write_bytes(self, line: bytes) -> None:
        if self._gz is None:
            return
        self._buf.append(line)  # compressed in batches: one zlib call per ~64 KB, not a line
        self._buffered += len(line)
        self.lines += 1
        if self._buffered >= 1 << 16:
            self._drain()

    def _drain(self) -> None:
        if not self._buf or self._gz is None:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        self._buffered = 0
        try:
            self._gz.write(data)
        except (OSError, ValueError) as e:
            self._fail(e)

    def sync(self, _ev=None) -> None:
        """Flush now (subscribed before the journal writer for account changes)."""
        self.flush()
        self._last_flush = time.monotonic()

    def flush(self) -> None:
        if self._gz is None:
            return
        self._drain()
        if self._gz is None:
            return
        try:
            self._gz.flush(zlib.Z_SYNC_FLUSH)
            self._raw.flush()
        except (OSError, ValueError) as e:
            self._fail(e)
            return
        if self.bytes_on_disk > self.max_bytes and not self.truncated:
            self.truncated = (f"the recording reached its size limit "
                              f"({self.max_bytes / 1e6:g} MB)")
            self._write({"truncated": self.truncated})
            log.warning("recording_truncated", extra={"path": str(self.path),
                                                      "limit_mb": self.max_bytes / 1e6})
            self.close()

    def _fail(self, e: BaseException) -> None:
        from storage.errors import as_disk_error
        self.failed = str(as_disk_error(e) or e)
        log.critical("recording_failed", extra={"path": str(self.path), "error": self.failed})
        self._gz = None  # trading goes on: the journal is the record of the fills
        try:
            self._raw.close()
        except OSError:
            pass

    def close(self) -> None:
        self._drain()
        gz, self._gz = self._gz, None
        if gz is None:
            return
        try:
            gz.close()
            self._raw.close()
        except (OSError, ValueError) as e:
            self.failed = str(e)

    def summary(self) -> dict:
        return {"path": str(self.path), "frames": self.frames, "bytes": self.bytes_on_disk,
                "truncated": self.truncated or None, "failed": self.failed or None}


GZIP_MAGIC = b"\x1f\x8b\x08"


def _inflate(f):
    """Decompress gzip members one after another, yielding what each gives. A member cut off
    by a kill -9 (the next process appended its own after it) ends at its last complete flush:
    `None` is yielded there (the line in progress is lost) and reading goes on at the next
    member's header."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    raw = b""
    eof = False
    while True:
        if not raw and not eof:
            raw = f.read(1 << 16)
            eof = not raw
        if not raw:
            return
        before = d.copy()
        try:
            out = d.decompress(raw)
        except zlib.error:
            i = raw.find(GZIP_MAGIC, 1)
            if i > 0:  # what decompresses before the next member's header is kept
                try:
                    tail = before.decompress(raw[:i])
                except zlib.error:
                    tail = b""
                if tail:
                    yield tail
            yield None
            # the damaged member's bytes up to the next header are dropped
            while True:
                i = raw.find(GZIP_MAGIC, 1)
                if i >= 0:
                    raw = raw[i:]
                    break
                more = f.read(1 << 16)
                if not more:
                    return
                raw = raw[-2:] + more
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            continue
        if out:
            yield out
        if d.eof:  # the next member (a later segment) starts in the unused bytes
            raw = d.unused_data
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        else:
            raw = b""


def iter_records(path: Path):
    """Yield a recording's records in order; a cut-off tail (kill -9) ends it quietly."""
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"no recording at {path}")
    try:
        f = open(path, "rb")
    except OSError as e:
        raise RecordingError(f"cannot read the recording {path}: {e}") from None
    with f:
        buf = b""
        n = 0
        try:
            for chunk in _inflate(f):
                if chunk is None:  # a member cut off mid-line: that line is gone
                    buf = b""
                    continue
                buf += chunk
                *done, buf = buf.split(b"\n")
                for line in done:
                    n += 1
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        raise RecordingError(f"{path}: line {n} is not JSON") from None
                    if not isinstance(rec, dict):
                        raise RecordingError(f"{path}: line {n} is not an object")
                    yield rec
        except OSError as e:
            raise RecordingError(f"cannot read the recording {path}: {e}") from None


def read_head(path: Path) -> tuple[dict, dict | None]:
    """Return a recording's header (checked) and its first segment record."""
    it = iter_records(path)
    header = next(it, None)
    if header is None or header.get("rec") != FORMAT_VERSION:
        raise RecordingError(f"{path} is not a recording of this app (no version "
                             f"{FORMAT_VERSION} header)")
    for key, kind in (("run_id", str), ("config", dict), ("settings", dict), ("clock", str)):
        if not isinstance(header.get(key), kind):
            raise RecordingError(f"{path}: the header has no valid {key!r}")
    if header["clock"] not in ("live", "data"):
        raise RecordingError(f"{path}: unknown clock {header['clock']!r}")
    seg = next(it, None)
    if seg is not None and not isinstance(seg.get("state"), dict):
        seg = None
    return header, seg


def find_recording(ref: str, runs_dir: Path) -> Path:
    """A run id of this data dir (its run folder's recording) or a path to a recording."""
    from storage.reports import run_dir_name
    ref = ref.strip()
    if not ref:
        raise RecordingError("recording: give a run id or a path (recording:<run_id|path>)")
    p = Path(ref).expanduser()
    if p.is_dir():
        p = p / RECORDING_NAME
    if p.is_file():
        return p
    cand = Path(runs_dir) / run_dir_name(ref) / RECORDING_NAME
    if cand.is_file():
        return cand
    raise RecordingError(f"no recording for {ref!r}: neither a file nor a run of "
                         f"{runs_dir} with a {RECORDING_NAME}")


def decode_frame(rec: dict) -> bytes:
    if "f" in rec:
        return str(rec["f"]).encode("utf-8")
    return base64.b64decode(rec["b"])


def start_recorder(s) -> None:
    """The recorder subscribes once the account is known (its first line is the header)."""
    if not s.config.record or getattr(s, "fast", None) is not None:
        return  # off, or a file at engine speed (the file is its input: it replays exactly)
    from storage.reports import run_dir_name
    from trading.runtime.config import config_to_dict
    from trading.runtime.execution import LiveClock
    from trading.runtime.outputs import settings
    from storage.logger import redact_value
    # the settings pass through the one redaction every output goes through (a path or URL
    # holding a token must not reach the recording); the run id stays readable
    header = {"rec": 1, "run_id": s.run_id,
              "config": redact_value(config_to_dict(s.config)),
              "settings": redact_value(settings(s)), "started_wall": s.started_wall,
              "clock": "live" if isinstance(s.clock, LiveClock) else "data"}
    path = s.paths.runs_dir / run_dir_name(s.run_id) / RECORDING_NAME
    try:
        s.recorder = Recorder(path, header, s.config.record_max_mb)
    except OSError as e:
        log.critical("recording_failed", extra={"path": str(path),
                                                "error": str(_disk(e) or e)})
        return
    s.bus.subscribe(s.recorder, *Recorder.TYPES)
    # the inputs that led to an account change are on disk before its journal row: a kill -9
    # after the journal commit cannot leave the recording short of what the journal holds
    s.bus.subscribe(s.recorder.sync, *Recorder.SYNC_TYPES, first=True)


def _disk(e):  # noqa: D103 - storage sits beside the runtime
    from storage.errors import as_disk_error
    return as_disk_error(e)
