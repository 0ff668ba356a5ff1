"""The process supervisor behind `main.py --headless --supervise`.

Runs the session in a child process (`main.py --headless ... --run-id R`). When the child exits
non-zero or dies by a signal, it waits `restart_delay_s` and starts a new child with `--resume`,
which continues run R for the remaining duration from the state file and journal. Exit 0 when a
child finishes with 0. Ctrl-C / SIGTERM are passed to the child, which flattens and writes the
report. Too many restarts in the window: a last child closes the books with an error report.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

log = logging.getLogger("btc_laptop_agents.supervisor")


def _say(text: str, stream=None) -> None:
    from storage.logger import redact
    print(redact(text), file=stream or sys.stdout, flush=True)

MAIN = Path(__file__).resolve().parents[2] / "main.py"
_OWN_FLAGS = {"--supervise"}
_VALUE_FLAGS = {"--run-id", "--previous-exit", "--give-up", "--finalize",
                "--supervisor-restarts"}
EXIT_NOT_RESTARTABLE = 3  # main.py's child code for an error a restart cannot fix


def child_argv(argv: list[str], run_id: str, resume: bool, previous_exit: str = "",
               give_up: str = "", restarts: int = 0) -> list[str]:
    """Build the child's command line from the parent's, minus the supervisor's own flags."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in _OWN_FLAGS or a == "--resume":
            continue
        if name in _VALUE_FLAGS:
            skip = "=" not in a
            continue
        out.append(a)
    out += ["--run-id", run_id, "--supervisor-restarts", str(restarts)]
    if resume:
        out += ["--resume", "--previous-exit", previous_exit or "child exited"]
    if give_up:
        out += ["--give-up", give_up]
    if getattr(sys, "frozen", False):  # the packaged app: the executable is main.py
        return [sys.executable, *out]
    return [sys.executable, str(MAIN), *out]


def _run_closed(data_dir: Path, run_id: str) -> bool:
    """Whether the state file says run_id ended for good (finished or error)."""
    import json
    try:
        raw = (data_dir / "paper" / "broker_state.json").read_bytes()[:64 * 1024 * 1024]
        doc = json.loads(raw)
    except Exception:  # noqa: BLE001 - unreadable or hostile: the child will judge it
        return False
    return isinstance(doc, dict) and doc.get("run_id") == run_id and \
        doc.get("status") in ("finished", "error")


def describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


def supervise(argv: list[str], *, data_dir: Path, run_id: str | None = None,
              restart_delay_s: float = 5.0, max_restarts: int = 5,
              restart_window_s: float = 3600.0, lock=None) -> int:
    """Run and restart the session child until it finishes; return the exit code.

    `lock` is the data dir's DataDirLock: every child gets its descriptor, so the data dir
    stays locked while the supervisor or a child lives, and by no one after both are gone.
    """
    from trading.runtime.session import new_run_id
    run_id = run_id or new_run_id()
    from storage.logger import register_identifier
    register_identifier(run_id)
    pid_file = Path(data_dir) / "paper" / "child.pid"
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    child: subprocess.Popen | None = None

    def on_signal(signum, frame):
        stop.set()
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)  # the child flattens and writes its report

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    recent: deque[float] = deque()
    resume, previous = False, ""
    restarts = 0
    popen_kw: dict = {}
    if lock is not None:
        popen_kw["env"] = {**os.environ, **lock.child_env()}
        if os.name != "nt" and lock.fd >= 0:
            popen_kw["pass_fds"] = (lock.fd,)

    def call(cmd: list[str]) -> int:
        return subprocess.call(cmd, **popen_kw)

    try:
        while True:
            cmd = child_argv(argv, run_id, resume, previous, restarts=restarts)
            child = subprocess.Popen(cmd, **popen_kw)
            try:
                pid_file.write_text(str(child.pid))
            except OSError:
                pass  # only a convenience for people watching; a full disk must not stop us
            _say(f"supervisor: run {run_id}: child pid {child.pid} "
                 f"({'resuming' if resume else 'starting'})")
            rc = child.wait()
            if rc == 0:
                return 0
            if stop.is_set():
                return rc if rc > 0 else 1
            if rc == 2:  # a usage error will not get better by restarting
                return rc
            if rc == EXIT_NOT_RESTARTABLE:  # the child said why (e.g. the disk is full)
                _say("supervisor: the session ended with an error a restart cannot fix; "
                     "not restarting", sys.stderr)
                return 1
            if rc > 0 and _run_closed(Path(data_dir), run_id):
                # the child wrote the final report itself (e.g. the watchdog gave up, or an
                # error a restart cannot fix): restarting would only repeat it
                return rc
            previous = describe_exit(rc)
            restarts += 1
            now = time.monotonic()
            recent.append(now)
            while recent and now - recent[0] > restart_window_s:
                recent.popleft()
            if len(recent) > max_restarts:
                why = (f"supervisor gave up after {len(recent) - 1} restarts within "
                       f"{restart_window_s:.0f}s; last child: {previous}")
                _say(f"supervisor: {why}", sys.stderr)
                # the death that made it give up was not restarted: it is no restart
                cmd = child_argv(argv, run_id, True, previous, give_up=why,
                                 restarts=restarts - 1)
                call(cmd)  # a last child closes the books with an error report
                return 1
            _say(f"supervisor: child {previous}; restarting run {run_id} in "
                 f"{restart_delay_s:g}s for the remaining time (restart {restarts})", sys.stderr)
            if stop.wait(restart_delay_s):
                # stopped during the pause: close the books from the saved state
                code = call(child_argv(argv, run_id, True, previous, restarts=restarts - 1) +
                            ["--finalize", "stopped during a restart pause"])
                return 1 if code == EXIT_NOT_RESTARTABLE else code
            resume = True
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        try:
            os.remove(pid_file)
        except OSError:
            pass
