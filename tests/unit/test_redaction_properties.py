"""Property tests: no secret leaves the app by any way out; the app's own ids leave intact.

Each example that touches disk makes its own temporary folder (hypothesis runs many examples
inside one test call, so function-scoped pytest fixtures such as tmp_path would be shared).
"""

import csv
import hashlib
import io
import json
import logging
import tempfile
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from storage.logger import (
    REDACTED,
    SensitiveDataFilter,
    add_secret,
    logger,
    redact,
    redact_value,
    register_identifier,
    setup_logging,
    temporary_logging,
)
from storage.reports import (
    FILLS_CSV_NAME,
    FINAL_REPORT_NAME,
    SUMMARY_HTML_NAME,
    read_report,
    render_summary_html,
    write_run_reports,
)

# No example database: nothing is written into the working tree.
FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
ALNUM = LETTERS + DIGITS
PASSWORD_CHARS = ALNUM + "!@#$%^*_+-.~"

NAMES = (
    "key", "api_key", "apikey", "api-key", "secret", "api_secret", "secret_key",
    "client_secret", "token", "access_token", "refresh_token", "auth_token", "passwd",
    "password", "pwd", "passphrase", "private_key", "private-key", "aws_secret_access_key",
    "aws_access_key_id", "signature", "sign",
)
# Each name also with '-' or nothing between its words: api-key, apikey, accesstoken ...
NAME_VARIANTS = sorted({v for n in NAMES for v in (n, n.replace("_", "-"), n.replace("_", ""))})
SEPARATORS = ("=", ":", ": ", " = ", " =", ":  ")

# Text the app writes that looks nothing like a secret; all of it must come out unchanged.
PLAIN_WORDS = (
    "token bucket refilled", "signal=long", "design=ok", "tokens=3", "monkey=1", "keyboard",
    "kind=market", "basic checks passed", "Token refresh failed", "order_id=o-17",
    "WebSocketConnectionClosedException", "the key point", "sign of the move",
    "btc_perp_dydx_1m_quotes_20260101.csv", "/home/user/.local/share/btc-laptop-agents/runs",
    "/Users/JohnSmith/MyData2024/BTCRuns/Run1/replay.csv", "12345678901234567890123456789012",
)

# The report page's own text (template, CSS): a generated secret that happens to be part of
# it could not be told from a leak.
_BASELINE_PAGE = render_summary_html(
    report={"run_id": "r", "status": "success"}, fills=[], candles=[], equity=[],
    settings={}, feed={},
)


def random_case(text: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda flips: "".join(c.upper() if f else c.lower() for c, f in zip(text, flips))
    )


@st.composite
def key_like(draw, min_size=16, max_size=64):
    """Random API-key-like token: letters and digits, both present."""
    body = draw(st.text(alphabet=ALNUM, min_size=min_size - 2, max_size=max_size - 2))
    letter = draw(st.sampled_from(LETTERS))
    digit = draw(st.sampled_from(DIGITS))
    chars = list(body + letter + digit)
    order = draw(st.permutations(range(len(chars))))
    return "".join(chars[i] for i in order)


@st.composite
def password(draw):
    """A password of 8-24 characters with a letter and a digit in it."""
    body = draw(st.text(alphabet=PASSWORD_CHARS, min_size=6, max_size=22))
    return draw(st.sampled_from(LETTERS)) + body + draw(st.sampled_from(DIGITS))


names = st.sampled_from(NAME_VARIANTS).flatmap(random_case)


@st.composite
def secret_form(draw):
    """Return (text carrying a secret, the secret)."""
    kind = draw(st.sampled_from((
        "bearer", "basic", "token", "authorization", "authorization_bare", "kv", "kv_quoted",
        "json", "url", "path_kv", "path_bearer", "long",
    )))
    if kind == "long":
        secret = draw(key_like(32, 64))
        return f"nonce {secret}", secret
    secret = draw(key_like() if kind in ("bearer", "basic", "token", "authorization",
                                        "authorization_bare", "path_bearer")
                  else st.one_of(key_like(), password()))
    name = draw(names)
    if kind in ("bearer", "basic", "token"):
        return f"{draw(random_case(kind))} {secret}", secret
    if kind == "authorization":
        return f"{draw(random_case('authorization'))}: Bearer {secret}", secret
    if kind == "authorization_bare":
        return f"{draw(random_case('authorization'))}={secret}", secret
    if kind == "kv":
        return f"{name}{draw(st.sampled_from(SEPARATORS))}{secret}", secret
    if kind == "kv_quoted":
        q = draw(st.sampled_from("\"'"))
        return f"{q}{name}{q}{draw(st.sampled_from((': ', ':', ' : ')))}{q}{secret}{q}", secret
    if kind == "json":
        return json.dumps({name: secret, "side": "BUY"}), secret
    if kind == "url":
        return f"https://api.example.com/v1/orders?{name}={secret}&a=1", secret
    if kind == "path_kv":
        return f"/tmp/{name}={secret}/file.csv", secret
    return f"/tmp/{draw(random_case('bearer'))} {secret}/x.csv", secret


