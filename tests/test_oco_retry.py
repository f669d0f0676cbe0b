"""A Binance OCO the exchange refused is sent again (README "Exits that fail after the fill"):
later polls retry it with backoff on the injected clock, under the same client ids, looked up
before any re-send; the watchdog guards the position meanwhile and hands over once the
exchange holds the OCO. A refusal no retry can pass, or the last try, is said once.

The router drives the real ccxt, through ``CcxtExchange``, against the Binance simulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.config import KobeConfig
from engine.exchange.base import OrderType, Side
from engine.exchange.ccxt_exchange import CcxtExchange
from engine.fsutil import StateError
from engine.journal import OrderJournal
from engine.proposal import Proposal, Sizing, Source
from engine.risk import RiskEngine
from engine.router import Router, StaticWallets
from engine.router.orders import OCO_TRIES
from engine.watchdog import WATCHDOG_FILE, ExitPlan
from tests import test_ccxt_contract as binance_contract
from tests.binance_sim import BinanceSim
from tests.test_router import Clock

sim = binance_contract.sim
sleeps = binance_contract.sleeps
unknown = binance_contract.unknown
default_env = binance_contract.default_env
make_exchange = binance_contract.make_exchange

OCO = "/api/v3/orderList/oco"
REFUSED = {"code": -2010, "msg": "Account has insufficient balance for requested action."}


class Rig:
    """The router on the Binance simulator; its clock moves only when the test moves it."""

    def __init__(self, tmp: Path, exchange: CcxtExchange, sim: BinanceSim) -> None:
        self.sim = sim
        self.clock = Clock()
        RiskEngine(tmp, KobeConfig().risk, self.clock).close()
        self.router = Router(
            exchange,
            OrderJournal(tmp),
            data_dir=tmp,
            mode="testnet",
            exchange_name="binance",
            risk=KobeConfig().risk,
            wallets=StaticWallets({"cex_binance": Decimal(200)}),
            clock=self.clock,
            maker_fee_pct=Decimal("0.1"),
            taker_fee_pct=Decimal("0.1"),
        )
        self.alerts: list[tuple[str, str, str]] = []
        self.router.on_alert = lambda *alert: self.alerts.append(alert)

    def buy(self) -> str:
        placed = self.router.submit(
            Proposal(
                symbol="BTC/USDT", side=Side.BUY, entry_type=OrderType.MARKET,
                sizing=Sizing.QUOTE, amount=Decimal(15), wallet="cex_binance",
                source=Source.CLI, stop_loss=Decimal(90000), take_profit=Decimal(100000),
            )
        )  # fmt: skip
        assert placed.entry.filled > 0 and placed.exits == ()
        assert any("the running engine sends the OCO again" in n for n in placed.notes)
        return placed.entry.client_id

    def wait(self, seconds: float) -> None:
        self.clock.now += timedelta(seconds=seconds)
        self.router.poll()

    def sends(self) -> int:
        return self.sim.count("POST", OCO)

    def legs(self) -> list[tuple[str, str]]:
        return sorted((o.client_id, o.status) for o in self.sim.orders.values() if o.list_id > 0)

    def fallbacks(self) -> list[str]:
        return [m for _, code, m in self.alerts if code == "exits_fallback"]


@pytest.fixture
def rig(tmp_path: Path, make_exchange: Callable[..., CcxtExchange], sim: BinanceSim) -> Rig:
    return Rig(tmp_path, make_exchange(), sim)


def test_a_refused_oco_is_sent_again_after_its_backoff_and_the_watchdog_hands_over(
    rig: Rig, sim: BinanceSim
) -> None:
    sim.inject(status=400, body=REFUSED, method="POST", path=OCO)
    cid = rig.buy()
    item = rig.router.watchdog.get(cid)
    assert item is not None and item.exits is ExitPlan.OCO and item.oco_attempts == 1
    [alert] = rig.fallbacks()
    assert "insufficient" in alert and "the OCO is sent again with backoff" in alert
    rig.wait(10)  # within the first 30 s: the watchdog guards it, nothing is sent
    assert rig.sends() == 1 and rig.router.watchdog.get(cid) is not None
    rig.wait(25)
    assert rig.sends() == 2
    assert rig.legs() == [(f"{cid}sl", "NEW"), (f"{cid}tp", "NEW")]
    assert rig.router.watchdog.get(cid) is None  # the exchange holds its exits now
    assert rig.alerts[-1][0] == "info" and "placed after 1 refusal(s)" in rig.alerts[-1][2]
    rig.wait(600)
    assert rig.sends() == 2 and len(rig.fallbacks()) == 2


def test_a_retried_oco_whose_answer_is_lost_is_found_never_sent_twice(
    rig: Rig, sim: BinanceSim
) -> None:
    sim.inject(status=400, body=REFUSED, method="POST", path=OCO)
    cid = rig.buy()
    sim.inject("drop", method="POST", path=OCO)  # placed, the answer never comes
    rig.wait(31)
    assert rig.legs() == [(f"{cid}sl", "NEW"), (f"{cid}tp", "NEW")]  # one OCO, looked up
    assert rig.router.watchdog.get(cid) is None
    rig.wait(600)
    assert rig.legs() == [(f"{cid}sl", "NEW"), (f"{cid}tp", "NEW")]


def test_an_oco_refused_every_time_is_given_up_once_and_the_watchdog_keeps_it(
    rig: Rig, sim: BinanceSim
) -> None:
    sim.inject(status=400, body=REFUSED, method="POST", path=OCO, times=1000)
    cid = rig.buy()
    for _ in range(60):  # five hours, polled every five minutes
        rig.wait(300)
    assert rig.sends() == OCO_TRIES
    [_, given_up] = rig.fallbacks()
    assert f"refused {OCO_TRIES} times" in given_up and "not sent again (the last try)" in given_up
    item = rig.router.watchdog.get(cid)
    assert item is not None and item.exits is ExitPlan.WATCHDOG  # it still guards the stop
    sim.set_price("BTCUSDT", Decimal(89000))
    rig.wait(5)
    assert [o.client_id for o in sim.orders.values() if o.side == "SELL"] == [f"{cid}sl"]


def test_an_oco_the_price_has_passed_is_not_sent_again_and_the_watchdog_sells_once(
    rig: Rig, sim: BinanceSim
) -> None:
    """The price falls through the stop during the backoff: the exchange refuses the OCO for
    its prices, which no retry can change; one alert says so, and the watchdog sells at the
    stop."""
    sim.inject(status=400, body=REFUSED, method="POST", path=OCO)
    cid = rig.buy()
    sim.set_price("BTCUSDT", Decimal(89000))
    rig.wait(31)
    [_, given_up] = rig.fallbacks()
    assert "the price is past its exits (stop-loss 90000 must be below the price 89000" in given_up
    rig.wait(600)
    assert rig.sends() == 2 and len(rig.fallbacks()) == 2
    sells: list[Any] = [o for o in sim.orders.values() if o.side == "SELL"]
    assert [(o.client_id, o.status) for o in sells] == [(f"{cid}sl", "FILLED")]


# ---------------------------------------------------------------------------------------------
# watchdog.json and the clock attacked (review)


def _edit(rig: Rig, **fields: object) -> None:
    path = rig.router.data_dir / WATCHDOG_FILE
    raw = json.loads(path.read_text())
    raw["items"][0].update(fields)
    path.write_text(json.dumps(raw))


def test_a_retry_time_without_a_zone_is_refused_naming_the_field(rig: Rig, sim: BinanceSim) -> None:
    """A hand-edited (or foreign) watchdog.json whose ``oco_retry_at`` has no time zone: no
    aware clock can compare it, and every poll died on a TypeError (not an exchange error),
    so the watchdog guarded nothing. It is refused when read, naming the field."""
    sim.inject(status=400, body=REFUSED, method="POST", path=OCO)
    rig.buy()
    _edit(rig, oco_retry_at="2026-01-01T00:00:00")
    with pytest.raises(StateError, match="oco_retry_at"):
        type(rig.router.watchdog)(rig.router.data_dir, rig.router.mode)


def test_an_oco_retry_time_absurdly_far_ahead_does_not_hold_the_oco_for_good(
    rig: Rig, sim: BinanceSim
) -> None:
    """A watchdog.json whose ``oco_retry_at`` is years ahead (damaged, or written by a clock
    that was wrong): the OCO was never sent again. No backoff is longer than its cap: a time
    past it is due now (as ``retry_at`` already was)."""
    sim.inject(status=400, body=REFUSED, method="POST", path=OCO)
    cid = rig.buy()
    _edit(rig, oco_retry_at="2199-01-01T00:00:00+00:00")
    rig.router.watchdog = type(rig.router.watchdog)(rig.router.data_dir, rig.router.mode)
    rig.wait(31)
    assert rig.sends() == 2 and rig.router.watchdog.get(cid) is None


def test_the_clock_going_backwards_does_not_hold_the_oco_back_for_hours(
    rig: Rig, sim: BinanceSim
) -> None:
    """The system clock is set back an hour during the backoff (NTP, an operator): the retry
    time is then an hour and 30 s ahead, and the OCO waited an hour, not 30 s."""
    sim.inject(status=400, body=REFUSED, method="POST", path=OCO)
    cid = rig.buy()
    rig.clock.now -= timedelta(hours=1)
    rig.wait(31)
    assert rig.sends() == 2 and rig.router.watchdog.get(cid) is None


def test_a_restart_in_the_backoff_keeps_its_count_and_its_time(
    tmp_path: Path, rig: Rig, sim: BinanceSim
) -> None:
    """A new engine on the same data dir (a restart, kill -9) in the middle of the backoff: the
    OCO waits out the time it was given, then is sent once, and the tries already spent count."""
    sim.inject(status=400, body=REFUSED, method="POST", path=OCO, times=OCO_TRIES - 2)
    cid = rig.buy()
    for _ in range(OCO_TRIES - 3):
        rig.wait(300)
    assert rig.sends() == OCO_TRIES - 2
    again = Rig(tmp_path, rig.router.exchange, sim)  # type: ignore[arg-type]
    again.clock.now = rig.clock.now
    item = again.router.watchdog.get(cid)
    assert item is not None and item.oco_attempts == OCO_TRIES - 2
    again.router.reconcile()
    assert again.sends() == OCO_TRIES - 2  # its time has not come
    again.wait(300)
    assert again.sends() == OCO_TRIES - 1 and again.router.watchdog.get(cid) is None
    assert again.legs() == [(f"{cid}sl", "NEW"), (f"{cid}tp", "NEW")]


class Killed(BaseException):
    """kill -9: nothing after it runs (no except clause of the engine catches it)."""


def test_a_kill_between_the_resend_and_its_journal_line_never_sends_a_second_oco(
    tmp_path: Path, rig: Rig, sim: BinanceSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.inject(status=400, body=REFUSED, method="POST", path=OCO)
    cid = rig.buy()

    def killed(*args: Any, **kwargs: Any) -> None:
        raise Killed

    monkeypatch.setattr(rig.router, "_journal_order", killed)  # the OCO's ack line
    with pytest.raises(Killed):
        rig.wait(31)
    assert rig.sends() == 2
    again = Rig(tmp_path, rig.router.exchange, sim)  # type: ignore[arg-type]
    again.clock.now = rig.clock.now
    again.router.reconcile()
    again.wait(600)
    assert again.sends() == 2 and again.router.watchdog.get(cid) is None
    assert again.legs() == [(f"{cid}sl", "NEW"), (f"{cid}tp", "NEW")]
    assert [e for e in again.alerts if e[1] == "exits_fallback"] == []  # nothing to say now


def test_an_oco_whose_resend_keeps_failing_unanswered_is_not_sent_every_poll(
    rig: Rig, sim: BinanceSim
) -> None:
    """Refused once, then the exchange answers every send with a 503 (nothing placed): each
    poll looked the legs up, found nothing and sent the OCO again, with no backoff and no
    limit: an OCO a tick for as long as the outage lasts. Unanswered sends back off and count
    as tries too; the watchdog guards the position meanwhile."""
    sim.inject(status=400, body=REFUSED, method="POST", path=OCO)
    cid = rig.buy()
    sim.inject(status=503, body="Service Unavailable", method="POST", path=OCO, times=1000)
    rig.wait(31)
    per_try = rig.sends() - 1  # the requests of one send (the exchange client's own retries)
    for _ in range(12 * 60):  # an hour, polled every five seconds
        rig.wait(5)
    assert rig.sends() == 1 + (OCO_TRIES - 1) * per_try  # was 1002: a send each poll
    item = rig.router.watchdog.get(cid)
    assert item is not None and item.exits is ExitPlan.WATCHDOG  # it still guards the stop
