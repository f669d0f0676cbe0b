"""Scenario tests of the risk engine and the kill switch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.audit import AuditLog
from engine.config import RiskConfig
from engine.proposal import Source
from engine.risk import KillState, RiskEngine, queue_risk_command, read_kill_switch
from engine.trades import ClosedTrade, TradeStore
from tests.conftest import CliRunner


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def step(self, seconds: int = 60) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def engine(tmp_path: Path, clock: Clock, **risk: object) -> RiskEngine:
    cfg = RiskConfig(**{"min_operational_capital_usd": Decimal(0), **risk})  # type: ignore[arg-type]
    return RiskEngine(tmp_path, cfg, clock, audit=AuditLog(tmp_path, clock))


@pytest.mark.parametrize("n", [1, 3, 5])
def test_losing_streak_trips_at_n_not_before(tmp_path: Path, clock: Clock, n: int) -> None:
    r = engine(tmp_path, clock, max_losing_streak=n, max_daily_loss_usd=Decimal(0))
    for _ in range(n - 1):
        r.on_trade_closed(Decimal("-1"))
        clock.step()
    assert r.kill_switch().state is KillState.ARMED
    r.on_trade_closed(Decimal("-1"))
    ks = r.kill_switch()
    assert ks.tripped and f"{n} losing trades in a row" in ks.reason


def test_a_win_resets_the_streak(tmp_path: Path, clock: Clock) -> None:
    r = engine(tmp_path, clock, max_losing_streak=3, max_daily_loss_usd=Decimal(0))
    for pnl in ("-1", "-1", "2", "-1", "-1"):
        r.on_trade_closed(Decimal(pnl))
    assert r.snapshot().losing_streak == 2
    assert not r.kill_switch().tripped


def test_drawdown_rise_then_fall_warns_then_trips(tmp_path: Path, clock: Clock) -> None:
    r = engine(tmp_path, clock, warning_drawdown_pct=Decimal(10), max_drawdown_pct=Decimal(20))
    path = [Decimal(v) for v in ("150", "170", "200", "185", "179", "170", "161", "160")]
    states = []
    for equity in path:
        r.on_equity(equity, {"cex_binance": equity / 10})
        states.append(r.kill_switch().state)
        clock.step()
    # peak 200: 185 is 7.5% down (armed), 179 is 10.5% (warning), 161 is 19.5% (warning), 160 is 20%
    assert states[:4] == [KillState.ARMED] * 4
    assert states[4:7] == [KillState.WARNING] * 3
    assert states[7] is KillState.TRIPPED
    snap = r.snapshot()
    assert snap.peak_equity == Decimal(200) and snap.drawdown_pct == Decimal(20)
    assert "drawdown 20.00% from peak 200" in snap.reason
    assert snap.wallet_drawdown_pct == {"cex_binance": Decimal(20)}


def test_warning_scales_risk_sizing_and_recovers(tmp_path: Path, clock: Clock) -> None:
    r = engine(tmp_path, clock, warning_size_factor=Decimal("0.25"))
    r.on_equity(Decimal(200))
    assert r.size_factor() == Decimal(1)
    r.on_equity(Decimal(178))
    assert r.kill_switch().state is KillState.WARNING
    assert r.size_factor() == Decimal("0.25")
    r.on_equity(Decimal(195))
    assert r.kill_switch().state is KillState.ARMED
    assert r.size_factor() == Decimal(1)


def test_warning_clears_only_below_ninety_percent_of_its_level(
    tmp_path: Path, clock: Clock
) -> None:
    """A drawdown hovering at the warning level does not flip the switch (and journal a line,
    and raise an alert) every tick: WARNING clears below 9 % for a 10 % level."""
    r = engine(tmp_path, clock, warning_drawdown_pct=Decimal(10), max_drawdown_pct=Decimal(20))
    r.on_equity(Decimal(200))
    states = []
    # 10.05 %, 9.95 %, 10.05 %, 9.5 %, 9.05 %, 8.95 % (clears), 9.5 % (stays armed), 10 %
    for equity in ("179.9", "180.1", "179.9", "181", "181.9", "182.1", "181", "180"):
        clock.step()
        r.on_equity(Decimal(equity))
        states.append(r.kill_switch().state.value)
    assert states == ["WARNING"] * 5 + ["ARMED", "ARMED", "WARNING"]
    lines = (tmp_path / "risk_journal.jsonl").read_text().splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert events.count("warning") == 2 and events.count("armed") == 1


def _trade(n: int, pnl: str, clock: Clock, strategy: str = "manual") -> ClosedTrade:
    return ClosedTrade(
        f"kobe-t{n}", clock.now, clock.now, "cex_binance", strategy, "BTC/USDT", "buy",
        Decimal("0.001"), Decimal(95000), Decimal(95000), Decimal("0.01"), Decimal(pnl), "test",
    )  # fmt: skip


def test_a_dust_sweep_neither_lengthens_nor_ends_a_losing_streak(
    tmp_path: Path, clock: Clock
) -> None:
    """A dust sweep is no trading decision: its PnL counts for today, but a sweep sold a cent
    up must not hide three real losses in a row (nor one sold a cent down trip the switch),
    also when the streak is counted again from trades.jsonl after the cache is lost."""
    r = engine(tmp_path, clock, max_losing_streak=3, max_daily_loss_usd=Decimal(0))
    sweep = Source.DUST_SWEEP.value
    history = [("-1", "manual"), ("-1", "manual"), ("0.01", sweep), ("-0.01", sweep)]
    store = TradeStore(tmp_path)
    for n, (pnl, strategy) in enumerate(history):
        trade = _trade(n, pnl, clock, strategy)
        store.append(trade)
        r.on_trade_closed(trade.pnl, trade.trade_id, streak=strategy != sweep)
        clock.step()
    snap = r.snapshot()
    assert (snap.losing_streak, snap.pnl_day, snap.state) == (2, Decimal(-2), KillState.ARMED)
    r.close()
    (tmp_path / "execution_runtime.json").unlink()  # lost: counted again from the trades
    again = engine(tmp_path, clock, max_losing_streak=3, max_daily_loss_usd=Decimal(0))
    assert (again.snapshot().losing_streak, again.snapshot().pnl_day) == (2, Decimal(-2))


def test_min_capital_and_daily_loss_trip(tmp_path: Path, clock: Clock) -> None:
    r = engine(tmp_path / "a", clock, min_operational_capital_usd=Decimal(100))
    r.on_equity(Decimal(120))
    r.on_equity(Decimal(99))
    assert "below the minimum operational capital 100" in r.kill_switch().reason
    d = engine(tmp_path / "b", clock, max_daily_loss_usd=Decimal(15), max_losing_streak=99)
    d.on_trade_closed(Decimal(-10))
    assert not d.kill_switch().tripped
    d.on_trade_closed(Decimal(-5))
    assert d.kill_switch().reason == "realized loss today 15 reached max_daily_loss_usd 15"


def test_cooldown_after_a_loss_blocks_entries_for_a_while(tmp_path: Path, clock: Clock) -> None:
    r = engine(tmp_path, clock, cooldown_after_loss_s=300)
    assert r.entry_block() is None
    r.on_trade_closed(Decimal(-1))
    assert r.entry_block() == "cooling down after a loss until 2026-03-01T12:05:00Z"
    clock.step(301)
    assert r.entry_block() is None


def test_tripped_survives_a_restart_and_only_reset_opens_it(tmp_path: Path, clock: Clock) -> None:
    r = engine(tmp_path, clock)
    r.trip("manual: fat finger", "cockpit")
    r.on_equity(Decimal(500))  # recovering equity never un-trips
    again = engine(tmp_path, clock)
    assert again.kill_switch().tripped and again.kill_switch().reason == "manual: fat finger"
    assert read_kill_switch(tmp_path).tripped
    assert again.entry_block() == "kill switch is TRIPPED: manual: fat finger"
    again.reset("cli")
    assert read_kill_switch(tmp_path).state is KillState.ARMED
    actions = [line["action"] for line in AuditLog(tmp_path, clock).tail(10)]
    assert actions == ["kill_switch_trip", "kill_switch_reset"]


def test_queued_commands_are_applied_once(tmp_path: Path, clock: Clock) -> None:
    r = engine(tmp_path, clock)
    queue_risk_command(tmp_path, "trip", "cli", clock, reason="manual: from the CLI")
    assert not r.kill_switch().tripped  # not yet: the engine applies at its next tick
    assert r.apply_commands() == 1
    assert r.kill_switch().reason == "manual: from the CLI"
    assert r.apply_commands() == 0
    restarted = engine(tmp_path, clock)
    assert restarted.apply_commands() == 0  # not applied twice across a restart
    assert restarted.kill_switch().tripped


def test_unreadable_state_fails_closed(tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "execution_runtime.json").write_text("{torn")
    r = engine(tmp_path, clock)
    assert r.kill_switch().tripped
    assert "unreadable" in r.kill_switch().reason


def test_cli_trip_status_reset(cli: CliRunner, workdir: Path) -> None:
    r = cli("risk", "status", "--json")
    assert r.code == 0 and json.loads(r.out)["state"] == "ARMED"
    r = cli("risk", "trip", "--reason", "news spike")
    assert r.code == 0 and "TRIPPED (manual: news spike)" in r.out
    status = json.loads(cli("risk", "status", "--json").out)
    assert status["state"] == "TRIPPED" and status["reason"] == "manual: news spike"
    assert set(status) == {
        "state",
        "reason",
        "since",
        "peak_equity",
        "drawdown_pct",
        "losing_streak",
        "queued",
    }
    r = cli("risk", "reset")  # no --yes and no terminal: a usage error, nothing changed
    assert r.code == 2
    assert json.loads(cli("risk", "status", "--json").out)["state"] == "TRIPPED"
    r = cli("risk", "reset", "--yes")
    assert r.code == 0 and "ARMED" in r.out
    audit = [json.loads(x) for x in (workdir / "data" / "audit.jsonl").read_text().splitlines()]
    assert [a["action"] for a in audit] == ["kill_switch_trip", "kill_switch_reset"]
    assert audit[1]["source"] == "cli"


def test_a_trip_queued_while_another_command_holds_the_lock_blocks_trading(
    cli: CliRunner, workdir: Path
) -> None:
    from engine.lock import DataDirLock

    with DataDirLock(workdir / "data", "kobe orders"):
        r = cli("risk", "trip", "--reason", "queued")
        assert r.code == 0 and "queued" in r.out
        assert read_kill_switch(workdir / "data").tripped  # fails closed at once
    r = cli(
        "trade",
        "--symbol",
        "BTC/USDT",
        "--side",
        "buy",
        "--type",
        "market",
        "--quote",
        "15",
        "--yes",
    )
    assert r.code == 1 and "kill switch is TRIPPED: manual: queued" in r.err


def test_a_lost_state_file_never_replays_a_past_reset(tmp_path: Path, clock: Clock) -> None:
    r = engine(tmp_path, clock)
    queue_risk_command(tmp_path, "trip", "cli", clock, reason="manual: one")
    r.apply_commands()
    queue_risk_command(tmp_path, "reset", "cli", clock)
    r.apply_commands()
    r.trip("drawdown 25%", "risk")
    (tmp_path / "execution_runtime.json").unlink()  # lost (or torn)
    again = engine(tmp_path, clock)
    assert again.kill_switch().tripped  # fails closed: the old reset is not applied again
    resets = [a for a in AuditLog(tmp_path, clock).tail(20) if a["action"] == "kill_switch_reset"]
    assert len(resets) == 1
