"""kobe.toml as a whole: ``KobeConfig``, loading (tomllib) with one clear line per problem, and
atomic saving.

Which file: ``KOBE_CONFIG`` (a missing file is an error), else ``./kobe.toml``, else the built-in
defaults, which are identical to the shipped ``kobe.toml`` (a test holds them equal). A partial
file inherits every key it leaves out. Unknown keys are refused.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import tomli_w
from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from engine.bootstrap import Mode
from engine.config.fields import Section, Symbol, no_duplicates
from engine.config.finance import FinanceConfig, WalletFlowsConfig
from engine.config.sections import (
    ExchangeConfig,
    IndexerConfig,
    NotifyConfig,
    PaperConfig,
    PathsConfig,
    RiskConfig,
    RouterConfig,
    RpcConfig,
    TxGuardConfig,
)
from engine.config.strategies import StrategiesConfig
from engine.fsutil import atomic_write_text


class ConfigError(Exception):
    """Bad configuration or environment. ``lines`` holds one line per problem. Exit code 2."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


class KobeConfig(Section):
    mode: Mode = Mode.PAPER
    symbols: Annotated[list[Symbol], AfterValidator(no_duplicates)] = Field(
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
    except RecursionError:  # a few KB of [[[[ or {a={a= nest past the parser's stack
        raise ConfigError([f"{source}: TOML nested too deep to be a Kobe config"]) from None
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
            problem = "not a regular file" if path.exists() else "file not found"
            raise ConfigError([f"KOBE_CONFIG: {problem} (got {chosen!r})"])
        return path
    local = cwd / "kobe.toml"
    if local.is_file():
        return local
    if local.exists() or local.is_symlink():  # a directory, a dangling link: not the defaults
        raise ConfigError(["kobe.toml: not a regular file (restore it, or remove it to run on "
                           "the built-in defaults)"])  # fmt: skip
    return None


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
