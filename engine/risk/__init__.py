"""Risk: proposal validation (``validation``), the kill switch's state on disk (``state``) and
the risk engine with its safety guards (``guards``). Everything a caller needs is importable
from ``engine.risk``."""

from engine.risk.guards import RiskEngine
from engine.risk.state import (
    HISTORY_FILES,
    NOT_FLATTENED,
    RISK_COMMANDS_FILE,
    RISK_JOURNAL_FILE,
    RISK_STATE_FILE,
    STATE_LOST,
    KillState,
    KillSwitch,
    RiskCommand,
    RiskSnapshot,
    RiskState,
    load_risk_state,
    queue_risk_command,
    read_kill_switch,
)
from engine.risk.validation import exits_in_order, validate_proposal

__all__ = [
    "HISTORY_FILES",
    "NOT_FLATTENED",
    "RISK_COMMANDS_FILE",
    "RISK_JOURNAL_FILE",
    "RISK_STATE_FILE",
    "STATE_LOST",
    "KillState",
    "KillSwitch",
    "RiskCommand",
    "RiskEngine",
    "RiskSnapshot",
    "RiskState",
    "exits_in_order",
    "load_risk_state",
    "queue_risk_command",
    "read_kill_switch",
    "validate_proposal",
]
