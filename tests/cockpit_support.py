"""Helpers for driving the cockpit deterministically: a simulated clock, no automatic ticks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from engine.agent import build_agent
from engine.modes import Settings, resolve_settings
from engine.runtime import Runtime, SimClock
from kobe_tui.app import KobeApp


def make_app(
    workdir: Path,
    env: Mapping[str, str] | None = None,
    *,
    factory: Callable[[Settings, bool], Runtime] | None = None,
    balances: dict[str, Decimal] | None = None,
) -> tuple[KobeApp, SimClock]:
    settings = resolve_settings(dict(env or {}), workdir)
    clock = SimClock(settings.config.paper.sim_start)

    def default_factory(s: Settings, confirmed: bool) -> Runtime:
        return Runtime(
            s, confirmed=confirmed, clock=clock, tick_seconds=60, agent_factory=build_agent
        )

    app = KobeApp(
        settings,
        env=dict(env or {}),  # a reload (r) reads these, never the developer's
        cwd=workdir,
        clock=clock,
        autotick=False,
        runtime_factory=factory or default_factory,
        balances_fetcher=(lambda s: dict(balances or {})),
    )
    return app, clock


async def settle(app: KobeApp, pilot: Pilot[Any], *, engine: bool = True) -> None:
    """Wait until the workers are done (the engine worker idles: wait for its runtime)."""
    for _ in range(400):
        await pilot.pause()
        if not engine or app.runtime is not None or app.engine_state in ("error", "locked"):
            break
    await drain(app, pilot)


async def drain(app: Any, pilot: Pilot[Any], timeout: float = 10.0) -> None:
    """Until every worker but the engine's has finished (polling: never hangs a test)."""
    import asyncio
    import time

    from textual.worker import WorkerState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [
            w
            for node in (app, app.screen)
            for w in node.workers
            if w.group != "engine" and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
        ]
        if not busy:
            break
        await asyncio.sleep(0.01)
    app._drain()  # engine events waiting in the inbox are drawn now, not after a timer
    for _ in range(3):  # let layout and scrollbars settle, even on a loaded machine
        await pilot.pause(0.02)


async def ticks(app: KobeApp, pilot: Pilot[Any], clock: SimClock, n: int) -> None:
    app.step(n, advance=lambda: clock.advance(60))
    await settle(app, pilot)


def plain(widget: Static, width: int = 200) -> str:
    """What a Static shows (a text or a grid), as plain lines ``width`` cells wide."""
    console = Console(width=width, color_system=None)
    with console.capture() as out:
        console.print(widget.content, markup=False)
    return out.get()
