"""Wallets benchmark: closed trades applied per second, with the snapshot written every tick.

Each variant books the same seeded stream of closed trades (with PnL and fees, over the five
trading wallets of LIVE_150) on a fresh data dir, with a tick every ``--per-tick`` trades:

- ``on_tick`` (the runtime path): every trade journaled (one write, flushed) and applied; every
  tick runs the rules that are due and writes ``wallets_runtime.json`` atomically (temp file,
  fsync, rename, fsync of the directory);
- ``run_periodic_tasks`` (baseline, same run): the same, without the snapshot write;
- ``ledger only`` (reference): plan and apply in memory, no file at all.

The simulated clock moves 30 s per trade, so the fees sweep, profit sweep and compounding all run.
Medians of ``--runs`` interleaved runs.

    python bench/wallets.py [--trades N] [--per-tick K] [--runs R]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.config import KobeConfig  # noqa: E402
from engine.wallets.flows import Ledger, TradeRefused  # noqa: E402
from engine.wallets.runtime import WalletManager  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WALLETS = ("sniper_sol", "copy_sol", "cex_binance", "cex_bybit", "cex_okx")

Trade = tuple[str, str, Decimal, Decimal]


def stream(n: int, seed: int = 7) -> list[Trade]:
    rng = random.Random(seed)
    return [
        (
            f"T{i}",
            rng.choice(WALLETS),
            Decimal(rng.randint(-150, 200)) / 100,
            Decimal(rng.randint(0, 8)) / 100,
        )
        for i in range(n)
    ]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def run_manager(trades: list[Trade], per_tick: int, write_snapshot: bool) -> tuple[float, int]:
    cfg = KobeConfig()
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock()
        m = WalletManager.from_config(cfg, Path(tmp), clock=clock)
        tick: Callable[[datetime], object] = m.on_tick if write_snapshot else m.run_periodic_tasks
        ticks = 0
        start = time.perf_counter()
        for i, (tid, wallet, pnl, fees) in enumerate(trades, start=1):
            clock.now += timedelta(seconds=30)
            with contextlib.suppress(TradeRefused):  # the stream never overdraws; be safe
                m.on_trade_closed(wallet, pnl, fees, trade_id=tid)
            if i % per_tick == 0:
                tick(clock.now)
                ticks += 1
        elapsed = time.perf_counter() - start
        m.close()
    return elapsed, ticks


def run_ledger(trades: list[Trade], per_tick: int) -> tuple[float, int]:
    cfg = KobeConfig()
    led = Ledger(cfg.finance, cfg.wallet_flows)
    now, ticks = T0, 0
    start = time.perf_counter()
    for i, (tid, wallet, pnl, fees) in enumerate(trades, start=1):
        now += timedelta(seconds=30)
        op = led.plan_trade(tid, wallet, pnl, fees, now)
        if op is not None:
            led.apply(op)
        if i % per_tick == 0:
            led.apply(led.plan_tick(now))
            ticks += 1
    return time.perf_counter() - start, ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trades", type=int, default=5000)
    parser.add_argument("--per-tick", type=int, default=10, help="closed trades between ticks")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    trades = stream(args.trades)
    results: dict[str, list[float]] = {"on_tick": [], "no_snapshot": [], "ledger": []}
    ticks = 0
    for _ in range(args.runs):
        t, ticks = run_manager(trades, args.per_tick, write_snapshot=True)
        results["on_tick"].append(t)
        t, _ = run_manager(trades, args.per_tick, write_snapshot=False)
        results["no_snapshot"].append(t)
        t, _ = run_ledger(trades, args.per_tick)
        results["ledger"].append(t)
    med = {k: statistics.median(v) for k, v in results.items()}
    n = len(trades)
    print(
        f"{n} closed trades, a tick every {args.per_tick} ({ticks} ticks), medians of {args.runs}"
    )
    rows = [
        ("on_tick: journal + rules + snapshot every tick", med["on_tick"]),
        ("baseline: journal + rules, no snapshot", med["no_snapshot"]),
        ("reference: ledger in memory, no file", med["ledger"]),
    ]
    for label, t in rows:
        print(f"  {label:<48} {n / t:>9,.0f} trades/s  ({t * 1000 / ticks:6.3f} ms per tick)")
    snap = (med["on_tick"] - med["no_snapshot"]) / ticks
    print(f"  snapshot write (atomic, fsync): {snap * 1000:.3f} ms per tick")


if __name__ == "__main__":
    main()
