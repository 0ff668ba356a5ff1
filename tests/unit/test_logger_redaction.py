import io
import json
import logging
import os
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from storage.logger import (
    REDACTED,
    SensitiveDataFilter,
    add_secret,
    get_logger,
    logger,
    redact,
    redact_value,
    register_identifier,
    setup_logging,
    temporary_logging,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# A key-like token: 32 characters, letters and digits. (Until the long-token rule learnt to spare
# the app's own ids it redacted any 32-character run, so this used to be 32 digits.)
TOKEN_32 = "k3Y9pQ2wE7rT5uI1oP8aS4dF6gH0jL2z"


@pytest.fixture
def log_file(tmp_path):
    # setup_logging(tmp_path, console=False) for the test, then the previous setup comes back.
    with temporary_logging(tmp_path, console=False) as path:
        yield path


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def make_record(msg, args=None, **extra) -> logging.LogRecord:
    record = logging.LogRecord("btc_laptop_agents.test", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_long_token_in_message_is_redacted(log_file):
    logger.info(f"API Key: {TOKEN_32}")

    [record] = read_records(log_file)
    assert record["message"] == f"API Key: {REDACTED}"
    assert TOKEN_32 not in log_file.read_text(encoding="utf-8")


def test_json_line_has_timestamp_level_logger_and_message(log_file):
    get_logger("feed").warning("feed_stale", extra={"age_ms": 1500})

    [record] = read_records(log_file)
    assert record["level"] == "WARNING"
    assert record["logger"] == "btc_laptop_agents.feed"
    assert record["message"] == "feed_stale"
    assert record["age_ms"] == 1500
    assert datetime.fromisoformat(record["timestamp"]).utcoffset().total_seconds() == 0


def test_args_are_formatted_before_redaction(log_file):
    logger.info("connecting with key %s to %s", "abcdefghijklmnopqrstuvwxyz0123456789", "bitunix")

    [record] = read_records(log_file)
    assert record["message"] == f"connecting with key {REDACTED} to bitunix"


def test_filter_rewrites_msg_and_clears_args():
    record = make_record("token %s for %d", ("A" * 40, 7))

    assert SensitiveDataFilter().filter(record) is True

    assert record.msg == f"token {REDACTED} for 7"
    assert record.args is None


def test_extra_fields_are_redacted_recursively(log_file):
    logger.info(
        "order_sent",
        extra={
            "url": f"https://api.example/x?sign=deadbeef&ts=1&nonce={TOKEN_32}",
            "request": {"headers": {"api-key": "k-123", "nonce": "n1"}, "body": [TOKEN_32, 3]},
            "api_key": "plain-key",
            "qty": "0.001",
        },
    )

    [record] = read_records(log_file)
    assert record["url"] == f"https://api.example/x?sign={REDACTED}&ts=1&nonce={REDACTED}"
    assert record["request"] == {
        "headers": {"api-key": REDACTED, "nonce": "n1"},
        "body": [REDACTED, 3],
    }
    assert record["api_key"] == REDACTED
    assert record["qty"] == "0.001"


def test_traceback_is_redacted_and_exc_info_cleared(log_file):
    secret = "Z9" * 18
    try:
        raise RuntimeError(f"login failed for {secret}")
    except RuntimeError:
        logger.exception("login_failed")

    [record] = read_records(log_file)
    assert "RuntimeError: login failed for " + REDACTED in record["exc_info"]
    assert "Traceback (most recent call last)" in record["exc_info"]
    assert secret not in log_file.read_text(encoding="utf-8")


def test_filter_moves_traceback_to_exc_text():
    try:
        raise ValueError("password=hunter2")
    except ValueError:
        record = make_record("boom")
        record.exc_info = sys.exc_info()

    SensitiveDataFilter().filter(record)

    assert record.exc_info is None
    assert "ValueError: password=[REDACTED]" in record.exc_text
    assert "hunter2" not in record.exc_text


def test_stack_info_is_redacted(log_file):
    def leaky_frame():
        logger.info("here", stack_info=True, extra={"k": "k3Y9pQ2wE7rT5uI1oP8aS4dF6gH0jL2z"})

    leaky_frame()

    [record] = read_records(log_file)
    assert "leaky_frame" in record["stack_info"]
    assert REDACTED in record["stack_info"]
    assert TOKEN_32 not in log_file.read_text(encoding="utf-8")


def test_env_configured_secrets_are_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("BITUNIX_API_KEY", "short-key-1")
    monkeypatch.setenv("BITUNIX_API_SECRET", "s3cr3t-value")
    with temporary_logging(tmp_path) as log_file:
        logger.info("using short-key-1 and s3cr3t-value", extra={"ctx": ["s3cr3t-value!"]})

    [record] = read_records(log_file)
    assert record["message"] == f"using {REDACTED} and {REDACTED}"
    assert record["ctx"] == [f"{REDACTED}!"]


def test_too_short_env_secret_is_ignored(monkeypatch):
    monkeypatch.setenv("BITUNIX_API_KEY", "abc")
    record = make_record("abc abcd")

    SensitiveDataFilter().filter(record)

    assert record.msg == "abc abcd"


def test_add_secret_applies_to_existing_filters(log_file):
    logger.info("before: runtime-pass-7781")
    add_secret("runtime-pass-7781")
    logger.info("after: runtime-pass-7781")

    first, second = read_records(log_file)
    assert first["message"] == "before: runtime-pass-7781"
    assert second["message"] == f"after: {REDACTED}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api_key=abc123", f"api_key={REDACTED}"),
        ("APIKEY: abc123", f"APIKEY: {REDACTED}"),
        ("api-key = abc123 next", f"api-key = {REDACTED} next"),
        ('{"token": "t0k", "side": "BUY"}', f'{{"token": "{REDACTED}", "side": "BUY"}}'),
        ("{'password': 'hunter2'}", f"{{'password': '{REDACTED}'}}"),
        ('{"access_token":"a b c"}', f'{{"access_token":"{REDACTED}"}}'),
        ("secret_key=sk&Signature=sig", f"secret_key={REDACTED}&Signature={REDACTED}"),
        ("passphrase: pp, api_secret: as", f"passphrase: {REDACTED}, api_secret: {REDACTED}"),
        ("signal=long design=ok tokens=3", "signal=long design=ok tokens=3"),
    ],
)
def test_key_value_forms_keep_the_key(text, expected):
    assert SensitiveDataFilter().redact_text(text) == expected


