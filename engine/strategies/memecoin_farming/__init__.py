"""Memecoin farming: candidates from a provider, time-based entries, exits on time or TP/SL."""

from __future__ import annotations

import random
from pathlib import Path

from engine.config import MemecoinFarmingConfig
from engine.strategies.base import TICK_SECONDS
from engine.strategies.memecoin_farming.candidates import Candidate, filter_problems, passes
from engine.strategies.memecoin_farming.providers import (
    IndexerFilesProvider,
    MemecoinDataProvider,
    OnchainDryRunProvider,
    OnchainProvider,
    StubRandomProvider,
)
from engine.strategies.memecoin_farming.strategy import NAME, MemecoinFarming

__all__ = [
    "NAME",
    "Candidate",
    "IndexerFilesProvider",
    "MemecoinDataProvider",
    "MemecoinFarming",
    "OnchainDryRunProvider",
    "OnchainProvider",
    "StubRandomProvider",
    "build_memecoin_farming",
    "build_provider",
    "filter_problems",
    "passes",
]


def build_provider(
    config: MemecoinFarmingConfig, data_dir: Path, *, quote: str = "USDC"
) -> MemecoinDataProvider:
    p = config.provider
    if p.kind == "stub_random":
        return StubRandomProvider(rng=random.Random(p.seed), quote=quote, step_s=TICK_SECONDS)
    if p.kind == "onchain_dry_run":
        return OnchainDryRunProvider(Path(data_dir) / p.indexer_dir, quote=quote)
    if p.kind == "onchain":
        return OnchainProvider(Path(data_dir) / p.indexer_dir, quote=quote)
    raise ValueError(f"memecoin provider {p.kind!r} is not available")


def build_memecoin_farming(
    config: MemecoinFarmingConfig, data_dir: Path, *, quote: str = "USDC"
) -> MemecoinFarming:
    return MemecoinFarming(config, build_provider(config, data_dir, quote=quote))
