"""Before the QApplication: can Qt's platform plugin load here? If not, say what to install.

Qt aborts the whole process (`qFatal`, exit 134) when its platform plugin cannot load, naming
at best one library. On Linux the xcb plugin links about twenty system libraries and opens
libxcb-cursor at run time; `ldd` lists which of them this machine lacks. This module finds
them, maps each to its Debian/Ubuntu package, and returns the message and the one apt command.
No Qt import: it must run before anything of Qt is loaded.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# every system package the xcb plugin, Qt's Gui/Widgets and the app's window need on
# Debian/Ubuntu (found with ldd on libqxcb.so and the Qt libraries; see README)
XCB_PACKAGES = ("libgl1", "libegl1", "libfontconfig1", "libfreetype6", "libglib2.0-0",
                "libdbus-1-3", "libx11-6", "libx11-xcb1", "libxcb1", "libxcb-cursor0",
                "libxcb-icccm4", "libxcb-image0", "libxcb-keysyms1", "libxcb-randr0",
                "libxcb-render0", "libxcb-render-util0", "libxcb-shape0", "libxcb-shm0",
                "libxcb-sync1", "libxcb-util1", "libxcb-xfixes0", "libxcb-xkb1",
                "libxkbcommon0", "libxkbcommon-x11-0")
# sonames whose package name does not follow lib<name><version>
_SPECIAL = {"libglib-2.0.so.0": "libglib2.0-0", "libgobject-2.0.so.0": "libglib2.0-0",
            "libgthread-2.0.so.0": "libglib2.0-0", "libgio-2.0.so.0": "libglib2.0-0",
            "libGLX.so.0": "libglx0", "libOpenGL.so.0": "libopengl0",
            "libfreetype.so.6": "libfreetype6", "libpng16.so.16": "libpng16-16"}
# opened with dlopen by Qt >= 6.5, so ldd does not show it
_DLOPENED = ("libxcb-cursor.so.0",)


def package_for(soname: str) -> str:
    """Debian package that ships a library soname (libxcb-icccm.so.4 -> libxcb-icccm4)."""
    if soname in _SPECIAL:
        return _SPECIAL[soname]
    m = re.fullmatch(r"lib(.+?)\.so\.(\d+)(?:\..*)?", soname)
    if not m:
        return soname
    base, ver = m.group(1), m.group(2)
    return f"lib{base}{'-' if base[-1].isdigit() else ''}{ver}".lower()


def _qt_dir() -> Path | None:
    base = getattr(sys, "_MEIPASS", None)
    candidates = [Path(base) / "PySide6" / "Qt"] if base else []
    try:
        import importlib.util
        spec = importlib.util.find_spec("PySide6")
        if spec and spec.origin:
            candidates.append(Path(spec.origin).parent / "Qt")
    except (ImportError, ValueError):
        pass
    return next((c for c in candidates if c.is_dir()), None)


def missing_libraries(plugin: Path | None = None) -> list[str]:
    """Sonames the xcb plugin needs that this machine does not have (Linux only)."""
    if plugin is None:
        qt = _qt_dir()
        if qt is None:
            return []
        plugin = qt / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.is_file() or shutil.which("ldd") is None:
        return []
    try:
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True,
                             timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    missing = [line.split("=>")[0].strip() for line in out.splitlines()
               if "not found" in line]
    for soname in _DLOPENED:
        if soname in missing:
            continue
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(soname)
    return sorted(set(missing))


def check_platform(env: dict | None = None, plugin: Path | None = None) -> str | None:
    """Return what to tell the user when the window cannot start here, or None if it can."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if platform not in ("", "xcb"):
        return None  # offscreen, wayland, minimal ...: not the xcb plugin
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return ("The desktop window cannot start: there is no display (DISPLAY and "
                "WAYLAND_DISPLAY are not set). Start it from a desktop session, or run "
                "without a window: main.py --headless")
    if env.get("WAYLAND_DISPLAY") and not platform:
        return None  # Qt uses its Wayland plugin there
    missing = missing_libraries(plugin)
    if missing:
        packages = sorted({package_for(s) for s in missing})
        return ("The desktop window cannot start: Qt's xcb platform plugin needs system "
                f"libraries this machine lacks: {', '.join(missing)}.\n"
                f"Install them with:\n  sudo apt-get install {' '.join(packages)}\n"
                "(or run without a window: main.py --headless)")
    return None
