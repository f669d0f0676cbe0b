"""The wallets pane tells the truth at a glance: every sub-wallet's balance on screen, no
scrolling, no money cut. At 120x40 it showed 4 of the shipped profile's 10 wallets (the rest
scrolled): its cell of the grid had five lines. It spans two rows of the grid now; no key
changes its height (tests/test_pane_rows.py)."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from kobe_tui.widgets.formatting import num, signed
from kobe_tui.widgets.money import WalletsPane
from tests.cockpit_support import make_app, settle, ticks
from tests.conftest import ROOT
from tests.test_cockpit_keys import cockpit_on_testnet
from tests.test_cockpit_layout import shown_whole
from tests.test_orders_pane import drawn

SIZES = [(80, 24), (120, 40), (160, 50)]
IDS = ["80x24", "120x40", "160x50"]


def assert_every_wallet_whole_in_sight(pane: WalletsPane, lines: list[str]) -> None:
    """Each wallet on its own line of the pane as drawn, with its balance, share of equity and
    PnL whole on that line; the table holds them all without scrolling."""
    table = pane.table
    text = "\n".join(lines)
    assert table.scroll_offset.y == 0 and table.max_scroll_y == 0, text
    assert table.row_count == 10, text
    for key in [str(k.value) for k in table.rows]:
        balance, pct, pnl = (pane.row_cells(key)[i].plain for i in (3, 4, 5))
        (line,) = [row for row in lines if f" {key} " in row]  # one line, not cut
        cells = line.split()
        assert balance in cells and pnl in cells, (key, line)
        if "pct" in {str(c.value) for c in table.columns}:
            assert pct in cells, (key, line)
    shown_whole(pane)  # no money column narrower than its content, nothing past the edge


@pytest.mark.parametrize("size", SIZES, ids=IDS)
async def test_every_wallet_and_its_money_in_sight_at_every_size(
    workdir: Path, size: tuple[int, int]
) -> None:
    shipped = ROOT / "kobe.toml"
    wallets = [w["id"] for w in tomllib.loads(shipped.read_text())["finance"]["wallets"]]
    assert len(wallets) == 10  # the shipped profile (LIVE_150)
    shutil.copy(shipped, workdir / "kobe.toml")
    app, clock = make_app(workdir)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        await ticks(app, pilot, clock, 3)
        await pilot.press("3")  # at 80 columns the pane shown; elsewhere in sight already
        await pilot.pause()
        pane = app.query_one(WalletsPane)
        assert [k.value for k in pane.table.rows] == wallets  # in the profile's order
        assert app.runtime is not None
        for w in app.runtime.wallets_snapshot().wallets:  # the figures the ledger holds
            cells = pane.row_cells(w.id)
            assert cells[3].plain == num(w.balance, 2)
            assert cells[5].plain == signed(w.pnl_day).plain
        assert_every_wallet_whole_in_sight(pane, drawn(app, pane))


@pytest.mark.parametrize("size", SIZES, ids=IDS)
async def test_testnet_wallets_and_the_exchange_account_in_sight(
    workdir: Path, size: tuple[int, int]
) -> None:
    """Testnet and live: the exchange's balances under Kobe's ledger, and still every wallet."""
    async with cockpit_on_testnet(workdir, size) as (app, pilot, _clock, _sim):
        await pilot.press("3")
        for _ in range(100):
            await pilot.pause(0.05)
            if app.query_one("#wallets-exchange").display:
                break
        await pilot.pause()
        pane = app.query_one(WalletsPane)
        lines = drawn(app, pane)
        text = "\n".join(lines)
        assert "binance account" in text and "USDT 10,000" in text, text
        assert_every_wallet_whole_in_sight(pane, lines)
