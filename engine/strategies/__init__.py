"""The strategies: memecoin farming and copy trading. They emit :class:`Signal`; the engine turns
them into proposals (one path for orders) on the paper DEX venue (``engine.exchange.dex``).

``build_strategies(config.strategies, data_dir)`` builds the enabled ones from kobe.toml.
"""

from __future__ import annotations

from pathlib import Path

from engine.config import StrategiesConfig
from engine.strategies.base import (
    TICK_SECONDS,
    DexMarket,
    PositionState,
    Signal,
    SignalAction,
    Strategy,
    StrategyPosition,
    signal_to_proposal,
)

__all__ = [
    "TICK_SECONDS",
    "DexMarket",
    "PositionState",
    "Signal",
    "SignalAction",
    "Strategy",
    "StrategyPosition",
    "build_strategies",
    "signal_to_proposal",
]


def build_strategies(config: StrategiesConfig, data_dir: Path) -> list[Strategy]:
    """The enabled strategies, memecoin farming first; each trades on the DEX quote asset."""
    from engine.strategies.copy_trading import build_copy_trading
    from engine.strategies.memecoin_farming import build_memecoin_farming

    quote = config.dex.quote_asset
    out: list[Strategy] = []
    if config.memecoin_farming.enabled:
        out.append(build_memecoin_farming(config.memecoin_farming, data_dir, quote=quote))
    if config.copy_trading.enabled:
        out.append(build_copy_trading(config.copy_trading, data_dir, quote=quote))
    return out
