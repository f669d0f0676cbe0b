"""The TP/SL Bybit and OKX hold for an entry, attacked as an exchange, a trader and an attacker would.

The real ccxt drives ``kobe`` (testnet mode, ``KOBE_EXCHANGE_URL``) against the v5 simulators:
faults on the legs' read right after the fill, fires while no engine runs, fires far back in a
paged history, lost cancels, an interrupted ``kobe exits``, odd values in the exchange's answers,
two positions on one symbol, and the requests a tick spends as positions pile up. A test marked
``xfail(strict=True)`` shows a defect that is still there (the reason names it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.agent import build_agent
from engine.exchange.base import ExchangeError, OrderType, Side
from engine.modes import resolve_settings
from engine.proposal import Proposal, Sizing, Source
from engine.runtime import Runtime
from tests import bybit_sim, okx_sim
from tests import test_ccxt_contract_v5 as contract
from tests import test_trade_testnet_v5 as v5
from tests.conftest import CliRunner, held
from tests.test_ccxt_contract_v5 import VENUES, Venue, sim_env
from tests.test_request_budget import FINANCE

venue = contract.venue  # the fixtures: each test runs against Bybit's and OKX's simulators
sim = contract.sim
fast = v5.fast
journal = v5.journal
trade_args = v5.trade_args

TP, SL = Decimal(100000), Decimal(90000)  # trade_args' exits, around an entry at 95 000
LEGS_READ = {  # the request that lists an entry's armed TP/SL: (path, query it contains)
    "bybit": (bybit_sim.ORDER_REALTIME, "orderFilter=tpslOrder"),
    "okx": (okx_sim.ALGO_PENDING, None),
}
CANCEL_LEGS = {"bybit": bybit_sim.ORDER_CANCEL, "okx": okx_sim.CANCEL_ALGOS}


def run(cli: CliRunner, env: dict[str, str], seconds: str = "1.2") -> None:
    r = cli("run", "--headless", "--duration", seconds, "--tick", "0.4", env=env)
    assert r.code == 0, r.err


def events(workdir: Path, cid: str = "") -> list[tuple[str, str]]:
    return [
        (e["event"], e["client_id"]) for e in journal(workdir) if e["client_id"].startswith(cid)
    ]


def trades(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "data" / "trades.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def place(cli: CliRunner, venue: Venue, env: dict[str, str], *extra: str) -> dict[str, Any]:
    r = cli(*trade_args(venue, *extra), env=env)
    assert r.code == 0, r.err
    out: dict[str, Any] = json.loads(r.out)
    return out


def empty_page(venue: Venue) -> dict[str, Any]:
    """A successful answer that lists nothing: what a read lagging behind the fill sees."""
    if venue.name == "bybit":
        return {"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": []}}
    return {"code": "0", "msg": "", "data": []}


def sells(sim: Any) -> list[Any]:
    """Every sell the exchange executed: Kobe's own orders and the fired TP/SL legs."""
    return [o for o in sim.book.orders.values() if o.side == "sell" and o.executed > 0]


# ---------------------------------------------------------------------------------------------
# The legs' read right after the entry fill


