"""kobe.toml: pydantic v2 models, loading (tomllib) with one clear line per problem, atomic saving.

Which file: ``KOBE_CONFIG`` (a missing file is an error), else ``./kobe.toml``, else the built-in
defaults, which are identical to the shipped ``kobe.toml`` (a test holds them equal). A partial
file inherits every key it leaves out. Unknown keys are refused.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, cast, get_args
from urllib.parse import urlsplit

import tomli_w
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    Strict,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from engine.bootstrap import EXCHANGES, Mode
from engine.fsutil import atomic_write_text
from engine.untrusted import MESSAGE_MAX, BadNumber, clean_text, parse_decimal
from engine.wallets import policies as live150

__all__ = ["EXCHANGES", "ConfigError", "KobeConfig", "Mode"]


ExchangeName = Literal["binance", "bybit", "okx"]


class ConfigError(Exception):
    """Bad configuration or environment. ``lines`` holds one line per problem. Exit code 2."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


def _between(lo: int, hi: int) -> Callable[[Decimal], Decimal]:
    def check(value: Decimal) -> Decimal:
        if not (Decimal(lo) <= value <= Decimal(hi)):
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return check


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a timezone (write it with a Z, e.g. 2026-01-01T00:00:00Z)")
    return value.astimezone(UTC)


def _symbol(value: str) -> str:
    if clean_text(value, MESSAGE_MAX) != value:
        return value  # control characters: Section._plain_text says so, for every string
    parts = value.split("/")
    if len(parts) != 2 or not all(p.isascii() and p.isalnum() and p.isupper() for p in parts):
        raise ValueError("must look like BASE/QUOTE in capitals, e.g. BTC/USDT")
    return value


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP (127.0.0.0/8, ::1): this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _no_duplicates(values: list[str]) -> list[str]:
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise ValueError(f"names {', '.join(twice)} more than once")
    return values


def check_api_url(value: str) -> str:
    """An exchange API base: empty (none) or ``scheme://host:port`` on a loopback address.

    It exists to reach a local simulator: the keys are sent wherever it points, so it may not
    point anywhere else (a ``.env`` dropped in the working directory cannot send them away).
    """
    if value == "":
        return value
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port is None
        or parts.username is not None
        or parts.path not in ("", "/")
    ):
        raise ValueError("must be scheme://host:port, e.g. http://127.0.0.1:8080")
    if not is_loopback(parts.hostname):
        raise ValueError(
            "must be a loopback address (127.0.0.1, ::1 or localhost): it is for a local "
            "simulator, and the API keys are sent wherever it points"
        )
    return value.rstrip("/")


YEAR_S = 365 * 24 * 3600  # the longest duration a config may hold
MAX_SEED = 2**63 - 1
MAX_NUMBER = Decimal(10) ** 12  # money and every other number: at most 10^12
Int = Annotated[int, Strict()]  # an integer, never a string, a float or a boolean


def _number(value: object) -> Decimal:
    """A config number: an integer or a decimal, never a string or a boolean; finite, bounded."""
    if isinstance(value, bool | str):
        kind = "a boolean" if isinstance(value, bool) else "a string"
        raise ValueError(f"must be a number, not {kind}")
    try:
        return parse_decimal(value, "value", minimum=-MAX_NUMBER, maximum=MAX_NUMBER)
    except BadNumber as exc:
        raise ValueError(exc.problem) from None


Number = Annotated[Decimal, BeforeValidator(_number)]
Percent = Annotated[Number, AfterValidator(_between(0, 100))]
PositiveDecimal = Annotated[Number, AfterValidator(_positive)]
NonNegativeDecimal = Annotated[Number, AfterValidator(_non_negative)]
UtcDatetime = Annotated[datetime, AfterValidator(_aware_utc)]
Symbol = Annotated[str, AfterValidator(_symbol)]
ApiUrl = Annotated[str, AfterValidator(check_api_url)]


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (*_texts(k), *_texts(v))]
    return []


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @field_validator("*", mode="after")
    @classmethod
    def _plain_text(cls, value: Any) -> Any:
        """Config strings are shown on screen and in journals: no control characters (an
        escape sequence, a line break), at most 1,000 characters."""
        for text in _texts(value):
            if len(text) > MESSAGE_MAX:
                raise ValueError(f"must be at most {MESSAGE_MAX} characters")
            if clean_text(text, MESSAGE_MAX) != text:
                raise ValueError("must not contain control characters")
        return value


