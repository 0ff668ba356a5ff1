"""BTC Laptop Agents: paper-trade BTCUSDT perpetual futures on Bitunix market data.

The only place that wires objects together. `python main.py --headless --duration 10` runs a
session in the terminal; see README.md for every option.
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

EXIT_OK, EXIT_SESSION_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_NOT_RESTARTABLE = 3  # supervisor's child only: an error (e.g. the disk) a restart can't fix


def _positive_float(name: str, lo: float = 0.0, hi: float = math.inf, inclusive_lo=False):
    def conv(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        ok_lo = v >= lo if inclusive_lo else v > lo
        if not (math.isfinite(v) and ok_lo and v <= hi):
            bound = f"{'>=' if inclusive_lo else '>'} {lo:g}" + (f" and <= {hi:g}" if
                                                                  math.isfinite(hi) else "")
            raise argparse.ArgumentTypeError(f"{name} must be {bound}, got {text!r}")
        return v
    return conv


def _int_range(name: str, lo: int, hi: int):
    def conv(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be in [{lo}, {hi}], got {text!r}")
        return v
    return conv


def _speed(text: str) -> float:
    if text.strip().lower() == "max":
        return math.inf
    try:
        v = _positive_float("--speed", 0.0, 10_000.0)(text)
        if v < 0.01:
            raise argparse.ArgumentTypeError("too slow")
        return v
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"--speed must be a number in [0.01, 10000] or 'max', got {text!r}") from None


def _source(text: str) -> str:
    if text in ("auto", "bitunix", "replay"):
        return text
    kind, sep, ref = text.partition(":")
    if kind == "recording" and sep and ref.strip():
        return text
    if kind == "recording":
        raise argparse.ArgumentTypeError("recording needs a run id or a path: "
                                         "recording:RUN_ID or recording:PATH")
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from auto, bitunix, "
                                     f"replay, recording:RUN_ID|PATH)")


def _symbol(text: str) -> str:
    from trading.model import symbol_problem
    s = text.strip()
    s = s.upper() if s.isascii() else s  # btcusdt is fine; full-width or other digits are not
    problem = symbol_problem(s)
    if problem:
        raise argparse.ArgumentTypeError(f"--symbol {problem}, got {text!r}")
    return s


MIN_DURATION_MIN = 1 / 60  # one second of market time
from trading.runtime.config import MAX_DURATION_MIN  # noqa: E402 (the window's limit too)


def _duration(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--duration must be a number of minutes, "
                                         f"got {text!r}") from None
    if not (math.isfinite(v) and MIN_DURATION_MIN <= v <= MAX_DURATION_MIN):
        raise argparse.ArgumentTypeError(
            f"--duration must be from 1 second (0.0167 min) to 62 days ({MAX_DURATION_MIN} "
            f"min) of market time, got {text!r}")
    return v


def _data_dir(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("--data-dir must not be empty (leave it out for the "
                                         "per-user data dir)")
    if "\x00" in text:
        raise argparse.ArgumentTypeError("--data-dir must not contain a NUL character")
    return Path(text)


class _Parser(argparse.ArgumentParser):
    """argparse that redacts secrets from what it echoes back (a key typed in the wrong place)."""

    def error(self, message: str):  # noqa: D102 - argparse's own contract
        try:
            from storage.logger import redact
            message = redact(message)
        except Exception:  # noqa: BLE001 - never let redaction hide the usage error itself
            message = "invalid command line (the message could not be shown safely)"
        super().error(message)


def _unusable_dir(path: Path) -> str | None:
    """Say why `path` cannot be the data dir, without creating anything."""
    p = path.expanduser().absolute()
    if p.exists():
        if not p.is_dir():
            return f"not a directory: {path}"
        return None if os.access(p, os.W_OK | os.X_OK) else f"not writable: {path}"
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, so {path} cannot be created"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {path}: {parent} is not writable"
    return None


def _make_data_dir(path: Path) -> str | None:
    """Create the data dir and prove it takes a file; say why not (nothing else is written)."""
    folder = path
    try:
        path.mkdir(parents=True, exist_ok=True)
        # the folders a session writes into, where they exist already
        for folder in (path, *(p for p in (path / "paper", path / "runs", path / "logs")
                               if p.is_dir())):
            probe = folder / f".write-probe-{os.getpid()}"
            try:
                with open(probe, "wb") as fh:
                    fh.write(b"ok")
            finally:
                try:
                    os.remove(probe)
                except OSError:
                    pass
    except (OSError, ValueError) as e:
        from storage.errors import as_disk_error
        disk = as_disk_error(e, folder) if isinstance(e, OSError) else None
        return f"cannot use {folder}: " + (str(disk) if disk else f"{type(e).__name__}: {e}")
    return None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=Path(sys.executable).name if getattr(sys, "frozen", False) else "main.py",
        description="Paper-trade BTCUSDT perpetual futures on Bitunix market data (or the "
        "bundled replay), headless or in a desktop window.")
    from trading import __version__
    p.add_argument("--version", action="version", version=f"BTC Laptop Agents {__version__}")
    p.add_argument("--headless", action="store_true", help="run in the terminal, no window")
    p.add_argument("--autostart", action="store_true",
                   help="window: start the session at launch")
    p.add_argument("--exit-on-finish", action="store_true",
                   help="window: quit once the report is written, with the session's exit code")
    p.add_argument("--duration", type=_duration,
                   default=10.0, metavar="MIN",
                   help="session length in minutes of market-data time (default 10)")
    p.add_argument("--source", type=_source, default="auto", metavar="SOURCE",
                   help="auto: try Bitunix briefly, else replay the bundled data (default); "
                   "bitunix; replay; recording:RUN_ID|PATH: replay a recorded session "
                   "exactly, from its own account and settings (options given here change "
                   "them, and compare.html shows the difference)")
    p.add_argument("--replay-file", type=Path, metavar="PATH",
                   help="CSV or CSV.gz market data to replay (default: the bundled dYdX day)")
    p.add_argument("--speed", type=_speed, default=1.0, metavar="X|max",
                   help="replay speed: market seconds per wall second, or max (default 1)")
    p.add_argument("--execution-latency-ms", type=_int_range("--execution-latency-ms", 0,
                                                             600_000),
                   default=1000, metavar="N", help="delay from signal to fill (default 1000)")
    p.add_argument("--symbol", type=_symbol, default="BTCUSDT",
                   help="perpetual to trade, ASCII letters and digits (default BTCUSDT)")
    p.add_argument("--data-dir", type=_data_dir, metavar="DIR",
                   help="where logs, state, journal and reports go (default: per-user data "
                        "dir, or $BTC_LAPTOP_DATA_DIR)")
    p.add_argument("--seed", type=_int_range("--seed", 0, 2**31 - 1), default=0,
                   help="seeds the replay window, intra-minute quotes and reconnect jitter "
                        "(default 0)")
    p.add_argument("--chaos", default="", metavar="SPEC",
                   help="local-exchange faults, e.g. drop@30s,stall@90s:15s,garbage@120s")
    p.add_argument("--starting-balance", type=str, default="10000", metavar="USDT",
                   help="paper account start, 1 to 1e12 (default 10000; later sessions carry "
                        "the account over)")
    p.add_argument("--risk-per-trade", type=_positive_float("--risk-per-trade", 0.0, 0.5),
                   default=0.005, metavar="FRACTION",
                   help="equity fraction lost if the stop is hit (default 0.005)")
    p.add_argument("--taker-fee-bps", type=_positive_float("--taker-fee-bps", 0, 1000, True),
                   default=6.0, metavar="BPS",
                   help="fee of market orders, basis points (default 6: Bitunix VIP0)")
    p.add_argument("--maker-fee-bps", type=_positive_float("--maker-fee-bps", 0, 1000, True),
                   default=2.0, metavar="BPS",
                   help="fee of resting orders, basis points (default 2: Bitunix VIP0)")
    p.add_argument("--slip-bps", type=_positive_float("--slip-bps", 0, 1000, True), default=2.0,
                   metavar="BPS",
                   help="slippage used only when no quote exists at fill time (default 2)")
    p.add_argument("--spread-usd", type=_positive_float("--spread-usd", 0.0, 1000.0, True),
                   default=1.0, metavar="USD",
                   help="bid/ask spread for replay files without quotes (default 1.0)")
    p.add_argument("--channel-stale-s", type=_positive_float("--channel-stale-s", 0.0, 3600.0,
                                                             True),
                   default=10.0, metavar="S",
                   help="a channel silent for S wall seconds while others push is "
                   "resubscribed alone; after 3 tries the connection is rebuilt (0: off; "
                   "default 10)")
    p.add_argument("--order-type", choices=("market", "limit"), default="market",
                   help="how the strategy enters: market (default) or limit orders at the best "
                   "bid/ask -/+ --limit-offset-bps; exits are market orders")
    p.add_argument("--limit-offset-bps", type=_positive_float("--limit-offset-bps", 0.0, 1000.0,
                                                              True),
                   default=0.0, metavar="BPS",
                   help="a limit entry's distance from the best bid (buy) / ask (sell), in bps "
                   "away from the market (default 0: join the best price)")
    p.add_argument("--limit-timeout-s", type=_positive_float("--limit-timeout-s", 0.0, 86_400.0,
                                                             True),
                   default=30.0, metavar="S",
                   help="an unfilled limit entry is cancelled this long after it reaches the "
                   "exchange (the cancel takes the execution latency too; 0: never; default 30)")
    p.add_argument("--limit-tif", choices=("GTC", "IOC", "POST_ONLY"), default="GTC",
                   help="a limit entry's time in force (default GTC)")
    p.add_argument("--strategy", default="ema_momentum", metavar="NAME|FILE.py[:Class]",
                   help="the strategy: a built-in (ema_momentum, the default; sma_cross) or "
                   "your own file implementing the Strategy protocol (see the README); "
                   "default ema_momentum")
    p.add_argument("--strategy-param", action="append", default=[], metavar="NAME=VALUE",
                   help="override one of the strategy's declared parameters (repeatable; "
                   "default: the file's own defaults)")
    p.add_argument("--fixed-qty", default=None, metavar="BTC",
                   help="every entry this many BTC instead of risk sizing (a reversal: "
                   "twice that; default: risk sizing)")
    p.add_argument("--replay-from-start", action="store_true",
                   help="replay the file from its first bar (not a random window); without "
                   "--duration, to its end")
    p.add_argument("--no-breaker", action="store_true",
                   help="no circuit breaker: nothing blocks entries (a backtest as the "
                   "peers run it)")
    p.add_argument("--no-flatten", action="store_true",
                   help="leave an open position open at session end")
    p.add_argument("--reset-account", action="store_true",
                   help="start from --starting-balance instead of the saved paper account")
    p.add_argument("--quiet", action="store_true", help="no progress line, warnings only")
    p.add_argument("--no-record", action="store_true",
                   help="do not record the session's market data (by default every session "
                   "writes runs/<run>/recording.jsonl.gz, for an exact replay)")
    p.add_argument("--record-max-mb", type=_positive_float("--record-max-mb", 0.0, 100_000.0),
                   default=256.0, metavar="MB",
                   help="the recording stops (and says so) at this size (default 256)")
    p.add_argument("--inject-strategy-error", type=_int_range("--inject-strategy-error", 1,
                                                              10**6),
                   metavar="N", help="fault injection: the strategy raises on closed candle N")
    g = p.add_argument_group("autonomy")
    g.add_argument("--supervise", action="store_true",
                   help="run the session in a child process and restart it if it dies")
    g.add_argument("--no-watchdog", action="store_true",
                   help="no in-process watchdog: a crash ends the session with an error report")
    g.add_argument("--hang-after-s", type=_positive_float("--hang-after-s", 0.0, 86400.0),
                   default=30.0, metavar="S",
                   help="no session-loop heartbeat for S s = hung (default 30)")
    g.add_argument("--restart-delay-s", type=_positive_float("--restart-delay-s", 0.0, 3600.0,
                                                             True),
                   default=5.0, metavar="S", help="pause before a restart (default 5)")
    g.add_argument("--max-restarts", type=_int_range("--max-restarts", 0, 10_000), default=5,
                   metavar="N",
                   help="give up after more than N restarts within the window (default 5)")
    g.add_argument("--restart-window-s", type=_positive_float("--restart-window-s", 0.0,
                                                              7 * 86400.0),
                   default=3600.0, metavar="S",
                   help="the window --max-restarts counts in (default 3600)")
    g.add_argument("--inject-crash-after-s", type=_positive_float("--inject-crash-after-s", 0.0,
                                                                  86400.0, True),
                   metavar="S", help="fault injection: raise in the execution thread after S s "
                   "(at engine speed: in the replay loop, at the first checkpoint after S s)")
    g.add_argument("--inject-hang-after-s", type=_positive_float("--inject-hang-after-s", 0.0,
                                                                 86400.0, True),
                   metavar="S", help="fault injection: stop the loop's heartbeat after S s")
    g.add_argument("--run-id", type=_run_id, help=argparse.SUPPRESS)
    g.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    g.add_argument("--previous-exit", default="", help=argparse.SUPPRESS)
    g.add_argument("--give-up", default="", help=argparse.SUPPRESS)
    g.add_argument("--finalize", default="", help=argparse.SUPPRESS)
    # set by the supervisor for its child: restarts it made so far; an error a restart cannot
    # fix exits EXIT_NOT_RESTARTABLE so that it does not try
    g.add_argument("--supervisor-restarts", type=_int_range("--supervisor-restarts", 0, 10**9),
                   default=None, help=argparse.SUPPRESS)
    return p


def _run_id(text: str) -> str:
    ok = 6 <= len(text) <= 64 and all(c.isalnum() or c in "-_" for c in text)
    if not ok:
        raise argparse.ArgumentTypeError(f"--run-id must be 6-64 letters, digits, - or _, "
                                         f"got {text!r}")
    return text


def parse_config(argv: list[str]):
    """Parse and validate everything before any file is written; exit 2 on bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from trading.broker import BrokerConfig
    from trading.risk import BreakerConfig
    from trading.runtime.session import SessionConfig
    from trading.strategy import EntryOrders
    try:
        balance = Decimal(args.starting_balance)
        if not balance.is_finite() or not Decimal("1") <= balance <= Decimal("1e12"):
            raise InvalidOperation
    except InvalidOperation:
        parser.error(f"argument --starting-balance: must be a number from 1 to 1e12, "
                     f"got {args.starting_balance!r}")
    try:
        broker = BrokerConfig(starting_cash=balance, taker_fee_bps=args.taker_fee_bps,
                              maker_fee_bps=args.maker_fee_bps, slip_bps=args.slip_bps,
                              latency_ms=args.execution_latency_ms,
                              risk_per_trade=args.risk_per_trade, symbol=args.symbol,
                              fixed_qty=args.fixed_qty)
    except ValueError as e:
        parser.error(f"argument --fixed-qty: {e}" if "fixed_qty" in str(e) else str(e))
    from trading.runtime.strategies import StrategyError, load_strategy, parse_param_args
    try:
        strategy_params = parse_param_args(args.strategy_param)
    except ValueError as e:
        parser.error(f"argument --strategy-param: {e}")
    if not args.source.startswith("recording:"):
        try:
            strategy_params = load_strategy(args.strategy, strategy_params).params
        except StrategyError as e:
            parser.error(f"argument --strategy: {e}")
    if args.replay_from_start:
        if args.source == "bitunix" or args.source.startswith("recording:"):
            parser.error("argument --replay-from-start: only for a replay of a file")
        if "duration" not in _given(parser, argv):  # to the file's end
            from trading.runtime.datafiles import default_replay_file, load_market_file
            data = load_market_file(args.replay_file or default_replay_file())
            span = (data.rows[-1][0] - data.rows[0][0]) / 60_000 + 2
            args.duration = min(max(span, MIN_DURATION_MIN), MAX_DURATION_MIN)
    if args.chaos:
        from trading.runtime.exchange import ChaosPlan
        try:
            plan = ChaosPlan.parse(args.chaos)
        except ValueError as e:
            parser.error(f"argument --chaos: {e}")
        late = [str(f) for f in plan if f.at_s > args.duration * 60]
        if late:
            parser.error(f"argument --chaos: {', '.join(late)} would fire after the session "
                         f"ends ({args.duration:g} min)")
        if args.source == "bitunix":
            parser.error("argument --chaos: faults are injected by the local exchange; "
                         "they need --source replay or auto")
        if math.isinf(args.speed):
            parser.error("argument --chaos: --speed max replays in-process with no socket; "
                         "use a finite --speed to inject network faults")
    if args.replay_file is not None:
        if args.source == "bitunix":
            parser.error("argument --replay-file: not used with --source bitunix")
        from trading.runtime.datafiles import load_market_file
        if not args.replay_file.is_file():
            parser.error(f"argument --replay-file: no such file: {args.replay_file}")
        try:
            load_market_file(args.replay_file)
        except (ValueError, OSError) as e:
            parser.error(f"argument --replay-file: {e}")
    from storage.paths import DATA_DIR_ENV, default_data_dir
    data_dir = args.data_dir or default_data_dir()
    where = "--data-dir" if args.data_dir is not None else (
        f"${DATA_DIR_ENV}" if os.environ.get(DATA_DIR_ENV, "").strip() else "the data dir")
    problem = _unusable_dir(data_dir) or _make_data_dir(data_dir)
    if problem:
        parser.error(f"argument {where}: {problem}")
    from storage.errors import check_free_space
    problem = check_free_space(data_dir)
    if problem:
        parser.error(f"argument {where}: {problem}")
    if args.source.startswith("recording:"):
        return args, _recording_config(parser, args, argv, data_dir, strategy_params)
    cfg = SessionConfig(
        data_dir=data_dir, duration_min=args.duration, source=args.source,
        replay_file=args.replay_file, speed=args.speed, symbol=args.symbol, seed=args.seed,
        chaos=args.chaos, broker=broker, breaker=BreakerConfig(),
        strategy=args.strategy, strategy_params=strategy_params,
        entry=EntryOrders(order_type=args.order_type, limit_offset_bps=args.limit_offset_bps,
                          limit_timeout_s=args.limit_timeout_s, limit_tif=args.limit_tif),
        breaker_enabled=not args.no_breaker, replay_from_start=args.replay_from_start,
        flatten_at_end=not args.no_flatten, reset_account=args.reset_account,
        spread_usd=args.spread_usd, inject_strategy_error_at=args.inject_strategy_error,
        channel_stale_s=args.channel_stale_s,
        inject_crash_after_s=args.inject_crash_after_s,
        inject_hang_after_s=args.inject_hang_after_s, resume=args.resume,
        previous_exit=args.previous_exit, supervisor_restarts=args.supervisor_restarts,
        progress_stream=None if args.quiet else sys.stdout, record=not args.no_record,
        record_max_mb=args.record_max_mb)
    if args.resume and not args.run_id:
        parser.error("argument --resume: needs --run-id")
    return args, cfg


