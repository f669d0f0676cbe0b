"""Binance's MAX_NUM_ALGO_ORDERS (5 open stop orders per symbol; the paper venue copies it): an
entry whose OCO the exchange would refuse is refused by the router before it is sent, naming the
limit. Without this check a sixth entry with TP/SL on a symbol filled, its OCO was refused, and
only the local watchdog (while an engine runs) guarded it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from engine.exchange.base import BadAnswer, Exchange, OrderType, Side
from engine.exchange.ccxt_parse import market_rules
from engine.journal import OrderJournal
from engine.proposal import Proposal, Refused, Sizing, Source
from engine.router import Router
from tests.conftest import ROOT, CliRunner
from tests.test_paper_fidelity import binance_venue, fidelity_sim, paper_exchange, router_for
from tests.test_request_budget import FINANCE

D = Decimal
SYMBOL = "SOL/USDT"
README = (ROOT / "README.md").read_text()


def buy(tp: str | None = "200", sl: str | None = "170") -> Proposal:
    return Proposal(
        symbol=SYMBOL, side=Side.BUY, entry_type=OrderType.MARKET, sizing=Sizing.QUOTE,
        amount=D(20), wallet="cex_binance", source=Source.CLI,
        take_profit=None if tp is None else D(tp), stop_loss=None if sl is None else D(sl),
    )  # fmt: skip


@pytest.fixture(params=["paper", "binance"])
def venue(request: pytest.FixtureRequest) -> Iterator[Exchange]:
    """The paper venue, or the Binance simulator through the real ccxt (its MAX_NUM_ALGO_ORDERS
    is the paper market file's: 5 on SOL/USDT)."""
    if request.param == "paper":
        yield paper_exchange(D(0))
        return
    with fidelity_sim() as sim:
        binance = binance_venue(sim)
        try:
            yield binance
        finally:
            binance.close()


def _intents(data_dir: Path) -> int:
    lines = (data_dir / "logs" / "orders.jsonl").read_text().splitlines()
    return sum(json.loads(line)["event"] == "intent" for line in lines)


def _stops(venue: Exchange) -> list[str]:
    return [o.id for o in venue.fetch_open_orders(SYMBOL) if o.stop_price is not None]


def test_a_sixth_entry_with_exits_is_refused_before_it_is_sent(
    venue: Exchange, tmp_path: Path
) -> None:
    assert venue.market(SYMBOL).max_stop_orders == 5
    router: Router = router_for(venue, tmp_path / "data", "testnet")
    for _ in range(5):
        placed = router.submit(buy())
        assert len(placed.exits) == 2 and not placed.notes  # five OCOs: five stop orders
    assert len(_stops(venue)) == 5
    intents, held = _intents(tmp_path / "data"), venue.get_balance("USDT")
    with pytest.raises(Refused) as info:
        router.plan(buy())  # refused at planning: kobe trade says it before asking
    [reason] = info.value.reasons
    assert "MAX_NUM_ALGO_ORDERS" in reason and "5 open stop orders" in reason and SYMBOL in reason
    assert f"`{reason}`" in " ".join(README.split())  # as the README quotes it
    with pytest.raises(Refused):
        router.submit(buy())
    assert _intents(tmp_path / "data") == intents  # nothing journaled, nothing sent
    assert venue.get_balance("USDT") == held and len(_stops(venue)) == 5
    # an entry without TP/SL needs no stop order: it goes
    assert router.submit(buy(tp=None, sl=None)).entry.filled > 0
    # one OCO cancelled: room for one more
    router.cancel(_stops(venue)[0], Source.CLI)
    assert len(router.submit(buy()).exits) == 2


def test_stop_orders_that_are_not_kobes_count_once_the_open_orders_showed_them(
    venue: Exchange, tmp_path: Path
) -> None:
    """A stop the operator placed by hand takes a slot too: counted from the open orders the
    router last read (its sync), never by an extra request per proposal."""
    router = router_for(venue, tmp_path / "data", "testnet")
    for _ in range(4):
        router.submit(buy())
    venue.create_oco(SYMBOL, Side.SELL, D("0.05"), D(200), D(170))  # not Kobe's
    router.sync()
    with pytest.raises(Refused) as info:
        router.plan(buy())
    assert "MAX_NUM_ALGO_ORDERS" in info.value.reasons[0]


def test_stop_orders_journaled_in_another_mode_take_no_slot(tmp_path: Path) -> None:
    """A data dir used in paper, then in testnet (README: one data dir may serve both; the
    book counts only its mode's events): the five OCOs paper holds on the symbol are not on
    the testnet exchange. Counted, every entry with TP/SL on it was refused in testnet, for
    as long as the paper positions stayed open."""
    data = tmp_path / "data"
    paper = router_for(paper_exchange(D(0)), data, "paper")
    for _ in range(5):
        assert len(paper.submit(buy()).exits) == 2
    testnet = router_for(paper_exchange(D(0)), data, "testnet")  # an exchange with no stop
    assert len(testnet.submit(buy()).exits) == 2
    for _ in range(4):
        testnet.submit(buy())
    with pytest.raises(Refused, match="5 open stop orders"):  # its own five count
        testnet.plan(buy())


@pytest.mark.parametrize("value", ["-1", "0", "2.5", "1e9", "five", None])
def test_a_stop_limit_the_exchange_states_oddly_leaves_its_market_out(value: object) -> None:
    """The filter is outside data: a whole number from 1 up, bounded, or the market is refused
    (BadAnswer: the adapter leaves it out, naming it), never a limit of 0 or 10^9."""
    market = {
        "symbol": "SOL/USDT", "base": "SOL", "quote": "USDT", "spot": True,
        "precision": {"amount": "0.001", "price": "0.01"},
        "limits": {"amount": {"min": "0.001"}, "cost": {"min": "5"}},
        "info": {"filters": [{"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": value}]},
    }  # fmt: skip
    with pytest.raises(BadAnswer, match="SOL/USDT: MAX_NUM_ALGO_ORDERS"):
        market_rules(market, tick_size=True)
    market["info"] = {"filters": [{"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5}]}
    assert market_rules(market, tick_size=True).max_stop_orders == 5
    market["info"] = {"filters": "odd"}  # no such filter stated: no limit known
    assert market_rules(market, tick_size=True).max_stop_orders is None


def test_kobe_trade_says_it_and_sends_nothing(cli: CliRunner, workdir: Path) -> None:
    """On paper, the CLI: five trades with TP/SL on BTC/USDT, the sixth refused (exit 1) with
    the limit named, and nothing journaled for it."""
    (workdir / "kobe.toml").write_text(FINANCE)  # cex_binance: 200 USDT
    buy = ["trade", "--symbol", "BTC/USDT", "--side", "buy", "--type", "market", "--quote", "15"]
    exits = ["--sl", "80000", "--tp", "110000", "--yes"]
    for _ in range(5):
        r = cli(*buy, *exits)
        assert r.code == 0, r.err + r.out
    before = _intents(workdir / "data")
    r = cli(*buy, *exits)
    assert r.code == 1 and "MAX_NUM_ALGO_ORDERS 5" in r.out + r.err, r.out + r.err
    assert _intents(workdir / "data") == before
    assert cli(*buy, "--yes").code == 0  # without TP/SL it goes


@pytest.mark.parametrize("status", ["canceled", "expired", "rejected", "filled"])
def test_a_stop_leg_whose_last_word_is_an_ended_ack_takes_no_slot(
    tmp_path: Path, status: str
) -> None:
    """A leg's last journal line can be an ``ack`` that says it ended (a look-up at start, an
    OCO's sibling expired): counted by its event alone ("not a fill, cancel or reject"), such
    a leg took a slot for good, and after five the symbol refused every entry with TP/SL."""
    import dataclasses

    data = tmp_path / "data"
    router = router_for(paper_exchange(D(0)), data, "paper")
    for _ in range(5):
        assert len(router.submit(buy()).exits) == 2
    with pytest.raises(Refused, match="5 open stop orders"):
        router.plan(buy())
    state = router.journal_state()
    legs = [e for cid, e in state.items() if cid.endswith("sl")]
    assert len(legs) == 5
    journal = OrderJournal(data)
    for leg in legs:
        journal.append(dataclasses.replace(leg, event="ack", status=status))
    journal.close()
    again = router_for(paper_exchange(D(0)), data, "paper")
    assert again.plan(buy()).exits is not None  # no slot held: planned, not refused