class ExchangeConfig(Section):
    name: ExchangeName = "binance"
    api_url: ApiUrl = ""
    timeout_ms: Int = Field(default=10_000, ge=100, le=120_000)


class PaperConfig(Section):
    quote_asset: str = "USDT"
    balances: dict[str, NonNegativeDecimal] = Field(default_factory=lambda: {"USDT": Decimal(1000)})
    maker_fee_pct: Percent = Decimal("0.1")
    taker_fee_pct: Percent = Decimal("0.1")
    slippage_bps: NonNegativeDecimal = Decimal(5)
    price_source: Literal["simulated", "exchange"] = "simulated"
    seed: Int = Field(default=7, ge=0, le=MAX_SEED)
    sim_start: UtcDatetime = datetime(2026, 1, 1, tzinfo=UTC)


class RouterConfig(Section):
    default_quote_usd: PositiveDecimal = Decimal(15)
    exits: Literal["auto", "watchdog"] = "auto"
    # the limit of a stop leg, this far beyond its stop price (the same on every venue)
    stop_limit_offset_pct: Annotated[Decimal, AfterValidator(_between(0, 50))] = Decimal("0.5")
    # a stop that triggered but rests at its limit after a gap: sold at market once it has
    # rested this long, or once the price is this far past its limit
    stop_rest_timeout_s: int = Field(default=60, ge=1, le=86_400)
    stop_rest_distance_pct: Percent = Decimal(1)


class RiskConfig(Section):
    warning_drawdown_pct: Percent = Decimal(10)
    max_drawdown_pct: Percent = Decimal(20)
    max_losing_streak: Int = Field(default=5, ge=1, le=10_000)
    min_operational_capital_usd: NonNegativeDecimal = Decimal(100)
    max_daily_loss_usd: NonNegativeDecimal = Decimal(15)
    max_risk_per_trade_pct: Percent = Decimal(2)
    warning_size_factor: Annotated[Number, AfterValidator(_between(0, 1))] = Decimal("0.5")
    cooldown_after_loss_s: Int = Field(default=0, ge=0, le=YEAR_S)
    on_trip: Literal["halt", "flatten"] = "halt"

    @model_validator(mode="after")
    def _warning_below_critical(self) -> RiskConfig:
        if self.warning_drawdown_pct >= self.max_drawdown_pct:
            raise ValueError(
                f"warning_drawdown_pct ({self.warning_drawdown_pct}) must be below "
                f"max_drawdown_pct ({self.max_drawdown_pct})"
            )
        return self


WalletChain = Literal["solana", "binance", "bybit", "okx", "offchain"]
WalletRole = Literal["trading", "fees", "buffer", "profits", "vault", "reserve"]


def _wallet_id(value: str) -> str:
    if not value or not all(
        c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in value
    ):
        raise ValueError("must be lower-case letters, digits and _, e.g. sniper_sol")
    return value


WalletId = Annotated[str, AfterValidator(_wallet_id)]


def _usd(value: Decimal) -> str:
    return f"{value.normalize():f}"


class WalletConfig(Section):
    """One sub-wallet: id, chain, role, initial allocation (USD or % of capital), optional cap."""

    id: WalletId
    chain: WalletChain
    role: WalletRole
    allocation_usd: NonNegativeDecimal | None = None
    allocation_pct: Percent | None = None
    max_usd: PositiveDecimal | None = None

    @model_validator(mode="after")
    def _one_allocation(self) -> WalletConfig:
        if (self.allocation_usd is None) == (self.allocation_pct is None):
            raise ValueError("give exactly one of allocation_usd or allocation_pct")
        return self

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}  # TOML has no null

    def allocation(self, capital_usd: Decimal) -> Decimal:
        """The initial allocation in USD."""
        if self.allocation_usd is not None:
            return self.allocation_usd
        assert self.allocation_pct is not None
        return capital_usd * self.allocation_pct / 100


class PoliciesConfig(Section):
    # caps per role: the most one wallet of that role may hold, in % of equity (absent: no cap)
    role_max_pct: dict[WalletRole, Percent] = Field(
        default_factory=lambda: cast("dict[WalletRole, Decimal]", dict(live150.ROLE_MAX_PCT))
    )
    max_equity_at_risk_pct: Percent = live150.MAX_EQUITY_AT_RISK_PCT


