"""Copy trading: mirror a leader's trades (a tailed JSONL feed or a seeded stub), scaled."""

from __future__ import annotations

import random
from pathlib import Path

from engine.config import CopyTradingConfig
from engine.strategies.base import TICK_SECONDS
from engine.strategies.copy_trading.feed import (
    FeedEvent,
    JsonlLeaderFeed,
    LeaderFeed,
    LeaderTrade,
    PriceUpdate,
    StubLeaderFeed,
    parse_feed_record,
)
from engine.strategies.copy_trading.strategy import NAME, CopyTrading, Skip

__all__ = [
    "NAME",
    "CopyTrading",
    "FeedEvent",
    "JsonlLeaderFeed",
    "LeaderFeed",
    "LeaderTrade",
    "PriceUpdate",
    "Skip",
    "StubLeaderFeed",
    "build_copy_trading",
    "build_feed",
    "parse_feed_record",
]


def build_feed(config: CopyTradingConfig, data_dir: Path, *, quote: str = "USDC") -> LeaderFeed:
    f = config.feed
    if f.kind == "jsonl":
        path = Path(data_dir) / f.path
        return JsonlLeaderFeed(path, quote=quote, state_path=path.with_name(path.name + ".offset"))
    return StubLeaderFeed(rng=random.Random(f.seed), step_s=TICK_SECONDS)


def build_copy_trading(
    config: CopyTradingConfig, data_dir: Path, *, quote: str = "USDC"
) -> CopyTrading:
    return CopyTrading(config, build_feed(config, data_dir, quote=quote))
