"""Contract tests: the real ccxt library, through ``CcxtExchange``, against the Binance simulator.

Nothing is mocked: ccxt signs and sends real HTTP requests to ``tests/binance_sim.py`` on
127.0.0.1 (``KOBE_EXCHANGE_URL``, testnet mode with testnet-marked keys). Each fault asserts the
error type, the number of attempts the simulator saw, and that no order was ever doubled (the
simulator counts the orders it created). Sleeps are recorded, not slept; timeouts are tiny.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
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
    OcoResult,
    Order,
    OrderNotFound,
    OrderOutcomeUnknown,
    OrderStatus,
    OrderType,
    RateLimited,
    Side,
)
from engine.exchange.ccxt_exchange import CcxtExchange
from engine.exchange.retry import RetryPolicy
from engine.modes import GateClosed, resolve_settings
from engine.secrets import Secret
from tests.binance_sim import API_KEY, API_SECRET, BinanceSim, SymbolSpec, binance_signature
from tests.conftest import ROOT, CliRunner

D = Decimal
BTC = "BTC/USDT"
ORDER = "/api/v3/order"

# Binance's documented signing example (API docs, "SIGNED endpoint examples for POST
# /api/v3/order"): the same key pair, request and expected signatures.
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
# The same request split between the query string and the body (the docs' third example).
DOC_MIXED_QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
DOC_MIXED_BODY = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
DOC_MIXED_SIGNATURE = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"


class Sleeps(list[float]):
    """A sleep that records instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sim() -> Iterator[BinanceSim]:
    """A Binance simulator on 127.0.0.1 (ephemeral port). Faults: ``sim.inject(...)``."""
    with BinanceSim() as server:
        yield server


def sim_env(sim: BinanceSim, **extra: str) -> dict[str, str]:
    env = {
        "KOBE_MODE": "testnet",
        "EXCHANGE": "binance",
        "BINANCE_KEY": API_KEY,
        "BINANCE_SECRET": API_SECRET,
        "BINANCE_TESTNET": "1",
        "KOBE_EXCHANGE_URL": sim.url,
    }
    env.update(extra)
    return env


ExchangeFactory = Callable[..., CcxtExchange]


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def unknown() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def default_env(sim: BinanceSim) -> dict[str, str]:
    """The environment ``make_exchange`` builds with (other venues' tests override it)."""
    return sim_env(sim)


@pytest.fixture
def make_exchange(
    default_env: dict[str, str], workdir: Path, sleeps: Sleeps, unknown: list[tuple[str, str]]
) -> Iterator[ExchangeFactory]:
    """Build a ``CcxtExchange`` for the simulator: 300 ms client timeout, sleeps recorded."""
    made: list[CcxtExchange] = []

    def make(env: dict[str, str] | None = None, **policy: Any) -> CcxtExchange:
        settings = resolve_settings(env or default_env, workdir)
        retry = RetryPolicy(
            **{
                "sleep": sleeps,
                "lookup_delay_s": 0.0,
                "base_delay_s": 0.01,
                "jitter_s": 0.01,
                "max_total_s": 30.0,
                **policy,
            }
        )
        exchange = CcxtExchange.from_settings(
            settings,
            confirmed=False,
            retry=retry,
            timeout_ms=300,
            on_unknown=lambda cid, reason: unknown.append((cid, reason)),
            ccxt_config={"rateLimit": 1},  # the limiter stays on; 1 ms apart keeps tests fast
        )
        made.append(exchange)
        return exchange

    yield make
    for exchange in made:
        exchange.close()


@pytest.fixture
def ex(make_exchange: ExchangeFactory) -> CcxtExchange:
    exchange = make_exchange()
    exchange.load_markets()
    return exchange


def posts(sim: BinanceSim) -> int:
    return sim.count("POST", ORDER)


# ---------------------------------------------------------------------------------------------
# Layering, signatures, construction


