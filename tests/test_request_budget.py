"""The engine's polling stays within each exchange's documented request budget.

A testnet engine (the real ccxt, the real Runtime with its strategies) runs against each exchange's
simulator with a resting entry carrying TP/SL, a filled entry with exits and a plain resting order
open, and the simulator counts every request each tick makes (every reader: open orders, fill
look-ups, tickers, exit confirmations, balances). Priced with engine/exchange/budget.py, the one
table of documented limits (README.md's "Request budget" shows the same rows): at the default
5 s tick under 10 % of each budget, at a 1 s tick under 25 %.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.agent import build_agent
from engine.exchange.base import OrderType, Side
from engine.exchange.budget import REQUEST_BUDGET, usage
from engine.modes import resolve_settings
from engine.proposal import Proposal, Sizing, Source
from engine.runtime import Runtime
from tests import binance_sim, bybit_sim, okx_sim
from tests.conftest import ROOT

DEFAULT_TICK_S = 5  # `kobe run` and the cockpit tick every 5 s unless told otherwise

# A bigger book than the shipped one, so three orders above every exchange's minimum fit.
FINANCE = """
[finance]
capital_usd = 1000
wallets = [
  { id = "sniper_sol",  chain = "solana",   role = "trading", allocation_usd = 50 },
  { id = "copy_sol",    chain = "solana",   role = "trading", allocation_usd = 50 },
  { id = "cex_binance", chain = "binance",  role = "trading", allocation_usd = 200 },
  { id = "cex_bybit",   chain = "bybit",    role = "trading", allocation_usd = 200 },
  { id = "cex_okx",     chain = "okx",      role = "trading", allocation_usd = 200 },
  { id = "fees_sol",    chain = "solana",   role = "fees",    allocation_usd = 60 },
  { id = "buffer",      chain = "offchain", role = "buffer",  allocation_usd = 60 },
  { id = "profits",     chain = "offchain", role = "profits", allocation_usd = 60 },
  { id = "vault",       chain = "offchain", role = "vault",   allocation_usd = 60 },
  { id = "reserve",     chain = "offchain", role = "reserve", allocation_usd = 60 },
]
[finance.risk_wallets]
sniper_sol = { max_usd = 60 }
copy_sol = { max_usd = 60 }
cex_binance = { max_usd = 300 }
cex_bybit = { max_usd = 300 }
cex_okx = { max_usd = 300 }
"""

SIMS: dict[str, tuple[Any, dict[str, str], str]] = {
    "binance": (
        binance_sim.BinanceSim,
        {
            "BINANCE_KEY": binance_sim.API_KEY,
            "BINANCE_SECRET": binance_sim.API_SECRET,
            "BINANCE_TESTNET": "1",
        },
        "BTCUSDT",
    ),
    "bybit": (
        bybit_sim.BybitSim,
        {
            "BYBIT_KEY": bybit_sim.API_KEY,
            "BYBIT_SECRET": bybit_sim.API_SECRET,
            "BYBIT_TESTNET": "1",
        },
        "BTCUSDT",
    ),
    "okx": (
        okx_sim.OkxSim,
        {
            "OKX_KEY": okx_sim.API_KEY,
            "OKX_SECRET": okx_sim.API_SECRET,
            "OKX_PASSWORD": okx_sim.PASSPHRASE,
            "OKX_TESTNET": "1",
        },
        "BTC-USDT",
    ),
}


def _qualifier(exchange: str, path: str, query: str) -> str:
    """Binance weighs some calls by whether they name a symbol."""
    key = ("binance", f"GET {path}", "symbol")
    if exchange == "binance" and key in REQUEST_BUDGET:
        return "symbol" if "symbol=" in query else "all"
    return ""


@pytest.fixture(params=sorted(SIMS))
def engine(request: pytest.FixtureRequest, workdir: Path) -> Iterator[tuple[str, Any, Runtime]]:
    name = request.param
    make, keys, _ = SIMS[name]
    (workdir / "kobe.toml").write_text(FINANCE)
    with make() as sim:
        env = {"KOBE_MODE": "testnet", "EXCHANGE": name, "KOBE_EXCHANGE_URL": sim.url, **keys}
        runtime = Runtime(
            resolve_settings(env, workdir), tick_seconds=DEFAULT_TICK_S, agent_factory=build_agent
        )
        runtime.build()
        try:
            yield name, sim, runtime
        finally:
            runtime.close()


def _propose(name: str, symbol: str, entry: OrderType, **kw: Any) -> Proposal:
    return Proposal(
        symbol=symbol,
        side=Side.BUY,
        entry_type=entry,
        sizing=Sizing.QUOTE,
        amount=Decimal(20),
        wallet=f"cex_{name}",
        source=Source.COCKPIT,
        **kw,
    )


def test_polling_per_tick_stays_within_each_exchange_budget(
    engine: tuple[str, Any, Runtime],
) -> None:
    name, sim, runtime = engine
    runtime.tick()  # markets, clocks: loaded once
    exits = {"stop_loss": Decimal(85000), "take_profit": Decimal(100000)}
    # a resting entry whose exits wait for its fill, a filled entry with exits, a plain order
    runtime.submit(_propose(name, "BTC/USDT", OrderType.LIMIT, price=Decimal(90000), **exits))
    filled_exits = {"stop_loss": Decimal(3000), "take_profit": Decimal(4000)}
    if name == "bybit":  # Bybit: TP/SL on limit entries; this one is marketable
        eth = _propose(name, "ETH/USDT", OrderType.LIMIT, price=Decimal(3500), **filled_exits)
    else:
        eth = _propose(name, "ETH/USDT", OrderType.MARKET, **filled_exits)
    runtime.submit(eth)
    runtime.submit(_propose(name, "SOL/USDT", OrderType.LIMIT, price=Decimal(150)))
    runtime.tick()
    assert len(runtime.open_orders()) >= 2
    mark = len(sim.requests)
    ticks = 3
    for _ in range(ticks):
        runtime.tick()
    seen = [
        (method, path, _qualifier(name, path, query))
        for (method, path), query in zip(sim.requests[mark:], sim.queries[mark:], strict=True)
    ]
    assert seen, "the engine asks the exchange about its open orders each tick"
    assert ("GET", "/api/v3/openOrders", "all") not in seen  # weight 80: never per tick
    default = usage(name, seen, ticks * DEFAULT_TICK_S)
    fast = usage(name, seen, ticks * 1)
    assert max(default.values()) < 0.10, default
    assert max(fast.values()) < 0.25, fast


def test_readme_shows_the_budget_table_of_the_code() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Request budget", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(
        r"^\| (\w+) \| `(\w+ [^`]+)`(?: \((\w+)\))? \| (\d+) \| (\d+) / (\d+) s \|", section, re.M
    )
    table = {
        (exchange, endpoint, qualifier or ""): (int(cost), int(limit), int(window))
        for exchange, endpoint, qualifier, cost, limit, window in rows
    }
    code = {key: (v.cost, v.limit, v.window_s) for key, v in REQUEST_BUDGET.items()}
    assert table == code


def test_the_account_balances_are_one_request(engine: tuple[str, Any, Runtime]) -> None:
    """The cockpit's wallets pane reads the account's balances every minute (the quote asset and
    each symbol's base): one balance request, not one per asset (4 on the shipped config, each
    a 20-weight ``GET /api/v3/account`` on Binance), all under the engine's lock."""
    _, sim, runtime = engine
    runtime.tick()  # markets, clocks: loaded once
    runtime.exchange_balances()  # and ccxt's own first look-ups (Bybit: the account's kind)
    mark = len(sim.requests)
    balances = runtime.exchange_balances()
    assert set(balances) == {"USDT", "BTC", "ETH", "SOL"}
    assert len(sim.requests[mark:]) == 1, sim.requests[mark:]