def test_a_failed_legs_read_after_the_fill_is_confirmed_by_the_next_run(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    """503 on every try of the legs' read: the CLI says the exits' outcome is unknown (it does
    not claim them, nor hand them to the watchdog); the next ``kobe run`` finds them by the
    entry's ids and journals them; nothing is sent twice."""
    env = sim_env(venue, sim)
    path, query = LEGS_READ[venue.name]
    sim.inject(status=503, body="Unavailable", method="GET", path=path, query=query, times=5)
    out = place(cli, venue, env)
    cid = out["entry"]["client_id"]
    assert out["entry"]["status"] == "filled"
    assert out["exits"] == [] and out["watched"] is True
    assert any("OUTCOME UNKNOWN" in note for note in out["notes"]), out["notes"]
    assert events(workdir) == [("intent", cid), ("ack", cid), ("fill", cid)]
    sim.faults.clear()
    run(cli, env)
    assert sorted(events(workdir)[3:]) == [("ack", f"{cid}sl"), ("ack", f"{cid}tp")], events(
        workdir
    )
    [position] = json.loads(cli("positions", "--json", env=env).out)
    assert position["protection"] == "exchange"
    assert sim.orders_created == 1  # no second entry, no exit of Kobe's own
    assert {leg.status for leg in sim.book.exits()} == {"untriggered"}


def test_legs_listed_late_are_still_followed_and_never_doubled(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    env = sim_env(venue, sim)
    path, query = LEGS_READ[venue.name]
    sim.inject(status=200, body=empty_page(venue), method="GET", path=path, query=query)
    out = place(cli, venue, env)
    cid = out["entry"]["client_id"]
    assert len(sim.book.exits()) == 2  # the exchange holds the pair all along
    sim.set_price(venue.market_id, Decimal(100500))  # the TP fires while no engine runs
    run(cli, env)
    assert len(sells(sim)) == 1, "one position, sold twice"
    assert ("fill", f"{cid}tp") in events(workdir)
    assert len(trades(workdir)) == 1


def test_legs_the_exchange_refused_as_the_entry_filled_leave_the_watchdog_guarding(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    """The entry fills but the exchange refuses the TP/SL made from it (OKX's algo
    ``order_failed``, Bybit's legs ``Rejected``): they were taken for the exchange's cover,
    the watchdog item was dropped, ``kobe trade`` said nothing and the stop was never sold. Now
    the CLI says so, the watchdog guards the position, and its stop sells once."""
    env = sim_env(venue, sim)
    sim.book.exits_refused = 1
    out = place(cli, venue, env)
    cid = out["entry"]["client_id"]
    assert out["watched"] is True
    assert any("EXITS NOT PLACED" in note for note in out["notes"]), out["notes"]
    [position] = json.loads(cli("positions", "--json", env=env).out)
    assert position["protection"] == "watchdog (needs a running engine)"
    sim.set_price(venue.market_id, Decimal(89000))  # through the stop nobody holds
    run(cli, env)
    assert [(o.client_id, o.executed > 0) for o in sells(sim)] == [(f"{cid}sl", True)]
    assert len(trades(workdir)) == 1 and Decimal(trades(workdir)[0]["pnl"]) < 0
    run(cli, env)
    assert len(sells(sim)) == 1 and sim.orders_created == 2  # the entry and the one stop


def test_a_take_profit_armed_without_its_refused_stop_is_no_cover(
    cli: CliRunner, fast: None, workdir: Path
) -> None:
    """Bybit arms the take-profit but refuses the stop-loss (its legs are separate orders):
    the position was shown covered by the exchange, and the price went through the stop with
    nothing sold. The lone take-profit is cancelled and the watchdog guards both."""
    bybit = VENUES["bybit"]
    with bybit.make() as server:
        env = sim_env(bybit, server)
        server.book.exits_refused = 1
        server.book.refused_roles = ("sl",)
        out = place(cli, bybit, env)
        cid = out["entry"]["client_id"]
        assert any("EXITS NOT PLACED" in note for note in out["notes"]), out["notes"]
        assert [leg.status for leg in server.book.exits()] == ["canceled", "rejected"]
        [why] = [
            e["reason"]
            for e in journal(workdir)
            if (e["event"], e["client_id"]) == ("cancel", f"{cid}tp")
        ]
        assert why.startswith("cancelled by Kobe: no cover without its sibling"), (
            why
        )  # not the operator
        [position] = json.loads(cli("positions", "--json", env=env).out)
        assert position["protection"] == "watchdog (needs a running engine)"
        server.set_price(bybit.market_id, Decimal(89000))
        run(cli, env)
        assert [o.client_id for o in sells(server)] == [f"{cid}sl"]
        assert len(trades(workdir)) == 1


# ---------------------------------------------------------------------------------------------
# Fires while no engine runs


def test_the_stop_loss_fired_offline_is_booked_once_as_a_loss(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    env = sim_env(venue, sim)
    cid = place(cli, venue, env)["entry"]["client_id"]
    sim.set_price(venue.market_id, Decimal(89000))  # through the stop-loss, a gap below it
    run(cli, env)
    assert ("fill", f"{cid}sl") in events(workdir) and ("cancel", f"{cid}tp") in events(workdir)
    assert ("fill", f"{cid}tp") not in events(workdir)
    [trade] = trades(workdir)
    assert Decimal(trade["exit_price"]) <= SL and Decimal(trade["pnl"]) < 0
    run(cli, env, "0.8")  # a second engine finds nothing new
    assert [e for e, _ in events(workdir)].count("fill") == 2 and len(trades(workdir)) == 1
    assert len(sells(sim)) == 1


def test_a_fire_far_back_in_the_history_is_still_booked(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    env = sim_env(venue, sim)
    cid = place(cli, venue, env)["entry"]["client_id"]
    sim.set_price(venue.market_id, Decimal(100500))  # the TP fires while no engine runs
    # then the trader (or another bot on the key) works the symbol by hand: a page of orders
    for n in range(105 if venue.name == "okx" else 25):
        order = sim.book.place(venue.market_id, "buy", "limit", Decimal("0.0002"), Decimal(60000),
                               f"manual{n}")  # fmt: skip
        sim.book.cancel(order)
    run(cli, env)
    assert ("fill", f"{cid}tp") in events(workdir)
    assert len(trades(workdir)) == 1


def test_two_positions_on_one_symbol_each_keep_their_own_legs(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    """The first position's TP fires; the second, with a higher TP, stays armed: legs are
    linked by each entry's own ids, never by symbol or side."""
    (workdir / "kobe.toml").write_text(FINANCE + "[exchange]\ntimeout_ms = 400\n")  # room for 2
    env = sim_env(venue, sim)
    first = place(cli, venue, env)["entry"]["client_id"]
    args = trade_args(venue)
    args[args.index("--tp") + 1] = "102000"
    r = cli(*args, env=env)
    assert r.code == 0, r.err
    second = json.loads(r.out)["entry"]["client_id"]
    sim.set_price(venue.market_id, Decimal(100500))
    run(cli, env)
    assert ("fill", f"{first}tp") in events(workdir)
    assert ("cancel", f"{first}sl") in events(workdir)
    assert [e for e, _ in events(workdir, second)] == ["intent", "ack", "fill", "ack", "ack"]
    [trade] = trades(workdir)
    [open_position] = held(json.loads(cli("positions", "--json", env=env).out))
    assert open_position["protection"] == "exchange"
    assert {x["client_id"] for x in open_position["exits"]} == {f"{second}tp", f"{second}sl"}
    assert Decimal(trade["exit_price"]) >= TP


# ---------------------------------------------------------------------------------------------
# Cancel and replace


def test_a_cancel_whose_answer_is_lost_settles_both_legs(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    env = sim_env(venue, sim)
    cid = place(cli, venue, env)["entry"]["client_id"]
    sim.inject("drop", method="POST", path=CANCEL_LEGS[venue.name])
    r = cli("cancel", f"{cid}sl", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    assert {leg.status for leg in sim.book.exits()} == {"canceled"}
    assert sorted(c for e, c in events(workdir) if e == "cancel") == [f"{cid}sl", f"{cid}tp"]
    run(cli, env, "0.8")
    assert sorted(c for e, c in events(workdir) if e == "cancel") == [f"{cid}sl", f"{cid}tp"]


def test_an_interrupted_replace_keeps_the_new_stop_and_never_sells_twice(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    env = sim_env(venue, sim)
    cid = place(cli, venue, env)["entry"]["client_id"]
    sim.inject(status=503, body="Unavailable", method="POST", path=CANCEL_LEGS[venue.name],
               times=5)  # fmt: skip
    r = cli("exits", cid, "--tp", "101000", "--sl", "94000", "--yes", env=env)
    assert r.code == 1 and "watchdog covers the position with the new prices" in r.err, r.err
    assert "old exits are still armed" in r.err  # the truth, not only the plan
    sim.set_price(venue.market_id, Decimal(93500))  # under the new stop, over the old one
    run(cli, env)
    assert len(sells(sim)) == 1, "the stop the trader set at 94 000 was not honoured"
    sim.set_price(venue.market_id, Decimal(89000))  # and on, through the old stop
    run(cli, env, "0.8")
    assert len(sells(sim)) == 1, "the old stop sold the position a second time"
    assert len(trades(workdir)) == 1


# ---------------------------------------------------------------------------------------------
# Odd values from the exchange


@pytest.mark.parametrize("trigger", ["abc", "-1", "1e400"])
def test_a_malformed_trigger_price_costs_an_alert_never_the_engine(
    cli: CliRunner, fast: None, workdir: Path, trigger: str
) -> None:
    bybit = VENUES["bybit"]
    with bybit.make() as server:
        env = sim_env(bybit, server)
        cid = place(cli, bybit, env)["entry"]["client_id"]
        plain = server._order_json

        def odd(o: Any) -> dict[str, Any]:
            row: dict[str, Any] = plain(o)
            if o.role:
                row["triggerPrice"] = trigger
            return row

        server._order_json = odd
        r = cli("run", "--headless", "--duration", "1.2", "--tick", "0.4", env=env)
        assert r.code == 0, r.err
        assert server.orders_created == 1  # nothing sent on a value it could not read
        legs = {c: e for e, c in events(workdir, cid) if c != cid}
        assert set(legs) == {f"{cid}tp", f"{cid}sl"}  # still tracked, never dropped


@pytest.mark.parametrize(
    "field,value",
    [("parentOrderLinkId", ""), ("stopOrderType", "PartialTakeProfit"), ("stopOrderType", "")],
)
def test_legs_the_exchange_no_longer_links_are_not_claimed_as_filled(
    cli: CliRunner, fast: None, workdir: Path, field: str, value: str
) -> None:
    """The exchange stops naming the entry (or the leg's kind): Kobe neither books a fire it
    cannot link nor marks the legs gone; it keeps them open and sends nothing."""
    bybit = VENUES["bybit"]
    with bybit.make() as server:
        env = sim_env(bybit, server)
        cid = place(cli, bybit, env)["entry"]["client_id"]
        plain = server._order_json

        def odd(o: Any) -> dict[str, Any]:
            row: dict[str, Any] = plain(o)
            if o.role:
                row[field] = value
            return row

        server._order_json = odd
        run(cli, env)
        assert server.orders_created == 1
        assert [e for e, _ in events(workdir, cid)] == ["intent", "ack", "fill", "ack", "ack"]
        assert trades(workdir) == []


# ---------------------------------------------------------------------------------------------
# Requests per tick as positions pile up


@pytest.fixture
def engine(venue: Venue, sim: Any, workdir: Path) -> Iterator[Runtime]:
    (workdir / "kobe.toml").write_text(FINANCE)
    runtime = Runtime(resolve_settings(sim_env(venue, sim), workdir), agent_factory=build_agent)
    runtime.build()
    try:
        yield runtime
    finally:
        runtime.close()


def _legs_reads_per_tick(venue: Venue, sim: Any, runtime: Runtime) -> int:
    path, query = LEGS_READ[venue.name]
    mark = len(sim.requests)
    runtime.tick()
    seen = zip(sim.requests[mark:], sim.queries[mark:], strict=True)
    return sum(1 for (m, p), q in seen if m == "GET" and p == path and (query or "") in q)


def test_the_legs_read_per_tick_does_not_grow_with_positions(
    venue: Venue, sim: Any, engine: Runtime
) -> None:
    engine.tick()

    def buy() -> None:
        entry = OrderType.LIMIT if venue.name == "bybit" else OrderType.MARKET
        engine.submit(
            Proposal(
                symbol="BTC/USDT", side=Side.BUY, entry_type=entry, sizing=Sizing.QUOTE,
                amount=Decimal(8), wallet=f"cex_{venue.name}", source=Source.COCKPIT,
                price=Decimal(95000) if entry is OrderType.LIMIT else None,
                take_profit=TP, stop_loss=SL,
            )
        )  # fmt: skip

    buy()
    engine.tick()
    one = _legs_reads_per_tick(venue, sim, engine)
    for _ in range(5):
        buy()
    engine.tick()
    six = _legs_reads_per_tick(venue, sim, engine)
    assert one >= 1
    assert six == one, f"{one} legs read(s) a tick for 1 position, {six} for 6"


def test_a_resting_entry_that_fills_later_gets_its_legs_confirmed_by_the_engine(
    cli: CliRunner, venue: Venue, sim: Any, fast: None, workdir: Path
) -> None:
    """A limit entry below the market rests; it fills while no engine runs; the next run reads
    the pair the exchange armed at the fill and journals it: protected by the exchange, no
    watchdog sell and nothing sent by Kobe."""
    env = sim_env(venue, sim)
    args = [
        "trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "limit", "--price", "94000",
        "--quote", "8", "--sl", "90000", "--tp", "100000", "--yes", "--json",
    ]  # fmt: skip
    r = cli(*args, env=env)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    cid = out["entry"]["client_id"]
    assert out["entry"]["status"] == "open" and sim.book.exits() == []
    sim.set_price(venue.market_id, Decimal(94000))  # the market comes down to the entry
    assert len(sim.book.exits()) == 2
    run(cli, env)
    assert sorted(events(workdir, cid)[-2:]) == [("ack", f"{cid}sl"), ("ack", f"{cid}tp")]
    [position] = json.loads(cli("positions", "--json", env=env).out)
    assert position["protection"] == "exchange"
    assert sim.orders_created == 1 and sells(sim) == []


def test_the_oldest_of_many_positions_can_still_cancel_its_legs(
    cli: CliRunner, fast: None, workdir: Path
) -> None:
    bybit = VENUES["bybit"]
    (workdir / "kobe.toml").write_text(FINANCE + "[exchange]\ntimeout_ms = 400\n")
    with bybit.make() as server:
        env = sim_env(bybit, server)
        first = place(cli, bybit, env)["entry"]["client_id"]
        for _ in range(10):
            place(cli, bybit, env)
        r = cli("cancel", f"{first}tp", "--yes", env=env)
        assert r.code == 0, r.err + r.out
        parent = server.book.find(client_id=first).order_id
        assert {leg.status for leg in server.book.exits(parent)} == {"canceled"}


# ---------------------------------------------------------------------------------------------
# A lone take-profit whose cancel fails

CANCEL_FAILS = {"retCode": 170001, "retMsg": "Internal error."}  # no cancel, no retry hint


def _lone_take_profit(
    cli: CliRunner, workdir: Path, server: Any, failures: int
) -> tuple[dict[str, str], str]:
    """Bybit arms the take-profit and refuses the stop; Kobe's cancel of the lone take-profit
    fails ``failures`` times (the exchange answers an error and cancels nothing): (env, entry)."""
    bybit = VENUES["bybit"]
    env = sim_env(bybit, server)
    server.book.exits_refused = 1
    server.book.refused_roles = ("sl",)
    server.inject(status=200, body=CANCEL_FAILS, method="POST", path=CANCEL_LEGS["bybit"],
                  times=failures)  # fmt: skip
    out = place(cli, bybit, env)
    cid = str(out["entry"]["client_id"])
    assert [leg.status for leg in server.book.exits()] == ["untriggered", "rejected"]
    assert any("could not be cancelled" in note for note in out["notes"]), out["notes"]
    return env, cid


def test_a_lone_take_profit_whose_cancel_failed_is_never_taken_for_cover(
    cli: CliRunner, fast: None, workdir: Path
) -> None:
    """The cancel of the lone take-profit failed: the next engine took it for the exchange's
    cover (its ack is open), dropped the watchdog item, and the stop was never sold. Now the
    cancel is retried, journaled when the exchange confirms it, and the stop sells once."""
    with VENUES["bybit"].make() as server:
        env, cid = _lone_take_profit(cli, workdir, server, failures=2)
        [position] = json.loads(cli("positions", "--json", env=env).out)
        assert position["protection"] == "watchdog (needs a running engine)"
        run(cli, env)  # the first try fails again, a later poll cancels it
        assert [leg.status for leg in server.book.exits()] == ["canceled", "rejected"]
        [why] = [e["reason"] for e in journal(workdir)
                 if (e["event"], e["client_id"]) == ("cancel", f"{cid}tp")]  # fmt: skip
        assert why.startswith("cancelled by Kobe: no cover without its sibling"), why
        [position] = json.loads(cli("positions", "--json", env=env).out)
        assert position["protection"] == "watchdog (needs a running engine)"
        server.set_price(VENUES["bybit"].market_id, Decimal(89000))  # through the stop
        run(cli, env)
        assert [(o.client_id, o.status) for o in sells(server)] == [(f"{cid}sl", "filled")]
        assert len(trades(workdir)) == 1


def test_a_lone_take_profit_that_fires_while_the_stop_is_touched_sells_once(
    cli: CliRunner, fast: None, workdir: Path
) -> None:
    """Its cancel keeps failing and the price goes through the stop: a watchdog sale now, with
    the take-profit still armed, could sell the position twice (the account holds more BTC
    than the position). Nothing is sold, one alert says why; the take-profit then fires on a
    spike: its fill is booked once, and the watchdog sells nothing after it."""
    bybit = VENUES["bybit"]
    with bybit.make() as server:
        env, cid = _lone_take_profit(cli, workdir, server, failures=1000)
        server.set_price(bybit.market_id, Decimal(89000))  # through the stop
        r = cli("run", "--headless", "--duration", "1.2", "--tick", "0.4", env=env)
        assert r.code == 0, r.err
        assert sells(server) == []
        said = [line for line in r.out.splitlines() if "could not be cancelled" in line]
        assert said == [], r.out  # kobe trade said it: not again, once a tick nor once a start
        server.set_price(bybit.market_id, Decimal(100500))  # the take-profit fires
        server.set_price(bybit.market_id, Decimal(89000))
        run(cli, env)
        assert [(o.role, o.client_id) for o in sells(server)] == [("tp", "")]  # the exchange's leg
        assert ("fill", f"{cid}tp") in events(workdir)
        [trade] = trades(workdir)
        assert Decimal(trade["exit_price"]) >= TP
        assert held(json.loads(cli("positions", "--json", env=env).out)) == []


def test_the_lone_take_profit_alert_is_raised_once_per_episode_across_restarts(
    cli: CliRunner, fast: None, workdir: Path
) -> None:
    """kobe trade raised the critical alert (and printed it); each later engine finds the
    cancels already tried in audit.jsonl and says nothing more, whatever its restarts. With
    audit.jsonl lost it cannot know: the alert is raised again, once (fail closed)."""
    with VENUES["bybit"].make() as server:
        env, cid = _lone_take_profit(cli, workdir, server, failures=1000)

        def alerts() -> list[str]:
            r = cli("run", "--headless", "--duration", "0.8", "--tick", "0.4", env=env)
            assert r.code == 0, r.err
            return [line for line in r.out.splitlines() if "could not be cancelled" in line]

        assert alerts() == [] and alerts() == []  # two restarts, the same episode
        (workdir / "data" / "audit.jsonl").unlink()
        said = alerts()
        assert len(said) == 1 and "CRITICAL" in said[0] and cid in said[0], said
        assert alerts() == []  # and remembered again from there
        assert sells(server) == []  # meanwhile nothing sold: the take-profit still armed


def test_a_lone_take_profit_that_fires_as_kobe_cancels_it_is_booked_never_sold_again(
    cli: CliRunner, fast: None, workdir: Path
) -> None:
    """The take-profit fires just before the retried cancel reaches the exchange (which
    answers "order does not exist"): it is booked as the position's exit; the watchdog,
    which sees the price past the take-profit, sends nothing."""
    bybit = VENUES["bybit"]
    with bybit.make() as server:
        env, cid = _lone_take_profit(cli, workdir, server, failures=1)
        server.inject("before", method="POST", path=CANCEL_LEGS["bybit"],
                      action=lambda: server.book.set_price(bybit.market_id, Decimal(100500)))  # fmt: skip
        run(cli, env)
        assert [(o.role, o.client_id) for o in sells(server)] == [("tp", "")]  # the exchange's leg
        assert ("fill", f"{cid}tp") in events(workdir)
        assert len(trades(workdir)) == 1
        assert held(json.loads(cli("positions", "--json", env=env).out)) == []
        run(cli, env, "0.8")
        assert len(sells(server)) == 1 and server.orders_created == 1


# ---------------------------------------------------------------------------------------------
# Review: the operator closes a position whose legs the exchange holds


def test_a_close_cancels_the_legs_the_exchange_holds_and_sells_once(
    venue: Venue, sim: Any, engine: Runtime
) -> None:
    placed = engine.submit(
        Proposal(
            symbol="BTC/USDT", side=Side.BUY, entry_type=OrderType.MARKET, sizing=Sizing.QUOTE,
            amount=Decimal(8), wallet=f"cex_{venue.name}", source=Source.COCKPIT,
            take_profit=TP, stop_loss=SL,
        )
    )  # fmt: skip
    cid = placed.entry.client_id
    engine.tick()
    assert engine.close_position(cid, "closed by operator (test)") is not None
    engine.tick()
    sim.set_price(venue.market_id, Decimal(100500))  # a leg left armed would sell again
    engine.tick()
    assert [leg.status for leg in sim.book.exits()] != ["untriggered", "untriggered"]
    assert len(sells(sim)) == 1, [(o.role, o.client_id) for o in sells(sim)]


def test_a_lone_take_profit_that_sold_a_part_is_no_cover_for_the_rest(
    cli: CliRunner, fast: None, workdir: Path
) -> None:
    """The lone take-profit (its stop refused, its cancel failing) sells a part of the
    position (a thin book) and keeps working for the rest: the watchdog
    took the part sold for cover, dropped its item and stopped retrying the cancel, and when
    the price then fell through the stop nothing sold the rest."""
    bybit = VENUES["bybit"]
    with bybit.make() as server:
        env, cid = _lone_take_profit(cli, workdir, server, failures=1)
        [tp] = [leg for leg in server.book.exits() if leg.role == "tp"]
        part = Decimal("0.00001")  # what is left is still worth more than the minimum notional
        tp.executed, tp.value, tp.fee, tp.fee_asset = part, part * TP, Decimal(0), "USDT"
        run(cli, env)  # the part is booked; the cancel is tried again and goes through
        assert ("partial_fill", f"{cid}tp") in events(workdir)
        [position] = json.loads(cli("positions", "--json", env=env).out)
        assert position["protection"] == "watchdog (needs a running engine)", position
        server.set_price(bybit.market_id, Decimal(89000))  # through the stop
        run(cli, env)
        rest = [o for o in sells(server) if o.client_id.startswith(cid)]
        assert [o.executed for o in rest] == [tp.qty - part], [(o.role, o.client_id) for o in rest]


def test_a_close_while_the_lone_take_profits_cancel_fails_sells_nothing(
    cli: CliRunner, fast: None, workdir: Path
) -> None:
    bybit = VENUES["bybit"]
    with bybit.make() as server:
        env, cid = _lone_take_profit(cli, workdir, server, failures=1000)
        runtime = Runtime(resolve_settings(env, workdir), agent_factory=build_agent)
        runtime.build()
        try:
            with pytest.raises(ExchangeError):
                runtime.close_position(cid, "closed by operator (test)")
            assert runtime.execution.routers["bybit"].watchdog.get(cid) is not None
        finally:
            runtime.close()
        assert sells(server) == []
