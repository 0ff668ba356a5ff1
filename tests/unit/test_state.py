import json
from decimal import Decimal
from pathlib import Path

import pytest

from storage.logger import temporary_logging
from storage.paths import DataPaths, unique_corrupt_path
from storage.state import load_state, save_json_atomic


@pytest.fixture
def log_file(tmp_path):
    # setup_logging(tmp_path, console=False) for the test, then the previous setup comes back.
    with temporary_logging(tmp_path / "data", console=False) as path:
        yield path


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def make_state(**overrides) -> dict:
    state = {"cash": "10000.00", "position": {"qty": "0.002", "avg_px": 64250.5}, "seq": 7}
    state.update(overrides)
    return state


def test_save_then_load_round_trips(tmp_path):
    path = tmp_path / "paper" / "broker_state.json"

    save_json_atomic(path, make_state(fee=Decimal("0.000123456789")))

    assert load_state(path) == make_state(fee="0.000123456789")
    assert path.read_text(encoding="utf-8") == json.dumps(
        make_state(fee="0.000123456789"), indent=2, sort_keys=True
    )


def test_save_replaces_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "broker_state.json"
    save_json_atomic(path, make_state(seq=1))

    save_json_atomic(path, make_state(seq=2))

    assert load_state(path)["seq"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broker_state.json"]


def test_failed_serialisation_keeps_old_file(tmp_path):
    path = tmp_path / "broker_state.json"
    save_json_atomic(path, make_state(seq=1))

    with pytest.raises(TypeError):
        save_json_atomic(path, {1: "a", "b": 2})  # sort_keys cannot order int and str keys

    assert load_state(path)["seq"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broker_state.json"]


def test_missing_file_is_none(tmp_path):
    assert load_state(tmp_path / "nope.json") is None
    assert list(tmp_path.iterdir()) == []


def test_broken_json_is_moved_aside(tmp_path, log_file):
    path = tmp_path / "broker_state.json"
    path.write_text("{broken...", encoding="utf-8")

    assert load_state(path) is None

    assert not path.exists()
    assert (tmp_path / "broker_state.json.corrupt").read_text(encoding="utf-8") == "{broken..."


def test_second_corrupt_file_does_not_overwrite_the_first(tmp_path, log_file):
    path = tmp_path / "broker_state.json"
    path.write_text("{broken one", encoding="utf-8")
    load_state(path)
    path.write_text("{broken two", encoding="utf-8")

    assert load_state(path) is None

    assert (tmp_path / "broker_state.json.corrupt").read_text(encoding="utf-8") == "{broken one"
    assert (tmp_path / "broker_state.json.corrupt.1").read_text(encoding="utf-8") == "{broken two"


def test_corrupt_state_logs_a_critical_json_record(tmp_path, log_file):
    path = tmp_path / "broker_state.json"
    path.write_text("{broken...", encoding="utf-8")

    load_state(path)

    [record] = read_records(log_file)
    assert record["level"] == "CRITICAL"
    assert record["logger"] == "btc_laptop_agents.state"
    assert record["message"] == "state_file_corrupt"
    assert record["path"] == str(path)
    assert record["corrupt_path"] == str(tmp_path / "broker_state.json.corrupt")
    assert "JSONDecodeError" in record["error"]


@pytest.mark.parametrize(
    "content",
    [b"[1, 2, 3]", b'"just a string"', b"\xff\xfe not utf-8", b""],
    ids=["list", "string", "bad-utf8", "empty"],
)
def test_content_that_is_not_a_json_object_is_corrupt(tmp_path, log_file, content):
    path = tmp_path / "broker_state.json"
    path.write_bytes(content)

    assert load_state(path) is None

    assert (tmp_path / "broker_state.json.corrupt").read_bytes() == content


def test_failed_validation_is_corrupt(tmp_path, log_file):
    path = tmp_path / "broker_state.json"
    save_json_atomic(path, {"cash": "1"})

    def require_position(data):
        data["position"]

    assert load_state(path, validate=require_position) is None

    assert (tmp_path / "broker_state.json.corrupt").exists()
    [record] = read_records(log_file)
    assert record["error"].startswith("KeyError")


def test_passing_validation_returns_data(tmp_path):
    path = tmp_path / "broker_state.json"
    save_json_atomic(path, make_state())
    seen = []

    assert load_state(path, validate=seen.append) == make_state()
    assert seen == [make_state()]


def test_unique_corrupt_path_counts_up(tmp_path):
    path = tmp_path / "x.json"
    assert unique_corrupt_path(path) == tmp_path / "x.json.corrupt"

    (tmp_path / "x.json.corrupt").write_text("a")
    (tmp_path / "x.json.corrupt.1").write_text("b")

    assert unique_corrupt_path(path) == tmp_path / "x.json.corrupt.2"


def test_data_paths_layout(tmp_path):
    paths = DataPaths(tmp_path).ensure()

    assert paths.log_file == tmp_path / "logs" / "system.jsonl"
    assert paths.state_file == tmp_path / "paper" / "broker_state.json"
    assert paths.journal_file == tmp_path / "journal.sqlite3"
    assert all(p.is_dir() for p in (paths.logs_dir, paths.paper_dir, paths.runs_dir))
