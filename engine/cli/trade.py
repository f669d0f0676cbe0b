"""``kobe trade``, ``kobe exits``, ``kobe cancel``: one order path, the same as the cockpit's."""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from collections.abc import Collection
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.cli.orders import order_json
from engine.cli.session import Session, trading_session
from engine.cli.shared import (
    EXIT_OK,
    EXIT_REFUSED,
    Context,
    UsageError,
    confirm,
    require_terminal_or_yes,
)
from engine.config import Mode
from engine.exchange.base import ExchangeError, Order, OrderNotFound, OrderType, Side
from engine.exchange.paper import load_paper_markets
from engine.lock import DataDirBusy
from engine.modes import Settings
from engine.position import Position
from engine.proposal import Proposal, Refused, Sizing, Source
from engine.router import Placement, entry_of
from engine.router.pending import outcome_unknown, unsettled_entries
from engine.untrusted import BadNumber, as_typed, clean_text, parse_decimal
from engine.watchdog import WatchState

TRADE_KEYS = ("symbol", "side", "type", "price", "quote", "risk", "sl", "tp", "wallet", "reason")
TEXT_KEYS = ("symbol", "side", "type", "wallet", "reason")  # the others are numbers
FILE_MAX = 65_536  # bytes: a trade is a few lines


# ---------------------------------------------------------------------------------------------
# Arguments


MAX_AMOUNT = Decimal(10) ** 12  # a quote amount or a price: at most 10^12


def _decimal(name: str, value: Any) -> Decimal | None:
    """A flag's (or the trade file's) number: plain ASCII, finite, positive, bounded; exit 2."""
    if value is None:
        return None
    limit = Decimal(100) if name == "risk" else MAX_AMOUNT
    try:
        return parse_decimal(value, f"--{name}", positive=True, maximum=limit)
    except BadNumber as exc:
        raise UsageError(str(exc)) from None


