"""Memecoin farming: the seeded stub provider, time-based entries, exits (TP, SL, hold time), the
onchain_dry_run provider on a fixture file. Deterministic: injected times, seeded RNGs."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.config import MemecoinFarmingConfig, MemecoinFiltersConfig
from engine.strategies.base import TICK_SECONDS, PositionState, Signal, SignalAction
from engine.strategies.memecoin_farming import (
    Candidate,
    MemecoinDataProvider,
    MemecoinFarming,
    OnchainDryRunProvider,
    StubRandomProvider,
    filter_problems,
)
from engine.strategies.memecoin_farming.candidates import MAX_FUTURE_SKEW_S

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(tick: int) -> datetime:
    return T0 + timedelta(seconds=TICK_SECONDS * tick)


class ScriptedProvider(MemecoinDataProvider):
    """Candidates set by the test."""

    kind = "scripted"

    def __init__(self, candidates: list[Candidate]) -> None:
        self.by_symbol = {c.symbol: c for c in candidates}
        self.kept: list[set[str]] = []

    def update(self, now: datetime, keep: Collection[str] = ()) -> None:
        self.kept.append(set(keep))

    def candidates(self) -> list[Candidate]:
        return [self.by_symbol[s] for s in sorted(self.by_symbol)]

    def set_price(self, symbol: str, price: str) -> None:
        self.by_symbol[symbol] = replace(self.by_symbol[symbol], price_usd=D(price))


def coin(symbol: str = "BONK", price: str = "0.00002", **kw: object) -> Candidate:
    values: dict[str, object] = {
        "mint": f"mint-{symbol}",
        "symbol": f"{symbol}/USDC",
        "price_usd": D(price),
        "liquidity_usd": D(50_000),
        "volume_usd": D(20_000),
        "created_at": T0,
        "first_price_usd": D(price) * D("0.9"),
    }
    values.update(kw)
    return Candidate(**values)  # type: ignore[arg-type]


def config(**kw: object) -> MemecoinFarmingConfig:
    return MemecoinFarmingConfig.model_validate(kw)


def run(strategy: MemecoinFarming, ticks: int, start: int = 0) -> list[tuple[int, Signal]]:
    """Drive the strategy like the engine would, filling at the provider's price."""
    out = []
    for i in range(start, start + ticks):
        now = at(i)
        for s in strategy.tick(now):
            out.append((i, s))
            price = strategy.provider.price(s.symbol)
            assert price is not None
            if s.action is SignalAction.ENTER:
                strategy.on_entry_filled(s.ref, price, (s.size_hint / price).quantize(D(1)), now)
            else:
                strategy.on_position_closed(s.ref, price, now)
    return out


# -- the stub provider -------------------------------------------------------------------------


def snapshot(p: MemecoinDataProvider) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    return [(c.symbol, c.price_usd, c.liquidity_usd, c.volume_usd) for c in p.candidates()]


def test_stub_provider_same_seed_same_candidates_and_prices() -> None:
    a, b, c = (StubRandomProvider(rng=random.Random(s)) for s in (7, 7, 8))
    for i in range(120):
        for p in (a, b, c):
            p.update(at(i))
    assert snapshot(a) == snapshot(b)
    assert snapshot(a) != snapshot(c)
    assert all(isinstance(x.price_usd, Decimal) for x in a.candidates())


def test_stub_provider_moves_in_fixed_steps_whatever_the_callers_tick() -> None:
    every_tick = StubRandomProvider(seed=3)
    every_ten = StubRandomProvider(seed=3)
    for i in range(101):
        every_tick.update(at(i))
        if i % 10 == 0:
            every_ten.update(at(i))
    assert snapshot(every_tick) == snapshot(every_ten)