def test_filter_is_on_every_handler(tmp_path):
    with temporary_logging(tmp_path, console=True):
        targets = [logger, logging.getLogger("websocket"), logging.getLogger("websockets")]
        handlers = [h for target in targets for h in target.handlers]
        assert len(logger.handlers) == 2
        assert logger.filters == []
        assert handlers
        for handler in handlers:
            assert any(isinstance(f, SensitiveDataFilter) for f in handler.filters), handler


def test_file_and_console_both_redacted_when_filtered_twice(tmp_path):
    console = io.StringIO()
    with temporary_logging(tmp_path):
        log_file = setup_logging(tmp_path, console=True, console_stream=console)
        logger.info("key %s", TOKEN_32, extra={"auth": {"token": "tk"}})

    [record] = read_records(log_file)
    assert record["message"] == f"key {REDACTED}"
    assert record["auth"] == {"token": REDACTED}
    line = console.getvalue().rstrip()
    assert f"btc_laptop_agents: key {REDACTED}" in line
    assert "auth={'token': '[REDACTED]'}" in line and "'tk'" not in line


def test_filter_is_idempotent():
    flt = SensitiveDataFilter()
    record = make_record("api_key=%s", ("abc",), ctx={"sign": "x"})

    flt.filter(record)
    once = (record.msg, record.ctx)
    flt.filter(record)

    assert (record.msg, record.ctx) == once == (f"api_key={REDACTED}", {"sign": REDACTED})


