"""``kobe stats [--json]``: trades, win rate, PnL after fees, fees, best and worst trade, over the
whole ``trades.jsonl``, in total and per strategy, per wallet and per day (``engine.stats``).
Live's trades are not shown in paper or testnet, nor theirs in live (exit 1, as ``kobe wallets``)."""

from __future__ import annotations

from typing import Any

from engine.cli.shared import EXIT_OK, EXIT_REFUSED, Context
from engine.stats import Bucket, TradeStats, load_stats
from engine.wallets.runtime import WalletStateError, refuse_other_modes_money


def register(sub: Any) -> None:
    p = sub.add_parser("stats", help="trade statistics per strategy, wallet and day")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_stats)


def cmd_stats(ctx: Context) -> int:
    s = ctx.settings
    try:  # another mode's trades are not shown as this mode's (as ``kobe wallets``)
        refuse_other_modes_money(s.data_dir, s.mode.value)
    except WalletStateError as exc:
        print(f"kobe: stats: {exc}", file=ctx.err)
        return EXIT_REFUSED
    stats = load_stats(s.data_dir)
    if ctx.args.json:
        ctx.json(stats.to_json())
        return EXIT_OK
    for line in render_stats(stats):
        ctx.print(line)
    return EXIT_OK


HEAD = f"{'':<18} {'trades':>7} {'win %':>6} {'PnL':>12} {'fees':>10} {'best':>10} {'worst':>10}"


def _row(name: str, b: Bucket) -> str:
    def d(v: Any) -> str:
        return "—" if v is None else f"{v:,.2f}"

    return (
        f"{name[:18]:<18} {b.trades:>7} {b.win_rate_pct:>6} {d(b.pnl):>12} {d(b.fees):>10}"
        f" {d(b.best):>10} {d(b.worst):>10}"
    )


def render_stats(stats: TradeStats, days: int = 14) -> list[str]:
    lines = [HEAD, _row("all trades", stats.total)]
    for title, group in (("strategy", stats.by_strategy), ("wallet", stats.by_wallet)):
        lines += ["", f"per {title}"] + [_row(k, group[k]) for k in sorted(group)]
    recent = sorted(stats.by_day)[-days:]
    lines += ["", f"per day (last {len(recent)})"] + [_row(k, stats.by_day[k]) for k in recent]
    return lines
