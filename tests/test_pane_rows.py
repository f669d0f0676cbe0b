"""At 120x40 every pane is on screen at once. With every row of the grid as tall as the others
the orders pane held one and a half two-line orders: an entry's take-profit showed, its
stop-loss did not. The orders and positions row is now a little taller, and the wallets pane
two rows tall (tests/test_wallets_pane.py); no key changes a pane's height (a re-layout of the
whole screen per key was too slow under engine load)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from kobe_tui.widgets.orders import OrdersPane
from tests.cockpit_support import make_app, settle
from tests.test_orders_pane import BTC, drawn, order


def heights(app: object) -> dict[str, int]:
    panes = app.query_one("#panes")  # type: ignore[attr-defined]
    return {str(p.id): p.region.height for p in panes.children}


async def test_an_entrys_tp_and_sl_orders_show_whole_at_120x40(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        pane = app.query_one(OrdersPane)
        below = BTC.stop_loss * Decimal("0.99")
        pane.apply(order("tp", BTC, "limit_maker", BTC.take_profit), BTC)
        pane.apply(order("sl", BTC, "stop_loss_limit", below), BTC)
        await pilot.pause()
        lines = drawn(app, pane)
        text = "\n".join(lines)
        assert pane.table.header_height == 2, text  # two-line rows at this width
        # both orders on screen, each with its second line (type, what it protects)
        assert sum(" TP " in line or " SL " in line for line in lines) == 2, text
        assert text.count("long @ ") == 2, text
        assert pane.table.scroll_offset.y == 0 and pane.table.max_scroll_y == 0, text


async def test_no_pane_key_changes_a_panes_height(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        before = heights(app)
        assert before["orders"] > before["journal"] >= 7  # the taller row, the others whole
        assert before["wallets"] == 2 * before["journal"]  # two rows: every wallet in sight
        for key in "312345678":
            await pilot.press(key)
            await pilot.pause()
            assert heights(app) == before, key
