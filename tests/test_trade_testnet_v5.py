"""``kobe trade`` and ``kobe run --duration`` in testnet against the Bybit and OKX simulators,
through the real ccxt: one entry with its TP/SL held by the exchange, whatever faults come first;
a move through the take-profit sells once and the engine, running after it, never sends again."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests import test_ccxt_contract_v5 as contract
from tests.conftest import CliRunner
from tests.test_ccxt_contract_v5 import VENUES, Venue, sim_env

venue = contract.venue  # the fixtures: each test runs against Bybit's and OKX's simulators
sim = contract.sim

BTC = "BTC/USDT"


def trade_args(venue: Venue, *extra: str) -> list[str]:
    # Bybit spot attaches TP/SL to limit orders only: a marketable limit is the entry there
    entry = (
        ["--type", "limit", "--price", "95000"] if venue.name == "bybit" else ["--type", "market"]
    )
    return [
        "trade", "--symbol", BTC, "--side", "buy", *entry, "--quote", "8",
        "--sl", "90000", "--tp", "100000", "--yes", "--json", *extra,
    ]  # fmt: skip


@pytest.fixture
def fast(workdir: Path) -> None:
    """A short client timeout, so a lost answer costs a fraction of a second."""
    (workdir / "kobe.toml").write_text("[exchange]\ntimeout_ms = 400\n")


def journal(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "data" / "logs" / "orders.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_trade_places_one_entry_with_its_tp_sl_on_the_exchange(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    r = cli(*trade_args(venue), env=sim_env(venue, sim))
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["plan"]["exits"] == "attached"
    assert out["entry"]["status"] == "filled" and out["entry"]["wallet"] == f"cex_{venue.name}"
    entries = sim.book.entries()
    assert len(entries) == 1 and entries[0].client_id == out["entry"]["client_id"]
    legs = {leg.role: leg.trigger for leg in sim.book.exits(entries[0].order_id)}
    assert legs == {"tp": Decimal(100000), "sl": Decimal(90000)}  # held by the exchange
    events = [(e["event"], e["client_id"]) for e in journal(workdir)]
    cid = out["entry"]["client_id"]
    # the exchange's TP/SL, found by the entry's ids, are journaled under Kobe's: the cover is
    # confirmed, not assumed
    assert events == [
        ("intent", cid), ("ack", cid), ("fill", cid), ("ack", f"{cid}sl"), ("ack", f"{cid}tp"),
    ]  # fmt: skip
    legs_journaled = {e["client_id"][-2:]: e for e in journal(workdir) if e["event"] == "ack"}
    assert legs_journaled["tp"]["status"] == "open" and legs_journaled["sl"]["status"] == "open"
    assert out["exits"] and {x["client_id"] for x in out["exits"]} == {f"{cid}tp", f"{cid}sl"}
    env = sim_env(venue, sim)
    [position] = json.loads(cli("positions", "--json", env=env).out)
    assert position["protection"] == "exchange"
    assert {(x["client_id"], x["status"]) for x in position["exits"]} == {
        (f"{cid}tp", "open"), (f"{cid}sl", "open"),
    }  # fmt: skip
    listed = cli("orders", "--json", env=env)
    assert listed.code == 0, listed.err
    assert {f"{cid}tp", f"{cid}sl"} <= {o["client_id"] for o in json.loads(listed.out)}


def test_bybit_market_entry_with_exits_is_guarded_locally(
    cli: CliRunner, fast: None, workdir: Path
) -> None:
    bybit = VENUES["bybit"]
    with bybit.make() as server:
        args = trade_args(bybit)
        args[args.index("limit")] = "market"
        del args[args.index("--price") : args.index("--price") + 2]
        r = cli(*args, env=sim_env(bybit, server))
        assert r.code == 0, r.err
        out = json.loads(r.out)
        assert out["plan"]["exits"] == "watchdog" and out["watched"] is True
        assert out["entry"]["status"] == "filled"
        assert server.book.exits() == []  # nothing attached: Bybit would refuse it
        assert server.orders_created == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "late", "delay": 1.0},
        {"kind": "drop"},
        {"kind": "status", "status": 503, "body": "Service Unavailable"},
    ],
    ids=["timeout-after-accept", "connection-lost-after-accept", "503"],
)
def test_faults_never_double_the_entry(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path, fault: dict[str, Any]
) -> None:
    options = dict(fault)
    kind = options.pop("kind")
    sim.inject(kind, method="POST", path=venue.create, **options)
    r = cli(*trade_args(venue), env=sim_env(venue, sim))
    assert r.code == 0, r.err
    assert sim.orders_created == 1, "one fault must never create two orders"
    assert len(sim.book.exits()) == 2
    events = [e["event"] for e in journal(workdir)]
    assert events[:2] == ["intent", "unknown"]  # journaled as unknown, then looked up


def test_wrong_keys_end_in_an_authentication_error_and_no_order(
    cli: CliRunner, venue: Venue, sim: Any, fast: None
) -> None:
    wrong = "not-the-secret-at-all"
    r = cli(*trade_args(venue), env=sim_env(venue, sim, **{venue.secret_var: wrong}))
    assert r.code == 1
    assert "uthentication" in r.err
    assert sim.orders_created == 0
    assert wrong not in r.err + r.out


def test_run_after_the_take_profit_fired_sends_nothing_again(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    env = sim_env(venue, sim)
    r = cli(*trade_args(venue), env=env)
    assert r.code == 0, r.err
    held = sim.book.free("BTC")
    sim.set_price(venue.market_id, Decimal(100500))  # the market moves through the take-profit
    legs = {leg.role: leg for leg in sim.book.exits()}
    assert legs["tp"].status == "filled" and legs["sl"].status == "deactivated"
    assert sim.book.free("BTC") == held  # the TP sold exactly what the entry bought, once
    r = cli("run", "--headless", "--duration", "1.2", "--tick", "0.4", env=env)
    assert r.code == 0, r.err
    assert "done: " in r.out
    assert sim.orders_created == 1  # the engine never sent a second entry or exit
    assert [leg.executed for leg in sim.book.exits() if leg.executed] == [legs["tp"].qty]


def test_the_exchange_held_take_profit_is_booked_once(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    env = sim_env(venue, sim)
    assert cli(*trade_args(venue), env=env).code == 0
    sim.set_price(venue.market_id, Decimal(100500))
    assert cli("run", "--headless", "--duration", "1.2", "--tick", "0.4", env=env).code == 0
    fills = [e for e in journal(workdir) if e["event"] == "fill"]
    assert [e["side"] for e in fills] == ["buy", "sell"]
    trades = (workdir / "data" / "trades.jsonl").read_text().splitlines()
    assert len(trades) == 1
    cid = fills[0]["client_id"]
    assert fills[1]["client_id"] == f"{cid}tp"  # linked to its position by the entry's ids
    assert Decimal(fills[1]["fee"]) > 0 and fills[1]["fee_asset"] == "USDT"  # as charged
    cancels = [e["client_id"] for e in journal(workdir) if e["event"] == "cancel"]
    assert cancels == [f"{cid}sl"]  # the sibling the exchange removed with the fire
    trade = json.loads(trades[0])
    assert Decimal(trade["exit_price"]) >= Decimal(100000)
    # a second engine run finds nothing new: the fire is booked once
    assert cli("run", "--headless", "--duration", "0.8", "--tick", "0.4", env=env).code == 0
    assert [e["event"] for e in journal(workdir)].count("fill") == 2
    assert len((workdir / "data" / "trades.jsonl").read_text().splitlines()) == 1


def test_cancelling_a_leg_cancels_the_pair_the_exchange_holds(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    env = sim_env(venue, sim)
    r = cli(*trade_args(venue), env=env)
    assert r.code == 0, r.err
    cid = json.loads(r.out)["entry"]["client_id"]
    r = cli("cancel", f"{cid}tp", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    assert {leg.status for leg in sim.book.exits()} == {"canceled"}  # both legs, on the exchange
    cancels = sorted(e["client_id"] for e in journal(workdir) if e["event"] == "cancel")
    assert cancels == [f"{cid}sl", f"{cid}tp"]
    positions = json.loads(cli("positions", "--json", env=env).out)
    assert positions[0]["protection"] == "UNPROTECTED"  # said, not hidden
    # cancelled: the price through the old take-profit sells nothing on the exchange
    sim.set_price(venue.market_id, Decimal(100500))
    assert [leg.executed for leg in sim.book.exits() if leg.executed] == []


def test_new_exits_replace_the_pair_the_exchange_holds(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    env = sim_env(venue, sim)
    r = cli(*trade_args(venue), env=env)
    assert r.code == 0, r.err
    cid = json.loads(r.out)["entry"]["client_id"]
    r = cli("exits", cid, "--tp", "101000", "--sl", "91000", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    assert {leg.status for leg in sim.book.exits()} == {"canceled"}  # the old pair is gone
    positions = json.loads(cli("positions", "--json", env=env).out)
    assert positions[0]["protection"].startswith("watchdog")  # the new prices, guarded
    sim.set_price(venue.market_id, Decimal(100500))  # the old take-profit fires nothing
    assert [leg.executed for leg in sim.book.exits() if leg.executed] == []


def test_exits_the_exchange_attaches_leave_dust_below_a_step(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    """Both exchanges charge a buy's fee in the asset received and size the attached TP/SL from
    the entry, rounded down to the step: 0.00007992 BTC held, 0.00007 sold. The rest is dust,
    kept at its cost and said once; no exit the exchange sizes takes it: the dust sweep sells it
    once it can be sold on its own (tests/test_dust_sweep_v5.py)."""
    env = sim_env(venue, sim)
    assert cli(*trade_args(venue), env=env).code == 0
    sim.set_price(venue.market_id, Decimal(100500))  # through the take-profit
    r = cli("run", "--headless", "--duration", "1.2", "--tick", "0.4", env=env)
    assert r.code == 0, r.err
    assert f"0.00000992 BTC of cex_{venue.name} is dust" in r.out
    [dust] = json.loads(cli("positions", "--json", env=env).out)
    assert dust["protection"] == "dust" and dust["qty"] == "0.00000992"
    assert dust["exits"] == []
