"""Router benchmark: proposals per second through validate, size, paper placement and journal.

Three runs in the same process, on the same paper exchange setup, once with the paper account
in memory (the router's own cost shows) and once persisted as in real use:
  baseline   PaperExchange.create_order alone (no validation, no sizing, no journal)
  router     Router.submit: validate, size, place on the paper exchange, journal (no fsync)
  router+fsync   the same with every intent fsynced before the order is sent (the default)
Each prints proposals per second and per-proposal latency p50 / p99.

    python bench/router.py [--n 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from engine.config import KobeConfig, PaperConfig
from engine.exchange.base import OrderType, Side
from engine.exchange.paper import PaperExchange
from engine.exchange.prices import ManualPrices
from engine.journal import OrderJournal
from engine.proposal import Proposal, Sizing, Source
from engine.risk import RiskEngine
from engine.router import Router, StaticWallets


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def exchange(tmp: Path, clock: Clock, persist: bool) -> PaperExchange:
    cfg = PaperConfig(balances={"USDT": Decimal(10**9)})
    prices = ManualPrices({"BTC/USDT": Decimal(95000)}, start=clock.now)
    return PaperExchange(cfg, tmp if persist else None, clock=clock, prices=prices)


def summary(name: str, lat: list[float]) -> str:
    lat_sorted = sorted(lat)
    p50 = statistics.median(lat_sorted) * 1e3
    p99 = lat_sorted[int(len(lat_sorted) * 0.99) - 1] * 1e3
    rate = len(lat) / sum(lat)
    return f"{name:<14} {rate:10.0f} /s   p50 {p50:7.3f} ms   p99 {p99:7.3f} ms"


def run_baseline(n: int, persist: bool) -> list[float]:
    with tempfile.TemporaryDirectory() as d:
        clock = Clock()
        ex = exchange(Path(d), clock, persist)
        lat = []
        for i in range(n):
            t = time.perf_counter()
            ex.create_order(
                "BTC/USDT",
                Side.BUY,
                OrderType.MARKET,
                Decimal("0.00015"),
                None,
                {"client_id": f"b{i}"},
            )
            lat.append(time.perf_counter() - t)
        return lat


def run_router(n: int, fsync: bool, persist: bool) -> list[float]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clock = Clock()
        ex = exchange(tmp, clock, persist)
        # the risk engine's first start writes its state, as in a real session: without it, the
        # journal's first order is history with no risk state, and the switch trips (state lost)
        RiskEngine(tmp, KobeConfig().risk, clock).close()
        router = Router(
            ex,
            OrderJournal(tmp, fsync_intents=fsync),
            data_dir=tmp,
            mode="paper",
            exchange_name="binance",
            risk=KobeConfig().risk,
            wallets=StaticWallets({"cex_binance": Decimal(10**6)}),
            clock=clock,
            maker_fee_pct=Decimal("0.1"),
            taker_fee_pct=Decimal("0.1"),
        )
        proposal = Proposal(
            symbol="BTC/USDT",
            side=Side.BUY,
            entry_type=OrderType.MARKET,
            sizing=Sizing.QUOTE,
            amount=Decimal(15),
            wallet="cex_binance",
            source=Source.STRATEGY,
        )
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            router.submit(proposal)
            lat.append(time.perf_counter() - t)
        return lat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    print(f"{args.n} proposals each (market buys of 15 USDT on BTC/USDT, paper exchange)")
    for persist in (False, True):
        where = "paper state on disk (atomic write per order)" if persist else "paper in memory"
        print(f"-- {where}")
        print(summary("baseline", run_baseline(args.n, persist)))
        print(summary("router", run_router(args.n, fsync=False, persist=persist)))
        print(summary("router+fsync", run_router(args.n, fsync=True, persist=persist)))


if __name__ == "__main__":
    main()
