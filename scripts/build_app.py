"""Build the desktop app with PyInstaller: one folder (default) or one file.

    python -m pip install -r requirements-build.txt
    python scripts/build_app.py            # dist/btc-laptop-agents/btc-laptop-agents(.exe)
    python scripts/build_app.py --onefile  # dist/onefile/btc-laptop-agents(.exe)

Prints the build time, the size and the ten largest files of the result.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "btc-laptop-agents"
SPEC = ROOT / "resources" / f"{NAME}.spec"


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onefile", action="store_true", help="one self-extracting executable")
    ap.add_argument("--dist", type=Path, default=None,
                    help="output folder (default dist/, or dist/onefile/ with --onefile: on "
                    "Linux the one file and the one folder would have the same name)")
    args = ap.parse_args()
    if args.dist is None:
        args.dist = ROOT / "dist" / ("onefile" if args.onefile else "")
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        print("PyInstaller is not installed: python -m pip install -r requirements-build.txt",
              file=sys.stderr)
        return 2
    exe = NAME + (".exe" if os.name == "nt" else "")
    target = args.dist / (exe if args.onefile else NAME)
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    env = {**os.environ, "BTC_LAPTOP_ONEFILE": "1" if args.onefile else "0"}
    work = ROOT / "build" / ("onefile" if args.onefile else "onedir")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean",
                        "--log-level", "WARN", "--distpath", str(args.dist), "--workpath",
                        str(work), str(SPEC)], cwd=ROOT, env=env)
    took = time.monotonic() - t0
    if r.returncode != 0:
        print(f"build failed (exit {r.returncode}) after {took:.0f} s", file=sys.stderr)
        return r.returncode
    binary = target if args.onefile else target / exe
    if not binary.is_file():
        print(f"build finished but {binary} is missing", file=sys.stderr)
        return 1
    total = size_of(target)
    print(f"built {binary} in {took:.1f} s; {'one file' if args.onefile else 'one folder'} "
          f"{total / 1e6:.1f} MB")
    if not args.onefile:
        files = sorted((p for p in target.rglob("*") if p.is_file() and not p.is_symlink()),
                       key=lambda p: -p.stat().st_size)
        print("ten largest files:")
        for p in files[:10]:
            print(f"  {p.stat().st_size / 1e6:7.1f} MB  {p.relative_to(target)}")
    print(f"build_seconds={took:.1f} size_mb={total / 1e6:.1f} path={binary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
