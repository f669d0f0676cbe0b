"""AgentEngine: the strategies' signals, routed through risk and execution like any proposal.

Each tick: the strategies look at their feeds and emit signals (``before_venues``); the paper DEX
venue gets their markets and prices and moves; after the venues, ``tick`` turns entry signals into
proposals for the ExecutionEngine (unless the engine is paused: a pause stops new entries only)
and exit signals into closes of the position they name. Fills and closed trades come back to the
strategy that asked. The link between a strategy's position (``ref``) and the entry's client id is
kept in ``agent_state.json`` (atomic) so a restart gives positions back to their strategy; the
entry intents in the order journal name both too, so a lost or damaged file (kept aside) is
rebuilt from them. A position that leaves its strategy as dust frees its slot at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import KobeConfig
from engine.exchange.base import ExchangeError, OrderStatus
from engine.exchange.dex import DexPaperExchange, build_dex_venue, sync_dex_venue
from engine.execution import ExecutionEngine
from engine.fsutil import (
    REPAIR_OR_RESTORE,
    StateError,
    atomic_write_text,
    keep_aside,
    read_json_object,
    reading,
)
from engine.jsonutil import dumps
from engine.position import Position
from engine.proposal import Refused
from engine.strategies import Signal, SignalAction, Strategy, build_strategies, signal_to_proposal
from engine.trades import ClosedTrade
from engine.untrusted import clean_message

if TYPE_CHECKING:
    from engine.runtime_parts import RuntimeParts

log = logging.getLogger(__name__)

AGENT_STATE_FILE = "agent_state.json"
# the strategies' own state (their stub feeds' random state included): a restart continues the
# same market rather than starting again from the seed
STRATEGIES_STATE_FILE = "strategies_state.json"
RESTART_REMEDY = (
    "repair it, or delete it to start the strategies' feeds again from their seeds (open "
    "positions are kept)"
)


def reseed(cfg: KobeConfig, seed: int) -> KobeConfig:
    """``cfg`` with the strategies' seeds replaced (``kobe run --seed``)."""
    st = cfg.strategies
    mf = st.memecoin_farming
    ct = st.copy_trading
    st = st.model_copy(
        update={
            "memecoin_farming": mf.model_copy(
                update={"provider": mf.provider.model_copy(update={"seed": seed})}
            ),
            "copy_trading": ct.model_copy(
                update={"feed": ct.feed.model_copy(update={"seed": seed})}
            ),
        }
    )
    return cfg.model_copy(update={"strategies": st})


@dataclass
class StrategyStats:
    signals: int = 0
    entries: int = 0
    exits: int = 0
    refused: int = 0
    closed: int = 0
    last_signal: str = ""
    last_refusal: str = ""
    open_refs: list[str] = field(default_factory=list)


