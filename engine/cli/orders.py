"""``kobe orders`` and ``kobe positions``: what is open, read only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.book import PositionBook
from engine.cli.session import reading_session
from engine.cli.shared import EXIT_OK, EXIT_REFUSED, Context
from engine.exchange.base import ExchangeError, Order
from engine.journal import DEX_MODE
from engine.lock import DataDirBusy, DataDirLock
from engine.modes import GateClosed
from engine.position import Position, protection
from engine.watchdog import Watchdog


def order_json(order: Order, wallet: str = "", source: str = "") -> dict[str, Any]:
    return {
        "id": order.id,
        "client_id": order.client_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "qty": order.qty,
        "price": order.price if order.price is not None else order.stop_price,
        "filled": order.filled,
        "status": order.status.value,
        "created_at": order.created_at,
        "wallet": wallet,
        "source": source,
    }


def cmd_orders(ctx: Context) -> int:
    try:
        with reading_session(ctx, "kobe orders") as view:
            rows = view.open_orders()
    except DataDirBusy as exc:
        print(f"kobe orders: {exc}", file=ctx.err)
        return EXIT_REFUSED
    if ctx.args.json:
        ctx.json([order_json(o, w, src) for o, w, src in rows])
        return EXIT_OK
    if not rows:
        ctx.print("No open orders")
        return EXIT_OK
    for o, wallet, source in rows:
        price = o.price if o.price is not None else o.stop_price
        ctx.print(
            f"{o.id:>12}  {o.client_id:<24} {o.symbol:<10} {o.side.value:<4} {o.type.value:<15}"
            f" qty {o.qty} @ {price}  filled {o.filled}  {o.status.value}  {wallet} {source}"
        )
    return EXIT_OK


def cmd_positions(ctx: Context) -> int:
    """The position book, read only: it works while an engine holds the data dir."""
    settings = ctx.settings
    book = PositionBook(settings.data_dir, settings.mode.value, read_only=True)
    book.catch_up()
    held = book.positions() + book.dust()
    marks, running = _marks(ctx, {p.symbol for p in held if p.venue == settings.exchange})
    watchdogs = {
        "dex": Watchdog(settings.data_dir / "dex", DEX_MODE),
        settings.exchange: Watchdog(settings.data_dir, settings.mode.value),
    }
    attached = settings.exchange in ("bybit", "okx") and settings.config.router.exits != "watchdog"
    rows = []
    for p in held:
        cex = p.venue == settings.exchange
        watch = watchdogs[p.venue].get(p.entry_client_id) if p.venue in watchdogs else None
        cover = protection(p, watch, attached=attached and cex, engine_running=running)
        rows.append(position_json(p, marks.get(p.symbol) if cex else None, cover))
    if ctx.args.json:
        ctx.json(rows)
        return EXIT_OK
    if not rows:
        ctx.print("No open positions")
        return EXIT_OK
    for r in rows:
        exits = ", ".join(f"{x['type']} {x['price']} {x['status']}" for x in r["exits"]) or (
            "no exits"
        )
        pnl = r["unrealized_pnl"]
        mark = f"mark {r['mark']} uPnL {_plain(pnl)}" if r["mark"] is not None else "mark ?"
        ctx.print(
            f"{r['wallet']:<12} {r['venue']:<8} {r['symbol']:<14} qty {r['qty']} @ "
            f"{r['entry_price']}  cost {_plain(r['cost'])}  fees {_plain(r['fees'])}"
            f"{' + ' + r['fees_unpriced'] if r['fees_unpriced'] else ''}  {mark}  [{exits}]  "
            f"{r['protection']}  {r['strategy']} ({r['source']})"
        )
    return EXIT_OK


def _plain(value: Decimal) -> str:
    """A product of decimals as a person writes it: 0.936217875, not 0.9362178750000000000000."""
    return f"{value.normalize():f}" if value else "0"


def _marks(ctx: Context, symbols: set[str]) -> tuple[dict[str, Decimal], bool]:
    """Last prices from the venue, read only; none while an engine holds the data dir.
    Also whether an engine runs (the local watchdog covers positions only then). The lock is
    held only to learn that, never while the venue is asked (the reader writes nothing): a
    slow exchange (retries, a timeout) must not keep ``kobe run`` or the cockpit from
    starting meanwhile."""
    from engine.exchange.factory import build_reader

    try:
        with DataDirLock(ctx.settings.data_dir, "kobe positions"):
            pass
    except DataDirBusy as exc:
        if symbols:
            print(f"note: no mark prices ({exc})", file=ctx.err)
        return {}, True
    if not symbols:
        return {}, False
    try:
        reader = build_reader(ctx.settings, clock=ctx.clock)
        try:
            return {s: reader.fetch_ticker(s).last for s in sorted(symbols)}, False
        finally:
            reader.close()
    except (ExchangeError, GateClosed) as exc:
        print(f"note: no mark prices ({exc})", file=ctx.err)
        return {}, False


def position_json(p: Position, mark: Decimal | None, cover: str = "") -> dict[str, Any]:
    return {
        "entry_client_id": p.entry_client_id,
        "wallet": p.wallet,
        "venue": p.venue,
        "symbol": p.symbol,
        "qty": p.qty,
        "entry_price": p.entry_price,
        "cost": p.cost,
        "fees": p.entry_fee + p.exit_fees,
        # a fee in a third asset with no price in the quote asset at its fill: not in ``fees``
        "fees_unpriced": (
            f"{p.fees_unpriced} {p.fees_unpriced_asset}" if p.fees_unpriced > 0 else None
        ),
        "mark": mark,
        "unrealized_pnl": p.unrealized(mark) if mark is not None else None,
        "exits": [
            {"client_id": x.client_id, "type": x.type, "price": x.price, "status": x.status}
            for x in p.exits
        ],
        "opened_at": p.opened_at,
        "source": p.source,
        "strategy": p.strategy,
        "protection": cover,
    }


def register_orders(sub: Any) -> None:
    p = sub.add_parser("orders", help="open orders")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_orders)


def register_positions(sub: Any) -> None:
    p = sub.add_parser(
        "positions", help="open positions from the position book (works while an engine runs)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_positions)
