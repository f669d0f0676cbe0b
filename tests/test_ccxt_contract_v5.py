"""Contract tests for Bybit and OKX: the real ccxt, through ``CcxtExchange``, against the v5 sims.

The same set as Binance's (tests/test_ccxt_contract.py), run once per exchange (the test ids carry
``bybit`` or ``okx``: ``pytest -k "bybit or okx"``). Nothing is mocked: ccxt signs and sends real
HTTP requests to ``tests/bybit_sim.py`` / ``tests/okx_sim.py`` on 127.0.0.1, in testnet mode with
testnet-marked keys and ``KOBE_EXCHANGE_URL``. Each fault asserts the error type, what the
simulator saw and that no order was ever doubled. Sleeps are recorded, not slept.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.exchange.base import (
    AuthenticationError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    NotSupported,
    Order,
    OrderNotFound,
    OrderOutcomeUnknown,
    OrderStatus,
    OrderType,
    RateLimited,
    Side,
)
from engine.exchange.ccxt_exchange import CcxtExchange
from engine.modes import GateClosed, resolve_settings
from tests import bybit_sim, okx_sim
from tests import test_ccxt_contract as binance_contract
from tests.conftest import CliRunner
from tests.sim_core import SimServer

BTC = "BTC/USDT"
QTY = Decimal("0.001")

Sleeps = binance_contract.Sleeps  # sleeps recorded, not slept
sleeps = binance_contract.sleeps  # the fixtures, shared with Binance's contract tests
unknown = binance_contract.unknown


@dataclass(frozen=True)
class Venue:
    """What differs between the two exchanges, for the tests."""

    name: str
    make: Callable[[], Any]
    env: dict[str, str]  # the keys' variables, without the URL
    market_id: str
    create: str  # the path an order is placed on
    lookups: tuple[str, ...]  # the paths an order is looked up on
    balance: str
    public_load: list[tuple[str, str]]  # the requests that load markets
    secret_var: str
    key_var: str
    auth_codes: tuple[str, str]  # (wrong key, wrong signature)
    insufficient: dict[str, Any]  # an injected insufficient-funds answer
    throttled: dict[str, Any]  # an injected rate-limit answer (status, body, headers)
    throttled_hint: float | None  # the wait the answer asks for


def _bybit_throttle() -> dict[str, Any]:
    return {"status": 200, "body": {"retCode": 10006, "retMsg": "Too many visits!"}}


VENUES = {
    "bybit": Venue(
        name="bybit",
        make=bybit_sim.BybitSim,
        env={
            "BYBIT_KEY": bybit_sim.API_KEY,
            "BYBIT_SECRET": bybit_sim.API_SECRET,
            "BYBIT_TESTNET": "1",
        },
        market_id="BTCUSDT",
        create=bybit_sim.ORDER_CREATE,
        lookups=(bybit_sim.ORDER_REALTIME, bybit_sim.ORDER_HISTORY),
        balance=bybit_sim.WALLET,
        public_load=[("GET", "/v5/market/instruments-info"), ("GET", "/v5/market/time")],
        secret_var="BYBIT_SECRET",
        key_var="BYBIT_KEY",
        auth_codes=("10003", "10004"),
        insufficient={"retCode": 170131, "retMsg": "Insufficient balance."},
        throttled=_bybit_throttle(),
        throttled_hint=1.0,  # X-Bapi-Limit-Reset-Timestamp, a second ahead
    ),
    "okx": Venue(
        name="okx",
        make=okx_sim.OkxSim,
        env={
            "OKX_KEY": okx_sim.API_KEY,
            "OKX_SECRET": okx_sim.API_SECRET,
            "OKX_PASSWORD": okx_sim.PASSPHRASE,
            "OKX_TESTNET": "1",
        },
        market_id="BTC-USDT",
        create=okx_sim.ORDER,
        lookups=(okx_sim.ORDER,),
        balance=okx_sim.BALANCE,
        public_load=[("GET", "/api/v5/public/instruments"), ("GET", "/api/v5/public/time")],
        secret_var="OKX_SECRET",
        key_var="OKX_KEY",
        auth_codes=("50111", "50113"),
        insufficient={
            "code": "1",
            "msg": "All operations failed",
            "data": [{"sCode": "51008", "sMsg": "Order failed. Insufficient USDT balance."}],
        },
        throttled={"status": 429, "body": {"code": "50011", "msg": "Rate limit reached."}},
        throttled_hint=None,  # OKX sends no retry hint: Kobe backs off
    ),
}


@pytest.fixture(params=sorted(VENUES))
def venue(request: pytest.FixtureRequest) -> Venue:
    return VENUES[request.param]


@pytest.fixture
def sim(venue: Venue) -> Iterator[Any]:
    with venue.make() as server:
        yield server


def sim_env(venue: Venue, sim: SimServer, **extra: str) -> dict[str, str]:
    env = {"KOBE_MODE": "testnet", "EXCHANGE": venue.name, "KOBE_EXCHANGE_URL": sim.url}
    env.update(venue.env)
    env.update(extra)
    return env


ExchangeFactory = binance_contract.ExchangeFactory


@pytest.fixture
def default_env(venue: Venue, sim: Any) -> dict[str, str]:
    return sim_env(venue, sim)


make_exchange = binance_contract.make_exchange  # built from default_env, as for Binance


@pytest.fixture
def ex(make_exchange: ExchangeFactory) -> CcxtExchange:
    exchange = make_exchange()
    exchange.load_markets()
    return exchange


def posts(venue: Venue, sim: SimServer) -> int:
    return sim.count("POST", venue.create)


def lookups(venue: Venue, sim: SimServer) -> int:
    return sum(sim.count("GET", path) for path in venue.lookups)


# ---------------------------------------------------------------------------------------------
# The simulators check signatures as the exchanges document them


def _signed_get(sim: Any, venue: Venue, *, key: str, secret: str, demo: bool = True) -> Any:
    """A hand-signed private GET of the balance, the way each exchange's docs sign it."""
    stamp_ms = sim.now_ms()
    if venue.name == "bybit":
        query = "accountType=UNIFIED"
        payload = f"{stamp_ms}{key}5000{query}"
        headers = {
            "X-BAPI-API-KEY": key,
            "X-BAPI-TIMESTAMP": str(stamp_ms),
            "X-BAPI-RECV-WINDOW": "5000",
            "X-BAPI-SIGN": bybit_sim.bybit_signature(secret, payload),
        }
        url = f"{sim.url}{venue.balance}?{query}"
    else:
        from datetime import UTC, datetime

        stamp = datetime.fromtimestamp(stamp_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        stamp = stamp[:-3] + "Z"
        headers = {
            "OK-ACCESS-KEY": key,
            "OK-ACCESS-PASSPHRASE": okx_sim.PASSPHRASE,
            "OK-ACCESS-TIMESTAMP": stamp,
            "OK-ACCESS-SIGN": okx_sim.okx_signature(secret, stamp + "GET" + venue.balance),
        }
        if demo:
            headers["x-simulated-trading"] = "1"
        url = sim.url + venue.balance
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def _code(answer: dict[str, Any]) -> str:
    return str(answer.get("retCode", answer.get("code")))


def test_simulator_checks_signatures_keys_and_demo_header(venue: Venue, sim: Any) -> None:
    key, secret = venue.env[venue.key_var], venue.env[venue.secret_var]
    assert _code(_signed_get(sim, venue, key=key, secret=secret)) == "0"
    assert _code(_signed_get(sim, venue, key="not-the-key", secret=secret)) == venue.auth_codes[0]
    assert _code(_signed_get(sim, venue, key=key, secret="tampered")) == venue.auth_codes[1]
    if venue.name == "okx":  # demo keys answer only with the demo-trading header
        assert _code(_signed_get(sim, venue, key=key, secret=secret, demo=False)) == "50101"


# ---------------------------------------------------------------------------------------------
# Construction, markets, reads


def test_markets_load_from_public_calls_only(ex: CcxtExchange, venue: Venue, sim: Any) -> None:
    # no private currencies call (ccxt asks for it unless told not to), no derivatives
    assert sorted(set(sim.requests)) == venue.public_load
    raw = ex.ccxt
    assert raw.isSandboxModeEnabled and raw.options["maxRetriesOnFailure"] == 0
    if venue.name == "okx":
        assert raw.headers["x-simulated-trading"] == "1"


def test_testnet_needs_testnet_keys(venue: Venue, sim: Any, workdir: Path) -> None:
    env = sim_env(venue, sim)
    del env[f"{venue.name.upper()}_TESTNET"]
    with pytest.raises(GateClosed) as info:
        CcxtExchange.from_settings(resolve_settings(env, workdir), confirmed=False)
    assert any(f"{venue.name.upper()}_TESTNET is not 1" in r for r in info.value.reasons)


def test_market_rules_come_from_the_exchange(ex: CcxtExchange, venue: Venue) -> None:
    rules = ex.market(BTC)
    assert (rules.base, rules.quote) == ("BTC", "USDT")
    assert rules.tick_size == Decimal("0.01")
    assert rules.step_size == Decimal("0.00001") and rules.min_qty == Decimal("0.00001")
    assert rules.min_notional == (Decimal(5) if venue.name == "bybit" else Decimal(0))
    caps = ex.capabilities(BTC)
    assert caps.attached_tp_sl and not caps.native_oco
    assert caps.attached_on_market is (venue.name == "okx")
    assert ex.amount_to_precision(BTC, Decimal("0.0012399")) == Decimal("0.00123")
    assert ex.price_to_precision(BTC, Decimal("95000.126")) == Decimal("95000.13")


def test_reads_are_typed(ex: CcxtExchange) -> None:
    ticker = ex.fetch_ticker(BTC)
    assert ticker.last == Decimal(95000)
    assert ticker.bid == Decimal("94999.99") and ticker.ask == Decimal("95000.01")
    assert ex.get_balance("USDT") == Decimal(10000)
    assert ex.get_balance("XRP") == Decimal(0)
    assert ex.fetch_positions(BTC)[0].qty == Decimal(1)
    assert ex.ping() > 0


def test_clock_drift_is_absorbed(make_exchange: ExchangeFactory, sim: Any) -> None:
    sim.clock_offset_ms = -20_000  # our clock 20 s ahead of the exchange's
    exchange = make_exchange()
    exchange.load_markets()
    assert exchange.get_balance("USDT") == Decimal(10000)


# ---------------------------------------------------------------------------------------------
# Orders


def test_market_order_fills_once_and_moves_balances(
    ex: CcxtExchange, venue: Venue, sim: Any
) -> None:
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, QTY)
    assert order.status is OrderStatus.FILLED and order.filled == QTY
    assert order.avg_price == Decimal(95000)
    assert (order.fee, order.fee_asset) == (Decimal("0.000001"), "BTC")  # a buy pays in base
    assert order.client_id.startswith("kobe")
    assert sim.orders_created == 1 and posts(venue, sim) == 1
    assert ex.get_balance("USDT") == Decimal(10000) - Decimal(95)
    assert ex.get_balance("BTC") == Decimal(1) + QTY - Decimal("0.000001")


