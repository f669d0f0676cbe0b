"""The dust sweep on Bybit and OKX, through the real ccxt against the v5 simulators.

The TP/SL Bybit and OKX attach to an entry are sized by the exchange from the entry, rounded down
to the step: a buy's fee taken in BTC leaves 0.00000992 BTC (about 0.94 USDT) after each trade,
which no attached exit takes. Once the wallet's dust is sellable on its own (OKX: one step;
Bybit: its 5 USDT minimum order value too) the running engine sells it at market, under a client
id of its own (``<id>ds``), intent first; it is booked once as a trade of its own and its money
is the wallet's again. A crash between the send and the booking never sends it twice, and a
refusal is said once and backed off, never sent once a tick.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.modes import resolve_settings
from engine.runtime import Runtime, SimClock
from tests import test_ccxt_contract_v5 as contract
from tests.conftest import CliRunner
from tests.crash_harness import child_env
from tests.test_ccxt_contract_v5 import VENUES, Venue, sim_env
from tests.test_trade_testnet_v5 import journal, trade_args

venue = contract.venue  # the fixtures: each test runs against Bybit's and OKX's simulators
sim = contract.sim

BTC = "BTC/USDT"
RUN = ("run", "--headless", "--duration", "1.2", "--tick", "0.4")
TOO_BIG = ("trade", "--symbol", BTC, "--side", "buy", "--type", "market", "--quote", "100000")
# trades until the dust is sellable: OKX at one step (2 trades), Bybit at 5 USDT (6 trades)
TRADES_TO_SWEEP = {"okx": 2, "bybit": 6}
SWEPT = {"okx": Decimal("0.00001"), "bybit": Decimal("0.00005")}


@pytest.fixture
def room(workdir: Path) -> None:
    """A short client timeout, and trading wallets with room for the six 8 USDT trades whose
    dust reaches Bybit's 5 USDT minimum order value (the shipped 10 USDT wallets cannot fund an
    8 USDT trade once 3 USDT of it is dust)."""
    (workdir / "kobe.toml").write_text(
        "[exchange]\ntimeout_ms = 400\n\n[finance]\ncapital_usd = 250\nwallets = [\n"
        + "".join(
            f'  {{ id = "{w}", chain = "{c}", role = "{r}", allocation_usd = {a} }},\n'
            for w, c, r, a in (
                ("sniper_sol", "solana", "trading", 30),
                ("copy_sol", "solana", "trading", 30),
                ("cex_binance", "binance", "trading", 20),
                ("cex_bybit", "bybit", "trading", 60),
                ("cex_okx", "okx", "trading", 60),
                ("fees_sol", "solana", "fees", 10),
                ("buffer", "offchain", "buffer", 10),
                ("profits", "offchain", "profits", 10),
                ("vault", "offchain", "vault", 10),
                ("reserve", "offchain", "reserve", 10),
            )
        )
        + "]\n\n[finance.risk_wallets]\ncex_bybit = { max_usd = 75 }\ncex_okx = { max_usd = 75 }\n"
    )


def one_trade(cli: CliRunner, venue: Venue, sim: Any, env: dict[str, str]) -> None:
    """An entry with its TP/SL attached, the move through the take-profit, and the close
    booked by the next command's start (a refused trade: nothing sent, nothing swept)."""
    r = cli(*trade_args(venue), env=env)
    assert r.code == 0, r.err
    sim.set_price(venue.market_id, Decimal(100500))
    r = cli(*TOO_BIG, "--yes", env=env)
    assert r.code == 1 and "insufficient balance" in r.err, r.err


