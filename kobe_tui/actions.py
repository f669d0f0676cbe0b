"""The cockpit's actions on the engine: orders (new, cancel, cancel all), positions (close,
new exits), the kill switch, pause, the two-step live unlock and quitting. Each asks first where
it matters (the safe answer is the default) and runs in a worker; the outcome comes back as an
``ActionDone`` message."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from textual import work
from textual.widgets import Static

from engine.bootstrap import Mode
from kobe_tui.engine_host import EngineHost
from kobe_tui.messages import ActionDone, PositionsChanged
from kobe_tui.widgets.formatting import counted, num
from kobe_tui.widgets.header import KobeHeader
from kobe_tui.widgets.journal import AlertsPane
from kobe_tui.widgets.orders import OrdersPane, PositionsPane

if TYPE_CHECKING:
    from engine.position import Position
    from engine.proposal import Proposal


def ConfirmScreen(question: str, *, yes: str = "Yes", no: str = "No") -> Any:
    """The confirmation modal, imported when first needed (not for the first frame)."""
    from kobe_tui.screens.confirm import ConfirmScreen as Screen

    return Screen(question, yes=yes, no=no)


class Actions(EngineHost):
    """What the operator does to the engine: orders, positions, kill switch, live, quit."""

    _venue_down_since: datetime | None = None  # live, locked: as the unlock's read found it

    # -- keys: trading ------------------------------------------------------------------------

    def action_new_order(self) -> None:
        from kobe_tui.screens.ticket import OrderTicket

        runtime, settings = self.runtime, self.settings
        if runtime is None or settings is None:
            return
        finance = settings.config.finance
        wallets = [w for w in finance.wallet_ids if w in finance.risk_wallets]
        default = f"cex_{settings.exchange}"
        ticket = OrderTicket(
            list(settings.config.symbols),
            wallets,
            default if default in wallets else wallets[0],
            runtime.plan,
            self._sizing_waits,
            amount=num(settings.config.router.default_quote_usd),
        )
        self.push_screen(ticket, self._ticket_done)

    def _sizing_waits(self, proposal: Proposal) -> str | None:
        """With the exchange down, sizing (it needs a price) waits out the engine's retries:
        the ticket says so at once instead of a bare ``sizing…``."""
        runtime, settings = self.runtime, self.settings
        if runtime is None or settings is None:
            return None
        health = runtime.venue_health
        if health is None or health.state != "down":
            return None
        if runtime.venue_of_wallet(proposal.wallet) != settings.exchange:
            return None
        since = f" since {health.since:%H:%M}" if health.since is not None else ""
        return f"{settings.exchange} is DOWN{since}: the plan needs its price and waits for it"

    def _ticket_done(self, proposal: Proposal | None) -> None:
        if proposal is not None:
            self.submit_order(proposal)

    @work(thread=True, exit_on_error=False, group="action")
    def submit_order(self, proposal: Proposal) -> None:
        from engine.exchange.base import ExchangeError
        from engine.proposal import Refused

        assert self.runtime is not None
        try:
            placed = self.runtime.submit(proposal)
        except Refused as exc:
            self.post_message(ActionDone("Refused: " + "; ".join(exc.reasons), error=True))
            return
        except ExchangeError as exc:
            self.post_message(ActionDone(f"Order outcome unknown: {exc}", error=True))
            return
        e = placed.entry
        notes = "".join(f" — {n}" for n in placed.notes)
        self.post_message(
            ActionDone(
                f"Order {e.id} {e.side.value.upper()} {num(e.qty)} {e.symbol}: {e.status.value}{notes}",
                result=placed,
            )
        )
        self.post_message(PositionsChanged.read(self.runtime))

    def action_cancel_order(self) -> None:
        order = self.query_one(OrdersPane).selected()
        if order is None:
            self.notify("Select an order in the orders pane (1) first", severity="warning")
            return
        price = f" @ {order.price}" if order.price is not None else ""
        question = f"Cancel order {order.exchange_id or order.client_id} {order.side.upper()} {num(order.qty)} {order.symbol}{price}?"
        ref, name = order.client_id, order.exchange_id or order.client_id
        from engine.router import entry_of

        entry_cid = entry_of(ref)
        held = self.query_one(PositionsPane).positions.get(entry_cid) if entry_cid else None
        if held is not None and ref[-2:] in ("tp", "sl"):  # one leg cancels the pair
            legs = ", ".join(
                f"{name} {value}"
                for name, value in (("TP", held.take_profit), ("SL", held.stop_loss))
                if value is not None
            )
            question = (
                f"Cancel the exits of position {held.symbol} {num(held.qty)}"
                + (f" ({legs})" if legs else "")
                + "? It will be unprotected."
            )

        def done(yes: bool | None) -> None:
            if yes:
                self.cancel_orders([(ref, name)])

        self.push_screen(ConfirmScreen(question, yes="Cancel order"), done)

    def action_cancel_all(self) -> None:
        orders = list(self.query_one(OrdersPane).orders.values())
        if not orders:
            self.notify("No open orders")
            return
        question = f"Cancel all {counted(len(orders), 'open order')} of Kobe's? Protective exits among them leave their positions unprotected."

        def done(yes: bool | None) -> None:
            if yes:
                self.cancel_orders([(o.client_id, o.exchange_id or o.client_id) for o in orders])

        self.push_screen(ConfirmScreen(question, yes="Cancel all"), done)

    @work(thread=True, exit_on_error=False, group="action")
    def cancel_orders(self, refs: list[tuple[str, str]]) -> None:
        """Cancel each order (its client id, and its name for the trader: the exchange id the
        confirmation named); a failure says which cancel failed, not only the exchange's words."""
        from engine.exchange.base import ExchangeError, OrderNotFound
        from engine.proposal import Source
        from engine.router import entry_of

        assert self.runtime is not None
        paired: set[str] = set()  # positions whose exit pair went with one of its legs
        for ref, name in refs:
            entry = entry_of(ref)
            try:
                done = self.runtime.cancel(ref, Source.COCKPIT)
            except OrderNotFound as exc:
                if entry is None or entry not in paired:  # else: gone with its OCO sibling
                    self.post_message(ActionDone(f"Cancel {name} failed: {exc}", error=True))
                continue
            except ExchangeError as exc:
                self.post_message(ActionDone(f"Cancel {name} failed: {exc}", error=True))
                continue
            if entry is not None:
                paired.add(entry)
            self.post_message(ActionDone(f"Cancelled {done.id} ({done.client_id})"))

    def _selected_position(self) -> Position | None:
        """The open position selected in the positions pane; None (said why) on dust or none."""
        pane = self.query_one(PositionsPane)
        pos, dust = pane.selected(), pane.selected_dust()
        if dust is not None:
            self.notify(
                f"{dust.symbol} {num(dust.qty)} ({dust.wallet}) is dust, too small to sell on "
                "its own: the next exit Kobe sizes there sells it, or the dust sweep once "
                "the venue takes it",
                severity="warning",
            )
        elif pos is None:
            self.notify("Select a position in the positions pane (2) first", severity="warning")
        return pos

    def action_close_position(self) -> None:
        pos = self._selected_position()
        if pos is None:
            return
        question = f"Close {pos.symbol} {num(pos.qty)} ({pos.wallet}) at market? Its TP/SL are cancelled first."
        cid = pos.entry_client_id

        def done(yes: bool | None) -> None:
            if yes:
                self.close_position(cid)

        self.push_screen(ConfirmScreen(question, yes="Close at market"), done)

    def action_edit_exits(self) -> None:
        from kobe_tui.screens.exits import ExitsScreen

        pos = self._selected_position()
        if pos is None:
            return
        title = f"New exits for {pos.symbol} {num(pos.qty)} ({pos.wallet})"
        cid = pos.entry_client_id

        def done(result: tuple[Decimal | None, Decimal | None] | None) -> None:
            if result is not None:
                self.replace_exits(cid, *result)

        self.push_screen(ExitsScreen(title, pos.take_profit, pos.stop_loss), done)

    @work(thread=True, exit_on_error=False, group="action")
    def replace_exits(self, cid: str, tp: Decimal | None, sl: Decimal | None) -> None:
        from engine.exchange.base import ExchangeError
        from engine.proposal import Refused

        assert self.runtime is not None
        try:
            cover = self.runtime.replace_exits(cid, tp, sl)
        except Refused as exc:  # nothing moved: the old exits stay
            self.post_message(ActionDone(f"New exits refused: {exc}", error=True))
            return
        except ExchangeError as exc:
            self.post_message(
                ActionDone(
                    f"New exits not placed ({exc}): the local watchdog covers {cid} "
                    "while the engine runs",
                    error=True,
                )
            )
            return
        self.post_message(ActionDone(f"Exits of {cid} replaced: {cover}"))
        self.post_message(PositionsChanged.read(self.runtime))

    @work(thread=True, exit_on_error=False, group="action")
    def close_position(self, cid: str) -> None:
        from engine.exchange.base import ExchangeError

        assert self.runtime is not None
        try:
            order = self.runtime.close_position(cid, "closed by operator (cockpit)")
        except ExchangeError as exc:
            self.post_message(ActionDone(f"Close failed: {exc}", error=True))
            return
        text = f"Closed {cid}" if order is not None else f"{cid}: nothing to close"
        self.post_message(ActionDone(text))
        self.post_message(PositionsChanged.read(self.runtime))

    def action_trip(self) -> None:
        """``k`` trips at once, whatever ``on_trip`` says (an entry under way is refused, as
        ``kobe risk trip`` does); with ``flatten`` a question follows about the flatten alone:
        Yes replaces this trip with one that flattens, No (the default) leaves it as it is."""
        from engine.risk import NOT_FLATTENED

        settings = self.settings
        if settings is None or settings.config.risk.on_trip != "flatten":
            self.trip_kill_switch("manual: tripped from the cockpit")
            return
        question = (
            "Kill switch TRIPPED: new entries are blocked. on_trip is flatten: also cancel "
            "Kobe's open entries and close its positions at market?"
        )
        if getattr(self.screen, "question", None) == question:
            return  # asked already (k from that question: "k k" in one packet)
        self.trip_kill_switch(f"{NOT_FLATTENED}: tripped from the cockpit")

        def done(yes: bool | None) -> None:
            if yes:
                self.trip_kill_switch("manual: tripped from the cockpit", flatten=True)

        self.push_screen(ConfirmScreen(question, yes="Flatten", no="Trip only"), done)

    @work(thread=True, exit_on_error=False, group="action")
    def trip_kill_switch(self, reason: str, flatten: bool = False) -> None:
        assert self.runtime is not None
        self.runtime.trip(reason, "cockpit")
        self.post_message(
            ActionDone(
                "Kill switch TRIPPED: new entries are blocked"
                + ("; flattening Kobe's entries and positions" if flatten else "")
            )
        )

    def action_reset(self) -> None:
        assert self.runtime is not None
        snap = self.runtime.risk_snapshot()
        question = f"Reset the kill switch (TRIPPED: {snap.reason})? New entries will be allowed again. This is audited."

        def done(yes: bool | None) -> None:
            if yes:
                self.reset_kill_switch()

        self.push_screen(ConfirmScreen(question, yes="Reset"), done)

    @work(thread=True, exit_on_error=False, group="action")
    def reset_kill_switch(self) -> None:
        assert self.runtime is not None
        self.runtime.reset_kill_switch("cockpit")
        self.post_message(ActionDone("Kill switch reset (ARMED)"))

    def action_pause(self) -> None:
        if self.runtime is None:
            return
        self.runtime.pause()
        self.notify("Engine paused: no new entries; protective exits keep working")
        self.refresh_bindings()  # the footer offers `p Resume`

    def action_resume(self) -> None:
        if self.runtime is None:
            return
        self.runtime.resume()
        self.notify("Engine resumed")
        self.refresh_bindings()

    # -- keys: live unlock --------------------------------------------------------------------

    def action_unlock(self) -> None:
        from engine.modes import live_gate_problems

        settings = self.settings
        if settings is None:
            return
        if self.mode is Mode.LIVE and self.live_unlocked:
            self.notify(f"LIVE is unlocked: the engine trades on {self.exchange} with real money")
            return
        problems = [p for p in live_gate_problems(settings, confirmed=True)]
        if problems:
            title = "Live unlock refused" if self.mode is Mode.LIVE else "Live needs"
            self.notify(
                f"{title}:\n" + "\n".join(f"- {p}" for p in problems),
                severity="error",
                timeout=10,
                markup=False,
            )
            self.query_one(AlertsPane).add(
                self.clock(),
                "warning",
                "live_unlock",
                "live unlock refused: " + "; ".join(problems),
            )
            return
        from kobe_tui.screens.unlock import UnlockStep1

        self.push_screen(UnlockStep1(settings.exchange, self._fetch_balances), self._unlock_step2)

    def _fetch_balances(self) -> dict[str, Decimal]:
        """Step 1's balances (in its worker). The engine has not run while live is locked, so
        this read is what the cockpit knows of the venue: the header says it (it showed no
        venue at all while the exchange could not be reached)."""
        try:
            balances = self._read_balances()
        except Exception as exc:
            self.call_from_thread(self._venue_read, exc)
            raise
        self.call_from_thread(self._venue_read, None)
        return balances

    def _venue_read(self, exc: Exception | None) -> None:
        from engine.exchange.base import ExchangeUnavailable, NetworkError
        from engine.runtime_types import VenueHealth

        if self.runtime is not None:
            return  # the engine's own calls say it, every tick
        if exc is None:
            self._venue_down_since = None
            health = VenueHealth("ok")
        elif isinstance(exc, NetworkError | ExchangeUnavailable | OSError):
            self._venue_down_since = self._venue_down_since or self.clock()
            health = VenueHealth("down", str(exc), self._venue_down_since)
        else:
            health = VenueHealth("degraded", str(exc))
        self._show_venue(health)

    def _read_balances(self) -> dict[str, Decimal]:
        settings = self.settings
        assert settings is not None
        if self.balances_fetcher is not None:
            return self.balances_fetcher(settings)
        from engine.exchange.ccxt_exchange import CcxtExchange

        exchange = CcxtExchange.reader_from_settings(settings)  # reads only, sends never
        try:
            quote = settings.config.paper.quote_asset
            assets = {quote, *(s.split("/")[0] for s in settings.config.symbols)}
            return exchange.get_balances(sorted(assets))
        finally:
            exchange.close()

    def _unlock_step2(self, go: bool | None) -> None:
        if not go:
            self.notify("Live stays locked")
            return
        from kobe_tui.screens.unlock import UnlockStep2

        phrase = f"UNLOCK {self.exchange.upper()} LIVE"
        self.push_screen(UnlockStep2(phrase), self._unlock_done)

    def _unlock_done(self, go: bool | None) -> None:
        if not go:
            self.notify("Live stays locked")
            return
        settings = self.settings
        assert settings is not None
        from engine.audit import AuditLog

        audit = AuditLog(settings.data_dir, self.clock)
        try:
            audit.record("live_unlock", "cockpit", exchange=settings.exchange)
        finally:
            audit.close()
        self.live_unlocked = True
        self.query_one(KobeHeader).set_mode(self.mode, self.exchange, live_locked=False)
        self.query_one("#mode-note", Static).update(self._mode_note())
        self.start_engine(confirmed=True)

    # -- quitting -----------------------------------------------------------------------------

    def action_quit_safely(self) -> None:
        """``q``: asks first when orders are open. An action under way (an order being
        placed: ``ctrl+s q`` in one packet) is carried out first, and the question counts
        the orders it left open."""
        if self._after_actions(self.action_quit_safely):
            return
        orders = self.query_one(OrdersPane).orders
        if orders:
            question = f"Quit with {counted(len(orders), 'open order')}? They stay on the exchange; exits watched locally are not watched while Kobe is closed."

            def done(yes: bool | None) -> None:
                if yes:
                    self.shutdown()

            self.push_screen(ConfirmScreen(question, yes="Quit"), done)
        else:
            self.shutdown()

    async def action_quit(self) -> None:
        """``ctrl+q`` and the palette's Quit: the same question as ``q``."""
        self.action_quit_safely()