@st.composite
def project_ids(draw):
    """The app's own ids: a generated run id, a registered 40-char run id, order ids, a hash."""
    stamp = draw(st.text(alphabet=DIGITS, min_size=14, max_size=14))
    suffix = draw(st.text(alphabet="0123456789abcdef", min_size=6, max_size=6))
    generated = f"{stamp[:8]}-{stamp[8:]}-{suffix}"
    registered = draw(st.text(alphabet=ALNUM + "-_", min_size=40, max_size=40))
    digest = hashlib.sha256(draw(st.binary(min_size=1, max_size=32))).hexdigest()
    register_identifier(registered)
    register_identifier(digest)
    n = draw(st.integers(min_value=1, max_value=99999))
    return {
        "run_id": generated,
        "registered_run_id": registered,
        "order_id": f"{generated}-{n}",
        "registered_order_id": f"{registered}-{n:05d}",
        "file_sha256": digest,
    }


def assume_distinct(secrets, keep):
    for secret in secrets:
        assume(secret not in _BASELINE_PAGE)
        assume(not any(secret in k for k in keep))
        assume(REDACTED not in secret and secret not in REDACTED)


def assert_clean(text, secrets, keep):
    for secret in secrets:
        assert secret not in text, f"secret {secret!r} leaked"
    for value in keep:
        assert value in text, f"{value!r} was altered"


@contextmanager
def captured_logging():
    """Log to a fresh temporary data dir and a console buffer; put the old setup back after."""
    with tempfile.TemporaryDirectory() as tmp, temporary_logging(Path(tmp)):
        console = io.StringIO()
        log_file = setup_logging(Path(tmp), console=True, console_stream=console)
        yield log_file, console


# --------------------------------------------------------------------------- logging


@FAST
@given(forms=st.lists(secret_form(), min_size=1, max_size=3), ids=project_ids(),
       word=st.sampled_from(PLAIN_WORDS))
def test_log_lines_carry_no_secret_and_keep_ids(forms, ids, word):
    secrets = [s for _, s in forms]
    keep = [*ids.values(), word]
    assume_distinct(secrets, keep)
    texts = [t for t, _ in forms]
    id_text = " ".join(f"{k}={v}" for k, v in ids.items())

    with captured_logging() as (log_file, console):
        for text in texts:
            # message, %-args, extra fields (nested), Path objects, exception text
            logger.info(f"{id_text} {word} | {text}")
            logger.warning("%s %s | %s", id_text, word, text)
            logger.info(
                "order_sent",
                extra={
                    **ids,
                    "note": word,
                    "request": {"headers": [text, {"x": text}], "ids": list(ids.values())},
                    "replay_path": Path("/data") / text / "quotes.csv",
                    "report_dir": f"/data/runs/{ids['registered_run_id']}",
                },
            )
            try:
                raise RuntimeError(f"{id_text} {word} | {text}")
            except RuntimeError:
                logger.exception("request_failed", extra={"run_id": ids["run_id"]})
        file_text = log_file.read_text(encoding="utf-8")
        console_text = console.getvalue()

    records = [json.loads(line) for line in file_text.splitlines()]
    assert len(records) == 4 * len(texts)
    for out in (file_text, console_text):
        assert_clean(out, secrets, keep)
        assert_clean(out, [], [f"/data/runs/{ids['registered_run_id']}"])
    for record in records[2::4]:
        for key, value in ids.items():
            assert record[key] == value


@FAST
@given(form=secret_form(), ids=project_ids())
def test_filter_applied_twice_gives_the_same_record(form, ids):
    text, secret = form
    assume_distinct([secret], ids.values())
    record = logging.LogRecord("btc_laptop_agents.t", logging.INFO, __file__, 1,
                               "%s " + " ".join(ids.values()), (text,), None)
    record.ctx = {"a": [text, 3, Decimal("1.5")], **ids}
    flt = SensitiveDataFilter()

    flt.filter(record)
    once = (record.getMessage(), record.ctx)
    flt.filter(record)

    assert (record.getMessage(), record.ctx) == once
    assert_clean(repr(once), [secret], ids.values())
    assert record.ctx["a"][1:] == [3, Decimal("1.5")]


