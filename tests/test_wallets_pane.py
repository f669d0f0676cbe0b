"""The wallets pane tells the truth at a glance: every sub-wallet's balance on screen, no
scrolling, no money cut. At 120x40 it showed 4 of the shipped profile's 10 wallets (the rest
scrolled): its cell of the grid had five lines. It spans two rows of the grid now; no key
changes its height (tests/test_pane_rows.py)."""

from __future__ import annotations

import shutil
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from kobe_tui.app import KobeApp
from kobe_tui.widgets.formatting import exact, num, signed
from kobe_tui.widgets.header import KobeHeader
from kobe_tui.widgets.money import WalletsPane
from tests.binance_sim import DEFAULT_SYMBOLS, SymbolSpec
from tests.cockpit_support import drain, make_app, settle, ticks
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


# twelve markets: the account line holds thirteen assets, too many for one line at any size
MANY = DEFAULT_SYMBOLS + tuple(
    SymbolSpec(f"{base}USDT", base, "USDT", Decimal("1.25"), *(Decimal("0.01"),) * 3, Decimal(5))
    for base in ("ADA", "AVAX", "BNB", "DOGE", "DOT", "LINK", "LTC", "TRX", "XRP")
)
# it answers, with an error not retried: the header says the venue is degraded
KEY_REFUSED = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
HELD = {"USDT": Decimal("9985.75"), "BTC": Decimal("1.00000985")}
HELD |= {s.base: Decimal("1234.5678") for s in MANY[3:]}


async def account_line(app: KobeApp, pilot: Pilot[Any], wanted: str = "") -> str:
    """The exchange account's line as drawn under the ledger (once it reads ``wanted``)."""
    pane = app.query_one(WalletsPane)
    line = app.query_one("#wallets-exchange", Static)
    for _ in range(200):
        await pilot.pause(0.05)
        if line.display and wanted in (shown := drawn(app, line)[0]):
            break
    assert line.display and wanted in shown, (wanted, drawn(app, pane))
    assert line.region.height == 1  # one line, never two
    return shown.strip()


def read_at(app: KobeApp) -> str:
    """The time of the account's last read, as the pane's bottom border says it."""
    subtitle = str(app.query_one(WalletsPane).border_subtitle)
    assert subtitle.startswith("binance account "), subtitle
    return subtitle.removeprefix("binance account ")


async def test_the_account_line_says_the_exchange_is_down_while_it_is(workdir: Path) -> None:
    """Walked with the exchange unreachable: the header said ``venue DOWN: since 00:02`` while the
    account line still read ``free:  BTC 1  …  USDT 10,000`` under its read's time, as if
    current. It says when they were read and that the exchange is down, in words, first; a
    read that fails meanwhile keeps those figures and their time (it put its own time on an
    error)."""
    async with cockpit_on_testnet(workdir, (120, 40)) as (app, pilot, clock, sim):
        await pilot.press("3")
        assert (await account_line(app, pilot, "USDT")).startswith("free:  USDT 10,000  BTC 1")
        at = read_at(app)
        sim.inject("drop", times=10_000)  # every connection cut: it cannot be reached
        await ticks(app, pilot, clock, 1)
        assert "venue DOWN: since" in app.query_one(KobeHeader).item("venue-state")
        down = await account_line(app, pilot)
        assert down == f"as of {at}, exchange down:  USDT 10,000  BTC 1  …", down
        app.read_exchange_balances()  # the minute's read, with the exchange still down
        await drain(app, pilot, timeout=30)
        assert await account_line(app, pilot) == down and read_at(app) == at
        pane = app.query_one(WalletsPane)
        assert_every_wallet_whole_in_sight(pane, drawn(app, pane))


