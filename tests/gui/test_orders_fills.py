"""What the window shows of order-book fills and limit orders: the pending-orders rows (type,
limit, filled, remaining, state), partial fills, cancelled remainders, the fills' liquidity,
order size and depth cost with the levels on hover; old fill dicts still display."""
from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from gui.panels import FillsModel, FillsPanel, OrdersTable
from trading.model import Order, Quote, Side

T0 = 1_767_225_600_000
COLS = [c[1] for c in FillsModel.COLUMNS]


def limit_order(oid="o7", tif="GTC", **kw):
    base = dict(order_id=oid, side=Side.BUY, qty=Decimal("0.010"), reason="entry",
                signal_ts=T0 - 1000, signal_px=87_905.2, due_ts=T0 + 1200, order_type="limit",
                limit_px=87_890.0, tif=tif, timeout_ms=30_000)
    base.update(kw)
    return Order(**base)


def market_order(oid="o8", **kw):
    base = dict(order_id=oid, side=Side.SELL, qty=Decimal("0.010"), reason="exit",
                signal_ts=T0 - 1000, signal_px=87_905.2, due_ts=T0 + 1200)
    base.update(kw)
    return Order(**base)


def new_fill(seq=1, **kw):
    """A fill dict as the engine publishes it now: a market BUY that walked three levels and
    ran out of visible depth."""
    f = {"order_id": f"o{seq}", "seq": seq, "side": "BUY", "qty": "0.003", "reason": "exit",
         "signal_ts": T0 - 800, "signal_px": 87_909.5, "due_ts": T0, "fill_ts": T0,
         "latency_ms": 800, "fill_px": 87_910.5, "bid": 87_909.0, "ask": 87_910.0,
         "mid": 87_909.5, "spread_cost_bps": 0.0569, "latency_drift_bps": 0.6, "fee": "0.1319",
         "fee_bps": 5.0, "realized_pnl": "-0.0315", "trigger": None, "trigger_px": None,
         "position_after": "0", "cash_after": "9990.0",
         "order_qty": "0.003", "order_filled": "0.003", "order_type": "market",
         "liquidity": "taker", "legs": "87910.0x0.001;87910.5x0.001;87911.4x0.001",
         "depth_cost_bps": 0.1175, "depth_exhausted": True, "price_model": "book"}
    f.update(kw)
    return f


def maker_partial(seq=2, **kw):
    return new_fill(seq, order_id="o7", qty="0.004", fill_px=87_890.0, order_qty="0.010",
                    order_filled="0.004", order_type="limit", liquidity="maker",
                    legs="87890.0x0.004", depth_cost_bps=0.0, depth_exhausted=False,
                    price_model="queue", fee_bps=2.0, **kw)


def old_fill(seq=3):
    """A fill dict from before the order book: none of the new keys."""
    f = new_fill(seq)
    for k in ("order_qty", "order_filled", "order_type", "liquidity", "legs", "depth_cost_bps",
              "depth_exhausted", "price_model"):
        f.pop(k)
    return f


def row_texts(table: OrdersTable, row: int) -> list[str]:
    return [table.item(row, c).text() for c in range(table.columnCount())]


def publish(w, *events):
    for kind, payload in events:
        w.bridge.publish(kind, payload)
    w.bridge.drain()


# ------------------------------------------------------------------- pending orders (window)

def test_a_limit_order_published_again_when_it_rests_updates_its_row(make_window, qtbot):
    w = make_window()
    table = w.orders_table
    order = limit_order()
    publish(w, ("quote", Quote(ts=T0, bid=87_905.0, ask=87_905.5)))  # the data time
    publish(w, ("order", order))
    assert table.rowCount() == 1
    assert table.COLUMNS == ("Side", "Type", "Limit", "Qty", "Filled", "Left", "State")
    assert row_texts(table, 0) == ["BUY entry", "limit GTC", "87,890.0", "0.010", "0.000",
                                   "0.010", "in flight, 1.2 s"]
    assert w.orders_dock.windowTitle() == "Pending orders (1)"
    # it reaches the exchange: the same order id again, with its place in the queue
    rested = dataclasses.replace(order, queue_ahead=0.052, cancel_ts=T0 + 31_200)
    publish(w, ("order", rested))
    assert table.rowCount() == 1 and table.order_ids == ["o7"]
    assert row_texts(table, 0)[-1] == "resting, 0.052 ahead"
    assert table.item(0, table.STATE_COL).toolTip().splitlines() == [
        "resting, 0.052 ahead",
        "order o7: BUY entry, limit GTC",
        "signal 87,905.2 at 2025-12-31 23:59:59.000 UTC",
        "reaches the exchange 2026-01-01 00:00:01.200 UTC",
        "limit 87,890.0, GTC",
        "cancelled 30 s after it arrives unless filled by then",
        "cancel takes effect 2026-01-01 00:00:31.200 UTC",
        "queue ahead at its price: 0.052 BTC"]
    assert table.item(0, 0).toolTip().startswith("order o7: BUY entry, limit GTC\n")
    assert w.orders_dock.windowTitle() == "Pending orders (1)"