def test_importing_the_adapter_does_not_import_ccxt() -> None:
    code = (
        "import sys; import engine.exchange.ccxt_exchange, engine.exchange.retry; "
        "print(any(m == 'ccxt' or m.startswith('ccxt.') for m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_signature_matches_binance_documentation_examples() -> None:
    assert binance_signature(DOC_SECRET, DOC_QUERY) == DOC_SIGNATURE
    assert binance_signature(DOC_SECRET, DOC_MIXED_QUERY + DOC_MIXED_BODY) == DOC_MIXED_SIGNATURE


def _doc_sim() -> BinanceSim:
    """A simulator holding the docs' keys, clock set to the docs' timestamp, with LTCBTC."""
    ltc = SymbolSpec(
        "LTCBTC",
        "LTC",
        "BTC",
        Decimal("0.2"),
        Decimal("0.00001"),
        Decimal("0.001"),
        Decimal("0.001"),
        Decimal("0.0001"),
    )
    sim = BinanceSim(DOC_KEY, DOC_SECRET, symbols=(ltc,), balances={"BTC": Decimal(1)})
    sim.clock_offset_ms = 1499827319559 - int(time.time() * 1000)
    return sim


def _post(url: str, key: str, query: str = "", body: str = "") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url + ORDER + ("?" + query if query else ""),
        data=body.encode(),
        method="POST",
        headers={"X-MBX-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_simulator_accepts_the_documented_request_and_refuses_tampering() -> None:
    with _doc_sim() as sim:
        status, answer = _post(sim.url, DOC_KEY, DOC_QUERY + "&signature=" + DOC_SIGNATURE)
        assert status == 200, answer
        assert answer["symbol"] == "LTCBTC" and answer["status"] == "NEW"

        # the mixed example signs query + body; the signature travels in the body
        status, answer = _post(
            sim.url, DOC_KEY, DOC_MIXED_QUERY, DOC_MIXED_BODY + "&signature=" + DOC_MIXED_SIGNATURE
        )
        assert status == 200, answer

        tampered = DOC_QUERY.replace("quantity=1", "quantity=2") + "&signature=" + DOC_SIGNATURE
        status, answer = _post(sim.url, DOC_KEY, tampered)
        assert (status, answer["code"]) == (400, -1022)

        status, answer = _post(sim.url, "not-the-key", DOC_QUERY + "&signature=" + DOC_SIGNATURE)
        assert (status, answer["code"]) == (401, -2015)
        status, answer = _post(sim.url, "", DOC_QUERY + "&signature=" + DOC_SIGNATURE)
        assert (status, answer["code"]) == (401, -2014)
        assert sim.orders_created == 2


def test_live_needs_the_gate(sim: BinanceSim, workdir: Path) -> None:
    env = sim_env(sim, KOBE_MODE="live")
    with pytest.raises(GateClosed) as info:
        CcxtExchange.from_settings(resolve_settings(env, workdir), confirmed=False)
    reasons = " | ".join(info.value.reasons)
    for fragment in ("ALLOW_LIVE", "BINANCE_TESTNET=1", "KOBE_EXCHANGE_URL", "--confirm-live"):
        assert fragment in reasons
    with pytest.raises(GateClosed):
        CcxtExchange("binance", sandbox=False)  # not through the gate


def test_live_builds_once_the_gate_is_open(workdir: Path) -> None:
    env = {
        "KOBE_MODE": "live",
        "ALLOW_LIVE": "1",
        "BINANCE_KEY": "k" * 16,
        "BINANCE_SECRET": "s" * 16,
    }
    exchange = CcxtExchange.from_settings(resolve_settings(env, workdir), confirmed=True)
    assert not exchange.sandbox and not exchange.ccxt.isSandboxModeEnabled
    assert exchange.ccxt.urls["api"]["public"].startswith("https://api.binance.com")


def test_testnet_needs_testnet_keys(sim: BinanceSim, workdir: Path) -> None:
    env = sim_env(sim)
    del env["BINANCE_TESTNET"]
    with pytest.raises(GateClosed) as info:
        CcxtExchange.from_settings(resolve_settings(env, workdir), confirmed=False)
    assert any("BINANCE_TESTNET is not 1" in r for r in info.value.reasons)


def test_paper_is_not_this_class_business(workdir: Path) -> None:
    with pytest.raises(ValueError, match="paper"):
        CcxtExchange.from_settings(resolve_settings({}, workdir), confirmed=False)


def test_ccxt_is_configured_as_documented(ex: CcxtExchange, sim: BinanceSim) -> None:
    raw = ex.ccxt
    assert raw.enableRateLimit is True
    assert raw.options["maxRetriesOnFailure"] == 0
    assert raw.options["adjustForTimeDifference"] is True
    assert raw.options["fetchMarkets"]["types"] == ["spot"]
    assert raw.options["fetchCurrencies"] is False
    assert raw.options["fetchMargins"] is False
    assert raw.options["fetchOpenOrders"]["warnWithoutSymbol"] is False
    assert raw.isSandboxModeEnabled
    # the override survived set_sandbox_mode, and every REST URL points at the simulator
    assert raw.urls["api"]["public"] == sim.url + "/api/v3"
    assert raw.urls["api"]["private"] == sim.url + "/api/v3"
    assert all(url.startswith(sim.url) for url in raw.urls["api"].values())
    # one exchange-info request (and the clock for the time difference): no sapi, no futures
    assert sorted(set(sim.requests)) == [("GET", "/api/v3/exchangeInfo"), ("GET", "/api/v3/time")]


@pytest.mark.parametrize("exchange_id", ["bybit", "okx"])
def test_base_url_override_rewrites_every_rest_url(exchange_id: str) -> None:
    exchange = CcxtExchange(exchange_id, sandbox=True, api_url="http://127.0.0.1:9")
    urls: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            urls.append(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(exchange.ccxt.urls["api"])
    assert urls and all(u.startswith("http://127.0.0.1:9") for u in urls)
    assert exchange.capabilities(BTC).attached_tp_sl and not exchange.capabilities(BTC).native_oco
    with pytest.raises(NotSupported):
        exchange.create_oco(BTC, Side.SELL, Decimal("0.001"), Decimal(100000), Decimal(90000))


# ---------------------------------------------------------------------------------------------
# Markets, rounding, reads


def test_market_rules_come_from_the_exchange(ex: CcxtExchange) -> None:
    rules = ex.market(BTC)
    assert (rules.base, rules.quote) == ("BTC", "USDT")
    assert rules.tick_size == Decimal("0.01")
    assert rules.step_size == Decimal("0.00001")
    assert rules.min_qty == Decimal("0.00001")
    assert rules.min_notional == Decimal(5)
    assert all(isinstance(v, Decimal) for v in (rules.tick_size, rules.step_size))
    caps = ex.capabilities(BTC)
    assert caps.native_oco and not caps.attached_tp_sl
    with pytest.raises(InvalidOrder, match="unknown symbol"):
        ex.market("DOGE/USDT")


def test_rounding_is_to_the_markets_step_and_tick(ex: CcxtExchange) -> None:
    assert ex.amount_to_precision(BTC, Decimal("0.0012399")) == Decimal("0.00123")  # down
    assert ex.price_to_precision(BTC, Decimal("95000.126")) == Decimal("95000.13")
    assert isinstance(ex.amount_to_precision(BTC, Decimal("1")), Decimal)
    assert ex.amount_to_precision(BTC, Decimal("0.000001")) == 0  # below one step: as paper


def test_reads_are_typed(ex: CcxtExchange) -> None:
    ticker = ex.fetch_ticker(BTC)
    assert ticker.last == Decimal(95000)
    assert ticker.bid == Decimal("94999.99") and ticker.ask == Decimal("95000.01")
    assert ticker.time.tzinfo is not None
    assert ex.get_balance("USDT") == Decimal(10000)
    assert ex.get_balance("XRP") == Decimal(0)
    assert ex.fetch_positions() == [ex.fetch_positions(BTC)[0]]
    assert ex.fetch_positions(BTC)[0].qty == Decimal(1)
    assert ex.ping() > 0


def test_ping_is_the_round_trip_of_the_call_that_answered(
    ex: CcxtExchange, sim: BinanceSim
) -> None:
    """The header's latency is the last call's round trip. After an outage it read
    ``venue ok 4028ms``: the failed attempts and the retries' pauses counted too."""
    calls = sim.count("GET", "/api/v3/time")
    sim.inject("slow", delay=0.6, method="GET", path="/api/v3/time")  # the 300 ms client gives up
    ms = ex.ping()
    assert sim.count("GET", "/api/v3/time") == calls + 2  # retried, then answered
    assert 0 < ms < 250, ms


def test_clock_drift_is_absorbed(make_exchange: ExchangeFactory, sim: BinanceSim) -> None:
    sim.clock_offset_ms = -60_000  # our clock a minute ahead of the exchange's
    exchange = make_exchange()
    exchange.load_markets()  # ccxt reads the exchange's time here
    assert exchange.get_balance("USDT") == Decimal(10000)


# ---------------------------------------------------------------------------------------------
# Orders


def test_market_order_fills_once(ex: CcxtExchange, sim: BinanceSim) -> None:
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal("0.001"))
    assert order.status is OrderStatus.FILLED
    assert order.filled == Decimal("0.001") and order.avg_price == Decimal(95000)
    assert order.client_id.startswith("kobe")
    assert order.fee == Decimal("0.000001") and order.fee_asset == "BTC"
    assert order.fills and order.fills[0].price == Decimal(95000)
    assert sim.orders_created == 1
    assert sim.orders[int(order.id)].client_id == order.client_id


def test_client_id_is_ours_and_sent_as_new_client_order_id(
    ex: CcxtExchange, sim: BinanceSim
) -> None:
    order = ex.create_order(
        BTC, Side.BUY, OrderType.LIMIT, Decimal("0.001"), Decimal(90000), {"client_id": "kobeabc"}
    )
    assert order.client_id == "kobeabc" and order.status is OrderStatus.OPEN
    assert order.price == Decimal(90000)
    assert ex.fetch_order_by_client_id("kobeabc", BTC) == order
    assert ex.fetch_order_by_client_id("kobenone", BTC) is None
    assert [o.id for o in ex.fetch_open_orders()] == [order.id]  # no symbol needed
    assert ex.fetch_order(order.id, BTC).status is OrderStatus.OPEN


def test_oco_is_native_on_binance(ex: CcxtExchange, sim: BinanceSim) -> None:
    oco = ex.create_oco(BTC, Side.SELL, Decimal("0.001"), Decimal(100000), Decimal(90000))
    assert isinstance(oco, OcoResult)
    assert oco.take_profit.type is OrderType.LIMIT_MAKER
    assert oco.take_profit.price == Decimal(100000)
    assert oco.stop_loss.type is OrderType.STOP_LOSS_LIMIT
    assert oco.stop_loss.stop_price == Decimal(90000)
    assert oco.stop_loss.price == Decimal("89550")  # 0.5% beyond the stop, tick-rounded
    assert oco.take_profit.list_id == oco.stop_loss.list_id == oco.list_id
    assert sim.count("POST", "/api/v3/orderList/oco") == 1
    assert sim.orders_created == 2  # the two legs


@pytest.mark.parametrize(
    ("qty", "price", "refused"),
    [
        ("0.0012399", None, "LOT_SIZE: quantity 0.0012399 is not a multiple of the step size"),
        ("0.001", "61800.005", "PRICE_FILTER: price 61800.005 is not a multiple of the tick"),
    ],
)
def test_values_off_the_step_or_tick_are_refused_not_truncated(
    ex: CcxtExchange, sim: BinanceSim, qty: str, price: str | None, refused: str
) -> None:
    """The router rounds, once; the adapter never truncates silently at send time (ccxt's
    amount_to_precision / price_to_precision would): it refuses, and nothing is sent."""
    type_ = OrderType.MARKET if price is None else OrderType.LIMIT
    with pytest.raises(InvalidOrder, match=refused):
        ex.create_order(BTC, Side.BUY, type_, Decimal(qty), None if price is None else D(price))
    with pytest.raises(InvalidOrder, match=refused.split(":")[0]):
        ex.create_oco(BTC, Side.SELL, Decimal(qty), D(price or "100000"), Decimal(90000))
    assert sim.count("POST", ORDER) == 0 and sim.count("POST", "/api/v3/orderList/oco") == 0
    assert sim.orders_created == 0


def test_oco_stop_leg_limit_is_refused_off_the_tick(ex: CcxtExchange, sim: BinanceSim) -> None:
    with pytest.raises(InvalidOrder, match=r"PRICE_FILTER: price 89550\.001"):
        ex.create_oco(
            BTC,
            Side.SELL,
            Decimal("0.001"),
            Decimal(100000),
            Decimal(90000),
            {"stop_limit_price": Decimal("89550.001")},
        )
    assert sim.orders_created == 0


@pytest.mark.parametrize(
    ("side", "price", "filter_name"),
    [
        (Side.BUY, "18999.99", "PERCENT_PRICE_BY_SIDE"),  # below 0.2 x the average price
        (Side.SELL, "475000.01", "PERCENT_PRICE_BY_SIDE"),  # above 5 x
        (Side.BUY, "19000.00", None),  # on the band's edge: accepted
    ],
)
def test_simulator_enforces_percent_price_by_side(
    ex: CcxtExchange, sim: BinanceSim, side: Side, price: str, filter_name: str | None
) -> None:
    if filter_name is None:
        order = ex.create_order(BTC, side, OrderType.LIMIT, Decimal("0.001"), D(price))
        assert order.status is OrderStatus.OPEN
        return
    with pytest.raises(InvalidOrder, match=f"Filter failure: {filter_name}"):
        ex.create_order(BTC, side, OrderType.LIMIT, Decimal("0.001"), D(price))


def test_simulator_market_notional_is_on_the_average_price(
    ex: CcxtExchange, sim: BinanceSim
) -> None:
    """Binance checks a market order's NOTIONAL on the average price, not on its fills."""
    sim.set_book(
        "BTCUSDT",
        bids=[(Decimal(94000), Decimal(1))],
        asks=[(Decimal(96000), Decimal(1))],
    )
    sim.avg_prices["BTCUSDT"] = Decimal(40000)  # 0.0001 x 40000 = 4 < 5: refused
    with pytest.raises(InvalidOrder, match="Filter failure: NOTIONAL"):
        ex.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal("0.0001"))
    sim.avg_prices["BTCUSDT"] = Decimal(60000)  # 6 >= 5: accepted, and fills on the book
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal("0.0001"))
    assert order.avg_price == Decimal(96000)


