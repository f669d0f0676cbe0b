"""One data dir used in paper, then in testnet (and back): each mode sees only its own orders.

The order journal and the watchdog file serve every mode of a data dir, and the paper account
and the exchange's testnet share an exchange name (``binance``). Filtered by that name alone,
a testnet session looked paper's open orders up on the testnet exchange, listed paper's orders
in its orders pane, and its watchdog sold paper's position on the testnet exchange when the
testnet price touched paper's stop. Back in paper, paper's watchdog item was gone. Testnet runs
here against the Binance simulator through the real ccxt.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.exchange.base import Side
from engine.journal import OrderEvent, OrderJournal
from engine.jsonutil import dumps
from engine.watchdog import WATCHDOG_FILE, ExitPlan, Watchdog, WatchItem, WatchState
from kobe_tui.widgets.orders import OrdersPane
from tests.binance_sim import BinanceSim
from tests.cockpit_support import make_app, settle
from tests.conftest import CliRunner
from tests.test_ccxt_contract import sim_env

BUY = ("trade", "--symbol", "BTC/USDT", "--side", "buy", "--yes", "--json")
EXITS = ("--sl", "94000", "--tp", "97000")
WATCHED = (*BUY, "--type", "market", "--quote", "6.7", *EXITS)
OCO = WATCHED  # the same order, with the default exits policy: an OCO on the exchange
RESTING = (*BUY, "--type", "limit", "--price", "90000", "--quote", "6.3")
RESTING += ("--sl", "88000", "--tp", "97000")
T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)


def journal(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "data" / "logs" / "orders.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def watchdog_items(data: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((data / WATCHDOG_FILE).read_text())["items"]
    return items


def trade(cli: CliRunner, argv: tuple[str, ...], env: dict[str, str] | None = None) -> str:
    """Send one ``kobe trade``; its entry's client id."""
    r = cli(*argv, env=env)
    assert r.code == 0, r.err
    cid: str = json.loads(r.out)["entry"]["client_id"]
    return cid


def paper_book(cli: CliRunner, workdir: Path) -> list[str]:
    """Paper holds: a position its watchdog guards (TP/SL watched locally), a position with an
    OCO resting on the paper exchange, and a limit entry resting with its exits to come.
    Returns the three entries' client ids."""
    (workdir / "kobe.toml").write_text('[router]\nexits = "watchdog"\n')
    watched = trade(cli, WATCHED)
    (workdir / "kobe.toml").write_text("")
    return [watched, trade(cli, OCO), trade(cli, RESTING)]


def paper_state(cli: CliRunner, workdir: Path) -> tuple[Any, Any, Any]:
    """What paper shows: its open orders, its positions and its watchdog items."""
    orders, positions = cli("orders", "--json"), cli("positions", "--json")
    assert orders.code == 0 and positions.code == 0, orders.err + positions.err
    drop = ("created_at", "mark", "unrealized_pnl")
    shown = [{k: v for k, v in p.items() if k not in drop} for p in json.loads(positions.out)]
    return json.loads(orders.out), shown, watchdog_items(workdir / "data")


def ours(text: str, entries: list[str]) -> list[str]:
    """The entries (or their exits) ``text`` names."""
    return [cid for cid in entries if cid in text]


def order_event(mode: str, cid: str, event: str = "intent", status: str = "new") -> OrderEvent:
    return OrderEvent(
        ts=T0, mode=mode, exchange="binance", event=event, client_id=cid, exchange_id=None,
        symbol="BTC/USDT", side="buy", type="market", qty=Decimal("0.00007"), price=None,
        filled=Decimal(0), avg_price=None, fee=Decimal(0), fee_asset="", status=status,
        wallet="cex_binance", source="cli", reason="",
    )  # fmt: skip


def lost_intent(workdir: Path, cid: str, mode: str | None) -> None:
    """An entry's intent whose send was never answered (a kill -9 before the reply); with
    ``mode`` None, a line without its mode field."""
    record = order_event(mode or "", cid).to_record()
    if mode is None:
        del record["mode"]
    with (workdir / "data" / "logs" / "orders.jsonl").open("a") as fh:
        fh.write(dumps(record) + "\n")


