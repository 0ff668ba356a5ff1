"""Start the desktop app: QApplication, logging, theme, the main window and exception hooks."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

log = logging.getLogger("btc_laptop_agents.gui")

LOCKED_TITLE = "BTC Laptop Agents is already running"
LOCKED_HEADLINE = ("Another BTC Laptop Agents window or session is using this data dir, so this "
                   "one was not opened.")
DATA_DIR_TITLE = "BTC Laptop Agents cannot start"
DATA_DIR_HEADLINE = "The data dir cannot be used, so the window was not opened."
EXIT_DATA_DIR_UNUSABLE = 2  # as argparse's usage errors: nothing was run

# command-line options that, when given, override the saved settings for this launch:
# option -> (AppSettings field, attribute of the parsed args)
CLI_SETTING_OPTIONS = {
    "--duration": ("duration_min", "duration"),
    "--source": ("source", "source"),
    "--replay-file": ("replay_file", "replay_file"),
    "--speed": ("speed", "speed"),
    "--execution-latency-ms": ("latency_ms", "execution_latency_ms"),
    "--symbol": ("symbol", "symbol"),
    "--starting-balance": ("starting_balance", "starting_balance"),
    "--risk-per-trade": ("risk_per_trade", "risk_per_trade"),
    "--taker-fee-bps": ("taker_fee_bps", "taker_fee_bps"),
    "--maker-fee-bps": ("maker_fee_bps", "maker_fee_bps"),
    "--slip-bps": ("slip_bps", "slip_bps"),
    "--order-type": ("order_type", "order_type"),
    "--limit-offset-bps": ("limit_offset_bps", "limit_offset_bps"),
    "--limit-timeout-s": ("limit_timeout_s", "limit_timeout_s"),
    "--limit-tif": ("limit_tif", "limit_tif"),
    "--strategy": ("strategy", "strategy"),
    "--strategy-param": ("strategy_params", "strategy_param"),
    "--fixed-qty": ("fixed_qty", "fixed_qty"),
    "--no-breaker": ("breaker_enabled", "no_breaker"),
    "--replay-from-start": ("replay_from_start", "replay_from_start"),
    "--no-flatten": ("flatten_at_end", "no_flatten"),
}
NEGATED = frozenset({"--no-breaker", "--no-flatten"})  # a flag that turns its setting off
HEADLESS_ONLY = (("supervise", "--supervise"), ("resume", "--resume"),
                 ("give_up", "--give-up"), ("finalize", "--finalize"))


def cli_overrides(args, argv: list[str]) -> dict:
    """Settings fields given explicitly on the command line, with their parsed values."""
    given: set[str] = set()
    for a in argv:
        if not a.startswith("--"):
            continue
        name = a.split("=", 1)[0]
        # argparse accepts unambiguous prefixes (--dur); it has already checked them
        for opt in CLI_SETTING_OPTIONS:
            if opt == name or (len(name) > 2 and opt.startswith(name)):
                given.add(opt)
    out = {}
    for opt in given:
        field, attr = CLI_SETTING_OPTIONS[opt]
        value = getattr(args, attr, None)
        if value is None:
            continue
        if opt in NEGATED:
            value = not value
        if field == "strategy_params":  # name=value strings: checked by parse_config
            from trading.runtime.strategies import parse_param_args
            value = parse_param_args(value)
        out[field] = str(value) if field in ("replay_file", "starting_balance",
                                             "fixed_qty") else value
    if "strategy" in out and "strategy_params" not in out:
        out["strategy_params"] = {}  # another strategy: its own defaults
    return out


def install_excepthooks(window) -> callable:
    """Log unhandled exceptions (GUI thread and helper threads) and show them in a dialog.

    Session threads are the watchdog's (it restarts the session); it passes every other
    thread's exception on to the hook installed here. Returns a function that restores the
    previous hooks.
    """
    from storage.logger import SensitiveDataFilter
    redactor = SensitiveDataFilter()
    prev_sys, prev_thread = sys.excepthook, threading.excepthook

    def show(title: str, exc_type, exc, tb) -> None:
        text = redactor.redact_text("".join(traceback.format_exception(exc_type, exc, tb)))
        try:
            window.bridge.publish("error", (title, text))
        except RuntimeError:  # the window is gone
            pass

    def sys_hook(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            prev_sys(exc_type, exc, tb)
            return
        log.critical("unhandled_exception", exc_info=(exc_type, exc, tb),
                     extra={"error": f"{exc_type.__name__}: {exc}"})
        show("Unexpected error", exc_type, exc, tb)

    def thread_hook(hook_args) -> None:
        if hook_args.exc_type is SystemExit:
            return
        name = hook_args.thread.name if hook_args.thread is not None else "?"
        log.critical("thread_crashed", exc_info=(hook_args.exc_type, hook_args.exc_value,
                                                 hook_args.exc_traceback),
                     extra={"thread_name": name, "error": str(hook_args.exc_value)})
        show(f"Error in thread {name}", hook_args.exc_type, hook_args.exc_value,
             hook_args.exc_traceback)

    sys.excepthook = sys_hook
    threading.excepthook = thread_hook

    def restore() -> None:
        sys.excepthook = prev_sys
        threading.excepthook = prev_thread

    return restore


def interactive() -> bool:
    """Whether someone can click a modal box: not CI, not an offscreen/minimal Qt platform."""
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":", 1)[0].strip().lower()
    return not os.environ.get("CI") and platform not in ("offscreen", "minimal")


def show_startup_error(title: str, text: str, headline: str | None = None) -> None:
    """Show a modal critical box and wait for OK (GUI thread); skipped when nobody can click.

    Tests replace this (or show_locked_dialog) so nothing blocks.
    """
    if not interactive():
        return
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QMessageBox
    box = QMessageBox(QMessageBox.Icon.Critical, title, headline or text)
    box.setTextFormat(Qt.TextFormat.PlainText)  # paths and commands are not markup
    if headline:
        box.setInformativeText(text)
    # wide enough that a data-dir path and a command line wrap once, not at every hyphen;
    # the title bar may not show (macOS sheets, bare X), so the headline stands alone
    box.setStyleSheet("QLabel#qt_msgbox_label { font-weight: 600; min-width: 560px; }"
                      "QLabel#qt_msgbox_informativelabel { min-width: 560px; }")
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.exec()


def show_locked_dialog(text: str) -> None:
    """Tell the user the data dir is in use; `text` names the holder (GUI thread)."""
    show_startup_error(LOCKED_TITLE, text, LOCKED_HEADLINE)


def lock_data_dir(data_dir: Path, *, show_dialog: bool = True, command: str | None = None):
    """Take the data dir's lock for this window; on refusal tell the user and return None.

    Returns the held DataDirLock (keep it referenced; release it when the window is gone).
    A data dir held by another process, or one that cannot be created, is reported on stderr
    (always: scripted runs read it there), in the log at CRITICAL and, if show_dialog, in a
    modal box. GUI thread, after the QApplication exists.
    """
    from storage.lock import DataDirLocked, acquire_data_dir_lock
    from storage.logger import SensitiveDataFilter
    redact = SensitiveDataFilter().redact_text  # the text also leaves the log: stderr, a box
    data_dir = Path(data_dir)
    try:
        return acquire_data_dir_lock(data_dir, command=command)
    except DataDirLocked as exc:
        text = redact(_sentence(str(exc)))
        holder = {k: v for k, v in exc.holder.items() if k != "token"}  # the token is private
        log.critical("data_dir_locked", extra={"data_dir": str(data_dir), "holder": holder,
                                               "error": str(exc)})
        print(f"{LOCKED_TITLE}: {text}", file=sys.stderr, flush=True)
        if show_dialog:
            show_locked_dialog(text)
        return None
    except OSError as exc:
        text = redact(f"The data dir {data_dir} cannot be created or opened "
                      f"({type(exc).__name__}: {exc}). Choose another with --data-dir or set "
                      f"BTC_LAPTOP_DATA_DIR.")
        log.critical("data_dir_unusable", extra={"data_dir": str(data_dir), "error": str(exc)})
        print(f"{DATA_DIR_TITLE}: {text}", file=sys.stderr, flush=True)
        if show_dialog:
            show_startup_error(DATA_DIR_TITLE, text, DATA_DIR_HEADLINE)
        return None


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def app_icon():
    """The app's icon in every size shipped (inside the bundle when frozen)."""
    from PySide6.QtGui import QIcon
    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parents[1]))
    icon = QIcon()
    for n in (16, 32, 48, 64, 128, 256, 512):
        p = base / "resources" / "icons" / f"btc-laptop-agents-{n}.png"
        if p.is_file():
            icon.addFile(str(p))
    return icon