# options that change a replayed recording's settings when given on the command line
_REPLAY_OVERRIDES = {"duration": "duration_min", "execution_latency_ms": "broker.latency_ms",
                     "taker_fee_bps": "broker.taker_fee_bps",
                     "maker_fee_bps": "broker.maker_fee_bps", "slip_bps": "broker.slip_bps",
                     "risk_per_trade": "broker.risk_per_trade", "no_flatten": "flatten_at_end",
                     "order_type": "entry.order_type",
                     "limit_offset_bps": "entry.limit_offset_bps",
                     "limit_timeout_s": "entry.limit_timeout_s",
                     "limit_tif": "entry.limit_tif", "strategy": "strategy",
                     "fixed_qty": "broker.fixed_qty"}
_NOT_FOR_REPLAY = ("--replay-file", "--chaos", "--symbol", "--starting-balance",
                   "--spread-usd", "--reset-account", "--inject-strategy-error")


def _given(parser, argv: list[str]) -> set[str]:
    """The dests of the options this command line spelled out (not left at their defaults)."""
    out = set()
    for a in parser._actions:
        for opt in a.option_strings:
            if any(t == opt or t.startswith(opt + "=") for t in argv):
                out.add(a.dest)
    return out


def _recording_config(parser, args, argv: list[str], data_dir: Path, strategy_params: dict):
    """A replay of a recording: its own settings, changed only by the options given here."""
    from storage.paths import DataPaths
    from trading.runtime.config import _migrate, config_from_dict
    from trading.runtime.recording import RecordingError
    from trading.runtime.replaying import open_source
    from trading.runtime.strategies import StrategyError, load_strategy
    ref = args.source.partition(":")[2]
    for opt in _NOT_FOR_REPLAY:
        if any(t == opt or t.startswith(opt + "=") for t in argv):
            parser.error(f"argument {opt}: not used with --source recording (the replay "
                         f"uses the recorded data and starting account)")
    try:
        path, header, _ = open_source(ref, DataPaths(data_dir).runs_dir)
        recorded = _migrate(dict(header["config"]))
        given = _given(parser, argv)
        for dest, key in _REPLAY_OVERRIDES.items():
            if dest not in given:
                continue
            value = (not args.no_flatten) if dest == "no_flatten" else getattr(args, dest)
            if dest == "strategy":  # another strategy: its own defaults, not the recorded
                recorded["strategy_params"] = {}
            part, _, name = key.rpartition(".")
            if part:
                recorded[part] = {**recorded.get(part, {}), name: value}
            else:
                recorded[key] = value
        if "strategy_param" in given:
            recorded["strategy_params"] = {**recorded.get("strategy_params", {}),
                                           **strategy_params}
        recorded["strategy_params"] = load_strategy(recorded.get("strategy", "ema_momentum"),
                                                    recorded.get("strategy_params")).params
        cfg = config_from_dict(
            recorded, data_dir=data_dir, source="recording", recording=str(path),
            speed=args.speed, progress_stream=None if args.quiet else sys.stdout,
            record=not args.no_record, record_max_mb=args.record_max_mb, chaos="",
            replay_file=None, resume=args.resume, previous_exit=args.previous_exit,
            supervisor_restarts=args.supervisor_restarts, reset_account=False)
    except StrategyError as e:
        parser.error(f"argument --strategy: {e}")
    except (RecordingError, ValueError, TypeError, KeyError) as e:
        parser.error(f"argument --source: {e}")
    if args.resume and not args.run_id:
        parser.error("argument --resume: needs --run-id")
    return cfg


