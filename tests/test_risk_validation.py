from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from engine.config import RiskConfig
from engine.exchange.base import MarketRules, OrderType, Side
from engine.proposal import Proposal, Sizing, Source
from engine.risk import KillState, KillSwitch, read_kill_switch, validate_proposal

BTC = MarketRules(
    symbol="BTC/USDT",
    base="BTC",
    quote="USDT",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.00001"),
    min_qty=Decimal("0.00001"),
    min_notional=Decimal(5),
)
ARMED = KillSwitch(KillState.ARMED)


def prop(**kw: object) -> Proposal:
    base: dict[str, object] = dict(
        symbol="BTC/USDT",
        side=Side.BUY,
        entry_type=OrderType.MARKET,
        sizing=Sizing.QUOTE,
        amount=Decimal(15),
        wallet="cex_binance",
        source=Source.CLI,
        stop_loss=Decimal(90000),
        take_profit=Decimal(100000),
    )
    base.update(kw)
    return Proposal(**base)  # type: ignore[arg-type]


def check(p: Proposal, **kw: object) -> list[str]:
    args: dict[str, object] = dict(
        market=BTC,
        reference_price=Decimal(95000),
        risk=RiskConfig(),
        kill_switch=ARMED,
        mode_problems=[],
        base_held=Decimal(0),
    )
    args.update(kw)
    return validate_proposal(p, **args)  # type: ignore[arg-type]


def test_a_good_buy_passes() -> None:
    assert check(prop()) == []


@pytest.mark.parametrize(
    ("proposal", "kw", "needle"),
    [
        (prop(symbol="DOGE/USDT"), {"market": None}, "unknown symbol DOGE/USDT"),
        (prop(stop_loss=Decimal(96000)), {}, "stop-loss 96000 must be below the entry 95000"),
        (prop(take_profit=Decimal(94000)), {}, "take-profit 94000 must be above the entry 95000"),
        (prop(amount=Decimal(0)), {}, "quote amount must be positive (got 0)"),
        (prop(amount=Decimal(-5)), {}, "quote amount must be positive (got -5)"),
        (
            prop(entry_type=OrderType.LIMIT, price=Decimal(-1)),
            {"reference_price": Decimal(-1)},
            "price must be positive (got -1)",
        ),
        (prop(sizing=Sizing.RISK, amount=Decimal(3)), {}, "risk 3% is above the per-trade cap 2%"),
        (
            prop(sizing=Sizing.RISK, amount=Decimal(1), stop_loss=None),
            {},
            "risk sizing needs a stop-loss",
        ),
        (
            prop(),
            {"kill_switch": KillSwitch(KillState.TRIPPED, "drawdown 21%")},
            "kill switch is TRIPPED: drawdown 21%",
        ),
        (
            prop(),
            {"mode_problems": ["ALLOW_LIVE is not 1"]},
            "mode not allowed: ALLOW_LIVE is not 1",
        ),
        (
            prop(side=Side.SELL, stop_loss=Decimal(99000), take_profit=Decimal(90000)),
            {},
            "short selling is refused on a spot market: you hold no BTC",
        ),
        (prop(entry_type=OrderType.LIMIT, price=None), {}, "a limit entry needs a price"),
        (prop(price=Decimal(95000)), {}, "a price is only for limit entries"),
    ],
)
def test_each_refusal_is_named(proposal: Proposal, kw: dict[str, object], needle: str) -> None:
    reasons = check(proposal, **kw)
    assert any(needle in r for r in reasons), reasons


def test_sell_of_a_held_asset_passes_and_sides_flip() -> None:
    p = prop(side=Side.SELL, stop_loss=Decimal(99000), take_profit=Decimal(90000))
    assert check(p, base_held=Decimal("0.01")) == []
    wrong = prop(side=Side.SELL, stop_loss=Decimal(90000), take_profit=Decimal(99000))
    reasons = check(wrong, base_held=Decimal("0.01"))
    assert any("stop-loss 90000 must be above the entry" in r for r in reasons)
    assert any("take-profit 99000 must be below the entry" in r for r in reasons)


def test_every_reason_is_listed_at_once() -> None:
    reasons = check(
        prop(stop_loss=Decimal(96000), take_profit=Decimal(94000)),
        kill_switch=KillSwitch(KillState.TRIPPED, "manual"),
    )
    assert len(reasons) == 3


def test_kill_switch_reader_armed_when_absent_tripped_when_set(tmp_path: Path) -> None:
    assert read_kill_switch(tmp_path).state is KillState.ARMED
    (tmp_path / "execution_runtime.json").write_text(
        json.dumps({"state": "TRIPPED", "reason": "manual: test", "since": "2026-01-01T00:00:00Z"})
    )
    ks = read_kill_switch(tmp_path)
    assert ks.tripped and ks.reason == "manual: test" and ks.since is not None


@pytest.mark.parametrize("content", ["{not json", '{"state": "SLEEPY"}', "[]", '{"reason": "x"}'])
def test_kill_switch_reader_fails_closed(tmp_path: Path, content: str) -> None:
    (tmp_path / "execution_runtime.json").write_text(content)
    ks = read_kill_switch(tmp_path)
    assert ks.tripped
    assert "execution_runtime.json unreadable" in ks.reason