def test_stub_candidates_appear_over_time_and_prices_move_both_ways() -> None:
    p = StubRandomProvider(seed=7)
    p.update(at(0))
    first = {c.symbol: c.price_usd for c in p.candidates()}
    assert len(first) == 3
    for i in range(1, 121):
        p.update(at(i))
    now = p.candidates()
    assert len(now) > len(first)
    assert all(c.symbol.endswith("/USDC") for c in now)
    changes = [c.change_pct() for c in now if c.first_price_usd is not None]
    assert any(x > 0 for x in changes) and any(x < 0 for x in changes)


def test_stub_forgets_old_candidates_but_keeps_held_ones() -> None:
    p = StubRandomProvider(seed=7)
    p.update(at(0))
    held = p.candidates()[0].symbol
    for i in range(1, 5 * 60 + 1):  # five hours: past the candidates' lifetime
        p.update(at(i), keep={held})
    symbols = {c.symbol for c in p.candidates()}
    assert held in symbols
    assert all(c.created_at > at(0) for c in p.candidates() if c.symbol != held)


# -- filters -----------------------------------------------------------------------------------


def test_filters_name_each_problem() -> None:
    f = MemecoinFiltersConfig()
    ok = coin()
    assert filter_problems(ok, f, T0) == []
    bad = coin(liquidity_usd=D(100), volume_usd=D(10), first_price_usd=D("0.00003"))
    problems = filter_problems(bad, f, T0 + timedelta(hours=2))
    assert len(problems) == 4
    assert problems[0].startswith("liquidity 100 < 10000")
    assert problems[1].startswith("volume 10 < 5000")
    assert problems[2].startswith("price change -33.33% < 2%")
    assert problems[3] == "age 7200 s > 3600 s"


def test_a_candidate_first_seen_in_the_future_is_refused_past_the_skew() -> None:
    """A block time ahead of the (injected) clock would give a negative age that passes
    ``max_age_s`` for as long as the lie lasts: up to MAX_FUTURE_SKEW_S it is clock skew."""
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    assert f"more than {MAX_FUTURE_SKEW_S} s (`MAX_FUTURE_SKEW_S`" in readme
    f = MemecoinFiltersConfig()
    assert filter_problems(coin(created_at=T0 + timedelta(seconds=120)), f, T0) == []
    ahead = coin(created_at=T0 + timedelta(seconds=121))
    assert filter_problems(ahead, f, T0) == ["first seen 121 s in the future > 120 s"]
    far = coin(created_at=datetime(2099, 1, 1, tzinfo=UTC))
    assert filter_problems(far, f, T0)[0].startswith("first seen 2303683200 s in the future")


def test_an_indexed_candidate_dated_in_the_future_is_never_entered(tmp_path: Path) -> None:
    indexer = tmp_path / "indexer"
    indexer.mkdir()
    (indexer / "events.jsonl").write_text(
        line(
            kind="candidate",
            mint="Future1",
            symbol="SOON",
            price_usd="1",
            liquidity_usd=90_000,
            volume_usd=90_000,  # the most traded: it would be chosen first
            time="2099-01-01T00:00:00Z",
        )
        + line(
            kind="candidate",
            mint="Now1",
            symbol="NOW",
            price_usd="1",
            liquidity_usd=50_000,
            volume_usd=9_000,
            time="2026-01-01T00:00:00Z",
        )
    )
    momentum_off = config(filters={"min_price_change_pct": -100})
    s = MemecoinFarming(momentum_off, OnchainDryRunProvider(indexer))
    s.tick(at(1))
    assert [w.symbol for w in s.would_send] == ["NOW/USDC"]


# -- entries -----------------------------------------------------------------------------------


