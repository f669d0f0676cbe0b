"""[finance] and [wallet_flows]: the LIVE_150 defaults, and every refusal with its key path."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.config import ConfigError, KobeConfig, config_to_toml, load_config_file, parse_config
from engine.wallets import policies
from tests.conftest import ROOT


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.lines


def wallets_toml(**allocations: str) -> str:
    """The LIVE_150 wallets as a TOML array, with some allocations replaced (``id="pct:10"``)."""
    rows = []
    for w in policies.WALLETS:
        alloc = allocations.get(w.id, str(w.allocation_usd))
        key, value = (
            ("allocation_pct", alloc[4:]) if alloc.startswith("pct:") else ("allocation_usd", alloc)
        )
        rows.append(f'{{ id = "{w.id}", chain = "{w.chain}", role = "{w.role}", {key} = {value} }}')
    return "[finance]\nwallets = [\n" + ",\n".join(rows) + "\n]\n"


def test_live_150_defaults_ten_wallets_summing_to_150() -> None:
    fin = KobeConfig().finance
    assert fin.profile_id == "LIVE_150"
    assert fin.capital_usd == Decimal(150)
    assert len(fin.wallets) == 10
    alloc = {w.id: w.allocation(fin.capital_usd) for w in fin.wallets}
    assert sum(alloc.values()) == Decimal(150)
    assert alloc["sniper_sol"] == alloc["copy_sol"] == Decimal(30)
    assert {w.id: (w.chain, w.role) for w in fin.wallets} == {
        "sniper_sol": ("solana", "trading"),
        "copy_sol": ("solana", "trading"),
        "cex_binance": ("binance", "trading"),
        "cex_bybit": ("bybit", "trading"),
        "cex_okx": ("okx", "trading"),
        "fees_sol": ("solana", "fees"),
        "buffer": ("offchain", "buffer"),
        "profits": ("offchain", "profits"),
        "vault": ("offchain", "vault"),
        "reserve": ("offchain", "reserve"),
    }
    assert fin.fees_policy.wallet == "fees_sol"
    assert set(fin.risk_wallets) == set(policies.TRADING_WALLETS)


def test_shipped_kobe_toml_carries_the_live_150_profile_explicitly() -> None:
    text = (ROOT / "kobe.toml").read_text()
    for w in policies.WALLETS:
        assert f'id = "{w.id}"' in text
    for section in (
        "[finance.fees_policy]",
        "[wallet_flows.fees_sweep]",
        "[wallet_flows.compounding]",
    ):
        assert section in text
    assert load_config_file(ROOT / "kobe.toml") == KobeConfig()


def test_policies_profile_object_matches_the_config_defaults() -> None:
    fin, flows = KobeConfig().finance, KobeConfig().wallet_flows
    p = policies.LIVE_150
    assert p.total_allocation_usd == p.capital_usd == fin.capital_usd
    assert [(w.id, w.chain, w.role, w.allocation_usd) for w in p.wallets] == [
        (w.id, w.chain, w.role, w.allocation_usd) for w in fin.wallets
    ]
    assert p.fees_buffer_usd == (
        fin.fees_policy.buffer_min_usd,
        fin.fees_policy.buffer_target_usd,
        fin.fees_policy.buffer_max_usd,
    )
    assert {k: v.max_usd for k, v in fin.risk_wallets.items()} == p.risk_wallet_max_usd
    assert flows.compounding.destination == list(policies.TRADING_WALLETS)


def test_config_round_trips_through_toml() -> None:
    cfg = KobeConfig()
    assert parse_config(config_to_toml(cfg)) == cfg


def test_allocation_in_percent_is_accepted_and_resolved_against_capital() -> None:
    cfg = parse_config(wallets_toml(sniper_sol="pct:20", reserve="pct:5", buffer="12.5"))
    fin = cfg.finance
    assert fin.wallet("sniper_sol").allocation(fin.capital_usd) == Decimal(30)
    assert fin.wallet("reserve").allocation(fin.capital_usd) == Decimal("7.5")


def test_numbers_are_decimals() -> None:
    cfg = parse_config("[finance.fees_policy]\nbuffer_min_usd = 4.5\n")
    assert cfg.finance.fees_policy.buffer_min_usd == Decimal("4.5")
    assert isinstance(cfg.finance.fees_policy.buffer_min_usd, Decimal)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[finance]\ncapital_usd = 160\n",
            "kobe.toml: finance: wallets: allocations add up to 150 USD, not capital_usd (160)",
        ),
        (
            wallets_toml(reserve="12.5"),
            "kobe.toml: finance: wallets: allocations add up to 152.5 USD, not capital_usd (150)",
        ),
        (
            '[finance.fees_policy]\nwallet = "fees_eth"\n',
            "kobe.toml: finance: fees_policy.wallet: 'fees_eth' names no wallet (wallets: ",
        ),
        (
            '[finance.fees_policy]\nwallet = "buffer"\n',
            "kobe.toml: finance: fees_policy.wallet: 'buffer' has role 'buffer', not fees",
        ),
        (
            '[wallet_flows.compounding]\nsource = "profitz"\n',
            "kobe.toml: wallet_flows: compounding.source: 'profitz' names no wallet in finance.wallets",
        ),
        (
            '[wallet_flows.profits_sweep]\nsource = ["sniper_sol", "ghost"]\n',
            "kobe.toml: wallet_flows: profits_sweep.source[1]: 'ghost' names no wallet",
        ),
        (
            '[wallet_flows.profits_sweep]\nvault = "safe"\n',
            "kobe.toml: wallet_flows: profits_sweep.vault: 'safe' names no wallet",
        ),
        (
            '[wallet_flows.fees_sweep]\ndestination = "nowhere"\n',
            "kobe.toml: wallet_flows: fees_sweep.destination: 'nowhere' names no wallet",
        ),
        (
            '[wallet_flows.fees_sweep]\nsource = "fees_sol"\n',
            "kobe.toml: wallet_flows: fees_sweep.source: is the fees wallet itself ('fees_sol')",
        ),
        (
            "[finance.fees_policy]\nbuffer_min_usd = 12\n",
            "kobe.toml: finance.fees_policy: buffer_min_usd (12), buffer_target_usd (10) and "
            "buffer_max_usd (15) must be in that order (min <= target <= max)",
        ),
        (
            "[finance.fees_policy]\nbuffer_max_usd = 8\n",
            "kobe.toml: finance.fees_policy: buffer_min_usd (5), buffer_target_usd (10) and "
            "buffer_max_usd (8) must be in that order",
        ),
        (
            "[wallet_flows.profits_sweep]\nshare_pct = 120\n",
            "kobe.toml: wallet_flows.profits_sweep.share_pct: must be between 0 and 100 (got 120)",
        ),
        (
            "[wallet_flows.compounding]\nshare_pct = -1\n",
            "kobe.toml: wallet_flows.compounding.share_pct: must be between 0 and 100 (got -1)",
        ),
        (
            "[wallet_flows.profits_sweep]\nvault_share_pct = 100.5\n",
            "kobe.toml: wallet_flows.profits_sweep.vault_share_pct: must be between 0 and 100",
        ),
        (
            "[finance.fees_policy]\nmax_fees_pct_of_equity = 101\n",
            "kobe.toml: finance.fees_policy.max_fees_pct_of_equity: must be between 0 and 100",
        ),
        (
            '[finance]\nwallets = [{ id = "a", chain = "solana", role = "trading" }]\n',
            "kobe.toml: finance.wallets[0]: give exactly one of allocation_usd or allocation_pct",
        ),
        (
            '[finance]\nwallets = [{ id = "a", chain = "solana", role = "trading", '
            "allocation_usd = 150, allocation_pct = 100 }]\n",
            "kobe.toml: finance.wallets[0]: give exactly one of allocation_usd or allocation_pct",
        ),
        (
            '[finance]\nwallets = [{ id = "a", chain = "eth", role = "trading", allocation_usd = 150 }]\n',
            "kobe.toml: finance.wallets[0].chain: must be 'solana', 'binance', 'bybit', 'okx' or "
            "'offchain' (got 'eth')",
        ),
        (
            '[finance]\nwallets = [{ id = "a", chain = "okx", role = "generic", allocation_usd = 150 }]\n',
            "kobe.toml: finance.wallets[0].role: must be 'trading', 'fees', 'buffer', 'profits', "
            "'vault' or 'reserve' (got 'generic')",
        ),
        (
            '[finance]\nwallets = [{ id = "A b", chain = "okx", role = "trading", allocation_usd = 150 }]\n',
            "kobe.toml: finance.wallets[0].id: must be lower-case letters, digits and _",
        ),
        (
            wallets_toml().replace('id = "reserve"', 'id = "vault"'),
            "kobe.toml: finance: wallets: duplicate id 'vault'",
        ),
        (
            "[finance.risk_wallets]\nbogus = { max_usd = 5 }\n",
            "kobe.toml: finance: risk_wallets.bogus: names no wallet (wallets: ",
        ),
        (
            "[finance.risk_wallets]\nvault = { max_usd = 50 }\n",
            "kobe.toml: finance: risk_wallets.vault: has role 'vault', not trading",
        ),
        (
            "[finance.risk_wallets]\nsniper_sol = { max_usd = 20 }\n",
            "kobe.toml: finance: wallets: sniper_sol starts with 30 USD, above its cap (20 USD)",
        ),
        (
            "[finance.policies]\nmax_equity_at_risk_pct = 50\n",
            "kobe.toml: finance: risk_wallets: start with 100 USD, above "
            "policies.max_equity_at_risk_pct (50 % = 75 USD)",
        ),
        (
            "[finance.policies]\nrole_max_pct = { traders = 10 }\n",
            "kobe.toml: finance.policies.role_max_pct.traders",
        ),
        (
            '[wallet_flows.fees_sweep]\ntrigger = "hourly"\n',
            "kobe.toml: wallet_flows.fees_sweep.trigger: must be 'period' or 'tick' (got 'hourly')",
        ),
        (
            "[wallet_flows.compounding]\nperiod_s = 0\n",
            "kobe.toml: wallet_flows.compounding.period_s: must be greater than or equal to 1",
        ),
        (
            '[wallet_flows.compounding]\ndestination = ["profits"]\n',
            "kobe.toml: wallet_flows.compounding: 'profits' is both the source and a destination",
        ),
        (
            '[wallet_flows.profits_sweep]\nsource = ["sniper_sol", "sniper_sol"]\n',
            "kobe.toml: wallet_flows.profits_sweep: source names a wallet twice",
        ),
        (
            "[wallet_flows.compounding]\nbogus = 1\n",
            "kobe.toml: wallet_flows.compounding.bogus: unknown key (got 1)",
        ),
    ],
)
def test_refusals_name_the_key_and_the_problem(text: str, expected: str) -> None:
    lines = errors_of(text)
    assert any(line.startswith(expected) for line in lines), lines


def test_every_problem_of_the_finance_table_is_reported() -> None:
    lines = errors_of(
        "[finance]\ncapital_usd = 140\n"
        '[finance.fees_policy]\nwallet = "nope"\n'
        "[finance.risk_wallets]\nreserve = { max_usd = 10 }\n"
    )
    assert len(lines) == 1
    for needle in ("allocations add up to 150", "'nope' names no wallet", "risk_wallets.reserve"):
        assert needle in lines[0]


def test_a_partial_finance_file_inherits_the_live_150_wallets() -> None:
    cfg = parse_config("[finance.fees_policy]\nbuffer_target_usd = 12\n")
    assert cfg.finance.fees_policy.buffer_target_usd == 12
    assert cfg.finance.wallets == KobeConfig().finance.wallets
    assert cfg.wallet_flows == KobeConfig().wallet_flows
