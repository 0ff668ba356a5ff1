"""Put the built app in the user's application menu (Linux, freedesktop.org).

    python scripts/install_desktop_entry.py            # after python scripts/build_app.py
    python scripts/install_desktop_entry.py --uninstall

Writes ~/.local/share/applications/btc-laptop-agents.desktop (Exec = the built executable's
absolute path) and the icons under ~/.local/share/icons/hicolor/<size>/apps/.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "btc-laptop-agents"
SIZES = (16, 32, 48, 64, 128, 256, 512)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exe", type=Path, default=ROOT / "dist" / NAME / NAME)
    ap.add_argument("--uninstall", action="store_true")
    args = ap.parse_args()
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    entry = data / "applications" / f"{NAME}.desktop"
    icons = data / "icons" / "hicolor"
    if args.uninstall:
        entry.unlink(missing_ok=True)
        for n in SIZES:
            (icons / f"{n}x{n}" / "apps" / f"{NAME}.png").unlink(missing_ok=True)
        (icons / "scalable" / "apps" / f"{NAME}.svg").unlink(missing_ok=True)
        print(f"removed {entry}")
        return 0
    exe = args.exe.resolve()
    if not exe.is_file():
        print(f"no built app at {exe}: run python scripts/build_app.py first", file=sys.stderr)
        return 2
    text = (ROOT / "resources" / f"{NAME}.desktop").read_text()
    text = text.replace("Exec=btc-laptop-agents", f'Exec="{exe}"')
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(text)
    for n in SIZES:
        d = icons / f"{n}x{n}" / "apps"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "resources" / "icons" / f"{NAME}-{n}.png", d / f"{NAME}.png")
    d = icons / "scalable" / "apps"
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "resources" / "icons" / f"{NAME}.svg", d / f"{NAME}.svg")
    for cmd in (["update-desktop-database", str(entry.parent)],
                ["gtk-update-icon-cache", "-q", str(icons)]):
        if shutil.which(cmd[0]):
            subprocess.run(cmd, capture_output=True)
    print(f"installed {entry} -> {exe}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
