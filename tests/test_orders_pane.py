"""The open-orders pane as drawn: each order's owner and, for an exit, the position it
protects, with prices and quantities whole, at 80x24, 120x40 and 160x50, with BTC prices and
with a memecoin's (``0.0000614285``). Where one line cannot hold them, each row takes two."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from engine.exchange.base import Side
from engine.journal import OrderEvent
from engine.position import Position
from kobe_tui.widgets.formatting import px
from kobe_tui.widgets.orders import OrdersPane, position_label
from tests.cockpit_support import make_app, settle

TS = datetime(2026, 11, 30, 12, 5, tzinfo=UTC)


def position(symbol: str, qty: str, entry: str, tp: str, sl: str, strategy: str) -> Position:
    return Position(
        entry_client_id=f"{symbol}-entry",
        venue="paper",
        symbol=symbol,
        side=Side.BUY,
        qty=Decimal(qty),
        entry_price=Decimal(entry),
        entry_fee=Decimal(0),
        wallet="w1",
        strategy=strategy,
        opened_at=TS,
        take_profit=Decimal(tp),
        stop_loss=Decimal(sl),
        pending=False,
    )


def order(
    cid: str, p: Position, type_: str, price: Decimal, source: str = "strategy", side: str = "sell"
) -> OrderEvent:
    return OrderEvent(
        ts=TS, mode="paper", exchange="paper", event="ack", client_id=cid, exchange_id="1",
        symbol=p.symbol, side=side, type=type_, qty=p.qty, price=price,
        filled=Decimal(0), avg_price=None, fee=Decimal(0), fee_asset="", status="open",
        wallet=p.wallet, source=source, reason="",
    )  # fmt: skip


BTC = position("BTC/USDT", "0.00021", "95047.5", "99000", "93000", "copy_trading")
MEME = position(
    "PEPE/USDT", "162790", "0.0000614285", "0.0000675714", "0.0000583571", "memecoin_farming"
)


def drawn(app: object, pane: OrdersPane) -> list[str]:
    """The pane's lines as they are on screen (its box included)."""
    strips = app.screen._compositor.render_strips()  # type: ignore[attr-defined]
    r = pane.region
    return [strip.text[r.x : r.right] for strip in strips[r.y : r.bottom]]


# (size, position) -> the owner as drawn: whole, except where no two lines can hold it beside
# a memecoin's prices (a third of 160 columns): free text, it ends in … (the prices stay whole)
CUT = {(160, "memecoin_farming"): "memecoin…"}


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (160, 50)], ids=["80", "120", "160"])
@pytest.mark.parametrize("pos", [BTC, MEME], ids=["btc", "memecoin"])
async def test_each_order_shows_its_owner_and_the_position_it_protects(
    workdir: Path, size: tuple[int, int], pos: Position
) -> None:
    """At 120x40 and 80x24 the owner was never drawn (left out for the "protects" column);
    at 160x50, and at 120x40 with a memecoin's prices, "protects" was left out too."""
    app, _ = make_app(workdir)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        pane = app.query_one(OrdersPane)
        below = pos.stop_loss * Decimal("0.99")  # the SL leg's limit; a resting entry's price
        pane.apply(order("tp", pos, "limit_maker", pos.take_profit), pos)
        pane.apply(order("sl", pos, "stop_loss_limit", below), pos)
        pane.apply(order("entry", pos, "limit", below, source="cockpit", side="buy"))
        await pilot.press("1")  # at 80 columns, the pane shown
        await pilot.pause()
        two = pane.table.header_height == 2
        assert two == (size[0] > 80 or pos is MEME)  # one line only where one line holds all
        owner = CUT.get((size[0], pos.strategy), pos.strategy)
        label = position_label(pos)
        expected = [  # each row: its first line's cells, then what must be drawn in the row
            ((px(pos.take_profit), "SELL"), ("TP", owner, label)),
            ((px(pos.stop_loss), "SELL"), ("SL", owner, label)),  # its trigger, not its limit
            ((px(below), "BUY"), ("limit", "cockpit")),  # an entry protects nothing
        ]
        for row, (first, rest) in enumerate(expected):
            pane.table.move_cursor(row=row)  # scrolled into sight in a short pane
            await pilot.pause()
            lines = drawn(app, pane)
            [at] = [n for n, line in enumerate(lines) if all(f" {c} " in line for c in first)]
            text = " ".join(lines[at : at + 1 + two])
            assert f" {pos.symbol} " in lines[at] and f" {px(pos.qty)} " in lines[at], text
            for cell in rest:
                assert f" {cell} " in text, (cell, "\n".join(lines))
            assert (label in text) == (row < 2), text


def test_an_exit_names_its_positions_entry_as_the_positions_pane_shows_it() -> None:
    """Walked in tmux: an exit protected ``long @ 95,000`` while the positions pane, beside
    it, showed that position's entry as ``95,000.00`` (a moving price keeps its decimals):
    the two now read the same, so the eye matches them."""
    assert position_label(BTC) == f"long @ {px(BTC.entry_price, fixed=True)}" == "long @ 95,047.50"
    assert position_label(MEME) == "long @ 0.0000614285"
