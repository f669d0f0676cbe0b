"""The cockpit raced: keys back to back (as SSH bundles them) against the engine's thread, with
Textual's pilot and the real engine in paper mode."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.agent import build_agent
from engine.modes import Settings, resolve_settings
from engine.runtime import Runtime, SimClock
from kobe_tui.app import KobeApp
from kobe_tui.widgets.journal import AlertsPane
from tests.cockpit_support import drain, make_app, settle
from tests.test_cockpit_keys import burst


@contextmanager
def tick_under_way(runtime: Runtime) -> Iterator[None]:
    """The engine's lock held by another thread, as a tick waiting for a slow exchange."""
    held, done = threading.Event(), threading.Event()

    def tick() -> None:
        with runtime._lock:
            held.set()
            done.wait(10)

    thread = threading.Thread(target=tick)
    thread.start()
    held.wait()
    try:
        yield
    finally:
        done.set()
        thread.join()


async def until(pilot: object, condition: object, seconds: float = 3.0) -> bool:
    """Poll ``condition()`` on the UI's loop for at most ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return False


def trip_alerts(app: KobeApp) -> int:
    """How many times the alerts pane was told the switch tripped (repeats are counted)."""
    return sum(
        count
        for _, _, code, message, count in app.query_one(AlertsPane).alerts
        if code == "kill_switch" and "TRIPPED" in message
    )


async def test_k_mid_tick_trips_at_once_and_alerts_once(workdir: Path) -> None:
    """``k`` while a tick is under way (a slow exchange): the switch trips at once, so the
    entries the tick has still to send are refused; it waited for the tick's end. ``k`` twice
    in one packet is one trip: one alert."""
    app, _ = make_app(workdir)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        runtime = app.runtime
        assert runtime is not None
        with tick_under_way(runtime):
            await burst(app, "k", "k")
            tripped = await until(pilot, lambda: runtime.risk.entry_block() is not None)
            assert tripped, "the trip waited for the tick"
        await settle(app, pilot)
        assert runtime.risk.kill_switch().tripped
        assert trip_alerts(app) == 1


async def test_r_while_the_engine_starts_leaves_one_engine_running(workdir: Path) -> None:
    """``r`` (recheck) while the engine was being built (an exchange's markets loading) started
    a second one: the first was cancelled, the second refused by the first's lock, and the
    cockpit was left with no engine ("held by pid <its own>")."""
    settings = resolve_settings({}, workdir)
    clock = SimClock(settings.config.paper.sim_start)
    built: list[Runtime] = []

    class SlowStart(Runtime):
        def _build_parts(self) -> None:
            time.sleep(0.5)  # the data dir is locked; the venue is being asked
            super()._build_parts()

    def factory(s: Settings, confirmed: bool) -> Runtime:
        runtime = SlowStart(s, confirmed=confirmed, clock=clock, agent_factory=build_agent)
        built.append(runtime)
        return runtime

    app = KobeApp(
        settings, env={}, cwd=workdir, clock=clock, autotick=False, runtime_factory=factory
    )
    async with app.run_test(size=(120, 40)) as pilot:
        assert await until(pilot, lambda: built)  # the engine is being built
        await pilot.press("r")
        await settle(app, pilot)
        await asyncio.sleep(0.6)  # what a second start would have met
        await drain(app, pilot)
        assert app.engine_state == "running"
        assert len(built) == 1 and app.runtime is built[0]
        assert not [a for a in app.query_one(AlertsPane).alerts if a[2] == "engine"]
