"""A memecoin candidate (a token with a pool against the DEX quote asset) and the entry filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from engine.config import MemecoinFiltersConfig

# A candidate first seen (its block time) at most this far ahead of the engine's clock is taken as
# clock skew between the node and Kobe; further ahead, it is refused: its age would stay negative
# and pass ``max_age_s`` for as long as the lie lasts. Compared with the injected clock.
MAX_FUTURE_SKEW_S = 120


@dataclass(frozen=True)
class Candidate:
    """What a provider knows of a token now. Prices in USD (the quote asset, USDC)."""

    mint: str
    symbol: str  # BASE/USDC
    price_usd: Decimal
    liquidity_usd: Decimal
    volume_usd: Decimal  # traded since it was first seen
    created_at: datetime  # when it was first seen (pool creation / first indexer line)
    first_price_usd: Decimal | None = None  # its price when first seen (None: the current one)
    slot: int | None = None  # the indexer's last slot for it (onchain_dry_run)

    def change_pct(self) -> Decimal:
        """Price change since it was first seen, in percent."""
        first = self.first_price_usd
        if first is None or first <= 0:
            return Decimal(0)
        return (self.price_usd - first) / first * 100

    def age_s(self, now: datetime) -> int:
        delta = now - self.created_at
        return delta.days * 86_400 + delta.seconds


def filter_problems(c: Candidate, f: MemecoinFiltersConfig, now: datetime) -> list[str]:
    """Why ``c`` may not be entered now (empty: it passes)."""
    out = []
    if c.price_usd <= 0:
        out.append("no price")
    if c.liquidity_usd < f.min_liquidity_usd:
        out.append(f"liquidity {c.liquidity_usd} < {f.min_liquidity_usd} USD")
    if c.volume_usd < f.min_volume_usd:
        out.append(f"volume {c.volume_usd} < {f.min_volume_usd} USD")
    if c.change_pct() < f.min_price_change_pct:
        out.append(f"price change {c.change_pct():.2f}% < {f.min_price_change_pct}%")
    age = c.age_s(now)
    if age > f.max_age_s:
        out.append(f"age {age} s > {f.max_age_s} s")
    elif age < -MAX_FUTURE_SKEW_S:
        out.append(f"first seen {-age} s in the future > {MAX_FUTURE_SKEW_S} s")
    return out


def passes(c: Candidate, f: MemecoinFiltersConfig, now: datetime) -> bool:
    return not filter_problems(c, f, now)
