"""The footer, rebuilt only when what it shows changes.

Textual's footer recomposes whenever the active bindings change, which includes every focus
move between panes (each table brings its own hidden bindings). Recomposing costs a full layout;
under engine load that was most of a key press's latency. Here it recomposes only when the keys
it shows (or whether they are enabled) differ.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


class KobeFooter(Footer):
    _shown: tuple[tuple[str, str, bool], ...] | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        shown = tuple(
            (binding.key, binding.description, enabled)
            for _, binding, enabled, _ in screen.active_bindings.values()
            if binding.show
        )
        if shown == self._shown and self._bindings_ready:
            return
        self._shown = shown
        super().bindings_changed(screen)
