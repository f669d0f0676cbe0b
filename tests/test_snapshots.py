"""Cockpit snapshots (pytest-textual-snapshot). Deterministic: a simulated clock, seeded feeds,
no automatic ticks (the test steps the engine), no cursor blink, workers settled first."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from engine.modes import Settings
from engine.runtime import Runtime
from kobe_tui.app import KobeApp
from tests.cockpit_support import drain, make_app, settle, ticks
from tests.test_cockpit import LIVE_ENV

SnapCompare = Callable[..., bool]


@pytest.fixture
def stable_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "w"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


def running(n: int = 0) -> Callable[[Pilot[Any]], Any]:
    async def before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, KobeApp)
        await settle(app, pilot)
        if n:
            await ticks(app, pilot, app.clock, n)  # type: ignore[arg-type]

    return before


@pytest.mark.parametrize(
    "size", [(80, 24), (120, 40), (160, 50)], ids=["80x24", "120x40", "160x50"]
)
def test_paper_main(snap_compare: SnapCompare, stable_cwd: Path, size: tuple[int, int]) -> None:
    app, _ = make_app(stable_cwd)
    assert snap_compare(app, terminal_size=size, run_before=running(150))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_paper_main_in_16_colours(
    snap_compare: SnapCompare, stable_cwd: Path, size: tuple[int, int]
) -> None:
    """The terminal's 16 ANSI colours (the theme a 16-colour terminal gets): words first."""
    app, _ = make_app(stable_cwd)
    app.theme = "ansi-dark"
    assert snap_compare(app, terminal_size=size, run_before=running(150))


@pytest.mark.parametrize("pane", ["4", "8", "9"], ids=["journal", "risk", "stats"])
def test_panes_at_80x24(snap_compare: SnapCompare, stable_cwd: Path, pane: str) -> None:
    app, _ = make_app(stable_cwd)

    async def before(pilot: Pilot[Any]) -> None:
        await running(300)(pilot)
        await pilot.press(pane)
        await drain(pilot.app, pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_orders_pane_at_80x24_names_the_position_each_exit_protects(
    snap_compare: SnapCompare, stable_cwd: Path
) -> None:
    app, _ = make_app(stable_cwd)  # the seeded session holds positions with exits at tick 60
    assert snap_compare(app, terminal_size=(80, 24), run_before=running(60))


def test_order_ticket_at_80x24_leaves_the_header_in_sight(
    snap_compare: SnapCompare, stable_cwd: Path
) -> None:
    app, _ = make_app(stable_cwd)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_ticket("15"))


def test_paper_wallets_pane_at_80x24(snap_compare: SnapCompare, stable_cwd: Path) -> None:
    app, _ = make_app(stable_cwd)

    async def before(pilot: Pilot[Any]) -> None:
        await running(150)(pilot)
        await pilot.press("3")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_testnet_health_failing(snap_compare: SnapCompare, stable_cwd: Path) -> None:
    app, _ = make_app(stable_cwd, {"KOBE_MODE": "testnet", "BINANCE_KEY": "abcdefgh"})
    assert snap_compare(app, terminal_size=(120, 40), run_before=running())


def test_engine_error(snap_compare: SnapCompare, stable_cwd: Path) -> None:
    def broken(settings: Settings, confirmed: bool) -> Runtime:
        raise RuntimeError("paper state unreadable: data/paper/state.json")

    app, _ = make_app(stable_cwd, factory=broken)
    assert snap_compare(app, terminal_size=(120, 40), run_before=running())


def test_live_locked(snap_compare: SnapCompare, stable_cwd: Path) -> None:
    app, _ = make_app(stable_cwd, {"KOBE_MODE": "live"})
    assert snap_compare(app, terminal_size=(80, 24), run_before=running())


def _ticket(amount: str) -> Callable[[Pilot[Any]], Any]:
    async def before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await running()(pilot)
        await pilot.press("n")
        await pilot.pause()
        box = app.screen.query_one("#amount", Input)
        box.value = amount
        await drain(app, pilot)
        box.focus()
        await pilot.pause()

    return before


def test_order_ticket_with_a_plan(snap_compare: SnapCompare, stable_cwd: Path) -> None:
    app, _ = make_app(stable_cwd)
    assert snap_compare(app, terminal_size=(120, 40), run_before=_ticket("15"))


def test_order_ticket_with_a_refusal(snap_compare: SnapCompare, stable_cwd: Path) -> None:
    app, _ = make_app(stable_cwd)
    assert snap_compare(app, terminal_size=(120, 40), run_before=_ticket("50"))


def test_cancel_confirmation(snap_compare: SnapCompare, stable_cwd: Path) -> None:
    app, _ = make_app(stable_cwd)

    async def before(pilot: Pilot[Any]) -> None:
        await running()(pilot)
        await pilot.press("n")
        await pilot.pause()
        screen = pilot.app.screen
        screen.query_one("#type").value = "limit"  # type: ignore[attr-defined]
        screen.query_one("#price", Input).value = "90000"
        await drain(pilot.app, pilot)
        await pilot.press("ctrl+s")
        await settle(pilot.app, pilot)  # type: ignore[arg-type]
        await pilot.press("1", "c")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)


def _unlock(step: int) -> Callable[[Pilot[Any]], Any]:
    async def before(pilot: Pilot[Any]) -> None:
        await running()(pilot)
        await pilot.press("L")
        await drain(pilot.app, pilot)
        if step == 2:
            await pilot.click("#continue")
            await pilot.pause()
            for ch in "UNLOCK BIN":
                await pilot.press(ch if ch != " " else "space")
            await pilot.pause()

    return before


@pytest.mark.parametrize("step", [1, 2])
def test_live_unlock_steps(snap_compare: SnapCompare, stable_cwd: Path, step: int) -> None:
    app, _ = make_app(
        stable_cwd, LIVE_ENV, balances={"USDT": Decimal("1520.35"), "BTC": Decimal("0.0125")}
    )
    assert snap_compare(app, terminal_size=(120, 40), run_before=_unlock(step))


def test_kill_switch_tripped(snap_compare: SnapCompare, stable_cwd: Path) -> None:
    app, _ = make_app(stable_cwd)

    async def before(pilot: Pilot[Any]) -> None:
        await running(30)(pilot)
        await pilot.press("k")
        await settle(pilot.app, pilot)  # type: ignore[arg-type]

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)


def test_help_screen(snap_compare: SnapCompare, stable_cwd: Path) -> None:
    app, _ = make_app(stable_cwd)

    async def before(pilot: Pilot[Any]) -> None:
        await running()(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)
