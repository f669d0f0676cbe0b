"""What an exchange's error codes mean for an order, attacked as an exchange would answer them.

The real ccxt drives ``CcxtExchange`` (and ``kobe``, testnet mode, ``KOBE_EXCHANGE_URL``) against
each exchange's simulator on 127.0.0.1 (the test ids carry the exchange's name:
``pytest -k "bybit or okx"``):

- "duplicate client order id" (Bybit 170141 / 110072 / 10014 / 12141, OKX 51016, Binance's
  "Duplicate order sent."): an earlier request of the same order landed. Told by the code, not
  the words; looked up by the client id, never a refusal, never a second order; not found yet:
  the outcome is unknown (journaled so), and the next start finds the order.
- "too many requests / orders" (Bybit 10006 / 170005, OKX 50011 / 50061, Binance -1015): nothing
  was done; waited for and sent again within the retry budget, never a refusal, never an unknown
  outcome; a retry hint of nothing (0, a reset time already past) never makes the retries a burst.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.exchange.base import (
    OrderNotFound,
    OrderOutcomeUnknown,
    OrderStatus,
    OrderType,
    RateLimited,
    Side,
)
from engine.exchange.ccxt_exchange import CcxtExchange
from tests import bybit_sim, okx_sim
from tests import test_ccxt_contract_v5 as v5
from tests import test_venue_faults as faults
from tests.conftest import CliRunner
from tests.test_ccxt_contract import Sleeps
from tests.test_trade_testnet_v5 import trade_args as v5_trade_args

name = faults.name  # the fixtures: each test runs against Binance's, Bybit's and OKX's simulators
sim = faults.sim
default_env = faults.default_env
make_exchange = faults.make_exchange
ex = faults.ex
sleeps = faults.sleeps
unknown = faults.unknown

BTC = "BTC/USDT"
QTY = Decimal("0.001")
CREATE = faults.CREATE


def refusal(name: str, code: int, words: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of an order refusal the way each exchange words one."""
    if name == "binance":
        return 400, {"code": code, "msg": words}
    if name == "bybit":
        return 200, {"retCode": code, "retMsg": words, "result": {}, "retExtInfo": {}, "time": 0}
    data = [{"ordId": "", "clOrdId": "", "tag": "", "sCode": str(code), "sMsg": words}]
    return 200, {"code": "1", "msg": "All operations failed", "data": data}


# (exchange, code, words): the exchanges' own words, and none at all (the code decides)
DUPLICATES = [
    ("binance", -2010, "Duplicate order sent."),
    ("bybit", 170141, "Duplicate clientOrderId."),
    ("bybit", 170141, ""),
    ("bybit", 110072, "OrderLinkedID is duplicate"),
    ("bybit", 110072, ""),
    ("bybit", 10014, ""),
    ("bybit", 12141, ""),
    ("okx", 51016, "Duplicated clOrdId"),
    ("okx", 51016, ""),
]


def _with(name: str, cases: list[tuple[str, int, str]]) -> list[tuple[int, str]]:
    return [(code, words) for exchange, code, words in cases if exchange == name]


def _ids(cases: list[tuple[str, int, str]]) -> list[str]:
    """Each case's id: its exchange, its code, and whether it came with words."""
    return [f"{name}-{code}-{'words' if words else 'no-words'}" for name, code, words in cases]


@pytest.mark.parametrize(("name", "code", "words"), DUPLICATES, ids=_ids(DUPLICATES))
def test_a_duplicate_refusal_of_a_placed_order_is_that_order_whatever_its_words(
    ex: CcxtExchange, name: str, sim: Any, code: int, words: str
) -> None:
    """The exchange places the order and answers "duplicate client id" (its answer to an earlier
    request that landed, or a re-send's): Kobe looks it up by that id and has the one order.
    Before: the code alone (words empty or unlike "duplicate") was taken for a plain refusal."""
    body = json.dumps(refusal(name, code, words)[1])
    sim.inject("rewrite", method="POST", path=CREATE[name], rewrite=lambda _: body)
    order = ex.create_order(BTC, Side.BUY, OrderType.LIMIT, QTY, Decimal(90000))
    assert order.status is OrderStatus.OPEN and order.qty == QTY
    assert sim.orders_created == 1 and sim.count("POST", CREATE[name]) == 1


