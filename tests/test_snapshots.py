"""Cockpit snapshots (pytest-textual-snapshot). Deterministic: fixed env, fixed cwd, no clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.modes import resolve_settings
from kobe_tui.app import KobeApp

SnapCompare = Callable[..., bool]


@pytest.fixture
def stable_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "w"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


def app_for(env: dict[str, str], cwd: Path) -> KobeApp:
    return KobeApp(resolve_settings(env, cwd))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_paper_main(snap_compare: SnapCompare, stable_cwd: Path, size: tuple[int, int]) -> None:
    assert snap_compare(app_for({}, stable_cwd), terminal_size=size)


def test_testnet_health_failing(snap_compare: SnapCompare, stable_cwd: Path) -> None:
    app = app_for({"KOBE_MODE": "testnet", "BINANCE_KEY": "abcdefgh"}, stable_cwd)
    assert snap_compare(app, terminal_size=(80, 24))


def test_live_locked_header(snap_compare: SnapCompare, stable_cwd: Path) -> None:
    app = app_for({"KOBE_MODE": "live"}, stable_cwd)
    assert snap_compare(app, terminal_size=(80, 24))


def test_help_screen(snap_compare: SnapCompare, stable_cwd: Path) -> None:
    assert snap_compare(app_for({}, stable_cwd), press=["question_mark"], terminal_size=(80, 24))


async def test_q_quits_and_help_closes_with_escape(stable_cwd: Path) -> None:
    app = app_for({}, stable_cwd)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ != "HelpScreen"
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code in (0, None)


async def test_bindings_have_ids_and_descriptions(stable_cwd: Path) -> None:
    bindings: list[Any] = list(KobeApp.BINDINGS)
    assert bindings
    for b in bindings:
        assert b.id and b.description, b
        assert not b.priority
