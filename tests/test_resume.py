"""Strategies that resume (issue 15): a restart continues the same market; the stub walks are fair;
the copy feed's offset is written at the first start; headless runs print the finance alerts."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.config import CopyTradingConfig
from engine.journal import iter_jsonl
from engine.strategies.base import TICK_SECONDS
from engine.strategies.copy_trading import PriceUpdate, StubLeaderFeed, build_feed
from engine.strategies.memecoin_farming import StubRandomProvider
from tests.conftest import CliRunner

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_restart_gives_the_same_trades_as_a_straight_run(cli: CliRunner, tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for d in (straight, resumed):  # a switch that never trips: every trade of the run counts
        d.mkdir()
        (d / "kobe.toml").write_text(
            "[risk]\nmax_losing_streak = 10000\nmax_daily_loss_usd = 0\n"
            "min_operational_capital_usd = 0\nmax_drawdown_pct = 90\nwarning_drawdown_pct = 80\n"
        )
    assert cli("run", "--headless", "--ticks", "700", cwd=straight).code == 0
    for _ in range(2):
        assert cli("run", "--headless", "--ticks", "350", cwd=resumed).code == 0
    trades = (straight / "data" / "trades.jsonl").read_bytes()
    assert len(list(iter_jsonl(straight / "data" / "trades.jsonl"))) >= 20
    assert {t["strategy"] for t in iter_jsonl(straight / "data" / "trades.jsonl")} == {
        "memecoin_farming",
        "copy_trading",
    }
    assert (resumed / "data" / "trades.jsonl").read_bytes() == trades
    orders = (straight / "data" / "logs" / "orders.jsonl").read_bytes()
    assert (resumed / "data" / "logs" / "orders.jsonl").read_bytes() == orders
    closes = [t["reason"] for t in iter_jsonl(resumed / "data" / "trades.jsonl")]
    assert not any("candidate gone" in r for r in closes)


def _mean_step_bps(prices: list[dict[str, Decimal]]) -> Decimal:
    changes = [
        (now[s] / before[s] - 1) * 10_000
        for before, now in itertools.pairwise(prices)
        for s in before
        if s in now
    ]
    assert len(changes) > 10_000
    return sum(changes, Decimal(0)) / len(changes)


def test_the_stub_walks_have_no_drift() -> None:
    memecoin: list[dict[str, Decimal]] = []
    leader: list[dict[str, Decimal]] = []
    for seed in range(4):
        provider = StubRandomProvider(rng=random.Random(seed))
        feed = StubLeaderFeed(rng=random.Random(seed))
        for step in range(1500):
            now = T0 + timedelta(seconds=TICK_SECONDS * step)
            provider.update(now)
            memecoin.append({c.symbol: c.price_usd for c in provider.candidates()})
            leader.append({e.symbol: e.price for e in feed.poll(now) if isinstance(e, PriceUpdate)})
        memecoin.append({})  # no step across seeds
        leader.append({})
    assert abs(_mean_step_bps(memecoin)) < 5  # it was +17.5 bps a step
    assert abs(_mean_step_bps(leader)) < 5


def test_the_stub_sources_continue_after_a_restore() -> None:
    for make in (
        lambda: StubRandomProvider(rng=random.Random(3)),
        lambda: StubLeaderFeed(rng=random.Random(3)),
    ):
        whole, first = make(), make()
        times = [T0 + timedelta(seconds=TICK_SECONDS * i) for i in range(400)]
        for t in times[:200]:
            first.update(t) if isinstance(first, StubRandomProvider) else first.poll(t)  # type: ignore[union-attr]
        second = make()
        second.restore(json.loads(json.dumps(first.state())))  # through JSON, as on disk
        for t in times:
            whole.update(t) if isinstance(whole, StubRandomProvider) else whole.poll(t)  # type: ignore[union-attr]
        for t in times[200:]:
            second.update(t) if isinstance(second, StubRandomProvider) else second.poll(t)  # type: ignore[union-attr]
        assert second.state() == whole.state()


def test_the_copy_feed_offset_is_written_at_the_first_start(tmp_path: Path) -> None:
    cfg = CopyTradingConfig.model_validate({"feed": {"kind": "jsonl"}})
    feed_file = tmp_path / cfg.feed.path
    now = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
    first = build_feed(cfg, tmp_path)  # no feed file yet, nothing read
    assert first.poll(now) == []
    assert json.loads(feed_file.with_name(feed_file.name + ".offset").read_text()) == {"offset": 0}
    feed_file.write_text(  # appended while Kobe was stopped
        '{"kind": "trade", "id": "t-1", "symbol": "WIF/USDC", "side": "buy", '
        '"price": "2.15", "size_usd": "120", "time": "2026-01-01T00:01:00Z"}\n'
    )
    restarted = build_feed(cfg, tmp_path)
    assert [e.id for e in restarted.poll(now)] == ["t-1"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("offset", [-5, 3.5, True, "7"])
def test_a_copy_feed_offset_that_is_not_a_byte_count_starts_at_the_end(
    tmp_path: Path, offset: object
) -> None:
    """-5 was an OSError at every poll (seek before the start); 3.5 or true read from mid-line."""
    cfg = CopyTradingConfig.model_validate({"feed": {"kind": "jsonl"}})
    feed_file = tmp_path / cfg.feed.path
    feed_file.parent.mkdir(parents=True)
    feed_file.write_text(
        '{"kind": "trade", "id": "t-1", "symbol": "WIF/USDC", "side": "buy", '
        '"price": "2.15", "size_usd": "120", "time": "2026-01-01T00:01:00Z"}\n'
    )
    feed_file.with_name(feed_file.name + ".offset").write_text(json.dumps({"offset": offset}))
    feed = build_feed(cfg, tmp_path)
    assert feed.poll(datetime(2026, 1, 1, 0, 10, tzinfo=UTC)) == []
    assert not feed.problems.drain()  # nothing read from mid-line


def test_headless_prints_finance_alerts_once_while_they_last(cli: CliRunner, workdir: Path) -> None:
    (workdir / "kobe.toml").write_text(
        "[risk]\nmin_operational_capital_usd = 151\n"  # equity 150: below from the first tick
    )
    r = cli("run", "--headless", "--ticks", "20")
    assert r.code == 0, r.err
    lines = [x for x in r.out.splitlines() if "alert  CRITICAL equity_below_min" in x]
    assert len(lines) == 1
    assert "below the minimum operational capital (151 USD)" in lines[0]


class _CountingRandom(random.Random):
    calls = 0

    def randrange(self, *args: int) -> int:  # type: ignore[override]
        self.calls += 1
        return super().randrange(*args)


def test_a_stub_source_resumed_months_later_walks_a_bounded_catch_up() -> None:
    """A cockpit opened on the wall clock after a simulated run (``kobe run --ticks``, whose clock
    starts at paper.sim_start) walked every minute in between: its first tick took minutes, and
    the copy feed replayed months of leader trades. At most STUB_CATCH_UP steps are walked."""
    from engine.exchange.prices import STUB_CATCH_UP

    later = T0 + timedelta(days=300)
    feed = StubLeaderFeed(rng=random.Random(3))
    feed.poll(T0)
    events = feed.poll(later)
    steps = {e.time for e in events if isinstance(e, PriceUpdate)}
    assert len(steps) == STUB_CATCH_UP and max(steps) == later
    draws = _CountingRandom(3)
    provider = StubRandomProvider(rng=draws)
    provider.update(T0)
    draws.calls = 0
    provider.update(later)  # unbounded: 432,000 steps, minutes of work
    assert provider.state()["time"] == later.isoformat()
    assert draws.calls < STUB_CATCH_UP * 200
    short = StubLeaderFeed(rng=random.Random(3))  # a short gap is walked step by step, as before
    short.poll(T0)
    gap = [
        e
        for e in short.poll(T0 + timedelta(seconds=TICK_SECONDS * 10))
        if isinstance(e, PriceUpdate)
    ]
    assert len({e.time for e in gap}) == 10