def test_simulator_book_has_depth(ex: CcxtExchange, sim: BinanceSim) -> None:
    """A market order walks the levels; a crossing limit takes what its price allows and rests
    the rest; each trade pays its commission in the asset received."""
    sim.set_book(
        "BTCUSDT",
        bids=[(Decimal(94990), Decimal("0.002")), (Decimal(94980), Decimal(1))],
        asks=[(Decimal(95010), Decimal("0.002")), (Decimal(95020), Decimal(1))],
    )
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal("0.003"))
    assert [(f.price, f.qty) for f in order.fills] == [
        (Decimal(95010), Decimal("0.002")),
        (Decimal(95020), Decimal("0.001")),
    ]
    assert order.fee_asset == "BTC" and order.fee == Decimal("0.000003")
    limit = ex.create_order(BTC, Side.SELL, OrderType.LIMIT, Decimal("0.003"), D("94990"))
    assert limit.status is OrderStatus.PARTIALLY_FILLED and limit.filled == Decimal("0.002")
    assert limit.fee_asset == "USDT" and limit.fee == Decimal("0.18998")
    assert ex.fetch_ticker(BTC).bid == Decimal(94990)


def test_oco_response_lost_is_not_doubled(
    ex: CcxtExchange, sim: BinanceSim, unknown: list[tuple[str, str]]
) -> None:
    sim.inject("drop", method="POST", path="/api/v3/orderList/oco")
    oco = ex.create_oco(BTC, Side.SELL, Decimal("0.001"), Decimal(100000), Decimal(90000))
    assert oco.take_profit.status is OrderStatus.OPEN
    assert sim.count("POST", "/api/v3/orderList/oco") == 1
    assert sim.orders_created == 2
    assert len(unknown) == 1


