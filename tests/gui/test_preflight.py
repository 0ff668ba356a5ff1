"""The check before the QApplication: missing system libraries are named with the apt command,
instead of Qt's bare abort (exit 134)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gui.preflight import XCB_PACKAGES, check_platform, missing_libraries, package_for
from tests.conftest import ROOT


@pytest.mark.parametrize("soname,package", [
    ("libxcb-icccm.so.4", "libxcb-icccm4"), ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    ("libxcb-cursor.so.0", "libxcb-cursor0"), ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libEGL.so.1", "libegl1"), ("libGL.so.1", "libgl1"), ("libdbus-1.so.3", "libdbus-1-3"),
    ("libglib-2.0.so.0", "libglib2.0-0"), ("libxcb-render-util.so.0", "libxcb-render-util0"),
    ("libX11-xcb.so.1", "libx11-xcb1"), ("libfontconfig.so.1", "libfontconfig1"),
])
def test_sonames_map_to_their_debian_packages(soname, package):
    assert package_for(soname) == package
    assert package in XCB_PACKAGES


@pytest.fixture
def plugin_missing_a_library(tmp_path):
    """A real shared object linked against a library that is then removed (ldd: not found)."""
    if shutil.which("gcc") is None or shutil.which("ldd") is None:
        pytest.skip("needs gcc and ldd")
    src = tmp_path / "x.c"
    src.write_text("int f(void) { return 0; }\n")
    dep = tmp_path / "libbtcgone.so.4"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(dep), str(src),
                    "-Wl,-soname,libbtcgone.so.4"], check=True)
    plugin = tmp_path / "libqxcb.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(plugin), str(src), "-Wl,--no-as-needed",
                    f"-L{tmp_path}", "-l:libbtcgone.so.4"], check=True)
    dep.unlink()
    return plugin


def test_a_missing_library_is_named_with_the_apt_command(plugin_missing_a_library):
    assert "libbtcgone.so.4" in missing_libraries(plugin_missing_a_library)
    text = check_platform({"DISPLAY": ":0"}, plugin_missing_a_library)
    assert "libbtcgone.so.4" in text and "sudo apt-get install libbtcgone4" in text
    assert "--headless" in text
    # other platforms than xcb are not judged by the xcb plugin
    assert check_platform({"QT_QPA_PLATFORM": "offscreen"}, plugin_missing_a_library) is None


def test_this_machine_has_what_the_window_needs():
    assert missing_libraries() == []


def test_no_display_is_a_message_and_exit_2_not_an_abort(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "--data-dir",
                        str(tmp_path / "d")], capture_output=True, text=True, timeout=60,
                       env=env, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "no display" in r.stderr and "--headless" in r.stderr