def run_headless(cfg, args) -> int:
    """Run one session in this process under the watchdog; return its exit code."""
    import dataclasses
    import logging

    from storage.logger import setup_logging
    from trading.runtime.session import Session, new_run_id
    from trading.runtime.watchdog import Watchdog, WatchdogConfig
    setup_logging(Path(cfg.data_dir), console=True, level=logging.INFO,
                  console_level=logging.WARNING if args.quiet else logging.INFO)
    run_id = args.run_id or new_run_id()
    made = []

    def make_session(resume: bool) -> Session:
        # the first segment runs as asked (a supervisor's child may already be resuming);
        # a watchdog restart resumes the same run from the state file and journal
        c = dataclasses.replace(cfg, resume=True, previous_exit="", watchdog_resume=True) \
            if resume else cfg
        s = Session(c, run_id=run_id)
        made[:] = [s]  # only the live segment is kept
        return s

    if args.give_up or args.finalize:
        # closing the books is no restart: count only what the supervisor made
        session = Session(dataclasses.replace(cfg, resume=True), run_id=run_id)
        made[:] = [session]
        code = session.finalize_only(args.finalize or "supervisor gave up",
                                     error=args.give_up or None)
    elif args.no_watchdog:
        session = make_session(False)
        for sig, why in ((signal.SIGTERM, "stopped by SIGTERM"),
                         (signal.SIGINT, "interrupted (Ctrl-C)")):
            signal.signal(sig, lambda n, f, why=why: session.request_stop(why))
        code = session.run()
    else:
        dog = Watchdog(make_session, WatchdogConfig(
            hang_after_s=args.hang_after_s, restart_delay_s=args.restart_delay_s,
            max_restarts=args.max_restarts, restart_window_s=args.restart_window_s))
        # Ctrl-C and SIGTERM end the session cleanly: flatten, report, exit 0
        for sig, why in ((signal.SIGTERM, "stopped by SIGTERM"),
                         (signal.SIGINT, "interrupted (Ctrl-C)")):
            signal.signal(sig, lambda n, f, why=why: dog.request_stop(why))
        code = dog.run()
        session = made[-1]
    from storage.logger import redact
    report = session.final_report or {}
    if report.get("status") != "success" and report.get("error"):
        print(redact(f"error: {report['error']}"), file=sys.stderr, flush=True)
    print(redact(f"{report.get('status', 'error').upper()}: pnl "
                 f"{report.get('pnl_absolute', 0):+.2f} USDT, fills {report.get('fills', 0)}, "
                 f"restarts {report.get('restarts', 0)}, reconnects "
                 f"{report.get('reconnects', 0)}, report "
                 f"{getattr(session, 'run_dir', '?')}/final_report.json"), flush=True)
    if code and args.supervisor_restarts is not None and session.final_report is not None:
        # the books are closed (report attempted): a supervisor must not start the run again
        return EXIT_NOT_RESTARTABLE
    return code


