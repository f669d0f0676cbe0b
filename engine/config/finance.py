"""``[finance]`` (the profile, its capital, the sub-wallets and the policies over them) and
``[wallet_flows]`` (the rules that move money between sub-wallets: bookkeeping only). The
defaults are the LIVE_150 profile (``engine.wallets.policies``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, cast

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    model_serializer,
    model_validator,
)

from engine.config.fields import (
    YEAR_S,
    Int,
    NonNegativeDecimal,
    Percent,
    PositiveDecimal,
    Section,
    WalletChain,
    WalletId,
    WalletRole,
    usd_text,
)
from engine.wallets import policies as live150


class WalletConfig(Section):
    """One sub-wallet: id, chain, role, initial allocation (USD or % of capital), optional cap."""

    id: WalletId
    chain: WalletChain
    role: WalletRole
    allocation_usd: NonNegativeDecimal | None = None
    allocation_pct: Percent | None = None
    max_usd: PositiveDecimal | None = None

    @model_validator(mode="after")
    def _one_allocation(self) -> WalletConfig:
        if (self.allocation_usd is None) == (self.allocation_pct is None):
            raise ValueError("give exactly one of allocation_usd or allocation_pct")
        return self

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}  # TOML has no null

    def allocation(self, capital_usd: Decimal) -> Decimal:
        """The initial allocation in USD."""
        if self.allocation_usd is not None:
            return self.allocation_usd
        assert self.allocation_pct is not None
        return capital_usd * self.allocation_pct / 100


class PoliciesConfig(Section):
    # caps per role: the most one wallet of that role may hold, in % of equity (absent: no cap)
    role_max_pct: dict[WalletRole, Percent] = Field(
        default_factory=lambda: cast("dict[WalletRole, Decimal]", dict(live150.ROLE_MAX_PCT))
    )
    max_equity_at_risk_pct: Percent = live150.MAX_EQUITY_AT_RISK_PCT


class FeesPolicyConfig(Section):
    wallet: WalletId = live150.FEES_WALLET
    buffer_min_usd: NonNegativeDecimal = live150.FEES_BUFFER_MIN_USD
    buffer_target_usd: NonNegativeDecimal = live150.FEES_BUFFER_TARGET_USD
    buffer_max_usd: NonNegativeDecimal = live150.FEES_BUFFER_MAX_USD
    max_fees_pct_of_equity: Percent = live150.MAX_FEES_PCT_OF_EQUITY

    @model_validator(mode="after")
    def _buffer_in_order(self) -> FeesPolicyConfig:
        lo, mid, hi = self.buffer_min_usd, self.buffer_target_usd, self.buffer_max_usd
        if not (lo <= mid <= hi):
            raise ValueError(
                f"buffer_min_usd ({lo}), buffer_target_usd ({mid}) and buffer_max_usd ({hi}) "
                "must be in that order (min <= target <= max)"
            )
        return self


class RiskWalletConfig(Section):
    max_usd: PositiveDecimal


class FinanceConfig(Section):
    """``[finance]``: the profile, its capital, the sub-wallets and the policies over them."""

    profile_id: str = live150.PROFILE_ID
    capital_usd: PositiveDecimal = live150.CAPITAL_USD
    wallets: list[WalletConfig] = Field(
        default_factory=lambda: [
            WalletConfig(id=w.id, chain=w.chain, role=w.role, allocation_usd=w.allocation_usd)
            for w in live150.WALLETS
        ],
        min_length=1,
    )
    policies: PoliciesConfig = Field(default_factory=PoliciesConfig)
    fees_policy: FeesPolicyConfig = Field(default_factory=FeesPolicyConfig)
    # the wallets that may trade, each with its cap
    risk_wallets: dict[WalletId, RiskWalletConfig] = Field(
        default_factory=lambda: {
            k: RiskWalletConfig(max_usd=v) for k, v in live150.RISK_WALLET_MAX_USD.items()
        }
    )

    @model_validator(mode="after")
    def _consistent(self) -> FinanceConfig:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def wallet(self, wallet_id: str) -> WalletConfig:
        for w in self.wallets:
            if w.id == wallet_id:
                return w
        raise KeyError(wallet_id)

    def venue_of(self, wallet_id: str) -> str:
        """Where ``wallet_id`` trades: ``dex`` (the paper DEX venue, simulated in every mode) for
        a Solana wallet, else its chain (the exchange)."""
        chain = self.wallet(wallet_id).chain
        return "dex" if chain == "solana" else chain

    @property
    def wallet_ids(self) -> list[str]:
        return [w.id for w in self.wallets]

    def cap_usd(self, wallet_id: str, equity_usd: Decimal) -> Decimal | None:
        """The most ``wallet_id`` may hold at ``equity_usd`` (None: no cap)."""
        w = self.wallet(wallet_id)
        caps = [w.max_usd] if w.max_usd is not None else []
        if wallet_id in self.risk_wallets:
            caps.append(self.risk_wallets[wallet_id].max_usd)
        role_pct = self.policies.role_max_pct.get(w.role)
        if role_pct is not None:
            caps.append(equity_usd * role_pct / 100)
        return min(caps) if caps else None

    def problems(self) -> list[str]:
        """What cannot work, one message each (empty: consistent)."""
        out: list[str] = []
        ids = self.wallet_ids
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            out.append(f"wallets: duplicate id {', '.join(map(repr, dupes))}")
        known = ", ".join(ids)
        total = sum((w.allocation(self.capital_usd) for w in self.wallets), Decimal(0))
        if total != self.capital_usd:
            out.append(
                f"wallets: allocations add up to {usd_text(total)} USD, "
                f"not capital_usd ({usd_text(self.capital_usd)})"
            )
        fees = self.fees_policy.wallet
        if fees not in ids:
            out.append(f"fees_policy.wallet: {fees!r} names no wallet (wallets: {known})")
        elif self.wallet(fees).role != "fees":
            out.append(
                f"fees_policy.wallet: {fees!r} has role {self.wallet(fees).role!r}, not fees"
            )
        for rid in self.risk_wallets:
            if rid not in ids:
                out.append(f"risk_wallets.{rid}: names no wallet (wallets: {known})")
            elif self.wallet(rid).role != "trading":
                out.append(f"risk_wallets.{rid}: has role {self.wallet(rid).role!r}, not trading")
        if dupes or out:
            return out
        for w in self.wallets:
            cap = self.cap_usd(w.id, self.capital_usd)
            alloc = w.allocation(self.capital_usd)
            if cap is not None and alloc > cap:
                out.append(
                    f"wallets: {w.id} starts with {usd_text(alloc)} USD, above its cap ({usd_text(cap)} USD)"
                )
        at_risk = sum(
            (self.wallet(r).allocation(self.capital_usd) for r in self.risk_wallets), Decimal(0)
        )
        limit = self.capital_usd * self.policies.max_equity_at_risk_pct / 100
        if at_risk > limit:
            out.append(
                f"risk_wallets: start with {usd_text(at_risk)} USD, above "
                f"policies.max_equity_at_risk_pct ({self.policies.max_equity_at_risk_pct} % "
                f"= {usd_text(limit)} USD)"
            )
        return out


RuleTrigger = Literal["period", "tick"]


class FlowRuleConfig(Section):
    """What every rule has. ``trigger``: ``period`` runs the rule at the first tick of each period
    (periods of ``period_s`` seconds, aligned on UTC); ``tick`` runs it at every tick."""

    enabled: StrictBool = True
    trigger: RuleTrigger = "period"
    period_s: Int = Field(default=3600, ge=1, le=YEAR_S)

    def endpoints(self) -> list[tuple[str, str]]:
        """(key, wallet id) for every wallet the rule names."""
        return []


class FeesSweepConfig(FlowRuleConfig):
    """Below fees_policy.buffer_min_usd the fees wallet is topped up to target from ``source``;
    above buffer_max_usd its excess goes to ``destination``."""

    period_s: Int = Field(default=live150.FEES_SWEEP_PERIOD_S, ge=1, le=YEAR_S)
    source: WalletId = live150.FEES_SWEEP_SOURCE
    destination: WalletId = live150.FEES_SWEEP_DESTINATION

    def endpoints(self) -> list[tuple[str, str]]:
        return [("source", self.source), ("destination", self.destination)]


class ProfitsSweepConfig(FlowRuleConfig):
    """For each ``source`` wallet whose realized profit since its last sweep reached
    ``threshold_usd``: ``share_pct`` of it is swept out, ``vault_share_pct`` of that to ``vault``
    and the rest to ``destination``."""

    period_s: Int = Field(default=live150.PROFITS_SWEEP_PERIOD_S, ge=1, le=YEAR_S)
    source: list[WalletId] = Field(
        default_factory=lambda: list(live150.TRADING_WALLETS), min_length=1
    )
    threshold_usd: NonNegativeDecimal = live150.PROFITS_SWEEP_THRESHOLD_USD
    share_pct: Percent = live150.PROFITS_SWEEP_SHARE_PCT
    destination: WalletId = live150.PROFITS_SWEEP_DESTINATION
    vault: WalletId = live150.PROFITS_SWEEP_VAULT
    vault_share_pct: Percent = live150.PROFITS_SWEEP_VAULT_SHARE_PCT

    @model_validator(mode="after")
    def _distinct(self) -> ProfitsSweepConfig:
        if len(set(self.source)) != len(self.source):
            raise ValueError("source names a wallet twice")
        inside = [w for w in (self.destination, self.vault) if w in self.source]
        if inside:
            raise ValueError(f"{inside[0]!r} is both a source and a destination")
        return self

    def endpoints(self) -> list[tuple[str, str]]:
        out = [(f"source[{i}]", w) for i, w in enumerate(self.source)]
        return [*out, ("destination", self.destination), ("vault", self.vault)]


class CompoundingConfig(FlowRuleConfig):
    """When ``source`` holds more than ``threshold_usd``, ``share_pct`` of the excess goes back to
    the ``destination`` wallets in proportion to their allocation, each within its cap."""

    period_s: Int = Field(default=live150.COMPOUNDING_PERIOD_S, ge=1, le=YEAR_S)
    source: WalletId = live150.COMPOUNDING_SOURCE
    threshold_usd: NonNegativeDecimal = live150.COMPOUNDING_THRESHOLD_USD
    share_pct: Percent = live150.COMPOUNDING_SHARE_PCT
    destination: list[WalletId] = Field(
        default_factory=lambda: list(live150.TRADING_WALLETS), min_length=1
    )

    @model_validator(mode="after")
    def _distinct(self) -> CompoundingConfig:
        if len(set(self.destination)) != len(self.destination):
            raise ValueError("destination names a wallet twice")
        if self.source in self.destination:
            raise ValueError(f"{self.source!r} is both the source and a destination")
        return self

    def endpoints(self) -> list[tuple[str, str]]:
        out = [(f"destination[{i}]", w) for i, w in enumerate(self.destination)]
        return [("source", self.source), *out]


class WalletFlowsConfig(Section):
    """``[wallet_flows]``: the rules that move money between sub-wallets (bookkeeping only)."""

    enabled: StrictBool = True
    fees_sweep: FeesSweepConfig = Field(default_factory=FeesSweepConfig)
    profits_sweep: ProfitsSweepConfig = Field(default_factory=ProfitsSweepConfig)
    compounding: CompoundingConfig = Field(default_factory=CompoundingConfig)

    def rules(self) -> dict[str, FlowRuleConfig]:
        return {
            "fees_sweep": self.fees_sweep,
            "profits_sweep": self.profits_sweep,
            "compounding": self.compounding,
        }

    def problems_with(self, finance: FinanceConfig) -> list[str]:
        """Rule endpoints that name no wallet of ``finance`` (or the fees wallet itself)."""
        ids = finance.wallet_ids
        out = []
        for name, rule in self.rules().items():
            for key, wallet in rule.endpoints():
                if wallet not in ids:
                    out.append(f"{name}.{key}: {wallet!r} names no wallet in finance.wallets")
        fees = finance.fees_policy.wallet
        for key in ("source", "destination"):
            if getattr(self.fees_sweep, key) == fees:
                out.append(f"fees_sweep.{key}: is the fees wallet itself ({fees!r})")
        return out
