"""Planning: a proposal sized into an order plan, within the wallet and the venue's rules."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from engine.exchange.base import (
    ExchangeError,
    InvalidOrder,
    MarketRules,
    OrderType,
    Side,
    stop_limit_price,
)
from engine.money import BPS, floor_to_step, round_price
from engine.proposal import Proposal, Refused, Sizing
from engine.risk import validate_proposal
from engine.router.core import RouterCore
from engine.router.orders import (
    ZERO,
    OrderPlan,
    entry_of,
    fmt_money,
    fmt_plain,
    fmt_qty,
    is_open_status,
)
from engine.router.pending import follow, pending_entries, unknown_entry
from engine.watchdog import ExitPlan


class Planning(RouterCore):
    """Plans: sizing, caps, the exit plan; nothing is sent here."""

    def plan(self, proposal: Proposal) -> OrderPlan:
        """Validate and size ``proposal``; raises :class:`Refused` with every reason."""
        p = proposal
        self.settle_entries(p.symbol)  # first: a position it finds counts in what follows
        try:
            market: MarketRules | None = self.exchange.market(p.symbol)
        except InvalidOrder:
            market = None
        reference: Decimal | None = p.price
        base_held: Decimal | None = None
        if market is not None:
            if p.entry_type is OrderType.MARKET:
                t = self.exchange.fetch_ticker(p.symbol)
                side_price = t.ask if p.side is Side.BUY else t.bid
                reference = side_price if side_price is not None else t.last
            base_held = self.exchange.get_balance(market.base)
            held, dust = (ZERO, ZERO)
            if p.side is Side.SELL:
                held, dust = self.held_by_positions(market.base)
            if held + dust > 0 and base_held <= held + dust:  # what is free is Kobe's positions'
                raise Refused([_not_yours(market.base, base_held, held, dust)])
            base_held = max(ZERO, base_held - held - dust)
        reasons = validate_proposal(
            p,
            market=market,
            reference_price=reference,
            risk=self.risk,
            kill_switch=self.kill_switch(),
            mode_problems=self.mode_problems(),
            base_held=base_held,
        )
        try:
            wallet_balance = self.wallets.balance(p.wallet)
        except KeyError:
            reasons.append(f"unknown wallet {p.wallet}")
            wallet_balance = ZERO
        else:
            problem = self.wallets.venue_problem(p.wallet, self.exchange_name)
            if problem:
                reasons.append(problem)
        if reasons:
            raise Refused(reasons)
        assert market is not None and reference is not None and base_held is not None
        return self._size(p, market, reference, wallet_balance, base_held)

    def recheck(self, p: Proposal) -> None:
        """Just before the send, what may have changed since the plan was shown: the kill
        switch, and entries on its symbol gone unknown (:meth:`settle_entries`)."""
        ks = self.kill_switch()
        if ks.tripped:
            raise Refused([f"kill switch is TRIPPED: {ks.reason or 'no reason given'}"])
        self.settle_entries(p.symbol)

    def settle_entries(self, symbol: str) -> None:
        """Before a new entry on ``symbol``: this mode's entries on it whose outcome is unknown
        are looked up by client id (found: journaled and booked, their exits placed by the next
        poll; never placed: journaled so). One the look-up cannot tell refuses the new entry,
        naming it (:mod:`engine.router.pending`). Exits and closes never come here."""
        reasons = []
        for cid, event in pending_entries(self.journal_state(), self.mode, symbol):
            why = self.undetermined.recent(cid, self.clock())  # asked a moment ago (at start)
            if why is not None:
                reasons.append(unknown_entry(cid, event, why, self.exchange))
                continue
            try:
                found = self._look_up(cid, event, "before a new entry")
            except ExchangeError as exc:
                reasons.append(self.undetermined.note(cid, event, self.clock(), exc, self.exchange))
                continue
            follow(self.watchdog, cid, found)
        if reasons:
            raise Refused(reasons)

    def _size(
        self,
        p: Proposal,
        m: MarketRules,
        ref: Decimal,
        wallet_balance: Decimal,
        base_held: Decimal,
    ) -> OrderPlan:
        notes: list[str] = []
        slippage_bps: Decimal | None = None  # what a market buy is sized for
        worst = ref  # the highest price a buy is sized to pay
        budget = ZERO  # what a buy may spend
        quote_free = self.exchange.get_balance(m.quote)
        cap = self.wallets.cap(p.wallet)
        factor = self.size_factor()
        if p.side is Side.BUY:
            committed = self.committed(p.wallet)
            available = max(ZERO, wallet_balance - committed)
            room = max(ZERO, cap - committed) if cap is not None else available
            fundable = min(available, quote_free, room)
            if p.sizing is Sizing.QUOTE:
                need = p.amount
                if need > available:
                    if committed > 0:
                        raise Refused(
                            [
                                f"insufficient balance: need {fmt_qty(need)} {m.quote}; "
                                f"{p.wallet} can spend {fmt_money(available)} {m.quote}: balance "
                                f"{fmt_money(wallet_balance)}, {self._open(p.wallet, committed)}"
                            ]
                        )
                    raise Refused(
                        [
                            f"insufficient balance: need {fmt_qty(need)} {m.quote}, "
                            f"wallet {p.wallet} has {fmt_qty(wallet_balance)}"
                        ]
                    )
                if cap is not None and committed + need > cap:
                    raise Refused(
                        [
                            f"{fmt_qty(need)} {m.quote} would lift wallet {p.wallet}'s exposure to "
                            f"{fmt_money(committed + need)} {m.quote}, over its cap {fmt_qty(cap)} "
                            f"({self._open(p.wallet, committed)})"
                        ]
                    )
                if need > quote_free:
                    raise Refused(
                        [
                            f"insufficient balance: need {fmt_qty(need)} {m.quote}, the "
                            f"{self.exchange_name} account has {fmt_qty(quote_free)} free"
                        ]
                    )
                budget = need
            else:
                assert p.stop_loss is not None
                risk_cash = wallet_balance * p.amount / 100 * factor
                wanted = risk_cash / abs(ref - p.stop_loss)
                budget = fundable
            if p.entry_type is OrderType.MARKET:
                # a market buy fills above the ask: sized so that a fill within the allowance
                # still spends no more than the operator's amount or what is fundable
                slippage_bps = max(
                    self.settings.market_slippage_bps,
                    self.exchange.market_buy_slippage_bps(p.symbol, budget),
                )
                worst = ref * (1 + slippage_bps / BPS)
            if p.sizing is Sizing.QUOTE:
                raw_qty = need / worst
            else:
                raw_qty = wanted
                if wanted * worst > fundable:
                    raw_qty = fundable / worst
                    notes.append(f"size capped at {fmt_qty(fundable)} {m.quote} (balance or cap)")
        else:
            if p.sizing is Sizing.QUOTE:
                raw_qty = p.amount / ref
                if raw_qty > base_held:
                    raise Refused(
                        [
                            f"insufficient balance: need {fmt_qty(raw_qty.quantize(m.step_size))} "
                            f"{m.base}, you hold {fmt_qty(base_held)}"
                        ]
                    )
            else:
                assert p.stop_loss is not None
                risk_cash = wallet_balance * p.amount / 100 * factor
                raw_qty = min(risk_cash / abs(ref - p.stop_loss), base_held)
        if factor != 1 and p.sizing is Sizing.RISK:
            notes.append(f"risk scaled by {fmt_qty(factor)} (kill switch in WARNING)")
        # Rounded once, here, from the market's step and tick, for every venue (paper and ccxt
        # get identical numbers and refuse anything else): quantities down to the step; a buy's
        # prices down and a sell's up, never past the operator's. The exits are on the other side.
        qty = floor_to_step(raw_qty, m.step_size)
        price = ref
        if p.entry_type is OrderType.LIMIT:
            price = round_price(ref, m.tick_size, buy=p.side is Side.BUY)
        exit_buy = p.side is Side.SELL
        p = replace(
            p,
            price=price if p.entry_type is OrderType.LIMIT else p.price,
            stop_loss=None
            if p.stop_loss is None
            else round_price(p.stop_loss, m.tick_size, buy=exit_buy),
            take_profit=None
            if p.take_profit is None
            else round_price(p.take_profit, m.tick_size, buy=exit_buy),
        )
        # a market buy's refusal says what it may spend and what slippage it was sized for
        sized = ""
        if slippage_bps is not None:
            sized = (
                f": wallet {p.wallet} may spend {fmt_qty(budget)} {m.quote} on it, sized for up "
                f"to {fmt_qty(slippage_bps)} bps slippage above the ask {fmt_qty(ref)}, and one "
                f"step costs up to {fmt_plain(m.step_size * worst)} {m.quote}"
            )
        if qty <= 0:
            raise Refused(
                [
                    f"quantity rounds to zero at step {fmt_qty(m.step_size)} {m.base} "
                    f"(computed {raw_qty:.8f}){sized}"
                ]
            )
        if qty < m.min_qty:
            raise Refused(
                [
                    f"quantity {fmt_qty(qty)} {m.base} is below the minimum "
                    f"{fmt_qty(m.min_qty)} {m.base}{sized}"
                ]
            )
        notional = qty * price
        if notional < m.min_notional:
            raise Refused(
                [
                    f"order value {notional.quantize(Decimal('0.01'))} {m.quote} is below the "
                    f"exchange minimum {fmt_qty(m.min_notional)} {m.quote}"
                ]
            )
        rate = self.taker_fee if p.entry_type is OrderType.MARKET else self.maker_fee
        fee = notional * rate
        self._check_exits_fit(p, m, qty, rate)
        risk_amount = None
        if p.stop_loss is not None:
            risk_amount = qty * abs(price - p.stop_loss) + fee + qty * p.stop_loss * self.taker_fee
        exits = self._exit_plan(p)
        if exits is ExitPlan.OCO:
            self._check_stop_room(m)
        return OrderPlan(
            proposal=p,
            market=m,
            qty=qty,
            entry_price=price,
            notional=notional,
            fee_estimate=fee,
            risk_amount=risk_amount,
            exits=exits,
            notes=tuple(notes),
            slippage_bps=slippage_bps,
            spend_max=qty * worst if p.side is Side.BUY else None,
        )

    def _open(self, wallet: str, committed: Decimal) -> str:
        """What ``wallet`` has open, as a refusal says it: its dust (kept at cost, not an open
        position) named apart, ``open 14.20 (+ dust 0.94)``."""
        dust = self.dust_committed(wallet)
        said = f"open {fmt_money(committed - dust)}"
        return said + (f" (+ dust {fmt_money(dust)})" if dust > 0 else "")

    def _check_exits_fit(self, p: Proposal, m: MarketRules, qty: Decimal, rate: Decimal) -> None:
        """Refuse an entry whose exits could not be placed: what a buy leaves in hand (its fee
        may be taken in the base asset), rounded down to the step, must meet the venue's
        minimum quantity and value at the lowest exit price."""
        legs = [x for x in (p.stop_loss, p.take_profit) if x is not None]
        if p.side is not Side.BUY or not legs:
            return
        held = self.exchange.amount_to_precision(p.symbol, qty - qty * rate)
        if p.stop_loss is not None:  # the stop leg sells at its limit, below the stop
            legs.append(self._stop_limit(m, Side.SELL, p.stop_loss))
        lowest = min(legs)
        if held < m.min_qty or held * lowest < m.min_notional:
            raise Refused(
                [
                    f"its exits could not be placed: {fmt_qty(held)} {m.base} left after fees is "
                    f"{fmt_money(held * lowest)} {m.quote} at {fmt_qty(lowest)}, below the exchange "
                    f"minimum {fmt_qty(m.min_notional)} {m.quote} (or {fmt_qty(m.min_qty)} {m.base}); "
                    "buy a little more"
                ]
            )

    def _check_stop_room(self, m: MarketRules) -> None:
        """Refuse an entry whose OCO the venue would refuse for want of room: Binance (and the
        paper venue) hold at most ``MAX_NUM_ALGO_ORDERS`` stop orders open per symbol, an OCO's
        stop leg being one. Counted without a request: Kobe's stop legs the journal has as not
        ended (sent, open or outcome unknown; a leg whose last line is an ``ack`` saying it
        ended takes no slot), its entries waiting to place an OCO (the
        watchdog's), and the stop orders not Kobe's in the open orders the last sync listed. Only
        this mode's legs count (the journal state and the watchdog are this mode's): those of
        another are on another venue."""
        if m.max_stop_orders is None:
            return
        state = self.journal_state()
        ours = {
            entry_of(cid)
            for cid, e in state.items()
            if cid.endswith("sl")
            and e.symbol == m.symbol
            and e.type == OrderType.STOP_LOSS_LIMIT.value
            and (e.event in ("intent", "unknown") or is_open_status(e.status))
        }
        ours |= {
            i.entry_client_id
            for i in self.watchdog.items()
            if i.symbol == m.symbol and i.exits is ExitPlan.OCO
        }
        others = sum(o.symbol == m.symbol and o.client_id not in state for o in self.stops_listed)
        held = len(ours) + others
        if held >= m.max_stop_orders:
            said = f" ({others} of them not Kobe's)" if others else ""
            raise Refused(
                [
                    f"{m.symbol} already has {held} open stop orders{said}, the most "
                    f"{self.exchange_name} allows (MAX_NUM_ALGO_ORDERS {m.max_stop_orders}): "
                    "this entry's OCO would be refused once it filled. Close a position or "
                    f"cancel an exit on {m.symbol} first, or send it without TP/SL"
                ]
            )

    def _stop_limit(self, m: MarketRules, side: Side, stop: Decimal) -> Decimal:
        """The limit of a stop leg, from ``router.stop_limit_offset_pct``: the same on every venue."""
        return stop_limit_price(m, side, stop, self.settings.stop_limit_offset_pct / 100)

    def _exit_plan(self, p: Proposal) -> ExitPlan:
        if p.take_profit is None and p.stop_loss is None:
            return ExitPlan.NONE
        if self.exits_policy == "watchdog":
            return ExitPlan.WATCHDOG
        caps = self.exchange.capabilities(p.symbol)
        if caps.native_oco and p.take_profit is not None and p.stop_loss is not None:
            return ExitPlan.OCO
        if caps.attached_tp_sl and (caps.attached_on_market or p.entry_type is OrderType.LIMIT):
            return ExitPlan.ATTACHED
        return ExitPlan.WATCHDOG


def _not_yours(asset: str, free: Decimal, held: Decimal, dust: Decimal) -> str:
    """Why a sell entry finds nothing to sell: the free base is Kobe's open positions' (close
    one instead) or only the dust full exits left (never sold; ``kobe positions`` lists it)."""
    said = f"no {asset} to sell: the {fmt_qty(free)} {asset} free is held by Kobe's "
    if held == 0:
        return said + "dust (what full exits left below one step, never sold: kobe positions)"
    also = f" (and {fmt_qty(dust)} {asset} of dust)" if dust > 0 else ""
    return said + f"open positions{also}; close a position instead"