def run_gui(argv_args, cfg, argv: list[str] | None = None) -> int:
    """Run the desktop window until it closes; return the process exit code.

    `argv_args` are main.py's parsed arguments and `cfg` its SessionConfig. With --autostart
    the session starts at launch; with --exit-on-finish the app quits once the report is
    written, with the session's exit code (0 success, 1 error).
    """
    args = argv_args
    argv = sys.argv[1:] if argv is None else list(argv)
    for attr, opt in HEADLESS_ONLY:
        if getattr(args, attr, None):
            print(f"{opt} is for headless runs: use python main.py --headless {opt} ...",
                  file=sys.stderr)
            return 2
    from gui.preflight import check_platform
    from PySide6.QtWidgets import QApplication
    if QApplication.instance() is None:
        # Qt would abort the process (exit 134) naming one library at best: say it all first
        problem = check_platform()
        if problem:
            print(problem, file=sys.stderr, flush=True)
            return 2

    from gui.main_window import APP_TITLE, APPLICATION, ORGANIZATION
    from gui.theme import apply_theme
    from storage.logger import setup_logging

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "main.py"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APP_TITLE)
    from trading import __version__
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("btc-laptop-agents")  # matches resources/btc-laptop-agents.desktop
    app.setWindowIcon(app_icon())
    quiet = bool(getattr(args, "quiet", False))
    apply_theme(app)
    exit_on_finish = bool(getattr(args, "exit_on_finish", False))
    # one writer per data dir: taken before any window can start a session and before the
    # log file is opened (a refused second window must not write into the holder's log),
    # held until the window is gone (released below; process death releases it too)
    from storage.logger import teardown_logging
    teardown_logging()  # until the lock is ours, log records go to stderr only
    lock = lock_data_dir(Path(cfg.data_dir), show_dialog=not exit_on_finish)
    if lock is None:
        return EXIT_DATA_DIR_UNUSABLE
    setup_logging(Path(cfg.data_dir), console=True, level=logging.INFO,
                  console_level=logging.WARNING if quiet else logging.INFO)
    try:
        return _run_window(app, args, cfg, argv, exit_on_finish)
    finally:
        lock.release()


