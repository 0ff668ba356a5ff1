"""The candlestick chart (1m candles, fills, position levels, bid/ask) and the PnL chart below it.

Both plots share the time axis (x = epoch seconds, shown in UTC). The mouse pans and zooms time;
prices are always fitted to what is visible. The view follows the newest candle until the user
drags it away; then a "Follow latest" button brings it back. Updates only mark the chart dirty;
a ~30 Hz timer repaints (GUI thread only).
"""
from __future__ import annotations

import math
import time

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPicture
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QStackedWidget, QVBoxLayout,
                               QWidget)

from gui import theme
from gui.theme import fmt_money, fmt_price, fmt_qty, to_float

CANDLE_S = 60
BODY_FRACTION = 0.7
DEFAULT_VIEW_S = 75 * 60  # minutes of candles visible when following
RIGHT_MARGIN_S = 4 * 60
PRICE_REPAINT_S = 0.25
AXIS_WIDTH = 78

pg.setConfigOptions(antialias=True)


class CandlestickItem(pg.GraphicsObject):
    """OHLC candles drawn into a cached QPicture; rows are (x_s, open, high, low, close)."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[tuple] = []
        self._picture = QPicture()
        self._bounds = QRectF()

    def set_rows(self, rows: list[tuple]) -> None:
        self.prepareGeometryChange()
        self._rows = rows
        self._picture = QPicture()
        p = QPainter(self._picture)
        half = CANDLE_S * BODY_FRACTION / 2
        up_pen, dn_pen = pg.mkPen(theme.GREEN, width=1), pg.mkPen(theme.RED, width=1)
        up_brush, dn_brush = QBrush(QColor(theme.GREEN)), QBrush(QColor(theme.RED))
        lo, hi = math.inf, -math.inf
        for x, o, h, l, c in rows:
            up = c >= o
            p.setPen(up_pen if up else dn_pen)
            p.drawLine(QPointF(x, l), QPointF(x, h))
            if c == o:
                p.drawLine(QPointF(x - half, o), QPointF(x + half, o))
            else:
                p.setBrush(up_brush if up else dn_brush)
                p.drawRect(QRectF(x - half, min(o, c), 2 * half, abs(c - o)))
            lo, hi = min(lo, l), max(hi, h)
        p.end()
        if rows:
            self._bounds = QRectF(rows[0][0] - CANDLE_S, lo, rows[-1][0] - rows[0][0]
                                  + 2 * CANDLE_S, max(hi - lo, 1e-6))
        else:
            self._bounds = QRectF()
        self.update()

    def paint(self, painter, *args) -> None:
        painter.drawPicture(0, 0, self._picture)

    def boundingRect(self) -> QRectF:
        return QRectF(self._bounds)


class _PriceAxis(pg.AxisItem):
    """A price axis with thousands separators (87,650 rather than 87650)."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph API
        places = 0 if spacing >= 1 else (1 if spacing >= 0.1 else 2)
        return [f"{v * scale:,.{places}f}" for v in values]


class _TimeViewBox(pg.ViewBox):
    """A ViewBox that says when the user (not the program) moved or zoomed it."""

    userPanned = Signal()
    userZoomed = Signal()

    def wheelEvent(self, ev, axis=None) -> None:
        super().wheelEvent(ev, axis)
        self.userZoomed.emit()

    def mouseDragEvent(self, ev, axis=None) -> None:
        super().mouseDragEvent(ev, axis)
        self.userPanned.emit()


def _line(style=Qt.SolidLine, width: float = 1.0, label: str | None = None,
          position: float = 0.93) -> pg.InfiniteLine:
    """A hidden horizontal level line; its colour is set by `_colour_line`."""
    line = pg.InfiniteLine(angle=0, pen=pg.mkPen(width=width, style=style), movable=False,
                           label=label, labelOpts={"position": position,
                                                   "anchors": [(0, 1), (0, 1)]} if label else None)
    line.setZValue(5)
    line.hide()
    return line


def _colour_line(line: pg.InfiniteLine, colour: str) -> None:
    pen = pg.mkPen(line.pen)
    pen.setColor(QColor(colour))
    line.setPen(pen)
    if getattr(line, "label", None) is not None:
        line.label.setColor(colour)
        line.label.fill = pg.mkBrush(theme.BG + "dd")
        line.label.update()