def test_child_logger_record_is_redacted(log_file):
    get_logger("execution.worker").error("signed with signature=%s", "abcdef")

    [record] = read_records(log_file)
    assert record["logger"] == "btc_laptop_agents.execution.worker"
    assert record["message"] == f"signed with signature={REDACTED}"


def test_websocket_library_logs_warnings_only_redacted(log_file):
    logging.getLogger("websocket").info("ping")
    logging.getLogger("websockets.client").warning("handshake with %s failed", TOKEN_32)

    [record] = read_records(log_file)
    assert record["logger"] == "websockets.client"
    assert record["message"] == f"handshake with {REDACTED} failed"


def test_unformattable_args_pass_through_with_a_note(log_file):
    logger.info("%d orders for " + TOKEN_32, "not-a-number")

    [record] = read_records(log_file)
    assert "could not be formatted" in record["message"]
    assert "not-a-number" in record["message"]
    assert TOKEN_32 not in record["message"]


def test_broken_record_never_raises():
    class Unprintable:
        def __str__(self):
            raise RuntimeError("no")

    class ExplodingDict(dict):
        def items(self):
            raise RuntimeError("boom")

    unprintable = make_record("x", odd=Unprintable())
    exploding = make_record("api_key=abc " + TOKEN_32, ctx=ExplodingDict(a=1))

    assert SensitiveDataFilter().filter(unprintable) is True
    assert SensitiveDataFilter().filter(exploding) is True

    assert unprintable.odd == "[UNPRINTABLE]"
    assert exploding.msg.startswith("[log record could not be redacted: RuntimeError]")
    assert exploding.msg.endswith(f"api_key={REDACTED} {REDACTED}")
    assert not hasattr(exploding, "ctx")


def test_import_logs_redacted_json_line_from_a_fresh_process(tmp_path):
    env = {**os.environ, "BTC_LAPTOP_DATA_DIR": str(tmp_path)}
    code = f"from storage.logger import logger; logger.info('API Key: {TOKEN_32}')"

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    log_file = tmp_path / "logs" / "system.jsonl"
    [record] = read_records(log_file)
    assert record["message"] == f"API Key: {REDACTED}"
    assert record["level"] == "INFO"
    assert TOKEN_32 not in log_file.read_text(encoding="utf-8")
    assert TOKEN_32 not in result.stderr


# --------------------------------------------------------------------------- what is spared

RUN_ID = "20261202-163608-a1b2c3"
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key=abc123 monkey=1 keyboard=2", f"key={REDACTED} monkey=1 keyboard=2"),
        ("order_id=o-1 run_id=r-2 kind=market", "order_id=o-1 run_id=r-2 kind=market"),
        ("token bucket refilled; Token refresh failed",) * 2,
        ("token abc12345 sent", f"token {REDACTED} sent"),
        ("Authorization: Bearer abc.def, x=1", f"Authorization: {REDACTED}"),
        ("hdr Bearer abc basic checks", f"hdr Bearer {REDACTED} basic checks"),
        ("Basic dXNlcjpwYXNz", f"Basic {REDACTED}"),
        ("/tmp/Bearer abcdefgh12345678/x.csv", f"/tmp/Bearer {REDACTED}/x.csv"),
        ("/tmp/token=XYZ123abc/file.csv", f"/tmp/token={REDACTED}/file.csv"),
        (
            "https://h/x?accessToken=a1&apiKey=b2&n=3",
            f"https://h/x?accessToken={REDACTED}&apiKey={REDACTED}&n=3",
        ),
        (
            "AWS_SECRET_ACCESS_KEY=zz aws-access-key-id: AKIA1",
            f"AWS_SECRET_ACCESS_KEY={REDACTED} aws-access-key-id: {REDACTED}",
        ),
        ("btc_perp_dydx_1m_quotes_20260101.csv", "btc_perp_dydx_1m_quotes_20260101.csv"),
        ("WebSocketConnectionClosedException", "WebSocketConnectionClosedException"),
        (TOKEN_32.replace("k3", "12"), f"{REDACTED}"),
        ("n=12345678901234567890123456789012", "n=12345678901234567890123456789012"),
        (f"run {RUN_ID} order {RUN_ID}-17", f"run {RUN_ID} order {RUN_ID}-17"),
        (f"sha256={SHA}", f"sha256={SHA}"),
        (f"file {SHA}", f"file {REDACTED}"),
    ],
)
def test_redact_covers_named_forms_and_spares_plain_text(text, expected):
    assert redact(text) == expected


