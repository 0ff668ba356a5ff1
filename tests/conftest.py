"""Shared test helpers: a per-test data dir with logging routed into it."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Anything logged outside a test's own data dir lands in a throwaway folder, never in the
# user's real data dir.
os.environ.setdefault("BTC_LAPTOP_DATA_DIR", tempfile.mkdtemp(prefix="btc-laptop-tests-"))


@pytest.fixture
def data_dir(tmp_path):
    """A fresh data dir with the app's logging pointed at it (restored afterwards)."""
    from storage.logger import temporary_logging
    d = tmp_path / "data"
    d.mkdir()
    with temporary_logging(d, console=False):
        yield d


def read_log(data_dir: Path) -> list[dict]:
    path = data_dir / "logs" / "system.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
