"""Who may read a home: its data files are the owner's only, and a start says what is not.

The journal, the books, the analytics store and the allowlist name every owner's orders and
trades, and the keys folder holds the secrets that make a peer or the operator: files are made
0600 and folders 0700 (`keep_new_files_private` for a process whose libraries create files as
the umask says: LMDB's, DuckDB's and its write-ahead log). `security_problems` lists what a start
finds open: a secret key another user can read (the start refuses it unless told to go on: that
user could act as the node, the operator or a peer), a data file or folder others can read, and
an endpoint reachable from other machines with CURVE off (anyone there could trade for any
owner, or stop the node).
"""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .config import NodeConfig

PRIVATE_FILE_MODE = 0o600
PRIVATE_FOLDER_MODE = 0o700
PRIVATE_UMASK = 0o077
"""New files 0600 and folders 0700, whatever the library creating them asks for."""
OTHERS = stat.S_IRWXG | stat.S_IRWXO
LOCAL_TRANSPORTS = ("ipc://", "inproc://")
LOOPBACK_NAMES = ("localhost",)
SECRET_KEY_SUFFIX = ".key_secret"
DATA_FILES = ("data.mdb", "lock.mdb", "writer.lock")
"""The store folder's files (LMDB's two and the writer lock)."""


@dataclass(frozen=True)
class SecurityProblem:
    """One thing a start finds open to others; `refuses`: the start stops for it unless the
    operator says to go on (`mnode start --allow-insecure-keys`)."""

    message: str
    refuses: bool = False


def keep_new_files_private() -> None:
    """Make this process create files 0600 and folders 0700 (its umask 077): for the node's
    and the analytics process's libraries, which create their files as the umask says."""
    os.umask(PRIVATE_UMASK)


def write_private(path: Path, text: str) -> None:
    """Write a new file of the home, readable by its owner only (0600 whatever the umask)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    os.fchmod(descriptor, PRIVATE_FILE_MODE)
    with open(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def security_problems(home_path: Path, config: NodeConfig) -> list[SecurityProblem]:
    """What is open to other users or machines in a home about to be served, worst first."""
    keys = home_path / config.security.keys
    problems = [
        SecurityProblem(
            f"{path}: a secret key readable by other users (mode {_mode(path):04o}); "
            f"chmod 600 it, or start with --allow-insecure-keys",
            refuses=True,
        )
        for path in sorted(keys.rglob(f"*{SECRET_KEY_SUFFIX}"))
        if _open_to_others(path)
    ]
    store = home_path / config.store.path
    analytics = home_path / config.analytics.file
    paths = [
        home_path,
        keys,
        store,
        *(store / name for name in DATA_FILES),
        analytics,
        analytics.with_name(f"{analytics.name}.wal"),
        home_path / config.security.peers_file,
    ]
    problems += [
        SecurityProblem(
            f"{path}: readable by other users (mode {_mode(path):04o}); "
            f"chmod {'700' if path.is_dir() else '600'} it"
        )
        for path in paths
        if path.exists() and _open_to_others(path)
    ]
    if not config.security.curve:
        endpoints = vars(config.endpoints)
        problems += [
            SecurityProblem(
                f"{name} endpoint {endpoint} is reachable from other machines with CURVE off "
                "([security] curve = false): anyone there may act for any owner"
            )
            for name, endpoint in endpoints.items()
            if not is_loopback_endpoint(endpoint)
        ]
    return problems


def is_loopback_endpoint(endpoint: str) -> bool:
    """Only this machine can reach it: ipc/inproc, or tcp on a loopback address."""
    if endpoint.startswith(LOCAL_TRANSPORTS):
        return True
    host = endpoint.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name: may be any address
        return False


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _open_to_others(path: Path) -> bool:
    return bool(_mode(path) & OTHERS)
