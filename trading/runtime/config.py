"""A session's settings (`SessionConfig`), and the form a recording keeps them in."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from trading.bitunix import PUBLIC_WS_URL, REST_BASE_URL
from trading.broker import BrokerConfig
from trading.risk import BreakerConfig
from trading.runtime.common import InjectedFault
from trading.strategy import EntryOrders

MAX_DURATION_MIN = 62 * 24 * 60  # two months of market time (a month's replay fits)


@dataclass
class SessionConfig:
    data_dir: Path
    duration_min: float = 10.0
    source: str = "auto"  # auto / bitunix / replay / recording (then `recording` says which)
    replay_file: Path | None = None
    speed: float = 1.0  # market-data seconds per wall second; math.inf = --speed max
    symbol: str = "BTCUSDT"
    seed: int = 0
    chaos: str = ""
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    strategy: str = "ema_momentum"  # a built-in name or path/to/file.py[:ClassName]
    strategy_params: dict = field(default_factory=dict)  # overrides of the file's defaults
    entry: EntryOrders = field(default_factory=EntryOrders)  # how entries are sent
    breaker_enabled: bool = True  # False: no circuit breaker (a backtest like the peers')
    replay_from_start: bool = False  # the replay file from its first bar, not a random window
    flatten_at_end: bool = True
    reset_account: bool = False
    bitunix_ws_url: str = PUBLIC_WS_URL
    bitunix_rest_url: str = REST_BASE_URL
    probe_timeout_s: float = 3.0
    queue_maxsize: int = 1000
    stale_after_s: float = 10.0
    channel_stale_s: float = 10.0  # one channel silent this long while others push (0: off)
    ping_interval_s: float = 5.0
    progress_every_s: float = 5.0
    equity_every_ms: int = 5000
    spread_usd: float = 1.0
    replay_start_index: int | None = None
    inject_strategy_error_at: int | None = None  # raise in the strategy on this closed candle
    inject_crash_after_s: float | None = None  # raise in the execution worker thread (once)
    inject_hang_after_s: float | None = None  # stop the session loop's heartbeat (once)
    resume: bool = False  # continue run_id from the state file and journal (crash-only restart)
    previous_exit: str = ""  # how the previous segment ended, when a supervisor knows
    supervisor_restarts: int | None = None  # restarts the process supervisor made so far
    watchdog_resume: bool = False  # this segment is an in-process watchdog restart
    state_save_every_s: float = 1.0  # wall seconds between periodic state saves
    progress_stream: object = None  # file-like for the one-line status; None = quiet
    record: bool = True  # write the run's inputs to runs/<run>/recording.jsonl.gz
    record_max_mb: float = 256.0  # the recording stops (and says so) at this size
    recording: str = ""  # source "recording": a run id of this data dir or a path

    @property
    def duration_ms(self) -> int:
        return int(self.duration_min * 60_000)

    @property
    def speed_label(self) -> str:
        return "max" if math.isinf(self.speed) else f"{self.speed:g}"


class _InjectingStrategy:
    """Wrap a strategy to raise on the Nth closed candle (fault injection for the error path)."""

    def __init__(self, inner, at: int) -> None:
        self.inner, self.at, self.n = inner, at, 0
        self.name = inner.name

    def warm_up(self, candles):
        self.inner.warm_up(candles)

    def on_candle(self, candle, position_qty):
        self.n += 1
        if self.n >= self.at:
            raise InjectedFault(f"injected strategy error on candle {self.n}")
        return self.inner.on_candle(candle, position_qty)

    def state(self):
        return self.inner.state()

    def restore(self, state):
        self.inner.restore(state)


def config_to_dict(c: SessionConfig) -> dict:
    """The settings a recording keeps, to rebuild the same session (JSON-ready)."""
    skip = {"data_dir", "progress_stream", "resume", "previous_exit", "supervisor_restarts",
            "watchdog_resume"}
    out = {f.name: getattr(c, f.name) for f in fields(c) if f.name not in skip}
    out["speed"] = None if math.isinf(c.speed) else c.speed
    out["replay_file"] = str(c.replay_file) if c.replay_file else None
    for part in ("broker", "breaker", "entry"):
        out[part] = {k: str(v) if hasattr(v, "as_tuple") else v
                     for k, v in asdict(getattr(c, part)).items()}
    out["strategy_params"] = dict(c.strategy_params)
    return out


_ENTRY_KEYS = ("order_type", "limit_offset_bps", "limit_timeout_s", "limit_tif")


def _migrate(d: dict) -> dict:
    """Settings written before strategies were files: `strategy` was the default strategy's
    parameters together with how entries were sent."""
    old = d.get("strategy")
    if not isinstance(old, dict):
        return d
    d = dict(d)
    d["strategy"] = "ema_momentum"
    d["entry"] = {k: v for k, v in old.items() if k in _ENTRY_KEYS}
    d["strategy_params"] = {k: v for k, v in old.items() if k not in _ENTRY_KEYS}
    return d


def config_from_dict(d: dict, **overrides) -> SessionConfig:
    """Rebuild a SessionConfig from `config_to_dict` output (a recording's header), checked
    like typed input: raise ValueError naming what is wrong."""
    if not isinstance(d, dict):
        raise ValueError("the settings are not an object")
    d = _migrate(d)
    names = {f.name for f in fields(SessionConfig)}
    kw = {k: v for k, v in d.items() if k in names and k not in ("broker", "breaker",
                                                                 "entry")}
    try:
        kw["broker"] = BrokerConfig(**dict(d.get("broker") or {}))
        kw["breaker"] = BreakerConfig.from_dict(dict(d.get("breaker") or {}))
        kw["entry"] = EntryOrders.from_dict(dict(d.get("entry") or {}))
    except TypeError as e:
        raise ValueError(f"unknown setting: {e}") from None
    if not isinstance(kw.get("strategy", ""), str):
        raise ValueError("strategy: expected a name or a file path")
    if not isinstance(kw.get("strategy_params", {}), dict):
        raise ValueError("strategy_params: expected an object")
    kw["speed"] = math.inf if kw.get("speed") is None else float(kw["speed"])
    kw["replay_file"] = Path(kw["replay_file"]) if kw.get("replay_file") else None
    kw.update(overrides)
    return SessionConfig(**kw)