@pytest.mark.parametrize(
    ("fault", "state"),
    [
        ({"status": 503, "body": "Service Unavailable", "times": 1000}, "down"),
        ({"status": 401, "body": KEY_REFUSED}, "degraded"),
    ],
    ids=["down", "degraded"],
)
async def test_the_account_line_is_current_again_once_a_read_succeeds(
    workdir: Path, fault: dict[str, Any], state: str
) -> None:
    async with cockpit_on_testnet(workdir, (120, 40)) as (app, pilot, clock, sim):
        await pilot.press("3")
        await account_line(app, pilot, "free:")
        at = read_at(app)
        sim.inject(method="GET", path="/api/v3/time", **fault)  # the engine's ping each tick
        await ticks(app, pilot, clock, 1)
        assert f"venue {state.replace('down', 'DOWN')}" in app.query_one(KobeHeader).item(
            "venue-state"
        )
        await account_line(app, pilot, f"as of {at}, exchange {state}:  USDT 10,000")
        sim.faults.clear()  # it answers again: the next tick finds it, the account is read
        sim.balances["USDT"] = Decimal("9985.75")
        await ticks(app, pilot, clock, 1)
        back = await account_line(app, pilot, "USDT 9,985.75")
        assert back.startswith("free:  USDT 9,985.75  BTC 1") and "exchange" not in back
        assert read_at(app) == f"{clock():%H:%M}" != at


@pytest.mark.parametrize("size", SIZES, ids=IDS)
async def test_many_assets_stay_on_one_line_and_every_wallet_in_sight(
    workdir: Path, size: tuple[int, int]
) -> None:
    """At 120x40 thirteen assets wrapped the account line over five lines, and the ledger's
    last wallets went out of sight (two lines were enough to hide the tenth). One line: whole
    assets with their figures while they fit, the quote first, then ``…``; the whole
    list in the line's tooltip. The same with the exchange down, its mark first."""
    assets = ["USDT", *sorted(s.base for s in MANY)]  # as Kobe asks: the quote first
    amounts = sorted(((a, HELD.get(a, Decimal(0))) for a in assets), key=lambda p: p[1] == 0)
    pairs = [f"{a} {exact(v)}" for a, v in amounts]  # the zeros (ETH, SOL) last
    async with cockpit_on_testnet(workdir, size, MANY, HELD) as (app, pilot, clock, sim):
        await pilot.press("3")
        pane = app.query_one(WalletsPane)
        for head in ("free:", f"as of {read_at(app)}, exchange degraded:"):
            if "degraded" in head:
                sim.inject(status=401, body=KEY_REFUSED, method="GET", path="/api/v3/time")
                await ticks(app, pilot, clock, 1)
            line = await account_line(app, pilot, head)
            first, *shown, last = line.removeprefix(head).split("  ")
            assert (first, last) == ("", "…") and 0 < len(shown) < len(pairs), line
            assert shown == pairs[: len(shown)], line  # each whole, in order
            assert app.query_one("#wallets-exchange").tooltip == "  ".join([head, *pairs])
            assert_every_wallet_whole_in_sight(pane, drawn(app, pane))


async def test_a_read_that_fails_keeps_the_figures_and_says_they_are_old(workdir: Path) -> None:
    """The exchange answers the engine but not the account's read (an answer cut short): the
    line said only ``could not be read (…)``, the figures gone, under the failed read's time.
    It keeps the last figures and their time, says they could not be read again, and is
    current once a read succeeds."""
    async with cockpit_on_testnet(workdir, (120, 40)) as (app, pilot, clock, sim):
        await pilot.press("3")
        await account_line(app, pilot, "free:")
        at = read_at(app)
        await ticks(app, pilot, clock, 1)  # the engine's calls answer: the venue is ok
        cut = {"method": "GET", "path": "/api/v3/account", "rewrite": lambda t: t[:40]}
        sim.inject("rewrite", times=5, **cut)  # the read's every attempt
        app.read_exchange_balances()
        line = await account_line(app, pilot, "could not be read")
        assert line == f"as of {at}, could not be read:  USDT 10,000  BTC 1  …", line
        assert "venue ok" in app.query_one(KobeHeader).item("venue-state")
        app.read_exchange_balances()
        assert (await account_line(app, pilot, "free:")).startswith("free:  USDT 10,000")
        assert read_at(app) == f"{clock():%H:%M}" != at
