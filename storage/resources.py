"""Files the report pages are built from (resources/templates, resources/vendor): found inside
the PyInstaller bundle when frozen, else in the project's checkout. Read-only."""
from __future__ import annotations

import sys
from pathlib import Path

TEMPLATES_DIR = "resources/templates"
VENDOR_DIR = "resources/vendor"


def resource_root() -> Path:
    """The bundle's unpack folder when frozen, else the project root (the parent of storage/)."""
    return Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parents[1]))


def resource_path(relative: str) -> Path:
    """The path of a shipped file or folder, e.g. "resources/templates"."""
    return resource_root() / relative
