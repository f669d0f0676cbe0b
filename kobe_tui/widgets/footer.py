"""The footer, rebuilt only when what it shows changes, with only the keys that fit whole.

Textual's footer recomposes whenever the active bindings change, which includes every focus
move between panes (each table brings its own hidden bindings). Recomposing costs a full layout;
under engine load that was most of a key press's latency. Here it recomposes only when the keys
it shows (or whether they are enabled), or the terminal's width, differ.

Textual's footer also lays every key out in a row and crops the row at the screen's edge, so at
80 columns a key's label could be cut mid-word (``C Cancel`` for ``C Cancel all``). Here a key
that does not fit whole is left out, with every key after it: the bindings' order says what
matters most (all of them are in the help, ``?``, and the palette, ``ctrl+p``).
"""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


def key_width(key: FooterKey) -> int:
    """The cells a compact footer key takes: its key, a space, its label, a space after it."""
    return cell_len(key.key_display) + 1 + cell_len(key.description) + 1


class KobeFooter(Footer):
    _shown: tuple[object, ...] | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        shown = tuple(
            (binding.key, binding.description, enabled)
            for _, binding, enabled, _ in screen.active_bindings.values()
            if binding.show
        )
        shown += (self.app.size.width, self.show_command_palette)
        if shown == self._shown and self._bindings_ready:
            return
        self._shown = shown
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        keys = list(super().compose())
        room = self.app.size.width + 1  # the last key's trailing space may touch the edge
        room -= sum(key_width(k) for k in keys if k.has_class("-command-palette"))
        for key in keys:
            if isinstance(key, FooterKey) and not key.has_class("-command-palette"):
                room -= key_width(key)
                if room < 0:
                    continue  # this one and every one after it: whole keys only
            yield key
