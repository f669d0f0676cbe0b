"""The engine's sections of kobe.toml: ``[exchange]``, ``[paper]``, ``[router]``, ``[risk]``,
``[tx_guard]``, ``[rpc]``, ``[indexer]``, ``[notify]`` and ``[paths]``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal, cast, get_args

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from engine.config.fields import (
    MAX_SEED,
    YEAR_S,
    ApiUrl,
    ExchangeName,
    Int,
    NonNegativeDecimal,
    Number,
    Percent,
    PositiveDecimal,
    Section,
    UtcDatetime,
    between,
    no_duplicates,
)


class ExchangeConfig(Section):
    name: ExchangeName = "binance"
    api_url: ApiUrl = ""
    timeout_ms: Int = Field(default=10_000, ge=100, le=120_000)


SIM_START_RANGE = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _sim_start(value: datetime) -> datetime:
    """The simulated clock's start: ``kobe run --ticks`` adds up to 10^7 minutes to it, and the
    journals' times and ids derive from it, so it stays in this century."""
    lo, hi = SIM_START_RANGE
    if not lo <= value < hi:
        raise ValueError(f"must be from {lo:%Y-%m-%d} to before {hi:%Y-%m-%d}")
    return value


class PaperConfig(Section):
    quote_asset: str = "USDT"
    balances: dict[str, NonNegativeDecimal] = Field(default_factory=lambda: {"USDT": Decimal(1000)})
    maker_fee_pct: Percent = Decimal("0.1")
    taker_fee_pct: Percent = Decimal("0.1")
    slippage_bps: NonNegativeDecimal = Decimal(5)
    price_source: Literal["simulated", "exchange"] = "simulated"
    seed: Int = Field(default=7, ge=0, le=MAX_SEED)
    sim_start: Annotated[UtcDatetime, AfterValidator(_sim_start)] = datetime(2026, 1, 1, tzinfo=UTC)


class RouterConfig(Section):
    default_quote_usd: PositiveDecimal = Decimal(15)
    exits: Literal["auto", "watchdog"] = "auto"
    # the limit of a stop leg, this far beyond its stop price (the same on every venue)
    stop_limit_offset_pct: Annotated[Decimal, AfterValidator(between(0, 50))] = Decimal("0.5")
    # a stop that triggered but rests at its limit after a gap: sold at market once it has
    # rested this long, or once the price is this far past its limit
    stop_rest_timeout_s: Int = Field(default=60, ge=1, le=86_400)
    stop_rest_distance_pct: Percent = Decimal(1)
    # a market buy is sized for a fill this far above the ask (every venue; paper: more where
    # its own slippage and book need more), so that it never spends more than it may
    market_slippage_bps: Annotated[NonNegativeDecimal, Field(le=1000)] = Decimal(20)


class RiskConfig(Section):
    warning_drawdown_pct: Percent = Decimal(10)
    max_drawdown_pct: Percent = Decimal(20)
    max_losing_streak: Int = Field(default=5, ge=1, le=10_000)
    min_operational_capital_usd: NonNegativeDecimal = Decimal(100)
    max_daily_loss_usd: NonNegativeDecimal = Decimal(15)
    max_risk_per_trade_pct: Percent = Decimal(2)
    warning_size_factor: Annotated[Number, AfterValidator(between(0, 1))] = Decimal("0.5")
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
    digits = (hour + minute).isascii() and hour.isdigit() and minute.isdigit()
    ok = sep and len(hour) == 2 and len(minute) == 2 and digits
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
        return no_duplicates(values)


class PathsConfig(Section):
    data_dir: str = "data"
    # below this much free space on the data dir's disk: a failing health check and an alert
    min_free_mb: Int = Field(default=100, ge=0, le=10_000_000)