# --------------------------------------------------------------------------- redact_value


@FAST
@given(forms=st.lists(secret_form(), min_size=1, max_size=4), ids=project_ids(),
       words=st.lists(st.sampled_from(PLAIN_WORDS), max_size=3),
       number=st.decimals(allow_nan=False, allow_infinity=False, places=8))
def test_redact_value_over_report_like_dicts(forms, ids, words, number):
    secrets = [s for _, s in forms]
    texts = [t for t, _ in forms]
    keep = [*ids.values(), *words]
    assume_distinct(secrets, keep)
    value = {
        **ids,
        "pnl": number, "fills": 3, "ok": True, "ratio": 0.25, "none": None,
        "source": texts[0],
        "settings": {"api_key": secrets[0], "password": secrets[-1], "notes": words},
        "events": [{"kind": "error", "message": t, "run_id": ids["run_id"]} for t in texts],
        "paths": (Path("/data") / texts[-1], f"/runs/{ids['registered_run_id']}/final_report.json"),
    }

    out = redact_value(value)

    assert_clean(repr(out), secrets, keep)
    assert out["pnl"] == number and isinstance(out["pnl"], Decimal)
    assert (out["fills"], out["ok"], out["ratio"], out["none"]) == (3, True, 0.25, None)
    assert out["settings"]["api_key"] == REDACTED
    assert out["settings"]["notes"] == words
    for key, v in ids.items():
        assert out[key] == v
    assert redact_value(out) == out


@FAST
@given(ids=project_ids(), words=st.lists(st.sampled_from(PLAIN_WORDS), max_size=4),
       numbers=st.lists(st.one_of(st.integers(), st.floats(allow_nan=False)), max_size=4))
def test_text_without_secrets_is_left_alone(ids, words, numbers):
    text = " ".join([*ids.values(), *words, *map(str, numbers)])
    text += f" /data/runs/{ids['registered_run_id']}/fills.csv {ids['file_sha256']}.csv"
    assert redact(text) == text


# --------------------------------------------------------------------------- reports


def _fill(order_id, text):
    return {
        "order_id": order_id, "seq": 1, "side": "BUY", "qty": Decimal("0.010"),
        "reason": text, "signal_ts": 1_735_736_460_000, "fill_ts": 1_735_736_460_312,
        "latency_ms": 312, "fill_px": 94001.5, "bid": 94001.4, "ask": 94001.5,
        "fee": Decimal("0.56400900"), "realized_pnl": Decimal("0"),
        "position_after": Decimal("0.010"), "cash_after": Decimal("9999.43599100"),
    }


@SLOW
@given(forms=st.lists(secret_form(), min_size=1, max_size=3), ids=project_ids())
def test_report_files_carry_no_secret_and_keep_ids(forms, ids):
    secrets = [s for _, s in forms]
    texts = [t for t, _ in forms]
    keep = list(ids.values())
    assume_distinct(secrets, keep)
    report = {
        "run_id": ids["registered_run_id"], "status": "error", "source": f"replay {texts[0]}",
        "error": f"feed failed: {texts[-1]}", "pnl_absolute": Decimal("12.34"),
        "starting_equity": Decimal("10000"), "replay_sha256": ids["file_sha256"],
        "generated_run_id": ids["run_id"], "data_dir": Path("/data") / texts[0],
    }
    fills = [_fill(ids["registered_order_id"], texts[0]), _fill(ids["order_id"], "ema_cross")]
    candles = [{"ts": 1_735_736_400_000 + i * 60_000, "open": 94000.0, "high": 94010.0,
                "low": 93990.0, "close": 94005.0, "volume": 1.5} for i in range(5)]
    equity = [{"ts": 1_735_736_400_000 + i * 60_000, "equity": 10000.0 + i} for i in range(5)]

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = write_run_reports(
            Path(tmp), ids["registered_run_id"], report=report, fills=fills, candles=candles,
            equity=equity,
            settings={"api_key": secrets[0], "replay_file": f"/data/{texts[-1]}/quotes.csv",
                      "run_id": ids["run_id"]},
            feed={"url": f"wss://example.com/ws?{texts[0]}", "reconnects": 2},
            segments=[{"run_id": ids["registered_run_id"], "note": texts[-1]}],
            events=[{"ts": 1_735_736_460_000, "kind": "error", "message": t} for t in texts],
        )
        outputs = {name: (run_dir / name).read_text(encoding="utf-8")
                   for name in (FINAL_REPORT_NAME, FILLS_CSV_NAME, SUMMARY_HTML_NAME)}
        stored = read_report(run_dir)
        rows = list(csv.DictReader(io.StringIO(outputs[FILLS_CSV_NAME])))

    for name, text in outputs.items():
        assert_clean(text, secrets, [ids["registered_run_id"]])
    assert_clean(outputs[FINAL_REPORT_NAME], [], [ids["file_sha256"], ids["run_id"]])
    assert stored["run_id"] == ids["registered_run_id"]
    assert stored["replay_sha256"] == ids["file_sha256"]
    # Decimals are written exactly, as strings, like before redaction was wired in
    assert stored["pnl_absolute"] == "12.34" and stored["starting_equity"] == "10000"
    assert [r["order_id"] for r in rows] == [ids["registered_order_id"], ids["order_id"]]
    assert rows[0]["fee"] == "0.56400900" and rows[0]["qty"] == "0.010"


