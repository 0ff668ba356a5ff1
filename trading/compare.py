"""Compare two runs of the same market data: fills side by side, PnL, fees, drift, spread.

Pure: takes the two runs' reports, settings and fill rows (as written to final_report.json and
fills.csv) and returns the comparison the report page renders (`storage.reports`).
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

# the fields that make two fills "the same fill" (order ids aside: each run numbers its own)
SAME_FILL = ("side", "qty", "reason", "fill_ts", "fill_px", "fee", "realized_pnl")
MATCH_WINDOW_MS = 120_000  # a fill of the other run this close (same side and reason) pairs

METRICS = (("PnL", "pnl_absolute", "USDT"), ("Realized before fees", "realized_pnl", "USDT"),
           ("Fees", "fees", "USDT"), ("Funding", "funding", "USDT"),
           ("Spread cost", "spread_cost_usdt", "USDT"),
           ("Depth cost", "depth_cost_usdt", "USDT"),
           ("Latency drift cost", "drift_cost_usdt", "USDT"),
           ("Mean latency drift", "mean_latency_drift_bps", "bps"),
           ("Mean spread cost", "mean_spread_cost_bps", "bps"),
           ("Max drawdown", "max_drawdown", "USDT"), ("Fills", "fills", "count"),
           ("Round trips", "round_trips", "count"))

# settings that change what a replay trades (the rest -- speed, source -- do not)
NOT_TRADING = {"source", "speed", "replay_file", "chaos", "seed", "record", "recording"}


def _dec(v) -> Decimal | None:
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return d if d.is_finite() else None


def _f(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None


def _i(v) -> int | None:
    x = _f(v)
    return None if x is None else int(x)


def norm_fill(row: dict) -> dict:
    """A fill row with comparable types (CSV text or journal values alike)."""
    out = dict(row)
    for k in ("qty", "fee", "realized_pnl", "position_after", "cash_after"):
        d = _dec(row.get(k))
        out[k] = None if d is None else str(d.normalize()) if d else "0"
    for k in ("fill_px", "bid", "ask", "signal_px", "spread_cost_bps", "latency_drift_bps",
              "trigger_px", "fee_bps"):
        out[k] = _f(row.get(k))
    for k in ("fill_ts", "signal_ts", "due_ts", "latency_ms", "seq"):
        out[k] = _i(row.get(k))
    for k in ("trigger",):
        out[k] = row.get(k) or None
    return out


def _key(f: dict) -> int:
    return f["signal_ts"] if f.get("signal_ts") is not None else (f.get("fill_ts") or 0)


def pair_fills(base: list[dict], other: list[dict]) -> list[dict]:
    """Walk both runs' fills in time order; pair a fill with the other run's fill of the same
    side and reason for the same signal (or within MATCH_WINDOW_MS), else leave it alone."""
    pairs, i, j = [], 0, 0
    while i < len(base) or j < len(other):
        a = base[i] if i < len(base) else None
        b = other[j] if j < len(other) else None
        if a is not None and b is not None and a["side"] == b["side"] \
                and a["reason"] == b["reason"] and abs(_key(a) - _key(b)) <= MATCH_WINDOW_MS:
            pairs.append(_pair(len(pairs) + 1, "matched", a, b))
            i, j = i + 1, j + 1
        elif b is None or (a is not None and _key(a) <= _key(b)):
            pairs.append(_pair(len(pairs) + 1, "only_base", a, None))
            i += 1
        else:
            pairs.append(_pair(len(pairs) + 1, "only_other", None, b))
            j += 1
    return pairs


def _pair(index: int, match: str, a: dict | None, b: dict | None) -> dict:
    out = {"index": index, "match": match, "base": a, "other": b, "price_diff": None,
           "ts_diff_ms": None, "qty_diff": None, "fee_diff": None, "pnl_diff": None}
    if a is not None and b is not None:
        if a["fill_px"] is not None and b["fill_px"] is not None:
            out["price_diff"] = round(b["fill_px"] - a["fill_px"], 8)
        if a["fill_ts"] is not None and b["fill_ts"] is not None:
            out["ts_diff_ms"] = b["fill_ts"] - a["fill_ts"]
        for name, key in (("qty_diff", "qty"), ("fee_diff", "fee"),
                          ("pnl_diff", "realized_pnl")):
            x, y = _dec(a[key]), _dec(b[key])
            if x is not None and y is not None:
                out[name] = str((y - x).normalize()) if y != x else "0"
    return out


def fill_costs(fills: list[dict]) -> dict:
    """Where the money went, per fill summed: spread (best vs mid), depth (VWAP vs best),
    latency drift (mid at fill vs signal), each in USDT (qty x mid x bps); the mean depth cost
    of the strategy's market orders; how fills were priced (price model, liquidity)."""
    spread = depth = drift = 0.0
    models: dict = {}
    liquidity: dict = {}
    for f in fills:
        qty = float(_dec(f.get("qty")) or 0)
        mid = ((_f(f.get("bid")) or 0) + (_f(f.get("ask")) or 0)) / 2
        spread += qty * mid * (_f(f.get("spread_cost_bps")) or 0.0) / 1e4
        depth += qty * mid * (_f(f.get("depth_cost_bps")) or 0.0) / 1e4
        drift += qty * mid * (_f(f.get("latency_drift_bps")) or 0.0) / 1e4
        m = f.get("price_model") or "top_of_book"
        models[m] = models.get(m, 0) + 1
        liq = f.get("liquidity") or "taker"
        liquidity[liq] = liquidity.get(liq, 0) + 1
    market = [f for f in fills if (f.get("order_type") or "market") == "market"
              and f.get("signal_ts") not in (None, "")]
    depth_bps = [_f(f.get("depth_cost_bps")) or 0.0 for f in market]
    mean_depth = round(sum(depth_bps) / len(depth_bps), 4) if depth_bps else None
    return {"spread_cost_usdt": round(spread, 6), "depth_cost_usdt": round(depth, 6),
            "drift_cost_usdt": round(drift, 6),
            "mean_depth_cost_bps": mean_depth,
            "fills_by_price_model": models, "fills_by_liquidity": liquidity}


