"""The dock panels and status bar widgets of the main window (GUI thread only)."""
from __future__ import annotations

import html
import logging
import math
from collections import deque
from decimal import Decimal, InvalidOperation
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, QTimer
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QFrame, QGridLayout,
                               QHBoxLayout, QHeaderView, QLabel, QMessageBox, QPlainTextEdit,
                               QProgressBar, QPushButton, QSizePolicy, QTableView,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from gui import theme
from gui.theme import (fmt_bps, fmt_datetime_utc, fmt_duration_ms, fmt_int, fmt_money, fmt_pnl_exact,
                       fmt_price, fmt_qty, fmt_time_utc, to_float)
from storage.report_format import fill_liquidity, fill_order_size, fill_pricing_lines, is_true

log = logging.getLogger("btc_laptop_agents.gui")

RIGHT = Qt.AlignRight | Qt.AlignVCenter
CENTER = Qt.AlignCenter
LEFT = Qt.AlignLeft | Qt.AlignVCenter
SORT_ROLE = Qt.UserRole + 1


# ============================================================================ banner

class ElidedLabel(QLabel):
    """One line of plain text that, when it does not fit, ends in "…" (never cut mid-letter);
    text() is the whole line and so is the tooltip."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setTextFormat(Qt.PlainText)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt API
        self._full = str(text)
        self.setToolTip(self._full)
        self._elide()

    def text(self) -> str:
        return self._full

    def shown_text(self) -> str:
        """What is on screen: the line, or its elided start."""
        return super().text()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = self.contentsRect().width()
        shown = (self.fontMetrics().elidedText(self._full, Qt.ElideRight, width)
                 if width > 0 else self._full)
        super().setText(shown)


class Banner(QFrame):
    """A full-width coloured bar with a message (offline fallback, watchdog gave up)."""

    STYLES = {
        "warning": ("#fde047", "#422006"),
        "error": ("#dc2626", "#ffffff"),
        "info": ("#2563eb", "#ffffff"),
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.RichText)
        self.close_button = QPushButton("×")
        self.close_button.setFixedSize(28, 24)
        self.close_button.setToolTip("Hide this message")
        self.close_button.clicked.connect(self.dismiss)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(14, 7, 8, 7)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.close_button, 0, Qt.AlignTop)
        self.level = ""
        self.dismissed = False
        self.hide()

    def dismiss(self) -> None:
        """Hide until the next message (the user closed it)."""
        self.dismissed = True
        self.hide()

    def reset(self) -> None:
        self.dismissed = False
        self.label.setText("")
        self.hide()

    def show_message(self, text_html: str, level: str = "warning") -> None:
        bg, fg = self.STYLES.get(level, self.STYLES["warning"])
        self.level = level
        self.dismissed = False
        self.setStyleSheet(
            f"QFrame#banner {{ background: {bg}; border-bottom: 1px solid rgba(0,0,0,40); }} QFrame#banner QLabel {{ color: {fg}; "
            f"font-weight: 600; }} QFrame#banner QPushButton {{ background: transparent; "
            f"color: {fg}; border: none; font-size: 15pt; padding: 0; }}")
        self.label.setText(text_html)
        self.show()

    def text(self) -> str:
        return self.label.text()


# ============================================================================ position

class PositionPanel(QWidget):
    """Side, qty, prices, PnL and equity of the open position."""

    ROWS = (("side", "Side"), ("qty", "Quantity"), ("avg_px", "Avg price"),
            ("stop_px", "Stop"), ("target_px", "Target"), ("mark", "Bid / ask"),
            ("unrealized", "Unrealized PnL"), ("realized", "Realized PnL"), ("fees", "Fees"),
            ("equity", "Equity"))

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(12, 10, 12, 10)
        outer.setSpacing(8)
        hero_key = QLabel("Net PnL this session")
        hero_key.setObjectName("panelKey")
        self.hero = QLabel("–")
        self.hero.setObjectName("panelHero")
        self.hero_sub = QLabel("")
        self.hero_sub.setObjectName("chartHint")
        hero = QGridLayout()
        hero.setVerticalSpacing(0)
        hero.addWidget(hero_key, 0, 0)
        hero.addWidget(self.hero, 1, 0)
        hero.addWidget(self.hero_sub, 1, 1, Qt.AlignRight | Qt.AlignBottom)
        hero.setColumnStretch(0, 1)
        outer.addLayout(hero)
        sep = QFrame()
        sep.setFrameShape(QFrame.HLine)
        sep.setFixedHeight(1)
        self._sep = sep
        sep.setStyleSheet(f"background: {theme.BORDER}; border: none;")
        outer.addWidget(sep)
        grid = QGridLayout()
        outer.addLayout(grid)
        outer.addStretch(1)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(4)
        self.values: dict[str, QLabel] = {}
        for i, (key, title) in enumerate(self.ROWS):
            k = QLabel(title)
            k.setObjectName("panelKey")
            v = QLabel("–")
            v.setObjectName("panelValue")
            v.setAlignment(RIGHT)
            v.setTextInteractionFlags(Qt.TextSelectableByMouse)
            grid.addWidget(k, i, 0)
            grid.addWidget(v, i, 1)
            self.values[key] = v
        grid.setColumnStretch(1, 1)
        self._pos: dict = {}
        self._health: dict | None = None
        self.clear()

    def apply_palette(self) -> None:
        """Repaint in the scheme now in force (the colours are set per value)."""
        self._sep.setStyleSheet(f"background: {theme.BORDER}; border: none;")
        if self._health is not None:
            self.set_health(self._health)
        elif self._pos:
            self.set_position(self._pos)
        else:
            self._set_side(0.0)

    def clear(self) -> None:
        self._health = None
        self._quote = None
        for v in self.values.values():
            v.setText("–")
            v.setStyleSheet("")
        self.hero.setText("–")
        self.hero.setStyleSheet("")
        self.hero_sub.setText("")
        self._set_side(0.0)

    def _set(self, key: str, text: str, colour: str | None = None) -> None:
        lab = self.values[key]
        lab.setText(text)
        lab.setStyleSheet(f"color: {colour};" if colour else "")

    def _set_side(self, qty: float) -> None:
        if qty > 0:
            self._set("side", "LONG", theme.GREEN)
        elif qty < 0:
            self._set("side", "SHORT", theme.RED)
        else:
            self._set("side", "FLAT", theme.MUTED)

    def set_position(self, pos: dict) -> None:
        self._pos = dict(pos or {})
        qty = to_float(self._pos.get("qty")) or 0.0
        self._set_side(qty)
        self._set("qty", f"{fmt_qty(abs(qty))} BTC" if qty else "0")
        for key in ("avg_px", "stop_px", "target_px"):
            v = to_float(self._pos.get(key)) if qty else None
            self._set(key, fmt_price(v) if v else "–")

    def set_health(self, h: dict) -> None:
        self._health = h
        if isinstance(h.get("position"), dict):
            self.set_position(h["position"])
        self._render(h)

    def _render(self, h: dict) -> None:
        h = self._with_quote(h)
        unreal, real, fees = h.get("unrealized"), h.get("realized"), h.get("fees")
        self._set("unrealized", fmt_money(unreal, sign=True), theme.sign_colour(unreal))
        self._set("realized", fmt_money(real, sign=True), theme.sign_colour(real))
        self._set("fees", fmt_money(fees))
        eq, start = to_float(h.get("equity")), to_float(h.get("starting_equity"))
        self._set("equity", f"{fmt_money(eq)} USDT" if eq is not None else "–")
        net = eq - start if eq is not None and start is not None else None
        self.hero.setText(f"{fmt_money(net, sign=True)} USDT" if net is not None else "–")
        self.hero.setStyleSheet(f"color: {theme.sign_colour(net)};")
        self.hero_sub.setText(f"{net / start * 100:+.2f} % of {fmt_money(start)}"
                              if net is not None and start else "")
        bid, ask = h.get("bid"), h.get("ask")
        self._set("mark", f"{fmt_price(bid)} / {fmt_price(ask)}" if bid and ask else "–")

    def on_quote(self, q) -> None:
        """A quote between two health snapshots (0.5 s apart, 30 s of market at 60x): bid/ask,
        unrealized PnL and equity follow it, as the chart's header does, by the broker's own
        formula, until a snapshot at least as new as the quote replaces them."""
        if getattr(q, "bid", None) is None:
            return
        self._quote = q
        if self._health is not None:
            self._render(self._health)

    def _with_quote(self, h: dict) -> dict:
        """`h` marked to the newest quote when that quote is newer than the snapshot."""
        q = getattr(self, "_quote", None)
        ts = to_float(h.get("data_ts"))
        if q is None or (ts is not None and ts >= q.ts):
            return h
        from trading.broker import unrealized_pnl
        try:
            qty = Decimal(str(self._pos.get("qty") or "0"))
            avg = Decimal(str(self._pos.get("avg_px") or "0"))
            old = Decimal(repr(float(h.get("unrealized") or 0.0)))
            eq = Decimal(repr(float(h["equity"])))
        except (InvalidOperation, KeyError, TypeError, ValueError):
            return h
        unreal = unrealized_pnl(qty, avg, q.mid)
        return {**h, "bid": q.bid, "ask": q.ask, "unrealized": float(unreal),
                "equity": float(eq - old + unreal)}


# ============================================================================ orders

class OrdersTable(QTableWidget):
    """Orders in flight or working at the exchange, one row per order id (upserted: a limit
    order published again when it rests, a partial fill, a health snapshot update its row):
    side, reason, type (market / limit GTC / limit IOC / post-only), limit price, quantity,
    filled, remaining and state: in flight with a live countdown (data time), resting with the
    queue ahead of it, partially filled. Removed when done (filled, rejected, cancelled)."""

    COLUMNS = ("Side", "Type", "Limit", "Qty", "Filled", "Left", "State")
    HEADER_TIPS = (
        "BUY / SELL, and why: entry / exit / stop / target / flatten",
        "market, or limit: GTC rests until filled or timed out, IOC takes what it can and "
        "cancels the rest, post-only rests or is cancelled (never takes)",
        "limit price (– for a market order)",
        "the order's quantity (BTC)",
        "how much of it has filled (BTC)",
        "remaining: what is left to fill (BTC)",
        "in flight to the exchange (countdown, data time) / resting, with the size ahead of it "
        "in the queue at its price (BTC) / partially filled",
    )
    SIDE_COL, TYPE_COL, LIMIT_COL, QTY_COL, FILLED_COL, LEFT_COL, STATE_COL = range(7)
    DUE_COL = STATE_COL  # an order in flight counts down in its state

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(self.COLUMNS), parent)
        self.setHorizontalHeaderLabels(self.COLUMNS)
        for col, tip in enumerate(self.HEADER_TIPS):
            head = self.horizontalHeaderItem(col)
            head.setToolTip(tip)
            if col in (self.SIDE_COL, self.STATE_COL):
                head.setTextAlignment(LEFT)
        _style_table(self)
        self.setWordWrap(False)
        hh = self.horizontalHeader()
        hh.setMinimumSectionSize(24)
        for col in range(len(self.COLUMNS)):
            hh.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        hh.setSectionResizeMode(self.STATE_COL, QHeaderView.Stretch)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self._orders: dict[str, dict] = {}
        self._resting: set[str] = set()  # published again by the exchange: working there
        self._done: set[str] = set()  # filled / cancelled: a late health snapshot can't revive
        self._data_ts: int | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(250)  # 4 Hz is plenty for a countdown / a log tail
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    @property
    def order_ids(self) -> list[str]:
        return list(self._orders)

    def clear_orders(self) -> None:
        self._orders.clear()
        self._resting.clear()
        self._done.clear()
        self.setRowCount(0)

    def set_data_time(self, ts_ms) -> None:
        v = to_float(ts_ms)
        if v is not None and (self._data_ts is None or v > self._data_ts):
            self._data_ts = int(v)

    # ---- events ----
    def add_order(self, order, resting: bool = False) -> None:
        """An order submitted, or (the same order id again) resting at the exchange with its
        queue position: a new row, or the existing row updated."""
        d = order.to_dict() if hasattr(order, "to_dict") else dict(order)
        oid = str(d.get("order_id"))
        if oid in self._done:
            return
        known = self._orders.get(oid)
        if known is not None:
            if str(d.get("order_type") or "market") == "limit":
                resting = True  # a limit order's second publish: it reached the exchange
            # what the table learnt from progress events is never undone by an older copy
            if _dec(known.get("filled_qty")) > _dec(d.get("filled_qty")):
                d["filled_qty"] = known.get("filled_qty")
            known.update(d)
            d = known
        else:
            self._orders[oid] = d
        if resting:
            self._resting.add(oid)
        row = self._row_of(oid)
        if row is None:
            row = self.rowCount()
            self.insertRow(row)
        self._render(row, oid, d)
        self._tick()

    def on_progress(self, p: dict) -> None:
        """A partial fill: {"order_id", "filled", "remaining", "status"}."""
        oid = str(p.get("order_id"))
        d = self._orders.get(oid)
        if d is None:
            return
        if p.get("filled") not in (None, ""):
            filled = _dec(p.get("filled"))
        else:  # only what is left: the rest of the order has filled
            filled = _dec(d.get("qty")) - _dec(p.get("remaining"))
        if filled > _dec(d.get("filled_qty")):
            d["filled_qty"] = str(filled)
        row = self._row_of(oid)
        if row is not None:
            self._render(row, oid, d)

    def finish_order(self, done: dict) -> str | None:
        """An order is done (filled / rejected / cancelled): remove its row; for a cancel,
        return a sentence for the log saying what was cancelled and what had filled."""
        oid = str(done.get("order_id"))
        d = self._orders.get(oid)
        self.remove_order(oid)
        if str(done.get("status")) != "cancelled":
            return None
        reason = str(done.get("reason") or "").strip()
        why = f" ({reason})" if reason else ""
        left = done.get("remaining")
        if d is None:
            what = f"order {oid}"
        else:
            what = (f"order {oid} ({d.get('side', '')} {order_type_text(d)} "
                    f"{fmt_qty(d.get('qty'))} BTC"
                    + (f" @ {fmt_price(d.get('limit_px'))}" if d.get("limit_px") else "") + ")")
        if left in (None, ""):
            return f"{what} cancelled{why}"
        filled = _dec(d.get("filled_qty")) if d is not None else Decimal(0)
        text = f"{what}: the unfilled {fmt_qty(left)} BTC cancelled{why}"
        if filled > 0:
            text += f"; {fmt_qty(filled)} BTC had filled"
        return text

    def remove_order(self, order_id: str) -> None:
        oid = str(order_id)
        self._done.add(oid)
        self._resting.discard(oid)
        if self._orders.pop(oid, None) is None:
            return
        self._remove_row(oid)

    def _row_of(self, order_id: str) -> int | None:
        for row in range(self.rowCount()):
            item = self.item(row, 0)
            if item is not None and item.data(Qt.UserRole) == order_id:
                return row
        return None

    def _remove_row(self, order_id: str) -> None:
        row = self._row_of(order_id)
        if row is not None:
            self.removeRow(row)

    # ---- cells ----
    def _render(self, row: int, oid: str, d: dict) -> None:
        side = str(d.get("side", ""))
        qty = _dec(d.get("qty"))
        filled = _dec(d.get("filled_qty"))
        left = max(qty - filled, Decimal(0))
        limit = d.get("limit_px") if str(d.get("order_type") or "market") == "limit" else None
        reason = str(d.get("reason") or "")
        cells = (f"{side} {reason}".strip(), order_type_text(d),
                 fmt_price(limit) if limit is not None else "–", fmt_qty(qty),
                 fmt_qty(filled), fmt_qty(left), self._state_text(oid, d))
        tip = self._tooltip(oid, d)
        for col, text in enumerate(cells):
            if col == self.STATE_COL:
                tip_of = f"{text}\n{tip}"
            else:
                tip_of = tip
            item = self.item(row, col)
            if item is None:
                item = QTableWidgetItem()
                self.setItem(row, col, item)
            item.setText(text)
            item.setTextAlignment(LEFT if col in (self.SIDE_COL, self.STATE_COL) else
                                  CENTER if col == self.TYPE_COL else RIGHT)
            item.setToolTip(tip_of)
            if col == 0:
                item.setForeground(QColor(theme.GREEN if side == "BUY" else theme.RED))
                item.setData(Qt.UserRole, oid)
        self._colour_state(row)

    def _state_text(self, oid: str, d: dict) -> str:
        filled, qty = _dec(d.get("filled_qty")), _dec(d.get("qty"))
        if filled > 0 and filled < qty:
            return "partially filled"
        if oid in self._resting:
            ahead = to_float(d.get("queue_ahead")) or 0.0
            # BTC, as every quantity of the table (the header's tooltip says so)
            return (f"resting, {fmt_qty(ahead)} ahead" if round(ahead, 3) > 0
                    else "resting, first in queue")
        due = to_float(d.get("due_ts"))
        if due is None or self._data_ts is None:
            return "in flight"
        left = (due - self._data_ts) / 1000
        return f"in flight, {left:.1f} s" if left > 0 else "in flight, due"

    def _colour_state(self, row: int) -> None:
        cell = self.item(row, self.STATE_COL)
        if cell is None:
            return
        text = cell.text()
        colour = (theme.ORANGE if text == "partially filled" else
                  theme.BLUE if text.startswith("resting") else
                  theme.YELLOW if text.endswith("due") else theme.TEXT)
        cell.setForeground(QColor(colour))

    @staticmethod
    def _tooltip(oid: str, d: dict) -> str:
        lines = [f"order {oid}: {d.get('side', '')} {d.get('reason', '')}, "
                 f"{order_type_text(d)}",
                 f"signal {fmt_price(d.get('signal_px'))} at "
                 f"{fmt_datetime_utc(d.get('signal_ts'))}",
                 f"reaches the exchange {fmt_datetime_utc(d.get('due_ts'))}"]
        if str(d.get("order_type") or "market") == "limit":
            lines.append(f"limit {fmt_price(d.get('limit_px'))}, "
                         f"{str(d.get('tif') or 'GTC').replace('_', '-')}")
            timeout = to_float(d.get("timeout_ms"))
            if timeout:
                lines.append(f"cancelled {timeout / 1000:g} s after it arrives unless "
                             "filled by then")
            if d.get("cancel_ts") is not None:
                lines.append(f"cancel takes effect {fmt_datetime_utc(d.get('cancel_ts'))}")
            ahead = to_float(d.get("queue_ahead"))
            if ahead is not None:
                lines.append(f"queue ahead at its price: {fmt_qty(ahead)} BTC")
        return "\n".join(lines)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().paintEvent(event)
        if self.rowCount() == 0:
            _paint_placeholder(self, "No pending orders")

    def sync(self, pending: list, resting: list | None = None) -> None:
        """Match the table to the engine's lists (health, every 0.5 s): `pending` holds the
        orders in flight; a limit order missing from it has reached the exchange and stays
        until it is done, or, when the snapshot has the `resting` list, until it is not in it."""
        want = {str(p.get("order_id")): p for p in pending or []}
        working = None if resting is None else {str(p.get("order_id")): p for p in resting}
        for oid in [o for o in self._orders if o not in want]:
            d = self._orders[oid]
            is_limit = str(d.get("order_type") or "market") == "limit"
            if (working is None and is_limit) or (working is not None and oid in working):
                continue
            self._orders.pop(oid, None)
            self._resting.discard(oid)
            self._remove_row(oid)
        for oid, p in want.items():
            if oid not in self._orders:
                self.add_order(p)
        for oid, p in (working or {}).items():
            self.add_order(p, resting=True)

    def apply_palette(self) -> None:
        """Repaint the side and state colours in the current theme."""
        for row in range(self.rowCount()):
            item = self.item(row, 0)
            if item is not None:
                item.setForeground(QColor(theme.GREEN if item.text().startswith("BUY")
                                          else theme.RED))
        self._tick()
        self.viewport().update()

    def _tick(self) -> None:
        for row in range(self.rowCount()):
            item = self.item(row, 0)
            oid = item.data(Qt.UserRole) if item is not None else None
            d = self._orders.get(oid)
            cell = self.item(row, self.STATE_COL)
            if d is None or cell is None:
                continue
            text = self._state_text(oid, d)
            if cell.text() != text:
                cell.setText(text)
                # the whole state even where the column is too narrow for it
                cell.setToolTip(f"{text}\n{self._tooltip(oid, d)}")
            self._colour_state(row)


def order_type_text(d: dict) -> str:
    """"market", "limit GTC", "limit IOC" or "post-only" for an order dict."""
    if str(d.get("order_type") or "market") != "limit":
        return "market"
    tif = str(d.get("tif") or "GTC").upper()
    return "post-only" if tif == "POST_ONLY" else f"limit {tif}"


def _dec(value) -> Decimal:
    """A quantity as a Decimal (0 when missing or unreadable)."""
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except (InvalidOperation, ValueError):
        return Decimal(0)


# ============================================================================ fills

class FillsModel(QAbstractTableModel):
    """Fills with their cost attribution; display text formatted, sort by the raw value.

    A fill dict without the order-book keys (older data) shows as a market order, taker, that
    filled whole at the best level: depth cost 0, no levels."""

    # (header, key, formatter, alignment, tooltip)
    COLUMNS = (
        ("Time", "fill_ts", fmt_time_utc, LEFT, "fill time (market data, UTC)"),
        ("Side", "side", str, CENTER, None),
        ("Reason", "reason", str, CENTER, "entry / exit / stop / target / flatten"),
        ("Liquidity", "liquidity", str, CENTER,
         "maker: a resting limit order filled by trades reaching it (maker fee); "
         "taker: took the book (taker fee)"),
        ("Qty", "qty", fmt_qty, RIGHT, "this fill (BTC)"),
        ("Order qty", "order_qty", fmt_qty, RIGHT,
         "the order's whole quantity (BTC); \"partial\": this fill left some of it unfilled"),
        ("Signal", "signal_px", fmt_price, RIGHT,
         "signal price: close of the candle that gave the signal"),
        ("Fill", "fill_px", fmt_price, RIGHT,
         "fill price: the VWAP of the book levels taken (a market order), the limit price "
         "(a maker fill); hover a row for the levels"),
        ("Bid", "bid", fmt_price, RIGHT, "bid in force at the fill"),
        ("Ask", "ask", fmt_price, RIGHT, "ask in force at the fill"),
        ("Latency", "latency_ms", lambda v: f"{fmt_int(v)} ms", RIGHT, "signal to fill (ms)"),
        ("Drift bps", "latency_drift_bps", fmt_bps, RIGHT,
         "latency drift (bps): mid at the fill vs the signal price; positive = cost"),
        ("Spread bps", "spread_cost_bps", fmt_bps, RIGHT,
         "spread cost (bps): best price vs mid; positive = cost"),
        ("Depth bps", "depth_cost_bps", fmt_bps, RIGHT,
         "depth cost (bps): the fill's VWAP vs the best price, the levels beyond the best"),
        ("Fee", "fee", fmt_money, RIGHT,
         "fee (USDT): the taker fee, or the maker fee for a resting limit order's fills"),
        # 4 places (lot 0.001 x tick 0.1): the rows add up to the realized total shown
        ("Realized", "realized_pnl", lambda v: fmt_pnl_exact(v), RIGHT,
         "realized PnL of this fill, before fees (USDT)"),
    )

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.fills: list[dict] = []
        self._keys: set = set()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.fills)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):  # noqa: N802
        if orientation != Qt.Horizontal or not 0 <= section < len(self.COLUMNS):
            return None
        title, _key, _fmt, align, tip = self.COLUMNS[section]
        if role == Qt.DisplayRole:
            return title
        if role == Qt.ToolTipRole:
            return tip
        if role == Qt.TextAlignmentRole:
            return int(align)
        return None

    @staticmethod
    def value(f: dict, key: str):
        """The fill's value for a column, with the defaults of older data."""
        if key == "liquidity":
            return fill_liquidity(f)
        if key == "order_qty":
            return fill_order_size(f)[0]
        if key == "depth_cost_bps":
            v = to_float(f.get(key))
            return 0.0 if v is None else v
        return f.get(key)

    @staticmethod
    def tooltip(f: dict) -> str:
        """The order and seq, then how the fill was priced: the levels it took."""
        return "\n".join([f"order {f.get('order_id')}  seq {f.get('seq')}"]
                         + fill_pricing_lines(f))

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        f = self.fills[index.row()]
        _title, key, fmt, align, _tip = self.COLUMNS[index.column()]
        value = self.value(f, key)
        if role == Qt.DisplayRole:
            if value is None or value == "":
                return "–"
            if key == "order_qty" and fill_order_size(f)[2]:
                return f"{fmt(value)} partial"
            return fmt(value)
        if role == SORT_ROLE:
            v = to_float(value)
            return v if v is not None else str(value or "")
        if role == Qt.TextAlignmentRole:
            return int(align)
        if role == Qt.ForegroundRole:
            if key == "side":
                return QColor(theme.GREEN if str(value).upper() == "BUY" else theme.RED)
            if key == "latency_drift_bps":
                v = to_float(value)
                if v is not None and round(v, 2) != 0:
                    return QColor(theme.RED if v > 0 else theme.GREEN)
            if key == "realized_pnl":
                return QColor(theme.sign_colour(value))
            if key == "liquidity" and value == "maker":
                return QColor(theme.BLUE)
            if key == "order_qty" and fill_order_size(f)[2]:
                return QColor(theme.ORANGE)
            if key == "depth_cost_bps" and is_true(f.get("depth_exhausted")):
                return QColor(theme.ORANGE)
            return None
        if role == Qt.ToolTipRole:
            if key == "fill_ts":
                return fmt_datetime_utc(value)
            return self.tooltip(f)
        return None

    def add_fill(self, f: dict) -> bool:
        key = (f.get("order_id"), f.get("seq"))
        if key in self._keys:
            return False  # a resumed segment republishes the run's fills
        self._keys.add(key)
        row = len(self.fills)
        self.beginInsertRows(QModelIndex(), row, row)
        self.fills.append(dict(f))
        self.endInsertRows()
        return True

    def clear(self) -> None:
        self.beginResetModel()
        self.fills.clear()
        self._keys.clear()
        self.endResetModel()