def test_a_duplicate_refusal_whose_order_no_look_up_finds_yet_is_unknown_not_refused(
    ex: CcxtExchange, name: str, sim: Any
) -> None:
    """A "duplicate" refusal says the exchange holds the id; a look-up that does not list it yet (a lagging
    read) does not make that a refusal: the outcome is unknown, and nothing is sent again."""
    code, words = _with(name, DUPLICATES)[0]
    status, body = refusal(name, code, words)
    sim.inject(status=status, body=body, method="POST", path=CREATE[name])
    with pytest.raises(OrderOutcomeUnknown, match="no look-up by that id finds the order"):
        ex.create_order(BTC, Side.BUY, OrderType.LIMIT, QTY, Decimal(90000))
    assert sim.count("POST", CREATE[name]) == 1


def _lagging_lookups(name: str, sim: Any) -> None:
    """Every look-up by client id answers "no such order" (the exchange's read lags its book)."""
    if name == "binance":
        sim.inject(
            status=400, body={"code": -2013, "msg": "Order does not exist."}, method="GET",
            path=faults.LOOKUP[name], query="origClientOrderId", times=100,
        )  # fmt: skip
    elif name == "bybit":
        empty = {"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": []}}
        for path in (bybit_sim.ORDER_REALTIME, bybit_sim.ORDER_HISTORY):
            sim.inject(
                status=200, body=empty, method="GET", path=path, query="orderLinkId", times=100
            )
    else:
        sim.inject(
            status=200, body={"code": "51603", "msg": "Order does not exist", "data": []},
            method="GET", path=faults.LOOKUP[name], query="clOrdId", times=100,
        )  # fmt: skip


def test_a_placed_entry_refused_as_a_duplicate_is_found_by_the_next_run_never_sent_twice(
    cli: CliRunner, workdir: Path, name: str, sim: Any, default_env: dict[str, str]
) -> None:
    """`kobe trade`: the exchange places the entry, answers "duplicate client id", and its reads
    do not list the order yet. Before: journaled as refused (its exits dropped) while the
    exchange held it: a position nobody guarded. Now: journaled unknown; the next `kobe run`
    finds it by its client id, books its fill and puts its exits in place; one entry, ever."""
    (workdir / "kobe.toml").write_text("[exchange]\ntimeout_ms = 400\n")
    args = faults.TRADE if name == "binance" else v5_trade_args(v5.VENUES[name])
    code, words = _with(name, DUPLICATES)[0]
    body = json.dumps(refusal(name, code, words)[1])
    sim.inject("rewrite", method="POST", path=CREATE[name], rewrite=lambda _: body)
    _lagging_lookups(name, sim)
    r = cli(*args, env=default_env)
    assert r.code != 0 and "outcome unknown" in r.err, (r.code, r.err)
    events = [(e["event"], e["status"]) for e in faults._journal(workdir)]
    assert events == [("intent", "new"), ("unknown", "unknown")], events
    assert sim.orders_created == 1
    sim.faults.clear()  # the exchange's reads catch up
    r = cli("run", "--headless", "--duration", "0.8", "--tick", "0.4", env=default_env)
    assert r.code == 0, r.err
    cid = faults._journal(workdir)[0]["client_id"]
    entry = [e["event"] for e in faults._journal(workdir) if e["client_id"] == cid]
    assert entry[:4] == ["intent", "unknown", "ack", "fill"], entry
    [position] = json.loads(cli("positions", "--json", env=default_env).out)
    assert position["protection"] == "exchange", position
    assert sim.orders_created == (3 if name == "binance" else 1)  # (+ Binance's OCO legs)
    assert sim.count("POST", CREATE[name]) == 1