def _resting(ex: CcxtExchange) -> Order:
    return ex.create_order(BTC, Side.BUY, OrderType.LIMIT, QTY, Decimal(90000))


def test_limit_order_rests_and_locks_funds(ex: CcxtExchange, sim: Any) -> None:
    order = _resting(ex)
    assert order.status is OrderStatus.OPEN and order.price == Decimal(90000)
    assert ex.get_balance("USDT") == Decimal(10000) - Decimal(90)
    assert [o.id for o in ex.fetch_open_orders(BTC)] == [order.id]
    assert ex.fetch_order(order.id, BTC).status is OrderStatus.OPEN
    assert ex.fetch_order_by_client_id(order.client_id, BTC) == ex.fetch_order(order.id, BTC)
    sim.fill(order.id)
    filled = ex.fetch_order(order.client_id, BTC)
    assert filled.status is OrderStatus.FILLED and filled.filled == QTY
    assert ex.fetch_open_orders(BTC) == []


def test_cancel(ex: CcxtExchange) -> None:
    order = _resting(ex)
    cancelled = ex.cancel_order(order.id, BTC)
    assert cancelled.status is OrderStatus.CANCELED
    assert ex.get_balance("USDT") == Decimal(10000)
    with pytest.raises(OrderNotFound, match="already canceled"):
        ex.cancel_order(order.id, BTC)


