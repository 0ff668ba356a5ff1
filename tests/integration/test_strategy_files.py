"""Strategies a trader writes: the README's example runs from its own file; a broken file is
refused before anything starts, with the file, the line and the problem (exit 2)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from trading.runtime.strategies import (StrategyError, load_strategy, parse_param_args,
                                        parse_param_value)

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    (block,) = [b for b in blocks if "class Breakout" in b]
    return block


def run_main(*args, data_dir: Path, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--headless", "--quiet",
                           "--data-dir", str(data_dir), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_the_readme_example_runs_from_its_own_file_and_the_report_names_it(tmp_path):
    f = tmp_path / "my_breakout.py"
    f.write_text(readme_example(), encoding="utf-8")
    proc = run_main("--source", "replay", "--speed", "max", "--duration", "240",
                    "--strategy", f"{f}:Breakout", "--strategy-param", "lookback=5",
                    "--no-watchdog", data_dir=tmp_path / "data")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "data" / "runs" / "latest" / "final_report.json")
                        .read_text())
    assert report["strategy"] == "breakout" and report["strategy_class"] == "Breakout"
    assert report["strategy_file"] == str(f)
    assert report["strategy_params"] == {"lookback": 5, "hold": 5}
    import hashlib
    assert report["strategy_sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert report["fills"], "the example traded on the bundled day"
    import sqlite3
    db = sqlite3.connect(tmp_path / "data" / "journal.sqlite3")
    (settings_json,) = db.execute("SELECT settings_json FROM sessions").fetchone()
    journalled = json.loads(settings_json)
    assert journalled["strategy_sha256"] == report["strategy_sha256"]
    assert journalled["strategy.lookback"] == 5


@pytest.mark.parametrize("mutate, line, problem", [
    (lambda src: src.replace("        return None\n\n    def state", "        return None:\n\n"
                             "    def state", 1), None, "syntax error"),
    (lambda src: src.replace("    def restore(self, state):", "    def _restore(self, state):"),
     None, "lacks the strategy method(s) restore"),
    (lambda src: src + "\nraise RuntimeError('boom at import')\n", None,
     "importing it raised RuntimeError: boom at import"),
])
def test_a_broken_file_is_refused_with_file_line_and_exit_2(tmp_path, mutate, line, problem):
    src = readme_example()
    bad = mutate(src)
    assert bad != src
    f = tmp_path / "broken.py"
    f.write_text(bad, encoding="utf-8")
    with pytest.raises(StrategyError) as e:
        load_strategy(f"{f}:Breakout")
    assert problem in str(e.value) and e.value.line is not None
    assert f"{f}, line {e.value.line}" in str(e.value)
    # the line is where the problem is
    text_line = bad.splitlines()[e.value.line - 1]
    assert ("return None:" in text_line or "class Breakout" in text_line
            or "boom" in text_line), text_line
    proc = run_main("--strategy", f"{f}:Breakout", data_dir=tmp_path / "data", timeout=60)
    assert proc.returncode == 2
    assert f"{f}, line {e.value.line}" in proc.stderr and problem in proc.stderr
    assert not (tmp_path / "data" / "runs").exists()  # nothing started


def test_bad_parameters_and_references_are_refused_by_name(tmp_path):
    f = tmp_path / "b.py"
    f.write_text(readme_example(), encoding="utf-8")
    for params, words in (({"lookback": "1"}, "bad parameters: lookback: must be 2..500"),
                          ({"lookback": "x"}, "bad parameter lookback: expected an integer"),
                          ({"nope": "1"}, "unknown parameter 'nope'")):
        with pytest.raises(StrategyError, match=re.escape(words)):
            load_strategy(f"{f}:Breakout", params)
    with pytest.raises(StrategyError, match="no class Nope"):
        load_strategy(f"{f}:Nope")
    with pytest.raises(StrategyError, match="no such file"):
        load_strategy(f"{tmp_path / 'missing.py'}:X")
    with pytest.raises(StrategyError, match="not a built-in strategy"):
        load_strategy("moon_shot")
    assert load_strategy(str(f)).class_name == "Breakout"  # one class: no need to name it
    proc = run_main("--strategy", "sma_cross", "--strategy-param", "fast=40",
                    data_dir=tmp_path / "d", timeout=60)
    assert proc.returncode == 2 and "need 1 <= fast < slow" in proc.stderr
    proc = run_main("--strategy-param", "oops", data_dir=tmp_path / "d", timeout=60)
    assert proc.returncode == 2 and "expected name=value, got 'oops'" in proc.stderr


@settings(max_examples=300, deadline=None)
@given(default=st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False,
                                                                allow_infinity=False),
                         st.booleans(), st.text(max_size=8)),
       text=st.text(max_size=12))
def test_a_parameter_is_typed_like_its_default_or_refused_by_name(default, text):
    try:
        v = parse_param_value("p", text, default)
    except ValueError as e:
        assert str(e).startswith("p: ")
        return
    assert type(v) is type(default)
    if isinstance(v, float):
        assert v == v and abs(v) != float("inf")


@given(st.lists(st.tuples(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
                          st.text(max_size=6)), max_size=5))
def test_name_value_arguments_parse_back(pairs):
    items = [f"{k}={v}" for k, v in pairs]
    assert parse_param_args(items) == dict(pairs)
