"""The indexer built from the settings: the RPC client (``RPC_SOLANA_HTTP``, a secret: never
printed), the :class:`Indexer` on ``<data dir>/indexer``, and the endpoint's health check (shared
by ``kobe indexer``, the Runtime's slot following and ``engine.health.health_checks``)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from engine.exchange.base import ExchangeError
from engine.exchange.retry import RetryPolicy
from engine.indexer.indexer import Indexer
from engine.indexer.rpc import SolanaRpc
from engine.secrets import redact

if TYPE_CHECKING:
    from engine.modes import Settings

RPC_VAR = "RPC_SOLANA_HTTP"
INDEXER_DIR = "indexer"
FOLLOW_RETRY = RetryPolicy(max_attempts=2, max_total_s=5.0)  # one engine tick: never long
# The engine's tick (the watchdog, the exits) waits for the slots it follows: it stops taking new
# slots after this long, and each call gets no longer (a slow node resumes at the next tick).
FOLLOW_BUDGET_S = 5.0
HEALTH_RETRY = RetryPolicy(max_attempts=1, max_total_s=3.0)  # the health pane answers quickly
HEALTH_TIMEOUT_S = 3.0


def make_rpc(
    settings: Settings, policy: RetryPolicy | None = None, timeout_s: float | None = None
) -> SolanaRpc | None:
    """The client, or None when ``RPC_SOLANA_HTTP`` is not set (RpcError: not an http URL)."""
    url = settings.secrets.get(RPC_VAR)
    if url is None:
        return None
    timeout = float(settings.config.rpc.timeout_s)
    if timeout_s is not None:
        timeout = min(timeout, timeout_s)
    return SolanaRpc(url, timeout_s=timeout, policy=policy)


def make_indexer(settings: Settings, rpc: SolanaRpc) -> Indexer:
    cfg = settings.config.indexer
    return Indexer(
        rpc,
        settings.data_dir / INDEXER_DIR,
        program_ids=cfg.program_ids,
        usdc_mint=cfg.usdc_mint,
        sol_price_usd=Decimal(cfg.sol_price_usd),
    )


def rpc_health(settings: Settings) -> tuple[bool, str]:
    """Whether the endpoint answers ``getSlot``, and the slot lag of the indexer's last slot.
    The detail never holds the URL."""
    try:
        rpc = make_rpc(settings, HEALTH_RETRY, HEALTH_TIMEOUT_S)
        if rpc is None:
            return False, f"{RPC_VAR} is not set"
        current = rpc.get_slot()
    except ExchangeError as exc:
        return False, f"unreachable: {redact(str(exc))}"
    last = make_indexer(settings, rpc).load_state().last_slot
    if last is None:
        return True, f"reachable: slot {current}, nothing indexed yet"
    return True, f"reachable: slot {current}, indexer at {last} (lag {current - last} slots)"
