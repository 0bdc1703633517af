"""The peer allowlist: which CURVE keys may connect, and for which owners they may act.

It lives in the home as JSON (`[security] peers_file`), written whole and renamed into place by
`mnode peers …`, so a reader never sees half a file. The running node reloads it when its
modification time changes: a new peer gets in and a revoked one is refused without a restart.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..core.markets import ConfigError
from .keys import is_z85_key
from .permissions import write_private

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass(frozen=True)
class Peer:
    """A registered peer. A relayer may act for any owner; others only for `owners`."""

    name: str
    public_key: str
    owners: tuple[str, ...] = ()
    relayer: bool = False
    cancel_on_disconnect: bool = False
    disabled: bool = False

    def may_act_for(self, owner: str) -> bool:
        return self.relayer or owner in self.owners

    def as_record(self) -> dict:
        """The peer as JSON-ready data (owners as a list)."""
        return {**asdict(self), "owners": list(self.owners)}


@dataclass(frozen=True)
class Allowlist:
    """An immutable view of the registered peers; replaced whole on every reload."""

    peers: tuple[Peer, ...] = ()
    by_key: dict[str, Peer] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_key.update({peer.public_key: peer for peer in self.peers})

    def named(self, name: str) -> Peer | None:
        return next((peer for peer in self.peers if peer.name == name), None)

    def with_peer(self, peer: Peer) -> Allowlist:
        if self.named(peer.name):
            raise ConfigError(f"peer {peer.name!r} exists already; revoke it first")
        if peer.public_key in self.by_key:
            other = self.by_key[peer.public_key].name
            raise ConfigError(f"that public key is registered already, as peer {other!r}")
        return Allowlist((*self.peers, peer))

    def without(self, name: str) -> Allowlist:
        if not self.named(name):
            raise ConfigError(f"no peer named {name!r}")
        return Allowlist(tuple(peer for peer in self.peers if peer.name != name))

    def with_disabled(self, name: str, disabled: bool) -> Allowlist:
        if not self.named(name):
            raise ConfigError(f"no peer named {name!r}")
        return Allowlist(
            tuple(replace(p, disabled=disabled) if p.name == name else p for p in self.peers)
        )


def check_peer(peer: Peer) -> Peer:
    if not peer.name or not set(peer.name) <= NAME_CHARS or len(peer.name) > 64:
        raise ConfigError(f"peer name {peer.name!r}: use 1 to 64 letters, digits, '-', '_' or '.'")
    if not is_z85_key(peer.public_key):
        raise ConfigError(
            f"peer {peer.name!r}: public key must be 40 Z85 characters (a CURVE public key), "
            f"got {peer.public_key!r}"
        )
    if not peer.relayer and not peer.owners:
        raise ConfigError(f"peer {peer.name!r}: give at least one --owner, or --relayer")
    return peer


def load_allowlist(path: Path) -> Allowlist:
    """Read the allowlist; a missing file is an empty list (nobody gets in)."""
    try:
        document = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return Allowlist()
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: cannot read the peer allowlist: {error}") from None
    try:
        peers = tuple(
            check_peer(Peer(**{**entry, "owners": tuple(entry.get("owners", ()))}))
            for entry in document["peers"]
        )
    except (KeyError, TypeError) as error:
        raise ConfigError(f"{path}: not a peer allowlist: {error}") from None
    return Allowlist(peers)


def save_allowlist(path: Path, allowlist: Allowlist) -> None:
    """Write the whole file beside the old one (0600: it names every peer's owners), then
    rename it into place."""
    document = {"peers": [peer.as_record() for peer in allowlist.peers]}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_private(temporary, json.dumps(document, indent=2) + "\n")
    os.replace(temporary, path)


class AllowlistFile:
    """The node's live allowlist: `current` is read freely, `refresh()` reloads on change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self.current = Allowlist()
        self.error: str | None = None
        self.refresh()

    def refresh(self) -> bool:
        """Reload if the file changed; True if it did. A broken file keeps the previous list."""
        with self._lock:
            try:
                stat = self.path.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp == self._stamp and self._stamp is not None:
                return False
            try:
                self.current = load_allowlist(self.path)
                self.error = None
            except ConfigError as error:
                self.error = str(error)
            self._stamp = stamp
            return self.error is None