class AgentEngine:
    def __init__(
        self,
        runtime: RuntimeParts,
        strategies: list[Strategy],
        dex: DexPaperExchange | None,
        state_path: Path,
    ) -> None:
        self.runtime = runtime
        self.strategies = {s.name: s for s in strategies}
        self.dex = dex
        self.state_path = state_path
        self.stats = {name: StrategyStats() for name in self.strategies}
        self._signals: list[Signal] = []
        self._by_entry: dict[str, tuple[str, str]] = {}  # entry client id -> (strategy, ref)
        self._damaged: StateError | None = None  # agent_state.json could not be read
        try:
            raw = read_json_object(state_path, REPAIR_OR_RESTORE) or {}
            with reading(state_path, REPAIR_OR_RESTORE):
                for cid, link in raw.get("links", {}).items():
                    self._by_entry[str(cid)] = (str(link["strategy"]), str(link["ref"]))
        except StateError as exc:  # the links are rebuilt from the order journal (adopt)
            self._by_entry = {}
            self._damaged = exc
        self.strategies_path = state_path.with_name(STRATEGIES_STATE_FILE)
        saved = read_json_object(self.strategies_path, RESTART_REMEDY) or {}
        with reading(self.strategies_path, RESTART_REMEDY):
            for name, strategy in self.strategies.items():
                if name in saved:
                    strategy.restore(saved[name])

    # -- the Runtime's Agent protocol ---------------------------------------------------------

    def dex_venue(self) -> DexPaperExchange | None:
        return self.dex

    def adopt_positions(self, execution: ExecutionEngine) -> None:
        """After a restart: give each open position back to the strategy that opened it."""
        open_ids = {p.entry_client_id: p for p in execution.positions()}
        if self._damaged is not None:
            self._set_damaged_aside(self._damaged, list(open_ids.values()))
        for held in open_ids.values():  # links lost with agent_state.json: the journal has them
            known = held.entry_client_id in self._by_entry
            if not known and held.ref and held.strategy in self.strategies:
                self._by_entry[held.entry_client_id] = (held.strategy, held.ref)
        for cid, (name, ref) in list(self._by_entry.items()):
            pos = open_ids.get(cid)
            strategy = self.strategies.get(name)
            if pos is None or strategy is None or pos.entry_price is None:
                del self._by_entry[cid]
                continue
            strategy.adopt(ref, pos.symbol, pos.entry_price, pos.qty, pos.opened_at)
        self._save()

    def _set_damaged_aside(self, damaged: StateError, held: list[Position]) -> None:
        """A damaged ``agent_state.json``: every open strategy position must be relinkable
        from the order journal (its entry intent names the strategy and the ref), or the
        start is refused as before, the file untouched. Then the file is kept aside, said."""
        lost = [p.entry_client_id for p in held if p.strategy in self.strategies and not p.ref]
        if lost:
            raise StateError(
                f"{damaged}; the order journal cannot relink {', '.join(lost)} "
                "(no strategy reference in their entry intents)"
            )
        kept = keep_aside(self.state_path)
        relinked = sum(1 for p in held if p.strategy in self.strategies)
        cause = damaged.__context__  # what reading it raised, when it raised
        problem = f" ({clean_message(cause)})" if cause is not None else ""
        message = (
            f"{self.state_path} is damaged{problem}: kept as {kept.name}; the strategies' links "
            f"were rebuilt from the order journal ({relinked} open position(s))"
        )
        log.warning("%s", message)
        self.runtime._alert("warning", "agent_state", message)
        self._damaged = None

    def before_venues(self, now: datetime) -> None:
        """The strategies look at their feeds; the DEX venue gets their markets and prices."""
        self._signals = []
        for name, strategy in self.strategies.items():
            try:
                signals = strategy.tick(now)
            except Exception as exc:  # one strategy's bug must not stop the others
                log.exception("strategy %s failed", name)
                self.runtime._alert("error", "strategy", f"{name}: {clean_message(exc)}")
                continue
            finally:
                for problem in strategy.drain_problems():  # a bad record: one alert each
                    self.runtime._alert("warning", "feed", f"{name}: {problem}")
            self.stats[name].signals += len(signals)
            if signals:
                self.stats[name].last_signal = signals[-1].describe()
            self._signals += signals
        if self._signals:
            # the strategies' decisions are saved before any is acted on: a process killed
            # after an entry went out restarts past the signal (a copied leader trade, an
            # entered candidate), never acting on it a second time
            self._save_strategies()
        if self.dex is not None and "dex" in self.runtime.venues:
            router = self.runtime.venues["dex"].router
            for ev in sync_dex_venue(self.dex, self.strategies.values(), now):
                router.on_order_update(ev.kind, ev.order, ev.reason)

    def tick(self, now: datetime, execution: ExecutionEngine, paused: bool) -> None:
        """Execute the signals of this tick: exits always, entries unless paused."""
        for sig in self._signals:
            strategy = self.strategies[sig.strategy]
            if sig.action is SignalAction.EXIT:
                self._exit(sig, strategy, execution, now)
            elif paused:
                strategy.on_entry_failed(sig.ref, "engine paused: no new entries")
            else:
                self._enter(sig, strategy, execution, now)
        self._signals = []
        self._save_strategies()

    def _save_strategies(self) -> None:
        states = {name: s.state() for name, s in self.strategies.items()}
        atomic_write_text(self.strategies_path, dumps(states) + "\n")

    def on_trade_closed(self, trade: ClosedTrade) -> None:
        linked = self._unlink(trade.trade_id)
        if linked is not None:
            strategy, ref = linked
            strategy.on_position_closed(ref, trade.exit_price, trade.closed_at)
            self.stats[strategy.name].closed += 1

    def on_position_dust(self, entry_cid: str) -> None:
        """``entry_cid`` is too small to sell: its strategy's slot is free from now on."""
        linked = self._unlink(entry_cid)
        if linked is not None:
            strategy, ref = linked
            strategy.on_position_dust(ref)

    def _unlink(self, entry_cid: str) -> tuple[Strategy, str] | None:
        """Forget the link of ``entry_cid`` (saved); its strategy and ref, if it had one."""
        link = self._by_entry.pop(entry_cid, None)
        if link is None:
            return None
        self._save()
        name, ref = link
        strategy = self.strategies.get(name)
        return None if strategy is None else (strategy, ref)

    def status(self) -> dict[str, Any]:
        return {name: vars(stats) for name, stats in self.stats.items()}

    # -- entries and exits --------------------------------------------------------------------

    def _enter(
        self, sig: Signal, strategy: Strategy, execution: ExecutionEngine, now: datetime
    ) -> None:
        stats = self.stats[sig.strategy]
        try:
            placed = execution.submit(signal_to_proposal(sig))
        except Refused as exc:
            stats.refused += 1
            stats.last_refusal = "; ".join(exc.reasons)
            strategy.on_entry_failed(sig.ref, stats.last_refusal)
            return
        except ExchangeError as exc:
            stats.refused += 1
            stats.last_refusal = str(exc)
            strategy.on_entry_failed(sig.ref, str(exc))
            self.runtime._alert("warning", "strategy_entry", f"{sig.strategy}: {exc}")
            return
        stats.entries += 1
        entry = placed.entry
        self._by_entry[entry.client_id] = (sig.strategy, sig.ref)
        self._save()
        if entry.filled > 0 and entry.avg_price is not None:
            strategy.on_entry_filled(sig.ref, entry.avg_price, entry.filled, now)
        elif not entry.status.is_open and entry.status is not OrderStatus.FILLED:
            strategy.on_entry_failed(sig.ref, f"entry {entry.status.value}")

    def _exit(
        self, sig: Signal, strategy: Strategy, execution: ExecutionEngine, now: datetime
    ) -> None:
        cid = next(
            (c for c, link in self._by_entry.items() if link == (sig.strategy, sig.ref)), None
        )
        if cid is None:
            return  # already closed (e.g. its take-profit filled): the strategy has been told
        try:
            order = execution.close_position(cid, sig.reason or "strategy exit")
        except ExchangeError as exc:
            strategy.on_exit_failed(sig.ref, str(exc))
            self.runtime._alert("warning", "strategy_exit", f"{sig.strategy}: {exc}")
            return
        if order is not None:
            self.stats[sig.strategy].exits += 1

    def _save(self) -> None:
        links = {cid: {"strategy": s, "ref": r} for cid, (s, r) in self._by_entry.items()}
        atomic_write_text(self.state_path, dumps({"links": links}, indent=1) + "\n")


def build_agent(runtime: RuntimeParts) -> AgentEngine:
    s = runtime.settings
    strategies = build_strategies(s.config.strategies, s.data_dir)
    dex = build_dex_venue(s.config, s.data_dir, runtime.clock) if strategies else None
    return AgentEngine(runtime, strategies, dex, s.data_dir / AGENT_STATE_FILE)
