"""Start the desktop app: QApplication, logging, theme, the main window and exception hooks."""
from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
from pathlib import Path

log = logging.getLogger("btc_laptop_agents.gui")

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
}
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
        out[field] = str(value) if field in ("replay_file", "starting_balance") else value
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
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from gui.main_window import APP_TITLE, APPLICATION, ORGANIZATION, MainWindow
    from gui.theme import apply_theme
    from storage.logger import setup_logging
    from trading.runtime.watchdog import WatchdogConfig

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "main.py"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APP_TITLE)
    quiet = bool(getattr(args, "quiet", False))
    setup_logging(Path(cfg.data_dir), console=True, level=logging.INFO,
                  console_level=logging.WARNING if quiet else logging.INFO)
    apply_theme(app)
    watchdog = WatchdogConfig(hang_after_s=args.hang_after_s, restart_delay_s=args.restart_delay_s,
                              max_restarts=args.max_restarts,
                              restart_window_s=args.restart_window_s)
    window = MainWindow(cfg, cli_overrides=cli_overrides(args, argv), watchdog_config=watchdog,
                        use_watchdog=not args.no_watchdog,
                        exit_on_finish=bool(getattr(args, "exit_on_finish", False)))
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
    if getattr(args, "exit_on_finish", False) and window.exit_code is not None:
        return int(window.exit_code)
    return int(code)