# ---------------------------------------------------------------------------------------------
# Faults on reads


def test_429_read_waits_retry_after(ex: CcxtExchange, sim: BinanceSim, sleeps: Sleeps) -> None:
    sim.inject(status=429, retry_after=2, path="/api/v3/account", times=2)
    assert ex.get_balance("USDT") == Decimal(10000)
    assert sim.count("GET", "/api/v3/account") == 3
    assert sleeps == [2.0, 2.0]


@pytest.mark.parametrize(
    ("header", "waited"),
    [
        ("1.5", 1.5),  # seconds as a decimal fraction: waited as such
        ("86400", 3600.0),  # a day: waited as an hour at most (here: beyond the budget, below)
        ("soon", None),  # text: the backoff
        ("inf", None),
        ("nan", None),
        ("-3", None),
        ("1e999", None),
        ("", None),
    ],
)
def test_a_retry_after_is_bounded_and_anything_else_is_the_backoff(
    make_exchange: ExchangeFactory,
    sim: BinanceSim,
    sleeps: Sleeps,
    header: str,
    waited: float | None,
) -> None:
    """Retry-After is outside data: seconds (a fraction too) waited up to an hour, anything
    else ignored for Kobe's own backoff; never a crash, never an endless or negative wait."""
    ex = make_exchange(max_total_s=5000.0)
    sim.inject(status=429, retry_after=header, path="/api/v3/account", times=2)  # type: ignore[arg-type]
    assert ex.get_balance("USDT") == Decimal(10000)
    assert len(sleeps) == 2
    if waited is None:
        assert all(0.01 <= pause <= 0.05 for pause in sleeps), sleeps
    else:
        assert sleeps == [waited, waited]