def lock_data_dir(data_dir: Path):
    """Take the data dir's one-writer lock, or print who holds it and exit 2."""
    from storage.lock import DataDirLocked, acquire_data_dir_lock
    from storage.logger import redact
    try:
        return acquire_data_dir_lock(Path(data_dir))
    except DataDirLocked as e:
        print(f"main.py: error: {redact(str(e))}", file=sys.stderr, flush=True)
    except OSError as e:
        print(f"main.py: error: cannot lock the data dir {redact(str(data_dir))}: "
              f"{redact(str(e))}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_USAGE)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, cfg = parse_config(argv)
    if not args.headless:
        from gui.app import run_gui
        return run_gui(args, cfg, argv)
    lock = lock_data_dir(Path(cfg.data_dir))
    try:
        if args.supervise:
            from trading.runtime.supervisor import supervise
            return supervise(argv, data_dir=Path(cfg.data_dir), run_id=args.run_id,
                             restart_delay_s=args.restart_delay_s,
                             max_restarts=args.max_restarts,
                             restart_window_s=args.restart_window_s, lock=lock)
        return run_headless(cfg, args)
    finally:
        lock.release()


def _attach_parent_console() -> None:
    """Windows, packaged (windowed) app run with --headless from a terminal: print there."""
    if os.name != "nt" or not getattr(sys, "frozen", False) or "--headless" not in sys.argv:
        return
    try:  # pragma: no cover - Windows only
        import ctypes
        if ctypes.windll.kernel32.AttachConsole(-1):  # ATTACH_PARENT_PROCESS
            sys.stdout = open("CONOUT$", "w", encoding="utf-8", buffering=1)
            sys.stderr = open("CONOUT$", "w", encoding="utf-8", buffering=1)
    except Exception:  # noqa: BLE001 - no console to attach to: run silently, files still written
        pass


if __name__ == "__main__":
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    _attach_parent_console()
    sys.exit(main())
