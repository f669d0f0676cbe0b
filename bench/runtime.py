"""Runtime benchmark: a headless paper session with both strategies, and memory over history.

1. Speed: ticks per second and signals per second of ``Runtime`` on a simulated clock with the
   shipped config (both strategies on), against the same runtime with no strategy (the engine's
   own cost per tick: venues, wallet flows, snapshot, risk) measured in the same run.
2. Memory: Python heap (tracemalloc) after a quarter, half and all of ``--trades`` closed trades
   pushed through the whole order path (router, paper exchange in memory, journal, execution
   engine, trade store, wallet manager, risk engine). Flat means nothing grows with history
   (once the bounded memories are full: the router's finished orders fill in about 5 000 trades).

    python bench/runtime.py [--ticks 2000] [--trades 100000]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from engine.agent import build_agent
from engine.audit import AuditLog
from engine.config import KobeConfig, PaperConfig, RiskConfig
from engine.exchange.base import OrderType, Side
from engine.exchange.paper import PaperExchange
from engine.exchange.prices import ManualPrices
from engine.execution import ExecutionEngine
from engine.journal import OrderJournal
from engine.modes import resolve_settings
from engine.proposal import Proposal, Sizing, Source
from engine.risk import RiskEngine
from engine.router import Router, StaticWallets
from engine.runtime import EngineEvent, Runtime, SimClock
from engine.trades import TradeStore
from engine.wallets.runtime import WalletManager


def session(ticks: int, with_strategies: bool) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as d:
        settings = resolve_settings({}, Path(d))
        if not with_strategies:
            st = settings.config.strategies
            st = st.model_copy(
                update={
                    "memecoin_farming": st.memecoin_farming.model_copy(update={"enabled": False}),
                    "copy_trading": st.copy_trading.model_copy(update={"enabled": False}),
                }
            )
            cfg = settings.config.model_copy(update={"strategies": st})
            settings = dataclasses.replace(settings, config=cfg)
        clock = SimClock(settings.config.paper.sim_start)
        runtime = Runtime(settings, clock=clock, agent_factory=build_agent)
        orders = [0]

        def count(e: EngineEvent) -> None:
            if e.kind == "order" and e.payload.event == "intent":
                orders[0] += 1

        runtime.subscribe(count)
        runtime.build()
        t = time.perf_counter()
        for _ in range(ticks):
            clock.advance(60)
            runtime.tick()
        elapsed = time.perf_counter() - t
        signals = 0
        if runtime.agent is not None:
            signals = sum(int(v["signals"]) for v in runtime.agent.status().values())
        runtime.stop()
        return elapsed, signals, orders[0]


def history(trades: int, marks: tuple[int, ...]) -> list[tuple[int, float, float]]:
    out: list[tuple[int, float, float]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        now = [datetime(2026, 1, 1, tzinfo=UTC)]

        def clock() -> datetime:
            return now[0]

        prices = ManualPrices({"BTC/USDT": Decimal(95000)}, start=now[0])
        ex = PaperExchange(
            PaperConfig(balances={"USDT": Decimal(10**12)}, slippage_bps=Decimal(0)),
            None,
            clock=clock,
            prices=prices,
        )
        risk_cfg = RiskConfig(
            max_losing_streak=10_000,  # the most the config takes; these trades win anyway
            max_daily_loss_usd=Decimal(0),
            min_operational_capital_usd=Decimal(0),
            max_drawdown_pct=Decimal(100),
            warning_drawdown_pct=Decimal(99),
        )
        audit = AuditLog(tmp, clock)
        risk = RiskEngine(tmp, risk_cfg, clock, audit=audit)
        router = Router(
            ex,
            OrderJournal(tmp, fsync_intents=False),
            data_dir=tmp,
            mode="paper",
            exchange_name="binance",
            risk=risk_cfg,
            wallets=StaticWallets({"cex_binance": Decimal(10**9)}),
            clock=clock,
            maker_fee_pct=Decimal("0.1"),
            taker_fee_pct=Decimal("0.1"),
            kill_switch=risk.kill_switch,
        )
        wallets = WalletManager.from_config(KobeConfig(), tmp, clock=clock)
        execution = ExecutionEngine(
            {"binance": router},
            risk,
            TradeStore(tmp),
            data_dir=tmp,
            clock=clock,
            venue_of_wallet=lambda w: "binance",
            wallets=wallets,
        )
        proposal = Proposal(
            symbol="BTC/USDT",
            side=Side.BUY,
            entry_type=OrderType.MARKET,
            sizing=Sizing.QUOTE,
            amount=Decimal(15),
            wallet="cex_binance",
            source=Source.STRATEGY,
            strategy="bench",
        )
        tracemalloc.start()
        t = time.perf_counter()
        for i in range(1, trades + 1):
            now[0] += timedelta(seconds=1)
            prices.set("BTC/USDT", Decimal(95000))
            ex.advance(now[0])  # as the runtime does every tick (finished orders are trimmed)
            placed = execution.submit(proposal)
            now[0] += timedelta(seconds=1)
            prices.set("BTC/USDT", Decimal(95300))  # a small win: the wallets stay funded
            ex.advance(now[0])
            execution.close_position(placed.entry.client_id, "bench")
            if i % 1000 == 0:
                wallets.on_tick(now[0])
            if i in marks:
                current, _ = tracemalloc.get_traced_memory()
                out.append((i, current / 2**20, time.perf_counter() - t))
        tracemalloc.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=2000)
    parser.add_argument("--trades", type=int, default=100_000)
    args = parser.parse_args()
    base, _, _ = session(args.ticks, with_strategies=False)
    full, signals, orders = session(args.ticks, with_strategies=True)
    print(f"headless paper session, {args.ticks} ticks of 60 s simulated time")
    print(f"  baseline (no strategy):  {args.ticks / base:8.0f} ticks/s")
    print(
        f"  both strategies:         {args.ticks / full:8.0f} ticks/s, "
        f"{signals / full:6.0f} signals/s ({signals} signals, {orders} orders sent)"
    )
    marks = tuple(m for m in (args.trades // 4, args.trades // 2, args.trades) if m)
    print(f"memory over history ({args.trades} closed trades through the whole order path)")
    for n, mib, elapsed in history(args.trades, marks):
        print(f"  after {n:>7} trades: heap {mib:7.2f} MiB  ({n / elapsed:6.0f} trades/s)")


if __name__ == "__main__":
    main()
