"""``kobe wallets [--json]``: the sub-wallets as the snapshot and the flows journal say, plus the
active finance alerts. With no snapshot yet, the config's allocation. Writes nothing."""

from __future__ import annotations

from typing import Any

from engine.cli.shared import EXIT_OK, EXIT_REFUSED, Context
from engine.wallets.runtime import WalletStateError, load_view
from engine.wallets.snapshot import WalletsSnapshot


def register(sub: Any) -> None:
    p = sub.add_parser(
        "wallets", help="sub-wallet balances, %% of equity, today's PnL, and finance alerts"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_wallets)


def cmd_wallets(ctx: Context) -> int:
    s = ctx.settings
    try:
        snap = load_view(s.config, s.data_dir, ctx.clock(), mode=s.mode.value)
    except WalletStateError as exc:
        print(f"kobe: wallets: {exc}", file=ctx.err)
        return EXIT_REFUSED
    if ctx.args.json:
        ctx.json(snap.to_dict())
        return EXIT_OK
    for line in render_table(snap):
        ctx.print(line)
    return EXIT_OK


def _usd(value: Any) -> str:
    return f"{value:,.2f}"


def render_table(snap: WalletsSnapshot) -> list[str]:
    lines = [
        f"profile {snap.profile_id}   equity {_usd(snap.equity_total_usd)} USD   "
        f"pnl today {_usd(snap.pnl_day)} USD"
    ]
    header = ("wallet", "chain", "role", "balance", "% equity", "pnl today")
    rows = [
        (w.id, w.chain, w.role, _usd(w.balance), f"{w.pct_equity:.2f}", _usd(w.pnl_day))
        for w in snap.wallets
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        left = "  ".join(row[i].ljust(widths[i]) for i in range(3))
        right = "  ".join(row[i].rjust(widths[i]) for i in range(3, 6))
        lines.append(f"  {left}  {right}")
    if snap.alerts:
        lines.append("alerts:")
        lines += [f"  {a.severity.upper():<8}  {a.code}: {a.message}" for a in snap.alerts]
    else:
        lines.append("alerts: none")
    return lines
