"""CURVE key pairs of a node home: the server's and the operator's, and peers' own.

Key files are pyzmq's certificate format (`NAME.key` public, `NAME.key_secret` both halves);
secret files are made mode 0600, since `zmq.auth.create_certificates` leaves them as the umask
says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq.auth

from ..core.markets import ConfigError

SERVER = "server"
OPERATOR = "operator"
PEERS_FOLDER = "peers"


class KeyFileError(ConfigError):
    """A key file that is missing or unreadable; one line for the operator."""


@dataclass(frozen=True)
class KeyPair:
    public: bytes
    secret: bytes

    @property
    def public_text(self) -> str:
        return self.public.decode("ascii")


def create_key_pair(folder: Path, name: str) -> KeyPair:
    """Write NAME.key and NAME.key_secret (0600) in `folder`; never overwrite a key."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (folder / f"{name}.key_secret").exists():
        raise KeyFileError(f"{folder / name}.key_secret: exists already; not overwritten")
    _, secret_file = zmq.auth.create_certificates(folder, name)
    os.chmod(secret_file, 0o600)
    return load_key_pair(Path(secret_file))


def load_key_pair(secret_file: Path) -> KeyPair:
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except (OSError, ValueError) as error:
        raise KeyFileError(f"{secret_file}: cannot read a secret key: {error}") from None
    if secret is None:
        raise KeyFileError(f"{secret_file}: holds no secret key (a .key_secret file is needed)")
    return KeyPair(public, secret)


def load_public_key(public_file: Path) -> bytes:
    try:
        public, _ = zmq.auth.load_certificate(public_file)
    except (OSError, ValueError) as error:
        raise KeyFileError(f"{public_file}: cannot read a public key: {error}") from None
    return public


def is_z85_key(text: str) -> bool:
    """A CURVE public key as 40 Z85 characters."""
    if len(text) != 40:
        return False
    try:
        return len(zmq.utils.z85.decode(text.encode("ascii"))) == 32
    except (ValueError, UnicodeEncodeError):
        return False
