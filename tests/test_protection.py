"""Protective exits never vanish silently (issue 13, items 1 and 3)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from engine.exchange.base import OrderType, Side
from engine.proposal import Source
from engine.watchdog import WatchState
from tests.test_execution import Rig, entry


def test_a_stop_loss_is_not_dropped_when_the_oco_fails_the_watchdog_closes_at_the_stop(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    placed = rig.engine.submit(
        entry(
            entry_type=OrderType.LIMIT,
            price=Decimal(95),  # rests below the price of 100
            stop_loss=Decimal(90),
            take_profit=Decimal(200),
        )
    )
    cid = placed.entry.client_id
    assert placed.entry.status.is_open
    rig.move("SOL/USDT", "60")  # gaps through the limit and the stop: the OCO is refused
    assert any("could not be placed" in m and "watchdog guards it" in m for _, m in rig.alerts)
    rig.move("SOL/USDT", "61")
    rig.move("SOL/USDT", "62")
    assert [t.trade_id for t in rig.closed] == [cid], "the position must be closed at its stop"
    assert "stop-loss touched" in rig.closed[0].reason
    assert rig.engine.positions() == []
    assert rig.router.watchdog.get(cid) is None


def test_a_refused_exit_backs_off_with_one_alert(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (tmp_path / "kobe.toml").write_text("")
    rig.router.exits_policy = "watchdog"
    placed = rig.engine.submit(entry())
    cid = placed.entry.client_id
    assert rig.router.watchdog.get(cid).state is WatchState.WATCHING  # type: ignore[union-attr]
    # the SOL is gone from the account (sold by hand): every sell is refused
    sol = rig.exchange.get_balance("SOL")
    rig.exchange.create_order(
        "SOL/USDT", Side.SELL, OrderType.MARKET, sol, None, {"client_id": "x1"}
    )
    for _ in range(30):  # 30 minutes below the stop
        rig.move("SOL/USDT", "94")
    refused = [m for _, m in rig.alerts if "exit was refused" in m]
    assert len(refused) == 1 and "insufficient" in refused[0].lower()
    sells = [e for e in rig.router.journal_state().values() if e.client_id == f"{cid}sl"]
    intents = sum(1 for _ in sells)
    assert intents <= 1  # one index entry per client id: count the journal instead
    lines = [e for e in rig.router.journal.events() if e.client_id == f"{cid}sl"]
    attempts = sum(1 for e in lines if e.event == "intent")
    assert 3 <= attempts <= 12, attempts  # backed off: far fewer than one per tick
    assert rig.router.watchdog.get(cid).attempts == attempts  # type: ignore[union-attr]


def test_cancelling_an_oco_leg_leaves_the_position_unprotected_and_says_so(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    placed = rig.engine.submit(entry())
    [pos] = rig.engine.positions()
    assert rig.engine.protection(pos) == "exchange"
    sl = next(o for o in placed.exits if o.client_id.endswith("sl"))
    rig.router.cancel(sl.id, Source.COCKPIT)  # Binance cancels the OCO as a whole
    rig.engine.poll()
    [lost] = rig.engine.unprotected()
    assert lost.entry_client_id == placed.entry.client_id
    critical = [m for sev, m in rig.alerts if sev == "critical" and "UNPROTECTED" in m]
    assert len(critical) == 1 and "SOL/USDT" in critical[0]
    rig.engine.poll()
    assert len([m for sev, m in rig.alerts if "UNPROTECTED" in m]) == 1  # once per episode


def test_a_position_too_small_to_sell_is_dust_flagged_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.router.exits_policy = "watchdog"
    placed = rig.engine.submit(entry())
    cid = placed.entry.client_id
    rig.move("SOL/USDT", "0.5")  # the stop is touched, but 0.149 SOL is worth 0.07 USDT
    rig.move("SOL/USDT", "0.5")
    dust = [m for _, m in rig.alerts if "is dust" in m]
    assert len(dust) == 1 and "below the minimum" in dust[0]
    assert rig.engine.positions() == [] and [p.entry_client_id for p in rig.engine.book.dust()] == [
        cid
    ]
    assert rig.router.watchdog.get(cid) is None
