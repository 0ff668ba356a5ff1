"""Where a session's market data comes from: Bitunix, the local exchange, an inline replay of
the bundled data, or a recording of an earlier session.

`start_source(s)` resolves "auto" (a handshake probe of Bitunix, else the offline replay, said
loudly), starts the feed thread on a websocket (Bitunix or the local exchange: the same code),
fetches the REST warm-up, and starts the execution worker. With `--speed max` the bundled data
and recordings are applied inline (no socket), frame by frame, through the same parser.
"""
from __future__ import annotations

import logging
import math
import random
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

from trading.bitunix import (DEFAULT_CHANNELS, ProtocolError, kline_url, parse_frame_ch,
                             parse_rest_klines_layout)
from trading.events import DataSkipped, FrameReceived, OfflineFellBack, WarmupFetched
from trading.runtime.common import SessionError, dumps, iso
from trading.runtime.execution import ExecutionWorker, LiveClock
from trading.runtime.feed import FeedConfig, MarketFeed

log = logging.getLogger("btc_laptop_agents.session")


def resolve_source(s) -> None:
    """Decide what this segment reads: "auto" probes Bitunix and falls back loudly."""
    cfg = s.config
    source = cfg.source
    if s.resumed and source == "auto":
        source = s.source_used  # a resumed run keeps the source it started with
        if source == "bitunix":
            s.clock = LiveClock()
    if source == "auto":
        ok, why = probe_bitunix(cfg.bitunix_ws_url, cfg.probe_timeout_s)
        if ok:
            source = "bitunix"
            s.clock = LiveClock()
        else:
            source = "replay"
            s.offline_fallback = True
            s.fallback_reason = why
            log.warning(f"OFFLINE: Bitunix is unreachable ({why}); replaying the bundled real "
                        f"BTC data instead. This session is NOT live market data.",
                        extra={"event": "offline_fallback", "reason": why})
            s.bus.publish(OfflineFellBack(why))
    s.source_used = source
    s.engine.source = source
    s.fast = s.market_data = None
    if source == "replay":
        from trading.runtime import fastpath
        from trading.runtime.datafiles import default_replay_file, load_market_file
        s.market_data = data = load_market_file(cfg.replay_file or default_replay_file())
        if math.isinf(cfg.speed) and fastpath.supports(data):
            # no recording: the file itself replays it exactly
            s.fast = fastpath.FastReplay(s, data, pick_start_index(s, data))


def start_source(s) -> None:
    """Start what the segment reads (and the execution worker)."""
    cfg = s.config
    source = s.source_used
    if source == "recording":
        # the recording's own clock ticks drive the fills: no feed, no worker thread
        s.inline = s.replay_inputs
        return
    if source == "bitunix":
        s.depth_source = "Bitunix depth_book15 (top 15 levels)"
        warm_up_rest(s, cfg.bitunix_rest_url)
        start_feed(s, cfg.bitunix_ws_url)
    elif s.fast is not None:  # engine speed: typed rows, the clock ticked inline
        s.inline = s.fast
        s.depth_source = "none: the top of book holds every size (a bar or quote file)"
        apply_warmup(s, s.fast.warmup_rows(), "file", source="the replay file's bars")
        return
    else:
        data = s.market_data  # read once, when the source was resolved
        if math.isinf(cfg.speed):
            s.inline = inline_frames(inline_timeline(s, data))
        else:
            start_exchange(s, data)
            warm_up_rest(s, s.exchange.rest_url)
            start_feed(s, s.exchange.ws_url)
    s.worker = ExecutionWorker(s.broker, s.lock, s.clock, s.engine.tick,
                               on_error=s.worker_errors.append)
    crash = cfg.inject_crash_after_s
    if crash is not None and not s.injected.get("crash"):
        s.worker.inject_crash(time.monotonic() + crash, s._on_inject_crash)
    s.worker.start()


def on_inject_crash(s) -> None:
    """Worker thread, just before the injected exception: remember it fired (once per run)."""
    s.injected["crash"] = True
    s._save_state("running")
    log.warning("injected_crash", extra={"run_id": s.run_id, "thread_name": "execution",
                                         "position_qty": str(s.broker.position.qty)})


def to_frame(raw: bytes) -> FrameReceived:
    """A frame read from a file or a recording, parsed as the feed thread parses one."""
    mono, wall = time.monotonic(), int(time.time() * 1000)
    try:
        ch, events = parse_frame_ch(raw)
    except Exception as e:  # noqa: BLE001 - a bad frame is counted, never fatal
        return FrameReceived(raw, mono, wall, error=str(e)[:200])
    return FrameReceived(raw, mono, wall, tuple(e for e in events
                                                if type(e).__name__ != "Pong"), ch)