class FeesPolicyConfig(Section):
    wallet: WalletId = live150.FEES_WALLET
    buffer_min_usd: NonNegativeDecimal = live150.FEES_BUFFER_MIN_USD
    buffer_target_usd: NonNegativeDecimal = live150.FEES_BUFFER_TARGET_USD
    buffer_max_usd: NonNegativeDecimal = live150.FEES_BUFFER_MAX_USD
    max_fees_pct_of_equity: Percent = live150.MAX_FEES_PCT_OF_EQUITY

    @model_validator(mode="after")
    def _buffer_in_order(self) -> FeesPolicyConfig:
        lo, mid, hi = self.buffer_min_usd, self.buffer_target_usd, self.buffer_max_usd
        if not (lo <= mid <= hi):
            raise ValueError(
                f"buffer_min_usd ({lo}), buffer_target_usd ({mid}) and buffer_max_usd ({hi}) "
                "must be in that order (min <= target <= max)"
            )
        return self


class RiskWalletConfig(Section):
    max_usd: PositiveDecimal


class FinanceConfig(Section):
    """``[finance]``: the profile, its capital, the sub-wallets and the policies over them."""

    profile_id: str = live150.PROFILE_ID
    capital_usd: PositiveDecimal = live150.CAPITAL_USD
    wallets: list[WalletConfig] = Field(
        default_factory=lambda: [
            WalletConfig(id=w.id, chain=w.chain, role=w.role, allocation_usd=w.allocation_usd)
            for w in live150.WALLETS
        ],
        min_length=1,
    )
    policies: PoliciesConfig = Field(default_factory=PoliciesConfig)
    fees_policy: FeesPolicyConfig = Field(default_factory=FeesPolicyConfig)
    # the wallets that may trade, each with its cap
    risk_wallets: dict[WalletId, RiskWalletConfig] = Field(
        default_factory=lambda: {
            k: RiskWalletConfig(max_usd=v) for k, v in live150.RISK_WALLET_MAX_USD.items()
        }
    )

    @model_validator(mode="after")
    def _consistent(self) -> FinanceConfig:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def wallet(self, wallet_id: str) -> WalletConfig:
        for w in self.wallets:
            if w.id == wallet_id:
                return w
        raise KeyError(wallet_id)

    @property
    def wallet_ids(self) -> list[str]:
        return [w.id for w in self.wallets]

    def cap_usd(self, wallet_id: str, equity_usd: Decimal) -> Decimal | None:
        """The most ``wallet_id`` may hold at ``equity_usd`` (None: no cap)."""
        w = self.wallet(wallet_id)
        caps = [w.max_usd] if w.max_usd is not None else []
        if wallet_id in self.risk_wallets:
            caps.append(self.risk_wallets[wallet_id].max_usd)
        role_pct = self.policies.role_max_pct.get(w.role)
        if role_pct is not None:
            caps.append(equity_usd * role_pct / 100)
        return min(caps) if caps else None

    def problems(self) -> list[str]:
        """What cannot work, one message each (empty: consistent)."""
        out: list[str] = []
        ids = self.wallet_ids
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            out.append(f"wallets: duplicate id {', '.join(map(repr, dupes))}")
        known = ", ".join(ids)
        total = sum((w.allocation(self.capital_usd) for w in self.wallets), Decimal(0))
        if total != self.capital_usd:
            out.append(
                f"wallets: allocations add up to {_usd(total)} USD, "
                f"not capital_usd ({_usd(self.capital_usd)})"
            )
        fees = self.fees_policy.wallet
        if fees not in ids:
            out.append(f"fees_policy.wallet: {fees!r} names no wallet (wallets: {known})")
        elif self.wallet(fees).role != "fees":
            out.append(
                f"fees_policy.wallet: {fees!r} has role {self.wallet(fees).role!r}, not fees"
            )
        for rid in self.risk_wallets:
            if rid not in ids:
                out.append(f"risk_wallets.{rid}: names no wallet (wallets: {known})")
            elif self.wallet(rid).role != "trading":
                out.append(f"risk_wallets.{rid}: has role {self.wallet(rid).role!r}, not trading")
        if dupes or out:
            return out
        for w in self.wallets:
            cap = self.cap_usd(w.id, self.capital_usd)
            alloc = w.allocation(self.capital_usd)
            if cap is not None and alloc > cap:
                out.append(
                    f"wallets: {w.id} starts with {_usd(alloc)} USD, above its cap ({_usd(cap)} USD)"
                )
        at_risk = sum(
            (self.wallet(r).allocation(self.capital_usd) for r in self.risk_wallets), Decimal(0)
        )
        limit = self.capital_usd * self.policies.max_equity_at_risk_pct / 100
        if at_risk > limit:
            out.append(
                f"risk_wallets: start with {_usd(at_risk)} USD, above "
                f"policies.max_equity_at_risk_pct ({self.policies.max_equity_at_risk_pct} % "
                f"= {_usd(limit)} USD)"
            )
        return out


