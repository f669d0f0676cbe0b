"""The cockpit driven as a person would, with Textual's pilot."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static

from kobe_tui.app import KobeApp
from kobe_tui.widgets.health import HealthPane


async def test_first_frame_then_settings_from_a_worker(workdir: Path) -> None:
    (workdir / "kobe.toml").write_text('mode = "testnet"\n[exchange]\nname = "okx"\n')
    app = KobeApp(env={}, cwd=workdir)
    assert app.settings is None  # nothing validated before the first frame
    async with app.run_test(size=(80, 24)) as pilot:
        assert str(app.query_one("#mode", Static).render()).strip() == "TESTNET"
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.settings is not None
        pane = app.query_one(HealthPane)
        assert "keys present" in pane.rows
        assert "…" not in pane.rows
        assert pane.has_class("failing")  # no okx keys: testnet cannot run


async def test_peek_is_corrected_by_the_full_load(workdir: Path) -> None:
    # KOBE_MODE wins over the file: the header must say so once validated, too
    (workdir / "kobe.toml").write_text('mode = "paper"\n')
    app = KobeApp(env={"KOBE_MODE": "live"}, cwd=workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "LIVE — LOCKED" in str(app.query_one("#mode", Static).render())


async def test_refused_config_closes_with_exit_2_and_its_lines(workdir: Path) -> None:
    (workdir / "kobe.toml").write_text("[risk]\nmax_drawdown_pct = 140\n")
    app = KobeApp(env={}, cwd=workdir)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert app.return_code == 2
    assert app.config_errors == [
        "kobe.toml: risk.max_drawdown_pct: must be between 0 and 100 (got 140)"
    ]
    assert sorted(p.name for p in workdir.iterdir()) == ["kobe.toml"]  # nothing written