def test_a_retry_after_http_date_is_the_wait_until_then_on_the_wall_clock() -> None:
    """RFC 9110 also allows a date: the wait until it, read on the injected wall clock, at
    most an hour; a date passed is no wait; a date Kobe cannot read is the backoff (None)."""
    now = 1_445_412_470.0  # 2015-10-21 07:27:50 UTC
    exchange = CcxtExchange("binance", api_url="http://127.0.0.1:9", epoch_s=lambda: now)
    for header, wait in [
        ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 10.0),  # UTC, the zone of its source unknown
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),
        ("Thu, 22 Oct 2015 07:28:00 GMT", 3600.0),
        ("Wed, 99 Oct 2015 07:28:00 GMT", None),
        ("Wed, 21 Oct 99999 07:28:00 GMT", None),
    ]:
        exchange.ccxt.last_response_headers = {"Retry-After": header}
        assert exchange._retry_after() == wait, header
    for reset in ("inf", "-1", "1e999", "x"):  # Bybit's reset moment: the same bounds
        exchange.ccxt.last_response_headers = {"X-Bapi-Limit-Reset-Timestamp": reset}
        assert exchange._retry_after() is None, reset
    exchange.ccxt.last_response_headers = {"X-Bapi-Limit-Reset-Timestamp": "9" * 20}
    assert exchange._retry_after() == 3600.0


def test_retry_after_beyond_the_budget_fails_at_once(
    ex: CcxtExchange, sim: BinanceSim, sleeps: Sleeps
) -> None:
    sim.inject(status=418, retry_after=120, path="/api/v3/account")
    with pytest.raises(RateLimited) as info:
        ex.get_balance("USDT")
    assert info.value.banned and info.value.retry_after == 120
    assert "418" in str(info.value) and "120" in str(info.value)
    assert sim.count("GET", "/api/v3/account") == 1
    assert sleeps == []


def test_418_without_retry_after_is_not_retried(ex: CcxtExchange, sim: BinanceSim) -> None:
    sim.inject(status=418, path="/api/v3/account")
    with pytest.raises(RateLimited) as info:
        ex.get_balance("USDT")
    assert info.value.banned
    assert sim.count("GET", "/api/v3/account") == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_read_is_retried(
    ex: CcxtExchange, sim: BinanceSim, sleeps: Sleeps, status: int
) -> None:
    sim.inject(status=status, body="<html>bad gateway</html>", path="/api/v3/account")
    assert ex.get_balance("USDT") == Decimal(10000)
    assert sim.count("GET", "/api/v3/account") == 2
    assert len(sleeps) == 1 and 0.01 <= sleeps[0] <= 0.02  # backoff + jitter


def test_5xx_read_gives_up_after_max_attempts(
    make_exchange: ExchangeFactory,
    sim: BinanceSim,
    sleeps: Sleeps,
    caplog: pytest.LogCaptureFixture,
) -> None:
    exchange = make_exchange(max_attempts=3)
    exchange.load_markets()
    sim.inject(status=503, body="Service Unavailable", path="/api/v3/account", times=10)
    with caplog.at_level(logging.WARNING), pytest.raises(ExchangeUnavailable):
        exchange.get_balance("USDT")
    assert sim.count("GET", "/api/v3/account") == 3
    assert sleeps == sorted(sleeps) and len(sleeps) == 2  # exponential backoff
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2 and "ExchangeUnavailable" in retries[0].getMessage()


