"""Run the built one-folder app in a clean environment, as a user's double-click would.

    python scripts/check_built_app.py [dist/btc-laptop-agents/btc-laptop-agents]

1. `--headless --duration 2 --source replay --speed 60`: exit 0, a report in the per-user data
   dir of a fresh HOME whose summary.html is the full page (templates and chart library found
   in the bundle), nothing written to the current directory or beside the executable;
2. the window, offscreen: `--autostart --exit-on-finish --source replay --speed 60 --duration 2`
   exits 0 with a second report;
3. launch-to-window time: the window with --autostart under the platform in use (offscreen
   here unless DISPLAY is set), timed until the first log line of the session (median of 3).
No project venv, PYTHONPATH or source tree is reachable from the child: env -i style.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "btc-laptop-agents"


def clean_env(home: Path, **extra: str) -> dict:
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    if os.environ.get("DISPLAY") and not extra.get("QT_QPA_PLATFORM"):
        for k in ("DISPLAY", "XAUTHORITY"):  # the X server's address and its cookie
            if os.environ.get(k):
                env[k] = os.environ[k]
    env.update(extra)
    return env


def reports(home: Path) -> list[Path]:
    return sorted((home / ".local" / "share" / NAME / "runs").glob("2*/final_report.json"))


def main() -> int:
    exe = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        ROOT / "dist" / NAME / (NAME + (".exe" if os.name == "nt" else ""))
    if not exe.is_file():
        print(f"no built app at {exe}: python scripts/build_app.py", file=sys.stderr)
        return 2
    ok = True
    with tempfile.TemporaryDirectory(prefix="built-app-") as tmp:
        home, cwd = Path(tmp) / "home", Path(tmp) / "cwd"
        home.mkdir()
        cwd.mkdir()
        before = set(exe.parent.rglob("*"))
        r = subprocess.run([str(exe), "--headless", "--duration", "2", "--source", "replay",
                            "--speed", "60", "--quiet"], cwd=cwd, env=clean_env(home),
                           capture_output=True, text=True, timeout=300)
        got = reports(home)
        status = json.loads(got[-1].read_text())["status"] if got else None
        print(f"headless: exit {r.returncode}, report status {status}")
        ok &= r.returncode == 0 and status == "success"
        # the bundle's templates and chart library were found: the full page, not the fallback
        page = (got[-1].parent / "summary.html").read_text(encoding="utf-8") if got else ""
        full = ("window.LightweightCharts" in page and 'id="price-chart"' in page
                and "could not be rendered" not in page)
        print(f"summary.html: {len(page):,} bytes, {'full page with charts' if full else 'NOT the full page'}")
        ok &= full
        r = subprocess.run([str(exe), "--autostart", "--exit-on-finish", "--source", "replay",
                            "--speed", "60", "--duration", "2"], cwd=cwd,
                           env=clean_env(home, QT_QPA_PLATFORM="offscreen"),
                           capture_output=True, text=True, timeout=300)
        print(f"window (offscreen): exit {r.returncode}, reports {len(reports(home))}")
        ok &= r.returncode == 0 and len(reports(home)) == 2
        if r.returncode:
            print(r.stderr[-3000:], file=sys.stderr)
        stray = list(cwd.iterdir()) + [p for p in set(exe.parent.rglob("*")) - before]
        print(f"files written to the current dir or beside the executable: {len(stray)}")
        ok &= not stray
        times = []
        for i in range(3):
            err_path = Path(tmp) / f"launch{i}.txt"
            with open(err_path, "w") as err:
                t0 = time.monotonic()
                p = subprocess.Popen([str(exe), "--autostart", "--source", "replay", "--speed",
                                      "60", "--duration", "1"], cwd=cwd,
                                     env=clean_env(home, **({} if os.environ.get("DISPLAY")
                                                            else {"QT_QPA_PLATFORM":
                                                                  "offscreen"})),
                                     stdout=subprocess.DEVNULL, stderr=err)
                deadline = t0 + 60
                while time.monotonic() < deadline and p.poll() is None:
                    # the window logs gui_window_shown once it is on screen
                    if "gui_window_shown" in err_path.read_text(errors="replace"):
                        times.append(time.monotonic() - t0)
                        break
                    time.sleep(0.01)
                p.terminate()
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if times:
            print(f"launch_to_window_s median={statistics.median(times):.2f} "
                  f"runs={[round(t, 2) for t in times]}")
        else:
            print("launch_to_window_s: the window never said it was shown")
            ok = False
    print("built app: OK" if ok else "built app: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
