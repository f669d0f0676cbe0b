"""The LIVE_150 profile: 150 USD of capital over ten sub-wallets, and the rules that move it.

These constants are the built-in defaults of ``[finance]`` and ``[wallet_flows]`` in
``engine.config`` (and are written out in the shipped ``kobe.toml``; a test holds the two equal).
Nothing here imports the rest of the engine.

The wallets (USD)::

    sniper_sol   30  solana    trading   memecoin sniping (paper DEX venue)
    copy_sol     30  solana    trading   copy trading (paper DEX venue)
    cex_binance  20  binance   trading
    cex_bybit    10  bybit     trading
    cex_okx      10  okx       trading
    fees_sol     10  solana    fees      the fees buffer: every trade's fees are paid from it
    buffer       10  offchain  buffer    refills the fees buffer and takes its excess
    profits      10  offchain  profits   receives swept profit; the source of compounding
    vault        10  offchain  vault     receives a share of swept profit; nothing leaves it
    reserve      10  offchain  reserve   untouched by the rules: the last line of capital

The rules (all run on ticks, each at most once per period, periods aligned on UTC):

- ``fees_sweep`` (every 5 minutes): when ``fees_sol`` is below 5 USD it is topped up to 10 from
  ``buffer``; above 15, the excess over 15 goes back to ``buffer``.
- ``profits_sweep`` (hourly): for each trading wallet whose realized profit since its last sweep
  has reached 5 USD, 50 % of that profit is swept out, half to ``profits`` and half to ``vault``.
  Losses carry forward: a wallet must earn them back before it is swept again.
- ``compounding`` (daily): when ``profits`` holds more than 10 USD, 50 % of the excess over 10
  goes back to the trading wallets, split in proportion to their allocation, each within its
  cap; what a full wallet cannot take stays in ``profits``.

Caps: a trading wallet may hold at most 30 % of equity (and its own ``max_usd`` in
``risk_wallets``); the trading wallets together at most 75 %. A flow never fills a wallet beyond
its cap and never takes a wallet below zero; a winning trade can still lift a wallet over its cap,
which raises an alert until the profit sweep takes the excess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

PROFILE_ID = "LIVE_150"
CAPITAL_USD = Decimal(150)

CHAINS = ("solana", "binance", "bybit", "okx", "offchain")
ROLES = ("trading", "fees", "buffer", "profits", "vault", "reserve")


@dataclass(frozen=True)
class WalletSpec:
    """One sub-wallet of a profile: where it lives, what it is for, what it starts with."""

    id: str
    chain: str
    role: str
    allocation_usd: Decimal


WALLETS: tuple[WalletSpec, ...] = (
    WalletSpec("sniper_sol", "solana", "trading", Decimal(30)),
    WalletSpec("copy_sol", "solana", "trading", Decimal(30)),
    WalletSpec("cex_binance", "binance", "trading", Decimal(20)),
    WalletSpec("cex_bybit", "bybit", "trading", Decimal(10)),
    WalletSpec("cex_okx", "okx", "trading", Decimal(10)),
    WalletSpec("fees_sol", "solana", "fees", Decimal(10)),
    WalletSpec("buffer", "offchain", "buffer", Decimal(10)),
    WalletSpec("profits", "offchain", "profits", Decimal(10)),
    WalletSpec("vault", "offchain", "vault", Decimal(10)),
    WalletSpec("reserve", "offchain", "reserve", Decimal(10)),
)
TRADING_WALLETS: tuple[str, ...] = tuple(w.id for w in WALLETS if w.role == "trading")

# policies
ROLE_MAX_PCT: dict[str, Decimal] = {"trading": Decimal(30)}
MAX_EQUITY_AT_RISK_PCT = Decimal(75)

# risk wallets: the wallets that may trade, and each one's cap in USD
RISK_WALLET_MAX_USD: dict[str, Decimal] = {
    "sniper_sol": Decimal(45),
    "copy_sol": Decimal(45),
    "cex_binance": Decimal(30),
    "cex_bybit": Decimal(15),
    "cex_okx": Decimal(15),
}

# fees policy
FEES_WALLET = "fees_sol"
FEES_BUFFER_MIN_USD = Decimal(5)
FEES_BUFFER_TARGET_USD = Decimal(10)
FEES_BUFFER_MAX_USD = Decimal(15)
MAX_FEES_PCT_OF_EQUITY = Decimal(2)  # fees paid in one UTC day, as a share of equity

# rules
FEES_SWEEP_PERIOD_S = 300
FEES_SWEEP_SOURCE = "buffer"
FEES_SWEEP_DESTINATION = "buffer"

PROFITS_SWEEP_PERIOD_S = 3600
PROFITS_SWEEP_THRESHOLD_USD = Decimal(5)
PROFITS_SWEEP_SHARE_PCT = Decimal(50)
PROFITS_SWEEP_DESTINATION = "profits"
PROFITS_SWEEP_VAULT = "vault"
PROFITS_SWEEP_VAULT_SHARE_PCT = Decimal(50)

COMPOUNDING_PERIOD_S = 86400
COMPOUNDING_SOURCE = "profits"
COMPOUNDING_THRESHOLD_USD = Decimal(10)
COMPOUNDING_SHARE_PCT = Decimal(50)


@dataclass(frozen=True)
class Profile:
    """A finance profile, as one documented object (the constants above, grouped)."""

    id: str
    capital_usd: Decimal
    wallets: tuple[WalletSpec, ...]
    role_max_pct: dict[str, Decimal] = field(default_factory=dict)
    max_equity_at_risk_pct: Decimal = Decimal(100)
    risk_wallet_max_usd: dict[str, Decimal] = field(default_factory=dict)
    fees_wallet: str = ""
    fees_buffer_usd: tuple[Decimal, Decimal, Decimal] = (Decimal(0), Decimal(0), Decimal(0))

    def wallet(self, wallet_id: str) -> WalletSpec:
        for spec in self.wallets:
            if spec.id == wallet_id:
                return spec
        raise KeyError(wallet_id)

    @property
    def total_allocation_usd(self) -> Decimal:
        return sum((w.allocation_usd for w in self.wallets), Decimal(0))


LIVE_150 = Profile(
    id=PROFILE_ID,
    capital_usd=CAPITAL_USD,
    wallets=WALLETS,
    role_max_pct=ROLE_MAX_PCT,
    max_equity_at_risk_pct=MAX_EQUITY_AT_RISK_PCT,
    risk_wallet_max_usd=RISK_WALLET_MAX_USD,
    fees_wallet=FEES_WALLET,
    fees_buffer_usd=(FEES_BUFFER_MIN_USD, FEES_BUFFER_TARGET_USD, FEES_BUFFER_MAX_USD),
)
