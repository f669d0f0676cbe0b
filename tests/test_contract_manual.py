"""Manual contract tests against the exchanges' real testnets. Skipped unless asked for.

Run them by hand, never in CI:

    KOBE_CONTRACT_TESTS=1 BINANCE_KEY=... BINANCE_SECRET=... BINANCE_TESTNET=1 \\
        .venv/bin/pytest -m contract tests/test_contract_manual.py

Each exchange runs only when its testnet keys are set and marked (``<EX>_TESTNET=1``; OKX also
needs ``OKX_PASSWORD``); keys may also come from ``./.env``. They place one small limit buy far below the market and cancel it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from engine.exchange.base import OrderNotFound, OrderStatus, OrderType, Side
from engine.exchange.ccxt_exchange import CcxtExchange
from engine.exchange.retry import RetryPolicy
from engine.modes import resolve_settings
from engine.money import ceil_to_step
from engine.secrets import EXCHANGE_KEY_VARS, load_env

pytestmark = pytest.mark.contract

SYMBOL = "BTC/USDT"


def _ready(env: dict[str, str], exchange: str) -> str | None:
    """Why the tests for ``exchange`` cannot run, or None when they can."""
    if os.environ.get("KOBE_CONTRACT_TESTS") != "1":
        return "manual contract tests: set KOBE_CONTRACT_TESTS=1 and testnet keys"
    missing = [n for n in EXCHANGE_KEY_VARS[exchange] if not env.get(n)]
    if missing:
        return f"{exchange}: testnet keys missing ({', '.join(missing)})"
    if env.get(f"{exchange.upper()}_TESTNET") != "1":
        return f"{exchange}: {exchange.upper()}_TESTNET is not 1"
    return None


@pytest.fixture(params=["binance", "bybit", "okx"])
def testnet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CcxtExchange]:
    name: str = request.param
    env = load_env(Path.cwd())  # the environment over ./.env, like kobe itself
    why = _ready(env, name)
    if why is not None:
        pytest.skip(why)
    env.pop("KOBE_EXCHANGE_URL", None)  # the real testnet, not a simulator
    env.update({"KOBE_MODE": "testnet", "EXCHANGE": name})
    settings = resolve_settings(env, tmp_path)
    exchange = CcxtExchange.from_settings(
        settings, confirmed=False, retry=RetryPolicy(max_attempts=3, max_total_s=20.0)
    )
    yield exchange
    exchange.close()


def test_ping_markets_ticker_balance(testnet: CcxtExchange) -> None:
    assert testnet.ping() > 0
    rules = testnet.market(SYMBOL)
    assert rules.tick_size > 0 and rules.step_size > 0
    ticker = testnet.fetch_ticker(SYMBOL)
    assert ticker.last > 0
    assert testnet.get_balance("USDT") >= 0


def test_limit_order_far_from_the_market_then_cancel(testnet: CcxtExchange) -> None:
    rules = testnet.market(SYMBOL)
    price = testnet.price_to_precision(SYMBOL, testnet.fetch_ticker(SYMBOL).last * Decimal("0.6"))
    notional = max(rules.min_notional, Decimal(5)) * 2
    qty = testnet.amount_to_precision(
        SYMBOL, max(ceil_to_step(notional / price, rules.step_size), rules.min_qty)
    )
    order = testnet.create_order(SYMBOL, Side.BUY, OrderType.LIMIT, qty, price)
    try:
        assert order.status in (OrderStatus.OPEN, OrderStatus.UNKNOWN)
        found = testnet.fetch_order_by_client_id(order.client_id, SYMBOL)
        assert found is not None and found.id == order.id
        assert order.id in {o.id for o in testnet.fetch_open_orders(SYMBOL)}
    finally:
        cancelled = testnet.cancel_order(order.id, SYMBOL)
    assert cancelled.status is OrderStatus.CANCELED
    with pytest.raises(OrderNotFound):
        testnet.cancel_order(order.id, SYMBOL)


def test_attached_tp_sl_are_found_by_the_entry_ids(testnet: CcxtExchange) -> None:
    """Bybit and OKX: the TP/SL attached to a filled entry are listed under the entry's ids
    (Bybit ``parentOrderLinkId``, OKX ``attachAlgoId``), the link Kobe books their fire by;
    the simulators assume it, this proves it on the real testnet. Cleans up after itself:
    the legs are cancelled and what was bought is sold back."""
    if not testnet.capabilities(SYMBOL).attached_tp_sl:
        pytest.skip(f"{testnet.name}: exits are a native OCO there, nothing is attached")
    rules = testnet.market(SYMBOL)
    last = testnet.fetch_ticker(SYMBOL).last
    price = testnet.price_to_precision(SYMBOL, last * Decimal("1.01"))  # marketable
    qty = testnet.amount_to_precision(
        SYMBOL, max(ceil_to_step(max(rules.min_notional, Decimal(5)) * 2 / price, rules.step_size),
                    rules.min_qty),
    )  # fmt: skip
    tp = testnet.price_to_precision(SYMBOL, last * Decimal("1.5"))
    sl = testnet.price_to_precision(SYMBOL, last * Decimal("0.5"))
    entry = testnet.create_order(
        SYMBOL, Side.BUY, OrderType.LIMIT, qty, price, {"take_profit": tp, "stop_loss": sl}
    )
    legs = []
    try:
        for _ in range(20):  # the exchange arms them once the entry has filled
            legs = testnet.fetch_attached_exits(SYMBOL, entry.id, entry.client_id)
            if len(legs) == 2:
                break
            time.sleep(0.5)
        assert {leg.client_id for leg in legs} == {f"{entry.client_id}tp", f"{entry.client_id}sl"}
        assert all(leg.status.is_open for leg in legs)
        assert {leg.client_id[-2:]: leg.stop_price for leg in legs} == {"tp": tp, "sl": sl}
    finally:
        if legs:
            testnet.cancel_attached_exits(SYMBOL, entry.id, entry.client_id)
        held = testnet.amount_to_precision(SYMBOL, testnet.get_balance(rules.base))
        if held >= rules.min_qty:
            testnet.create_order(SYMBOL, Side.SELL, OrderType.MARKET, min(held, qty), None)