RuleTrigger = Literal["period", "tick"]


class FlowRuleConfig(Section):
    """What every rule has. ``trigger``: ``period`` runs the rule at the first tick of each period
    (periods of ``period_s`` seconds, aligned on UTC); ``tick`` runs it at every tick."""

    enabled: StrictBool = True
    trigger: RuleTrigger = "period"
    period_s: Int = Field(default=3600, ge=1, le=YEAR_S)

    def endpoints(self) -> list[tuple[str, str]]:
        """(key, wallet id) for every wallet the rule names."""
        return []


class FeesSweepConfig(FlowRuleConfig):
    """Below fees_policy.buffer_min_usd the fees wallet is topped up to target from ``source``;
    above buffer_max_usd its excess goes to ``destination``."""

    period_s: Int = Field(default=live150.FEES_SWEEP_PERIOD_S, ge=1, le=YEAR_S)
    source: WalletId = live150.FEES_SWEEP_SOURCE
    destination: WalletId = live150.FEES_SWEEP_DESTINATION

    def endpoints(self) -> list[tuple[str, str]]:
        return [("source", self.source), ("destination", self.destination)]


class ProfitsSweepConfig(FlowRuleConfig):
    """For each ``source`` wallet whose realized profit since its last sweep reached
    ``threshold_usd``: ``share_pct`` of it is swept out, ``vault_share_pct`` of that to ``vault``
    and the rest to ``destination``."""

    period_s: Int = Field(default=live150.PROFITS_SWEEP_PERIOD_S, ge=1, le=YEAR_S)
    source: list[WalletId] = Field(
        default_factory=lambda: list(live150.TRADING_WALLETS), min_length=1
    )
    threshold_usd: NonNegativeDecimal = live150.PROFITS_SWEEP_THRESHOLD_USD
    share_pct: Percent = live150.PROFITS_SWEEP_SHARE_PCT
    destination: WalletId = live150.PROFITS_SWEEP_DESTINATION
    vault: WalletId = live150.PROFITS_SWEEP_VAULT
    vault_share_pct: Percent = live150.PROFITS_SWEEP_VAULT_SHARE_PCT

    @model_validator(mode="after")
    def _distinct(self) -> ProfitsSweepConfig:
        if len(set(self.source)) != len(self.source):
            raise ValueError("source names a wallet twice")
        inside = [w for w in (self.destination, self.vault) if w in self.source]
        if inside:
            raise ValueError(f"{inside[0]!r} is both a source and a destination")
        return self

    def endpoints(self) -> list[tuple[str, str]]:
        out = [(f"source[{i}]", w) for i, w in enumerate(self.source)]
        return [*out, ("destination", self.destination), ("vault", self.vault)]


class CompoundingConfig(FlowRuleConfig):
    """When ``source`` holds more than ``threshold_usd``, ``share_pct`` of the excess goes back to
    the ``destination`` wallets in proportion to their allocation, each within its cap."""

    period_s: Int = Field(default=live150.COMPOUNDING_PERIOD_S, ge=1, le=YEAR_S)
    source: WalletId = live150.COMPOUNDING_SOURCE
    threshold_usd: NonNegativeDecimal = live150.COMPOUNDING_THRESHOLD_USD
    share_pct: Percent = live150.COMPOUNDING_SHARE_PCT
    destination: list[WalletId] = Field(
        default_factory=lambda: list(live150.TRADING_WALLETS), min_length=1
    )

    @model_validator(mode="after")
    def _distinct(self) -> CompoundingConfig:
        if len(set(self.destination)) != len(self.destination):
            raise ValueError("destination names a wallet twice")
        if self.source in self.destination:
            raise ValueError(f"{self.source!r} is both the source and a destination")
        return self

    def endpoints(self) -> list[tuple[str, str]]:
        out = [(f"destination[{i}]", w) for i, w in enumerate(self.destination)]
        return [("source", self.source), *out]


