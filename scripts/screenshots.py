"""Screenshots of every screen of the desktop app, as a person sees them on a real display.

    python scripts/screenshots.py --all        # each size x theme under its own Xvfb screen
    xvfb-run -a -s "-screen 0 1280x720x24" python scripts/screenshots.py --size 1280x720

`--all` needs xvfb-run (apt-get install xvfb xauth, plus the xcb libraries in the README) and
writes docs/screenshots/<screen>_<W>x<H>_<theme>.png for 1280x720 and 1920x1080, light and
dark. One pass drives the real window through: the window before a session, Settings, a
session running on the local exchange (a replay of the bundled real data at 60x), the report
window after Stop, the window after the session, History, the error dialog of an unexpected
error, and the offline banner of a session that could not reach Bitunix. Shots are of the
whole screen (what is off-screen is not in them), in a throwaway data and settings dir.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = ("1280x720", "1920x1080")
THEMES = ("light", "dark")
SHOTS = ("main_before", "settings", "main_during", "report", "main_after", "history",
         "error_dialog", "offline_banner")


def run_all(out: Path) -> int:
    if shutil.which("xvfb-run") is None:
        print("xvfb-run is missing: apt-get install xvfb xauth", file=sys.stderr)
        return 2
    failed = 0
    for size in SIZES:
        for scheme in THEMES:
            cmd = ["xvfb-run", "-a", "-s", f"-screen 0 {size}x24", sys.executable,
                   str(Path(__file__).resolve()), "--size", size, "--theme", scheme,
                   "--out", str(out)]
            print(f"== {size} {scheme}", flush=True)
            env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
            failed += subprocess.run(cmd, cwd=ROOT, env=env).returncode != 0
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--all", action="store_true", help="every size and theme, under Xvfb")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    p.add_argument("--size", default="1280x720", help="the screen's size, WxH (a label only: "
                   "the real size is the display's)")
    p.add_argument("--theme", choices=THEMES, default="light")
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args()
    if args.all:
        return run_all(args.out)
    return one_pass(args)


def one_pass(args) -> int:
    sys.path.insert(0, str(ROOT))
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="btc-laptop-shots-"))
    os.environ["BTC_LAPTOP_DATA_DIR"] = str(tmp / "data")
    os.environ["BTC_LAPTOP_CONFIG_DIR"] = str(tmp / "config")

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from gui.app import app_icon, install_excepthooks
    from gui.main_window import APP_TITLE, APPLICATION, ORGANIZATION, MainWindow
    from gui.theme import apply_theme
    from storage.logger import setup_logging
    from trading.runtime.session import SessionConfig

    app = QApplication.instance() or QApplication(["btc-laptop-agents"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APP_TITLE)
    app.setWindowIcon(app_icon())
    data_dir = tmp / "data"
    setup_logging(data_dir, console=False)
    apply_theme(app)
    qs = QSettings(str(tmp / "config" / "ui.ini"), QSettings.IniFormat)
    qs.setValue("view/theme", args.theme)
    window = MainWindow(SessionConfig(data_dir=data_dir, seed=args.seed, reset_account=True),
                        qsettings=qs, settings_file=tmp / "config" / "settings.json")
    restore_hooks = install_excepthooks(window)
    window.show()
    args.out.mkdir(parents=True, exist_ok=True)
    screen = QGuiApplication.primaryScreen()
    geo = screen.geometry()
    print(f"screen {geo.width()}x{geo.height()}, window {window.width()}x{window.height()}")
    written: list[str] = []

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def wait(cond, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            app.processEvents()
            if cond():
                return True
            time.sleep(0.01)
        return cond()

    def shot(name: str) -> None:
        pump(0.4)  # a few frames: the chart, the health figures, a window's first paint
        if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
            top = QApplication.activeModalWidget() or QApplication.activeWindow() or window
            pix = top.grab()
        else:
            pix = screen.grabWindow(0)
        path = args.out / f"{name}_{args.size}_{args.theme}.png"
        pix.save(str(path))
        written.append(path.name)
        print(f"wrote {path}", flush=True)

    def modal_shot(name: str, opener) -> None:
        """Open a modal dialog with `opener`, shoot it once painted, then close it."""
        def close_when_up() -> None:
            dlg = QApplication.activeModalWidget()
            if dlg is None:
                QTimer.singleShot(50, close_when_up)
                return
            shot(name)
            dlg.reject() if hasattr(dlg, "reject") else dlg.close()
        QTimer.singleShot(100, close_when_up)
        opener()

    wait(window.isVisible, 5)
    shot("main_before")
    modal_shot("settings", window.open_settings)

    window.set_toolbar(source="replay", replay_file=None, duration_min=40, latency_ms=1000,
                       speed=60)
    if not window.start_session():
        print("the session did not start", file=sys.stderr)
        return 1

    def mid_session() -> bool:
        pos = window.position_panel.values["side"].text()
        return window.fills_panel.row_count >= 3 and pos in ("LONG", "SHORT") \
            and window.chart.closed_candle_count >= 80

    if not wait(mid_session, 90):
        print("no open position after 3 fills within 90 s; taking the shot anyway",
              file=sys.stderr)
    shot("main_during")
    window.stop_session()
    if not wait(lambda: window.last_report_window is not None
                and window.last_report_window.isVisible(), 60):
        print("the report window did not open", file=sys.stderr)
        return 1
    shot("report")
    window.last_report_window.close()
    pump(0.2)
    shot("main_after")
    window.open_history()
    wait(lambda: window.history_window is not None and window.history_window.isVisible(), 10)
    shot("history")
    window.history_window.close()

    def fail() -> None:  # an unexpected error in a slot, routed as the app routes it
        {}["replay_cursor"]
    QTimer.singleShot(0, fail)
    if not wait(lambda: getattr(window, "_error_box", None) is not None
                and window._error_box.isVisible(), 10):
        print("the error dialog did not show", file=sys.stderr)
        return 1
    shot("error_dialog")
    window._error_box.close()

    window.set_toolbar(source="auto", speed=60, duration_min=10)
    if not window.start_session():
        print("the auto session did not start", file=sys.stderr)
        return 1
    if not wait(lambda: window.offline_banner.isVisible() and window.chart.candle_count > 5,
                60):
        print("the offline banner did not show", file=sys.stderr)
        return 1
    shot("offline_banner")
    window.stop_session()
    wait(lambda: not window.controller.is_running, 60)
    for rw in list(window.report_windows):
        rw.close()
    restore_hooks()
    window.close()
    missing = [s for s in SHOTS if f"{s}_{args.size}_{args.theme}.png" not in written]
    if missing:
        print(f"missing shots: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
