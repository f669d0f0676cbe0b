from __future__ import annotations

import re

import pytest

from engine.config import TxGuardConfig
from engine.tx_guard import TxGuard, TxRefused
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("disabled", "gate_open", "expected"),
    [
        (True, False, ["tx_guard.hard_disable_send_tx is true", "the live gate is not open"]),
        (True, True, ["tx_guard.hard_disable_send_tx is true"]),
        (False, False, ["the live gate is not open"]),
    ],
)
def test_refuses_unless_disabled_flag_off_and_gate_open(
    disabled: bool, gate_open: bool, expected: list[str]
) -> None:
    sent: list[bytes] = []
    guard = TxGuard(TxGuardConfig(hard_disable_send_tx=disabled), lambda: gate_open)
    with pytest.raises(TxRefused) as info:
        guard.send("swap", b"tx", sent.append)
    assert info.value.reasons == expected
    assert sent == []  # the sender was never called


def test_only_both_conditions_let_a_transaction_through() -> None:
    sent: list[bytes] = []
    guard = TxGuard(TxGuardConfig(hard_disable_send_tx=False), lambda: True)
    guard.send("swap", b"tx", lambda tx: sent.append(tx))
    assert sent == [b"tx"]


def test_default_config_keeps_the_guard_shut() -> None:
    assert TxGuardConfig().hard_disable_send_tx is True


SENDERS = re.compile(
    r"send_?transaction|send_?raw_?transaction|sendTransaction|sign_and_send|\.send_tx\(",
    re.IGNORECASE,
)


def test_no_code_sends_a_transaction_around_the_guard() -> None:
    """A lint over the engine and the cockpit. The real guard is structural: the only Solana
    client, engine.indexer.rpc.SolanaRpc, sends read-only methods only, whatever the method
    name is built from (tests/test_rpc_hardening.py tries)."""
    offenders = []
    paths = [*(ROOT / "engine").rglob("*.py"), *(ROOT / "kobe_tui").rglob("*.py")]
    assert any(p.parent.name == "kobe_tui" for p in paths)
    for path in paths:
        if path.name == "tx_guard.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if SENDERS.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