def test_a_partial_fill_updates_the_row_and_a_cancelled_remainder_removes_it(make_window,
                                                                            qtbot):
    w = make_window()
    table = w.orders_table
    order = limit_order()
    publish(w, ("order", order), ("order", dataclasses.replace(order, queue_ahead=0.0)))
    assert row_texts(table, 0)[-1] == "resting, first in queue"
    publish(w, ("fill", maker_partial()),
            ("order_progress", {"order_id": "o7", "filled": "0.004", "remaining": "0.006",
                                "status": "partially filled"}))
    assert row_texts(table, 0)[3:] == ["0.010", "0.004", "0.006", "partially filled"]
    # the fill is in the fills table as a maker's partial fill
    model = w.fills_panel.model
    assert model.data(model.index(0, COLS.index("liquidity"))) == "maker"
    assert model.data(model.index(0, COLS.index("order_qty"))) == "0.010 partial"
    # a health snapshot (in-flight orders only) does not drop the resting order
    publish(w, ("health", {"pending_orders": [], "data_ts": T0 + 5_000}))
    assert table.order_ids == ["o7"]
    # the timeout cancels the rest: the row goes, the log says what was cancelled
    publish(w, ("order_done", {"order_id": "o7", "status": "cancelled", "reason": "timeout",
                               "remaining": "0.006"}))
    assert table.rowCount() == 0 and w.orders_dock.windowTitle() == "Pending orders"
    w.log_view.flush()
    said = [line for line in w.log_view.lines() if "o7" in line]
    assert len(said) == 1 and said[0].endswith(
        "gui: order o7 (BUY limit GTC 0.010 BTC @ 87,890.0): the unfilled 0.006 BTC "
        "cancelled (timeout); 0.004 BTC had filled"), said
    # a late copy of the order cannot bring the row back
    publish(w, ("order", order))
    assert table.rowCount() == 0


def test_a_filled_market_order_leaves_without_a_log_line(make_window, qtbot):
    w = make_window()
    publish(w, ("order", market_order()))
    assert row_texts(w.orders_table, 0)[:3] == ["SELL exit", "market", "–"]
    publish(w, ("fill", new_fill(order_id="o8")),
            ("order_done", {"order_id": "o8", "status": "filled", "reason": "exit"}))
    assert w.orders_table.rowCount() == 0
    w.log_view.flush()
    assert not [line for line in w.log_view.lines() if "o8" in line]


# ------------------------------------------------------------------- pending orders (table)

@pytest.mark.parametrize("tif, shown", [("GTC", "limit GTC"), ("IOC", "limit IOC"),
                                        ("POST_ONLY", "post-only")])
def test_each_time_in_force_is_named(qtbot, tif, shown):
    table = OrdersTable()
    qtbot.addWidget(table)
    table.add_order(limit_order(tif=tif))
    table.add_order(market_order())
    assert [table.item(r, table.TYPE_COL).text() for r in range(2)] == [shown, "market"]
    assert [table.item(r, table.LIMIT_COL).text() for r in range(2)] == ["87,890.0", "–"]


def test_in_flight_counts_down_in_data_time(qtbot):
    table = OrdersTable()
    qtbot.addWidget(table)
    table.add_order(market_order().to_dict())  # a health snapshot's dict works as well
    assert table.item(0, table.STATE_COL).text() == "in flight"  # no data time yet
    table.set_data_time(T0)
    table._tick()
    assert table.item(0, table.STATE_COL).text() == "in flight, 1.2 s"
    table.set_data_time(T0 + 1_500)
    table._tick()
    assert table.item(0, table.STATE_COL).text() == "in flight, due"


