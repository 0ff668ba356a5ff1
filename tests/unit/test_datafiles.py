"""Loading every recorded-data layout, plain and gzipped, and rejecting bad files precisely."""
from __future__ import annotations

import gzip
import math
import shutil
from pathlib import Path

import pytest

from trading.runtime.datafiles import (COLUMNS, MarketData, default_replay_file,
                                       load_market_file)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"  # beside the project root
DYDX = "btc_perp_dydx_1m_quotes_20260101.csv"
FTX = "btc_perp_ftx_1m_20211231_20220201.csv.gz"
QUOTES = "btcusdt_perp_binance_quote_ticks_3windows.csv.gz"
TRADES = "btcusdt_perp_binance_trade_ticks_3windows.csv.gz"

# file -> (kind, rows, windows)
EXPECTED = {
    DYDX: ("quote_bars", 1440, 1),
    FTX: ("ohlcv", 45031, 1),
    QUOTES: ("quote_ticks", 162554, 3),
    TRADES: ("trade_ticks", 44949, 3),
}


RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "data"  # ships with the app
BENCH_DATA = Path(__file__).resolve().parents[2] / "bench" / "data"  # the benchmarks' copies


def shared(name: str) -> Path:
    """A data file: the copy the app ships in resources/ first, then the benchmarks' copy,
    else the shared folder."""
    for base in (RESOURCES, BENCH_DATA, SHARED):
        if (base / name).is_file():
            return base / name
    pytest.skip(f"data file {name} is in none of resources/data, bench/data, the shared data")


class _Lazy(dict):
    """Load each file when a test first asks for it: a missing one skips that test only."""

    def __missing__(self, name: str) -> MarketData:
        self[name] = load_market_file(shared(name))
        return self[name]


@pytest.fixture(scope="module")
def loaded() -> dict[str, MarketData]:
    return _Lazy()


def write(tmp_path: Path, name: str, text: str, gz: bool = False) -> Path:
    path = tmp_path / name
    if gz:
        with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ---- the real files

@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_shared_file_loads_with_its_layout(loaded, name):
    data = loaded[name]
    kind, rows, windows = EXPECTED[name]
    assert data.kind == kind
    assert len(data.rows) == rows
    assert len(data.windows) == windows
    assert data.windows[0][0] == 0 and data.windows[-1][1] == rows
    for (_, end), (start, _) in zip(data.windows, data.windows[1:]):
        assert end == start
    assert all(len(r) == len(COLUMNS[kind]) for r in data.rows[:100])
    ts = [r[0] for r in data.rows]
    assert ts == sorted(ts)
    assert 1.5e12 < ts[0] < 1.9e12     # epoch milliseconds


def test_dydx_rows_keep_empty_trade_bars_as_nan(loaded):
    rows = loaded[DYDX].rows
    empty = [r for r in rows if math.isnan(r[1])]
    assert len(empty) == 30
    assert all(all(math.isnan(x) for x in r[1:6]) for r in empty)
    assert all(not math.isnan(x) for r in empty for x in r[6:])
    first = rows[0]
    assert first[:6] == (1767225600000.0, 87489.0, 87496.0, 87463.0, 87488.0, 1.9414)
    assert first[6:11] == (87482.0, 87495.0, 87462.0, 87484.0, 0.0208)


def test_binance_windows_split_on_the_window_column(loaded):
    data = loaded[QUOTES]
    for start, end in data.windows:
        span_min = (data.rows[end - 1][0] - data.rows[start][0]) / 60_000
        assert 5 < span_min < 9
    trades = loaded[TRADES]
    assert {r[3] for r in trades.rows} == {0.0, 1.0}


def test_ftx_volume_is_recognised_as_usd(loaded):
    assert loaded[FTX].volume_is_quote is True
    assert loaded[DYDX].volume_is_quote is False