def money(cli: CliRunner, env: dict[str, str], wallet: str) -> tuple[Decimal, Decimal, Decimal]:
    """(what ``wallet`` may spend: its balance less its dust at cost; the fees wallet's balance;
    the dust's quantity), exact, as `kobe wallets` and `kobe positions` say them."""
    wallets = json.loads(cli("wallets", "--json", env=env).out)["wallets"]
    dust = [p for p in json.loads(cli("positions", "--json", env=env).out) if p["wallet"] == wallet]
    assert all(p["protection"] == "dust" for p in dust)
    qty = sum((Decimal(p["qty"]) for p in dust), Decimal(0))
    cost = sum((Decimal(p["cost"]) for p in dust), Decimal(0))
    return Decimal(wallets[wallet]["balance"]) - cost, Decimal(wallets["fees_sol"]["balance"]), qty


def sweeps(sim: Any) -> list[Any]:
    return [o for o in sim.book.entries() if o.client_id.endswith("ds")]


def sweep_trades(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "data" / "trades.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [t for t in rows if t["strategy"] == "dust sweep"]


def dust_until_sellable(
    cli: CliRunner, venue: Venue, sim: Any, env: dict[str, str], *, runs: bool = False
) -> None:
    """The trades whose dust is not sellable yet (``runs``: each followed by a run of the
    engine, which sells nothing); then the trade after which it is (booked, not swept yet)."""
    for _ in range(TRADES_TO_SWEEP[venue.name] - 1):
        one_trade(cli, venue, sim, env)
        if runs:
            assert cli(*RUN, env=env).code == 0
        sim.set_price(venue.market_id, Decimal(95000))
        assert sweeps(sim) == []  # below the venue's minimum: it waits for more
    one_trade(cli, venue, sim, env)


def test_dust_attached_exits_leave_is_swept_once_sellable_and_its_money_is_the_wallets_again(
    cli: CliRunner, venue: Venue, sim: Any, workdir: Path, room: None
) -> None:
    env = sim_env(venue, sim)
    wallet = f"cex_{venue.name}"
    dust_until_sellable(cli, venue, sim, env, runs=True)
    spendable, fees_wallet, dust = money(cli, env, wallet)
    assert dust == Decimal("0.00000992") * TRADES_TO_SWEEP[venue.name]
    usdt, btc = sim.book.free("USDT"), sim.book.free("BTC")
    r = cli(*RUN, env=env)
    assert r.code == 0, r.err
    [order] = sweeps(sim)
    assert order.side == "sell" and order.executed == SWEPT[venue.name]
    assert f"{SWEPT[venue.name]} BTC of {wallet}'s dust sold" in r.out
    # journaled as every order is: intent first, its source the dust sweep
    events = [e for e in journal(workdir) if e["client_id"] == order.client_id]
    assert [e["event"] for e in events] == ["intent", "ack", "fill"]
    assert {e["source"] for e in events} == {"dust sweep"}
    fill = events[-1]
    proceeds, fee = Decimal(fill["filled"]) * Decimal(fill["avg_price"]), Decimal(fill["fee"])
    # booked once, as a trade of its own: the dust's cost against what it sold for
    [trade] = sweep_trades(workdir)
    assert trade["trade_id"] == order.client_id and trade["wallet"] == wallet
    assert Decimal(trade["qty"]) == SWEPT[venue.name] and Decimal(trade["fees"]) == fee
    assert Decimal(trade["pnl"]) == proceeds - SWEPT[venue.name] * Decimal(95000) - fee
    # the money is the wallet's again, to the cent and beyond: what the exchange credited
    after, fees_after, dust_after = money(cli, env, wallet)
    assert dust_after == dust - SWEPT[venue.name]  # the part below one step stays dust
    assert after - spendable == proceeds  # its fee paid from the fees wallet, as every trade's
    assert fees_wallet - fees_after == fee
    assert (after - spendable) - (fees_wallet - fees_after) == sim.book.free("USDT") - usdt
    assert btc - sim.book.free("BTC") == SWEPT[venue.name]
    # and never again: the rest is below the venue's minimum
    assert cli(*RUN, env=env).code == 0
    assert len(sweeps(sim)) == 1 and len(sweep_trades(workdir)) == 1


def test_a_sweep_whose_outcome_is_unknown_is_looked_up_never_sent_beside(
    cli: CliRunner, workdir: Path, room: None
) -> None:
    """Its answer lost and every look-up of the adapter failing (about 8 s of retries): the
    sweep is journaled unknown; the next tick looks it up by client id instead of sending
    another, and books it. Meanwhile no exit Kobe sizes counts that dust (the book's
    ``foldable_dust`` is 0 while a sweep works: tests/test_book.py)."""
    okx = VENUES["okx"]
    with okx.make() as server:
        env = sim_env(okx, server)
        dust_until_sellable(cli, okx, server, env)
        server.inject("drop", method="POST", path=okx.create, times=1)
        for path in okx.lookups:  # the adapter's own five look-ups fail: the outcome is unknown
            server.inject(status=503, body="Service Unavailable", method="GET", path=path, times=5)
        r = cli("run", "--headless", "--duration", "12", "--tick", "0.4", env=env)
        assert r.code == 0, r.err
        [order] = sweeps(server)  # sent once, then found by its client id
        events = [e for e in journal(workdir) if e["client_id"] == order.client_id]
        assert [e["event"] for e in events] == ["intent", "unknown", "ack", "fill"]
        assert "before sweeping again" in events[2]["reason"]  # by the running engine
        [trade] = sweep_trades(workdir)
        assert Decimal(trade["qty"]) == SWEPT["okx"]


CHILD = """
import json, os, signal, sys
from pathlib import Path
from engine import fsutil
journal = Path("data/logs/orders.jsonl")
def fault(path):
    # the order journal's next line after a sweep's intent: the sweep was sent, not booked
    if Path(path).name == "orders.jsonl" and journal.exists():
        last = json.loads(journal.read_text().splitlines()[-1])
        if last["client_id"].endswith("ds") and last["event"] == "intent":
            os.kill(os.getpid(), signal.SIGKILL)
fsutil.inject_write_fault(fault)
from engine.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_between_the_sweeps_send_and_its_booking_sends_it_once_and_books_it_once(
    cli: CliRunner, venue: Venue, sim: Any, workdir: Path, room: None
) -> None:
    env = sim_env(venue, sim)
    dust_until_sellable(cli, venue, sim, env)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *RUN],
        cwd=workdir,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    [order] = sweeps(sim)  # it reached the exchange and sold
    assert order.executed == SWEPT[venue.name]
    events = [e["event"] for e in journal(workdir) if e["client_id"] == order.client_id]
    assert events == ["intent"]  # the process died before it heard the answer
    assert sweep_trades(workdir) == []
    (workdir / "data" / "kobe.lock").unlink(missing_ok=True)  # (its process is gone)
    r = cli(*RUN, env=env)  # the restart looks it up by client id, then books it
    assert r.code == 0, r.err
    assert len(sweeps(sim)) == 1  # never sent twice
    events = [e["event"] for e in journal(workdir) if e["client_id"] == order.client_id]
    assert events == ["intent", "ack", "fill"]
    [trade] = sweep_trades(workdir)
    assert Decimal(trade["qty"]) == SWEPT[venue.name]
    assert cli(*RUN, env=env).code == 0
    assert len(sweeps(sim)) == 1 and len(sweep_trades(workdir)) == 1


def test_a_refused_sweep_is_said_once_and_backed_off_never_sent_each_tick(
    cli: CliRunner, venue: Venue, sim: Any, workdir: Path, room: None
) -> None:
    env = sim_env(venue, sim)
    dust_until_sellable(cli, venue, sim, env)
    sim.inject(status=200, body=venue.insufficient, method="POST", path=venue.create, times=50)
    posts = sim.count("POST", venue.create)
    r = cli("run", "--headless", "--duration", "3.2", "--tick", "0.4", env=env)
    assert r.code == 0, r.err
    # eight ticks: sent at the first, again after 2 s, then 4 s later (beyond this run)
    assert sim.count("POST", venue.create) - posts == 2
    assert r.out.count("dust was refused") == 1, r.out
    refused = [e for e in journal(workdir) if e["client_id"].endswith("ds")]
    assert [e["event"] for e in refused] == ["intent", "reject"] * 2
    assert sweep_trades(workdir) == [] and sweeps(sim) == []
    positions = json.loads(cli("positions", "--json", env=env).out)
    assert [p["protection"] for p in positions] == ["dust"]  # still Kobe's, at its cost


# the ticker's path, and an answer that is no price and not worth a retry (no such market)
TICKER = {
    "bybit": ("/v5/market/tickers", {"retCode": 10001, "retMsg": "params error", "result": {}}),
    "okx": ("/api/v5/market/ticker", {"code": "51001", "msg": "Instrument ID does not exist"}),
}


def test_a_sweep_that_cannot_price_its_dust_waits_never_tries_each_tick(
    cli: CliRunner,
    venue: Venue,
    sim: Any,
    workdir: Path,
    room: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by the reviewer: dust in a market the venue no longer prices (a delisted coin, a
    ticker down) failed the sweep and logged a warning at every tick, for good. It waits 5
    minutes, as a sweep the venue's minimum value holds back does."""
    env = sim_env(venue, sim)
    dust_until_sellable(cli, venue, sim, env)
    path, body = TICKER[venue.name]
    sim.inject(status=200, body=body, method="GET", path=path, times=1000)
    caplog.clear()
    r = cli("run", "--headless", "--duration", "3.2", "--tick", "0.4", env=env)
    assert r.code == 0, r.err
    tried = [m for m in caplog.messages if m.startswith("dust sweep cex_")]
    ticks = int(r.out.split("done: ")[1].split(" ticks")[0])
    assert len(tried) == 1 and ticks >= 4, (tried, r.out)  # a try at the first tick only
    assert sweeps(sim) == []


def test_the_shipped_bybit_wallet_is_refused_before_its_dust_reaches_the_minimum_value(
    cli: CliRunner, workdir: Path
) -> None:
    """The shipped 10 USDT `cex_bybit`, trading 8 USDT a time: after four trades its dust (3.77
    USDT) is below Bybit's 5 USDT minimum order value, so not swept, and the fifth trade is
    refused, the refusal naming the dust apart from what is open (README: The dust sweep)."""
    (workdir / "kobe.toml").write_text("[exchange]\ntimeout_ms = 400\n")
    bybit = VENUES["bybit"]
    with bybit.make() as server:
        env = sim_env(bybit, server)
        for _ in range(4):
            assert cli(*trade_args(bybit), env=env).code == 0
            server.set_price(bybit.market_id, Decimal(100500))
            server.set_price(bybit.market_id, Decimal(95000))
        assert cli(*RUN, env=env).code == 0  # books the last close; nothing to sweep yet
        assert sweeps(server) == []
        r = cli(*trade_args(bybit), env=env)
    assert r.code == 1
    assert "cex_bybit can spend" in r.err and "open 0.00 (+ dust 3.77)" in r.err, r.err


def test_a_sweep_never_sells_what_another_position_of_kobes_holds_when_the_dust_is_gone(
    cli: CliRunner, workdir: Path
) -> None:
    """The dust of cex_okx is no longer on the account (the operator sold it, or moved it),
    while another wallet's position in the same coin, guarded by no exit on the exchange (none
    locks its coins), holds what is free: the sweep sells nothing. It sold a step of that
    position, whose exit would then find too little to sell."""
    wallets = (
        ("sniper_sol", "solana", "trading", 10),
        ("copy_sol", "solana", "trading", 10),
        ("cex_binance", "binance", "trading", 20),
        ("cex_bybit", "bybit", "trading", 20),
        ("cex_okx", "okx", "trading", 50),
        ("cex_okx2", "okx", "trading", 20),
        ("fees_sol", "solana", "fees", 10),
        ("buffer", "offchain", "buffer", 10),
        ("profits", "offchain", "profits", 10),
        ("vault", "offchain", "vault", 10),
        ("reserve", "offchain", "reserve", 10),
    )
    (workdir / "kobe.toml").write_text(
        "[exchange]\ntimeout_ms = 400\n\n[finance]\ncapital_usd = 180\nwallets = [\n"
        + "".join(
            f'  {{ id = "{w}", chain = "{c}", role = "{r}", allocation_usd = {a} }},\n'
            for w, c, r, a in wallets
        )
        + "]\n\n[finance.risk_wallets]\ncex_okx = { max_usd = 75 }\ncex_okx2 = { max_usd = 75 }\n"
    )
    okx = VENUES["okx"]
    with okx.make() as server:
        env = sim_env(okx, server)
        dust_until_sellable(cli, okx, server, env)
        r = cli(
            "trade", "--symbol", BTC, "--side", "buy", "--type", "market", "--quote", "8",
            "--wallet", "cex_okx2", "--yes", env=env,
        )  # fmt: skip
        assert r.code == 0, r.err
        [held] = [
            Decimal(p["qty"])
            for p in json.loads(cli("positions", "--json", env=env).out)
            if p["wallet"] == "cex_okx2"
        ]
        server.book.balances["BTC"] = held  # cex_okx's dust gone: only the position's is left
        r = cli(*RUN, env=env)
        assert r.code == 0, r.err
        assert sweeps(server) == []
        assert server.book.free("BTC") == held
        assert sweep_trades(workdir) == []
        positions = json.loads(cli("positions", "--json", env=env).out)
        assert sorted(p["protection"] for p in positions if p["wallet"] == "cex_okx") == ["dust"]


def test_no_dust_is_swept_while_the_kill_switch_is_tripped_or_the_engine_paused(
    cli: CliRunner, venue: Venue, sim: Any, workdir: Path, room: None
) -> None:
    """A sweep is a sale the trader did not ask for: while trading is stopped (the kill switch
    tripped; the engine paused, the cockpit's `p`) the engine sends none; exits keep working.
    Once reset and resumed, it sweeps.

    The kill switch can also trip inside a tick, after it began: a local watchdog's stop sells
    a position during the routers' poll, its loss is booked and reaches ``max_losing_streak``.
    Before, the sweep was decided at the start of the poll and sold the dust in that same tick.
    Here the risk engine trips inside the venue's poll (the moment that close would trip it)."""
    env = sim_env(venue, sim)
    dust_until_sellable(cli, venue, sim, env)
    assert cli("risk", "trip", "--reason", "hold everything", "--yes", env=env).code == 0
    posts = sim.count("POST", venue.create)
    r = cli(*RUN, env=env)
    assert r.code == 0, r.err
    assert sim.count("POST", venue.create) == posts and sweeps(sim) == []
    assert not [e for e in journal(workdir) if e["client_id"].endswith("ds")]
    assert cli("risk", "reset", "--yes", env=env).code == 0
    clock = SimClock(datetime.now(UTC))
    runtime = Runtime(resolve_settings(env, workdir), clock=clock, tick_seconds=5)
    runtime.build()
    try:
        router = runtime.venues[venue.name].router
        poll = router.poll

        def poll_then_trip(prices: Any = None) -> None:
            poll(prices)
            runtime.risk.trip("3 losing trades in a row (max_losing_streak 3)", "risk")

        router.poll = poll_then_trip  # type: ignore[method-assign]
        runtime.tick()
        router.poll = poll  # type: ignore[method-assign]
        assert runtime.risk.kill_switch().tripped and sweeps(sim) == []
        runtime.reset_kill_switch("operator")
        runtime.pause()
        for _ in range(3):
            clock.advance(5)
            runtime.tick()
        assert sweeps(sim) == []
        runtime.resume()
        runtime.tick()
        [order] = sweeps(sim)
        assert order.executed == SWEPT[venue.name]
    finally:
        runtime.close()