def test_the_retry_budget_and_receive_window_are_the_readmes(
    make_exchange: ExchangeFactory, sim: BinanceSim, sleeps: Sleeps
) -> None:
    """README, "Retries": reads are retried "at most 5 attempts and 30 s in all"; "every signed
    request carries a 5 s window ... Kobe waits until 7 s after the failure came back"."""
    import re

    from engine.exchange.ccxt_client import RECV_WINDOW_MS, RESEND_AFTER_S

    readme = " ".join((ROOT / "README.md").read_text().split())
    budget = re.search(r"at most (\d+) attempts and (\d+) s in all", readme)
    window = re.search(r"every signed request carries a (\d+) s window", readme)
    resend = re.search(r"Kobe waits until (\d+) s after the failure came back", readme)
    assert budget is not None and window is not None and resend is not None
    attempts, seconds = int(budget.group(1)), int(budget.group(2))
    assert RetryPolicy().max_total_s == seconds
    assert int(window.group(1)) * 1000 == RECV_WINDOW_MS and int(resend.group(1)) == RESEND_AFTER_S
    exchange = make_exchange()  # the default number of attempts
    exchange.load_markets()
    sim.inject(status=503, body="Service Unavailable", path="/api/v3/account", times=attempts + 5)
    with pytest.raises(ExchangeUnavailable):
        exchange.get_balance("USDT")
    assert sim.count("GET", "/api/v3/account") == attempts


def test_slow_read_beyond_the_timeout_is_retried(ex: CcxtExchange, sim: BinanceSim) -> None:
    sim.inject("slow", delay=0.6, path="/api/v3/account")
    assert ex.get_balance("USDT") == Decimal(10000)
    assert sim.count("GET", "/api/v3/account") == 2


