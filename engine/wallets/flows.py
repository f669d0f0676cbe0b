"""The flows engine: the sub-wallet ledger and the rules that move money in it. No I/O.

Every change of state is an :class:`Op`: a closed trade (``trade:<id>``) or a tick
(``tick:<time>``) with the movements it makes. The engine *plans* an op from the current state,
the runtime journals it, and :meth:`Ledger.apply` applies it. Replaying the journal after a restart
goes through the very same :meth:`Ledger.apply`, so a restored ledger is the ledger that was lost.

Invariants (held by the planners, checked by the property tests):

- money is conserved: the sum of the wallets is the capital plus realized PnL minus fees paid;
- no movement takes a wallet below zero;
- no flow fills a wallet beyond its cap (a winning trade may; that raises an alert);
- a trade id is applied once; a rule runs at most once per period (``tick`` rules: per tick time).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from engine.config import FinanceConfig, WalletFlowsConfig
from engine.money import ZERO, floor_to_step

MARKET = "market"  # outside the ledger: where realized PnL comes from and losses go
FEES_PAID = "fees_paid"  # outside the ledger: fees paid to venues
OUTSIDE = (MARKET, FEES_PAID)

TRADE_PNL = "trade_pnl"
TRADE_FEES = "trade_fees"
TRADE_REFUSED = "trade_refused"  # a line of amount 0: the trade id is settled, as refused
RULES = ("fees_sweep", "profits_sweep", "compounding")

CENT = Decimal("0.01")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TradeRefused(ValueError):
    """A closed trade that cannot be booked (unknown wallet, a loss larger than the wallet...)."""


def refusal_op(trade_id: str, wallet_id: str, now: datetime, reason: str) -> Op:
    """A trade refused for what the ledger holds: journaled (amount 0) so that delivering it again,
    even after a restart in a later state, is recognised instead of booked."""
    return Op(
        trade_op_id(trade_id), now, (Movement(TRADE_REFUSED, wallet_id, MARKET, ZERO, reason),)
    )


@dataclass(frozen=True)
class Movement:
    """One movement of money: a line of ``wallet_flows.jsonl``."""

    rule: str
    source: str
    destination: str
    amount: Decimal
    reason: str


@dataclass(frozen=True)
class Op:
    """What one event does: its id (idempotence key), its time, its movements."""

    id: str
    time: datetime
    movements: tuple[Movement, ...]

    @property
    def trade_id(self) -> str | None:
        return self.id[len("trade:") :] if self.id.startswith("trade:") else None

    @property
    def refused(self) -> str | None:
        """The refusal, for a trade the ledger could not book."""
        for m in self.movements:
            if m.rule == TRADE_REFUSED:
                return m.reason
        return None


def trade_op_id(trade_id: str) -> str:
    return f"trade:{trade_id}"


def tick_op_id(now: datetime) -> str:
    return "tick:" + now.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime: the wallet ledger runs on timezone-aware UTC time")
    return now.astimezone(UTC)


def _cents(value: Decimal) -> Decimal:
    return floor_to_step(value, CENT)


def _fmt(value: Decimal) -> str:
    return f"{value.quantize(CENT)}"


class Ledger:
    """The balances of the sub-wallets and what the rules need to remember."""

    def __init__(
        self,
        finance: FinanceConfig,
        flows: WalletFlowsConfig,
        *,
        remember_trades: int = 4096,
        simulated: frozenset[str] = frozenset(),
    ) -> None:
        self.finance = finance
        self.flows = flows
        # wallets whose trades are simulated while the others' are not (the DEX venue's, in
        # testnet and live): no rule moves money between them and the rest, so a simulated
        # profit never funds a real order, and real profit never vanishes into the simulation
        self.simulated = simulated
        self.wallets = {w.id: w for w in finance.wallets}
        self.allocation = {w.id: w.allocation(finance.capital_usd) for w in finance.wallets}
        self.balances: dict[str, Decimal] = dict(self.allocation)
        self.pnl_day: dict[str, Decimal] = dict.fromkeys(self.wallets, ZERO)
        self.fees_day = ZERO
        self.day: date | None = None
        self.unswept: dict[str, Decimal] = dict.fromkeys(self.wallets, ZERO)
        self.realized_pnl = ZERO
        self.fees_paid = ZERO
        self.marks: dict[str, int] = {}
        self.remember_trades = remember_trades
        self.recent_trades: deque[str] = deque()
        self._recent: set[str] = set()
        self.last_time: datetime | None = None
        # what a wallet has in open positions (the position book); a sweep never takes it
        self.committed: Callable[[str], Decimal] = lambda wallet_id: ZERO

    # -- reading ---------------------------------------------------------------------------

    def equity(self) -> Decimal:
        return sum(self.balances.values(), ZERO)

    def knows_trade(self, trade_id: str) -> bool:
        return trade_id in self._recent

    def cap(self, wallet_id: str, equity: Decimal | None = None) -> Decimal | None:
        return self.finance.cap_usd(wallet_id, self.equity() if equity is None else equity)

    def rule_key(self, rule: str, now: datetime) -> int:
        """The start of the period ``now`` falls in for ``rule``, in microseconds since the epoch
        (a ``tick`` rule: the tick itself). A time, not a period number, so that a changed
        ``period_s`` still compares right with what the snapshot remembers."""
        cfg = self.flows.rules()[rule]
        micros = (_aware(now) - EPOCH) // timedelta(microseconds=1)
        if cfg.trigger == "tick":
            return micros
        period = cfg.period_s * 1_000_000
        return micros - micros % period

    def due_rules(self, now: datetime) -> list[str]:
        if not self.flows.enabled:
            return []
        rules = self.flows.rules()
        return [
            name
            for name in RULES
            if rules[name].enabled and self.rule_key(name, now) > self.marks.get(name, -(2**62))
        ]

    # -- planning (no change of state) -----------------------------------------------------

    def plan_trade(
        self, trade_id: str, wallet_id: str, pnl_usd: Decimal, fees_usd: Decimal, now: datetime
    ) -> Op | None:
        """The op booking a closed trade, or None when that trade id was settled already.

        PnL goes to (or comes from) the trading wallet; fees are paid from the fees wallet, and
        from the trading wallet for what the fees wallet cannot cover. Bad input (a wallet that may
        not trade, negative fees, not a Decimal) raises :class:`TradeRefused`. A trade that would
        take a wallet below zero gives a refusal op (:attr:`Op.refused`), which moves nothing.
        """
        now = _aware(now)
        if not trade_id:
            raise TradeRefused("a closed trade needs a trade id")
        if self.knows_trade(trade_id):
            return None
        for name, value in (("pnl_usd", pnl_usd), ("fees_usd", fees_usd)):
            if not isinstance(value, Decimal) or not value.is_finite():
                raise TradeRefused(f"{name} must be a finite Decimal (got {value!r})")
        if wallet_id not in self.finance.risk_wallets:
            allowed = ", ".join(self.finance.risk_wallets)
            raise TradeRefused(f"wallet {wallet_id!r} may not trade (risk wallets: {allowed})")
        if fees_usd < 0:
            raise TradeRefused(f"fees_usd must not be negative (got {fees_usd})")
        balance = self.balances[wallet_id]
        if -pnl_usd > balance:
            why = (
                f"trade {trade_id}: loss {-pnl_usd} USD exceeds wallet {wallet_id} "
                f"balance {balance} USD"
            )
            return refusal_op(trade_id, wallet_id, now, why)
        moves: list[Movement] = []
        if pnl_usd > 0:
            why = f"trade {trade_id} closed on {wallet_id}: pnl +{pnl_usd}"
            moves.append(Movement(TRADE_PNL, MARKET, wallet_id, pnl_usd, why))
        elif pnl_usd < 0:
            why = f"trade {trade_id} closed on {wallet_id}: pnl {pnl_usd}"
            moves.append(Movement(TRADE_PNL, wallet_id, MARKET, -pnl_usd, why))
        if fees_usd > 0:
            fees_wallet = self.finance.fees_policy.wallet
            from_buffer = min(fees_usd, self.balances[fees_wallet])
            rest = fees_usd - from_buffer
            after = balance + pnl_usd
            if rest > after:
                why = (
                    f"trade {trade_id}: fees {fees_usd} USD exceed what {fees_wallet} "
                    f"({self.balances[fees_wallet]}) and {wallet_id} ({after}) hold"
                )
                return refusal_op(trade_id, wallet_id, now, why)
            if from_buffer > 0:
                why = f"fees of trade {trade_id} on {wallet_id}, paid from the fees buffer"
                moves.append(Movement(TRADE_FEES, fees_wallet, FEES_PAID, from_buffer, why))
            if rest > 0:
                why = f"fees of trade {trade_id}: fees buffer {fees_wallet} short by {rest}"
                moves.append(Movement(TRADE_FEES, wallet_id, FEES_PAID, rest, why))
        return Op(trade_op_id(trade_id), now, tuple(moves))

    def plan_tick(self, now: datetime) -> Op:
        """The op of the rules due at ``now`` (its movements may be none)."""
        now = _aware(now)
        plan = _Plan(self)
        for rule in self.due_rules(now):
            getattr(self, f"_plan_{rule}")(plan)
        return Op(tick_op_id(now), now, tuple(plan.moves))

    def _plan_fees_sweep(self, plan: _Plan) -> None:
        cfg, policy = self.flows.fees_sweep, self.finance.fees_policy
        wallet = policy.wallet
        have = plan.balances[wallet]
        if have < policy.buffer_min_usd:
            need = policy.buffer_target_usd - have
            why = (
                f"fees buffer {wallet} at {_fmt(have)} below min {policy.buffer_min_usd}: "
                f"top up to target {policy.buffer_target_usd}"
            )
            plan.move("fees_sweep", cfg.source, wallet, need, why)
        elif have > policy.buffer_max_usd:
            excess = have - policy.buffer_max_usd
            why = f"fees buffer {wallet} at {_fmt(have)} above max {policy.buffer_max_usd}"
            plan.move("fees_sweep", wallet, cfg.destination, excess, why)

    def _plan_profits_sweep(self, plan: _Plan) -> None:
        cfg = self.flows.profits_sweep
        ends = (cfg.destination, cfg.vault)
        for wallet in cfg.source:
            if any((w in self.simulated) != (wallet in self.simulated) for w in ends):
                continue  # its profit stays on its side of the simulation (see ``simulated``)
            profit = self.unswept[wallet]
            swept = ZERO
            why = ""
            if profit > 0 and profit >= cfg.threshold_usd:
                swept = _cents(profit * cfg.share_pct / 100)
                why = (
                    f"{wallet} realized {_fmt(profit)} since its last sweep "
                    f"(threshold {cfg.threshold_usd}): {cfg.share_pct} % swept"
                )
            cap = self.cap(wallet, plan.equity)
            over = _cents(plan.balances[wallet] - cap) if cap is not None else ZERO
            if over > swept:  # a win left it over its cap: the excess goes, by the same split
                swept = over
                why = (
                    f"{wallet} at {_fmt(plan.balances[wallet])} is over its cap {_fmt(cap or ZERO)}"
                )
            # money held by open positions stays: a later loss is paid from it
            free = _cents(plan.balances[wallet] - self.committed(wallet))
            if swept <= 0 or free <= 0:
                continue
            total = min(swept, free)
            to_vault = _cents(total * cfg.vault_share_pct / 100)
            plan.move("profits_sweep", wallet, cfg.vault, to_vault, why)
            plan.move("profits_sweep", wallet, cfg.destination, total - to_vault, why)

    def _plan_compounding(self, plan: _Plan) -> None:
        cfg = self.flows.compounding
        have = plan.balances[cfg.source]
        if have <= cfg.threshold_usd:
            return
        # money stays on its side of the simulation (see ``simulated``)
        real = cfg.source not in self.simulated
        destination = [w for w in cfg.destination if (w not in self.simulated) == real]
        if not destination:
            return
        total = _cents((have - cfg.threshold_usd) * cfg.share_pct / 100)
        weights = {w: self.allocation[w] for w in destination}
        weight_sum = sum(weights.values(), ZERO)
        for wallet in destination:
            if weight_sum > 0:
                part = _cents(total * weights[wallet] / weight_sum)
            else:
                part = _cents(total / len(destination))
            why = (
                f"{cfg.source} at {_fmt(have)}: {cfg.share_pct} % of the excess over "
                f"{cfg.threshold_usd} compounded by allocation, within caps"
            )
            plan.move("compounding", cfg.source, wallet, part, why)

    # -- applying (the only place state changes) -------------------------------------------

    def apply(self, op: Op) -> None:
        """Apply a planned op, or one read back from the journal."""
        now = _aware(op.time)
        self._roll_day(now)
        trade_id = op.trade_id
        if trade_id is not None:
            self._remember(trade_id)
        else:
            for rule in self.due_rules(now):
                self.marks[rule] = self.rule_key(rule, now)
        for m in op.movements:
            self._apply_movement(m)
        if self.last_time is None or now > self.last_time:
            self.last_time = now

    def _apply_movement(self, m: Movement) -> None:
        src, dst, amount = m.source, m.destination, m.amount
        if src not in OUTSIDE:
            self.balances[src] -= amount
        if dst not in OUTSIDE:
            self.balances[dst] += amount
        if m.rule == TRADE_PNL:
            wallet, signed = (dst, amount) if src == MARKET else (src, -amount)
            self.pnl_day[wallet] += signed
            self.unswept[wallet] += signed
            self.realized_pnl += signed
        elif m.rule == TRADE_FEES:
            self.pnl_day[src] -= amount
            self.fees_day += amount
            self.fees_paid += amount
        elif m.rule == "profits_sweep":
            self.unswept[src] = ZERO

    def _roll_day(self, now: datetime) -> None:
        today = now.date()
        if self.day is None:
            self.day = today
        elif today > self.day:
            self.day = today
            self.pnl_day = dict.fromkeys(self.wallets, ZERO)
            self.fees_day = ZERO

    def _remember(self, trade_id: str) -> None:
        if trade_id in self._recent:
            return
        self.recent_trades.append(trade_id)
        self._recent.add(trade_id)
        while len(self.recent_trades) > self.remember_trades:
            self._recent.discard(self.recent_trades.popleft())

    def restore_recent(self, trade_ids: list[str]) -> None:
        self.recent_trades.clear()
        self._recent.clear()
        for trade_id in trade_ids:
            self._remember(trade_id)


class _Plan:
    """Scratch balances for planning a tick: rules run in order, each seeing the one before."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.balances = dict(ledger.balances)
        self.equity = ledger.equity()  # flows move money between wallets: equity is constant
        self.moves: list[Movement] = []

    def room(self, wallet: str) -> Decimal | None:
        """How much a flow may still put into ``wallet`` (None: no limit)."""
        finance = self.ledger.finance
        rooms: list[Decimal] = []
        cap = finance.cap_usd(wallet, self.equity)
        if cap is not None:
            rooms.append(cap - self.balances[wallet])
        if wallet in finance.risk_wallets:
            limit = self.equity * finance.policies.max_equity_at_risk_pct / 100
            at_risk = sum((self.balances[w] for w in finance.risk_wallets), ZERO)
            rooms.append(limit - at_risk)
        return max(_cents(min(rooms)), ZERO) if rooms else None  # whole cents: exact sums

    def move(self, rule: str, source: str, destination: str, amount: Decimal, why: str) -> None:
        """Move up to ``amount``: never more than the source holds nor the destination's room."""
        wanted = amount
        limits = []
        if self.balances[source] < amount:
            amount = self.balances[source]
            limits.append(f"{source} holds {_fmt(amount)}")
        room = self.room(destination)
        if room is not None and room < amount:
            amount = room
            limits.append(f"{destination} has room for {_fmt(room)} under its caps")
        if amount <= 0 or source == destination:
            return
        if limits:
            why += f" (wanted {_fmt(wanted)}; {', '.join(limits)})"
        self.balances[source] -= amount
        self.balances[destination] += amount
        self.moves.append(Movement(rule, source, destination, amount, why))