def test_entry_picks_the_most_traded_candidate_passing_the_filters() -> None:
    provider = ScriptedProvider(
        [
            coin("AAA", volume_usd=D(9_000)),
            coin("BBB", volume_usd=D(90_000), liquidity_usd=D(500)),  # too thin
            coin("CCC", volume_usd=D(30_000)),
        ]
    )
    s = MemecoinFarming(config(), provider)
    [signal] = s.tick(T0)
    assert signal.action is SignalAction.ENTER and signal.symbol == "CCC/USDC"
    assert signal.wallet == "sniper_sol" and signal.strategy == "memecoin_farming"
    assert signal.size_hint == D(5) and signal.ref == "memecoin_farming-000001"
    assert signal.take_profit == D("0.000023") and signal.stop_loss == D("0.000018")
    assert "liquidity 50000 USD, volume 30000 USD" in signal.reason
    assert s.positions()[0].state is PositionState.PENDING


def test_entries_respect_the_interval_and_max_open_positions() -> None:
    provider = ScriptedProvider([coin(f"C{i}") for i in range(6)])
    s = MemecoinFarming(
        config(entry_interval_s=300, max_open_positions=2, hold_time_s=99_999), provider
    )
    signals = run(s, 30)
    entries = [(i, sig.symbol) for i, sig in signals if sig.action is SignalAction.ENTER]
    assert entries == [(0, "C0/USDC"), (5, "C1/USDC")]  # 300 s apart, then full


def test_a_failed_entry_frees_its_slot_and_is_not_retried_on_the_same_coin() -> None:
    provider = ScriptedProvider([coin("AAA"), coin("BBB", volume_usd=D(10_000))])
    s = MemecoinFarming(config(entry_interval_s=60, max_open_positions=1), provider)
    [first] = s.tick(at(0))
    s.on_entry_failed(first.ref, "insufficient balance")
    assert s.positions() == []
    [second] = s.tick(at(1))
    assert second.symbol == "BBB/USDC"  # AAA was tried already


# -- exits -------------------------------------------------------------------------------------


def opened(**cfg: object) -> tuple[MemecoinFarming, ScriptedProvider, Signal]:
    provider = ScriptedProvider([coin("AAA", price="1")])
    s = MemecoinFarming(config(**cfg), provider)
    [signal] = s.tick(at(0))
    s.on_entry_filled(signal.ref, D("1.01"), D(4), at(0))  # filled a bit above the signal price
    return s, provider, signal


def test_take_profit_exit_from_the_fill_price() -> None:
    s, provider, entry = opened(tp_pct=10)
    provider.set_price("AAA/USDC", "1.11")  # TP is 1.01 x 1.10 = 1.111
    assert s.tick(at(1)) == []
    provider.set_price("AAA/USDC", "1.111")
    [exit_] = s.tick(at(2))
    assert exit_.action is SignalAction.EXIT and exit_.ref == entry.ref
    assert exit_.side.value == "sell" and exit_.qty == D(4) and exit_.size_hint == D("4.444")
    assert exit_.reason == "take-profit: price 1.111 >= 1.111"
    assert s.positions()[0].state is PositionState.CLOSING
    assert s.tick(at(3)) == []  # not sent twice
    s.on_position_closed(entry.ref, D("1.11"), at(3))
    assert s.positions() == [] and s.book.counts.wins == 1


def test_stop_loss_exit() -> None:
    s, provider, entry = opened(sl_pct=10)
    provider.set_price("AAA/USDC", "0.909")  # SL is 1.01 x 0.9 = 0.909
    [exit_] = s.tick(at(1))
    assert exit_.reason == "stop-loss: price 0.909 <= 0.909" and exit_.ref == entry.ref


def test_hold_time_exit_and_a_failed_exit_is_retried() -> None:
    s, _, entry = opened(hold_time_s=600)
    for i in range(1, 10):
        assert s.tick(at(i)) == []
    [exit_] = s.tick(at(10))
    assert exit_.reason == "hold time 600 s reached (price 1)"
    s.on_exit_failed(entry.ref, "venue down")
    [again] = s.tick(at(11))
    assert again.ref == entry.ref and again.action is SignalAction.EXIT


def test_exit_when_the_candidate_vanishes() -> None:
    s, provider, entry = opened()
    del provider.by_symbol["AAA/USDC"]
    [exit_] = s.tick(at(1))
    assert exit_.ref == entry.ref and "gone from the provider" in exit_.reason
    assert exit_.size_hint == D("4.04")  # at the last known (fill) price


