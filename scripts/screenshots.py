"""Screenshots of the main window mid-session and of the end-of-run report window.

    python scripts/screenshots.py                      # offscreen (no display needed)
    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py

Runs a replay of the bundled data at speed 60 on the local exchange, in a throwaway data dir
and settings dir (nothing touches the user's own), and writes docs/screenshots/main_window.png
and docs/screenshots/report_window.png.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
TMP = Path(tempfile.mkdtemp(prefix="btc-laptop-shots-"))
os.environ["BTC_LAPTOP_DATA_DIR"] = str(TMP / "data")
os.environ["BTC_LAPTOP_CONFIG_DIR"] = str(TMP / "config")


def wait(app, cond, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        app.processEvents()
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    p.add_argument("--width", type=int, default=1600)
    p.add_argument("--height", type=int, default=1000)
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args()

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from gui.main_window import MainWindow
    from gui.theme import apply_theme
    from storage.logger import setup_logging
    from trading.runtime.session import SessionConfig

    app = QApplication.instance() or QApplication(["screenshots"])
    data_dir = TMP / "data"
    setup_logging(data_dir, console=False)
    apply_theme(app)
    qs = QSettings(str(TMP / "config" / "ui.ini"), QSettings.IniFormat)
    window = MainWindow(SessionConfig(data_dir=data_dir, seed=args.seed, reset_account=True),
                        qsettings=qs, settings_file=TMP / "config" / "settings.json")
    window.resize(args.width, args.height)
    window.show()
    window.set_toolbar(source="replay", replay_file=None, duration_min=40, latency_ms=1000,
                       speed=60)
    if not window.start_session():
        print("the session did not start", file=sys.stderr)
        return 1

    def mid_session() -> bool:
        pos = window.position_panel.values["side"].text()
        return window.fills_panel.row_count >= 3 and pos in ("LONG", "SHORT") \
            and window.chart.closed_candle_count >= 80

    if not wait(app, mid_session, 60):
        print("no open position after 3 fills within 60 s; taking the shot anyway",
              file=sys.stderr)
    wait(app, lambda: False, 0.4)  # a few frames for the chart and the health figures
    args.out.mkdir(parents=True, exist_ok=True)
    main_png = args.out / "main_window.png"
    window.grab().save(str(main_png))
    print(f"wrote {main_png}")

    window.stop_session()
    if not wait(app, lambda: window.last_report_window is not None, 60):
        print("the report window did not open", file=sys.stderr)
        return 1
    rw = window.last_report_window
    rw.resize(1280, 860)
    wait(app, lambda: False, 0.5)
    report_png = args.out / "report_window.png"
    rw.grab().save(str(report_png))
    print(f"wrote {report_png}")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
