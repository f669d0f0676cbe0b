"""Testnet and live: positions are marked to market with the exchange's ticker, one read per held
symbol a tick; a position without this tick's price adds nothing to equity and an alert names it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.agent import build_agent
from engine.exchange.base import OrderType, Side
from engine.modes import resolve_settings
from engine.proposal import Proposal, Sizing, Source
from engine.runtime import EngineEvent, Runtime, SimClock
from tests import binance_sim
from tests.test_request_budget import FINANCE

TICKER = "/api/v3/ticker/24hr"


@pytest.fixture
def engine(workdir: Path) -> Iterator[tuple[Any, Runtime, SimClock, list[EngineEvent]]]:
    (workdir / "kobe.toml").write_text(FINANCE)
    with binance_sim.BinanceSim() as sim:
        env = {
            "KOBE_MODE": "testnet",
            "EXCHANGE": "binance",
            "KOBE_EXCHANGE_URL": sim.url,
            "BINANCE_KEY": binance_sim.API_KEY,
            "BINANCE_SECRET": binance_sim.API_SECRET,
            "BINANCE_TESTNET": "1",
        }
        clock = SimClock(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
        runtime = Runtime(
            resolve_settings(env, workdir), clock=clock, tick_seconds=5, agent_factory=build_agent
        )
        events: list[EngineEvent] = []
        runtime.subscribe(events.append)
        runtime.build()
        try:
            yield sim, runtime, clock, events
        finally:
            runtime.close()


def _last(events: list[EngineEvent], kind: str) -> Any:
    return [e.payload for e in events if e.kind == kind][-1]


def test_a_held_position_is_marked_with_one_ticker_a_tick_and_unmarked_when_it_fails(
    engine: tuple[Any, Runtime, SimClock, list[EngineEvent]],
) -> None:
    sim, runtime, clock, events = engine
    runtime.tick()  # markets, clock: loaded once
    symbols = list(runtime.settings.config.symbols)
    assert sim.count("GET", TICKER) == len(symbols)  # nothing held: the price strip's reads
    runtime.submit(
        Proposal(
            symbol="ETH/USDT",
            side=Side.BUY,
            entry_type=OrderType.MARKET,
            sizing=Sizing.QUOTE,
            amount=Decimal(20),
            wallet="cex_binance",
            source=Source.COCKPIT,
            stop_loss=Decimal(3000),
            take_profit=Decimal(4000),
        )
    )
    [pos] = [p for p in runtime.positions() if p.venue == "binance"]
    assert pos.entry_price is not None
    sim.set_price("ETHUSDT", Decimal(3600))
    before = sim.count("GET", TICKER)
    clock.advance(60)
    runtime.tick()
    # one read for the one held symbol, and the strip's others (due: 60 s > 30 s)
    assert sim.count("GET", TICKER) == before + len(symbols)
    before = sim.count("GET", TICKER)
    clock.advance(5)
    runtime.tick()
    assert sim.count("GET", TICKER) == before + 1  # the held symbol, each tick
    assert _last(events, "prices")["ETH/USDT"] == Decimal(3600)
    wallets = _last(events, "wallets")
    ledger = runtime.wallets.snapshot()
    # what selling at the mark would bring, less what was paid for it, its entry fee too (paid
    # already: equity never drops by it at the close)
    assert pos.entry_fee > 0
    unrealized = Decimal(3600) * pos.qty - (pos.qty * pos.entry_price + pos.entry_fee)
    assert unrealized > 0
    assert wallets.equity_total_usd == ledger.equity_total_usd + unrealized
    assert "unmarked" not in {a.code for a in wallets.alerts}

    # the ticker fails (not a network error: no retry): no price this tick, none guessed, and
    # the price strip does not read it again (its price would show as the mark)
    before = sim.count("GET", TICKER)
    sim.inject(
        status=400, body={"code": -1121, "msg": "Invalid symbol."}, path=TICKER, query="ETHUSDT"
    )
    clock.advance(60)
    runtime.tick()
    assert "ETH/USDT" not in _last(events, "prices")
    # ETH for the mark (refused), ETH for the watchdog's guard, the strip's two others: never
    # ETH for the strip
    assert sim.count("GET", TICKER) == before + 4
    wallets = _last(events, "wallets")
    # what it holds at its entry price: no gain guessed, its fee paid still counted (leaving it
    # out made equity jump by it, and by what its exits sold, whenever a ticker failed)
    paid = pos.unrealized(pos.entry_price)
    assert paid == -pos.entry_fee < 0
    assert wallets.equity_total_usd == runtime.wallets.snapshot().equity_total_usd + paid
    [alert] = [a for a in wallets.alerts if a.code == "unmarked"]
    assert alert.severity == "warning"
    assert alert.message == (
        "no price for ETH/USDT since 09:31: equity counts it at the entry price (no gain or "
        "loss guessed)"
    )


def test_the_price_strip_reads_each_configured_symbol_at_most_every_30_s(
    engine: tuple[Any, Runtime, SimClock, list[EngineEvent]],
) -> None:
    """Testnet and live: the strip showed nothing until a position was held (tickers were read
    for held symbols only); now each configured symbol is priced every 30 s at most."""
    sim, runtime, clock, events = engine
    symbols = list(runtime.settings.config.symbols)
    sim.set_price("BTCUSDT", Decimal(95000))
    runtime.tick()
    assert sim.count("GET", TICKER) == len(symbols)
    assert set(symbols) <= set(_last(events, "prices"))
    assert _last(events, "prices")["BTC/USDT"] == Decimal(95000)
    assert runtime.positions() == []  # no mark: no position, nothing in equity
    for _ in range(5):  # 25 s: nothing new to read
        clock.advance(5)
        runtime.tick()
    assert sim.count("GET", TICKER) == len(symbols)
    assert _last(events, "prices")["BTC/USDT"] == Decimal(95000)  # the last price read
    sim.set_price("BTCUSDT", Decimal(96000))
    clock.advance(5)
    runtime.tick()
    assert sim.count("GET", TICKER) == 2 * len(symbols)
    assert _last(events, "prices")["BTC/USDT"] == Decimal(96000)


def test_a_strip_price_that_could_not_be_read_is_never_sent_as_current(
    engine: tuple[Any, Runtime, SimClock, list[EngineEvent]],
) -> None:
    """Testnet and live, with the exchange failing: a configured symbol with no position kept
    its last price in the strip as if it were live (held ones already showed none). Now a
    failed read leaves it with no price until its next read, 30 s later, and a venue that
    fails drops them all until it answers again."""
    sim, runtime, clock, events = engine
    sim.set_price("BTCUSDT", Decimal(95000))
    runtime.tick()
    assert _last(events, "prices")["BTC/USDT"] == Decimal(95000)
    symbols = list(runtime.settings.config.symbols)
    sim.inject(
        status=400, body={"code": -1121, "msg": "Invalid symbol."}, path=TICKER, query="BTCUSDT"
    )
    clock.advance(30)
    runtime.tick()
    assert "BTC/USDT" not in _last(events, "prices")
    assert set(symbols) - {"BTC/USDT"} <= set(_last(events, "prices"))
    before = sim.count("GET", TICKER)
    clock.advance(5)
    runtime.tick()
    assert "BTC/USDT" not in _last(events, "prices")
    assert sim.count("GET", TICKER) == before  # read again 30 s after the failed read
    clock.advance(25)
    runtime.tick()
    assert _last(events, "prices")["BTC/USDT"] == Decimal(95000)
    # the exchange fails (the key refused: no retry): no strip price is current any more
    sim.inject(status=401, body={"code": -2015, "msg": "Invalid API-key."}, path="/api/v3/time")
    clock.advance(5)
    runtime.tick()
    assert not set(symbols) & set(_last(events, "prices"))
    before = sim.count("GET", TICKER)
    clock.advance(5)
    runtime.tick()  # it answers again: each symbol is read at once, not 30 s later
    assert sim.count("GET", TICKER) == before + len(symbols)
    assert set(symbols) <= set(_last(events, "prices"))


def test_a_stop_ends_a_retry_pause_at_once_when_the_exchange_is_down(
    engine: tuple[Any, Runtime, SimClock, list[EngineEvent]],
) -> None:
    """Quitting the cockpit with the exchange down took 4 s: the engine slept in a retry's
    backoff. A stop now ends the pause at once, and the engine stops (not in error)."""
    import threading
    import time

    sim, runtime, _, _ = engine
    runtime.tick()
    sim.inject(status=503, body="Service Unavailable", times=1000)  # down: retried, backoff
    thread = threading.Thread(target=runtime.run_forever, daemon=True)
    thread.start()
    time.sleep(1.5)  # the first tick is in its retries (0.5 s, 1 s, 2 s ... apart)
    assert thread.is_alive()
    asked = time.monotonic()
    runtime.request_stop()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - asked < 0.5
    assert runtime.status().state.value == "stopped"
