"""``[strategies]``: memecoin farming, copy trading and the paper DEX venue they trade on."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    model_serializer,
    model_validator,
)

from engine.config.fields import (
    MAX_SEED,
    YEAR_S,
    Int,
    NonNegativeDecimal,
    Number,
    Percent,
    PositiveDecimal,
    Section,
    Symbol,
    WalletId,
    no_duplicates,
)
from engine.config.finance import FinanceConfig

# [strategies]: memecoin farming, copy trading and the paper DEX venue they trade on
# (engine/strategies/, engine/exchange/dex.py). Times are seconds of (simulated) time; the
# defaults are tuned for engine.strategies.base.TICK_SECONDS = 60 s per engine tick.


def _below_100(value: Decimal) -> Decimal:
    if not (Decimal(0) < value < Decimal(100)):
        raise ValueError("must be above 0 and below 100")
    return value


def _fraction(value: Decimal) -> Decimal:
    if not (Decimal(0) < value <= Decimal(1)):
        raise ValueError("must be above 0 and at most 1 (a fraction of the leader's size)")
    return value


def _data_path(value: str) -> str:
    """A path relative to the data dir, staying inside it."""
    path = Path(value)
    if not value or path.is_absolute() or ".." in path.parts or value.startswith("~"):
        raise ValueError("must be a relative path inside the data dir, e.g. copy/leader.jsonl")
    return value


def _quote_asset(value: str) -> str:
    if not value or not value.isascii() or not value.isalnum() or not value.isupper():
        raise ValueError("must be an asset in capitals, e.g. USDC")
    return value


StopPct = Annotated[Number, AfterValidator(_below_100)]
DataPath = Annotated[str, AfterValidator(_data_path)]


class MemecoinProviderConfig(Section):
    """Where candidates come from: ``stub_random`` (seeded, offline), ``onchain_dry_run`` (the
    indexer's JSONL files under ``<data dir>/<indexer_dir>``; logs what it would send, sends
    nothing) or ``onchain`` (the same files; its signals are traded on the paper DEX venue)."""

    kind: Literal["stub_random", "onchain_dry_run", "onchain"] = "stub_random"
    seed: Int = Field(default=7, ge=0, le=MAX_SEED)
    indexer_dir: DataPath = "indexer"


class MemecoinFiltersConfig(Section):
    min_liquidity_usd: NonNegativeDecimal = Decimal(10_000)
    min_volume_usd: NonNegativeDecimal = Decimal(5_000)
    max_age_s: Int = Field(
        default=3600, ge=1, le=YEAR_S
    )  # a candidate older than this is not entered
    # momentum: its price change since first seen, in % (negative allows a fall; -100: off)
    min_price_change_pct: Annotated[Number, Field(ge=-100)] = Decimal(2)


class MemecoinFarmingConfig(Section):
    enabled: StrictBool = True
    wallet: WalletId = "sniper_sol"
    entry_size_usd: PositiveDecimal = Decimal(5)
    hold_time_s: Int = Field(
        default=1800, ge=1, le=YEAR_S
    )  # exit after this long, if TP/SL did not first
    tp_pct: PositiveDecimal = Decimal(15)
    sl_pct: StopPct = Decimal(10)
    max_open_positions: Int = Field(default=2, ge=1, le=1000)
    entry_interval_s: Int = Field(
        default=600, ge=0, le=YEAR_S
    )  # at least this long between two entries
    provider: MemecoinProviderConfig = Field(default_factory=MemecoinProviderConfig)
    filters: MemecoinFiltersConfig = Field(default_factory=MemecoinFiltersConfig)


class CopyFeedConfig(Section):
    """The leader's trades: ``stub`` (seeded generator, offline) or ``jsonl`` (a file under the
    data dir that is tailed as it is appended)."""

    kind: Literal["stub", "jsonl"] = "stub"
    path: DataPath = "copy/leader_trades.jsonl"
    seed: Int = Field(default=7, ge=0, le=MAX_SEED)


class CopyTradingConfig(Section):
    enabled: StrictBool = True
    wallet: WalletId = "copy_sol"
    scale: Annotated[Number, AfterValidator(_fraction)] = Decimal("0.05")
    max_trade_usd: PositiveDecimal = Decimal(6)
    min_trade_usd: NonNegativeDecimal = Decimal(1)
    max_slippage_pct: Percent = Decimal(5)
    # a leader's buy older than this (its `time` against the engine's clock) is not copied
    max_trade_age_s: Int = Field(default=300, ge=1, le=YEAR_S)
    max_open_positions: Int = Field(default=3, ge=1, le=1000)
    # only these are copied; an empty list copies nothing
    allowed_symbols: Annotated[list[Symbol], AfterValidator(no_duplicates)] = Field(
        default_factory=lambda: ["BONK/USDC", "WIF/USDC", "POPCAT/USDC", "JUP/USDC"]
    )
    feed: CopyFeedConfig = Field(default_factory=CopyFeedConfig)

    @model_validator(mode="after")
    def _sizes_in_order(self) -> CopyTradingConfig:
        if self.min_trade_usd > self.max_trade_usd:
            raise ValueError(
                f"min_trade_usd ({self.min_trade_usd}) must not be above max_trade_usd "
                f"({self.max_trade_usd})"
            )
        return self


class DexConfig(Section):
    """The paper DEX venue the Solana wallets trade on, in every mode (no transaction is sent)."""

    quote_asset: Annotated[str, AfterValidator(_quote_asset)] = "USDC"
    fee_pct: Percent = Decimal("0.25")
    slippage_bps: NonNegativeDecimal = Decimal(30)
    book_level_quote_usd: PositiveDecimal = Decimal(2_000)
    book_level_gap_bps: PositiveDecimal = Decimal(25)
    min_notional_usd: PositiveDecimal = Decimal(1)
    # the DEX paper account's starting quote balance; absent: the allocation of the strategies'
    # wallets (sniper_sol 30 + copy_sol 30 = 60 USDC with LIVE_150)
    starting_balance: NonNegativeDecimal | None = None

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}  # TOML has no null


class StrategiesConfig(Section):
    memecoin_farming: MemecoinFarmingConfig = Field(default_factory=MemecoinFarmingConfig)
    copy_trading: CopyTradingConfig = Field(default_factory=CopyTradingConfig)
    dex: DexConfig = Field(default_factory=DexConfig)

    @model_validator(mode="after")
    def _symbols_on_the_dex(self) -> StrategiesConfig:
        quote = self.dex.quote_asset
        wrong = [s for s in self.copy_trading.allowed_symbols if not s.endswith(f"/{quote}")]
        if wrong:
            raise ValueError(
                f"copy_trading.allowed_symbols: {', '.join(wrong)} not quoted in "
                f"dex.quote_asset ({quote})"
            )
        return self

    def problems_with(self, finance: FinanceConfig) -> list[str]:
        """Strategy wallets that name no Solana trading wallet of ``finance``."""
        out = []
        for name, wallet in (
            ("memecoin_farming", self.memecoin_farming.wallet),
            ("copy_trading", self.copy_trading.wallet),
        ):
            if wallet not in finance.wallet_ids:
                out.append(f"{name}.wallet: {wallet!r} names no wallet in finance.wallets")
                continue
            w = finance.wallet(wallet)
            if w.chain != "solana" or w.role != "trading":
                out.append(
                    f"{name}.wallet: {wallet!r} is a {w.chain} {w.role} wallet, not a solana "
                    "trading wallet (the strategies trade on the paper DEX venue)"
                )
        return out