def test_cancel_by_client_id(ex: CcxtExchange) -> None:
    order = _resting(ex)
    assert ex.cancel_order(order.client_id, BTC).status is OrderStatus.CANCELED


def test_cancel_a_filled_order_says_so(ex: CcxtExchange, sim: Any) -> None:
    order = _resting(ex)
    sim.fill(order.id)
    with pytest.raises(OrderNotFound, match="already filled"):
        ex.cancel_order(order.id, BTC)


def test_cancel_an_unknown_order_says_so(ex: CcxtExchange) -> None:
    with pytest.raises(OrderNotFound, match="no order 424242"):
        ex.cancel_order("424242", BTC)


def test_resending_our_own_client_id_returns_the_first_order(ex: CcxtExchange, sim: Any) -> None:
    params = {"client_id": "kobedup1"}
    first = ex.create_order(BTC, Side.BUY, OrderType.LIMIT, QTY, Decimal(90000), params)
    again = ex.create_order(BTC, Side.BUY, OrderType.LIMIT, QTY, Decimal(90000), params)
    assert again.id == first.id and sim.orders_created == 1


# ---------------------------------------------------------------------------------------------
# TP/SL attached to the entry, held by the exchange


def test_tp_sl_attached_are_held_by_the_exchange_and_fire_once(
    ex: CcxtExchange, venue: Venue, sim: Any
) -> None:
    # off the tick: refused before anything is sent (the router rounds; nothing truncates later)
    off = {"take_profit": Decimal(100000), "stop_loss": Decimal("90000.004")}
    with pytest.raises(InvalidOrder, match=r"PRICE_FILTER: price 90000\.004 is not a multiple"):
        ex.create_order(BTC, Side.BUY, OrderType.LIMIT, QTY, Decimal(95000), off)
    assert sim.orders_created == 0
    tpsl = {"take_profit": Decimal(100000), "stop_loss": Decimal("90000.01")}
    order = ex.create_order(BTC, Side.BUY, OrderType.LIMIT, QTY, Decimal(95000), tpsl)
    assert order.status is OrderStatus.FILLED  # marketable: filled at once
    legs = {leg.role: leg for leg in sim.book.exits(order.id)}
    assert {role: leg.trigger for role, leg in legs.items()} == {
        "tp": Decimal(100000),
        "sl": Decimal("90000.01"),  # sent as given
    }
    assert all(leg.side == "sell" and leg.status == "untriggered" for leg in legs.values())
    assert legs["tp"].qty == Decimal("0.00099")  # what the buy left after its fee, on the step
    held = ex.get_balance("BTC")
    sim.set_price(venue.market_id, Decimal(100500))  # through the TP
    assert legs["tp"].status == "filled" and legs["sl"].status == "deactivated"
    assert ex.get_balance("BTC") == held  # the TP sold what the exit held, nothing more
    assert ex.get_balance("USDT") > Decimal(10000) - Decimal(95)
    sim.set_price(venue.market_id, Decimal(80000))  # the SL never fires after the TP
    assert legs["sl"].status == "deactivated"
    assert sim.orders_created == 1


