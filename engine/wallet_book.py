"""The router's view of the sub-wallets: balances from the wallet ledger, caps from the profile.

Balances come from the wallets snapshot and flows journal (``engine.wallets.load_view``, which
writes nothing); with no snapshot yet, the config's allocation. Amounts are USD, and quote
currencies are taken at par with USD (USDT, USDC).
"""

from __future__ import annotations

from decimal import Decimal

from engine.config import FinanceConfig
from engine.wallets.snapshot import WalletsSnapshot

CEX_CHAINS = ("binance", "bybit", "okx")


class LedgerWallets:
    def __init__(self, snapshot: WalletsSnapshot, finance: FinanceConfig) -> None:
        self.snapshot = snapshot
        self.finance = finance

    def balance(self, wallet_id: str) -> Decimal:
        return self.snapshot.wallet(wallet_id).balance

    def cap(self, wallet_id: str) -> Decimal | None:
        """The most this wallet may have at risk (open plus a new order): the lowest of the caps
        the flows use (its ``risk_wallets`` cap, its own ``max_usd``, its role's share of equity,
        and ``max_equity_at_risk_pct`` of equity for the risk wallets together)."""
        equity = self.snapshot.equity_total_usd
        caps = []
        own = self.finance.cap_usd(wallet_id, equity)
        if own is not None:
            caps.append(own)
        if wallet_id in self.finance.risk_wallets:
            caps.append(equity * self.finance.policies.max_equity_at_risk_pct / 100)
        return min(caps) if caps else None

    def venue_problem(self, wallet_id: str, exchange_name: str) -> str | None:
        view = self.snapshot.wallet(wallet_id)
        if wallet_id not in self.finance.risk_wallets or view.role != "trading":
            return (
                f"wallet {wallet_id} ({view.role}) may not trade: it is not in finance.risk_wallets"
            )
        if view.chain != exchange_name:
            where = "the Solana DEX venue" if view.chain == "solana" else view.chain
            return f"wallet {wallet_id} trades on {where}, not on {exchange_name}"
        return None
