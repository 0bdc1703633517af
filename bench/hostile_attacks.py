"""The attacks of bench/hostile.py (issue 12), each run against a fresh node by a `Trial`:
it acts until `trial.deadline`, records what it checked in `trial.checks` and what it saw in
`trial.notes`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import psutil
import zmq

from marketnode.node.client import Client, ClientError, Subscriber, address_of_home
from marketnode.node.client.peer import encode_request
from marketnode.node.home.keys import KeyPair
from marketnode.node.home.layout import Home
from marketnode.node.protocol.messages import Pong
from marketnode.node.tools.e2e import (
    NODE_COMMAND,
    NODE_LOG,
    start_node_process,
    stop_node_process,
)

ANSWER_TIMEOUT_S = 2.0
MARKET = "PUNK-ETH"
OWNERS = {"honest": "0x40e57", "attacker": "0xbad", "victim": "0x3a11"}
CLI_TIMEOUT_S = 60.0


@dataclass
class Trial:
    """One attack's node and what the attack reports."""

    home: Home
    process: subprocess.Popen
    keys: dict[str, KeyPair]
    seconds: float
    deadline: float = 0.0
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cli_errors: list[str] = field(default_factory=list)
    sockets: list[zmq.Socket] = field(default_factory=list)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """A `mnode` command on this home; its stderr is searched for tracebacks."""
        done = subprocess.run(
            [*NODE_COMMAND, *args, "--home", str(self.home.path)],
            capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
        )  # fmt: skip
        self.cli_errors.append(done.stderr)
        return done

    def client(self, peer: str, timeout_s: float = 5.0) -> Client:
        return Client(address_of_home(self.home), self.keys[peer], timeout_s=timeout_s)

    def socket(self, peer: str, context: zmq.Context | None = None, **options: int) -> zmq.Socket:
        """A bare DEALER on the order socket with `peer`'s key (closed after the attack)."""
        address = address_of_home(self.home)
        sock = (context or zmq.Context.instance()).socket(zmq.DEALER)
        sock.linger = 0
        for name, value in options.items():
            sock.setsockopt(getattr(zmq, name.upper()), value)
        key = self.keys[peer]
        sock.curve_serverkey, sock.curve_publickey = address.server_key, key.public
        sock.curve_secretkey = key.secret
        sock.connect(address.orders)
        self.sockets.append(sock)
        return sock

    def node_processes(self) -> list[psutil.Process]:
        """Processes (the node and its children, alive or orphaned) that name this home."""
        home = str(self.home.path)
        every = psutil.process_iter(["cmdline"])
        return [p for p in every if any(home in part for part in p.info["cmdline"] or ())]


def analytics_children(trial: Trial) -> set[int]:
    node = psutil.Process(trial.process.pid)
    return {child.pid for child in node.children(recursive=True)}