def test_registered_ids_survive_the_long_token_rule_but_not_named_forms():
    run_id = "Ab3_xY9z-Qw8eR7tY6uI5oP4aS3dF2gH1jK0lZxC"
    digest = "0f" + SHA[2:]
    before = redact(f"/runs/{run_id}/x {digest}")
    assert run_id not in before and digest not in before  # random-looking: taken for keys

    register_identifier(run_id)
    register_identifier(digest)

    text = f"run {run_id} order {run_id}-00017 in /runs/{run_id}/fills.csv hash {digest}"
    assert redact(text) == text
    assert redact(f"token={run_id} Bearer {run_id}") == f"token={REDACTED} Bearer {REDACTED}"


def test_redact_value_keeps_numbers_and_spares_hash_fields():
    value = {
        "file_sha256": SHA, "replay_hash": SHA, "other": SHA,
        "pnl": Decimal("1.50"), "n": 3, "ok": True, "x": None,
        "settings": {"API-Key": "k", "Authorization": "Bearer abc", "passwd": 7},
        "path": Path("/data/runs"), "leaky": Path("/data/Bearer abcdefgh12345678/q.csv"),
    }

    out = redact_value(value)

    assert out["file_sha256"] == out["replay_hash"] == SHA
    assert out["other"] == REDACTED
    assert out["pnl"] == Decimal("1.50") and isinstance(out["pnl"], Decimal)
    assert (out["n"], out["ok"], out["x"]) == (3, True, None)
    assert out["settings"] == {"API-Key": REDACTED, "Authorization": REDACTED, "passwd": REDACTED}
    assert out["path"] is value["path"]
    assert out["leaky"] == f"/data/Bearer {REDACTED}/q.csv"


def test_extra_fields_with_ids_are_logged_intact(log_file):
    logger.info("order_filled", extra={"run_id": RUN_ID, "order_id": f"{RUN_ID}-00017",
                                       "report_dir": f"/data/runs/{RUN_ID}", "replay_sha256": SHA})

    [record] = read_records(log_file)
    assert record["run_id"] == RUN_ID
    assert record["order_id"] == f"{RUN_ID}-00017"
    assert record["report_dir"] == f"/data/runs/{RUN_ID}"
    assert record["replay_sha256"] == SHA


@pytest.mark.parametrize("text,secret", [
    ("auth eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P x",
     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P"),
    ("key sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
    ("google AIzaSyA1b2C3d4E5f6G7h8I9j0K-L_mNoPqRsTu", "SyA1b2C3d4E5f6G7h8I9j0K"),
    ("https://user:hunter2x@host/path", "hunter2x"),
    ("main.py --api-secret abcdefgh12345678 --symbol X", "abcdefgh12345678"),
    ("the password hunter22 was typed", "hunter22"),
    ("--symbol sk_live_abcdefghijklmnopqrstuvwxyz0123", "abcdefghijklmnopqrstuvwxyz0123"),
])
def test_credentials_known_by_their_shape_are_redacted(text, secret):
    from storage.logger import redact
    assert secret not in redact(text)


@pytest.mark.parametrize("text", ["password is required", "token bucket", "--max-restarts 5",
                                  "--keyboard layout", "https://example.com/a:b"])
def test_ordinary_words_near_those_shapes_survive(text):
    from storage.logger import redact
    assert redact(text) == text
