"""At 120x40 and 160x50 every pane is on screen at once, each row of the grid as tall as the
others: the orders pane held one and a half two-line orders (an entry's TP showed, its SL did
not), the wallets pane 5 of its 10 wallets. The active pane's row now grows to show all it
holds, up to half the height, and gives it back when another pane is chosen."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from kobe_tui.widgets.orders import OrdersPane
from kobe_tui.widgets.pane import Pane
from tests.cockpit_support import make_app, settle
from tests.test_orders_pane import BTC, drawn, order


def heights(app: object) -> dict[str, int]:
    panes = app.query_one("#panes")  # type: ignore[attr-defined]
    return {str(p.id): p.region.height for p in panes.children}


async def test_the_orders_row_grows_to_show_an_entrys_tp_and_sl_whole(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        even = heights(app)
        pane = app.query_one(OrdersPane)
        below = BTC.stop_loss * Decimal("0.99")
        pane.apply(order("tp", BTC, "limit_maker", BTC.take_profit), BTC)
        pane.apply(order("sl", BTC, "stop_loss_limit", below), BTC)
        await pilot.pause()
        await pilot.pause()
        lines = drawn(app, pane)
        text = "\n".join(lines)
        # both rows whole, each on its two lines, the box's bottom border right under them
        assert sum(" TP " in line or " SL " in line for line in lines) == 2, text
        assert text.count("long @ ") == 2, text
        assert lines[-1].startswith("╰"), text
        grown = heights(app)
        assert grown["orders"] == grown["positions"] > even["orders"]
        # the other panes are all still on screen: no row below 5 lines (3 inside the box)
        assert min(grown.values()) >= 5, grown
        assert sum(grown.values()) - grown["positions"] - grown["journal"] == sum(
            even.values()
        ) - even["positions"] - even["journal"], (even, grown)


async def test_choosing_a_pane_grows_its_row_and_gives_the_height_back(workdir: Path) -> None:
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        even = heights(app)
        wallets = app.query_one("#wallets", Pane)
        table = wallets.query_one("DataTable")
        assert table.row_count > even["wallets"] - 3  # more wallets than the even row shows
        await pilot.press("3")
        await pilot.pause()
        grown = heights(app)
        assert grown["wallets"] == min(table.row_count + 3, 31 // 2), (even, grown)
        assert grown["wallets"] > even["wallets"] and grown["orders"] < even["orders"]
        await pilot.press("2")  # nothing to show beyond its row: even again
        await pilot.pause()
        assert heights(app) == even


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80", "160"])
async def test_one_pane_at_a_time_and_three_columns_keep_their_rows(
    workdir: Path, size: tuple[int, int]
) -> None:
    """At 80x24 the chosen pane takes the whole height anyway; at 160x50 the 10 wallets fit
    an even row of three."""
    app, _ = make_app(workdir)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        before = heights(app)
        await pilot.press("3")
        await pilot.pause()
        after = heights(app)
        if size[0] == 80:
            assert after["wallets"] == before["orders"]  # the one pane shown, full height
        else:
            assert after == before