def wait_until(condition: Callable[[], object], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


# -- the attacks -----------------------------------------------------------------------------


def oversized(trial: Trial) -> None:
    """Multipart messages of 512 frames of 512 KiB (each frame within max_message_bytes)."""
    sock = trial.socket("attacker", sndhwm=1)
    frame = zmq.Frame(b"\0" * (512 << 10))
    sent = 0
    while sent < 4 and time.monotonic() < trial.deadline:
        try:
            sock.send_multipart([frame] * 512, flags=zmq.NOBLOCK, copy=False)
            sent += 1
        except zmq.Again:
            time.sleep(0.05)
    trial.notes.append(f"{sent} messages of 256 MiB offered")


def request_flood(trial: Trial) -> None:
    """Pings, snapshots and open_orders as fast as one connection can send, up to 200k."""
    sock = trial.socket("attacker")
    bodies = [{"type": "ping"}, {"type": "snapshot", "market": MARKET}, {"type": "open_orders"}]
    payloads = [encode_request(body, ref) for ref, body in enumerate(bodies, 1)]
    sent = answered = 0
    while sent < 200_000 and time.monotonic() < trial.deadline:
        try:
            sock.send(payloads[sent % 3], zmq.NOBLOCK)
            sent += 1
        except zmq.Again:
            time.sleep(0.001)
        while sock.poll(0):
            sock.recv()
            answered += 1
    trial.notes.append(f"{sent} requests sent, {answered} answers read")


def disk_full(trial: Trial) -> None:
    """Fill the home's tmpfs, hold it full for half the attack, then free it."""
    filler = trial.home.path / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * (1 << 20))
            out.flush()
    hold_until = time.monotonic() + trial.seconds / 2
    time.sleep(max(0.0, hold_until - time.monotonic()))
    trial.checks["node alive while full"] = trial.process.poll() is None
    filler.unlink()
    freed_at = time.monotonic()
    with trial.client("attacker", timeout_s=ANSWER_TIMEOUT_S) as probe:

        def accepted() -> bool:
            order = {"op": "new", "market": MARKET, "id": int(time.time_ns()), "side": "buy",
                     "owner": OWNERS["attacker"], "price": "1", "qty": "1"}  # fmt: skip
            with contextlib.suppress(ClientError):
                reply = probe.submit([order])
                return reply.events[0].__struct_config__.tag == "accepted"
            return False

        resumed = wait_until(accepted, max(trial.deadline - freed_at, 5.0))
    trial.checks["accepts again once space returns"] = resumed


def analytics_kill(trial: Trial) -> None:
    """SIGKILL the analytics process; it must be running again (another pid) in the phase."""
    if not wait_until(lambda: analytics_children(trial), 30):
        trial.checks["analytics process found"] = False
        return
    before = analytics_children(trial)
    for pid in before:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).send_signal(signal.SIGKILL)
    restarted = wait_until(lambda: analytics_children(trial) - before, max(trial.seconds, 15.0))
    trial.checks["analytics restarted"] = restarted
    trial.notes.append(f"status: {status_of_analytics(trial)}")


def status_of_analytics(trial: Trial) -> str:
    done = trial.cli("status", "--json")
    if done.returncode:
        return f"status failed: {done.stderr.strip()[-200:]}"
    return json.dumps(json.loads(done.stdout).get("analytics"))[:200]


def killed_at_start(trial: Trial) -> None:
    """SIGKILL the node under load, start it, SIGKILL it at once: no process of it may stay."""
    trial.process.send_signal(signal.SIGKILL)
    trial.process.wait()
    trial.process = start_node_process(trial.home)
    trial.process.send_signal(signal.SIGKILL)
    trial.process.wait()
    orphans = not wait_until(lambda: not trial.node_processes(), 15)
    trial.checks["no orphaned child"] = not orphans
    for process in trial.node_processes():  # clean up what the node left
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    trial.process = start_node_process(trial.home)
    serving = wait_until(lambda: "running" in status_of_analytics(trial), 30)
    trial.checks["analytics serves after the restart"] = serving


def corrupt_store(trial: Trial) -> None:
    """Copies of the stopped home with a divergent journal entry, flipped LMDB page types, a
    binary config.toml and a damaged DuckDB file: each command refuses with a clean error."""
    stop_node_process(trial.process)
    original = trial.home
    damage_errors = [["verify"], ["book", MARKET], ["start"]]
    cases = {  # what each damage does, and the commands that must refuse it
        "divergent journal": (corrupt_journal_entry, [["verify"], ["start"]]),
        "page types": (flip_page_types, damage_errors),
        "binary config": (lambda home: home.config_path.write_bytes(b"\xff\0" * 64), damage_errors),
        "damaged duckdb": (damage_duckdb, [["stats"], ["sql", "SELECT 1"]]),
    }
    for name, (corrupt, commands) in cases.items():
        copy = Home(original.path.parent / name.replace(" ", "-"))
        shutil.copytree(original.path, copy.path, ignore=shutil.ignore_patterns("*.sock"))
        corrupt(copy)
        trial.home = copy
        for command in commands:
            if command == ["start"]:
                trial.checks[f"{name}: start refuses"] = start_refused(copy)
                continue
            done = trial.cli(*command)
            # verify's report of a divergence may take lines; an error is one line
            lines = len(done.stderr.strip().splitlines())
            clean = done.returncode != 0 and (lines == 1 or command == ["verify"])
            trial.checks[f"{name}: {command[0]} refuses cleanly"] = clean
        if (copy.path / NODE_LOG).exists():  # what the refused starts wrote
            trial.cli_errors.append((copy.path / NODE_LOG).read_text(errors="replace"))
        shutil.rmtree(copy.path)
    trial.home = original
    trial.process = start_node_process(original)