# --------------------------------------------------------------------------- robustness

# Characters the rules react to, so that generated text hits them often.
RULE_ALPHABET = st.sampled_from(
    list("akeyAKEYtonsecrpwdigbBaruhzTZ019+/=:_-. \t\n\"'\\[]{}(),;&?")
    + ["key", "token", "secret", "Bearer ", "Basic ", "token ", "Authorization: ", "password",
       "[REDACTED]", "/tmp/", "api_key=", '": "', "\\\"", "sha256="]
)
rule_text = st.lists(RULE_ALPHABET, max_size=40).map("".join)
long_text = st.lists(st.one_of(RULE_ALPHABET, key_like(8, 48)), max_size=12).map("".join)


@settings(max_examples=1500, deadline=None, database=None)
@given(text=st.one_of(st.text(), rule_text, long_text))
@example(text="/tmp/api_key=/api_key=a")  # an empty path value once swallowed the next one
def test_redact_is_idempotent_and_never_raises(text):
    once = redact(text)
    assert isinstance(once, str)
    assert redact(once) == once


@FAST
@given(value=st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(),
              st.decimals()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=12), st.sampled_from(NAMES)), inner,
                        max_size=4),
    ),
    max_leaves=12,
))
def test_redact_value_never_raises(value):
    redact_value(value)


@settings(max_examples=15, deadline=None, database=None)
@given(secret=key_like(8, 24), ids=project_ids())
def test_registered_secret_is_redacted_everywhere(secret, ids):
    secret = "Xq9-registered-" + secret
    assume_distinct([secret], ids.values())
    add_secret(secret)
    text = f"{ids['registered_run_id']} got {secret}, again:{secret}/{secret[::-1]}"
    out = redact(text)
    assert secret not in out
    assert ids["registered_run_id"] in out
    assert redact_value({"plain": secret, "n": [secret]}) == {"plain": REDACTED, "n": [REDACTED]}


@FAST
@given(column=st.lists(st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=False), st.decimals(allow_nan=False),
    st.booleans(), st.text(max_size=30), st.sampled_from(PLAIN_WORDS),
    st.text(alphabet="BUYSEL", min_size=1, max_size=5),
    secret_form().map(lambda p: p[0]),
    st.from_regex(r"\d{8}-\d{6}-[0-9a-f]{6}-\d{5}#\d", fullmatch=True),
    st.from_regex(r"[-+0-9.eE]{0,40}", fullmatch=True)), max_size=12))
# empty texts (a fill's legs at the top of the book) then one that is not plain: this once
# took 2^n steps (an empty line matched several alternatives), hours for a batch of fills
@example(column=[""] * 60 + ["api_key=sk-live-0123456789abcdefghij"])
@example(column=["e"] * 40 + ["token abcdefghijklmnop0123"])
def test_a_journal_column_converts_as_each_of_its_values(column):
    """The bulk journal writes convert a column at once (a column of numbers, or of plain
    words and ids, as it is): exactly what the per-value conversion (and its redaction) gives,
    line breaks and secrets included."""
    from storage.journal import _sql_column, _to_sql
    assert _sql_column(list(column)) == [_to_sql(v) for v in column]
    # a secret split over lines of plain-looking words is still judged value by value
    text = [v for v in column if isinstance(v, str)]
    if text:
        assert _sql_column(["\n".join(text)]) == [_to_sql("\n".join(text))]
