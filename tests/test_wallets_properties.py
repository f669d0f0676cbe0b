"""Property tests over random sequences of closed trades and ticks (hypothesis, derandomized).

- money is conserved: sum of wallets = capital + realized PnL - fees paid out;
- no wallet ever goes below zero;
- caps hold: no flow fills a wallet beyond its cap, nor the risk wallets beyond their share;
- a refused trade changes nothing; a replayed trade or tick moves nothing;
- a restart anywhere in the sequence ends where an uninterrupted run ends.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.config import KobeConfig
from engine.wallets.flows import TRADE_FEES, TRADE_PNL, Ledger, TradeRefused
from engine.wallets.runtime import WalletManager
from tests.test_wallets_support import T0, TIGHT, Clock, cfg_from, manager

D = Decimal
CONFIGS = {"live150": KobeConfig(), "tight": cfg_from(TIGHT)}
RISK = list(KobeConfig().finance.risk_wallets)

PROPS = settings(
    derandomize=True,
    deadline=None,
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Trade:
    trade_id: str
    wallet: str
    pnl: Decimal
    fees: Decimal


@dataclass(frozen=True)
class Tick:
    minutes: int


cents = st.integers(min_value=-2500, max_value=3000).map(lambda c: D(c) / 100)
fees = st.integers(min_value=0, max_value=300).map(lambda c: D(c) / 100)
trades = st.builds(
    Trade,
    trade_id=st.sampled_from([f"T{i}" for i in range(40)]),  # repeats: replays
    wallet=st.sampled_from([*RISK, "vault"]),  # vault: refused
    pnl=cents,
    fees=fees,
)
ticks = st.builds(Tick, minutes=st.sampled_from([0, 1, 5, 17, 60, 61, 600, 1440, 3000]))
events = st.lists(st.one_of(trades, ticks), min_size=1, max_size=60)
config_names = st.sampled_from(sorted(CONFIGS))


@PROPS
@given(name=config_names, seq=events)
def test_money_conserved_nothing_negative_caps_hold(name: str, seq: list[Trade | Tick]) -> None:
    cfg = CONFIGS[name]
    fin = cfg.finance
    led = Ledger(fin, cfg.wallet_flows)
    now = T0
    capital, realized, paid = fin.capital_usd, D(0), D(0)
    booked: set[str] = set()
    for ev in seq:
        before = dict(led.balances)
        if isinstance(ev, Trade):
            try:
                op = led.plan_trade(ev.trade_id, ev.wallet, ev.pnl, ev.fees, now)
            except TradeRefused:
                assert ev.wallet == "vault"  # bad input: nothing planned
                continue
            if ev.trade_id in booked:
                assert op is None  # replay: nothing twice
                continue
            assert op is not None
            led.apply(op)
            booked.add(ev.trade_id)
            if op.refused:
                assert led.balances == before  # refused: nothing moved
                assert -ev.pnl > before[ev.wallet] or ev.fees > 0
                assert [m.amount for m in op.movements] == [0]
                event("a trade refused")
            else:
                realized += ev.pnl
                paid += ev.fees
                assert {m.rule for m in op.movements} <= {TRADE_PNL, TRADE_FEES}
        else:
            now += timedelta(minutes=ev.minutes)
            op = led.plan_tick(now)
            led.apply(op)
            equity = led.equity()
            assert equity == sum(before.values(), D(0))  # flows never create or destroy
            for rule in sorted({m.rule for m in op.movements}):
                event(f"{name}: {rule} moved")
            if any("under its caps" in m.reason for m in op.movements):
                event(f"{name}: a cap limited a flow")
            for m in op.movements:
                cap = fin.cap_usd(m.destination, equity)
                if cap is not None:
                    assert led.balances[m.destination] <= cap, (m, cap)
            if any(m.destination in fin.risk_wallets for m in op.movements):
                at_risk = sum((led.balances[w] for w in fin.risk_wallets), D(0))
                assert at_risk <= equity * fin.policies.max_equity_at_risk_pct / 100
            fees_wallet = fin.fees_policy.wallet
            topped = [m for m in op.movements if m.destination == fees_wallet]
            if topped:
                assert led.balances[fees_wallet] <= fin.fees_policy.buffer_target_usd
            assert led.plan_tick(now).movements == ()  # the same tick again: nothing
        assert all(b >= 0 for b in led.balances.values()), led.balances
        assert led.equity() == capital + realized - paid
        assert led.realized_pnl == realized and led.fees_paid == paid


@settings(PROPS, max_examples=100)
@given(name=config_names, seq=events, data=st.data())
def test_a_restart_anywhere_ends_like_an_uninterrupted_run(
    name: str, seq: list[Trade | Tick], data: st.DataObject
) -> None:
    cfg = CONFIGS[name]
    cut = data.draw(st.integers(min_value=0, max_value=len(seq)), label="cut")
    with tempfile.TemporaryDirectory() as tmp:
        whole = _play(Path(tmp) / "whole", cfg, seq, None)
        again = _play(Path(tmp) / "cut", cfg, seq, cut)
        assert again == whole
        flows_a = Path(tmp, "whole", "wallet_flows.jsonl")
        flows_b = Path(tmp, "cut", "wallet_flows.jsonl")
        assert _bytes(flows_a) == _bytes(flows_b)


def _bytes(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def _play(
    data_dir: Path, cfg: KobeConfig, seq: list[Trade | Tick], cut: int | None
) -> dict[str, object]:
    clock = Clock()
    m = manager(data_dir, clock, cfg)
    if cut is not None:
        _run(m, clock, seq[:cut])
        m.close()
        m = manager(data_dir, clock, cfg)  # restart: snapshot + journal tail
        clock.now = T0
    _run(m, clock, seq)  # deliver everything again: idempotence skips what was done
    m.close()
    led = m.ledger
    return {
        "balances": led.balances,
        "pnl_day": led.pnl_day,
        "unswept": led.unswept,
        "marks": led.marks,
        "fees_day": led.fees_day,
        "seq": m.seq,
    }


def _run(m: WalletManager, clock: Clock, seq: list[Trade | Tick]) -> None:
    for ev in seq:
        if isinstance(ev, Trade):
            with contextlib.suppress(TradeRefused):
                m.on_trade_closed(ev.wallet, ev.pnl, ev.fees, trade_id=ev.trade_id)
        else:
            clock.step(minutes=ev.minutes)
            m.on_tick(clock.now)