@pytest.mark.parametrize("name", [DYDX])
def test_gzipped_copy_of_a_plain_file_loads_the_same(loaded, tmp_path, name):
    gz = tmp_path / "copy.csv"      # no .gz suffix: detected by the magic bytes
    with open(shared(name), "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    again = load_market_file(gz)
    assert again.kind == loaded[name].kind
    assert again.rows[:50] == loaded[name].rows[:50]
    assert len(again.rows) == len(loaded[name].rows)


@pytest.mark.parametrize("name", [FTX, TRADES])
def test_plain_copy_of_a_gz_file_loads_the_same(loaded, tmp_path, name):
    plain = tmp_path / "copy.csv.gz"    # misleading suffix: read as plain text
    with gzip.open(shared(name), "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    again = load_market_file(plain)
    assert again.kind == loaded[name].kind
    assert again.rows == loaded[name].rows
    assert again.windows == loaded[name].windows


def test_default_replay_file_is_bundled_and_loads():
    path = default_replay_file()
    assert path.name == DYDX
    assert path.is_file()
    assert (path.parent / "NOTICE.md").is_file()
    assert load_market_file(path).kind == "quote_bars"


def test_default_replay_file_follows_meipass_when_frozen(tmp_path, monkeypatch):
    target = tmp_path / "resources" / "data" / DYDX
    target.parent.mkdir(parents=True)
    target.write_text("x")
    monkeypatch.setattr("sys._MEIPASS", str(tmp_path), raising=False)
    assert default_replay_file() == target


# ---- small files: layouts, aliases, units

def test_ohlcv_with_timestamp_alias_in_seconds(tmp_path):
    path = write(tmp_path, "s.csv", "timestamp,open,high,low,close,volume\n"
                                    "1640991660,100,110,90,105,2.5\n"
                                    "1640991720,105,106,104,104,0\n")
    data = load_market_file(path)
    assert data.kind == "ohlcv"
    assert data.rows[0] == (1640991660000.0, 100.0, 110.0, 90.0, 105.0, 2.5)
    assert data.volume_is_quote is False


@pytest.mark.parametrize("alias", ["time", "open_time", "ts", "TS_MS"])
def test_every_timestamp_alias_is_accepted(tmp_path, alias):
    path = write(tmp_path, "a.csv", f"{alias},open,high,low,close\n1640991660000,1,2,1,2\n")
    data = load_market_file(path)
    assert data.rows == [(1640991660000.0, 1.0, 2.0, 1.0, 2.0, 0.0)]


def test_iso_timestamps_are_read_as_utc(tmp_path):
    path = write(tmp_path, "iso.csv", "time,price,qty\n2024-01-01T00:00:00Z,42000.5,0.1\n")
    data = load_market_file(path)
    assert data.kind == "trade_ticks"
    assert data.rows[0][0] == 1704067200000.0
    assert math.isnan(data.rows[0][3])


def test_tick_gap_over_a_minute_starts_a_new_window(tmp_path):
    path = write(tmp_path, "q.csv", "ts_ms,bid,ask,bid_size,ask_size\n"
                                    "1700000000000,10.0,10.1,1,1\n"
                                    "1700000030000,10.0,10.1,1,1\n"
                                    "1700000090001,10.0,10.1,1,1\n", gz=True)
    data = load_market_file(path)
    assert data.windows == [(0, 2), (2, 3)]


# ---- bad files

def test_unknown_header_names_the_column_and_the_file(tmp_path):
    path = write(tmp_path, "bad.csv", "ts_ms,opn,hgh,low,close,volume\n1,2,3,4,5,6\n")
    with pytest.raises(ValueError) as err:
        load_market_file(path)
    msg = str(err.value)
    assert "bad.csv" in msg and "line 1" in msg and "'opn'" in msg


def test_missing_timestamp_column_is_named(tmp_path):
    path = write(tmp_path, "nots.csv", "when,bid,ask,bid_size,ask_size\n1,2,3,4,5\n")
    with pytest.raises(ValueError, match=r"line 1: .*'ts_ms'"):
        load_market_file(path)


def test_partial_dydx_header_names_what_is_missing(tmp_path):
    header = "ts_ms,open,high,low,close,volume,bid_open,bid_high,bid_low,bid_close,ask_open\n"
    path = write(tmp_path, "part.csv", header)
    with pytest.raises(ValueError, match=r"'bid_size'.*'ask_high'"):
        load_market_file(path)


@pytest.mark.parametrize("row, column", [
    ("1640991660000,100,abc,90,105,1", "high"),
    ("1640991660000,100,110,90,105,nan", "volume"),
    ("1640991660000,100,110,,105,1", "low"),
    ("1640991660000,100,99,90,105,1", "high"),          # high below close
    ("1640991660000,-1,110,-2,105,1", "low"),
    ("later,100,110,90,105,1", "ts_ms"),
])
def test_bad_row_names_file_line_and_column(tmp_path, row, column):
    text = "ts_ms,open,high,low,close,volume\n1640991600000,100,110,90,105,1\n" + row + "\n"
    path = write(tmp_path, "rows.csv", text)
    with pytest.raises(ValueError) as err:
        load_market_file(path)
    msg = str(err.value)
    assert "rows.csv" in msg and "line 3" in msg and f"column {column!r}" in msg


def test_crossed_quote_tick_is_rejected(tmp_path):
    path = write(tmp_path, "x.csv", "ts_ms,bid,ask,bid_size,ask_size\n1000,10.2,10.1,1,1\n")
    with pytest.raises(ValueError, match=r"line 2: column 'ask': crossed"):
        load_market_file(path)


def test_time_going_backwards_is_rejected(tmp_path):
    path = write(tmp_path, "back.csv", "ts_ms,price,qty\n2000,1,1\n1000,1,1\n")
    with pytest.raises(ValueError, match=r"line 3: column 'ts_ms': time goes backwards"):
        load_market_file(path)


def test_partly_empty_trade_bar_is_rejected(tmp_path):
    header = open(shared(DYDX), encoding="utf-8").readline()
    row = "1767225600000,87489.0,,,,,87482,87495,87462,87484,0.0208,87490,87500,87464,87488,0.03\n"
    path = write(tmp_path, "dy.csv", header + row)
    with pytest.raises(ValueError, match=r"line 2: column 'high'"):
        load_market_file(path)


def test_header_only_and_empty_and_corrupt_gzip_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="no data rows"):
        load_market_file(write(tmp_path, "h.csv", "ts_ms,price,qty\n"))
    with pytest.raises(ValueError, match="empty file"):
        load_market_file(write(tmp_path, "e.csv", ""))
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match="broken.csv.gz"):
        load_market_file(broken)
    with pytest.raises(ValueError, match="cannot open"):
        load_market_file(tmp_path / "missing.csv")
