"""The one object through which the GUI runs the engine: a session under the watchdog."""
from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from gui.bridge import Bridge

log = logging.getLogger("btc_laptop_agents.gui")

RUNNER_THREAD_NAME = "gui-session-runner"


class SessionController(QObject):
    """Start and stop one session at a time on a background thread (GUI thread API).

    The engine reports through the bridge; when the runner thread ends (reports written) the
    controller emits `finished(exit_code, run_dir)` on the GUI thread.
    """

    started = Signal(str)  # run_id
    finished = Signal(int, str)  # exit code (0 ok, 1 error), run folder

    def __init__(self, bridge: Bridge, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self._thread: threading.Thread | None = None
        self._dog = None
        self._session = None
        self._run_id: str | None = None
        self._running = False
        self._stop_requested = False
        self.last_exit_code: int | None = None
        self.last_run_dir: str | None = None
        bridge.runner_done.connect(self._on_runner_done)

    # ---- GUI thread ----
    @property
    def is_running(self) -> bool:
        return self._running

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def start(self, config, watchdog_config=None, use_watchdog: bool = True) -> str:
        """Start a session for `config` (a SessionConfig); return its run id."""
        from trading.runtime.session import Session, new_run_id
        from trading.runtime.watchdog import Watchdog, WatchdogConfig
        if self._running:
            raise RuntimeError("a session is already running")
        run_id = new_run_id()
        publish = self._bridge.publish

        def make_session(resume: bool) -> Session:
            # a watchdog restart resumes the same run from the state file and the journal
            c = dataclasses.replace(config, resume=True, previous_exit="",
                                    watchdog_resume=True) if resume else config
            session = Session(c, run_id=run_id, publish=publish)
            self._session = session
            return session

        if use_watchdog:
            self._dog = Watchdog(make_session, watchdog_config or WatchdogConfig(),
                                 publish=publish)
            target = self._dog.run
        else:
            self._dog = None
            target = make_session(False).run
        self._run_id = run_id
        self._running = True
        self._stop_requested = False
        self._thread = threading.Thread(target=self._run, args=(target, run_id,
                                                                Path(config.data_dir)),
                                        name=RUNNER_THREAD_NAME, daemon=True)
        self._thread.start()
        log.info("gui_session_started", extra={"run_id": run_id, "source": config.source,
                                               "speed": config.speed_label,
                                               "duration_min": config.duration_min})
        self.started.emit(run_id)
        return run_id

    def stop(self, reason: str = "stopped by user") -> None:
        """Ask the session to end cleanly (flatten, report); `finished` follows."""
        if not self._running:
            return
        self._stop_requested = True
        log.info("gui_stop_requested", extra={"run_id": self._run_id, "reason": reason})
        if self._dog is not None:
            self._dog.request_stop(reason)
        elif self._session is not None:
            self._session.request_stop(reason)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Join the runner thread (tests and shutdown); return whether it has ended."""
        t = self._thread
        if t is None:
            return True
        t.join(timeout_s)
        return not t.is_alive()

    # ---- the runner thread ----
    def _run(self, target, run_id: str, data_dir: Path) -> None:
        code = 1
        try:
            code = int(target())
        except BaseException:  # noqa: BLE001 - the GUI must hear that the run ended
            log.exception("session_runner_failed", extra={"run_id": run_id})
        session = self._session
        run_dir = getattr(session, "run_dir", None)
        if run_dir is None:
            from storage.paths import DataPaths
            from storage.reports import run_dir_name
            run_dir = DataPaths(data_dir).runs_dir / run_dir_name(run_id)
        self._bridge.publish("runner_done", {"exit_code": code, "run_dir": str(run_dir),
                                             "run_id": run_id})

    # ---- GUI thread ----
    def _on_runner_done(self, info: dict) -> None:
        if info.get("run_id") != self._run_id:
            return
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._running = False
        self.last_exit_code = int(info.get("exit_code", 1))
        self.last_run_dir = str(info.get("run_dir", ""))
        log.info("gui_session_finished", extra={"run_id": self._run_id,
                                                "exit_code": self.last_exit_code,
                                                "run_dir": self.last_run_dir})
        self.finished.emit(self.last_exit_code, self.last_run_dir)