class _FillsView(QTableView):
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().paintEvent(event)
        if self.model() is not None and self.model().rowCount() == 0:
            _paint_placeholder(self, "No fills yet: each fill shows its signal price, the "
                               "bid/ask it met, its latency and what it cost")


class FillsPanel(QWidget):
    """A sortable fills table with an "Export CSV…" button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = FillsModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = _FillsView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(0, Qt.AscendingOrder)
        _style_table(self.view)
        hh = self.view.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.Interactive)
        hh.setStretchLastSection(False)
        self.summary = ElidedLabel("No fills yet")  # never widens the dock: ends in "…"
        self.summary.setObjectName("chartHint")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export_csv_dialog)
        top = QHBoxLayout()
        top.setContentsMargins(8, 4, 8, 4)
        top.addWidget(self.summary, 1)
        top.addWidget(self.export_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(top)
        lay.addWidget(self.view, 1)
        self.fit_columns()  # to the headers from the start, not Qt's 100 px per column

    @property
    def row_count(self) -> int:
        return self.model.rowCount()

    def add_fill(self, f: dict) -> None:
        if not self.model.add_fill(f):
            return
        if self.model.rowCount() <= 20:  # later rows rarely need more room
            self.fit_columns()
        self.view.scrollToBottom()
        self.export_button.setEnabled(True)
        self._update_summary()

    def fit_columns(self) -> None:
        """Size columns to their header and the first rows (not to the sort arrow's room)."""
        fm = self.view.fontMetrics()
        bold = self.view.horizontalHeader().font()
        bold.setBold(True)
        from PySide6.QtGui import QFontMetrics
        hfm = QFontMetrics(bold)
        rows = min(self.model.rowCount(), 50)
        for col, (title, _k, _f, _a, _t) in enumerate(FillsModel.COLUMNS):
            w = hfm.horizontalAdvance(title) + 22
            for r in range(rows):
                text = self.model.data(self.model.index(r, col)) or ""
                w = max(w, fm.horizontalAdvance(str(text)) + 18)
            self.view.setColumnWidth(col, w)

    def apply_palette(self) -> None:
        self.view.viewport().update()  # the model answers colours for the scheme in force

    def clear(self) -> None:
        self.model.clear()
        self.fit_columns()
        self.export_button.setEnabled(False)
        self.summary.setText("No fills yet")

    def _update_summary(self) -> None:
        fills = self.model.fills
        fees = sum(to_float(f.get("fee")) or 0.0 for f in fills)
        spread = [to_float(f.get("spread_cost_bps")) for f in fills]
        spread = [s for s in spread if s is not None]
        drift = [to_float(f.get("latency_drift_bps")) for f in fills]
        drift = [d for d in drift if d is not None]
        # depth: the market orders' fills (a resting limit order takes no depth)
        depth = [FillsModel.value(f, "depth_cost_bps") for f in fills
                 if str(f.get("order_type") or "market") == "market"]
        makers = sum(1 for f in fills if fill_liquidity(f) == "maker")
        head = f"{len(fills)} fill{'s' if len(fills) != 1 else ''}"
        if makers:
            head += f" ({makers} maker)"
        parts = [head, f"fees {fmt_money(fees)} USDT"]
        means = []
        if spread:
            means.append(f"spread {fmt_bps(sum(spread) / len(spread))}")
        if depth:
            means.append(f"depth {fmt_bps(sum(depth) / len(depth))}")
        if drift:
            means.append(f"drift {fmt_bps(sum(drift) / len(drift), sign=True)}")
        if means:
            parts.append("mean bps: " + ", ".join(means))
        self.summary.setText("  ·  ".join(parts))

    def export_csv(self, path: Path) -> Path:
        """Write every fill (all columns, exact values) to `path` as CSV."""
        from storage.reports import fills_csv_text
        path = Path(path)
        path.write_text(fills_csv_text(self.model.fills), encoding="utf-8", newline="")
        log.info("fills_exported", extra={"path": str(path), "fills": len(self.model.fills)})
        return path

    def export_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export fills", "fills.csv",
                                              "CSV files (*.csv)")
        if not path:
            return
        try:
            self.export_csv(Path(path))
        except OSError as e:
            QMessageBox.warning(self, "Export failed", f"Could not write {path}:\n{e}")