class WalletFlowsConfig(Section):
    """``[wallet_flows]``: the rules that move money between sub-wallets (bookkeeping only)."""

    enabled: StrictBool = True
    fees_sweep: FeesSweepConfig = Field(default_factory=FeesSweepConfig)
    profits_sweep: ProfitsSweepConfig = Field(default_factory=ProfitsSweepConfig)
    compounding: CompoundingConfig = Field(default_factory=CompoundingConfig)

    def rules(self) -> dict[str, FlowRuleConfig]:
        return {
            "fees_sweep": self.fees_sweep,
            "profits_sweep": self.profits_sweep,
            "compounding": self.compounding,
        }

    def problems_with(self, finance: FinanceConfig) -> list[str]:
        """Rule endpoints that name no wallet of ``finance`` (or the fees wallet itself)."""
        ids = finance.wallet_ids
        out = []
        for name, rule in self.rules().items():
            for key, wallet in rule.endpoints():
                if wallet not in ids:
                    out.append(f"{name}.{key}: {wallet!r} names no wallet in finance.wallets")
        fees = finance.fees_policy.wallet
        for key in ("source", "destination"):
            if getattr(self.fees_sweep, key) == fees:
                out.append(f"fees_sweep.{key}: is the fees wallet itself ({fees!r})")
        return out


