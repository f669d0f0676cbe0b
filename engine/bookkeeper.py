"""The bookkeeper: each closed trade of the book handed on once (wallets, then risk, then
``trades.jsonl``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from engine.book import PositionBook
from engine.book_cache import SAVE_EVERY_BYTES
from engine.journal import OrderEvent, iter_jsonl, tail_jsonl
from engine.position import dust_worth_saying
from engine.proposal import Source
from engine.trades import TRADES_FILE, ClosedTrade, TradeStore

if TYPE_CHECKING:
    from engine.risk import RiskEngine

log = logging.getLogger(__name__)


BOOKED_KEPT = 200  # trade ids remembered between catch-ups (and read back from trades.jsonl's tail)


class WalletSink(Protocol):
    """What the bookkeeper needs of the wallet manager: idempotent by trade id."""

    def on_trade_closed(
        self, wallet_id: str, pnl_usd: Decimal, fees_usd: Decimal, *, trade_id: str
    ) -> bool: ...

    def close(self) -> None: ...


class Bookkeeper:
    """Hands each closed trade on exactly once: the wallets, the risk engine, ``trades.jsonl``.

    In that order: the wallets and the risk engine dedupe by trade id themselves;
    ``trades.jsonl`` is the record that a trade was booked. A crash before that record hands the
    trade on again at the next start, and neither counts it twice.
    """

    def __init__(
        self,
        book: PositionBook,
        *,
        trades: TradeStore,
        risk: RiskEngine | None = None,
        wallets: WalletSink | None = None,
        on_closed: Callable[[ClosedTrade], None] | None = None,
        on_alert: Callable[[str, str], None] | None = None,
    ) -> None:
        self.book = book
        self.trades = trades
        self.risk = risk
        self.wallets = wallets
        self.on_closed = on_closed
        self.on_alert = on_alert
        self._saved_at = book.state.offset
        trades_path = book.data_dir / TRADES_FILE
        self._trades_path = trades_path
        # a crash can only have come between booking and the cache: a tail is enough; after a
        # rebuild from the whole journal, the whole file is read, once, if a close is not in it.
        # Only such a replay needs them: the book closes a position once, so a trade booked by a
        # catch-up that returned never closes again in this process; the newest are kept
        self._booked = _ids(tail_jsonl(trades_path, BOOKED_KEPT))
        self._read_all = not book.rebuilt

    def _already_booked(self, trade_id: str) -> bool:
        if trade_id not in self._booked and not self._read_all:
            self._booked |= _ids(iter_jsonl(self._trades_path))
            self._read_all = True
        return trade_id in self._booked

    def catch_up(self) -> list[ClosedTrade]:
        """Bring the book up to the journal; book every trade that closed. Returns them."""
        out = []
        before = {p.entry_client_id: p.qty for p in self.book.dust()}
        closed = self.book.catch_up(save=False)
        for trade in closed:
            if self._already_booked(trade.trade_id):
                continue
            self._book(trade)
            out.append(trade)
        if len(self._booked) > 2 * BOOKED_KEPT:  # in batches: not a copy at every close
            self._booked = dict.fromkeys(list(self._booked)[-BOOKED_KEPT:])
        if out:  # (a book rebuilt at start books nothing again: no note again either)
            self._say_dust(before)
        # the cache moves past a close only once the trade is booked; other events are saved in
        # batches (the journal is the truth: a cache a little behind replays the rest, exactly)
        if closed or self.book.state.offset - self._saved_at >= SAVE_EVERY_BYTES:
            self.save()
        return out

    def _say_dust(self, before: dict[str, Decimal]) -> None:
        """What the trades just closed left below one step, said once: the trade counts what
        its exits sold, and the rest (Kobe's, at its cost) is neither lost nor an open position."""
        for p in self.book.dust():
            if p.qty > before.get(p.entry_client_id, Decimal(0)) and dust_worth_saying(p):
                base, _, quote = p.symbol.partition("/")
                self._alert(
                    "info",
                    f"{p.symbol}: {p.qty} {base} of {p.wallet} is dust (too small to sell on its "
                    f"own), kept at its cost ({p.cost:.2f} {quote}): the next exit Kobe sizes "
                    f"there sells it, or the dust sweep once the venue takes it on its own",
                )

    def save(self) -> None:
        """Write the cache now (at a close, every ``SAVE_EVERY_BYTES`` of journal, and on close)."""
        if self.book.state.offset != self._saved_at:
            self.book.save()
            self._saved_at = self.book.state.offset

    def on_event(self, _event: OrderEvent) -> None:
        """A router's listener: each journaled event moves the book (and may book a trade)."""
        self.catch_up()

    def _book(self, trade: ClosedTrade) -> None:
        if self.wallets is not None:
            try:
                # the wallet manager books the gross PnL and pays the fees from the fees wallet
                self.wallets.on_trade_closed(
                    trade.wallet, trade.pnl + trade.fees, trade.fees, trade_id=trade.trade_id
                )
            except ValueError as exc:
                self._alert(
                    "error", f"wallet {trade.wallet}: trade {trade.trade_id} not booked: {exc}"
                )
        if self.risk is not None:
            sweep = trade.strategy == Source.DUST_SWEEP  # no trading decision: no streak
            self.risk.on_trade_closed(trade.pnl, trade.trade_id, streak=not sweep)
        self.trades.append(trade)
        self._booked[trade.trade_id] = None
        if self.on_closed is not None:
            self.on_closed(trade)

    def close(self) -> None:
        self.save()
        self.trades.close()
        if self.wallets is not None:
            self.wallets.close()

    def _alert(self, severity: str, message: str) -> None:
        log.warning("%s", message)
        if self.on_alert is not None:
            self.on_alert(severity, message)


def _ids(records: Iterable[dict[str, Any]]) -> dict[str, None]:
    """The trade ids of ``trades.jsonl``'s records, in their order (a dict: an ordered set)."""
    return dict.fromkeys(str(r.get("trade_id")) for r in records)