def _set_y_range_if_needed(plot, vb, lo: float, hi: float, pad: float) -> None:
    """Change the y range only when the data leaves it or it has become far too wide.

    Re-ranging re-lays the axes and repaints the whole plot; doing it for every quote costs
    most of the window's CPU at a quiet, Bitunix-like message rate.
    """
    (_, _), (y0, y1) = vb.viewRange()
    inside = y0 <= lo - pad * 0.25 and hi + pad * 0.25 <= y1
    too_wide = (y1 - y0) > 1.6 * ((hi - lo) + 2 * pad)
    if inside and not too_wide:
        return
    plot.setYRange(lo - pad, hi + pad, padding=0)


def _show_line(line: pg.InfiniteLine, value: float | None) -> None:
    if not value:
        line.hide()
        return
    was_hidden = not line.isVisible()
    line.show()
    if was_hidden or line.value() != value:
        line.setValue(value)
        if getattr(line, "label", None) is not None:
            line.label.valueChanged()  # a hidden label skips updates: refresh its text now


class TradingChart(QWidget):
    """Candles + fills + levels on top, equity / PnL below (GUI thread)."""

    followChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._closed: dict[int, tuple] = {}  # minute ts (ms) -> (x_s, o, h, l, c)
        self._closed_rows: list[tuple] = []
        self._forming: tuple | None = None
        self._fills: dict[tuple, tuple] = {}  # (order_id, seq) -> (x_s, px, side, text)
        self._equity: list[tuple] = []  # (x_s, equity, realized, unrealized)
        self._starting_equity: float | None = None
        self._bid = self._ask = None
        self._last_data_x: float | None = None
        self._position: dict = {}
        self._following = True
        self._view_s = DEFAULT_VIEW_S
        self._dirty_closed = self._dirty = False
        self._equity_dirty = False
        self._setting_range = False

        # header: title, last price / spread, hovered candle, follow button
        self.title = QLabel("BTCUSDT · 1m · UTC")
        self.title.setObjectName("chartTitle")
        self.price_label = QLabel("")
        self.price_label.setTextFormat(Qt.RichText)
        self.hover_label = QLabel("")
        self.hover_label.setObjectName("chartHint")
        self.hover_label.setTextFormat(Qt.RichText)
        # the hint until a session starts, then the run id (the hint is its tooltip): the
        # status line may have to shorten at 1280 wide, this stays whole
        self.hint_label = hint = QLabel(self.HINT)
        hint.setObjectName("chartHint")
        hint.setToolTip(self.HINT)
        hint.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.follow_button = QPushButton("⇥  Follow latest")
        self.follow_button.setToolTip("Scroll back to the newest candle and keep following it")
        self.follow_button.setObjectName("followButton")
        self.follow_button.clicked.connect(lambda: self.set_following(True))
        self.follow_button.hide()
        head = QHBoxLayout()
        head.setContentsMargins(10, 6, 10, 2)
        head.setSpacing(14)
        head.addWidget(self.title)
        head.addWidget(self.price_label)
        head.addStretch(1)
        head.addWidget(self.hover_label)
        head.addWidget(hint)
        head.addWidget(self.follow_button)

        self.glw = pg.GraphicsLayoutWidget()
        self.glw.ci.setContentsMargins(4, 2, 4, 4)
        self.glw.ci.setSpacing(6)
        self._price_vb = _TimeViewBox()
        self._pnl_vb = _TimeViewBox()
        self.price_plot = self.glw.addPlot(row=0, col=0, viewBox=self._price_vb, axisItems={
            "bottom": pg.DateAxisItem(utcOffset=0), "right": _PriceAxis("right")})
        self.pnl_plot = self.glw.addPlot(row=1, col=0, viewBox=self._pnl_vb, axisItems={
            "bottom": pg.DateAxisItem(utcOffset=0), "right": _PriceAxis("right")})
        self.glw.ci.layout.setRowStretchFactor(0, 3)
        self.glw.ci.layout.setRowStretchFactor(1, 1)
        for plot in (self.price_plot, self.pnl_plot):
            plot.showAxis("right")
            plot.hideAxis("left")
            plot.getAxis("right").setWidth(AXIS_WIDTH)
            plot.showGrid(x=True, y=True, alpha=0.12)
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.disableAutoRange()
            plot.setMouseEnabled(x=True, y=False)
        self.price_plot.hideAxis("bottom")
        self.pnl_plot.setXLink(self.price_plot)
        self.pnl_plot.setMaximumHeight(16777215)

        self._candles_item = CandlestickItem()
        self._forming_item = CandlestickItem()
        self.price_plot.addItem(self._candles_item)
        self.price_plot.addItem(self._forming_item)
        self._buy_item = pg.ScatterPlotItem(symbol="t1", size=15, hoverable=True, tip=self._tip)
        self._sell_item = pg.ScatterPlotItem(symbol="t", size=15, hoverable=True, tip=self._tip)
        for item in (self._buy_item, self._sell_item):
            item.setZValue(10)
            self.price_plot.addItem(item)
        self._bid_line = _line(Qt.DotLine, 1)
        self._ask_line = _line(Qt.DotLine, 1)
        self._entry_line = _line(Qt.SolidLine, 1.5, "entry {value:,.1f}", 0.03)
        self._stop_line = _line(Qt.DashLine, 1.5, "stop {value:,.1f}", 0.03)
        self._target_line = _line(Qt.DashLine, 1.5, "target {value:,.1f}", 0.03)
        for line in (self._bid_line, self._ask_line, self._entry_line, self._stop_line,
                     self._target_line):
            self.price_plot.addItem(line, ignoreBounds=True)

        self._legend = legend = self.pnl_plot.addLegend(offset=(8, 4), colCount=3)
        self._net_curve = self.pnl_plot.plot([], [], name="net PnL")
        self._real_curve = self.pnl_plot.plot([], [], name="realized")
        self._unreal_curve = self.pnl_plot.plot([], [], name="unrealized")
        legend.setZValue(20)
        self._zero_line = zero = pg.InfiniteLine(angle=0, pos=0)
        self.pnl_plot.addItem(zero, ignoreBounds=True)
        self.pnl_plot.setYRange(-1, 1, padding=0)

        for vb in (self._price_vb, self._pnl_vb):
            vb.userPanned.connect(self._on_user_panned)
            vb.userZoomed.connect(self._on_user_zoomed)
        self.glw.scene().sigMouseMoved.connect(self._on_mouse_moved)

        self.placeholder = QLabel()
        self.placeholder.setTextFormat(Qt.RichText)
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.glw)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(head)
        lay.addWidget(self.stack, 1)

        self._price_dirty = False
        self._last_price_paint = 0.0
        self._drawn_forming = None
        self._timer = QTimer(self)
        # 15 Hz: candles, fills and lines change rarely, price-only repaints are capped at 4/s
        self._timer.setInterval(66)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.apply_palette()

    def apply_palette(self) -> None:
        """Paint the chart in the scheme now in force (at build, and when it switches)."""
        p = theme.current()
        self.glw.setBackground(p.BG)
        for plot in (self.price_plot, self.pnl_plot):
            for name in ("right", "bottom"):
                plot.getAxis(name).setPen(pg.mkPen(p.BORDER_2))
                plot.getAxis(name).setTextPen(pg.mkPen(p.MUTED))
        edge = pg.mkPen(p.BG, width=1)  # a rim in the background colour keeps markers apart
        self._buy_item.setBrush(pg.mkBrush(p.GREEN))
        self._buy_item.setPen(edge)
        self._sell_item.setBrush(pg.mkBrush(p.RED))
        self._sell_item.setPen(edge)
        for line, colour in ((self._bid_line, p.GREEN + "99"), (self._ask_line, p.RED + "99"),
                             (self._entry_line, p.BLUE), (self._stop_line, p.RED),
                             (self._target_line, p.GREEN)):
            _colour_line(line, colour)
        self._legend.setBrush(pg.mkBrush(p.BG + "cc"))
        self._legend.setLabelTextColor(p.TEXT)
        self._net_curve.setPen(pg.mkPen(p.BLUE, width=2))
        self._real_curve.setPen(pg.mkPen(p.GREEN, width=1.5))
        self._unreal_curve.setPen(pg.mkPen(p.ORANGE, width=1.2, style=Qt.DashLine))
        self._zero_line.setPen(pg.mkPen(p.BORDER, width=1))
        self.placeholder.setText(
            f"<div style='font-size:13pt; font-weight:600; color:{p.TEXT_2}'>No market data "
            f"yet</div><div style='color:{p.MUTED}; margin-top:6px'>Press <b>▶ Start</b> to "
            "paper-trade BTCUSDT on live Bitunix data, or on a replay of real data through the "
            "local exchange.</div>")
        self._candles_item.set_rows(self._closed_rows)
        self._forming_item.set_rows([self._forming] if self._forming else [])
        self._update_header()
        self.glw.update()

    # ------------------------------------------------------------------ counts (tests)
    @property
    def candle_count(self) -> int:
        return len(self._closed) + (1 if self._forming is not None else 0)

    @property
    def closed_candle_count(self) -> int:
        return len(self._closed)

    @property
    def fill_marker_count(self) -> int:
        return len(self._fills)

    @property
    def drawn_fill_marker_count(self) -> int:
        return len(self._buy_item.data) + len(self._sell_item.data)

    @property
    def equity_point_count(self) -> int:
        return len(self._equity)

    @property
    def following(self) -> bool:
        return self._following

    # ------------------------------------------------------------------ data in (GUI thread)
    def set_frame_interval(self, ms: int) -> None:
        """Repaint at most every `ms` milliseconds (a slower rate leaves the engine more CPU)."""
        self._timer.setInterval(int(ms))

    HINT = "wheel: zoom time · drag: pan"

    def set_run(self, run_id: str | None) -> None:
        """Show `run_id` in the header (None: the zoom/pan hint again)."""
        self.hint_label.setText(f"run {run_id}" if run_id else self.HINT)

    def reset(self) -> None:
        """Forget everything (a new session starts)."""
        self._closed.clear()
        self._forming = None
        self._fills.clear()
        self._equity.clear()
        self._starting_equity = None
        self._bid = self._ask = None
        self._last_data_x = None
        self._position = {}
        self._dirty_closed = self._dirty = self._equity_dirty = True
        self._drawn_forming = None
        self.set_following(True)
        self.hover_label.setText("")

    def add_history(self, rows: list) -> None:
        for r in rows or []:
            self._put_closed(r["ts"], r["open"], r["high"], r["low"], r["close"])

    def on_candle(self, c) -> None:
        self._put_closed(c.ts, c.open, c.high, c.low, c.close)
        if self._forming is not None and self._forming[0] * 1000 <= c.ts:
            self._forming = None

    def _put_closed(self, ts, o, h, l, c) -> None:
        ts = int(ts)
        self._closed[ts] = (ts / 1000.0, float(o), float(h), float(l), float(c))
        self._dirty_closed = self._dirty = True

    def on_kline(self, k) -> None:
        minute = k.ts // 60_000 * 60_000
        if self._closed and minute <= max(self._closed):
            return  # a late push for a minute already closed
        self._forming = (minute / 1000.0, float(k.open), float(k.high), float(k.low),
                         float(k.close))
        self._note_data_time(k.ts)
        self._price_dirty = True

    def on_quote(self, q) -> None:
        self._bid, self._ask = float(q.bid), float(q.ask)
        self._note_data_time(q.ts)
        self._price_dirty = True

    def _note_data_time(self, ts_ms) -> None:
        x = ts_ms / 1000.0
        if self._last_data_x is None or x > self._last_data_x:
            self._last_data_x = x

    def add_fill(self, f: dict) -> None:
        key = (f.get("order_id"), f.get("seq"))
        px, ts = to_float(f.get("fill_px")), to_float(f.get("fill_ts"))
        if key in self._fills or px is None or ts is None:
            return
        side = str(f.get("side", "")).upper()
        text = (f"{side} {f.get('reason', '')}  {fmt_qty(f.get('qty'))} BTC @ {fmt_price(px)}"
                f"\nbid {fmt_price(f.get('bid'))}  ask {fmt_price(f.get('ask'))}")
        self._fills[key] = (ts / 1000.0, px, side, text)
        self._dirty = True

    def set_position(self, pos: dict) -> None:
        self._position = dict(pos or {})
        self._dirty = True

    def set_starting_equity(self, value) -> None:
        v = to_float(value)
        if v is not None and v != self._starting_equity:
            self._starting_equity = v
            self._dirty = self._equity_dirty = True

    def add_equity(self, row: dict) -> None:
        ts, eq = to_float(row.get("ts")), to_float(row.get("equity"))
        if ts is None or eq is None:
            return
        self._equity.append((ts / 1000.0, eq, to_float(row.get("realized")) or 0.0,
                             to_float(row.get("unrealized")) or 0.0))
        self._equity_dirty = True
        if self._starting_equity is None:
            self._starting_equity = eq - (to_float(row.get("realized")) or 0.0) \
                - (to_float(row.get("unrealized")) or 0.0)
        self._dirty = True

    # ------------------------------------------------------------------ view
    def set_following(self, on: bool) -> None:
        changed = on != self._following
        self._following = on
        self.follow_button.setVisible(not on)
        if on:
            self._dirty = True
            self.refresh()
        if changed:
            self.followChanged.emit(on)

    def _latest_x(self) -> float | None:
        if self._forming is not None:
            return self._forming[0]
        if self._closed_rows:
            return self._closed_rows[-1][0]
        return None

    def _on_user_panned(self) -> None:
        if self._setting_range:
            return
        latest = self._latest_x()
        (x0, x1), _ = self._price_vb.viewRange()
        self._view_s = max(5 * 60, x1 - x0)
        # dragging the newest candle out of sight means: stop following
        if latest is not None and x1 < latest + CANDLE_S:
            self.set_following(False)
        self._dirty = True

    def _on_user_zoomed(self) -> None:
        if self._setting_range:
            return
        (x0, x1), _ = self._price_vb.viewRange()
        self._view_s = max(5 * 60, x1 - x0)
        self._dirty = True

    def refresh(self) -> None:
        """Repaint what changed since the last frame (timer)."""
        now = time.monotonic()
        if self._price_dirty and not (self._dirty or self._dirty_closed):
            # price-only changes (bid/ask, the forming candle) repaint at most every
            # PRICE_REPAINT_S: the eye gains nothing from more, and a repaint is the window's
            # main CPU cost at a quiet feed
            if now - self._last_price_paint < PRICE_REPAINT_S:
                return
        elif not (self._dirty or self._dirty_closed):
            return
        self._last_price_paint = now
        self._price_dirty = False
        has_data = bool(self._closed or self._forming)
        if self.stack.currentIndex() != int(has_data):
            self.stack.setCurrentIndex(int(has_data))
        if self._dirty_closed:
            self._closed_rows = [self._closed[k] for k in sorted(self._closed)]
            self._candles_item.set_rows(self._closed_rows)
            self._dirty_closed = False
        if self._forming != self._drawn_forming:
            self._forming_item.set_rows([self._forming] if self._forming else [])
            self._drawn_forming = self._forming
        self._update_markers()
        self._update_lines()
        self._update_pnl()
        self._update_header()
        self._fit()
        self._dirty = False

    def _update_markers(self) -> None:
        if len(self._buy_item.data) + len(self._sell_item.data) == len(self._fills):
            return
        buys = [v for v in self._fills.values() if v[2] == "BUY"]
        sells = [v for v in self._fills.values() if v[2] != "BUY"]
        self._buy_item.setData([v[0] for v in buys], [v[1] for v in buys],
                               data=[v[3] for v in buys])
        self._sell_item.setData([v[0] for v in sells], [v[1] for v in sells],
                                data=[v[3] for v in sells])

    @staticmethod
    def _tip(x, y, data) -> str:
        return str(data)

    def _update_lines(self) -> None:
        for line, value in ((self._bid_line, self._bid), (self._ask_line, self._ask)):
            _show_line(line, value)
        pos = self._position
        qty = to_float(pos.get("qty")) or 0.0
        for line, key in ((self._entry_line, "avg_px"), (self._stop_line, "stop_px"),
                          (self._target_line, "target_px")):
            _show_line(line, to_float(pos.get(key)) if qty else None)

    def _update_pnl(self) -> None:
        if not self._equity_dirty:
            return
        self._equity_dirty = False
        if not self._equity:
            for c in (self._net_curve, self._real_curve, self._unreal_curve):
                c.setData([], [])
            return
        start = self._starting_equity or self._equity[0][1]
        xs = [r[0] for r in self._equity]
        self._net_curve.setData(xs, [r[1] - start for r in self._equity])
        self._real_curve.setData(xs, [r[2] for r in self._equity])
        self._unreal_curve.setData(xs, [r[3] for r in self._equity])

    def _update_header(self) -> None:
        last = self._forming or (self._closed_rows[-1] if self._closed_rows else None)
        if last is None:
            self.price_label.setText("")
            return
        colour = theme.GREEN if last[4] >= last[1] else theme.RED
        text = f"<span style='color:{colour}; font-weight:600'>{fmt_price(last[4])}</span>"
        if self._bid is not None and self._ask is not None:
            text += (f"&nbsp;&nbsp;<span style='color:{theme.MUTED}'>bid</span> "
                     f"{fmt_price(self._bid)}&nbsp;&nbsp;<span style='color:{theme.MUTED}'>"
                     f"ask</span> {fmt_price(self._ask)}&nbsp;&nbsp;"
                     f"<span style='color:{theme.MUTED}'>spread</span> "
                     f"{self._ask - self._bid:,.1f}")
        self.price_label.setText(text)

    def _fit(self) -> None:
        latest = self._latest_x()
        if latest is None:
            return
        self._setting_range = True
        try:
            if self._following:
                right = latest + RIGHT_MARGIN_S
                if self._price_vb.viewRange()[0] != [right - self._view_s, right]:
                    self.price_plot.setXRange(right - self._view_s, right, padding=0)
            (x0, x1), _ = self._price_vb.viewRange()
            lo, hi = math.inf, -math.inf
            rows = self._closed_rows + ([self._forming] if self._forming else [])
            for x, _o, h, l, _c in rows:
                if x0 - CANDLE_S <= x <= x1 + CANDLE_S:
                    lo, hi = min(lo, l), max(hi, h)
            for x, px, _s, _t in self._fills.values():
                if x0 <= x <= x1:
                    lo, hi = min(lo, px), max(hi, px)
            if self._following:
                for v in (self._bid, self._ask):
                    if v is not None:
                        lo, hi = min(lo, v), max(hi, v)
                qty = to_float(self._position.get("qty")) or 0.0
                levels = [v for v in (to_float(self._position.get(k)) for k in
                                      ("avg_px", "stop_px", "target_px")) if v] if qty else []
                if levels:
                    lo, hi = min(lo, *levels), max(hi, *levels)
                    # a level's label sits above its line: room for it under the top edge
                    label_px = self.fontMetrics().height() + 6
                    height_px = max(self._price_vb.height(), 100.0)
                    room = (hi - lo) * label_px / height_px * 1.3
                    hi = max(hi, max(levels) + room)
            if math.isfinite(lo):
                pad = max((hi - lo) * 0.08, 1.0)
                _set_y_range_if_needed(self.price_plot, self._price_vb, lo, hi, pad)
            vals = [0.0]
            start = self._starting_equity or (self._equity[0][1] if self._equity else 0.0)
            for x, eq, real, unreal in self._equity:
                if x0 <= x <= x1:
                    vals += [eq - start, real, unreal]
            lo, hi = min(vals), max(vals)
            pad = max((hi - lo) * 0.12, 0.5)
            _set_y_range_if_needed(self.pnl_plot, self.pnl_plot.getViewBox(), lo, hi, pad)
        finally:
            self._setting_range = False

    def _on_mouse_moved(self, pos) -> None:
        if not self.price_plot.sceneBoundingRect().contains(pos):
            return
        x = self._price_vb.mapSceneToView(pos).x()
        minute_ms = int(x * 1000 // 60_000 * 60_000)
        row = self._closed.get(minute_ms)
        if row is None and self._forming is not None and int(self._forming[0] * 1000) == \
                minute_ms:
            row = self._forming
        if row is None:
            self.hover_label.setText("")
            return
        from datetime import datetime, timezone
        t = datetime.fromtimestamp(row[0], timezone.utc).strftime("%H:%M")
        m = theme.MUTED
        self.hover_label.setText(
            f"<span style='color:{m}'>{t}</span>&nbsp; <span style='color:{m}'>O</span> "
            f"{fmt_price(row[1])} <span style='color:{m}'>H</span> {fmt_price(row[2])} "
            f"<span style='color:{m}'>L</span> {fmt_price(row[3])} "
            f"<span style='color:{m}'>C</span> {fmt_price(row[4])}")

    def pnl_text(self) -> str:
        """Net PnL of the latest equity sample, formatted (for the position panel)."""
        if not self._equity:
            return "–"
        start = self._starting_equity or self._equity[0][1]
        return fmt_money(self._equity[-1][1] - start, sign=True)