# ============================================================================ log view

LEVELS = (("Debug", logging.DEBUG), ("Info", logging.INFO), ("Warning", logging.WARNING),
          ("Error", logging.ERROR))


class LogView(QWidget):
    """A live tail of the app log: level filter, colours by level, capped line count."""

    def __init__(self, max_lines: int = 5000, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.max_lines = max_lines
        self._records: deque = deque(maxlen=max_lines)
        self._pending: list = []
        self.text = QPlainTextEdit()
        self.text.setObjectName("logText")
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(max_lines)
        self.text.setFont(theme.mono_font(8.8))
        self.text.setLineWrapMode(QPlainTextEdit.WidgetWidth)
        self.level_combo = QComboBox()
        for name, level in LEVELS:
            self.level_combo.addItem(name, level)
        self.level_combo.setCurrentIndex(1)
        self.level_combo.currentIndexChanged.connect(self._refilter)
        self.count_label = QLabel("")
        self.count_label.setObjectName("chartHint")
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear)
        top = QHBoxLayout()
        top.setContentsMargins(8, 4, 8, 4)
        lvl = QLabel("Level")
        lvl.setObjectName("chartHint")
        top.addWidget(lvl)
        top.addWidget(self.level_combo)
        top.addStretch(1)
        top.addWidget(self.count_label)
        top.addWidget(clear)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(top)
        lay.addWidget(self.text, 1)
        self._make_formats()
        self._timer = QTimer(self)
        self._timer.setInterval(250)  # 4 Hz is plenty for a countdown / a log tail
        self._timer.timeout.connect(self.flush)
        self._timer.start()

    def _make_formats(self) -> None:
        self._formats = {}
        for name, colour in theme.LEVEL_COLOURS.items():
            fmt = QTextCharFormat()
            fmt.setForeground(QColor(colour))
            self._formats[name] = fmt
        self._extras_format = QTextCharFormat()
        self._extras_format.setForeground(QColor(theme.DISABLED))

    def apply_palette(self) -> None:
        """Rewrite the kept lines in the colours of the scheme now in force."""
        self._make_formats()
        self._refilter()

    @property
    def min_level(self) -> int:
        return int(self.level_combo.currentData())

    def set_min_level(self, level: int) -> None:
        for i in range(self.level_combo.count()):
            if self.level_combo.itemData(i) == level:
                self.level_combo.setCurrentIndex(i)

    def append(self, record: tuple) -> None:
        """Queue (levelno, message[, extra fields]) for the next flush (GUI thread)."""
        self._records.append(record)
        self._pending.append(record)

    def line_count(self) -> int:
        return self.text.blockCount() if self.text.toPlainText() else 0

    def lines(self) -> list[str]:
        return self.text.toPlainText().splitlines()

    def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending[-self.max_lines:], []
        self._write([r for r in batch if r[0] >= self.min_level])

    def _write(self, records: list) -> None:
        if not records:
            return
        bar = self.text.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        cursor = self.text.textCursor()
        cursor.movePosition(QTextCursor.End)
        cursor.beginEditBlock()
        empty = self.text.document().isEmpty()
        for rec in records:
            name = logging.getLevelName(rec[0])
            if not empty:
                cursor.insertBlock()
            empty = False
            cursor.insertText(rec[1], self._formats.get(name, self._formats["INFO"]))
            if len(rec) > 2 and rec[2]:
                cursor.insertText(rec[2], self._extras_format)
        cursor.endEditBlock()
        if at_bottom:
            bar.setValue(bar.maximum())
        n = len(self._records)
        self.count_label.setText(f"{n:,} line{'' if n == 1 else 's'}")

    def _refilter(self) -> None:
        self._pending.clear()
        self.text.clear()
        self._write([r for r in self._records if r[0] >= self.min_level])

    def clear(self) -> None:
        self._records.clear()
        self._pending.clear()
        self.text.clear()
        self.count_label.setText("")