def test_held_symbols_are_kept_by_the_provider() -> None:
    s, provider, _ = opened()
    s.tick(at(1))
    assert provider.kept[-1] == {"AAA/USDC"}


# -- a whole seeded session --------------------------------------------------------------------


def test_seeded_session_enters_and_exits_by_tp_sl_and_hold_time_deterministically() -> None:
    def session(seed: int) -> list[tuple[int, Signal]]:
        s = MemecoinFarming(config(), StubRandomProvider(rng=random.Random(seed)))
        return run(s, 1500)

    a = session(7)
    assert a == session(7)  # same seed, same signals
    assert a != session(8)
    entries = [sig for _, sig in a if sig.action is SignalAction.ENTER]
    exits = [sig for _, sig in a if sig.action is SignalAction.EXIT]
    assert len(entries) >= 10 and len(exits) >= 10
    kinds = {sig.reason.split(":")[0].split(" ")[0] for sig in exits}
    assert {"take-profit", "stop-loss", "hold"} <= kinds
    assert {sig.ref for sig in exits} <= {sig.ref for sig in entries}
    assert all(sig.wallet == "sniper_sol" for _, sig in a)


# -- onchain_dry_run ---------------------------------------------------------------------------


def line(**kw: object) -> str:
    return json.dumps(kw) + "\n"


def write_fixture(indexer: Path) -> Path:
    indexer.mkdir(parents=True, exist_ok=True)
    path = indexer / "candidates.jsonl"
    path.write_text(
        line(
            kind="candidate",
            mint="Mint111",
            symbol="BONK",
            price_usd="0.0000231",
            liquidity_usd=52000,
            volume_usd="8000",
            slot=312345678,
            time="2026-01-01T00:00:00Z",
        )
        + line(
            kind="candidate",
            mint="Mint222",
            symbol="THIN/USDC",
            price_usd="0.5",
            liquidity_usd=900,  # below min liquidity
            volume_usd=9000,
            slot=312345679,
            time="2026-01-01T00:00:01Z",
        )
        + "this is not json\n"
        + line(kind="swap", mint="Unknown", price_usd="1", time="2026-01-01T00:00:02Z")
        + line(
            kind="swap",
            mint="Mint111",
            price_usd="0.0000240",
            amount_usd="350",
            slot=312345690,
            time="2026-01-01T00:00:07Z",
        )
        + '{"kind": "swap", "mint": "Mint111", "price_u'  # torn: still being written
    )
    return path


def test_onchain_dry_run_reads_the_indexer_fixture(tmp_path: Path) -> None:
    provider = OnchainDryRunProvider(tmp_path / "indexer")
    provider.update(T0)  # no folder yet: nothing, no error
    assert provider.candidates() == []
    write_fixture(tmp_path / "indexer")
    provider.update(T0)
    bonk, thin = provider.candidates()
    assert bonk.symbol == "BONK/USDC" and bonk.mint == "Mint111"
    assert bonk.price_usd == D("0.0000240") and bonk.volume_usd == D(8350)
    assert bonk.first_price_usd == D("0.0000231") and bonk.slot == 312345690
    assert bonk.created_at == T0 and bonk.liquidity_usd == D(52000)
    assert thin.symbol == "THIN/USDC"
    assert provider.lines_skipped == 2  # not JSON; a swap of an unknown mint


