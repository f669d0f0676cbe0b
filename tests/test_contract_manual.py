"""Manual contract tests against the exchanges' real testnets. Skipped unless asked for.

Run them by hand, never in CI:

    KOBE_CONTRACT_TESTS=1 BINANCE_KEY=... BINANCE_SECRET=... BINANCE_TESTNET=1 \\
        .venv/bin/pytest -m contract tests/test_contract_manual.py

Each exchange runs only when its testnet keys are set and marked (``<EX>_TESTNET=1``; OKX also
needs ``OKX_PASSWORD``); keys may also come from ``./.env``. They place one small limit buy far below the market and cancel it.
"""

from __future__ import annotations

import os
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
