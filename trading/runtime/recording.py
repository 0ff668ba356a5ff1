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
import re
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
    member's header.

    A member is never decoded past the start of the next one: a cut member's deflate stream
    could otherwise read the next member's bytes as its own (without an error, or with one far
    later) and lose whole segments. So each member is fed up to the next place a gzip header
    could begin; where it has not ended there, that place is the next member if a fresh
    decompressor reads a header and a record from it (else the three bytes were compressed data
    that happened to look like a header, and the member goes on)."""
    data = f.read()
    starts = [m.start() for m in re.finditer(re.escape(GZIP_MAGIC), data)]
    pos = 0
    while pos < len(data):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        cur, nxt = pos, None
        for c in [c for c in starts if c > pos] + [len(data)]:
            before = d.copy()
            try:
                out = d.decompress(data[cur:c])
            except zlib.error:
                tail = _longest_prefix(before, data[cur:c])
                if tail:
                    yield tail
                yield None
                nxt = next((x for x in starts if x > cur and _is_member(data, x, starts)),
                           len(data))
                break
            if out:
                yield out
            if d.eof:  # the member ended: the next starts in its unused bytes
                nxt = c - len(d.unused_data)
                break
            if c == len(data):  # the last member, cut off at the end of the file
                if not d.eof:
                    yield None
                return
            if _is_member(data, c, starts):  # cut off here by a kill: the next member
                yield None
                nxt = c
                break
            cur = c  # compressed bytes that look like a header: the member goes on
        pos = len(data) if nxt is None else nxt


def _is_member(data: bytes, at: int, starts: list[int]) -> bool:
    """Whether a gzip member of this recorder starts at `at`: a header, then (up to the next
    place a header could begin) a JSON line or nothing (a header written just before a kill)."""
    if len(data) - at < 10:
        return True  # a header cut off by a kill at the end of the file
    if data[at + 3] & 0xE0:  # reserved flag bits are never set
        return False
    end = next((x for x in starts if x > at), len(data))
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data[at:min(end, at + (1 << 16))], 64)
    except zlib.error:
        return False
    return out[:1] == b"{" or not out


def _longest_prefix(d, chunk: bytes) -> bytes:
    """What `d` decompresses from the longest prefix of `chunk` that does not fail (the flushed
    part of a member cut in the middle of a block)."""
    lo, hi, best = 0, len(chunk), b""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            best_mid = d.copy().decompress(chunk[:mid])
        except zlib.error:
            hi = mid - 1
            continue
        best, lo = best_mid, mid
    return best


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
        bad = None  # a line that is not JSON: a cut member's last bytes, if the cut follows
        try:
            for chunk in _inflate(f):
                if chunk is None:  # a member cut off mid-line: that line is gone
                    buf, bad = b"", None
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
                        rec = None
                    if bad is not None:  # more of the same member after it: not a cut
                        raise RecordingError(f"{path}: line {bad} is not JSON")
                    if rec is None:
                        bad = n
                        continue
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
