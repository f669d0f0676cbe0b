"""``engine.stats`` and ``kobe stats``: the whole journal's figures, kept in a cache that only
ever saves work (a cache that does not match the journal is rebuilt)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from engine.stats import CACHE_FILE, load_stats
from tests.conftest import CliRunner
from tests.test_cockpit_keys import write_trades


def test_figures_per_strategy_wallet_and_day(workdir: Path) -> None:
    write_trades(workdir, 10, {2: "stop-loss", 5: "stop-loss"})
    stats = load_stats(workdir / "data")
    t = stats.total
    assert (t.trades, t.wins, t.win_rate_pct) == (10, 8, Decimal("80.0"))
    assert t.pnl == Decimal("8") * Decimal("0.1") - Decimal("1.0")
    assert t.fees == Decimal("1.90")
    assert (t.best, t.worst) == (Decimal("0.1"), Decimal("-0.5"))
    assert stats.by_strategy["manual"].trades == 10
    assert stats.by_wallet["cex_binance"].pnl == t.pnl
    assert list(stats.by_day) == ["2026-01-01"]


def test_the_cache_covers_what_it_read_and_new_lines_are_added(workdir: Path) -> None:
    data = workdir / "data"
    write_trades(workdir, 5)
    assert load_stats(data).total.trades == 5
    cached = json.loads((data / CACHE_FILE).read_text())
    assert cached["offset"] == (data / "trades.jsonl").stat().st_size
    write_trades(workdir, 3)  # appended: trade ids repeat, the lines are new
    assert load_stats(data).total.trades == 8


def test_a_cache_that_does_not_match_the_journal_is_rebuilt(workdir: Path) -> None:
    data = workdir / "data"
    write_trades(workdir, 5)
    load_stats(data)
    (data / "trades.jsonl").unlink()
    write_trades(workdir, 2)  # a new, shorter journal
    assert load_stats(data).total.trades == 2
    (data / CACHE_FILE).write_text("{not json")
    assert load_stats(data).total.trades == 2
    for damaged in ("[]", "null", '{"version": 1, "stats": []}', "5"):  # JSON, not a cache
        (data / CACHE_FILE).write_text(damaged)
        assert load_stats(data).total.trades == 2, damaged


def test_a_torn_last_line_is_counted_once_complete(workdir: Path) -> None:
    data = workdir / "data"
    write_trades(workdir, 3)
    path = data / "trades.jsonl"
    line = path.read_text().splitlines()[0]
    with open(path, "a") as fh:
        fh.write(line[:30])
    assert load_stats(data).total.trades == 3
    with open(path, "a") as fh:
        fh.write(line[30:] + "\n")
    assert load_stats(data).total.trades == 4


def test_kobe_stats_json_and_text(cli: CliRunner, workdir: Path) -> None:
    write_trades(workdir, 4, {0: "stop-loss"})
    r = cli("stats", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["total"]["trades"] == 4 and out["total"]["win_rate_pct"] == "75.0"
    assert out["by_wallet"]["cex_binance"]["fees"] == "0.76"
    assert set(out) == {"total", "by_strategy", "by_wallet", "by_day"}
    r = cli("stats")
    assert r.code == 0 and "per strategy" in r.out and "manual" in r.out


def test_a_cache_holding_an_absurd_figure_is_rebuilt(workdir: Path) -> None:
    data = workdir / "data"
    write_trades(workdir, 3)
    load_stats(data)
    good = json.loads((data / CACHE_FILE).read_text())
    good["stats"]["total"]["pnl"] = "NaN"  # offset and fingerprint still match the journal
    (data / CACHE_FILE).write_text(json.dumps(good))
    assert load_stats(data).total.pnl.is_finite()


def test_an_absurd_number_in_a_trade_is_a_skipped_line(workdir: Path) -> None:
    data = workdir / "data"
    write_trades(workdir, 3)
    path = data / "trades.jsonl"
    line = json.loads(path.read_text().splitlines()[0])
    with open(path, "a") as fh:
        for field, value in (("pnl", "1e999"), ("pnl", "NaN"), ("fees", "NaN"), ("fees", "1e40")):
            fh.write(json.dumps({**line, field: value}) + "\n")
    assert load_stats(data).total.trades == 3
