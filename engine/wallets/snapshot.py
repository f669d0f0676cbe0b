"""What the cockpit and ``kobe wallets`` read: the wallets snapshot and the finance alerts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from engine.money import ZERO
from engine.wallets.flows import Ledger

Severity = Literal["info", "warning", "critical"]
_ORDER = {"critical": 0, "warning": 1, "info": 2}

# alert codes
FEES_BUFFER_LOW = "fees_buffer_low"
FEES_OVER_CAP = "fees_over_cap"
RISK_WALLET_OVER_CAP = "risk_wallet_over_cap"
EQUITY_AT_RISK_OVER_CAP = "equity_at_risk_over_cap"
EQUITY_BELOW_MIN = "equity_below_min"

PCT = Decimal("0.01")


@dataclass(frozen=True)
class Alert:
    severity: Severity
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class WalletView:
    id: str
    chain: str
    role: str
    balance: Decimal
    pct_equity: Decimal  # 0-100, two decimals
    pnl_day: Decimal


@dataclass(frozen=True)
class WalletsSnapshot:
    """The state a cockpit pane shows; :meth:`to_dict` is the ``kobe wallets --json`` shape."""

    profile_id: str
    time: datetime | None  # the ledger's last event (None: nothing happened yet)
    equity_total_usd: Decimal
    pnl_day: Decimal
    wallets: tuple[WalletView, ...]
    alerts: tuple[Alert, ...]

    def wallet(self, wallet_id: str) -> WalletView:
        for w in self.wallets:
            if w.id == wallet_id:
                return w
        raise KeyError(wallet_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "equity_total_usd": self.equity_total_usd,
            "pnl_day": self.pnl_day,
            "wallets": {
                w.id: {
                    "chain": w.chain,
                    "role": w.role,
                    "balance": w.balance,
                    "pct_equity": w.pct_equity,
                    "pnl_day": w.pnl_day,
                }
                for w in self.wallets
            },
            "alerts": [a.to_dict() for a in self.alerts],
        }


def _usd(value: Decimal) -> str:
    return f"{value.quantize(PCT)}"


def pct_of(part: Decimal, whole: Decimal) -> Decimal:
    return (part * 100 / whole).quantize(PCT) if whole > 0 else ZERO


def finance_alerts(
    ledger: Ledger, min_operational_capital_usd: Decimal, fees_day: Decimal
) -> list[Alert]:
    """The finance alerts active for ``ledger`` (most severe first)."""
    finance = ledger.finance
    policy = finance.fees_policy
    equity = ledger.equity()
    out: list[Alert] = []
    if equity < min_operational_capital_usd:
        out.append(
            Alert(
                "critical",
                EQUITY_BELOW_MIN,
                f"equity {_usd(equity)} USD is below the minimum operational capital "
                f"({min_operational_capital_usd} USD)",
            )
        )
    buffer = ledger.balances[policy.wallet]
    if buffer < policy.buffer_min_usd:
        out.append(
            Alert(
                "warning",
                FEES_BUFFER_LOW,
                f"fees buffer {policy.wallet} holds {_usd(buffer)} USD, "
                f"below its min ({policy.buffer_min_usd} USD)",
            )
        )
    fees_cap = equity * policy.max_fees_pct_of_equity / 100
    if fees_day > fees_cap:
        out.append(
            Alert(
                "warning",
                FEES_OVER_CAP,
                f"fees paid today {_usd(fees_day)} USD are {pct_of(fees_day, equity)} % of equity, "
                f"above the cap of {policy.max_fees_pct_of_equity} %",
            )
        )
    for wallet in finance.risk_wallets:
        cap = finance.cap_usd(wallet, equity)
        balance = ledger.balances[wallet]
        if cap is not None and balance > cap:
            out.append(
                Alert(
                    "warning",
                    RISK_WALLET_OVER_CAP,
                    f"risk wallet {wallet} holds {_usd(balance)} USD, above its cap "
                    f"({_usd(cap)} USD)",
                )
            )
    at_risk = sum((ledger.balances[w] for w in finance.risk_wallets), ZERO)
    limit = equity * finance.policies.max_equity_at_risk_pct / 100
    if at_risk > limit:
        out.append(
            Alert(
                "warning",
                EQUITY_AT_RISK_OVER_CAP,
                f"risk wallets hold {_usd(at_risk)} USD ({pct_of(at_risk, equity)} % of equity), "
                f"above max_equity_at_risk_pct ({finance.policies.max_equity_at_risk_pct} %)",
            )
        )
    out.sort(key=lambda a: _ORDER[a.severity])
    return out


def build_snapshot(
    ledger: Ledger, min_operational_capital_usd: Decimal, now: datetime | None
) -> WalletsSnapshot:
    """The snapshot of ``ledger`` as seen at ``now`` (a later UTC day shows a zero pnl_day)."""
    new_day = now is not None and ledger.day is not None and now.date() > ledger.day
    pnl = dict.fromkeys(ledger.wallets, ZERO) if new_day else ledger.pnl_day
    fees_day = ZERO if new_day else ledger.fees_day
    equity = ledger.equity()
    views = tuple(
        WalletView(
            id=w.id,
            chain=w.chain,
            role=w.role,
            balance=ledger.balances[w.id],
            pct_equity=pct_of(ledger.balances[w.id], equity),
            pnl_day=pnl[w.id],
        )
        for w in ledger.finance.wallets
    )
    return WalletsSnapshot(
        profile_id=ledger.finance.profile_id,
        time=ledger.last_time,
        equity_total_usd=equity,
        pnl_day=sum(pnl.values(), ZERO),
        wallets=views,
        alerts=tuple(finance_alerts(ledger, min_operational_capital_usd, fees_day)),
    )
