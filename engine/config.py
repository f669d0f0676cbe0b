"""kobe.toml: pydantic v2 models, loading (tomllib) with one clear line per problem, atomic saving.

Which file: ``KOBE_CONFIG`` (a missing file is an error), else ``./kobe.toml``, else the built-in
defaults, which are identical to the shipped ``kobe.toml`` (a test holds them equal). A partial
file inherits every key it leaves out. Unknown keys are refused.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import tomli_w
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.bootstrap import EXCHANGES, Mode
from engine.fsutil import atomic_write_text

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
    base, sep, quote = value.partition("/")
    if not sep or not base or not quote or not value.isupper() or " " in value:
        raise ValueError("must look like BASE/QUOTE in capitals, e.g. BTC/USDT")
    return value


def check_api_url(value: str) -> str:
    """An exchange API base: empty (none) or ``scheme://host:port``."""
    if value == "":
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be scheme://host:port, e.g. http://127.0.0.1:8080")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise ValueError("must be scheme://host:port, e.g. http://127.0.0.1:8080")
    return value.rstrip("/")


Percent = Annotated[Decimal, AfterValidator(_between(0, 100))]
PositiveDecimal = Annotated[Decimal, AfterValidator(_positive)]
NonNegativeDecimal = Annotated[Decimal, AfterValidator(_non_negative)]
UtcDatetime = Annotated[datetime, AfterValidator(_aware_utc)]
Symbol = Annotated[str, AfterValidator(_symbol)]
ApiUrl = Annotated[str, AfterValidator(check_api_url)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ExchangeConfig(Section):
    name: ExchangeName = "binance"
    api_url: ApiUrl = ""
    timeout_ms: int = Field(default=10_000, ge=100, le=120_000)


class PaperConfig(Section):
    quote_asset: str = "USDT"
    balances: dict[str, NonNegativeDecimal] = Field(default_factory=lambda: {"USDT": Decimal(1000)})
    maker_fee_pct: Percent = Decimal("0.1")
    taker_fee_pct: Percent = Decimal("0.1")
    slippage_bps: NonNegativeDecimal = Decimal(5)
    price_source: Literal["simulated", "exchange"] = "simulated"
    seed: int = 7
    sim_start: UtcDatetime = datetime(2026, 1, 1, tzinfo=UTC)


class RouterConfig(Section):
    default_quote_usd: PositiveDecimal = Decimal(15)
    exits: Literal["auto", "watchdog"] = "auto"


class RiskConfig(Section):
    warning_drawdown_pct: Percent = Decimal(10)
    max_drawdown_pct: Percent = Decimal(20)
    max_losing_streak: int = Field(default=5, ge=1)
    min_operational_capital_usd: NonNegativeDecimal = Decimal(100)
    max_daily_loss_usd: NonNegativeDecimal = Decimal(15)
    max_risk_per_trade_pct: Percent = Decimal(2)
    warning_size_factor: Annotated[Decimal, AfterValidator(_between(0, 1))] = Decimal("0.5")
    cooldown_after_loss_s: int = Field(default=0, ge=0)
    on_trip: Literal["halt", "flatten"] = "halt"

    @model_validator(mode="after")
    def _warning_below_critical(self) -> RiskConfig:
        if self.warning_drawdown_pct >= self.max_drawdown_pct:
            raise ValueError(
                f"warning_drawdown_pct ({self.warning_drawdown_pct}) must be below "
                f"max_drawdown_pct ({self.max_drawdown_pct})"
            )
        return self


class FinanceConfig(Section):
    profile_id: str = "LIVE_150"
    capital_usd: PositiveDecimal = Decimal(150)


class WalletFlowsConfig(Section):
    enabled: bool = True


class StrategyToggle(Section):
    enabled: bool = True


class StrategiesConfig(Section):
    memecoin_farming: StrategyToggle = Field(default_factory=StrategyToggle)
    copy_trading: StrategyToggle = Field(default_factory=StrategyToggle)


class TxGuardConfig(Section):
    hard_disable_send_tx: bool = True


class RpcConfig(Section):
    timeout_s: PositiveDecimal = Decimal(10)


class IndexerConfig(Section):
    enabled: bool = False
    program_ids: list[str] = Field(default_factory=list)


class PathsConfig(Section):
    data_dir: str = "data"


class KobeConfig(Section):
    mode: Mode = Mode.PAPER
    symbols: list[Symbol] = Field(
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
    paths: PathsConfig = Field(default_factory=PathsConfig)


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
