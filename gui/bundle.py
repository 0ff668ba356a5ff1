"""Files the app ships with: found inside the PyInstaller bundle when frozen, else in the
project's checkout. Read-only; nothing is ever written here."""
from __future__ import annotations

import re
import sys
from pathlib import Path


def bundle_root() -> Path:
    return Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parents[1]))


def bundled_file(relative: str) -> Path:
    """The path of a shipped file, e.g. "README.md" or "resources/data/NOTICE.md"."""
    return bundle_root() / relative


def data_sources(notice: Path) -> list[tuple[str, str, str]]:
    """(file, source, licence) for each file described in a data NOTICE.md.

    The notice has a "## <file>" heading per file with "- Source: ..." and "- Licence: ..."
    bullets (a bullet may wrap onto indented lines). A missing or unreadable notice gives [].
    """
    try:
        text = notice.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    out: list[tuple[str, str, str]] = []
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        name, _, body = block.partition("\n")
        fields: dict[str, str] = {}
        for m in re.finditer(r"^- (Source|Licence|License): (.*(?:\n  .*)*)", body, flags=re.M):
            fields[m.group(1)[:4]] = " ".join(m.group(2).split())
        out.append((name.strip(), fields.get("Sour", "source not stated"),
                    fields.get("Lice", "licence not stated")))
    return out
