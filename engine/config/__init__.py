"""kobe.toml: pydantic v2 models, loading with one clear line per problem, atomic saving.

``engine.config.fields``: the field types and the ``Section`` base; ``sections``: the engine's
sections; ``finance``: ``[finance]`` and ``[wallet_flows]``; ``strategies``: ``[strategies]``;
``toml_file``: ``KobeConfig`` (the whole file), loading and saving. Everything a caller needs is
importable from ``engine.config``.
"""

from engine.bootstrap import EXCHANGES, Mode
from engine.config.fields import MAX_SEED, YEAR_S, check_api_url, is_loopback
from engine.config.finance import (
    CompoundingConfig,
    FeesPolicyConfig,
    FeesSweepConfig,
    FinanceConfig,
    FlowRuleConfig,
    PoliciesConfig,
    ProfitsSweepConfig,
    RiskWalletConfig,
    WalletConfig,
    WalletFlowsConfig,
)
from engine.config.sections import (
    NOTIFY_EVENTS,
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
from engine.config.strategies import (
    CopyFeedConfig,
    CopyTradingConfig,
    DexConfig,
    MemecoinFarmingConfig,
    MemecoinFiltersConfig,
    MemecoinProviderConfig,
    StrategiesConfig,
)
from engine.config.toml_file import (
    ConfigError,
    KobeConfig,
    config_from_dict,
    config_path,
    config_to_toml,
    error_lines,
    load_config_file,
    parse_config,
    save_config,
)

__all__ = [
    "EXCHANGES",
    "MAX_SEED",
    "NOTIFY_EVENTS",
    "YEAR_S",
    "CompoundingConfig",
    "ConfigError",
    "CopyFeedConfig",
    "CopyTradingConfig",
    "DexConfig",
    "ExchangeConfig",
    "FeesPolicyConfig",
    "FeesSweepConfig",
    "FinanceConfig",
    "FlowRuleConfig",
    "IndexerConfig",
    "KobeConfig",
    "MemecoinFarmingConfig",
    "MemecoinFiltersConfig",
    "MemecoinProviderConfig",
    "Mode",
    "NotifyConfig",
    "PaperConfig",
    "PathsConfig",
    "PoliciesConfig",
    "ProfitsSweepConfig",
    "RiskConfig",
    "RiskWalletConfig",
    "RouterConfig",
    "RpcConfig",
    "StrategiesConfig",
    "TxGuardConfig",
    "WalletConfig",
    "WalletFlowsConfig",
    "check_api_url",
    "config_from_dict",
    "config_path",
    "config_to_toml",
    "error_lines",
    "is_loopback",
    "load_config_file",
    "parse_config",
    "save_config",
]
