"""Entries whose outcome is unknown hold new entries on their symbol until they are found.

An entry whose send got no answer (a timeout, a 5xx, a connection cut after the send, a
"duplicate client id" whose order no look-up lists yet, a kill -9 before the answer: ``intent``
or ``unknown`` last in the order journal) may be on the exchange. Before a new entry on the same
venue, mode and symbol goes out by the one order path (``kobe trade``, the cockpit's ticket, a
strategy's signal), it is looked up by its client id, as reconciliation does: found, it is
booked like any fill, and the new entry is judged on its own merits (its wallet and the risk
engine see the position); not told (the exchange unreachable, or no such order while its
request may still be placed: ``Capabilities.landing_window_s``), the new entry is refused,
naming it. Exits, closes and the watchdog's stop-loss never wait for it.

What holds an entry is the journal alone: a restart, a kill -9 or a lost snapshot cannot lift it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from engine.exchange.base import AuthenticationError, ExchangeReader, Order, OrderOutcomeUnknown
from engine.journal import OrderEvent, in_mode
from engine.router.orders import entry_of, fmt_qty, sweep_of
from engine.watchdog import Watchdog

UNSETTLED = ("intent", "unknown")  # the journal's last word on an order sent with no answer
# a look-up that could not tell this recently is not asked again at once: the CLI's start-up
# reconciliation has just asked (with its retries) before the entry's own check
RECHECK_S = 15


def is_entry(cid: str) -> bool:
    """An entry's client id: not one of its exits (``tp``, ``sl``, ``cx``), nor a dust sweep."""
    return entry_of(cid) is None and sweep_of(cid) is None


def cannot_tell(cid: str, exc: Exception) -> bool:
    """A start-up look-up that failed with ``exc`` leaves ``cid`` unknown and goes on: an
    entry's, unless the exchange refuses the keys (no engine can trade or protect with them)."""
    return is_entry(cid) and not isinstance(exc, AuthenticationError)


def unsettled_entries(state: Mapping[str, OrderEvent]) -> list[tuple[str, OrderEvent]]:
    """The entries in ``state`` whose outcome is not known (never an exit or a sweep)."""
    return [(cid, e) for cid, e in state.items() if e.event in UNSETTLED and is_entry(cid)]


def pending_entries(
    state: Mapping[str, OrderEvent], mode: str, symbol: str
) -> list[tuple[str, OrderEvent]]:
    """This mode's entries on ``symbol`` whose outcome is not known (never its exits)."""
    return [
        (cid, e) for cid, e in unsettled_entries(state) if in_mode(e, mode) and e.symbol == symbol
    ]


def outcome_unknown(cid: str, event: OrderEvent) -> str:
    """What a command that cannot act on an entry sent with no answer (``kobe cancel``,
    ``kobe exits``) tells the operator of it."""
    sent = event.ts.strftime("%Y-%m-%d %H:%M:%SZ")
    return (
        f"entry {cid} ({event.symbol} {event.side} {fmt_qty(event.qty)}, sent {sent}) has no "
        "known outcome: it may have filled on the exchange; `kobe orders` looks it up again (as "
        "does every start) and books it if the exchange has it"
    )


def beyond_the_tail(
    state: dict[str, OrderEvent],
    filled: dict[str, Decimal],
    working: Iterable[OrderEvent],
    venue: str,
    mode: str,
) -> None:
    """Into ``state`` (a router's last event per client id, read from the journal's tail) and
    ``filled`` (its orders' cumulative fills): the last event of each order of a position the
    book holds (it reads the whole journal) that the tail lacks. An entry sent with no answer
    long ago still holds its symbol and is looked up at start; its exits resting on the
    exchange are still followed, never taken for external orders."""
    for e in working:
        if e.exchange == venue and in_mode(e, mode) and e.client_id not in state:
            state[e.client_id] = e
            if e.event in ("fill", "partial_fill"):
                filled[e.client_id] = e.filled


def landed_by(event: OrderEvent, venue: ExchangeReader) -> datetime:
    """When an unanswered entry's request can no longer be placed: "no such order" after this
    is "never placed" (journaled ``reject``, as reconciliation always did), before it only
    "not found yet"."""
    return event.ts + timedelta(seconds=venue.capabilities(event.symbol).landing_window_s)


def not_found_yet(
    cid: str, event: OrderEvent, venue: ExchangeReader, now: datetime
) -> OrderOutcomeUnknown | None:
    """An entry the exchange has no order for while its request may still be placed: its
    outcome is still unknown (raised by the look-up); None for an exit, or once it cannot."""
    if not is_entry(cid) or now >= landed_by(event, venue):
        return None
    return OrderOutcomeUnknown(cid, "the exchange has no such order yet")


def unknown_entry(cid: str, event: OrderEvent, why: str, venue: ExchangeReader) -> str:
    """Why a new entry on ``event``'s symbol is refused, and what the operator can do."""
    sent = event.ts.strftime("%Y-%m-%d %H:%M:%SZ")
    until = landed_by(event, venue).strftime("%H:%M:%SZ")
    return (
        f"{event.symbol} entry {cid} ({event.side} {fmt_qty(event.qty)}, sent {sent} by "
        f"{event.source or 'unknown'}) has no known outcome ({why}). No new entry on "
        f"{event.symbol} until it is found: `kobe orders` looks it up again (as does the next "
        f"entry) and books it if the exchange has it; if the exchange still has no such order "
        f"after {until}, it is journaled as never sent. Exits and closes are not held"
    )


class Undetermined:
    """Entries whose last look-up could not tell: client id -> (when, why). Memory only, to
    spare a second round of look-ups in a row; what holds an entry is the journal."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[datetime, str]] = {}

    def note(
        self, cid: str, event: OrderEvent, now: datetime, exc: Exception, venue: ExchangeReader
    ) -> str:
        """The look-up of ``cid`` could not tell (``exc``); returns what to tell the operator."""
        self._seen[cid] = (now, str(exc))
        return unknown_entry(cid, event, str(exc), venue)

    def recent(self, cid: str, now: datetime) -> str | None:
        """Why the look-up of ``cid`` could not tell, if it was asked within :data:`RECHECK_S`."""
        seen = self._seen.get(cid)
        if seen is None or not now - timedelta(seconds=RECHECK_S) <= seen[0] <= now:
            return None
        return seen[1]


def follow(watchdog: Watchdog, cid: str, found: Order | None) -> None:
    """A looked-up order's watchdog item: gone with an order never placed; told the order's
    exchange id when found (its exits are placed once it fills)."""
    item = watchdog.get(cid)
    if found is None:
        watchdog.remove(cid)
    elif item is not None and not item.entry_id:
        watchdog.update(cid, entry_id=found.id)