# ============================================================================ status bar

class StatusIndicators(QWidget):
    """Feed state and health figures for the status bar, fed by "health" events."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 4, 0)
        lay.setSpacing(0)

        def lab(tip: str) -> QLabel:
            w = QLabel("")
            w.setToolTip(tip)
            w.setTextFormat(Qt.RichText)
            # never narrower than its words ("feed stoppe", "breaker closec" once): the run
            # label on the left gives way instead
            w.setSizePolicy(QSizePolicy.Minimum, QSizePolicy.Preferred)
            lay.addWidget(w)
            return w

        self.feed_label = lab("Market-data feed: live = streaming from Bitunix, replay = streaming "
                              "recorded data from the local exchange; reconnects")
        self.age_label = lab("Seconds since the last websocket message")
        self.queue_label = lab("Feed queue depth / capacity, and messages dropped because "
                               "the queue was full")
        self.breaker_label = lab("Circuit breaker: closed = trading allowed")
        self.restarts_label = lab("Watchdog restarts of this session")
        self.remaining_label = lab("Market-data time left in the session (and, in a replay faster "
                                      "than real time, the wall-clock time that takes)")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress.setFixedWidth(80)
        lay.addWidget(self.progress)
        self.restart_reason = ""
        self.reset()

    def apply_palette(self) -> None:
        """Repaint the coloured words in the scheme now in force."""
        last, finished = self._last_health, self._finished
        if last is not None:
            self.set_health(last)
        else:
            self._set_feed(self.feed_state, self.reconnects)
        self.set_restarts(self.restarts, self.restart_reason)
        if finished is not None:
            self.set_finished(finished)

    def reset(self) -> None:
        self._last_health: dict | None = None
        self._finished: str | None = None
        self.feed_state = "idle"
        self.reconnects = 0
        self.restarts = 0
        self.restart_reason = ""
        self._set_feed("idle", 0)
        self.age_label.setText("msg –")
        self.queue_label.setText("queue –")
        self.breaker_label.setText("breaker –")
        self.breaker_label.setStyleSheet("")
        self.restarts_label.setText("restarts 0")
        self.restarts_label.setStyleSheet("")
        self.restarts_label.setToolTip("Watchdog restarts of this session")
        self.remaining_label.setText("left –")
        self.progress.setValue(0)

    def _set_feed(self, state: str, reconnects: int) -> None:
        colour = theme.FEED_COLOURS.get(state, theme.MUTED)
        # the count only when there is one: at 1280 wide the run id needs the room
        rc = (f" · <span style='color:{theme.ORANGE}'>reconnects {reconnects}</span>"
              if reconnects else "")
        self.feed_label.setText(f"<span style='color:{colour}; font-size:12pt'>●</span> "
                                f"feed {html.escape(state)}{rc}")

    def set_health(self, h: dict) -> None:
        self._last_health = h
        self._finished = None
        state = str(h.get("feed_state") or "idle")
        if state == "live" and (h.get("offline_fallback") or h.get("source") == "replay"):
            # connected and streaming, but to the local exchange's replay: never "live" in
            # green beside an OFFLINE banner
            state = "replay"
        self.feed_state = state
        self.reconnects = int(h.get("reconnects") or 0)
        self._set_feed(state, self.reconnects)
        age = to_float(h.get("last_message_age_s"))
        if age is None:
            self.age_label.setText("msg –" if state != "inline replay" else "msg inline")
        else:
            colour = theme.RED if age > 5 else (theme.YELLOW if age > 2 else theme.TEXT)
            text = f"msg <span style='color:{colour}'>{age:.1f} s</span> ago"
            ages = h.get("channel_ages_s") if isinstance(h.get("channel_ages_s"), dict) else {}
            limit = to_float(h.get("channel_stale_s")) or 10.0
            quiet = {ch: a for ch, a in ages.items() if (to_float(a) or 0.0) > limit}
            if quiet:  # silent longer than the feed lets a channel be: name the quietest
                ch, a = max(quiet.items(), key=lambda kv: to_float(kv[1]) or 0.0)
                from trading.bitunix import short_channel
                short = short_channel(ch)
                text += (f" · <span style='color:{theme.ORANGE}'>{html.escape(short)} "
                         f"{to_float(a):.0f} s</span>")
            self.age_label.setText(text)
            self.age_label.setToolTip(
                "Seconds since the last websocket message; per channel: " + ", ".join(
                    f"{ch} {to_float(a):.1f} s" for ch, a in sorted(ages.items()))
                if ages else "Seconds since the last websocket message")
        depth, cap, dropped = (int(h.get("queue_depth") or 0), int(h.get("queue_max") or 0),
                               int(h.get("dropped") or 0))
        dcol = theme.RED if dropped else theme.TEXT
        qcol = theme.YELLOW if cap and depth > cap * 0.5 else theme.TEXT
        self.queue_label.setText(f"queue <span style='color:{qcol}'>{depth}/{cap}</span> · "
                                 f"dropped <span style='color:{dcol}'>{dropped}</span>")
        bstate = str(h.get("breaker_state") or "–")
        bcol = {"closed": theme.GREEN, "open": theme.RED, "half_open": theme.YELLOW}.get(
            bstate, theme.TEXT)
        self.breaker_label.setText(f"breaker <span style='color:{bcol}'>"
                                   f"{html.escape(bstate.replace('_', '-'))}</span>")
        self.breaker_label.setToolTip(str(h.get("breaker_reason") or
                                          "Circuit breaker: closed = trading allowed"))
        restarts = int(h.get("restarts") or 0)
        if restarts != self.restarts:
            self.set_restarts(restarts, self.restart_reason)
        dur, rem = to_float(h.get("duration_ms")), to_float(h.get("remaining_ms"))
        if dur and rem is not None:
            text = f"left {fmt_duration_ms(rem)}"
            speed = to_float(h.get("speed"))
            if speed is not None and speed > 1.0 and math.isfinite(speed):
                # market time runs `speed` times faster than the clock on the wall
                text += f" (≈{fmt_duration_ms(rem / speed)})"
            self.remaining_label.setText(text)
            self.progress.setValue(int(1000 * (1 - rem / dur)))
            self.progress.setToolTip(f"{fmt_duration_ms(dur - rem)} of {fmt_duration_ms(dur)}"
                                     " market-data time")

    def set_restarts(self, restarts: int, reason: str = "") -> None:
        self.restarts = restarts
        if reason:
            self.restart_reason = reason
        if restarts:
            self.restarts_label.setText(f"<b>restarts {restarts}</b>")
            self.restarts_label.setStyleSheet(f"background: {theme.ORANGE}; color: #ffffff;")
            self.restarts_label.setToolTip(f"Last restart: {self.restart_reason or 'unknown'}")
        else:
            self.restarts_label.setText("restarts 0")
            self.restarts_label.setStyleSheet("")

    def set_finished(self, how: str = "finished") -> None:
        """The session is over: no countdown, no message age, no queue (GUI thread)."""
        self._finished = how
        self._set_feed("stopped", self.reconnects)
        self.progress.setValue(self.progress.maximum())
        self.remaining_label.setText(how)
        self.age_label.setText("msg –")
        self.queue_label.setText("queue –")


def _paint_placeholder(view: QAbstractItemView, text: str) -> None:
    """Draw a muted centred note on an empty table's viewport."""
    from PySide6.QtGui import QPainter
    p = QPainter(view.viewport())
    p.setPen(QColor(theme.MUTED))
    p.drawText(view.viewport().rect(), Qt.AlignCenter, text)
    p.end()


def _style_table(view: QAbstractItemView) -> None:
    view.setAlternatingRowColors(True)
    view.setSelectionBehavior(QAbstractItemView.SelectRows)
    view.setEditTriggers(QAbstractItemView.NoEditTriggers)
    view.setShowGrid(False)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(24)
    view.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
