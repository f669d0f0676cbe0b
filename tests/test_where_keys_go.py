"""Where the exchange keys may go (issue 14, item 7): a base-URL override on loopback only, a
.env testnet marking that never covers keys from the environment, and warnings about a key that
may withdraw or a .env / data dir others can read. Against the Binance simulator on 127.0.0.1."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.bootstrap import load_env
from engine.exchange.ccxt_exchange import CcxtExchange
from engine.modes import gate_problems, resolve_settings
from engine.secrets import Secret
from tests.binance_sim import API_KEY, API_SECRET, BinanceSim
from tests.conftest import CliRunner, run_kobe


@pytest.fixture
def sim() -> Iterator[BinanceSim]:
    with BinanceSim() as server:
        yield server


def sim_env(sim: BinanceSim) -> dict[str, str]:
    return {
        "KOBE_MODE": "testnet",
        "BINANCE_KEY": API_KEY,
        "BINANCE_SECRET": API_SECRET,
        "BINANCE_TESTNET": "1",
        "KOBE_EXCHANGE_URL": sim.url,
    }


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5:8080",
        "https://api.binance.com:443",
        "http://attacker.example:80",
        "http://user:pw@127.0.0.1:8080",
        "http://127.0.0.1.nip.io:8080",
    ],
)
def test_an_exchange_url_off_loopback_is_refused_with_exit_2(
    cli: CliRunner, workdir: Path, url: str, sim: BinanceSim
) -> None:
    env = {**sim_env(sim), "KOBE_EXCHANGE_URL": url}
    result = cli("keys", "--ping", env=env)
    assert result.code == 2
    assert "KOBE_EXCHANGE_URL: must be" in result.err
    assert sim.requests == []
    (workdir / "kobe.toml").write_text(f'[exchange]\napi_url = "{url}"\n')
    result = cli("health", env={k: v for k, v in env.items() if k != "KOBE_EXCHANGE_URL"})
    assert result.code == 2 and "exchange.api_url: must be" in result.err
    assert not (workdir / "data").exists()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://[::1]:9", "http://localhost:9"])
def test_loopback_urls_are_accepted(workdir: Path, url: str) -> None:
    assert resolve_settings({"KOBE_EXCHANGE_URL": url}, workdir).api_url == url


def test_the_adapter_itself_refuses_a_url_off_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        CcxtExchange("binance", api_url="http://192.168.1.10:8080")


def test_with_a_url_override_no_endpoint_points_at_a_real_host(sim: BinanceSim) -> None:
    exchange = CcxtExchange(
        "binance", api_key=Secret(API_KEY), secret=Secret(API_SECRET), api_url=sim.url
    )

    def urls(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [u for v in node.values() for u in urls(v)]
        return [node] if isinstance(node, str) else []

    found = urls(exchange.ccxt.urls["api"])
    assert found and all(u.startswith(sim.url) for u in found)
    exchange.close()


def test_a_dotenv_testnet_marking_never_covers_keys_from_the_environment(
    cli: CliRunner, workdir: Path, sim: BinanceSim
) -> None:
    (workdir / ".env").write_text(f"BINANCE_TESTNET=1\nKOBE_EXCHANGE_URL={sim.url}\n")
    process = {"KOBE_MODE": "testnet", "BINANCE_KEY": API_KEY, "BINANCE_SECRET": API_SECRET}
    settings = resolve_settings(load_env(workdir, process), workdir)
    assert not settings.keys_marked_testnet()
    [problem] = gate_problems(settings, confirmed=True)
    assert "BINANCE_TESTNET=1 comes from .env but the keys come from the process" in problem
    # the same .env with the keys in it too: the marking applies to them
    (workdir / ".env").write_text(
        f"BINANCE_TESTNET=1\nBINANCE_KEY={API_KEY}\nBINANCE_SECRET={API_SECRET}\n"
    )
    settings = resolve_settings(load_env(workdir, {"KOBE_MODE": "testnet"}), workdir)
    assert settings.keys_marked_testnet() and gate_problems(settings, confirmed=True) == []
    # live refuses the marking wherever it comes from
    (workdir / ".env").write_text("BINANCE_TESTNET=1\n")
    live = {**process, "KOBE_MODE": "live", "ALLOW_LIVE": "1"}
    settings = resolve_settings(load_env(workdir, live), workdir)
    assert any("marks the keys as testnet keys" in p for p in gate_problems(settings, True))


def test_kobe_orders_with_a_dotenv_marking_sends_the_environments_keys_nowhere(
    tmp_path: Path, sim: BinanceSim
) -> None:
    """The repro: a .env planted in the working directory marks the keys testnet and points the
    URL away; with the keys in the process environment, nothing is sent."""
    work = tmp_path / "w"
    work.mkdir()
    (work / ".env").write_text(f"BINANCE_TESTNET=1\nKOBE_EXCHANGE_URL={sim.url}\n")
    env = {"KOBE_MODE": "testnet", "BINANCE_KEY": API_KEY, "BINANCE_SECRET": API_SECRET}
    result = run_kobe("orders", env=env, cwd=work)  # the real process environment and .env
    assert result.code == 1, result.err
    assert "comes from .env" in result.err
    assert sim.requests == []


def test_keys_ping_and_health_warn_when_the_key_may_withdraw(
    cli: CliRunner, sim: BinanceSim
) -> None:
    sim.can_withdraw = True
    keys = cli("keys", "--ping", env=sim_env(sim))
    assert keys.code == 0, keys.err
    assert "warning:  key withdrawals: this API key may withdraw funds" in keys.out
    report = json.loads(cli("keys", "--ping", "--json", env=sim_env(sim)).out)
    assert any("may withdraw" in w for w in report["warnings"])
    health = cli("health", env=sim_env(sim))
    assert "warn  key withdrawals: this API key may withdraw funds" in health.out
    assert health.code == 0 and health.out.splitlines()[-1] == "healthy"  # a warning fails nothing
    sim.can_withdraw = False
    health = cli("health", "--json", env=sim_env(sim))
    [check] = [c for c in json.loads(health.out)["checks"] if c["name"] == "key withdrawals"]
    assert check == {
        "name": "key withdrawals",
        "ok": True,
        "detail": "this API key cannot withdraw",
        "warning": False,
    }


def test_warnings_when_dotenv_or_the_data_dir_can_be_read_by_others(
    cli: CliRunner, workdir: Path, sim: BinanceSim
) -> None:
    (workdir / ".env").write_text("# nothing secret in tests\n")
    (workdir / "data").mkdir()
    os.chmod(workdir / ".env", 0o644)
    os.chmod(workdir / "data", 0o755)
    result = cli("health", env=sim_env(sim))
    assert "warn  .env private: ./.env can be read by other users: chmod 600 ./.env" in result.out
    assert "warn  data dir private: ./data can be read by other users: chmod 700" in result.out
    keys = cli("keys", "--ping", env=sim_env(sim))
    assert "warning:  .env private" in keys.out
    os.chmod(workdir / ".env", 0o600)
    os.chmod(workdir / "data", 0o700)
    result = cli("health", env=sim_env(sim))
    assert "ok    .env private: ./.env: only its owner can read it" in result.out
    assert "can be read by other users" not in result.out
    paper = cli("health", env={})
    assert "private" not in paper.out  # paper holds no keys: no such check


def test_the_data_dir_kobe_creates_is_private_and_one_that_exists_keeps_its_mode(
    cli: CliRunner, workdir: Path, tmp_path: Path
) -> None:
    """``kobe health`` warns in testnet and live when the data dir can be read by others; Kobe
    made it so itself (0755 under the usual umask), with every journal of the trading history
    inside. Each directory Kobe creates is 0700 now; one the operator made keeps its mode."""
    old = os.umask(0o022)
    try:
        buy = [
            "trade",
            "--symbol",
            "BTC/USDT",
            "--side",
            "buy",
            "--type",
            "market",
            "--quote",
            "15",
            "--yes",
        ]
        assert cli(*buy).code == 0
        deep = tmp_path / "a" / "b" / "data"  # KOBE_DATA_DIR's missing parents too
        assert cli(*buy, env={"KOBE_DATA_DIR": str(deep)}).code == 0
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o750)
        assert cli(*buy, env={"KOBE_DATA_DIR": str(theirs)}).code == 0
    finally:
        os.umask(old)
    made = [workdir / "data", deep.parent.parent, deep.parent, deep]
    made += [d for root in (workdir / "data", deep, theirs) for d in root.rglob("*") if d.is_dir()]
    assert len(made) > 6 and {oct(d.stat().st_mode & 0o777) for d in made} == {"0o700"}
    assert theirs.stat().st_mode & 0o777 == 0o750