# (exchange, code, words): "too many requests / new orders", whatever class ccxt gives them
RATE_LIMITS = [
    ("binance", -1015, "Too many new orders; current limit is 50 orders per 10 SECOND."),
    ("bybit", 10006, "Too many visits!"),
    ("bybit", 170005, "Too many new orders; current limit is 20 orders per 1 second."),
    ("okx", 50011, "Rate limit reached. Please refer to API documentation and throttle."),
    ("okx", 50061, "You've reached the maximum order rate limit for this account."),
]


@pytest.mark.parametrize(("name", "code", "words"), RATE_LIMITS, ids=_ids(RATE_LIMITS))
def test_an_order_rate_limit_is_waited_for_and_the_order_sent_once(
    ex: CcxtExchange,
    name: str,
    sim: Any,
    sleeps: Sleeps,
    unknown: list[tuple[str, str]],
    code: int,
    words: str,
) -> None:
    """Before: OKX's 50061 was an unknown outcome (no retry, journaled unknown), Bybit's 170005
    and Binance's -1015 a refusal of the order."""
    status, body = refusal(name, code, words)
    sim.inject(status=status, body=body, method="POST", path=CREATE[name])
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, QTY)
    assert order.status is OrderStatus.FILLED
    assert sim.count("POST", CREATE[name]) == 2 and sim.orders_created == 1
    assert unknown == [] and len(sleeps) == 1 and sleeps[0] >= 0.01  # the backoff at least


@pytest.mark.parametrize("hint", ["0", "past", "-5"])
def test_a_rate_limit_hint_of_no_wait_never_makes_the_retries_a_burst(
    make_exchange: Any, name: str, sim: Any, sleeps: Sleeps, hint: str
) -> None:
    """Each retry of a rate-limited read waits at least its backoff, doubling, whatever the
    exchange's hint says (Binance's ``Retry-After: 0``, Bybit's reset time already past). Before:
    four retries at once, straight back into the limit."""
    exchange = make_exchange(max_attempts=4, base_delay_s=0.5, jitter_s=0.0)
    exchange.load_markets()
    if name == "bybit":
        reset = str(sim.now_ms() - 5000) if hint == "past" else hint
        headers = {"X-Bapi-Limit-Reset-Timestamp": reset}
    else:
        headers = {"Retry-After": "0" if hint == "past" else hint}
    status, body = refusal(name, *next((c, w) for n, c, w in RATE_LIMITS if n == name))
    status = 429 if name != "bybit" else status
    sim.inject(status=status, body=body, headers=headers, path=faults.BALANCE[name], times=10)
    with pytest.raises(RateLimited):
        exchange.get_balance("USDT")
    assert sim.count("GET", faults.BALANCE[name]) == 4
    assert sleeps == [0.5, 1.0, 2.0], sleeps


# OKX answers a write with a top-level code and one item per order, each with its own sCode: a
# code 0 (or 2, "partly done") whose item failed is that item's failure (ccxt reads the items of
# a code 1 only)


def _failed_item(code: str, words: str, top: str) -> dict[str, Any]:
    item = {"ordId": "", "clOrdId": "", "tag": "", "sCode": code, "sMsg": words}
    return {"code": top, "msg": "", "data": [item]}


@pytest.mark.parametrize("name", ["okx"])
@pytest.mark.parametrize("top", ["0", "2"])
def test_an_okx_order_whose_item_failed_under_code_0_is_that_refusal(
    cli: CliRunner, workdir: Path, name: str, sim: Any, default_env: dict[str, str], top: str
) -> None:
    """Before: taken for an order (no id, ``rejected``): `kobe trade` ended 0, as if placed."""
    body = _failed_item("51008", "Order failed. Insufficient USDT balance in account.", top)
    sim.inject(status=200, body=body, method="POST", path=CREATE[name])
    r = cli(*v5_trade_args(v5.VENUES[name]), env=default_env)
    assert r.code == 1 and "insufficient funds" in r.err.lower(), (r.code, r.err)
    events = [(e["event"], e["status"]) for e in faults._journal(workdir)]
    assert events == [("intent", "new"), ("reject", "rejected")], events
    assert sim.orders_created == 0