def _read_trade_file(path: str) -> dict[str, Any]:
    """A trade from a TOML or JSON file, with the same keys as the flags."""
    if not path.strip():
        raise UsageError("--file: must not be empty (the path of a TOML or JSON file)")
    file = Path(path)
    try:
        # not blocking to open: a FIFO nobody writes to held `open` for good (then it reads empty)
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(fd, True)
        with open(fd, "rb") as handle:  # bounded: /dev/zero never ends
            raw = handle.read(FILE_MAX + 1)
    except OSError as exc:
        raise UsageError(f"--file: cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > FILE_MAX:
        raise UsageError(f"--file: {path}: larger than {FILE_MAX} bytes")
    if not raw.strip():
        raise UsageError(f"--file: {path}: empty (no trade fields)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"--file: {path}: not UTF-8 text") from None
    try:
        data: Any = (
            json.loads(text) if file.suffix == ".json" else tomllib.loads(text, parse_float=Decimal)
        )
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"--file: {path}: {exc}") from None
    except RecursionError:  # a few KB of [[[[ or {a={a= nest past the parser's stack
        raise UsageError(f"--file: {path}: nested too deep to be a trade") from None
    if not isinstance(data, dict):
        raise UsageError(f"--file: {path}: expected a table of trade fields")
    unknown = sorted(set(data) - set(TRADE_KEYS))
    if unknown:
        raise UsageError(f"--file: {path}: unknown key(s) {', '.join(unknown)}")
    for key in TEXT_KEYS:  # never str() of a list or a table: that would be sent as a symbol
        if key in data and not isinstance(data[key], str):
            raise UsageError(f"--file: {path}: {key}: must be a string (got {data[key]!r:.40})")
    return data


def proposal_from_args(args: argparse.Namespace, settings: Settings) -> Proposal:
    fields: dict[str, Any] = _read_trade_file(args.file) if args.file is not None else {}
    for key in TRADE_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            fields[key] = value
    missing = [k for k in ("symbol", "side", "type") if not str(fields.get(k) or "").strip()]
    if missing:
        raise UsageError("missing " + ", ".join(f"--{k}" for k in missing))
    side = str(fields["side"]).lower()
    if side not in ("buy", "sell"):
        raise UsageError(f"--side: must be buy or sell (got {fields['side']!r})")
    kind = str(fields["type"]).lower()
    if kind not in ("market", "limit"):
        raise UsageError(f"--type: must be market or limit (got {fields['type']!r})")
    price = _decimal("price", fields.get("price"))
    if kind == "limit" and price is None:
        raise UsageError("--price: required for a limit order")
    if kind == "market" and price is not None:
        raise UsageError("--price: only for limit orders")
    quote = _decimal("quote", fields.get("quote"))
    risk = _decimal("risk", fields.get("risk"))
    if (quote is None) == (risk is None):
        raise UsageError("give exactly one of --quote AMOUNT or --risk PCT")
    sl = _decimal("sl", fields.get("sl"))
    tp = _decimal("tp", fields.get("tp"))
    if risk is not None and sl is None:
        raise UsageError("--risk needs --sl (the distance to the stop-loss sets the size)")
    given = fields.get("wallet")  # an empty one names no wallet: not the default
    wallet = f"cex_{settings.exchange}" if given is None else str(given)
    if not wallet.strip():
        raise UsageError(f"--wallet: must not be empty (got {wallet!r})")
    wallets = [w.id for w in settings.config.finance.wallets]
    if wallet not in wallets:
        raise UsageError(
            f"--wallet: unknown wallet {clean_text(wallet)} (wallets: {', '.join(wallets)})"
            + as_typed(wallet)
        )
    symbol = str(fields["symbol"]).upper()
    if settings.mode is Mode.PAPER:  # its markets are known without a session; others: below
        require_market(symbol, load_paper_markets(), settings)
    amount = quote if quote is not None else risk
    assert amount is not None
    return Proposal(
        symbol=symbol,
        side=Side(side),
        entry_type=OrderType(kind),
        sizing=Sizing.QUOTE if quote is not None else Sizing.RISK,
        amount=amount,
        wallet=wallet,
        source=Source.CLI,
        price=price,
        stop_loss=sl,
        take_profit=tp,
        reason=str(fields.get("reason") or "manual order (kobe trade)"),
    )


def require_market(symbol: str, markets: Collection[str], settings: Settings) -> None:
    """A symbol that names no spot market of the venue is a bad argument (exit 2)."""
    if symbol not in markets:
        raise UsageError(
            f"--symbol: {clean_text(symbol)} has no spot market on {settings.exchange} "
            f"({settings.mode.value}){as_typed(symbol)}"
        )


# ---------------------------------------------------------------------------------------------
# Commands


def cmd_trade(ctx: Context) -> int:
    proposal = proposal_from_args(ctx.args, ctx.settings)
    require_terminal_or_yes(ctx)
    try:
        with trading_session(ctx, "kobe trade") as s:
            require_market(proposal.symbol, s.exchange.load_markets(), s.settings)
            block = s.risk.entry_block()
            if block is not None:
                return refused(ctx, [block])
            try:
                plan = s.router.plan(proposal)
            except Refused as exc:
                return refused(ctx, exc.reasons)
            if not ctx.args.json:
                ctx.print(f"[{s.settings.mode.value.upper()} on {s.settings.exchange}] plan:")
                for line in plan.lines():
                    ctx.print(line)
            if not confirm(ctx, "Send this order?"):
                ctx.print("not sent")
                return EXIT_REFUSED
            try:
                placed = s.router.execute(plan)
            except Refused as exc:
                return refused(ctx, exc.reasons)
            except ExchangeError as exc:
                print(f"order outcome unknown: {exc}", file=ctx.err)
                print(
                    "it is looked up by its client id at the next start (`kobe orders`) and "
                    f"before any new entry on {proposal.symbol}; until it is found, new "
                    f"entries on {proposal.symbol} are refused (exits and closes are not)",
                    file=ctx.err,
                )
                return EXIT_REFUSED
            s.book.annotate(
                placed.entry.client_id,
                strategy="manual",
                take_profit=proposal.take_profit,
                stop_loss=proposal.stop_loss,
            )
            _print_placement(ctx, placed)
            return EXIT_OK
    except DataDirBusy as exc:
        print(f"kobe trade: {exc}", file=ctx.err)
        return EXIT_REFUSED


def refused(ctx: Context, reasons: list[str]) -> int:
    print("refused:", file=ctx.err)
    for reason in reasons:
        print(f"  - {reason}", file=ctx.err)
    return EXIT_REFUSED


def _print_placement(ctx: Context, placed: Placement) -> None:
    p = placed.plan.proposal
    if ctx.args.json:
        ctx.json(
            {
                "plan": {
                    "symbol": p.symbol,
                    "side": p.side.value,
                    "type": p.entry_type.value,
                    "qty": placed.plan.qty,
                    "price": placed.plan.entry_price,
                    "notional": placed.plan.notional,
                    "fee_estimate": placed.plan.fee_estimate,
                    "slippage_bps": placed.plan.slippage_bps,  # a market buy: sized for it
                    "risk": placed.plan.risk_amount,
                    "exits": placed.plan.exits.value,
                    "wallet": p.wallet,
                },
                "entry": order_json(placed.entry, p.wallet, p.source.value),
                "exits": [order_json(o, p.wallet, p.source.value) for o in placed.exits],
                "watched": placed.watch is not None,
                "notes": list(placed.notes),
            }
        )
        return
    e = placed.entry
    ctx.print(
        f"entry {e.id} (client {e.client_id}): {e.status.value}, filled {e.filled}"
        + (f" at {e.avg_price}" if e.avg_price is not None else "")
    )
    for o in placed.exits:
        ctx.print(f"exit  {o.id} (client {o.client_id}): {o.type.value} {o.status.value}")
    for note in placed.notes:
        ctx.print(f"note: {note}")


def cmd_cancel(ctx: Context) -> int:
    if not ctx.args.all and not (ctx.args.order or "").strip():  # blank names no order
        raise UsageError("give an order ID (exchange id or client id) or --all")
    if ctx.args.all and ctx.args.order:
        raise UsageError("give an order ID or --all, not both")
    require_terminal_or_yes(ctx)
    try:
        with trading_session(ctx, "kobe cancel") as s:
            open_orders = s.router.open_orders()
            if ctx.args.all:
                # Kobe's own orders only; an OCO's two legs are one target (one cancels both)
                targets, lists = [], set()
                external = 0
                for o, _, src in open_orders:
                    if src == "external":
                        external += 1
                        continue
                    if o.list_id:
                        if o.list_id in lists:
                            continue
                        lists.add(o.list_id)
                    targets.append(o)
                listed = {o.client_id for o, _, _ in open_orders}
                for cid, event in unsettled_entries(s.router.journal_state()):
                    if cid not in listed:  # not open now; it may have filled: not cancelled
                        print(f"note: {outcome_unknown(cid, event)}", file=ctx.err)
                if not targets:
                    ctx.print(
                        "No open orders of Kobe's"
                        + (f" ({external} external, left alone)" if external else "")
                    )
                    return EXIT_OK
                exits = sum(1 for o in targets if entry_of(o.client_id) is not None)
                question = f"Cancel {len(targets)} open order(s) of Kobe's?"
                if exits:
                    question += (
                        f" {exits} are protective exits: their positions will be unprotected."
                    )
                if external:
                    question += f" ({external} external order(s) are left alone.)"
            else:
                ref = clean_text(ctx.args.order, 200)  # echoed when not found: shown literally
                match = [o for o, _, _ in open_orders if ref in (o.id, o.client_id)]
                if not match:
                    try:
                        s.router.cancel(ref, Source.CLI)  # raises, naming why
                    except OrderNotFound as exc:
                        print(str(exc), file=ctx.err)
                        return EXIT_REFUSED
                targets = match
                o = match[0]
                question = (
                    f"Cancel order {o.id} {o.side.value.upper()} {o.qty} {o.symbol} @ {o.price}?"
                )
                entry_cid = entry_of(o.client_id)
                held = s.book.get(entry_cid) if entry_cid else None
                if held is not None and o.client_id[-2:] in ("tp", "sl"):
                    question = (
                        f"Cancel the exits of position {_exits_text(held)}? It will be unprotected."
                    )
            if not confirm(ctx, question):
                ctx.print("nothing cancelled")
                return EXIT_REFUSED
            failed = 0
            for order in targets:
                watched = s.router.watchdog.get(order.client_id) is not None
                try:
                    done = s.router.cancel(order.id, Source.CLI, cover_part=True)
                except OrderNotFound as exc:
                    failed += 1
                    print(str(exc), file=ctx.err)
                    continue
                ctx.print(f"cancelled {done.id} ({done.client_id})")
                if watched and done.filled > 0:
                    _print_part_kept(ctx, s, done)
                _print_siblings(ctx, s, done)
            return EXIT_OK if failed == 0 else EXIT_REFUSED
    except DataDirBusy as exc:
        print(f"kobe cancel: {exc}", file=ctx.err)
        return EXIT_REFUSED


def _exits_text(pos: Position) -> str:
    legs = [
        f"TP {pos.take_profit}" if pos.take_profit is not None else "",
        f"SL {pos.stop_loss}" if pos.stop_loss is not None else "",
    ]
    shown = ", ".join(x for x in legs if x)
    return f"{pos.symbol} {pos.qty}" + (f" ({shown})" if shown else "")


def _print_part_kept(ctx: Context, s: Session, done: Order) -> None:
    """An entry cancelled with a part filled: that part is a position; say what covers it."""
    item = s.router.watchdog.get(done.client_id)
    if item is None:
        cover = "its exits are on the exchange"
    elif item.state is WatchState.WATCHING:
        cover = "the local watchdog guards its exits, only while `kobe run` or `kobe-tui` runs"
    else:
        cover = "its exits are placed at the next poll (kobe run, the cockpit)"
    ctx.print(f"{done.filled} {done.symbol} filled before the cancel is held: {cover}")


def _print_siblings(ctx: Context, s: Session, done: Order) -> None:
    """An OCO leg's sibling goes with it on the exchange: say so, and what it leaves bare."""
    entry_cid = entry_of(done.client_id)
    if entry_cid is None or done.client_id[-2:] not in ("tp", "sl"):
        return
    sibling = entry_cid + ("sl" if done.client_id.endswith("tp") else "tp")
    event = s.router.journal_state().get(sibling)
    if event is not None and event.event == "cancel":
        ctx.print(f"cancelled {event.exchange_id} ({sibling}): its OCO sibling")
    held = s.book.get(entry_cid)
    if held is not None and held.qty > 0:
        print(
            f"position {held.symbol} {held.qty} (entry {entry_cid}) is now UNPROTECTED: "
            f"set new exits with `kobe exits {entry_cid} --tp P --sl P` or close it",
            file=ctx.err,
        )


def cmd_exits(ctx: Context) -> int:
    """New TP/SL for a position: the new exits are in place (or the watchdog covers the gap)
    before the old ones are gone."""
    tp = _decimal("tp", ctx.args.tp)
    sl = _decimal("sl", ctx.args.sl)
    if tp is None and sl is None:
        raise UsageError("give --tp P, --sl P or both")
    if not ctx.args.position.strip():
        raise UsageError("POSITION: must not be empty (its entry client id, see kobe positions)")
    require_terminal_or_yes(ctx)
    try:
        with trading_session(ctx, "kobe exits") as s:
            position = clean_text(ctx.args.position, 200)  # echoed when not found
            held = s.book.get(position)
            event = s.router.journal_state().get(position)
            if held is not None and event is not None and unsettled_entries({position: event}):
                # sent with no answer: it may have filled; found and booked at the next start
                print(f"{outcome_unknown(position, event)}; no exits were placed", file=ctx.err)
                return EXIT_REFUSED
            if held is None or held.qty <= 0 or held.dust:
                print(f"position {position}: not open (see kobe positions)", file=ctx.err)
                return EXIT_REFUSED
            # a leg not given keeps its price: replacing the TP never drops the stop-loss
            tp = tp if tp is not None else held.take_profit
            sl = sl if sl is not None else held.stop_loss
            new = ", ".join(x for x in (f"TP {tp}" if tp else "", f"SL {sl}" if sl else "") if x)
            if not confirm(ctx, f"Replace the exits of position {_exits_text(held)} with {new}?"):
                ctx.print("nothing changed")
                return EXIT_REFUSED
            try:
                exits, watch = s.router.replace_exits(
                    held.entry_client_id, held.qty, tp, sl, Source.CLI
                )
            except Refused as exc:
                return refused(ctx, exc.reasons)
            except ExchangeError as exc:
                item = s.router.watchdog.get(held.entry_client_id)
                old = (
                    "; the old exits are still armed on the exchange: the engine cancels them "
                    "first (tried again each tick)"
                    if item is not None and item.replaces
                    else ""
                )
                print(
                    f"the new exits could not be placed ({exc}): the local watchdog covers the "
                    f"position with the new prices, only while kobe run or kobe-tui runs{old}",
                    file=ctx.err,
                )
                return EXIT_REFUSED
            if not exits and watch is None:  # an old exit filled instead of being cancelled
                ctx.print(
                    f"position {held.symbol} (entry {held.entry_client_id}) closed meanwhile: "
                    "its old exit filled while it was being cancelled; nothing replaced"
                )
                return EXIT_OK
            s.book.annotate(
                held.entry_client_id, strategy=held.strategy, take_profit=tp, stop_loss=sl
            )
            for o in exits:
                ctx.print(f"exit  {o.id} (client {o.client_id}): {o.type.value} {o.status.value}")
            if watch is not None:
                ctx.print(
                    "note: the new exits are watched locally: only while `kobe run` or "
                    "`kobe-tui` is running"
                )
            return EXIT_OK
    except DataDirBusy as exc:
        print(f"kobe exits: {exc}", file=ctx.err)
        return EXIT_REFUSED


def register_trade(sub: Any) -> None:
    p = sub.add_parser("trade", help="plan, confirm and place one order with its TP/SL")
    p.add_argument("--symbol")
    p.add_argument("--side", help="buy or sell")
    p.add_argument("--type", help="market or limit")
    p.add_argument("--price", help="limit price (limit orders only)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quote", help="spend this much quote currency")
    size.add_argument("--risk", help="risk this percent of the wallet's balance (needs --sl)")
    p.add_argument("--sl", help="stop-loss price")
    p.add_argument("--tp", help="take-profit price")
    p.add_argument("--wallet", help="sub-wallet id (default: cex_<exchange>)")
    p.add_argument("--reason", help="free text for the journal")
    p.add_argument("--file", help="read the trade from a TOML or JSON file (flags override it)")
    p.add_argument("--yes", action="store_true", help="do not ask (paper, testnet)")
    p.add_argument("--confirm-live", action="store_true", help="the explicit live confirmation")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_trade)


def register_exits(sub: Any) -> None:
    p = sub.add_parser(
        "exits", help="replace a position's TP/SL safely (new exits before the old go)"
    )
    p.add_argument("position", help="the position's entry client id (kobe positions)")
    p.add_argument("--tp", help="new take-profit price")
    p.add_argument("--sl", help="new stop-loss price")
    p.add_argument("--yes", action="store_true")
    p.add_argument("--confirm-live", action="store_true", help="the explicit live confirmation")
    p.set_defaults(handler=cmd_exits)


def register_cancel(sub: Any) -> None:
    p = sub.add_parser("cancel", help="cancel an order (exchange id or client id) or --all")
    p.add_argument("order", nargs="?")
    p.add_argument("--all", action="store_true")
    p.add_argument("--yes", action="store_true")
    p.add_argument("--confirm-live", action="store_true", help="the explicit live confirmation")
    p.set_defaults(handler=cmd_cancel)
