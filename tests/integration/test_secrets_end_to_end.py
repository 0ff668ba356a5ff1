"""Secrets typed where they do not belong never reach any output; the app's own ids always do.

Hypothesis draws a secret and where to put it (the replay file's path, the data dir's path,
`$BTC_LAPTOP_DATA_DIR`, a rejected `--symbol` or `--chaos` value, a settings file), runs the
real `main.py` and reads back everything it wrote: stdout, stderr, system.jsonl,
final_report.json, summary.html, fills.csv, the state file and every text in the journal.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT

PY = sys.executable
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
KEY = st.text(alphabet=ALNUM, min_size=32, max_size=48).filter(
    lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s))
PASSWORD = st.text(alphabet=ALNUM + "!#%", min_size=8, max_size=20)
FORMS = st.one_of(
    KEY.map(lambda k: (f"Bearer {k}", k)),
    KEY.map(lambda k: (f"token={k}", k)),
    KEY.map(lambda k: (k, k)),  # a bare key-like string
    st.tuples(st.sampled_from(["password", "PASSWD", "api_key", "Secret", "private_key",
                               "AWS_SECRET_ACCESS_KEY", "key"]),
              st.sampled_from(["=", ":", " = ", ": "]), PASSWORD)
    .map(lambda t: (f"{t[0]}{t[1]}{t[2]}", t[2])),
)
PLACES = st.sampled_from(["replay_dir", "data_dir", "env_data_dir", "symbol", "chaos",
                          "settings"])


def _static_assets() -> list[str]:
    """The pages' inlined static files (the chart library, the page's own CSS and JS): the
    same bytes in every page, holding no input of the run -- a digit run in the minified
    library is no leak."""
    from storage import report_pages
    return [t for t in (report_pages._chart_library_text(), str(report_pages._asset("report.js")),
                        str(report_pages._asset("report.css"))) if t]


def _outputs(tmp: Path, proc: subprocess.CompletedProcess) -> dict[str, str]:
    out = {"stdout": proc.stdout, "stderr": proc.stderr}
    for p in tmp.rglob("*"):
        if p.is_file() and p.suffix in (".jsonl", ".json", ".html", ".csv") \
                and "settings" not in p.name and "market" not in p.name:
            text = p.read_text(encoding="utf-8", errors="replace")
            if p.suffix == ".html":
                for asset in _static_assets():
                    text = text.replace(asset, "")
            out[str(p.relative_to(tmp))] = text
        if p.is_file() and p.name.endswith(".jsonl.gz"):  # the run's recording
            import gzip
            out[str(p.relative_to(tmp))] = gzip.decompress(p.read_bytes()).decode(
                "utf-8", "replace")
        if p.is_file() and p.name == "journal.sqlite3":
            con = sqlite3.connect(p)
            try:
                texts = []
                for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                    for row in con.execute(f"SELECT * FROM {table}"):
                        texts += [str(v) for v in row if isinstance(v, str)]
                out["journal"] = "\n".join(texts)
            finally:
                con.close()
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(form=FORMS, place=PLACES)
def test_a_secret_put_anywhere_reaches_no_output_and_ids_stay_readable(form, place):
    text, secret = form
    tmp = Path(tempfile.mkdtemp(prefix="secrets-e2e-"))
    try:
        data_dir = tmp / "data"
        env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
        env.pop("BTC_LAPTOP_LOCK_FD", None)
        args = ["--headless", "--source", "replay", "--speed", "max", "--duration", "10",
                "--seed", "2"]
        run_id = "my-own-run-id-" + "x1" * 13  # a 40-character id of the project's own
        args += ["--run-id", run_id]
        if place == "replay_dir":
            d = tmp / text
            d.mkdir()
            src = ROOT / "resources" / "data" / "btc_perp_dydx_1m_quotes_20260101.csv"
            shutil.copy(src, d / "market.csv")
            args += ["--replay-file", str(d / "market.csv")]
        if place == "data_dir":
            data_dir = tmp / text / "data"
        if place == "env_data_dir":
            data_dir = tmp / text / "envdata"
            env["BTC_LAPTOP_DATA_DIR"] = str(data_dir)
        else:
            args += ["--data-dir", str(data_dir)]
        if place == "symbol":
            args += ["--symbol", text]
        if place == "chaos":
            args += ["--chaos", text]
        if place == "settings":
            # the window's settings file: a secret in a path it refuses must not be echoed
            cfg = tmp / "config"
            cfg.mkdir()
            (cfg / "settings.json").write_text(
                '{"replay_file": "/nonexistent/' + text + '/x.csv"}')
            env["BTC_LAPTOP_CONFIG_DIR"] = str(cfg)
            code = ("import sys; sys.path.insert(0, %r); from storage.logger import "
                    "setup_logging; setup_logging(__import__('pathlib').Path(%r)); "
                    "from gui.settings_dialog import load_settings; s, msg = load_settings(); "
                    "print(msg)" % (str(ROOT), str(data_dir)))
            proc = subprocess.run([PY, "-c", code], capture_output=True, text=True,
                                  timeout=120, cwd=tmp, env=env)
        else:
            proc = subprocess.run([PY, str(ROOT / "main.py"), *args], capture_output=True,
                                  text=True, timeout=120, cwd=tmp, env=env)
        outs = _outputs(tmp, proc)
        for name, body in outs.items():
            assert secret not in body, f"secret {secret!r} ({place}) leaked into {name}"
        if place in ("replay_dir", "data_dir", "env_data_dir"):
            assert proc.returncode == 0, proc.stderr
            report = next(v for k, v in outs.items() if k.endswith("latest/final_report.json"))
            assert run_id in report and f"{run_id}-00001" in outs["journal"]  # ids intact
            assert run_id in outs["stdout"]
            log = next(v for k, v in outs.items() if k.endswith("system.jsonl"))
            assert run_id in log and "[REDACTED]" not in log.split(run_id)[0][-20:]
        elif place in ("symbol", "chaos"):
            assert proc.returncode == 2 and proc.stderr
        else:
            assert "could not be used" in proc.stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