def test_health_sync_drops_a_market_order_but_keeps_a_resting_one(qtbot):
    table = OrdersTable()
    qtbot.addWidget(table)
    order = limit_order()
    table.add_order(order)
    table.add_order(dataclasses.replace(order, queue_ahead=0.02))
    table.add_order(market_order())
    table.sync([])  # neither is in flight any more
    assert table.order_ids == ["o7"]
    # a snapshot that lists the resting orders decides for them too
    table.sync([], resting=[dataclasses.replace(order, queue_ahead=0.01).to_dict()])
    assert table.order_ids == ["o7"]
    assert table.item(0, table.STATE_COL).text() == "resting, 0.010 ahead"
    table.sync([], resting=[])
    assert table.rowCount() == 0


def test_an_ioc_remainder_cancelled_without_a_known_order_is_still_said(qtbot):
    table = OrdersTable()
    qtbot.addWidget(table)
    table.add_order(limit_order(tif="IOC"))
    line = table.finish_order({"order_id": "o7", "status": "cancelled",
                               "reason": "IOC remainder cancelled", "remaining": "0.010"})
    assert line == ("order o7 (BUY limit IOC 0.010 BTC @ 87,890.0): the unfilled 0.010 BTC "
                    "cancelled (IOC remainder cancelled)")
    assert table.finish_order({"order_id": "o9", "status": "cancelled",
                               "reason": "cancelled by flatten"}) == \
        "order o9 cancelled (cancelled by flatten)"
    assert table.finish_order({"order_id": "o10", "status": "rejected", "reason": "x"}) is None


def test_on_a_1280x720_screen_the_orders_columns_fit_unclipped(make_window, qtbot):
    """Pending orders is a tab beside the Log there: every header and the longest states are
    whole, no horizontal scrolling."""
    from PySide6.QtGui import QFontMetrics
    w = make_window()
    qtbot.waitExposed(w)
    w.resize(1152, 648)  # 90% of a 1280x720 screen, as the window opens there
    w._default_dock_sizes()
    w.orders_dock.raise_()
    order = limit_order(side=Side.SELL, reason="flatten", limit_px=87_920.5,
                        qty=Decimal("0.020"))
    publish(w, ("order", order), ("order", dataclasses.replace(order, queue_ahead=0.052)),
            ("order", limit_order(oid="o9", tif="POST_ONLY")),
            ("order", dataclasses.replace(limit_order(oid="o9", tif="POST_ONLY"),
                                          queue_ahead=0.0)),
            ("order_progress", {"order_id": "o9", "filled": "0.003", "remaining": "0.007",
                                "status": "partially filled"}))
    qtbot.wait(50)
    table = w.orders_table
    hh = table.horizontalHeader()
    bold = hh.font()
    bold.setBold(True)
    hfm, fm = QFontMetrics(bold), table.fontMetrics()
    assert sum(hh.sectionSize(c) for c in range(hh.count())) <= table.viewport().width() + 1
    for c, title in enumerate(table.COLUMNS):
        assert hh.sectionSize(c) >= hfm.horizontalAdvance(title), title
        for r in range(table.rowCount()):
            text = table.item(r, c).text()
            assert hh.sectionSize(c) >= fm.horizontalAdvance(text) + 6, (title, text)
    assert {table.item(r, table.STATE_COL).text() for r in range(2)} == {
        "resting, 0.052 ahead", "partially filled"}


# ------------------------------------------------------------------- fills

def cell(panel, row, key, role=None):
    from PySide6.QtCore import Qt
    m = panel.model
    return m.data(m.index(row, COLS.index(key)), Qt.DisplayRole if role is None else role)