def start_refused(home: Home) -> bool:
    try:
        process = start_node_process(home)
    except RuntimeError:
        return True
    stop_node_process(process)
    return False


def corrupt_journal_entry(home: Home) -> None:
    """Rewrite the price of one journaled order in place: a valid entry, a different history."""
    import lmdb

    env = lmdb.open(str(home.store_path(home.config())), max_dbs=8, subdir=True)
    with env.begin(write=True) as txn:
        journal = env.open_db(b"journal", txn=txn)
        cursor = txn.cursor(journal)
        cursor.last()
        key, value = cursor.item()
        txn.put(key, value.replace(b"100", b"200", 1), db=journal)
    env.close()


def flip_page_types(home: Home) -> None:
    """Invert the flags of the LMDB pages after the two meta pages."""
    path = home.store_path(home.config()) / "data.mdb"
    data = bytearray(path.read_bytes())
    page = os.sysconf("SC_PAGE_SIZE")
    for number in range(2, min(len(data) // page, 12)):
        data[number * page + 10] ^= 0xFF
    path.write_bytes(bytes(data))


DUCKDB_HEADERS = 3 * 4096
"""DuckDB's file header and its two database headers; the blocks (the catalog among them) come
after. Damage where nothing reads it (a free block) would go unseen, so the blocks are all
overwritten: every open reads the catalog and must refuse in one line."""


def damage_duckdb(home: Home) -> None:
    path = home.path / home.config().analytics.file
    data = bytearray(path.read_bytes())
    data[DUCKDB_HEADERS:] = os.urandom(len(data) - DUCKDB_HEADERS)
    path.write_bytes(bytes(data))


def analytics_socket(trial: Trial) -> None:
    """Ask the analytics socket, with no key, for /etc/passwd; check the home's file modes."""
    socket_path = trial.home.analytics_endpoint.removeprefix("ipc://")
    wait_until(lambda: Path(socket_path).exists(), 30)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    trial.sockets.append(sock)
    sock.connect(trial.home.analytics_endpoint)
    query = "SELECT content FROM read_text('/etc/passwd')"
    sock.send(msgspec.msgpack.encode({"kind": "sql", "token": 1, "query": query}))
    answer = sock.recv() if sock.poll(3000) else b""
    trial.checks["no file content for a keyless request"] = b"root:" not in answer
    config = trial.home.config()
    private = [
        trial.home.store_path(config) / "data.mdb", trial.home.path / config.analytics.file,
        trial.home.peers_path(config), *trial.home.keys_path(config).rglob("*.key_secret"),
    ]  # fmt: skip
    loose = [path.name for path in private if path.exists() and path.stat().st_mode & 0o077]
    trial.checks["data files and secret keys private (0600)"] = not loose
    if loose:
        trial.notes.append(f"readable by others: {', '.join(sorted(set(loose)))}")


def slow_prometheus(trial: Trial) -> None:
    """369 connections that never finish a request; a scrape and `mnode status` still work."""
    url = json.loads(trial.home.runtime_path.read_text())["endpoints"]["prometheus"]
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    held, failed = [], 0
    for _ in range(369):
        try:
            connection = socket.create_connection((host, int(port)), timeout=5)
            connection.sendall(b"GET /metrics HTTP/1.1\r\nHost: a")
            held.append(connection)
        except OSError:
            failed += 1
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            trial.checks["scrape answered"] = response.status == 200
    except OSError:
        trial.checks["scrape answered"] = False
    trial.checks["mnode status answers"] = trial.cli("status").returncode == 0
    trial.notes.append(f"{len(held)} slow connections opened, {failed} refused or timed out")
    time.sleep(max(0.0, trial.deadline - time.monotonic()))
    for connection in held:
        connection.close()


def connection_storm(trial: Trial) -> None:
    """1,000 DEALERs (half with the attacker's key, half unknown keys) opened, then closed."""
    context = zmq.Context()
    context.max_sockets = 4096
    log_lines = len((trial.home.path / NODE_LOG).read_text().splitlines())
    storm = []
    for number in range(1000):
        if number % 2:
            public, secret = zmq.curve_keypair()
            trial.keys[f"unknown{number}"] = KeyPair(public, secret)
            storm.append(trial.socket(f"unknown{number}", context))
        else:
            storm.append(trial.socket("attacker", context))
    for sock in storm[::2]:
        sock.send(encode_request({"type": "ping"}, 1))
    answered = sum(1 for sock in storm[::2] if sock.poll(5000) and sock.recv())
    for sock in storm:
        sock.close(linger=0)
        trial.sockets.remove(sock)
    context.destroy(linger=0)
    with trial.client("attacker", timeout_s=5) as probe:
        try:
            trial.checks["a new peer's ping answered after the storm"] = probe.ping() is not None
        except ClientError:
            trial.checks["a new peer's ping answered after the storm"] = False
    time.sleep(max(0.0, trial.deadline - time.monotonic()))
    added = len((trial.home.path / NODE_LOG).read_text().splitlines()) - log_lines
    trial.checks["refusals logged at a bounded rate (< 50 lines)"] = added < 50
    trial.notes.append(f"{answered} of 500 known peers answered; node.log grew {added} lines")


def revoked_peer(trial: Trial) -> None:
    """A peer with resting sells at 900 and a market-data subscription is revoked."""
    victim = trial.client("victim")
    feed = Subscriber(address_of_home(trial.home), trial.keys["victim"], [MARKET])
    try:
        victim.submit([
            {"op": "new", "market": MARKET, "id": 9_000_000 + n, "owner": OWNERS["victim"],
             "side": "sell", "price": "900", "qty": "1"} for n in range(5)
        ])  # fmt: skip
        done = trial.cli("peers", "revoke", "victim")
        trial.notes.append(f"revoke said: {(done.stdout + done.stderr).strip()[:200]}")
        trial.checks["revoke succeeds"] = done.returncode == 0
        time.sleep(1.0)  # the node reloads its allowlist
        drained_by = time.monotonic() + 1.0  # what was published before the revocation
        while time.monotonic() < drained_by and feed.receive(timeout_ms=200) is not None:
            pass
        with contextlib.suppress(zmq.Again):  # Again: no connection left to send on
            victim.socket.send(encode_request({"type": "ping"}, 1), zmq.NOBLOCK)
        heard = iter(lambda: victim.receive(timeout_ms=3000), None)  # its cancels' reports too
        trial.checks["revoked peer's ping unanswered"] = not any(type(m) is Pong for m in heard)
        trial.checks["revoked peer gets no market data"] = feed.receive(timeout_ms=2000) is None
        with trial.client("honest") as reader:
            asks = reader.snapshot(MARKET).asks
        trial.checks["its resting orders cancelled"] = all(
            level.price != "900" for level in asks
        )
    finally:
        victim.close()
        feed.close()


def export_unwritable(trial: Trial) -> None:
    """`mnode export parquet` to an unwritable path and onto a file: clean errors, nothing dies."""
    wait_until(lambda: "running" in status_of_analytics(trial), 30)
    children = analytics_children(trial)
    a_file = trial.home.path / "a-file"
    a_file.write_text("not a folder\n")
    for target in ("/proc/hostile-export", str(a_file)):
        done = trial.cli("export", "parquet", target)
        one_line = done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
        trial.checks[f"export to {Path(target).name} refused in one line"] = one_line
    trial.checks["node alive"] = trial.process.poll() is None
    trial.checks["analytics process survived"] = bool(children) and children <= set(
        analytics_children(trial)
    )