def test_tp_sl_on_a_market_entry(ex: CcxtExchange, venue: Venue, sim: Any) -> None:
    tpsl = {"take_profit": Decimal(100000), "stop_loss": Decimal(90000)}
    if venue.name == "bybit":  # Bybit spot: TP/SL only on limit orders; refused before sending
        with pytest.raises(InvalidOrder, match="not supported for spot market"):
            ex.create_order(BTC, Side.BUY, OrderType.MARKET, QTY, None, tpsl)
        assert posts(venue, sim) == 0
        return
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, QTY, None, tpsl)
    assert order.status is OrderStatus.FILLED
    assert {leg.role for leg in sim.book.exits(order.id)} == {"tp", "sl"}


def test_tp_sl_on_the_wrong_side_is_refused_by_the_exchange(
    ex: CcxtExchange, venue: Venue, sim: Any
) -> None:
    wrong = {"take_profit": Decimal(90000), "stop_loss": Decimal(85000)}  # TP below the price
    with pytest.raises(InvalidOrder) as info:
        ex.create_order(BTC, Side.BUY, OrderType.LIMIT, QTY, Decimal(95000), wrong)
    assert ("51279" if venue.name == "okx" else "takeProfit") in info.value.reason
    assert sim.orders_created == 0 and posts(venue, sim) == 1


def test_binance_only_oco_is_not_supported(ex: CcxtExchange, sim: Any) -> None:
    with pytest.raises(NotSupported):
        ex.create_oco(BTC, Side.SELL, QTY, Decimal(100000), Decimal(90000))
    assert sim.orders_created == 0


# ---------------------------------------------------------------------------------------------
# Faults on order placement: never two orders from one fault


def test_rate_limit_on_create_waits_and_sends_once(
    ex: CcxtExchange, venue: Venue, sim: Any, sleeps: Sleeps, unknown: list[tuple[str, str]]
) -> None:
    if venue.name == "bybit":
        sim.rate_limit(venue.create, reset_in_ms=1000, method="POST")
    else:
        sim.inject(method="POST", path=venue.create, **venue.throttled)
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, QTY)
    assert order.status is OrderStatus.FILLED
    assert posts(venue, sim) == 2 and sim.orders_created == 1 and unknown == []
    assert len(sleeps) == 1
    if venue.throttled_hint is not None:  # the exchange's hint, honoured
        assert venue.throttled_hint - 0.3 < sleeps[0] <= venue.throttled_hint
    else:  # no hint: our backoff
        assert 0.01 <= sleeps[0] <= 0.02


