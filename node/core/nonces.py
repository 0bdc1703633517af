"""The nonces each signed order's owner has used: a nonce is good once per owner, for ever
(docs/signing.md §6), so the engine keeps them, a replay of the journal rebuilds them, and the
state hash covers them.

An owner's nonces are kept as a floor (every nonce below it is used) and the used ones above
it. Signers that count up from their minimum nonce, the simplest way to sign, keep the set
above the floor empty: a nonce equal to the floor raises the floor instead, past any used
ones it then reaches.
"""

from __future__ import annotations


class NonceBook:
    """Used nonces by owner, and the owners changed since the last `take_changes`."""

    __slots__ = ("above", "changed", "floor")

    def __init__(self) -> None:
        self.floor: dict[str, int] = {}
        self.above: dict[str, set[int]] = {}
        self.changed: set[str] = set()

    def is_used(self, owner: str, nonce: int) -> bool:
        if nonce < self.floor.get(owner, 0):
            return True
        above = self.above.get(owner)
        return above is not None and nonce in above

    def use(self, owner: str, nonce: int) -> None:
        """Record `nonce` as used by `owner` (it must not be used yet)."""
        floor = self.floor.get(owner, 0)
        self.changed.add(owner)
        if nonce != floor:
            self.above.setdefault(owner, set()).add(nonce)
            return
        self._set_floor(owner, floor + 1)

    def raise_floor(self, owner: str, floor: int) -> None:
        """Make every nonce of `owner` below `floor` used (a raised minimum nonce): only
        upward, so a `floor` at or below the owner's leaves it as it is."""
        if floor <= self.floor.get(owner, 0):
            return
        self.changed.add(owner)
        above = self.above.get(owner)
        if above:
            above.difference_update([nonce for nonce in above if nonce < floor])
        self._set_floor(owner, floor)

    def _set_floor(self, owner: str, floor: int) -> None:
        """`owner`'s floor at `floor`, moved past the used nonces right above it (they are
        below it then, so no longer kept one by one)."""
        above = self.above.get(owner)
        if above is not None:
            while floor in above:
                above.remove(floor)
                floor += 1
            if not above:
                del self.above[owner]
        self.floor[owner] = floor

    def merge(self, owner: str, floor: int, above: list[int]) -> None:
        """Make used every nonce another node's book holds used for `owner` (a moved market's,
        node/core/moving.py): the floor only upward, each of `above` not used here yet."""
        self.raise_floor(owner, floor)
        for nonce in above:
            if not self.is_used(owner, nonce):
                self.use(owner, nonce)

    def holds(self, owner: str, floor: int, above: list[int]) -> bool:
        """Whether every nonce below `floor` and each of `above` is used by `owner` here."""
        own_floor = self.floor.get(owner, 0)
        below = range(own_floor, floor)
        if len(below) > len(self.above.get(owner, ())):
            return False
        return all(self.is_used(owner, nonce) for nonce in (*below, *above))

    def state_of(self, owner: str) -> tuple[int, list[int]]:
        """The owner's floor and its used nonces above it, in order."""
        return self.floor.get(owner, 0), sorted(self.above.get(owner, ()))

    def owners(self) -> list[str]:
        """Every owner with a used nonce, in order."""
        return sorted(self.floor.keys() | self.above.keys())

    def restore(self, owner: str, floor: int, above: list[int]) -> None:
        if floor:
            self.floor[owner] = floor
        if above:
            self.above[owner] = set(above)

    def take_changes(self) -> set[str]:
        changed, self.changed = self.changed, set()
        return changed