def test_fills_show_liquidity_order_qty_and_depth_with_the_levels_on_hover(qtbot):
    from PySide6.QtCore import Qt
    panel = FillsPanel()
    qtbot.addWidget(panel)
    panel.add_fill(new_fill(1))
    panel.add_fill(maker_partial(2))
    panel.add_fill(new_fill(4, price_model="top_of_book", legs="87910.0x0.003",
                            depth_cost_bps=0.0, depth_exhausted=False))
    assert [c[0] for c in FillsModel.COLUMNS][3:6] == ["Liquidity", "Qty", "Order qty"]
    assert [cell(panel, r, "liquidity") for r in range(3)] == ["taker", "maker", "taker"]
    assert [cell(panel, r, "order_qty") for r in range(3)] == ["0.003", "0.010 partial", "0.003"]
    assert [cell(panel, r, "depth_cost_bps") for r in range(3)] == ["0.12", "0.00", "0.00"]
    assert cell(panel, 1, "qty") == "0.004"
    tip = cell(panel, 0, "fill_px", Qt.ToolTipRole)
    assert tip.splitlines() == [
        "order o1  seq 1", "market order, taker", "walked the book",
        "levels taken (3), price × size:", "  87,910.0 × 0.001 BTC", "  87,910.5 × 0.001 BTC",
        "  87,911.4 × 0.001 BTC  (impact leg, beyond the visible book)",
        "depth cost 0.12 bps (VWAP vs best price)",
        "depth exhausted: the rest filled by the impact rule"]
    assert cell(panel, 0, "depth_cost_bps", Qt.ToolTipRole) == tip  # the whole row says it
    assert "top of book: no depth known" in cell(panel, 2, "fill_px", Qt.ToolTipRole)
    assert cell(panel, 1, "side", Qt.ToolTipRole).splitlines()[1:] == [
        "limit order, maker, partial: 0.004 of 0.010 BTC filled so far",
        "resting limit order filled by trades",
        "filled at its limit price: 87,890.0 × 0.004 BTC"]
    summary = panel.summary.text()
    assert summary.startswith("3 fills (1 maker)") and "depth 0.06" in summary, summary


def test_an_old_fill_dict_displays_as_a_taker_market_order(qtbot):
    from PySide6.QtCore import Qt
    panel = FillsPanel()
    qtbot.addWidget(panel)
    panel.add_fill(old_fill(3))
    assert panel.row_count == 1
    assert cell(panel, 0, "liquidity") == "taker"
    assert cell(panel, 0, "order_qty") == "0.003"
    assert cell(panel, 0, "depth_cost_bps") == "0.00"
    assert cell(panel, 0, "fill_px") == "87,910.5"
    assert cell(panel, 0, "fill_px", Qt.ToolTipRole) == "order o3  seq 3\nmarket order, taker"
    assert panel.summary.text().startswith("1 fill  ·  fees 0.13 USDT")


def test_the_report_window_shows_the_order_book_columns(qtbot, tmp_path):
    from gui.report_window import FILL_VIEW_COLUMNS, ReportWindow
    from storage.reports import write_run_reports
    report = {"status": "success", "exit_code": 0, "run_id": "book-run", "fills": 3,
              "starting_equity": 10000.0, "final_equity": 9999.0, "pnl_absolute": -1.0,
              "depth_model": "synthetic beyond the top level (calibrated model)"}
    run_dir = write_run_reports(tmp_path / "runs", "book-run", report=report,
                                fills=[new_fill(1), maker_partial(2), old_fill(3)], candles=[],
                                equity=[], settings={}, feed={})
    window = ReportWindow(run_dir)
    qtbot.addWidget(window)
    table = window.fills_table
    heads = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert heads == list(FILL_VIEW_COLUMNS)

    def text(row, col):
        return table.item(row, heads.index(col)).text()

    assert [text(r, "liquidity") for r in range(3)] == ["taker", "maker", "taker"]
    assert [text(r, "order_qty") for r in range(3)] == ["0.003", "0.010 partial", "0.003"]
    assert [text(r, "depth_cost_bps") for r in range(3)] == ["0.1175", "0.0", "0"]
    assert [text(r, "legs") for r in range(3)] == ["3 levels, impact", "1 level", "\u2014"]
    assert [text(r, "price_model") for r in range(3)] == ["book", "queue", "\u2014"]
    tip = table.item(0, heads.index("legs")).toolTip()
    assert tip.startswith("legs = 87910.0x0.001;87910.5x0.001;87911.4x0.001\n\n")
    assert tip.endswith("depth exhausted: the rest filled by the impact rule")
    old_tip = table.item(2, heads.index("liquidity")).toolTip()
    assert old_tip == "liquidity: not recorded (older data), so taker\n\nmarket order, taker"
    note = window._fills_note()
    assert note.startswith("3 fills \u00b7 1 maker, 2 taker \u00b7 1 partial \u00b7 depth: "
                           "synthetic beyond the top level (calibrated model)")