# ---------------------------------------------------------------------------------------------
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
    max_open_positions: Int = Field(default=3, ge=1, le=1000)
    # only these are copied; an empty list copies nothing
    allowed_symbols: Annotated[list[Symbol], AfterValidator(_no_duplicates)] = Field(
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


class TxGuardConfig(Section):
    hard_disable_send_tx: StrictBool = True


class RpcConfig(Section):
    timeout_s: Annotated[PositiveDecimal, Field(le=300)] = Decimal(10)


class IndexerConfig(Section):
    enabled: StrictBool = False
    program_ids: list[str] = Field(default_factory=list)
    usdc_mint: str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"  # swaps quoted in it are priced
    sol_price_usd: NonNegativeDecimal = Decimal(0)  # prices SOL-quoted swaps; 0: not priced
    slots_per_tick: Int = Field(
        default=20, ge=1, le=10_000
    )  # enabled: new slots scanned each engine tick


# ---------------------------------------------------------------------------------------------
# [notify]: Telegram and webhook notifications (engine/notify/). The tokens and the webhook URL
# are secrets (environment or .env), never here.

NotifyChannel = Literal["telegram", "webhook"]
NotifyEvent = Literal[
    "entry_filled",
    "exit_filled",
    "stop_loss",
    "protection_lost",
    "kill_switch",
    "engine_error",
    "engine_stopped",
    "finance_alert",
    "daily_summary",
]
NOTIFY_EVENTS: tuple[str, ...] = get_args(NotifyEvent)
NotifySeverity = Literal["info", "warning", "error", "critical"]


def _hh_mm(value: str) -> str:
    hour, sep, minute = value.partition(":")
    ok = sep and len(hour) == 2 and len(minute) == 2 and hour.isdigit() and minute.isdigit()
    if not ok or int(hour) > 23 or int(minute) > 59:
        raise ValueError("must be HH:MM in UTC, e.g. 21:00")
    return value


class NotifyConfig(Section):
    """``[notify]``: which events go out, from which severity, on which channels (none: off)."""

    channels: list[NotifyChannel] = Field(default_factory=list)
    events: list[NotifyEvent] = Field(
        default_factory=lambda: cast("list[NotifyEvent]", list(NOTIFY_EVENTS))
    )
    min_severity: NotifySeverity = "info"
    daily_summary_utc: Annotated[str, AfterValidator(_hh_mm)] = "21:00"
    heartbeat_hours: Int = Field(default=0, ge=0, le=168)  # 0: no heartbeat
    queue_size: Int = Field(default=100, ge=1, le=10_000)

    @field_validator("channels", "events")
    @classmethod
    def _no_repeats(cls, values: list[str]) -> list[str]:
        return _no_duplicates(values)


class PathsConfig(Section):
    data_dir: str = "data"
    # below this much free space on the data dir's disk: a failing health check and an alert
    min_free_mb: Int = Field(default=100, ge=0, le=10_000_000)


class KobeConfig(Section):
    mode: Mode = Mode.PAPER
    symbols: Annotated[list[Symbol], AfterValidator(_no_duplicates)] = Field(
        default_factory=lambda: ["BTC/USDT", "ETH/USDT", "SOL/USDT"], min_length=1
    )
    exchange: ExchangeConfig = Field(default_factory=ExchangeConfig)
    paper: PaperConfig = Field(default_factory=PaperConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    finance: FinanceConfig = Field(default_factory=FinanceConfig)
    wallet_flows: WalletFlowsConfig = Field(default_factory=WalletFlowsConfig)
    strategies: StrategiesConfig = Field(default_factory=StrategiesConfig)
    tx_guard: TxGuardConfig = Field(default_factory=TxGuardConfig)
    rpc: RpcConfig = Field(default_factory=RpcConfig)
    indexer: IndexerConfig = Field(default_factory=IndexerConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)

    @field_validator("wallet_flows")
    @classmethod
    def _flows_name_wallets(
        cls, flows: WalletFlowsConfig, info: ValidationInfo
    ) -> WalletFlowsConfig:
        finance = info.data.get("finance")  # absent when [finance] itself was refused
        if isinstance(finance, FinanceConfig):
            problems = flows.problems_with(finance)
            if problems:
                raise ValueError("; ".join(problems))
        return flows

    @field_validator("strategies")
    @classmethod
    def _strategies_name_wallets(
        cls, strategies: StrategiesConfig, info: ValidationInfo
    ) -> StrategiesConfig:
        finance = info.data.get("finance")  # absent when [finance] itself was refused
        if isinstance(finance, FinanceConfig):
            problems = strategies.problems_with(finance)
            if problems:
                raise ValueError("; ".join(problems))
        return strategies


# ---------------------------------------------------------------------------------------------
# Error lines


def _show(value: Any) -> str:
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, dict):
        text = "a table"
    elif isinstance(value, list):
        text = "a list"
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problem(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    if msg.startswith("Input should be "):
        return "must be " + msg[len("Input should be ") :]
    if msg.startswith("Input "):
        return msg[len("Input ") :]
    return msg[:1].lower() + msg[1:]


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def error_lines(source: str, exc: ValidationError) -> list[str]:
    """One line per problem: ``<source>: <key path>: <problem> (got <value>)``."""
    lines = []
    for err in exc.errors():
        where = _path(tuple(err["loc"]))
        value = err.get("input")
        whole_section = isinstance(value, dict) and err["type"] == "value_error"
        got = "" if err["type"] == "missing" or whole_section else f" (got {_show(value)})"
        lines.append(f"{source}: {where}: {_problem(err)}{got}")
    return lines


# ---------------------------------------------------------------------------------------------
# Load and save


def parse_config(text: str, source: str = "kobe.toml") -> KobeConfig:
    try:
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: TOML syntax error: {exc}"]) from None
    return config_from_dict(raw, source)


def config_from_dict(raw: Mapping[str, Any], source: str = "kobe.toml") -> KobeConfig:
    try:
        return KobeConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(error_lines(source, exc)) from None


def config_path(env: Mapping[str, str], cwd: Path) -> Path | None:
    """The file to read: ``KOBE_CONFIG``, else ``./kobe.toml`` if present, else None (defaults)."""
    chosen = env.get("KOBE_CONFIG", "")
    if chosen:
        path = Path(chosen)
        path = path if path.is_absolute() else cwd / path
        if not path.is_file():
            raise ConfigError([f"KOBE_CONFIG: file not found (got {chosen!r})"])
        return path
    local = cwd / "kobe.toml"
    return local if local.is_file() else None


def load_config_file(path: Path | None, label: str | None = None) -> KobeConfig:
    if path is None:
        return KobeConfig()
    source = label or path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{source}: cannot read: {exc}"]) from None
    return parse_config(text, source)


def config_to_toml(cfg: KobeConfig) -> str:
    data = cfg.model_dump(mode="python")
    return tomli_w.dumps(_tomlable(data))


def _tomlable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _tomlable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tomlable(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


def save_config(cfg: KobeConfig, path: Path) -> None:
    """Write ``cfg`` as TOML atomically (temp file, fsync, rename); re-validated first."""
    text = config_to_toml(cfg)
    parse_config(text, str(path))  # never write a file that would not load back
    atomic_write_text(path, text)
