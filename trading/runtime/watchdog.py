"""The in-process watchdog: restart a crashed or hung session for the remaining time.

It runs each segment's session loop on a "session" thread and watches two things: an unhandled
exception in *any* thread (threading.excepthook, not only thread death) and the loop's
heartbeat. On either it tears the segment down (threads joined, sockets closed), waits
`restart_delay_s`, and starts a new Session for the same run through the same code path as a
fresh start: the new session resumes from the state file and journal (crash-only design).
Too many restarts within `restart_window_s` and it gives up: the report says error, and why.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

log = logging.getLogger("btc_laptop_agents.watchdog")


@dataclass(frozen=True)
class WatchdogConfig:
    hang_after_s: float = 30.0
    restart_delay_s: float = 5.0
    max_restarts: int = 5
    restart_window_s: float = 3600.0
    poll_s: float = 0.2

    def __post_init__(self) -> None:
        if not self.hang_after_s > 0:
            raise ValueError("watchdog: hang_after_s must be > 0")
        if not self.restart_delay_s >= 0:
            raise ValueError("watchdog: restart_delay_s must be >= 0")
        if not (isinstance(self.max_restarts, int) and self.max_restarts >= 0):
            raise ValueError("watchdog: max_restarts must be an integer >= 0")
        if not self.restart_window_s > 0:
            raise ValueError("watchdog: restart_window_s must be > 0")


def _mmss(ms: float) -> str:
    s = max(0, int(ms // 1000))
    return f"{s // 60:02d}:{s % 60:02d}"


class Watchdog:
    """Supervise session segments in this process; `run()` returns the exit code."""

    def __init__(self, make_session, config: WatchdogConfig | None = None, publish=None) -> None:
        self.make_session = make_session  # (resume: bool) -> Session
        self.config = config or WatchdogConfig()
        self.publish = publish or (lambda kind, payload: None)
        self.session = None
        self.restarts = 0
        self._crash: str | None = None
        self._stop = threading.Event()
        self._stop_reason = ""
        self._prev_hook = None

    # ---- any thread ----
    def request_stop(self, reason: str = "stopped by user") -> None:
        """End the session cleanly (flatten, report); no restart after this."""
        self._stop_reason = reason
        self._stop.set()
        s = self.session
        if s is not None:
            s.request_stop(reason)

    SESSION_THREADS = ("session", "feed", "execution", "exchange")

    def _excepthook(self, args) -> None:
        name = args.thread.name if args.thread is not None else "?"
        if args.exc_type is SystemExit:
            return
        if not name.startswith(self.SESSION_THREADS):
            # not ours (e.g. a GUI helper thread): whoever was there before handles it
            if self._prev_hook is not None:
                self._prev_hook(args)
            return
        self._crash = f"unhandled {args.exc_type.__name__} in thread {name!r}: {args.exc_value}"
        log.error("thread_crashed", exc_info=(args.exc_type, args.exc_value,
                                              args.exc_traceback),
                  extra={"thread_name": name, "error": str(args.exc_value)})

    # ---- the supervising thread (the caller's) ----
    def run(self) -> int:
        self._prev_hook = threading.excepthook
        threading.excepthook = self._excepthook
        try:
            return self._run()
        finally:
            threading.excepthook = self._prev_hook

    def _run(self) -> int:
        cfg = self.config
        recent: deque[float] = deque()
        resume = False
        while True:
            self._crash = None
            session = self.make_session(resume)
            self.session = session
            if self._stop.is_set():
                session.request_stop(self._stop_reason)
            thread = threading.Thread(target=session.run_segment, name="session", daemon=True)
            thread.start()
            try:
                reason = self._watch(session, thread)
            except KeyboardInterrupt:
                # main.py installs a SIGINT handler that calls request_stop instead; this is the
                # fallback for callers that do not
                self.request_stop("interrupted (Ctrl-C)")
                while thread.is_alive():
                    thread.join(0.2)
                reason = None
            if reason is None and session.outcome in ("completed", "stopped",
                                                      "already finished"):
                return session.finalize()
            if reason is None:
                reason = f"crashed: {session.error}"
            session.abort(reason)
            thread.join(timeout=15)
            if thread.is_alive():
                log.critical("session_thread_did_not_stop", extra={"reason": reason})
                session.defunct = True  # it may never write the state file again
            session.note_exit_reason(reason)
            if self._stop.is_set():
                return session.finalize()
            if session.fatal:
                log.error("session_failed_not_restartable", extra={
                    "run_id": session.run_id, "reason": reason})
                return session.finalize(give_up_reason=f"not restartable: {session.error}")
            session.close_journal()
            self.restarts += 1
            now = time.monotonic()
            recent.append(now)
            while recent and now - recent[0] > cfg.restart_window_s:
                recent.popleft()
            if len(recent) > cfg.max_restarts:
                why = (f"watchdog gave up after {len(recent) - 1} restarts within "
                       f"{cfg.restart_window_s:.0f}s; last failure: {reason}")
                log.critical("watchdog_gave_up", extra={"run_id": session.run_id,
                                                        "reason": why})
                self.publish("watchdog_gave_up", why)
                return session.finalize(give_up_reason=why)
            remaining = session.remaining_ms()
            log.warning("Watchdog restarting session %s in %.1fs: %s; remaining %s",
                        session.run_id, cfg.restart_delay_s, reason, _mmss(remaining),
                        extra={"run_id": session.run_id, "reason": reason,
                               "remaining_s": round(remaining / 1000, 1),
                               "restarts": session.restarts + 1})
            self.publish("watchdog_restart", {"reason": reason, "remaining_ms": remaining,
                                              "restarts": session.restarts + 1})
            if self._stop.wait(cfg.restart_delay_s):
                # stopped during the pause: close the books from the last state, no new segment
                return self.make_session(True).finalize_only(self._stop_reason)
            resume = True

    def _watch(self, session, thread: threading.Thread) -> str | None:
        cfg = self.config
        while thread.is_alive():
            thread.join(cfg.poll_s)
            if self._crash is not None:
                return self._crash
            silent = time.monotonic() - session.heartbeat_mono
            if silent > cfg.hang_after_s and thread.is_alive():
                return f"hung: no heartbeat from the session loop for {silent:.1f}s"
        if self._crash is not None:
            return self._crash
        return None