def test_bybit_reset_time_is_read_on_the_injected_wall_clock() -> None:
    """Bybit's hint is a moment (epoch ms), not a duration: the wait is that moment minus now."""
    exchange = CcxtExchange("bybit", api_url="http://127.0.0.1:9", epoch_s=lambda: 1.7e9)
    exchange.ccxt.last_response_headers = {"X-Bapi-Limit-Reset-Timestamp": "1700000002500"}
    assert exchange._retry_after() == 2.5
    exchange.ccxt.last_response_headers = {"X-Bapi-Limit-Reset-Timestamp": "1699999999000"}
    assert exchange._retry_after() == 0.0  # already reset: no wait
    exchange.ccxt.last_response_headers = {"Retry-After": "3"}
    assert exchange._retry_after() == 3.0


def test_rate_limit_beyond_budget_fails_at_once(
    make_exchange: ExchangeFactory, venue: Venue, sim: Any
) -> None:
    exchange = make_exchange(max_total_s=0.005)
    exchange.load_markets()
    sim.inject(method="POST", path=venue.create, **venue.throttled)
    with pytest.raises(RateLimited):
        exchange.create_order(BTC, Side.BUY, OrderType.MARKET, QTY)
    assert posts(venue, sim) == 1 and sim.orders_created == 0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_on_create_looks_up_then_sends_once(
    ex: CcxtExchange, venue: Venue, sim: Any, unknown: list[tuple[str, str]], status: int
) -> None:
    sim.inject(status=status, body="Service Unavailable", method="POST", path=venue.create)
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, QTY)
    assert order.status is OrderStatus.FILLED
    assert sim.orders_created == 1 and posts(venue, sim) == 2
    assert len(unknown) == 1 and unknown[0][0] == order.client_id
    assert "ExchangeUnavailable" in unknown[0][1]


def test_response_lost_after_acceptance_gives_exactly_one_order(
    ex: CcxtExchange, venue: Venue, sim: Any, unknown: list[tuple[str, str]]
) -> None:
    sim.inject("drop", method="POST", path=venue.create)
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, QTY)
    assert order.status is OrderStatus.FILLED
    assert posts(venue, sim) == 1 and sim.orders_created == 1
    assert [cid for cid, _ in unknown] == [order.client_id]
    assert lookups(venue, sim) >= 1  # found by its client id


def test_timeout_after_acceptance_gives_exactly_one_order(
    ex: CcxtExchange, venue: Venue, sim: Any, unknown: list[tuple[str, str]]
) -> None:
    sim.inject("late", delay=0.6, method="POST", path=venue.create)
    order = _resting(ex)
    assert order.status is OrderStatus.OPEN
    assert posts(venue, sim) == 1 and sim.orders_created == 1
    assert len(unknown) == 1 and "RequestTimeout" in unknown[0][1]


def test_lookup_failing_leaves_the_outcome_unknown(
    make_exchange: ExchangeFactory, venue: Venue, sim: Any, unknown: list[tuple[str, str]]
) -> None:
    exchange = make_exchange(max_attempts=3)
    exchange.load_markets()
    sim.inject("drop", method="POST", path=venue.create)
    for path in venue.lookups:
        sim.inject(status=503, body="Service Unavailable", method="GET", path=path, times=10)
    with pytest.raises(OrderOutcomeUnknown) as info:
        exchange.create_order(BTC, Side.BUY, OrderType.MARKET, QTY)
    assert posts(venue, sim) == 1 and sim.orders_created == 1  # never re-sent blind
    assert info.value.client_id == unknown[0][0]


def test_reading_the_new_order_failing_still_gives_one_order(
    ex: CcxtExchange, venue: Venue, sim: Any, unknown: list[tuple[str, str]]
) -> None:
    # the create is answered; reading the order's state right after it fails once
    sim.inject(status=503, body="Service Unavailable", method="GET", path=venue.lookups[-1])
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, QTY)
    assert order.status is OrderStatus.FILLED
    assert posts(venue, sim) == 1 and sim.orders_created == 1 and len(unknown) == 1


