"""Helpers for the wallet tests (no tests here): a settable clock, configs, a scripted sequence.

Also a driver, run as ``python -m tests.test_wallets_support DATA_DIR [DELAY_S]``: it applies the
scripted sequence to a WalletManager on DATA_DIR from the start (idempotence skips what a previous
run already did), printing the index of each step done, and the final balances as JSON at the end.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from engine.config import KobeConfig, parse_config
from engine.wallets.flows import TradeRefused
from engine.wallets.runtime import WalletManager

T0 = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


class Clock:
    """An injected clock: aware UTC, moved by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def step(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


def cfg_from(toml: str = "") -> KobeConfig:
    return parse_config(toml) if toml else KobeConfig()


# Caps that bind: trading wallets at most 22 % of equity each, 70 % together; rules run often.
TIGHT = """
[finance.policies]
role_max_pct = { trading = 22 }
max_equity_at_risk_pct = 70
[finance.risk_wallets]
sniper_sol = { max_usd = 33 }
copy_sol = { max_usd = 33 }
cex_binance = { max_usd = 25 }
cex_bybit = { max_usd = 12 }
cex_okx = { max_usd = 12 }
[wallet_flows.fees_sweep]
trigger = "tick"
[wallet_flows.profits_sweep]
threshold_usd = 1
period_s = 600
[wallet_flows.compounding]
period_s = 1800
threshold_usd = 2
share_pct = 90
"""


def manager(
    data_dir: Path, clock: Clock, cfg: KobeConfig | None = None, **kw: object
) -> WalletManager:
    return WalletManager.from_config(cfg or KobeConfig(), data_dir, clock=clock, **kw)


@dataclass(frozen=True)
class Step:
    kind: str  # "trade" | "tick"
    time: datetime
    trade_id: str = ""
    wallet: str = ""
    pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)


def script(n: int = 240, seed: int = 11) -> list[Step]:
    """A deterministic mix of closed trades and ticks over about a day and a half."""
    rng = random.Random(seed)
    wallets = ["sniper_sol", "copy_sol", "cex_binance", "cex_bybit", "cex_okx"]
    steps: list[Step] = []
    now = T0
    for i in range(n):
        now += timedelta(minutes=rng.randint(1, 15))
        if rng.random() < 0.6:
            pnl = Decimal(rng.randint(-250, 400)) / 100
            fees = Decimal(rng.randint(0, 60)) / 100
            steps.append(Step("trade", now, f"T{i}", rng.choice(wallets), pnl, fees))
        else:
            steps.append(Step("tick", now))
    return steps


def run_steps(m: WalletManager, clock: Clock, steps: list[Step]) -> None:
    for s in steps:
        apply_step(m, clock, s)


def apply_step(m: WalletManager, clock: Clock, s: Step) -> None:
    clock.now = s.time
    if s.kind == "tick":
        m.on_tick(s.time)
        return
    with contextlib.suppress(TradeRefused):  # refused alike in every run, and stays refused
        m.on_trade_closed(s.wallet, s.pnl, s.fees, trade_id=s.trade_id)


def drive(data_dir: Path, delay_s: float) -> None:
    clock = Clock()
    steps = script()
    with manager(data_dir, clock) as m:
        for i, s in enumerate(steps):
            apply_step(m, clock, s)
            print(i, flush=True)
            if delay_s:
                time.sleep(delay_s)
        m.on_tick(steps[-1].time + timedelta(minutes=1))
        print(json.dumps({k: str(v) for k, v in m.balances().items()}), flush=True)


if __name__ == "__main__":
    drive(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
