"""Where the app keeps its files: logs, paper-broker state, the journal and run reports."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

APP_NAME = "btc-laptop-agents"
DATA_DIR_ENV = "BTC_LAPTOP_DATA_DIR"


def default_data_dir() -> Path:
    """Return the data dir: $BTC_LAPTOP_DATA_DIR if set, else the per-user platform data dir."""
    override = os.environ.get(DATA_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True)
class DataPaths:
    """Every file and folder under one data dir; build with DataPaths(root)."""

    root: Path
    logs_dir: Path = field(init=False)
    log_file: Path = field(init=False)
    paper_dir: Path = field(init=False)
    state_file: Path = field(init=False)
    journal_file: Path = field(init=False)
    runs_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        root = Path(self.root)
        # frozen: derived fields are set once here and never change
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "logs_dir", root / "logs")
        object.__setattr__(self, "log_file", root / "logs" / "system.jsonl")
        object.__setattr__(self, "paper_dir", root / "paper")
        object.__setattr__(self, "state_file", root / "paper" / "broker_state.json")
        object.__setattr__(self, "journal_file", root / "journal.sqlite3")
        object.__setattr__(self, "runs_dir", root / "runs")

    @classmethod
    def default(cls) -> DataPaths:
        """Build the paths for default_data_dir()."""
        return cls(default_data_dir())

    def ensure(self) -> DataPaths:
        """Create the data dir and its sub-folders if missing; return self."""
        for folder in (self.root, self.logs_dir, self.paper_dir, self.runs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def unique_corrupt_path(path: Path) -> Path:
    """Return an unused name for a corrupt file: <name>.corrupt, then .corrupt.1, ..."""
    path = Path(path)
    candidate = path.with_name(path.name + ".corrupt")
    n = 0
    # lexists: a dangling symlink still occupies the name
    while os.path.lexists(candidate):
        n += 1
        candidate = path.with_name(f"{path.name}.corrupt.{n}")
    return candidate
