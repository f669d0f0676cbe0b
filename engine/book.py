"""The one position book: positions and closed trades derived from the order journal.

Every path that places orders (``kobe trade``, the cockpit, the strategies, reconciliation, the
watchdog, ``flatten``) journals its events in ``logs/orders.jsonl``; the book is a function of
that file and nothing else:

- an entry's fills open or grow its position (net of a fee taken in the base asset);
- its exits' fills (``<entry>tp``, ``sl``, ``cx``) reduce it; a position is closed when an exit
  order has filled completely or nothing is left, and the closed trade is handed on exactly once;
- fills are counted by their cumulative ``filled`` and ``fee`` per order, so an event journaled
  twice moves nothing the second time.

``catch_up`` reads the journal from the byte offset it last reached (complete lines only: a torn
last line waits). ``positions.json`` caches the book and that offset (:mod:`engine.book_cache`);
it is only a cache: when it is missing or damaged the book is rebuilt from the whole journal (and
says so). Closed trades
already in ``trades.jsonl`` are not handed on again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.book_cache import (
    POSITIONS_FILE,
    BookState,
    OrderSeen,
    cache_record,
    journal_mark,
    parse_cache,
)
from engine.exchange.base import Side
from engine.fsutil import DAMAGE, StateError, atomic_write_text
from engine.journal import OrderEvent, in_mode, open_journal, read_event
from engine.jsonutil import dumps
from engine.position import (
    FILL_EVENTS,
    ZERO,
    ExitOrder,
    Position,
    base_of,
    dec_or_none,
    dust_key,
    dust_key_of,
    foldable_dust,
    gathered,
    is_live,
    leg_reason,
    shown_price,
    still_selling,
    take_dust,
    with_fee,
)
from engine.router import SWEEP, entry_of, sweep_of
from engine.trades import ClosedTrade

log = logging.getLogger(__name__)


class PositionBook:
    """Positions from the order journal of ``data_dir``, for the venues of one mode.

    ``mode``: events journaled in another mode are not this book's (a data dir used in paper
    and then in testnet); the DEX venue is paper in every mode, so its events always count.
    ``read_only``: never writes the cache (``kobe positions`` while an engine runs).
    """

    def __init__(
        self, data_dir: Path, mode: str, *, read_only: bool = False, use_cache: bool = True
    ) -> None:
        self.data_dir = Path(data_dir)
        self.mode = mode
        self.read_only = read_only
        self.use_cache = use_cache
        self.journal_path = self.data_dir / "logs" / "orders.jsonl"
        self.path = self.data_dir / POSITIONS_FILE
        self.state = BookState()
        self.annotations: dict[str, dict[str, Any]] = {}  # strategy / tp / sl set by the caller
        self.rebuilt = False
        self._load()

    # -- the cache ----------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.use_cache or not self.path.exists():
            self.rebuilt = self.journal_path.exists() and self.journal_path.stat().st_size > 0
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            state, self.annotations = parse_cache(raw, self.mode)
            size = self.journal_path.stat().st_size if self.journal_path.exists() else 0
            mark = journal_mark(self.journal_path, state.offset)
            lost = state.offset > size or raw.get("mark", mark) != mark
            if lost and not state.positions:
                raise ValueError("it does not match the order journal")
            if lost:  # the journal was lost, cut or replaced: its positions must not vanish
                raise StateError(
                    f"{self.journal_path} is damaged (it holds {size} bytes; the position book "
                    f"read {state.offset}, which it no longer matches): order history was lost, "
                    f"and with it {len(state.positions)} position(s) and the money they hold; "
                    "nothing was reset or overwritten: restore it from a backup, or delete "
                    f"{self.path} to rebuild the book from what is left"
                )
            self.state = state
        except DAMAGE as exc:
            log.warning(
                "%s: cannot be used (%s): the position book is rebuilt from %s",
                self.path,
                exc,
                self.journal_path,
            )
            self.state = BookState()
            self.rebuilt = True

    def save(self) -> None:
        if self.read_only:
            return
        mark = journal_mark(self.journal_path, self.state.offset)
        record = cache_record(self.state, self.mode, mark, self.annotations)
        atomic_write_text(self.path, dumps(record, indent=1) + "\n")

    # -- reading the journal ------------------------------------------------------------------

    def _new_events(self) -> Iterator[tuple[OrderEvent, int]]:
        """Complete lines after the offset, each with the offset just past it."""
        if not self.journal_path.exists():
            return
        with open_journal(self.journal_path) as fh:
            fh.seek(self.state.offset)
            pos = self.state.offset
            for raw in fh:
                if not raw.endswith(b"\n"):
                    return  # torn or still being written: not a record yet
                pos += len(raw)
                event = _event(raw, self.journal_path)
                if event is not None:
                    yield event, pos
                else:
                    self.state.offset = pos

    def catch_up(self, *, save: bool = True) -> list[ClosedTrade]:
        """Apply what the journal gained since the last call; the trades this closed.

        ``save=False``: the caller saves the cache once it has booked those trades (a crash in
        between replays the events, and the booked trades are recognised)."""
        closed: list[ClosedTrade] = []
        changed = False
        for event, end in self._new_events():
            trade = self.apply(event)
            self.state.follow(event, self.mode)
            self.state.offset = end
            changed = True
            if trade is not None:
                closed.append(trade)
        if changed and save:
            self.save()
        return closed

    # -- applying one event -------------------------------------------------------------------

    def apply(self, e: OrderEvent) -> ClosedTrade | None:
        if not in_mode(e, self.mode):
            return None
        if sweep_of(e.client_id) is not None:
            return self._apply_sweep(e)
        entry_cid = entry_of(e.client_id)
        if entry_cid is None:
            self._apply_entry(e)
            pos = self.state.positions.get(e.client_id)
            if (
                pos is not None
                and not pos.pending
                and pos.exit_qty > 0
                and (pos.qty <= 0 or any(x.entry_filled == pos.filled for x in pos.exits))
            ):  # closed while its entry was still working, and it bought nothing more since
                return self._close(pos, e)
            return None
        return self._apply_exit(entry_cid, e)

    def _increment(self, e: OrderEvent) -> tuple[Decimal, Decimal, Decimal] | None:
        """The part of ``e``'s cumulative fill not counted yet: (qty, fee, proceeds)."""
        if e.event not in FILL_EVENTS:
            return None
        seen = self.state.orders.setdefault(e.client_id, OrderSeen())
        value = e.filled * e.avg_price if e.avg_price is not None else seen.value
        d_qty, d_fee, d_value = e.filled - seen.filled, e.fee - seen.fee, value - seen.value
        if d_qty <= 0 and d_fee <= 0:
            return None
        seen.filled, seen.fee, seen.value = (
            max(seen.filled, e.filled),
            max(seen.fee, e.fee),
            max(seen.value, value),
        )
        return max(d_qty, ZERO), max(d_fee, ZERO), max(d_value, ZERO)

    def _apply_entry(self, e: OrderEvent) -> None:
        positions = self.state.positions
        pos = positions.get(e.client_id)
        if e.event == "intent" and pos is None:
            note = self.annotations.get(e.client_id, {})
            positions[e.client_id] = Position(
                entry_client_id=e.client_id,
                venue=e.exchange,
                symbol=e.symbol,
                side=Side(e.side),
                qty=ZERO,
                entry_price=None,
                entry_fee=ZERO,
                wallet=e.wallet,
                strategy=e.strategy or str(note.get("strategy") or "manual"),
                opened_at=e.ts,
                take_profit=dec_or_none(note.get("take_profit")),
                stop_loss=dec_or_none(note.get("stop_loss")),
                pending=True,
                source=e.source,
                ref=e.ref,
                ordered=e.qty,
                limit=e.price,
            )
            return
        if pos is None:
            return
        step = self._increment(e)
        if step is not None:
            d_qty, d_fee, d_value = step
            fee_base = d_fee if e.fee_asset == base_of(e.symbol) else ZERO
            filled = pos.filled + d_qty
            pos = replace(
                pos,
                filled=filled,
                qty=pos.qty + d_qty - (fee_base if pos.side is Side.BUY else ZERO),
                entry_price=e.avg_price if e.avg_price is not None else pos.entry_price,
                opened_at=e.ts if pos.filled == 0 else pos.opened_at,
            )
            pos = with_fee(pos, e, d_fee, entry=True, price=_price(d_qty, d_value))
        if e.event in ("fill", "cancel", "reject"):
            pos = replace(pos, pending=False)
            if pos.filled <= 0:  # cancelled or refused with nothing filled: no position
                del positions[e.client_id]
                self.state.orders.pop(e.client_id, None)
                self.annotations.pop(e.client_id, None)
                return
        positions[e.client_id] = pos

    def _apply_exit(self, entry_cid: str, e: OrderEvent) -> ClosedTrade | None:
        pos = self.state.positions.get(entry_cid)
        if pos is None:
            return None
        if e.event == "intent":  # a new order under a reused exit id: its fills count afresh
            self.state.orders.pop(e.client_id, None)
        exits = {x.client_id: x for x in pos.exits}
        old = exits.get(e.client_id)
        exits[e.client_id] = ExitOrder(
            client_id=e.client_id,
            type=e.type,
            price=e.price if e.price is not None else (old.price if old else None),
            status=e.status or (old.status if old else e.event),
            filled=max(e.filled, old.filled if old else ZERO),
            entry_filled=pos.filled if e.event == "fill" else (old.entry_filled if old else None),
        )
        tp, sl = pos.take_profit, pos.stop_loss
        if e.event == "intent" and e.client_id.endswith("tp") and e.price is not None:
            tp = e.price
        if e.event == "intent" and e.client_id.endswith("sl") and e.price is not None:
            sl = e.price
        pos = replace(pos, exits=tuple(exits.values()), take_profit=tp, stop_loss=sl)
        step = self._increment(e)
        if step is not None:
            pos = self._sold(pos, e, *step)
        self.state.positions[entry_cid] = pos
        if pos.pending or e.event not in FILL_EVENTS:
            return None
        if pos.qty > 0 and (step is None or e.event != "fill"):
            return None  # partly closed: the rest is still held
        if pos.qty <= 0 and still_selling(pos):
            return None  # its own is sold; its exit still sells the dust it was sized with
        return self._close(pos, e)

    def _sold(
        self, pos: Position, e: OrderEvent, d_qty: Decimal, d_fee: Decimal, d_value: Decimal
    ) -> Position:
        """``pos`` after its exit ``e`` sold ``d_qty`` more, for ``d_value`` and ``d_fee``: its
        own first, then its wallet's dust in that symbol (at the dust's cost)."""
        sold = min(d_qty, pos.qty)
        pulled, pulled_cost = take_dust(self.state.positions, pos, d_qty - sold)
        share = min(d_qty, sold + pulled)  # (as the exchange wrote it when all is booked)
        if d_qty > share:  # it sold more than the position held: only its share is the trade's
            log.warning(
                "%s: sold %s %s, more than the %s its position held: the rest is not booked",
                e.client_id,
                d_qty,
                e.symbol,
                pos.qty + pulled,
            )
            d_value, d_fee = d_value * share / d_qty, d_fee * share / d_qty
        price = _price(share, d_value)
        pos = replace(
            pos,
            qty=pos.qty - sold,
            exit_qty=pos.exit_qty + share,
            exit_value=pos.exit_value + d_value,
            dust_sold=pos.dust_sold + pulled,
            dust_cost=pos.dust_cost + pulled_cost,
        )
        return with_fee(pos, e, d_fee, entry=False, price=price)

    def _apply_sweep(self, e: OrderEvent) -> ClosedTrade | None:
        """A dust sweep (``<id>ds``, see ``Router.sweep_dust``): a sale of a wallet's dust in
        one symbol. While it works it is a position that holds nothing (no exit takes that dust
        meanwhile: :meth:`foldable_dust`); what it sells leaves the dust at the dust's cost, and
        it is booked as a trade of its own when it ends."""
        pos = self.state.positions.get(e.client_id)
        if pos is None:
            line = self.state.positions.get(dust_key_of(e.wallet, e.exchange, e.symbol, Side.BUY))
            if e.event != "intent" or line is None:
                return None  # a sweep booked already (an event journaled again), or no dust
            pos = replace(
                line, entry_client_id=e.client_id, qty=ZERO, filled=ZERO, ordered=ZERO,
                cost_basis=None, dust=False, strategy=SWEEP, source=e.source,
            )  # fmt: skip
        step = self._increment(e)
        if step is not None:
            pos = self._sold(pos, e, *step)
        self.state.positions[e.client_id] = pos
        if e.event not in ("fill", "cancel", "reject"):
            return None
        return self._close(pos, e, SWEEP)

    def _close(self, pos: Position, e: OrderEvent, reason: str = "") -> ClosedTrade | None:
        del self.state.positions[pos.entry_client_id]
        for cid in [pos.entry_client_id, *(x.client_id for x in pos.exits)]:
            self.state.orders.pop(cid, None)
        self.annotations.pop(pos.entry_client_id, None)
        if pos.qty > 0 and pos.entry_price is not None and pos.exit_qty > 0:
            self._keep_dust(pos)
        if pos.entry_price is None or pos.exit_qty <= 0:
            return None
        if pos.fees_unpriced > 0:
            log.warning(
                "%s: closed; its fees leave out %s %s (no price in %s at the fill)",
                pos.entry_client_id,
                pos.fees_unpriced,
                pos.fees_unpriced_asset,
                pos.symbol.partition("/")[2],
            )
        exit_price = shown_price(pos.exit_value / pos.exit_qty)  # (an average of levels)
        sign = Decimal(1) if pos.side is Side.BUY else Decimal(-1)
        fees = pos.entry_fee + pos.exit_fees
        # from the proceeds and the costs themselves, not from their averages: exact, as a hand
        # computation (the dust its exits sold with it at the dust's own cost)
        cost = pos.entry_price * (pos.exit_qty - pos.dust_sold) + pos.dust_cost
        pnl = sign * (pos.exit_value - cost) - fees
        entry_price = shown_price(cost / pos.exit_qty if pos.dust_sold else pos.entry_price)
        return ClosedTrade(
            trade_id=pos.entry_client_id,
            opened_at=pos.opened_at,
            closed_at=e.ts,
            wallet=pos.wallet,
            strategy=pos.strategy,
            symbol=pos.symbol,
            side=pos.side.value,
            qty=pos.exit_qty,
            entry_price=entry_price,
            exit_price=exit_price,
            fees=fees,
            pnl=pnl,
            reason=reason or e.reason or leg_reason(e.client_id),
        )

    def _keep_dust(self, pos: Position) -> None:
        """What a full exit could not sell (below one step) is still Kobe's: it stays in the book
        as dust at its cost (see ``gathered``), so its wallet does not spend that money again."""
        log.info(
            "%s: %s %s left below one step after its exit: dust",
            pos.entry_client_id,
            pos.qty,
            pos.symbol,
        )
        key = dust_key(pos)
        self.state.positions[key] = gathered(pos, self.state.positions.get(key))

    def foldable_dust(self, venue: str, wallet: str, symbol: str, entry_cid: str) -> Decimal:
        """See :func:`engine.position.foldable_dust`; none while a dust sweep sells it."""
        if self.sweeping(venue, wallet, symbol) is not None:
            return ZERO
        return foldable_dust(self.state.positions, venue, wallet, symbol, entry_cid)

    def sweeping(self, venue: str, wallet: str, symbol: str) -> str | None:
        """The client id of the dust sweep of ``wallet``'s dust in ``symbol`` on ``venue`` whose
        end is not journaled yet, or None."""
        where = (venue, wallet, symbol)
        held = self.state.positions.items()
        return next(
            (c for c, p in held if sweep_of(c) and (p.venue, p.wallet, p.symbol) == where), None
        )

    # -- what callers set and read ------------------------------------------------------------

    def annotate(
        self,
        entry_cid: str,
        *,
        strategy: str,
        take_profit: Decimal | None,
        stop_loss: Decimal | None,
    ) -> None:
        """What the journal does not say of an entry: its strategy, and its TP/SL prices."""
        self.annotations.setdefault(entry_cid, {}).update(
            strategy=strategy,
            take_profit=None if take_profit is None else str(take_profit),
            stop_loss=None if stop_loss is None else str(stop_loss),
        )
        pos = self.state.positions.get(entry_cid)
        if pos is not None:
            self.state.positions[entry_cid] = replace(
                pos,
                strategy=strategy,
                take_profit=take_profit if take_profit is not None else pos.take_profit,
                stop_loss=stop_loss if stop_loss is not None else pos.stop_loss,
            )
        self.save()

    def mark_dust(self, entry_cid: str) -> None:
        """``entry_cid`` is too small to sell: it stays in the book, shown as dust, and no
        longer counts as an open position (nor holds a strategy's slot)."""
        self.annotations.setdefault(entry_cid, {})["dust"] = True
        pos = self.state.positions.get(entry_cid)
        if pos is not None:
            self.state.positions[entry_cid] = replace(pos, dust=True)
        self.save()

    def positions(self) -> list[Position]:
        """Positions held (an entry that filled), oldest first; dust is not among them."""
        return [
            p for p in self.state.positions.values() if p.filled > 0 and p.qty > 0 and not p.dust
        ]

    def dust(self) -> list[Position]:
        return [p for p in self.state.positions.values() if p.dust and p.qty > 0]

    def pending(self) -> list[Position]:
        """Entries still working with nothing filled yet."""
        return [p for p in self.state.positions.values() if p.pending and p.filled <= 0]

    def working(self) -> list[OrderEvent]:
        """The last event of each order of a position held (see ``BookState.working``)."""
        return list(self.state.working.values())

    def get(self, entry_cid: str) -> Position | None:
        return self.state.positions.get(entry_cid)

    def unlocked(self, venue: str, asset: str) -> tuple[Decimal, Decimal]:
        """Base ``asset`` Kobe's positions on ``venue`` hold and no exit resting on the exchange
        locks: free on the account, yet not the operator's to sell; (open positions', dust's)."""
        held = [
            p
            for p in self.state.positions.values()
            if p.venue == venue
            and p.side is Side.BUY
            and base_of(p.symbol) == asset
            and not any(is_live(x.status) for x in p.exits)
        ]
        dust = sum((p.qty for p in held if p.dust), ZERO)
        return sum((p.qty for p in held), ZERO) - dust, dust

    def committed(self, wallet: str) -> Decimal:
        """Quote a wallet has in open positions and dust (at cost) and in its working buy
        entries; :meth:`dust_committed`, its dust's part."""
        return sum(
            (p.cost + p.locked for p in self.state.positions.values() if p.wallet == wallet),
            ZERO,
        )

    def dust_committed(self, wallet: str) -> Decimal:
        return sum((p.cost for p in self.dust() if p.wallet == wallet), ZERO)


def _price(qty: Decimal, value: Decimal) -> Decimal | None:
    """The price of the fills that added ``qty`` worth ``value`` (None: no quantity, or no
    price known for them)."""
    return value / qty if qty > 0 and value > 0 else None


def _event(raw: bytes, path: Path) -> OrderEvent | None:
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError too; [[[[ nested too deep
        log.warning("%s: a record cannot be read (%s): skipped", path, exc)
        return None
    return read_event(record, path)


__all__ = ["POSITIONS_FILE", "BookState", "PositionBook"]
