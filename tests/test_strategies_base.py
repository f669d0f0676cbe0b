"""Signals, their proposals, the strategies' config (defaults, refusals) and building from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from engine.config import ConfigError, KobeConfig, load_config_file, parse_config
from engine.exchange.base import OrderType, Side
from engine.proposal import Sizing, Source
from engine.strategies import (
    TICK_SECONDS,
    Signal,
    SignalAction,
    build_strategies,
    signal_to_proposal,
)
from engine.strategies.base import significant
from engine.strategies.copy_trading import CopyTrading, JsonlLeaderFeed, StubLeaderFeed
from engine.strategies.memecoin_farming import (
    MemecoinFarming,
    OnchainDryRunProvider,
    StubRandomProvider,
)
from tests.conftest import ROOT

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def entry(**kw: object) -> Signal:
    values: dict[str, object] = {
        "strategy": "memecoin_farming",
        "wallet": "sniper_sol",
        "symbol": "BONK/USDC",
        "action": "enter",
        "side": "buy",
        "size_hint": D(5),
        "stop_loss": D("0.00002"),
        "take_profit": D("0.00003"),
        "reason": "candidate BONK",
        "time": T0,
        "ref": "memecoin_farming-000001",
    }
    values.update(kw)
    return Signal(**values)  # type: ignore[arg-type]


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.lines


# -- Signal ------------------------------------------------------------------------------------


def test_signal_fields_are_typed_and_frozen() -> None:
    s = entry()
    assert s.action is SignalAction.ENTER and s.side is Side.BUY and s.is_entry
    with pytest.raises(AttributeError):
        s.size_hint = D(6)  # type: ignore[misc]
    assert "enter buy BONK/USDC 5 USD (ref memecoin_farming-000001)" in s.describe()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"size_hint": 5.0}, TypeError),
        ({"stop_loss": 0.00002}, TypeError),
        ({"time": datetime(2026, 1, 1)}, ValueError),
        ({"time": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2)))}, ValueError),
        ({"ref": ""}, ValueError),
        ({"action": "hold"}, ValueError),
    ],
)
def test_signal_refuses_floats_naive_times_and_bad_values(
    overrides: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        entry(**overrides)


def test_entry_signal_becomes_a_quote_sized_market_proposal() -> None:
    p = signal_to_proposal(entry())
    assert p.symbol == "BONK/USDC" and p.side is Side.BUY
    assert p.entry_type is OrderType.MARKET and p.sizing is Sizing.QUOTE
    assert p.amount == D(5) and p.wallet == "sniper_sol" and p.source is Source.STRATEGY
    assert p.strategy == "memecoin_farming" and p.reason == "candidate BONK"
    assert (p.stop_loss, p.take_profit) == (D("0.00002"), D("0.00003"))
    bare = signal_to_proposal(entry(), with_exits=False)
    assert bare.stop_loss is None and bare.take_profit is None


def test_an_exit_signal_is_not_a_proposal() -> None:
    with pytest.raises(ValueError, match="only an entry"):
        signal_to_proposal(entry(action="exit", side="sell", qty=D(100)))


def test_significant_digits() -> None:
    assert significant(D("0.0000231234567")) == D("0.0000231235")
    assert significant(D("2.1500049")) == D("2.15000")
    assert significant(D(0)) == 0


def test_tick_period_constant() -> None:
    assert TICK_SECONDS == 60


# -- config ------------------------------------------------------------------------------------


def test_shipped_strategies_section_is_the_builtin_default() -> None:
    shipped = load_config_file(ROOT / "kobe.toml").strategies
    assert shipped == KobeConfig().strategies
    s = shipped
    assert s.memecoin_farming.wallet == "sniper_sol" and s.copy_trading.wallet == "copy_sol"
    assert s.memecoin_farming.provider.kind == "stub_random"
    assert s.copy_trading.feed.kind == "stub"
    assert isinstance(s.dex.fee_pct, Decimal) and s.dex.starting_balance is None


def test_partial_strategy_section_inherits_the_rest() -> None:
    cfg = parse_config("[strategies.copy_trading]\nscale = 0.1\n")
    assert cfg.strategies.copy_trading.scale == D("0.1")
    assert (
        cfg.strategies.copy_trading.max_trade_usd
        == KobeConfig().strategies.copy_trading.max_trade_usd
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            '[strategies.memecoin_farming.provider]\nkind = "magic"',
            "strategies.memecoin_farming.provider.kind: must be",
        ),
        (
            "[strategies.memecoin_farming]\nsl_pct = 100",
            "strategies.memecoin_farming.sl_pct: must be above 0 and below 100 (got 100)",
        ),
        (
            "[strategies.memecoin_farming]\nentry_size_usd = 0",
            "strategies.memecoin_farming.entry_size_usd: must be greater than 0",
        ),
        (
            "[strategies.memecoin_farming]\nhold_time_s = 0",
            "strategies.memecoin_farming.hold_time_s:",
        ),
        (
            "[strategies.memecoin_farming.filters]\nmin_volume = 5",
            "strategies.memecoin_farming.filters.min_volume: unknown key",
        ),
        (
            '[strategies.copy_trading.feed]\nkind = "websocket"',
            "strategies.copy_trading.feed.kind: must be 'stub' or 'jsonl'",
        ),
        (
            '[strategies.copy_trading.feed]\npath = "/etc/passwd"',
            "strategies.copy_trading.feed.path: must be a relative path inside the data dir",
        ),
        (
            '[strategies.copy_trading.feed]\npath = "../leader.jsonl"',
            "strategies.copy_trading.feed.path: must be a relative path inside the data dir",
        ),
        (
            "[strategies.copy_trading]\nscale = 1.5",
            "strategies.copy_trading.scale: must be above 0",
        ),
        (
            "[strategies.copy_trading]\nmax_slippage_pct = 120",
            "strategies.copy_trading.max_slippage_pct: must be between 0 and 100",
        ),
        (
            '[strategies.copy_trading]\nallowed_symbols = ["bonk"]',
            "strategies.copy_trading.allowed_symbols[0]: must look like BASE/QUOTE",
        ),
        (
            '[strategies.copy_trading]\nallowed_symbols = ["BONK/SOL"]',
            "copy_trading.allowed_symbols: BONK/SOL not quoted in dex.quote_asset (USDC)",
        ),
        (
            "[strategies.copy_trading]\nmin_trade_usd = 10\nmax_trade_usd = 5",
            "min_trade_usd (10) must not be above max_trade_usd (5)",
        ),
        ("[strategies.dex]\nfee_pct = -1", "strategies.dex.fee_pct: must be between 0 and 100"),
        ('[strategies.dex]\nquote_asset = "usdc"', "strategies.dex.quote_asset: must be an asset"),
        ("[strategies.dex]\nstarting_balance = -5", "strategies.dex.starting_balance: must not"),
        ('[strategies.copy_trading]\nwallet = "nobody"', "copy_trading.wallet: 'nobody' names no"),
        (
            '[strategies.memecoin_farming]\nwallet = "cex_binance"',
            "memecoin_farming.wallet: 'cex_binance' is a binance trading wallet, not a solana",
        ),
        ("[strategies.grid]\nenabled = true", "strategies.grid: unknown key"),
    ],
)
def test_strategy_config_refusals_name_the_key(text: str, needle: str) -> None:
    lines = errors_of(text)
    assert any(needle in line for line in lines), lines


def test_dex_starting_balance_round_trips_through_toml(tmp_path: Path) -> None:
    from engine.config import config_to_toml, save_config

    cfg = parse_config("[strategies.dex]\nstarting_balance = 100\n")
    assert cfg.strategies.dex.starting_balance == D(100)
    save_config(cfg, tmp_path / "k.toml")
    assert load_config_file(tmp_path / "k.toml") == cfg
    assert "starting_balance" not in config_to_toml(KobeConfig())  # TOML has no null


# -- building ----------------------------------------------------------------------------------


def test_build_strategies_from_the_defaults(tmp_path: Path) -> None:
    strategies = build_strategies(KobeConfig().strategies, tmp_path)
    assert [(s.name, s.wallet) for s in strategies] == [
        ("memecoin_farming", "sniper_sol"),
        ("copy_trading", "copy_sol"),
    ]
    mf, ct = strategies
    assert isinstance(mf, MemecoinFarming) and isinstance(mf.provider, StubRandomProvider)
    assert isinstance(ct, CopyTrading) and isinstance(ct.feed, StubLeaderFeed)


def test_build_other_kinds_and_disabled(tmp_path: Path) -> None:
    cfg = parse_config(
        '[strategies.memecoin_farming.provider]\nkind = "onchain_dry_run"\n'
        '[strategies.copy_trading.feed]\nkind = "jsonl"\npath = "feeds/leader.jsonl"\n'
    )
    mf, ct = build_strategies(cfg.strategies, tmp_path)
    assert isinstance(mf, MemecoinFarming) and isinstance(mf.provider, OnchainDryRunProvider)
    assert mf.provider.indexer_dir == tmp_path / "indexer" and mf.dry_run
    assert isinstance(ct, CopyTrading) and isinstance(ct.feed, JsonlLeaderFeed)
    assert ct.feed.path == tmp_path / "feeds" / "leader.jsonl"
    off = parse_config(
        "[strategies.memecoin_farming]\nenabled = false\n[strategies.copy_trading]\nenabled = false"
    )
    assert build_strategies(off.strategies, tmp_path) == []