def _run_window(app, args, cfg, argv: list[str], exit_on_finish: bool) -> int:
    """Build the main window, run the event loop, return the exit code (GUI thread)."""
    from PySide6.QtCore import QTimer

    from gui.main_window import MainWindow
    from trading.runtime.watchdog import WatchdogConfig

    watchdog = WatchdogConfig(hang_after_s=args.hang_after_s, restart_delay_s=args.restart_delay_s,
                              max_restarts=args.max_restarts,
                              restart_window_s=args.restart_window_s)
    window = MainWindow(cfg, cli_overrides=cli_overrides(args, argv), watchdog_config=watchdog,
                        use_watchdog=not args.no_watchdog,
                        exit_on_finish=exit_on_finish)
    restore_hooks = install_excepthooks(window)

    # Ctrl-C / SIGTERM: close the window, which stops the session cleanly first. Python runs
    # signal handlers only between bytecodes, so a timer lets the interpreter in regularly.
    def on_signal(signum, _frame) -> None:
        log.warning("gui_signal", extra={"signal": signum})
        QTimer.singleShot(0, window.close)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, on_signal)
        except (ValueError, OSError):  # not the main thread, or not supported here
            pass
    pulse = QTimer()
    pulse.start(250)
    pulse.timeout.connect(lambda: None)

    window.show()
    if getattr(args, "autostart", False):
        QTimer.singleShot(0, window.start_session)
    try:
        code = app.exec()
    finally:
        pulse.stop()
        restore_hooks()
        window.log_handler.detach()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if window.controller.is_running:  # closed without waiting: the report may be missing
        log.warning("gui_exit_with_session_running", extra={"run_id": window.controller.run_id})
        return 1
    if exit_on_finish and window.exit_code is not None:
        return int(window.exit_code)
    return int(code)
