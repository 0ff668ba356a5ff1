"""PaperBroker: a deterministic state machine for market orders on one symbol.

The clock is passed in (epoch ms of market data time). An order submitted at `now` is due at
`now + latency_ms` and fills at the quote *in force at the due time*: BUY at the ask, SELL at the
bid. Only when no quote has been seen does it fall back to the last candle close +/- slip_bps.
Stops and targets are checked on every quote and fill at the quote that crossed them (a gap
fills at the gapped price). Market orders pay the taker fee. All money is Decimal and the ledger
reconciles exactly: cash == starting + realized - fees - funding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from trading.book import Book, walk
from trading.model import (MONEY_Q, Fill, FundingApplied, FundingInfo, Ledger, Order,
                           OrderCancelled, OrderFilled, OrderRejected, OrderRested,
                           OrderSubmitted, Position, Quote, Side, TradeTick, px_dec)

TIFS = ("GTC", "IOC", "POST_ONLY")

BPS = Decimal("0.0001")
MAX_STARTING_CASH = Decimal("1e12")  # USDT; the command line allows the same


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    starting_cash: Decimal = Decimal("10000")
    taker_fee_bps: float = 6.0  # Bitunix VIP 0 futures
    maker_fee_bps: float = 2.0  # a resting limit order's fills (trades that reached it)
    slip_bps: float = 2.0  # used only when no quote exists at fill time
    latency_ms: int = 1000
    lot_size: Decimal = Decimal("0.001")
    min_qty: Decimal = Decimal("0.001")
    risk_per_trade: float = 0.005  # fraction of equity lost if the stop is hit
    max_leverage: float = 1.0  # notional cap as a multiple of equity
    symbol: str = "BTCUSDT"
    fixed_qty: Decimal | None = None  # every entry this size (BTC) instead of risk sizing

    def __post_init__(self) -> None:
        problems = []
        for name in ("starting_cash", "lot_size", "min_qty"):
            v = getattr(self, name)
            if isinstance(v, (int, float, str)) and not isinstance(v, bool):
                try:
                    v = Decimal(repr(v) if isinstance(v, float) else str(v))
                except ArithmeticError:
                    v = Decimal("NaN")
                object.__setattr__(self, name, v)
            if not isinstance(v, Decimal) or not v.is_finite():
                problems.append(f"{name} must be a finite number")
                object.__setattr__(self, name, Decimal("NaN"))
        if self.starting_cash.is_finite() and not 0 < self.starting_cash <= MAX_STARTING_CASH:
            problems.append(f"starting_cash must be > 0 and <= {MAX_STARTING_CASH:.0e}")
        for name in ("taker_fee_bps", "maker_fee_bps", "slip_bps"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 <= v <= 1000):
                problems.append(f"{name} must be in [0, 1000]")
        if not (isinstance(self.latency_ms, int) and 0 <= self.latency_ms <= 600_000):
            problems.append("latency_ms must be an integer in [0, 600000]")
        if self.lot_size.is_finite() and self.min_qty.is_finite() and not (
                self.lot_size > 0 and self.min_qty >= self.lot_size):
            problems.append("lot_size must be > 0 and min_qty >= lot_size")
        if not (math.isfinite(self.risk_per_trade) and 0 < self.risk_per_trade <= 0.5):
            problems.append("risk_per_trade must be in (0, 0.5]")
        if not (math.isfinite(self.max_leverage) and 0 < self.max_leverage <= 125):
            problems.append("max_leverage must be in (0, 125]")
        if self.fixed_qty is not None:
            v = self.fixed_qty
            if isinstance(v, (int, float, str)) and not isinstance(v, bool):
                try:
                    v = Decimal(repr(v) if isinstance(v, float) else str(v))
                except ArithmeticError:
                    v = Decimal("NaN")
            if not (isinstance(v, Decimal) and v.is_finite() and 0 < v <= Decimal("1e6")
                    and self.lot_size.is_finite() and self.lot_size > 0
                    and v % self.lot_size == 0 and v >= self.min_qty):
                problems.append(f"fixed_qty must be a multiple of the lot size "
                                f"{self.lot_size} from {self.min_qty} to 1e6")
                v = None
            object.__setattr__(self, "fixed_qty", v)
        if problems:
            raise ValueError("broker: " + "; ".join(problems))


def _q(x: Decimal) -> Decimal:
    return x.quantize(MONEY_Q, rounding=ROUND_HALF_EVEN)


def unrealized_pnl(qty: Decimal, avg_px: Decimal, mark: float | None) -> Decimal:
    """Mark-to-market PnL of a position of `qty` (negative: short) bought at `avg_px`, at
    the price `mark` (the quote's mid): the one formula the broker and the window use."""
    if not qty or mark is None:
        return Decimal("0")
    return _q((px_dec(mark) - avg_px) * qty)


class PaperBroker:
    """Deterministic paper execution; every method returns the events it caused."""

    def __init__(self, config: BrokerConfig, order_prefix: str = "ord") -> None:
        self.config = config
        self.order_prefix = order_prefix
        self.ledger = Ledger(starting_cash=config.starting_cash, cash=config.starting_cash)
        self.position = Position()
        self.pending: list[Order] = []
        self.quote: Quote | None = None
        self.last_close: float | None = None
        self.next_order_num = 1
        self.fill_seq = 0
        self.filled_order_ids: set[str] = set()
        self.funding_due_ts: int | None = None
        self.funding_rate: float = 0.0
        self.mark_px: float | None = None
        self.last_funding_ts: int | None = None
        self.quote_stale = False  # after a restart or reconnect: no fill until a fresh quote
        self.book: Book | None = None  # the latest depth snapshot (None: top of book only)
        self.resting: list[Order] = []  # limit orders working at the exchange

    # ---- queries ----
    def mark(self) -> float | None:
        """Return the mid used to mark the position (latest quote, else last close)."""
        if self.quote is not None:
            return self.quote.mid
        return self.last_close

    def unrealized(self) -> Decimal:
        if self.position.is_flat:
            return Decimal("0")
        return unrealized_pnl(self.position.qty, self.position.avg_px, self.mark())

    def equity(self) -> Decimal:
        return self.ledger.cash + self.unrealized()

    def size_for(self, stop_distance: float, price: float) -> Decimal:
        """Return the lot-rounded qty of an entry: `fixed_qty` when set; else risking
        `risk_per_trade` of equity at `stop_distance`; with no stop, the notional cap
        (`max_leverage` x equity)."""
        cfg = self.config
        if cfg.fixed_qty is not None:
            return cfg.fixed_qty
        eq = self.equity()
        if stop_distance < 0 or price <= 0 or eq <= 0:
            return Decimal("0")
        cap = eq * Decimal(repr(cfg.max_leverage)) / Decimal(repr(price))
        qty = cap
        if stop_distance > 0:
            qty = min(eq * Decimal(repr(cfg.risk_per_trade)) / Decimal(repr(stop_distance)), cap)
        return (qty / cfg.lot_size).to_integral_value(rounding=ROUND_DOWN) * cfg.lot_size

    # ---- commands ----
    def submit(self, side: Side, reason: str, *, now_ts: int, signal_ts: int, signal_px: float,
               stop_distance: float = 0.0, target_distance: float = 0.0,
               qty: Decimal | None = None) -> list:
        """Queue a market order due at now_ts + latency_ms (entries sized by risk, exits reduce-only)."""
        order_id = self._new_id()
        reduce_only = reason != "entry"
        if reduce_only:
            qty = abs(self.position.qty) if qty is None else qty
            if qty <= 0:
                return [OrderRejected(order_id, now_ts, "no position to exit")]
        elif qty is None:
            ref = self.quote.ask if (self.quote and side is Side.BUY) else (
                self.quote.bid if self.quote else signal_px)
            qty = self.size_for(stop_distance, ref)
        return self._queue(Order(
            order_id=order_id, side=side, qty=qty, reason=reason, signal_ts=signal_ts,
            signal_px=signal_px, due_ts=now_ts + self.config.latency_ms, reduce_only=reduce_only,
            stop_distance=stop_distance, target_distance=target_distance), now_ts)

    def _new_id(self) -> str:
        order_id = f"{self.order_prefix}-{self.next_order_num:05d}"
        self.next_order_num += 1
        return order_id

    def _queue(self, order: Order, now_ts: int) -> list:
        """Send an order (market or limit): checked for size, due after the latency."""
        if order.qty < self.config.min_qty:
            return [OrderRejected(order.order_id, now_ts,
                                  f"size {order.qty} below minimum {self.config.min_qty}")]
        self.pending.append(order)
        self.pending.sort(key=lambda o: (o.due_ts, o.order_id))
        return [OrderSubmitted(order)]

    def on_candle_close(self, close: float) -> None:
        """Remember the last candle close (fallback price when no quote exists)."""
        self.last_close = close

    def submit_limit(self, side: Side, reason: str, *, now_ts: int, signal_ts: int,
                     signal_px: float, price: float, qty: Decimal | None = None,
                     tif: str = "GTC", timeout_ms: int = 0, stop_distance: float = 0.0,
                     target_distance: float = 0.0) -> list:
        """Send a limit order: it reaches the exchange after the latency like any order."""
        order_id = self._new_id()
        if tif not in TIFS:
            return [OrderRejected(order_id, now_ts, f"unknown time in force {tif!r}")]
        if not (isinstance(price, float) and math.isfinite(price) and price > 0):
            return [OrderRejected(order_id, now_ts, f"limit price {price!r} is not positive")]
        if qty is None:
            qty = self.size_for(stop_distance, price)
        return self._queue(Order(
            order_id=order_id, side=side, qty=qty, reason=reason, signal_ts=signal_ts,
            signal_px=signal_px, due_ts=now_ts + self.config.latency_ms,
            reduce_only=reason != "entry", stop_distance=stop_distance,
            target_distance=target_distance, order_type="limit", limit_px=float(px_dec(price)),
            tif=tif, timeout_ms=int(timeout_ms)), now_ts)

    def on_book(self, book: Book) -> None:
        """Keep the latest depth snapshot (each push is a whole snapshot of the top levels)."""
        if self.book is None or book.ts >= self.book.ts:
            self.book = book

    def on_trade(self, t: TradeTick) -> list:
        """A print: resting limit orders on the other side of it fill, queue ahead first."""
        if not self.resting:
            return []
        events = self._cancel_due(t.ts)
        for i, o in enumerate(list(self.resting)):
            if o not in self.resting:
                continue
            buy = o.side is Side.BUY
            # a sell-aggressor print at or below a resting bid reaches it; a buy-aggressor
            # print at or above a resting ask does (an unknown side reaches neither)
            hits = (t.side == "sell" and t.price <= o.limit_px) if buy else (
                t.side == "buy" and t.price >= o.limit_px)
            if not hits:
                continue
            volume = Decimal(repr(t.qty))  # sizes as the exchange wrote them: no float drift
            queue = Decimal(repr(o.queue_ahead))
            ahead = min(queue, volume)
            volume -= ahead
            lot = self.config.lot_size
            take = (volume / lot).to_integral_value(rounding=ROUND_DOWN) * lot
            take = min(take, o.remaining)
            o2 = replace(o, queue_ahead=float(queue - ahead))
            self.resting[self.resting.index(o)] = o2
            if take <= 0:
                continue
            events.append(self._fill_limit(o2, take, t.ts, maker=True))
        return events

    def has_working(self) -> bool:
        """Orders in flight or resting: the strategy waits for them."""
        return bool(self.pending or self.resting)

    def next_due(self) -> int | None:
        """The next time the broker must act by the clock (an arrival or a cancel)."""
        times = [o.due_ts for o in self.pending[:1]]
        times += [o.cancel_ts for o in self.resting if o.cancel_ts is not None]
        return min(times) if times else None

    def mark_quote_stale(self) -> None:
        """The feed was down (restart, reconnect): the last quote is no longer known to be in
        force, so nothing fills until a fresh one arrives; orders that came due meanwhile go
        out at that fresh quote."""
        self.quote_stale = True

    def on_quote(self, q: Quote) -> list:
        """Apply a new best bid/ask: fill orders due before it at the old quote, then check stops."""
        if self.quote_stale:
            self.quote_stale = False
            self.retime_overdue(q.ts)
        ts = q.ts
        # each step only when it has something to do (a replay applies millions of quotes)
        events = self._settle_funding_until(ts) if self.funding_due_ts is not None else []
        if self.pending:
            events += self._fill_due(lambda due: due < ts)
        if self.resting:
            events += self._cancel_due(ts)
        self.quote = q
        pos = self.position
        if pos.stop_px is not None or pos.target_px is not None:
            events += self._check_exits(q)
        if self.pending:
            events += self._fill_due(lambda due: due <= ts)
        return events

    def advance(self, now_ts: int) -> list:
        """Fill every order due at or before `now_ts` at the quote in force now."""
        if self.quote_stale:
            return []
        events = self._settle_funding_until(now_ts)
        events += self._fill_due(lambda due: due <= now_ts)
        events += self._cancel_due(now_ts)
        return events

    def on_funding_info(self, info: FundingInfo) -> list:
        """Learn the next funding time and rate from the `price` channel; settle a passed one."""
        events = self._maybe_fund(info.ts)
        self.mark_px = info.mark_px
        if info.next_funding_ts > info.ts:
            self.funding_due_ts = info.next_funding_ts
            self.funding_rate = info.funding_rate
        return events

    def flatten(self, now_ts: int, reason: str = "flatten") -> list:
        """Close the position now at the current bid/ask and cancel pending orders."""
        events: list = []
        for o in list(self.pending):
            self.pending.remove(o)
            events.append(OrderCancelled(o.order_id, now_ts, f"cancelled by {reason}",
                                         o.remaining if o.order_type == "limit" else None))
        for o in list(self.resting):
            self.resting.remove(o)
            events.append(OrderCancelled(o.order_id, now_ts, f"cancelled by {reason}",
                                         o.remaining))
        if self.position.is_flat:
            return events
        side = Side.SELL if self.position.qty > 0 else Side.BUY
        order_id = self._new_id()
        order = Order(order_id=order_id, side=side, qty=abs(self.position.qty), reason=reason,
                      signal_ts=now_ts, signal_px=self.mark() or 0.0, due_ts=now_ts,
                      reduce_only=True)
        events.append(OrderSubmitted(order))
        events.append(self._execute(order, now_ts, trigger=reason, trigger_px=None,
                                    strategy=False))
        return events

    # ---- internals ----
    def _fill_due(self, is_due) -> list:
        events = []
        while self.pending and is_due(self.pending[0].due_ts):
            order = self.pending.pop(0)
            if order.order_type == "limit":
                events += self._arrive_limit(order, order.due_ts)
                continue
            if order.reduce_only:
                held = abs(self.position.qty)
                same_dir = self.position.side is not None and self.position.side is not order.side
                if held == 0 or not same_dir:
                    events.append(OrderCancelled(order.order_id, order.due_ts,
                                                 "position already closed"))
                    continue
                if order.qty > held:
                    order = replace(order, qty=held)
            events.append(self._execute(order, order.due_ts, trigger=None, trigger_px=None,
                                        strategy=True))
        return events

    def _check_exits(self, q: Quote) -> list:
        pos = self.position
        if pos.is_flat:
            return []
        hit = None
        if pos.qty > 0:
            if pos.stop_px is not None and q.bid <= pos.stop_px:
                hit = ("stop", pos.stop_px)
            elif pos.target_px is not None and q.bid >= pos.target_px:
                hit = ("target", pos.target_px)
        else:
            if pos.stop_px is not None and q.ask >= pos.stop_px:
                hit = ("stop", pos.stop_px)
            elif pos.target_px is not None and q.ask <= pos.target_px:
                hit = ("target", pos.target_px)
        if hit is None:
            return []
        reason, level = hit
        side = Side.SELL if pos.qty > 0 else Side.BUY
        order_id = self._new_id()
        order = Order(order_id=order_id, side=side, qty=abs(pos.qty), reason=reason,
                      signal_ts=q.ts, signal_px=level, due_ts=q.ts, reduce_only=True)
        return [OrderSubmitted(order),
                self._execute(order, q.ts, trigger=reason, trigger_px=level, strategy=False)]

    def _taker_levels(self, buy: bool) -> tuple[list, str]:
        """The levels a taker meets now: the quote's best (fresher than any snapshot), then
        the latest depth snapshot's levels beyond it. Without depth the best level holds any
        size ("top_of_book"); with a depth snapshot the fill walks it ("book")."""
        q = self.quote
        best = q.ask if buy else q.bid
        size = q.ask_size if buy else q.bid_size
        book = self.book
        if book is None:
            return [(best, math.inf)], "top_of_book"
        deeper = [lvl for lvl in book.side_for(buy) if (lvl[0] > best if buy else lvl[0] < best)]
        if size <= 0:  # a quote without sizes: the snapshot's own levels at and beyond it
            same = [lvl for lvl in book.side_for(buy) if lvl[0] == best]
            return (same or [(best, deeper[0][1] if deeper else math.inf)]) + deeper, "book"
        return [(best, size)] + deeper, "book"

    def _execute(self, order: Order, fill_ts: int, *, trigger: str | None,
                 trigger_px: float | None, strategy: bool) -> OrderFilled:
        """A market order (or a stop/target/flatten): walks the book in force now."""
        cfg = self.config
        q = self.quote
        buy = order.side is Side.BUY
        legs: tuple = ()
        depth_bps, exhausted, model = 0.0, False, "top_of_book"
        if q is not None:
            bid, ask = q.bid, q.ask
            levels, model = self._taker_levels(buy)
            if model == "top_of_book":
                px = ask if buy else bid
                legs = ((px, order.qty),)
            else:
                w = walk(levels, order.qty, buy)
                legs, px, exhausted = w.legs, w.vwap, w.exhausted
                depth_bps = w.cost_bps(buy)
        else:
            base = self.last_close if self.last_close is not None else order.signal_px
            bid = ask = base
            slip = cfg.slip_bps / 1e4
            px = base * (1 + slip) if buy else base * (1 - slip)
            px = float(px_dec(round(px, 8)))
            trigger = trigger or "no_quote_fallback"
            model = "no_quote_fallback"
            legs = ((px, order.qty),)
        return self._fill(order, order.qty, px, fill_ts, bid=bid, ask=ask, trigger=trigger,
                          trigger_px=trigger_px, strategy=strategy, maker=False, legs=legs,
                          depth_bps=depth_bps, exhausted=exhausted, model=model)

    def _fill(self, order: Order, qty: Decimal, px: float, fill_ts: int, *, bid: float,
              ask: float, trigger, trigger_px, strategy: bool, maker: bool, legs: tuple,
              depth_bps: float, exhausted: bool, model: str,
              filled_before: Decimal = Decimal("0")) -> OrderFilled:
        cfg = self.config
        mid = (bid + ask) / 2.0
        buy = order.side is Side.BUY
        sign = order.side.sign
        best = ask if buy else bid
        fee_bps = cfg.maker_fee_bps if maker else cfg.taker_fee_bps
        fee = _q(qty * px_dec(px) * Decimal(repr(fee_bps)) * BPS)
        part = order if qty == order.qty else replace(order, qty=qty)
        realized = self._apply_fill(part, px, fill_ts)
        self.ledger.fees += fee
        self.ledger.realized_pnl += realized
        self.ledger.cash += realized - fee
        self.fill_seq += 1
        done = filled_before + qty
        if done >= order.qty:
            self.filled_order_ids.add(order.order_id)
        # spread: the best price against the mid (a maker fill at its own price: against mid)
        ref = px if maker or model in ("top_of_book", "no_quote_fallback") else best
        fill = Fill(
            order_id=order.order_id, seq=self.fill_seq, side=order.side, qty=qty,
            reason=order.reason, fill_ts=fill_ts, fill_px=px, bid=bid, ask=ask, fee=fee,
            fee_bps=fee_bps,
            spread_cost_bps=sign * (ref - mid) / mid * 1e4 if mid else 0.0,
            realized_pnl=realized, position_after=self.position.qty, cash_after=self.ledger.cash,
            signal_ts=order.signal_ts if strategy else None,
            signal_px=order.signal_px if strategy else None,
            due_ts=order.due_ts if strategy else None,
            latency_drift_bps=(sign * (mid - order.signal_px) / order.signal_px * 1e4)
            if strategy and order.signal_px else None,
            trigger=trigger, trigger_px=trigger_px, order_qty=order.qty, order_filled=done,
            order_type=order.order_type, liquidity="maker" if maker else "taker", legs=legs,
            depth_cost_bps=depth_bps, depth_exhausted=exhausted, price_model=model,
        )
        return OrderFilled(fill)

    # ---- limit orders ----
    def _arrive_limit(self, order: Order, ts: int) -> list:
        """A limit order reaches the exchange: the marketable part takes the book up to its
        price (taker); post-only that would take is cancelled; IOC cancels the rest; GTC and
        post-only rest, behind the size already on the book at their price."""
        q = self.quote
        buy = order.side is Side.BUY
        L = order.limit_px
        if order.reduce_only and not self._reduces(order):
            return [OrderCancelled(order.order_id, ts, "position already closed",
                                   order.remaining)]
        events: list = []
        if q is not None:
            marketable = (q.ask <= L) if buy else (q.bid >= L)
            if marketable and order.tif == "POST_ONLY":
                return [OrderCancelled(order.order_id, ts, "post-only order would take "
                                       "liquidity", order.remaining)]
            if marketable:
                levels, model = self._taker_levels(buy)
                if model == "top_of_book":
                    levels = [(q.ask if buy else q.bid, math.inf)]
                w = walk(levels, order.remaining, buy, limit_px=L)
                lot = self.config.lot_size
                take = (w.filled / lot).to_integral_value(rounding=ROUND_DOWN) * lot
                if take > 0:
                    if take != w.filled:
                        w = walk(levels, take, buy, limit_px=L)
                    events.append(self._fill(order, take, w.vwap, ts, bid=q.bid, ask=q.ask,
                                             trigger=None, trigger_px=None, strategy=True,
                                             maker=False, legs=w.legs,
                                             depth_bps=w.cost_bps(buy), exhausted=False,
                                             model=model, filled_before=order.filled_qty))
                    order = replace(order, filled_qty=order.filled_qty + take)
        if order.remaining <= 0:
            return events
        if order.tif == "IOC":
            events.append(OrderCancelled(order.order_id, ts, "IOC remainder cancelled",
                                         order.remaining))
            return events
        # the size on the book at our price when we arrive is ahead of us in the queue
        ahead = 0.0
        if q is not None and (q.bid if buy else q.ask) == L:
            ahead = q.bid_size if buy else q.ask_size
        elif self.book is not None:
            ahead = self.book.size_at(L, buy)
        cancel = ts + order.timeout_ms + self.config.latency_ms if order.timeout_ms else None
        order = replace(order, queue_ahead=float(ahead), cancel_ts=cancel)
        self.resting.append(order)
        events.append(OrderRested(order, ts))
        return events

    def _reduces(self, order: Order) -> bool:
        pos = self.position
        return pos.side is not None and pos.side is not order.side

    def _fill_limit(self, order: Order, qty: Decimal, ts: int, maker: bool) -> OrderFilled:
        q = self.quote
        bid, ask = (q.bid, q.ask) if q is not None else (order.limit_px, order.limit_px)
        if order.reduce_only:
            qty = min(qty, abs(self.position.qty)) if self._reduces(order) else Decimal("0")
        ev = self._fill(order, qty, order.limit_px, ts, bid=bid, ask=ask, trigger=None,
                        trigger_px=None, strategy=True, maker=maker,
                        legs=((order.limit_px, qty),), depth_bps=0.0, exhausted=False,
                        model="queue", filled_before=order.filled_qty)
        i = self.resting.index(order)
        done = replace(order, filled_qty=order.filled_qty + qty)
        if done.remaining <= 0:
            self.resting.pop(i)
        else:
            self.resting[i] = done
        return ev

    def _cancel_due(self, now_ts: int) -> list:
        """Timeouts: a cancel sent at arrival + timeout takes effect a latency later."""
        events = []
        for o in [o for o in self.resting if o.cancel_ts is not None and o.cancel_ts <= now_ts]:
            self.resting.remove(o)
            events.append(OrderCancelled(o.order_id, o.cancel_ts, "timeout", o.remaining))
        return events

    def _apply_fill(self, order: Order, px: float, ts: int) -> Decimal:
        pos = self.position
        signed = order.qty * order.side.sign
        p = px_dec(px)
        realized = Decimal("0")
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            new_qty = pos.qty + signed
            if pos.qty == 0:
                pos.avg_px = p
                pos.opened_ts = ts
            else:
                pos.avg_px = _q((pos.avg_px * abs(pos.qty) + p * order.qty) / abs(new_qty))
            pos.qty = new_qty
        else:
            closing = min(abs(pos.qty), order.qty)
            direction = 1 if pos.qty > 0 else -1
            realized = _q((p - pos.avg_px) * closing * direction)
            pos.qty += signed
            if pos.qty == 0:
                pos.avg_px = Decimal("0")
                pos.stop_px = pos.target_px = None
                pos.opened_ts = None
            elif (pos.qty > 0) != (direction > 0):  # reversed through flat
                pos.avg_px = p
                pos.opened_ts = ts
                pos.stop_px = pos.target_px = None
        if order.reason == "entry" and not pos.is_flat:
            # levels rounded to 1e-8: exact enough, and readable in reports; from the average
            # entry price (one fill: its price; partial fills: where the position stands)
            base = float(pos.avg_px)
            if order.stop_distance > 0:
                pos.stop_px = round(base - order.stop_distance if pos.qty > 0
                                    else base + order.stop_distance, 8)
            if order.target_distance > 0:
                pos.target_px = round(base + order.target_distance if pos.qty > 0
                                      else base - order.target_distance, 8)
        return realized

    def _settle_funding_until(self, now_ts: int) -> list:
        """Settle a funding time that has passed, on the position held at that instant."""
        due = self.funding_due_ts
        if due is None or now_ts < due:
            return []
        events = self._fill_due(lambda d: d < due)  # orders due before funding fill first
        return events + self._maybe_fund(due)

    def _maybe_fund(self, now_ts: int) -> list:
        due = self.funding_due_ts
        if due is None or now_ts < due or self.last_funding_ts == due:
            return []
        self.last_funding_ts = due
        self.funding_due_ts = None
        mark = self.mark_px or self.mark()
        if self.position.is_flat or mark is None:
            return []
        amount = _q(self.position.qty * px_dec(mark) * Decimal(repr(self.funding_rate)))
        self.ledger.funding += amount
        self.ledger.cash -= amount
        return [FundingApplied(ts=due, rate=self.funding_rate, mark_px=mark,
                               position_qty=self.position.qty, amount=amount)]

    # ---- crash recovery ----
    def apply_recorded_fill(self, f: Fill) -> bool:
        """Replay a journalled fill the state file missed; return False if already applied.

        The journal is the source of truth for fills: a kill between the journal commit and the
        state write leaves the state one fill behind, and this brings it level without making a
        new fill (the pending order it filled is removed, so it can never fill twice).
        """
        if f.seq <= self.fill_seq or f.order_id in self.filled_order_ids:
            return False
        order = next((o for o in self.pending + self.resting if o.order_id == f.order_id),
                     None)
        partial = f.order_qty is not None and f.order_filled is not None \
            and f.order_filled < f.order_qty
        if order is not None:
            where = self.pending if order in self.pending else self.resting
            i = where.index(order)
            if partial:  # a partial fill of a working limit order: it goes on working
                where[i] = replace(order, filled_qty=f.order_filled)
            else:
                where.pop(i)
            order = replace(order, qty=f.qty)
        else:
            order = Order(order_id=f.order_id, side=f.side, qty=f.qty, reason=f.reason,
                          signal_ts=f.signal_ts or f.fill_ts, signal_px=f.signal_px or f.fill_px,
                          due_ts=f.due_ts or f.fill_ts, reduce_only=f.reason != "entry")
        realized = self._apply_fill(order, f.fill_px, f.fill_ts)
        if realized != f.realized_pnl or self.position.qty != f.position_after:
            raise ValueError(f"journal fill {f.order_id} does not match the restored state "
                             f"(realized {realized} vs {f.realized_pnl}, position "
                             f"{self.position.qty} vs {f.position_after})")
        self.ledger.fees += f.fee
        self.ledger.realized_pnl += f.realized_pnl
        self.ledger.cash += f.realized_pnl - f.fee
        if self.ledger.cash != f.cash_after:
            raise ValueError(f"journal fill {f.order_id}: cash {self.ledger.cash} != "
                             f"{f.cash_after}")
        self.fill_seq = f.seq
        if not partial:
            self.filled_order_ids.add(f.order_id)
        num = f.order_id.rsplit("-", 1)[-1]
        if num.isdigit():
            self.next_order_num = max(self.next_order_num, int(num) + 1)
        return True

    def retime_overdue(self, now_ts: int) -> list[str]:  # noqa: D401
        """After a restart, orders that came due while the session was down go out now.

        They could not have been sent while the process was down, so they fill at the first
        quote in force after the restart, not at a quote from before the crash.
        """
        moved = []
        for i, o in enumerate(self.pending):
            if o.due_ts < now_ts:
                self.pending[i] = replace(o, due_ts=now_ts)
                moved.append(o.order_id)
        self.pending.sort(key=lambda o: (o.due_ts, o.order_id))
        return moved

    # ---- persistence ----
    def to_state(self) -> dict:
        """Return everything needed to resume this broker, as JSON-ready data."""
        return {
            "ledger": self.ledger.to_dict(), "position": self.position.to_dict(),
            "pending": [o.to_dict() for o in self.pending],
            "next_order_num": self.next_order_num, "fill_seq": self.fill_seq,
            "funding_due_ts": self.funding_due_ts, "funding_rate": self.funding_rate,
            "mark_px": self.mark_px, "last_funding_ts": self.last_funding_ts,
            "last_close": self.last_close, "order_prefix": self.order_prefix,
            "filled_order_ids": sorted(self.filled_order_ids), "quote_stale": self.quote_stale,
            "resting": [o.to_dict() for o in self.resting],
            "quote": None if self.quote is None else {
                "ts": self.quote.ts, "bid": self.quote.bid, "ask": self.quote.ask,
                "bid_size": self.quote.bid_size, "ask_size": self.quote.ask_size},
        }

    def restore(self, state: dict) -> None:
        """Load `to_state()` output (raises KeyError/ValueError/TypeError if malformed)."""
        ledger = Ledger.from_dict(state["ledger"])
        position = Position.from_dict(state["position"])
        pending = [Order.from_dict(o) for o in state.get("pending", [])]
        self.ledger, self.position, self.pending = ledger, position, pending
        self.next_order_num = int(state["next_order_num"])
        self.fill_seq = int(state["fill_seq"])
        self.funding_due_ts = state.get("funding_due_ts")
        self.funding_rate = float(state.get("funding_rate", 0.0))
        self.mark_px = state.get("mark_px")
        self.last_funding_ts = state.get("last_funding_ts")
        self.last_close = state.get("last_close")
        self.order_prefix = state.get("order_prefix", self.order_prefix)
        self.filled_order_ids = set(state.get("filled_order_ids", []))
        self.quote_stale = bool(state.get("quote_stale", False))
        self.resting = [Order.from_dict(o) for o in state.get("resting", [])]
        self.book = None  # the snapshot in force before a restart is not now: the next push
        q = state.get("quote")
        self.quote = None if q is None else Quote(symbol=self.config.symbol, **q)