def changed_settings(base: dict, other: dict) -> list[dict]:
    out = []
    for k in sorted(set(base) | set(other)):
        if k in NOT_TRADING:
            continue
        a, b = base.get(k), other.get(k)
        if str(a) != str(b):
            out.append({"name": k, "base": a, "other": b})
    return out


def compare_runs(*, base: dict, other: dict, candles: list[dict] | None = None,
                 title: str = "") -> dict:
    """`base`/`other`: {"run_id", "label", "report", "settings", "fills", "equity"}."""
    bf = [norm_fill(r) for r in base.get("fills") or []]
    of = [norm_fill(r) for r in other.get("fills") or []]
    pairs = pair_fills(bf, of)
    figs = {"base": {**(base.get("report") or {}), **fill_costs(bf)},
            "other": {**(other.get("report") or {}), **fill_costs(of)}}
    metrics = []
    for name, key, unit in METRICS:
        x, y = _f(figs["base"].get(key)), _f(figs["other"].get(key))
        metrics.append({"name": name, "key": key, "unit": unit, "base": x, "other": y,
                        "diff": None if x is None or y is None else round(y - x, 8)})
    same = len(bf) == len(of) and all(
        p["match"] == "matched" and all(p["base"][k] == p["other"][k] for k in SAME_FILL)
        for p in pairs)
    pnl_b, pnl_o = (_dec((r.get("report") or {}).get("pnl_absolute")) for r in (base, other))
    identical = same and pnl_b == pnl_o
    return {
        "title": title or f"{other.get('label', 'other')} {other.get('run_id')} vs "
                          f"{base.get('label', 'base')} {base.get('run_id')}",
        "identical": identical,
        "base": {k: base.get(k) for k in ("run_id", "label", "report", "settings")},
        "other": {k: other.get(k) for k in ("run_id", "label", "report", "settings")},
        "changed_settings": changed_settings(base.get("settings") or {},
                                             other.get("settings") or {}),
        "metrics": metrics, "pairs": pairs, "candles": list(candles or []),
        "equity": {"base": _curve(base.get("equity")), "other": _curve(other.get("equity"))},
    }


def _curve(rows) -> list[dict]:
    out = []
    for r in rows or []:
        ts, eq = _i(r.get("ts")), _f(r.get("equity"))
        if ts is not None and eq is not None:
            out.append({"ts": ts, "equity": eq})
    return out