class FakeTime:
    """An injected clock that only moves when the policy sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> float:
        return self.now


def test_backoff_is_exponential_capped_with_jitter() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=4, jitter_s=0.5, rand=lambda: 1.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [1.5, 2.5, 4.5, 4.5, 4.5]


def test_total_time_budget_bounds_the_retries(
    make_exchange: ExchangeFactory, sim: BinanceSim
) -> None:
    fake = FakeTime()
    exchange = make_exchange(
        max_attempts=10,
        max_total_s=1.0,
        base_delay_s=0.1,
        jitter_s=0.0,
        sleep=fake.sleep,
        clock=fake.clock,
    )
    exchange.load_markets()
    sim.inject(status=503, body="Service Unavailable", path="/api/v3/account", times=20)
    with pytest.raises(ExchangeUnavailable):
        exchange.get_balance("USDT")
    # waits 0.1 + 0.2 + 0.4 = 0.7 s; the next (0.8 s) would pass the 1 s budget
    assert sim.count("GET", "/api/v3/account") == 4
    assert fake.now == pytest.approx(0.7)


# ---------------------------------------------------------------------------------------------
# Faults on order placement: never two orders from one fault


def test_429_on_create_waits_and_sends_once(
    ex: CcxtExchange, sim: BinanceSim, sleeps: Sleeps, unknown: list[tuple[str, str]]
) -> None:
    sim.inject(status=429, retry_after=1, method="POST", path=ORDER)
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal("0.001"))
    assert order.status is OrderStatus.FILLED
    assert posts(sim) == 2 and sim.orders_created == 1
    assert sleeps == [1.0] and unknown == []


def test_429_on_create_beyond_budget_fails_at_once(ex: CcxtExchange, sim: BinanceSim) -> None:
    sim.inject(status=429, retry_after=600, method="POST", path=ORDER)
    with pytest.raises(RateLimited, match="600"):
        ex.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal("0.001"))
    assert posts(sim) == 1 and sim.orders_created == 0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_on_create_looks_up_then_sends_once(
    ex: CcxtExchange,
    sim: BinanceSim,
    unknown: list[tuple[str, str]],
    status: int,
    sleeps: Sleeps,
) -> None:
    sim.inject(status=status, body="Service Unavailable", method="POST", path=ORDER)
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal("0.001"))
    assert order.status is OrderStatus.FILLED
    assert sim.orders_created == 1 and posts(sim) == 2
    # looked up, then again once the first request could no longer land (its receive window
    # passed: the recorded sleep), before sending again
    assert sim.count("GET", ORDER) == 2
    assert any(6 < s <= 7 for s in sleeps)
    assert len(unknown) == 1 and unknown[0][0] == order.client_id
    assert "ExchangeUnavailable" in unknown[0][1]


def test_response_lost_after_acceptance_gives_exactly_one_order(
    ex: CcxtExchange, sim: BinanceSim, unknown: list[tuple[str, str]]
) -> None:
    sim.inject("drop", method="POST", path=ORDER)
    order = ex.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal("0.001"))
    assert order.status is OrderStatus.FILLED
    assert posts(sim) == 1 and sim.orders_created == 1
    assert [cid for cid, _ in unknown] == [order.client_id]
    assert "NetworkError" in unknown[0][1]


def test_timeout_after_acceptance_gives_exactly_one_order(
    ex: CcxtExchange, sim: BinanceSim, unknown: list[tuple[str, str]]
) -> None:
    sim.inject("late", delay=0.6, method="POST", path=ORDER)
    order = ex.create_order(BTC, Side.BUY, OrderType.LIMIT, Decimal("0.001"), Decimal(90000))
    assert order.status is OrderStatus.OPEN
    assert posts(sim) == 1 and sim.orders_created == 1
    assert len(unknown) == 1 and "RequestTimeout" in unknown[0][1]


def test_timeout_before_acceptance_sends_again_once(
    ex: CcxtExchange, sim: BinanceSim, unknown: list[tuple[str, str]]
) -> None:
    # the server is slow *before* handling: the look-up finds nothing, the order is sent again;
    # the late first request then hits Binance's duplicate-client-id refusal, never a 2nd order
    sim.inject("slow", delay=0.6, method="POST", path=ORDER)
    order = ex.create_order(BTC, Side.BUY, OrderType.LIMIT, Decimal("0.001"), Decimal(90000))
    assert order.status is OrderStatus.OPEN
    time.sleep(0.7)  # let the slow first request land
    assert sim.orders_created == 1
    assert len(unknown) == 1


def test_lookup_failing_leaves_the_outcome_unknown(
    make_exchange: ExchangeFactory, sim: BinanceSim, unknown: list[tuple[str, str]]
) -> None:
    exchange = make_exchange(max_attempts=3)
    exchange.load_markets()
    sim.inject("drop", method="POST", path=ORDER)
    sim.inject(status=503, body="Service Unavailable", method="GET", path=ORDER, times=10)
    with pytest.raises(OrderOutcomeUnknown) as info:
        exchange.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal("0.001"))
    assert posts(sim) == 1 and sim.orders_created == 1  # never re-sent blind
    assert info.value.client_id == unknown[0][0]


def test_insufficient_balance_is_not_retried(ex: CcxtExchange, sim: BinanceSim) -> None:
    with pytest.raises(InsufficientFunds):
        ex.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal(1))  # 95 000 USDT > 10 000
    assert posts(sim) == 1 and sim.orders_created == 0


def test_injected_2010_is_insufficient_funds(ex: CcxtExchange, sim: BinanceSim) -> None:
    body = {"code": -2010, "msg": "Account has insufficient balance for requested action."}
    sim.inject(status=400, body=body, method="POST", path=ORDER)
    with pytest.raises(InsufficientFunds, match="insufficient balance"):
        ex.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal("0.001"))
    assert posts(sim) == 1 and sim.orders_created == 0


def test_filter_failures_are_invalid_orders_with_the_reason(
    ex: CcxtExchange, sim: BinanceSim
) -> None:
    with pytest.raises(InvalidOrder) as info:  # 0.00002 * 90 000 = 1.8 USDT < 5
        ex.create_order(BTC, Side.BUY, OrderType.LIMIT, Decimal("0.00002"), Decimal(90000))
    assert "Filter failure: NOTIONAL" in info.value.reason
    sim.inject(status=400, body={"code": -1013, "msg": "Filter failure: LOT_SIZE"}, path=ORDER)
    with pytest.raises(InvalidOrder) as info:
        ex.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal("0.001"))
    assert "Filter failure: LOT_SIZE" in info.value.reason
    assert posts(sim) == 2 and sim.orders_created == 0


@pytest.mark.parametrize(
    ("status", "code", "msg", "error"),
    [
        (503, -1001, "Internal error; unable to process your request.", ExchangeUnavailable),
        (400, -1003, "Too many requests; current limit is 6000.", RateLimited),
        (400, -1121, "Invalid symbol.", InvalidOrder),
        (400, -1111, "Precision is over the maximum defined for this asset.", InvalidOrder),
        (400, -2010, "Order would immediately match and take.", InvalidOrder),
    ],
)
def test_binance_codes_map_to_our_errors(
    make_exchange: ExchangeFactory,
    sim: BinanceSim,
    status: int,
    code: int,
    msg: str,
    error: type[Exception],
) -> None:
    exchange = make_exchange(max_attempts=2)
    exchange.load_markets()
    sim.inject(status=status, body={"code": code, "msg": msg}, path="/api/v3/account", times=2)
    with pytest.raises(error) as info:
        exchange.get_balance("USDT")
    assert msg in str(info.value)
    retried = error in (ExchangeUnavailable, RateLimited)
    assert sim.count("GET", "/api/v3/account") == (2 if retried else 1)


def test_resending_our_own_client_id_returns_the_order_it_already_made(
    ex: CcxtExchange, sim: BinanceSim
) -> None:
    first = ex.create_order(
        BTC, Side.BUY, OrderType.LIMIT, Decimal("0.001"), Decimal(90000), {"client_id": "kobedup"}
    )
    again = ex.create_order(
        BTC, Side.BUY, OrderType.LIMIT, Decimal("0.001"), Decimal(90000), {"client_id": "kobedup"}
    )
    assert again.id == first.id  # Binance refused the duplicate; the adapter found the original
    assert sim.orders_created == 1


@pytest.mark.parametrize("which", ["key", "secret"])
def test_wrong_keys_are_an_authentication_error_and_no_order(
    make_exchange: ExchangeFactory,
    sim: BinanceSim,
    which: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "WRONG-" + ("K" if which == "key" else "S") * 24
    env = sim_env(sim, **{"BINANCE_KEY" if which == "key" else "BINANCE_SECRET": wrong})
    exchange = make_exchange(env)
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationError) as info:
        exchange.create_order(BTC, Side.BUY, OrderType.MARKET, Decimal("0.001"))
    assert ("-2015" if which == "key" else "-1022") in str(info.value)
    assert posts(sim) == 1 and sim.orders_created == 0
    for text in (str(info.value), repr(exchange), caplog.text):
        assert wrong not in text and API_SECRET not in text


def test_wrong_key_after_success_is_still_authentication(ex: CcxtExchange, sim: BinanceSim) -> None:
    assert ex.get_balance("USDT") == Decimal(10000)
    sim.api_key = "rotated"  # ccxt calls a -2015 after a success a temporary ban
    with pytest.raises(AuthenticationError):
        ex.get_balance("USDT")
    assert sim.count("GET", "/api/v3/account") == 2


# ---------------------------------------------------------------------------------------------
# Cancels


def _resting(ex: CcxtExchange) -> Order:
    return ex.create_order(BTC, Side.BUY, OrderType.LIMIT, Decimal("0.001"), Decimal(90000))


def test_cancel(ex: CcxtExchange, sim: BinanceSim) -> None:
    order = _resting(ex)
    assert ex.get_balance("USDT") == Decimal(10000) - Decimal(90)
    cancelled = ex.cancel_order(order.id, BTC)
    assert cancelled.status is OrderStatus.CANCELED
    assert ex.get_balance("USDT") == Decimal(10000)
    with pytest.raises(OrderNotFound, match="already canceled"):
        ex.cancel_order(order.id, BTC)


def test_cancel_by_client_id(ex: CcxtExchange) -> None:
    order = _resting(ex)
    assert ex.cancel_order(order.client_id, BTC).status is OrderStatus.CANCELED


def test_cancel_a_filled_order_says_so(ex: CcxtExchange, sim: BinanceSim) -> None:
    order = _resting(ex)
    sim.fill(int(order.id))
    with pytest.raises(OrderNotFound, match="already filled"):
        ex.cancel_order(order.id, BTC)


def test_cancel_an_unknown_order_says_so(ex: CcxtExchange) -> None:
    with pytest.raises(OrderNotFound, match="no order 424242"):
        ex.cancel_order("424242", BTC)


def test_cancel_answer_lost_is_reported_cancelled(ex: CcxtExchange, sim: BinanceSim) -> None:
    order = _resting(ex)
    sim.inject("drop", method="DELETE", path=ORDER)
    cancelled = ex.cancel_order(order.id, BTC)
    assert cancelled.status is OrderStatus.CANCELED
    assert sim.count("DELETE", ORDER) == 2


# ---------------------------------------------------------------------------------------------
# kobe keys --ping


def test_keys_ping_in_paper_needs_no_network(cli: CliRunner) -> None:
    result = cli("keys", "--ping")
    assert result.code == 0
    assert "paper: no network" in result.out


def test_keys_ping_paper_does_not_import_ccxt() -> None:
    code = (
        "import sys, io; from engine.cli import main; "
        "main(['keys', '--ping'], env={}, out=io.StringIO()); print('ccxt' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_keys_ping_testnet_reaches_the_time_endpoint(cli: CliRunner, sim: BinanceSim) -> None:
    result = cli("keys", "--ping", env=sim_env(sim))
    assert result.code == 0, result.err
    assert "time endpoint answered" in result.out
    # the time endpoint, then the key's restrictions (may it withdraw?): nothing else
    assert sim.requests == [("GET", "/api/v3/time"), ("GET", "/sapi/v1/account/apiRestrictions")]
    assert "may withdraw" not in result.out
    result = cli("keys", "--ping", "--json", env=sim_env(sim))
    assert json.loads(result.out)["ping"]["ok"] is True


def test_keys_ping_testnet_without_testnet_keys_is_refused(cli: CliRunner, sim: BinanceSim) -> None:
    env = sim_env(sim)
    del env["BINANCE_TESTNET"], env["BINANCE_SECRET"]
    result = cli("keys", "--ping", env=env)
    assert result.code == 1
    assert "BINANCE_TESTNET is not 1" in result.err
    assert "BINANCE_SECRET" in result.err
    assert sim.requests == []


def test_keys_ping_failure_exits_1(cli: CliRunner, sim: BinanceSim) -> None:
    sim.inject(status=503, body="Service Unavailable", path="/api/v3/time", times=5)
    result = cli("keys", "--ping", env=sim_env(sim))
    assert result.code == 1
    assert "ping failed" in result.out


def test_secret_type_is_what_reaches_ccxt() -> None:
    key, secret = Secret("k" * 16), Secret("s" * 16)
    exchange = CcxtExchange("binance", api_key=key, secret=secret)
    assert exchange.ccxt.apiKey == "k" * 16 and exchange.ccxt.secret == "s" * 16
    assert "s" * 16 not in repr(exchange)


def test_ccxt_never_changes_the_engines_decimal_context(ex: CcxtExchange) -> None:
    """ccxt's precision helpers set ROUND_HALF_UP and trap Underflow on the thread's context;
    the adapter keeps that inside a local context, so the engine's arithmetic is unchanged."""
    import decimal

    before = decimal.getcontext().copy()
    ex.amount_to_precision("BTC/USDT", Decimal("0.123456789"))
    ex.price_to_precision("BTC/USDT", Decimal("95000.129"))
    ex.fetch_ticker("BTC/USDT")
    after = decimal.getcontext()
    assert after.rounding == before.rounding == decimal.ROUND_HALF_EVEN
    assert after.traps == before.traps
    assert after.prec == before.prec
