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