def test_testnet_neither_looks_up_nor_shows_nor_sells_what_paper_holds(
    cli: CliRunner, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entries = paper_book(cli, workdir)
    before = paper_state(cli, workdir)
    orders, positions, watched = before
    assert len(orders) == 3 and len(positions) == 2 and len(watched) == 2  # the test's premise
    lost_intent(workdir, "kobelostpapern1", "paper")  # its outcome: paper's to find out
    entries.append("kobelostpapern1")
    with BinanceSim() as sim:
        sim.set_price("BTCUSDT", Decimal(93000))  # paper's watched stop (94000) is touched here
        env = sim_env(sim)
        r = cli("orders", "--json", env=env)
        assert r.code == 0, r.err
        assert json.loads(r.out) == []
        assert not ours(r.err, entries), r.err  # not "the watchdog would sell …" either
        r = cli("cancel", entries[2], "--yes", env=env)  # paper's resting entry
        assert r.code == 1 and f"order {entries[2]}: unknown (not open on binance)" in r.err
        r = cli("run", "--headless", "--ticks", "2", env=env)
        assert r.code == 0, r.err
        assert not ours(r.out + r.err, entries), r.out
        assert sim.orders_created == 0, "testnet sold a paper position"
        assert not ours(" ".join(sim.queries), entries), "paper's orders looked up on testnet"
    assert not [e for e in journal(workdir) if e["mode"] == "testnet"]  # testnet placed nothing
    caplog.clear()
    after = paper_state(cli, workdir)  # back in paper: as it was, and its lost intent settled
    assert after == before
    lines = journal(workdir)
    assert lines[-1]["client_id"] == "kobelostpapern1" and lines[-1]["event"] == "reject"
    assert lines[-1]["mode"] == "paper"


async def test_the_testnet_orders_pane_shows_none_of_papers_orders(
    cli: CliRunner, workdir: Path
) -> None:
    """The cockpit paints its orders pane from the journal's tail before its engine runs:
    paper's three open orders stayed there, under the testnet header, until they changed."""
    entries = paper_book(cli, workdir)
    (workdir / "kobe.toml").write_text("[exchange]\ntimeout_ms = 400\n")
    with BinanceSim() as sim:
        app, _ = make_app(workdir, sim_env(sim))
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            assert app.runtime is not None, app.engine_state
            shown = list(app.query_one(OrdersPane).orders)
    assert not ours(" ".join(shown), entries), shown


def test_paper_starting_over_leaves_testnets_orders_alone(cli: CliRunner, workdir: Path) -> None:
    """The other way round: a paper account that starts over (``paper/`` deleted) journals the
    orders *it* had open as cancelled; testnet's resting OCO was journaled cancelled too
    (``paper account reset``), and testnet then lost track of its own exits."""
    with BinanceSim() as sim:
        env = sim_env(sim)
        entry = trade(cli, (*BUY, "--type", "market", "--quote", "15", *EXITS), env)
        trade(cli, RESTING)  # paper, on a fresh account (it never ran here)
        assert not [e for e in journal(workdir) if e["mode"] == "paper" and entry in e["client_id"]]
        r = cli("orders", "--json", env=env)
        assert r.code == 0, r.err
        legs = {o["client_id"]: (o["wallet"], o["source"]) for o in json.loads(r.out)}
        assert legs == {f"{entry}tp": ("cex_binance", "cli"), f"{entry}sl": ("cex_binance", "cli")}


def test_watchdog_items_from_before_they_carried_a_mode(
    cli: CliRunner, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Items an older Kobe wrote have no mode. The one whose entry paper's journal holds is
    paper's: testnet never acts on it, paper adopts it. One whose entry no journal holds
    (older than the journal's tail) is acted on by no mode, and kept."""
    (workdir / "kobe.toml").write_text('[router]\nexits = "watchdog"\n')
    entry = trade(cli, WATCHED)
    doc = json.loads((workdir / "data" / WATCHDOG_FILE).read_text())
    (item,) = doc["items"]
    orphan = {**item, "entry_client_id": "kobeorphann1", "entry_id": "99"}
    doc["items"] = [{k: v for k, v in i.items() if k != "mode"} for i in (item, orphan)]
    (workdir / "data" / WATCHDOG_FILE).write_text(json.dumps(doc))
    with BinanceSim() as sim:
        sim.set_price("BTCUSDT", Decimal(93000))  # both items' stop (94000) is touched
        r = cli("run", "--headless", "--ticks", "2", env=sim_env(sim))
        assert r.code == 0, r.err
        assert sim.orders_created == 0
    assert [i.get("mode", "") for i in watchdog_items(workdir / "data")] == ["", ""]
    caplog.clear()
    caplog.set_level(logging.WARNING)
    r = cli("orders", "--json")  # paper: its journal holds the entry
    assert r.code == 0, r.err
    assert "1 item(s) of no mode whose entry paper's order journal does not hold" in caplog.text
    assert "not acted on: 'kobeorphann1'" in caplog.text
    modes = {i["entry_client_id"]: i["mode"] for i in watchdog_items(workdir / "data")}
    assert modes == {entry: "paper", "kobeorphann1": ""}  # written back as it was: of no mode
    assert [i.entry_client_id for i in Watchdog(workdir / "data", "paper").items()] == [entry]
    assert Watchdog(workdir / "data", "testnet").items() == []


def test_a_journal_line_without_a_mode_is_no_order_in_any_mode(
    cli: CliRunner, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every version of Kobe journaled each order's mode. A line without one (edited, or
    damaged) cannot tell which venue it was sent to: no mode follows it (looked up on the
    wrong venue, a paper order would be journaled as never sent there, or sold there); it is
    skipped and logged, like any line that cannot be read."""
    trade(cli, RESTING)
    lost_intent(workdir, "kobenomoden1", None)
    with BinanceSim() as sim:
        caplog.set_level(logging.WARNING)
        assert cli("orders", "--json", env=sim_env(sim)).code == 0
        assert "kobenomoden1" not in " ".join(sim.queries)
    assert cli("orders", "--json").code == 0
    assert [e["client_id"] for e in journal(workdir)].count("kobenomoden1") == 1
    assert "a record cannot be read ('mode')" in caplog.text


def test_a_watchdog_item_is_written_with_its_mode_and_others_kept(tmp_path: Path) -> None:
    item = WatchItem(
        entry_client_id="kobe1n1", entry_id="1", symbol="BTC/USDT", side=Side.BUY,
        qty=Decimal("0.001"), take_profit=None, stop_loss=Decimal(90000), wallet="cex_binance",
        source="cli", exits=ExitPlan.WATCHDOG, state=WatchState.WATCHING,
    )  # fmt: skip
    Watchdog(tmp_path, "paper").add(item)
    testnet = Watchdog(tmp_path, "testnet")
    assert testnet.items() == [] and testnet.get("kobe1n1") is None
    testnet.add(replace(item, entry_client_id="kobe2n1"))
    testnet.remove("kobe1n1")  # not testnet's: untouched
    assert {(i["entry_client_id"], i["mode"]) for i in watchdog_items(tmp_path)} == {
        ("kobe1n1", "paper"),
        ("kobe2n1", "testnet"),
    }
    assert Watchdog(tmp_path, "paper").items() == [replace(item, mode="paper")]


def test_the_order_journal_state_of_a_router_is_its_modes(tmp_path: Path) -> None:
    """The journal state every router path reads (sync, reconciliation, the stop room, the
    open orders, cancels) holds only its own mode's orders on its venue."""
    from engine.router import RouterView

    journal = OrderJournal(tmp_path)
    for mode, cid in (("paper", "kobe1n1"), ("testnet", "kobe2n1")):
        journal.append(order_event(mode, cid, "ack", "open"))
    for mode, cid in (("paper", "kobe1n1"), ("testnet", "kobe2n1")):
        view = RouterView(
            None,  # type: ignore[arg-type]  # the journal state asks no venue
            journal, data_dir=tmp_path, mode=mode, exchange_name="binance", clock=lambda: T0,
        )  # fmt: skip
        assert list(view.journal_state()) == [cid]
    journal.close()