def inline_frames(timeline):
    """The bundled data's frames in order, as FrameReceived inputs for the session loop."""
    for _ts, raw in timeline.iter_frames_bytes():
        yield to_frame(raw)


def pick_start_index(s, data) -> int | None:
    cfg = s.config
    if s.resumed and s.resume_from_ts:
        from trading.replay import build_timeline
        # the market moved on while we were down: skip what a live feed would have missed
        skip = 0 if math.isinf(cfg.speed) else int(s.downtime_ms * cfg.speed)
        target = s.resume_from_ts + skip
        s.data_skipped_ms += skip
        log.warning("replay_resumes_after_gap", extra={
            "skipped_s": round(skip / 1000, 1), "resume_at": iso(target)})
        # the replay restarts at a minute boundary; what came before `target` was either
        # seen before the crash or missed while down: drop it (a live feed cannot rewind)
        s.engine.skip_until = target
        s.bus.publish(DataSkipped(target))
        try:
            return build_timeline(data, seed=cfg.seed, start_ts=target).start_index
        except ValueError as e:
            raise SessionError(f"cannot resume the replay at {iso(target)}: {e}") from None
    if cfg.replay_start_index is not None:
        return cfg.replay_start_index
    if cfg.replay_from_start:
        return 0
    from trading.replay import minute_count
    n = minute_count(data)
    need = int(math.ceil(cfg.duration_min)) + 3
    lo = min(200, max(0, n - need))
    hi = max(lo, n - need)
    return random.Random(cfg.seed).randint(lo, hi)


def start_exchange(s, data) -> None:
    from trading.runtime.exchange import LocalExchange
    cfg = s.config
    s.exchange = LocalExchange(data, speed=cfg.speed, seed=cfg.seed, symbol=cfg.symbol,
                               chaos=cfg.chaos, start_index=pick_start_index(s, data),
                               spread_usd=cfg.spread_usd)
    s.exchange.start()
    s.depth_source = s.exchange.timeline.depth_source
    log.info("local_exchange_started", extra={"ws_url": s.exchange.ws_url,
                                              "speed": cfg.speed_label})


def inline_timeline(s, data):
    from trading.replay import build_timeline
    cfg = s.config
    from trading.runtime.datafiles import default_depth_model
    model = default_depth_model() if data.books is None else None
    tl = build_timeline(data, symbol=cfg.symbol, seed=cfg.seed,
                        start_index=pick_start_index(s, data), spread_usd=cfg.spread_usd,
                        depth_model=model)
    s.depth_source = tl.depth_source
    body = dumps({"code": 0, "msg": "Success", "data": tl.history(tl.start_ts, 200)})
    apply_warmup(s, *parse_rest_klines_layout(body), source="replay history")
    return tl


def warm_up_rest(s, base_url: str) -> None:
    url = kline_url(base_url, s.config.symbol, limit=200)
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            candles, layout = parse_rest_klines_layout(resp.read())
    except (urllib.error.URLError, OSError, ProtocolError, ValueError) as e:
        log.warning("warmup_failed", extra={"url": url, "error": f"{type(e).__name__}: {e}"})
        return
    apply_warmup(s, candles, layout, source=url)


def apply_warmup(s, rows: list[dict], layout: str, source: str) -> None:
    """Keep the warm-up candles; say which REST field carried the coin volume."""
    s.engine.warmup_rows = rows
    s.rest_volume_layout = layout
    s.bus.publish(WarmupFetched(tuple(rows), layout, source))
    log.info("warmup_fetched", extra={"candles": len(rows), "from": source,
                                      "volume_layout": layout})


def start_feed(s, url: str) -> None:
    cfg = s.config
    subs = {(cfg.symbol, ch) for ch in DEFAULT_CHANNELS}
    s.feed = MarketFeed(FeedConfig(url=url, subscriptions=subs,
                                   ping_interval_s=cfg.ping_interval_s,
                                   stale_after_s=cfg.stale_after_s, seed=cfg.seed,
                                   channel_stale_s=cfg.channel_stale_s,
                                   check_clock_skew=isinstance(s.clock, LiveClock)),
                        s.queue)
    s.feed.start()


def probe_bitunix(ws_url: str, timeout_s: float) -> tuple[bool, str]:
    """Return whether Bitunix's public websocket completes a handshake within `timeout_s`."""
    import websocket
    u = urlparse(ws_url)
    try:
        ws = websocket.create_connection(ws_url, timeout=timeout_s)
    except Exception as e:  # noqa: BLE001 - any failure means: not reachable from here
        return False, f"{u.hostname}: {type(e).__name__}: {e}"
    try:
        ws.close(timeout=0.5)
    except Exception:  # noqa: BLE001
        pass
    return True, ""
