"""The footer: every key with its description, or with its short label when the descriptions
would not all fit the terminal's width, so no key is ever cut off or hidden under the command
palette's key (which Textual's footer docks at the right edge, over whatever runs past it)."""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

KEY_CELLS = 2
"""Cells a key takes beside its key and label text in the compact footer: the space between
them and the margin after."""
PALETTE_BORDER_CELLS = 1
"""The rule left of the command palette's key."""


class KeyFooter(Footer):
    """Textual's footer, falling back to `short_labels` (action -> label) when narrow."""

    def __init__(self, short_labels: dict[str, str]) -> None:
        super().__init__(compact=True)
        self.short_labels = short_labels
        self.short = False
        self.composed_keys: tuple | None = None
        """The keys the footer was last built with (`_keys_shown`)."""

    def bindings_changed(self, screen: Screen) -> None:
        """Textual rebuilds the footer whenever the focus moves (twice on a panel switch: the
        tab, then its table), 10-20 ms of CPU each on a busy machine, with the key that moved
        it waiting; here only when the keys it shows would change."""
        unchanged = self._keys_shown(screen) == self.composed_keys
        if self._bindings_ready and self.is_attached and screen is self.screen and unchanged:
            return
        super().bindings_changed(screen)

    @staticmethod
    def _keys_shown(screen: Screen) -> tuple:
        return tuple((binding.key, binding.action, binding.description, enabled, tooltip)
                     for _, binding, enabled, tooltip in screen.active_bindings.values()
                     if binding.show)  # fmt: skip

    def compose(self) -> ComposeResult:
        self.composed_keys = self._keys_shown(self.screen) if self._bindings_ready else None
        self.short = self._width_needed() > self.app.size.width
        for widget in super().compose():
            if self.short and isinstance(widget, FooterKey):
                widget.description = self.short_labels.get(widget.action, widget.description)
            yield widget

    async def on_resize(self, event: events.Resize) -> None:
        """A terminal narrowed or widened past the width the descriptions need: redrawn."""
        if self._bindings_ready and self.short != (self._width_needed() > event.size.width):
            await self.recompose()

    def _width_needed(self) -> int:
        """Cells the footer takes with every key's whole description."""
        bindings = self.screen.active_bindings
        shown: dict[str, Binding] = {}
        for _, binding, _, _ in bindings.values():
            if binding.show:
                shown.setdefault(binding.action, binding)  # one key per action, as drawn
        keys = list(shown.values())
        palette = bindings.get(self.app.COMMAND_PALETTE_BINDING)
        with_palette = (
            palette is not None and self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE
        )
        if with_palette:
            keys.append(palette[1])
        cells = sum(
            cell_len(self.app.get_key_display(key)) + cell_len(key.description) + KEY_CELLS
            for key in keys
        )
        return cells + (PALETTE_BORDER_CELLS if with_palette else 0)
