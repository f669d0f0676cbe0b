"""The sessions the order commands work in: the lock, the venue, the journal, the router.

``trading_session`` (``kobe trade``, ``exits``, ``cancel``) passes the gate and may send;
``reading_session`` (``kobe orders``) holds a venue that cannot send.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from engine.audit import AuditLog
from engine.book import PositionBook
from engine.bookkeeper import Bookkeeper
from engine.cli.shared import Context
from engine.exchange.base import Exchange
from engine.fsutil import StateError, WriteFailed, close_all
from engine.journal import OrderEvent, OrderJournal
from engine.lock import DataDirLock
from engine.modes import GateClosed, Settings, gate_problems
from engine.risk import RiskEngine
from engine.router import ReconcileReport, Router, RouterView
from engine.router.spend import overspent
from engine.trades import TradeStore
from engine.wallet_book import LedgerWallets
from engine.wallets.runtime import WalletManager, load_view

log = logging.getLogger(__name__)


@dataclass
class Session:
    settings: Settings
    exchange: Exchange
    journal: OrderJournal
    audit: AuditLog
    router: Router
    risk: RiskEngine
    book: PositionBook


@contextmanager
def trading_session(ctx: Context, command: str) -> Iterator[Session]:
    """Gate (live needs ``--confirm-live``), lock, exchange, journal, router; closed on the way out.

    Reconciliation runs first and may send (pending exits, watchdog sells): only here, where the
    gate has passed with the confirmation.
    """
    from engine.exchange.factory import build_exchange

    settings = ctx.settings
    confirmed = bool(getattr(ctx.args, "confirm_live", False))
    problems = gate_problems(settings, confirmed)
    if problems:
        raise GateClosed(settings.mode, problems)
    clock = ctx.clock
    with DataDirLock(settings.data_dir, command):
        # the wallets first: damaged money, or live's money and another mode's, is refused
        # before anything is opened or written (:mod:`engine.wallets.modes`)
        cfg = settings.config
        manager = WalletManager.from_config(
            cfg, settings.data_dir, clock=clock, mode=settings.mode.value
        )
        holder: list[Router] = []
        exchange = build_exchange(
            settings,
            confirmed=confirmed,
            clock=clock,
            on_unknown=lambda cid, why: holder[0].on_unknown(cid, why) if holder else None,
        )
        journal = OrderJournal(settings.data_dir)
        audit = AuditLog(settings.data_dir, clock)
        # the risk engine applies kill-switch commands queued by `kobe risk` and gives the
        # cooldown and the WARNING size factor: the same guards as the running engine's
        risk = RiskEngine(settings.data_dir, cfg.risk, clock, audit=audit)
        # the one position book: what this command's orders (and their exits, wherever they
        # filled) do to positions and money is booked here as in the running engine
        keeper = open_bookkeeper(settings, risk, manager)
        router = Router(
            exchange,
            journal,
            data_dir=settings.data_dir,
            mode=settings.mode.value,
            exchange_name=settings.exchange,
            risk=cfg.risk,
            wallets=LedgerWallets(manager.snapshot(), cfg.finance),
            clock=clock,
            maker_fee_pct=cfg.paper.maker_fee_pct,
            taker_fee_pct=cfg.paper.taker_fee_pct,
            mode_problems=lambda: gate_problems(settings, confirmed),
            exits_policy=cfg.router.exits,
            audit=audit,
            kill_switch=risk.entry_switch,
            size_factor=risk.size_factor,
            settings=cfg.router,
        )
        holder.append(router)
        router.committed = manager.ledger.committed = keeper.book.committed
        router.dust_committed = keeper.book.dust_committed
        router.held_by_positions = functools.partial(keeper.book.unlocked, router.exchange_name)
        router.foldable_dust = functools.partial(keeper.book.foldable_dust, router.exchange_name)
        router.follow_book(keeper.book.working)
        router.listeners.append(keeper.on_event)
        disk_full = False
        try:
            reset = router.paper_reset()
            if reset is not None:
                print(f"note: {reset}", file=ctx.err)
            _print_external(ctx, router.reconcile())
            # what reconciliation booked (a stop that filled while Kobe was not running) is
            # what this command's orders may spend after it
            router.wallets = LedgerWallets(manager.snapshot(), cfg.finance)
            yield Session(settings, exchange, journal, audit, router, risk, keeper.book)
        except WriteFailed:
            # the disk refused a record: nothing more is written (the next start replays the
            # journal), and the message names that record, not a later save that failed too
            disk_full = True
            raise
        finally:
            saves = [] if disk_full else [keeper.catch_up, lambda: manager.write_snapshot(clock())]
            closers = [keeper.close, journal.close, risk.close, audit.close, exchange.close]
            failed = close_all([*saves, *closers])
            if failed is not None and not disk_full:
                raise failed


def open_bookkeeper(settings: Settings, risk: RiskEngine, wallets: WalletManager) -> Bookkeeper:
    """The position book of ``settings``' mode, caught up with the journal, trades booked."""
    data = settings.data_dir
    keeper = Bookkeeper(
        PositionBook(data, settings.mode.value),
        trades=TradeStore(data, settings.mode.value),
        risk=risk,
        wallets=wallets,
    )
    keeper.catch_up()
    return keeper


@contextmanager
def reading_session(ctx: Context, command: str) -> Iterator[RouterView]:
    """Lock, a read-only venue and the journal: for commands that must never send.

    Live needs every condition of the gate but the confirmation. The venue is a
    :class:`ReadOnlyExchange`, which has no way to create or cancel; what reconciliation would
    send is printed instead (the next ``kobe trade``/``cancel``/``run`` or the cockpit does it).
    """
    from engine.exchange.factory import build_reader

    settings = ctx.settings
    with DataDirLock(settings.data_dir, command):
        reader = build_reader(settings, clock=ctx.clock)
        journal = OrderJournal(settings.data_dir)
        view = RouterView(
            reader,
            journal,
            data_dir=settings.data_dir,
            mode=settings.mode.value,
            exchange_name=settings.exchange,
            clock=ctx.clock,
        )
        try:  # a buy's fill this command is the first to see is checked against its wallet,
            # as in a sending session (the book and the wallets read here write nothing)
            book = PositionBook(settings.data_dir, settings.mode.value, read_only=True)
            book.catch_up()
            view.follow_book(book.working)
            wallets = LedgerWallets(
                load_view(settings.config, settings.data_dir, mode=settings.mode.value),
                settings.config.finance,
            )

            def check(event: OrderEvent) -> None:
                book.catch_up()
                message = overspent(event, None, wallets, book.committed(event.wallet))
                if message is not None:
                    log.warning("%s: %s", command, message)

            view.on_buy_fill = check
        except StateError as exc:  # damaged: left to the next sending session, which refuses
            log.warning("%s: wallets not checked: %s", command, exc)
        try:
            report = view.review()
            _print_external(ctx, report)
            for what in report.would:
                print(
                    f"note: {what}; not sent by this read-only command (kobe run, trade, "
                    "cancel or the cockpit will)",
                    file=ctx.err,
                )
            yield view
        finally:
            journal.close()
            reader.close()


def _print_external(ctx: Context, report: ReconcileReport) -> None:
    for order in report.external:
        print(
            f"note: external order {order.id} ({order.side.value} {order.qty} "
            f"{order.symbol}) is not Kobe's: left alone",
            file=ctx.err,
        )