def test_onchain_dry_run_logs_what_it_would_send_and_sends_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_fixture(tmp_path / "indexer")
    s = MemecoinFarming(config(), OnchainDryRunProvider(tmp_path / "indexer"))
    with caplog.at_level(logging.INFO):
        assert s.tick(at(1)) == []
    [would] = list(s.would_send)
    assert would.action is SignalAction.ENTER and would.symbol == "BONK/USDC"  # THIN filtered out
    assert "would send memecoin_farming/sniper_sol: enter buy BONK/USDC 5 USD" in caplog.text
    assert s.markets() == [] and s.prices() == {}  # a dry run needs nothing of the DEX venue
    assert s.positions()[0].symbol == "BONK/USDC"  # taken as filled, to log its exit later
    # the torn line completes with a price at the take-profit: the would-be exit is logged too
    with path.open("a") as fh:
        fh.write('sd": "0.0000290", "time": "2026-01-01T00:02:00Z"}\n')
    assert s.tick(at(2)) == []
    exit_ = s.would_send[-1]
    assert exit_.action is SignalAction.EXIT and exit_.ref == would.ref
    assert exit_.reason.startswith("take-profit: price 0.000029")
    assert s.positions() == []


def test_a_position_from_an_earlier_run_is_adopted_and_exited() -> None:
    provider = ScriptedProvider([coin("AAA", price="1.2")])
    s = MemecoinFarming(config(tp_pct=10, max_open_positions=1), provider)
    s.adopt("memecoin_farming-000007", "AAA/USDC", D("1.05"), D(4), at(0))
    [exit_] = s.tick(at(1))  # 1.2 >= TP 1.155
    assert exit_.ref == "memecoin_farming-000007" and exit_.reason.startswith("take-profit")
    s.on_position_closed(exit_.ref, D("1.2"), at(1))
    s.adopt("memecoin_farming-000008", "GONE/USDC", D(2), D(1), at(0))
    [gone] = s.tick(at(2))
    assert "gone from the provider" in gone.reason and gone.size_hint == D(2)
    s.on_position_closed(gone.ref, D(2), at(2))
    provider.by_symbol["BBB/USDC"] = coin("BBB")
    [entry] = s.tick(at(20))
    assert entry.ref == "memecoin_farming-000009"  # numbers never reused


def test_the_readmes_indexer_lines_are_read_as_it_says(tmp_path: Path) -> None:
    """README, "Memecoin farming": the two example lines (`candidate`, `swap`) in `<data
    dir>/indexer/*.jsonl`: "A swap sets the price and adds `amount_usd` to the volume"."""
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    block = readme.split('kind = "onchain_dry_run"', 1)[1].split("```json\n", 1)[1]
    lines = [x.strip() for x in block.split("```", 1)[0].splitlines() if x.strip()]
    candidate, swap = (json.loads(x) for x in lines)
    (tmp_path / "indexer").mkdir()
    (tmp_path / "indexer" / "events.jsonl").write_text("\n".join(lines) + "\n")
    provider = OnchainDryRunProvider(tmp_path / "indexer")
    provider.update(T0)
    [seen] = provider.candidates()
    assert seen.symbol == f"{candidate['symbol']}/USDC"
    assert seen.price_usd == D(swap["price_usd"])
    assert seen.volume_usd == D(candidate["volume_usd"]) + D(swap["amount_usd"])
    assert seen.liquidity_usd == D(candidate["liquidity_usd"])


@pytest.mark.parametrize(
    ("key", "value", "gone"),
    [
        ("min_liquidity_usd", D(100), "liquidity"),
        ("min_volume_usd", D(10), "volume"),
        ("min_price_change_pct", D(-100), "price change"),  # kobe.toml: "-100: off"
        ("max_age_s", 7200, "age"),
    ],
)
def test_each_filter_key_moves_its_own_limit(key: str, value: object, gone: str) -> None:
    """Each `[strategies.memecoin_farming.filters]` key sets the limit its filter applies: the
    candidate the defaults refuse on four counts passes that one with the key changed."""
    bad = coin(liquidity_usd=D(100), volume_usd=D(10), first_price_usd=D("0.00003"))
    later = T0 + timedelta(hours=2)
    problems = filter_problems(bad, MemecoinFiltersConfig.model_validate({key: value}), later)
    assert len(problems) == 3 and not [p for p in problems if p.startswith(gone)], problems