# ---------------------------------------------------------------------------------------------
# Refusals mapped onto Kobe's errors


def test_insufficient_balance_is_not_retried(ex: CcxtExchange, venue: Venue, sim: Any) -> None:
    with pytest.raises(InsufficientFunds):
        ex.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal(1))  # 95 000 > 10 000 USDT
    assert posts(venue, sim) == 1 and sim.orders_created == 0


def test_injected_insufficient_funds_answer(ex: CcxtExchange, venue: Venue, sim: Any) -> None:
    sim.inject(status=200, body=venue.insufficient, method="POST", path=venue.create)
    with pytest.raises(InsufficientFunds, match="Insufficient"):
        ex.create_order(BTC, Side.BUY, OrderType.MARKET, QTY)
    assert posts(venue, sim) == 1


def test_filter_failures_are_invalid_orders_with_the_reason(
    ex: CcxtExchange, venue: Venue, sim: Any
) -> None:
    spec = sim.book.specs[venue.market_id]
    sim.book.specs[venue.market_id] = replace(spec, step=Decimal("0.001"))
    # ccxt rounds to the step it loaded (0.00001); the exchange's own lot size is now coarser
    with pytest.raises(InvalidOrder) as info:
        ex.create_order(BTC, Side.BUY, OrderType.LIMIT, Decimal("0.0015"), Decimal(90000))
    words = "decimal too long" if venue.name == "bybit" else "lot size"
    assert words in info.value.reason
    assert sim.orders_created == 0


@pytest.mark.parametrize("which", ["key", "secret"])
def test_wrong_keys_are_an_authentication_error_and_no_order(
    make_exchange: ExchangeFactory,
    venue: Venue,
    sim: Any,
    which: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "WRONG-" + ("K" if which == "key" else "S") * 24
    env = sim_env(venue, sim, **{venue.key_var if which == "key" else venue.secret_var: wrong})
    exchange = make_exchange(env)
    exchange.load_markets()  # public: fine
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationError) as info:
        exchange.create_order(BTC, Side.BUY, OrderType.MARKET, QTY)
    code = venue.auth_codes[0 if which == "key" else 1]
    assert code in str(info.value) and venue.name in str(info.value)
    assert sim.orders_created == 0
    for text in (str(info.value), repr(exchange), caplog.text):
        assert wrong not in text and venue.env[venue.secret_var] not in text


def test_5xx_read_is_retried(ex: CcxtExchange, venue: Venue, sim: Any, sleeps: Sleeps) -> None:
    sim.inject(status=502, body="<html>bad gateway</html>", path=venue.balance)
    assert ex.get_balance("USDT") == Decimal(10000)
    assert sim.count("GET", venue.balance) == 2 and len(sleeps) == 1


def test_exchange_busy_is_unavailable_and_retried(
    make_exchange: ExchangeFactory, venue: Venue, sim: Any
) -> None:
    exchange = make_exchange(max_attempts=2)
    exchange.load_markets()
    body = (
        {"retCode": 10016, "retMsg": "Server error."}
        if venue.name == "bybit"
        else {"code": "50013", "msg": "Systems are busy. Please try again later."}
    )
    sim.inject(status=200, body=body, path=venue.balance, times=2)
    with pytest.raises(ExchangeUnavailable):
        exchange.get_balance("USDT")
    assert sim.count("GET", venue.balance) == 2


# ---------------------------------------------------------------------------------------------
# The base-URL override, end to end through the CLI


def test_keys_ping_reaches_the_simulator(cli: CliRunner, venue: Venue, sim: Any) -> None:
    result = cli("keys", "--ping", env=sim_env(venue, sim))
    assert result.code == 0, result.err
    assert "time endpoint answered" in result.out
    assert sim.requests == [("GET", venue.public_load[1][1])]


def test_fills_endpoint_answers_what_ccxt_parses(ex: CcxtExchange, venue: Venue, sim: Any) -> None:
    """Bybit's execution/list and OKX's trade/fills: one fill per execution, fee and all."""
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, QTY)
    trades = ex.ccxt.fetch_my_trades(BTC)
    assert [(t["order"], t["side"], t["amount"], t["price"]) for t in trades] == [
        (order.id, "buy", float(QTY), 95000.0)
    ]
    assert trades[0]["fee"]["currency"] == "BTC" and trades[0]["fee"]["cost"] == 0.000001
    path = "/v5/execution/list" if venue.name == "bybit" else "/api/v5/trade/fills-history"
    assert sim.count("GET", path) == 1