@pytest.mark.parametrize("name", ["okx"])
def test_an_okx_cancel_whose_item_failed_under_code_0_is_no_cancel(
    ex: CcxtExchange, name: str, sim: Any
) -> None:
    """The order is still open: the cancel says so, never returns it as cancelled."""
    order = ex.create_order(BTC, Side.BUY, OrderType.LIMIT, QTY, Decimal(90000))
    body = _failed_item("51402", "Cancellation failed as the order is already completed.", "0")
    sim.inject(status=200, body=body, method="POST", path=okx_sim.CANCEL)
    with pytest.raises(OrderNotFound, match="nothing to cancel"):
        ex.cancel_order(order.id, BTC)
    assert sim.book.orders[order.id].status == "open"


@pytest.mark.parametrize("venue", ["bybit", "okx"])
def test_a_watched_stop_whose_sale_found_no_bid_is_sold_under_a_fresh_id(
    cli: CliRunner, workdir: Path, venue: str
) -> None:
    """The watched stop is touched; its market sell finds no bid and ends cancelled, nothing
    sold. Bybit and OKX refuse a client id any order ever had: the next sale was sent under
    the same ``<entry>sl``, refused as a duplicate, and the look-up by that id found the old
    cancelled sale, taken for the new one: each touch 'sold 0', nothing sent, never sold.
    Now the old order is never taken for the sale: a refusal (critical, backoff), and the next
    try goes under ``cx``."""
    config = '[exchange]\ntimeout_ms = 400\n[router]\nexits = "watchdog"\n'
    (workdir / "kobe.toml").write_text(config)
    v = v5.VENUES[venue]
    with v.make() as server:
        env = v5.sim_env(v, server)
        r = cli(*v5_trade_args(v), env=env)
        assert r.code == 0, r.err
        cid = json.loads(r.out)["entry"]["client_id"]
        server.book.no_bids = 1  # the first sale finds no bid; the market is back at the next
        server.set_price(v.market_id, Decimal(89000))  # through the stop at 90 000
        r = cli("run", "--headless", "--ticks", "3", env=env)
        assert r.code == 0, r.err
        sold = [(o.client_id, o.status) for o in server.book.orders.values() if o.side == "sell"]
        assert sold == [(f"{cid}sl", "canceled"), (f"{cid}cx", "filled")], r.err
        assert "earlier order" in r.out  # the re-send under sl: refused, said, never 'sold 0'
        assert r.out.count("sold only 0 of") == 1, r.out
        assert len((workdir / "data" / "trades.jsonl").read_text().splitlines()) == 1


def test_a_watched_stop_whose_ids_are_all_taken_is_refused_never_taken_for_sent(
    cli: CliRunner, workdir: Path
) -> None:
    """Both exit ids name sales that found no bid: a sale under either is refused as a
    duplicate, and the old order the look-up finds is not the sale just asked for. A refused
    exit (journaled as a refusal naming the earlier order, critical alert, backoff), never
    'sold 0' with nothing sent."""
    (workdir / "kobe.toml").write_text(
        '[exchange]\ntimeout_ms = 400\n[router]\nexits = "watchdog"\n'
    )
    v = v5.VENUES["bybit"]
    with v.make() as server:
        env = v5.sim_env(v, server)
        r = cli(*v5_trade_args(v), env=env)
        assert r.code == 0, r.err
        cid = json.loads(r.out)["entry"]["client_id"]
        server.book.no_bids = 2
        server.set_price(v.market_id, Decimal(89000))
        r = cli("run", "--headless", "--ticks", "6", env=env)
        assert r.code == 0, r.err
        sold = [(o.client_id, o.status) for o in server.book.orders.values() if o.side == "sell"]
        assert sold == [(f"{cid}sl", "canceled"), (f"{cid}cx", "canceled")]
        rows = [json.loads(line) for line in (workdir / "data/logs/orders.jsonl").open()]
        refused = {e["client_id"] for e in rows if "for an earlier order" in e["reason"]}
        assert refused == {f"{cid}sl", f"{cid}cx"}
        assert [e["event"] for e in rows if e["client_id"] == f"{cid}cx"][-1] == "reject"
        assert "the stop-loss exit was refused" in r.out
