"""What the panels display, cell by cell (pytest-qt, offscreen)."""
from __future__ import annotations

from decimal import Decimal

from gui.panels import FillsPanel
from gui.theme import fmt_money


def _fill(seq: int, realized: str, fee: str = "0.5") -> dict:
    return {"order_id": f"o{seq}", "seq": seq, "fill_ts": 1_767_225_600_000 + seq * 60_000,
            "side": "SELL", "reason": "exit", "qty": "0.010", "fill_px": "87000.0",
            "bid": "87000.0", "ask": "87001.0", "fee": fee, "realized_pnl": realized}


def test_realized_cells_add_up_to_the_total_shown(qtbot):
    # to cents the rows would read +0.56, -1.70, -3.96 (sum -5.10) beside a total of -5.08
    panel = FillsPanel()
    qtbot.addWidget(panel)
    pnls = ["0.5650", "-1.7035", "-3.9415"]
    for i, p in enumerate(pnls, 1):
        panel.add_fill(_fill(i, p))
    view = panel.view
    col = [c[1] for c in panel.model.COLUMNS].index("realized_pnl")
    shown = [view.model().index(r, col).data() for r in range(view.model().rowCount())]
    assert shown == ["+0.5650", "-1.7035", "-3.9415"]
    total = sum(Decimal(p) for p in pnls)
    assert sum(Decimal(t) for t in shown) == total
    assert fmt_money(total, sign=True) == "-5.08"


def test_position_panel_follows_each_quote_between_health_snapshots(qtbot):
    """Bid/ask, unrealized and equity once lagged the chart's header by up to a snapshot."""
    from trading.broker import unrealized_pnl
    from trading.model import Quote
    from gui.panels import PositionPanel
    panel = PositionPanel()
    qtbot.addWidget(panel)
    panel.on_quote(Quote(ts=1, bid=87000.0, ask=87001.0))  # no session yet: nothing shown
    assert panel.values["mark"].text() == "–"
    panel.set_health({"position": {"qty": "0.113", "avg_px": "87803.0", "stop_px": None,
                                   "target_px": None},
                      "unrealized": -0.51, "realized": -2.49, "fees": 17.85,
                      "equity": 9979.15, "starting_equity": 10000.0,
                      "bid": 87794.0, "ask": 87803.0})
    panel.on_quote(Quote(ts=2, bid=87797.0, ask=87803.0))
    assert panel.values["mark"].text() == "87,797.0 / 87,803.0"
    unreal = unrealized_pnl(Decimal("0.113"), Decimal("87803.0"), 87800.0)
    assert panel.values["unrealized"].text() == fmt_money(unreal, sign=True) == "-0.34"
    assert panel.values["equity"].text() == "9,979.32 USDT"  # 9979.15 + 0.51 - 0.339
    assert panel.hero.text() == "-20.68 USDT"
    # a snapshot taken before that quote (the bridge delivers the newest quote first) does
    # not put the older bid/ask back; one taken after it does
    old = {"position": {"qty": "0.113", "avg_px": "87803.0"}, "unrealized": -0.51,
           "realized": -2.49, "fees": 17.85, "equity": 9979.15, "starting_equity": 10000.0,
           "bid": 87794.0, "ask": 87803.0, "data_ts": 1}
    panel.set_health(old)
    assert panel.values["mark"].text() == "87,797.0 / 87,803.0"
    panel.set_health({**old, "data_ts": 3, "bid": 87801.0, "ask": 87806.0})
    assert panel.values["mark"].text() == "87,801.0 / 87,806.0"


def test_a_replay_feed_never_reads_live(qtbot):
    from gui.panels import StatusIndicators
    ind = StatusIndicators()
    qtbot.addWidget(ind)
    base = {"feed_state": "live", "reconnects": 0, "queue_depth": 1, "queue_max": 1000,
            "last_message_age_s": 0.1, "breaker_state": "closed"}
    ind.set_health({**base, "source": "bitunix"})
    assert "feed live" in ind.feed_label.text()
    for h in ({**base, "source": "replay"}, {**base, "source": "auto", "offline_fallback": True}):
        ind.set_health(h)
        assert "feed replay" in ind.feed_label.text() and "live" not in ind.feed_label.text()


def test_the_countdown_says_how_long_a_fast_replay_takes_on_the_wall_clock(qtbot):
    from gui.panels import StatusIndicators
    ind = StatusIndicators()
    qtbot.addWidget(ind)
    h = {"feed_state": "live", "source": "replay", "duration_ms": 2_400_000,
         "remaining_ms": 2_156_000, "speed": 60.0}
    ind.set_health(h)
    assert ind.remaining_label.text() == "left 35:56 (≈00:35)"
    ind.set_health({**h, "speed": 1.0})
    assert ind.remaining_label.text() == "left 35:56"
    ind.set_health({**h, "speed": float("inf")})  # max: as fast as it goes, no estimate
    assert ind.remaining_label.text() == "left 35:56"
    ind.set_finished()
    assert ind.remaining_label.text() == "finished"


def test_empty_fills_columns_fit_their_headers_without_waste(qtbot):
    panel = FillsPanel()
    qtbot.addWidget(panel)
    hh = panel.view.horizontalHeader()
    fm = hh.fontMetrics()
    for col, (title, *_rest) in enumerate(panel.model.COLUMNS):
        assert fm.horizontalAdvance(title) <= hh.sectionSize(col) <= \
            fm.horizontalAdvance(title) * 1.3 + 30, (title, hh.sectionSize(col))


def test_the_status_bar_names_a_channel_silent_while_others_push(qtbot):
    from gui.panels import StatusIndicators
    ind = StatusIndicators()
    qtbot.addWidget(ind)
    h = {"feed_state": "live", "source": "bitunix", "last_message_age_s": 0.2,
         "channel_stale_s": 10.0,
         "channel_ages_s": {"depth_book1": 0.2, "market_kline_1min": 12.4, "price": 0.9}}
    ind.set_health(h)
    assert "kline 12 s" in ind.age_label.text()
    ind.set_health({**h, "channel_stale_s": 30.0})  # not yet past what the feed allows
    assert "kline" not in ind.age_label.text()
    assert "market_kline_1min 12.4 s" in ind.age_label.toolTip()
    ind.set_health({**h, "channel_ages_s": {"depth_book1": 0.2, "market_kline_1min": 0.4}})
    assert "kline" not in ind.age_label.text()
