"""A client of the node's sockets written from docs/protocol.md, and a driver for a node process.

Only pyzmq (with CURVE) and msgspec's MessagePack: nothing of marketnode is imported. The node
is run as the README's tour runs it: `mnode init`, `mnode peers add`, the home's config.toml
edited, `mnode start` in a subprocess, the endpoints and server key read from the home's
node.json (docs/protocol.md §1, §2), `mnode stop` at the end.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.auth

VERSION = 1
encode = msgspec.msgpack.encode
decode = msgspec.msgpack.decode

#: How long to wait for anything the node owes us (generous: a busy 2-core machine).
TIMEOUT_S = 10.0
#: How long to listen when checking that nothing comes (a refused key, a dropped message).
QUIET_S = 1.5


def mnode_command() -> str:
    """The `mnode` executable of this Python environment (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "mnode"
    if beside.exists():
        return str(beside)
    found = shutil.which("mnode")
    if found is None:
        raise RuntimeError("no mnode command: install the project (pip install -e .)")
    return found


# -- decimal text (§3) -----------------------------------------------------------------------------

_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


def is_canonical_decimal(text: Any) -> bool:
    """§3: digits, at most one `.`, no exponent, sign or spaces, at most 40 characters; the node
    sends no trailing zeros after the point and no trailing `.`."""
    if not isinstance(text, str) or len(text) > 40 or not _DECIMAL.fullmatch(text):
        return False
    return not ("." in text and text.endswith("0"))


# -- config.toml editing ---------------------------------------------------------------------------


def set_config_key(text: str, section: str, key: str, literal: str) -> str:
    """Set `key = literal` in `[section]` of a config.toml text (adding the key or the table)."""
    lines = text.splitlines()
    header = f"[{section}]"
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == header)
    except StopIteration:
        return text.rstrip("\n") + f"\n\n{header}\n{key} = {literal}\n"
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
        len(lines),
    )
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for i in range(start + 1, end):
        if pattern.match(lines[i]):
            lines[i] = f"{key} = {literal}"
            break
    else:
        lines.insert(start + 1, f"{key} = {literal}")
    return "\n".join(lines) + "\n"


@dataclass
class MarketSpec:
    """A `[[markets]]` table of config.toml (engine.md, Markets); None leaves a key out."""

    symbol: str
    tick_size: str = "0.01"
    lot_size: str = "1"
    min_qty: str | None = "1"
    max_qty: str | None = "500"
    max_notional: str | None = "40000"
    stp: str | None = "cancel_newest"

    def toml(self) -> str:
        base, quote = self.symbol.split("-")
        text = f'\n[[markets]]\nsymbol = "{self.symbol}"\nbase = "{base}"\nquote = "{quote}"\n'
        for key in ("tick_size", "lot_size", "min_qty", "max_qty", "max_notional", "stp"):
            value = getattr(self, key)
            if value is not None:
                text += f'{key} = "{value}"\n'
        return text


@dataclass
class PeerSpec:
    name: str
    owners: tuple[str, ...] = ()
    relayer: bool = False
    cancel_on_disconnect: bool = False

    def args(self, public_key: str) -> list[str]:
        args = ["peers", "add"]
        for owner in self.owners:
            args += ["--owner", owner]
        if self.relayer:
            args.append("--relayer")
        if self.cancel_on_disconnect:
            args.append("--cancel-on-disconnect")
        # `--` ends the options: a Z85 key may start with `-`
        return [*args, "--", self.name, public_key]


# -- the node process ------------------------------------------------------------------------------


@dataclass
class Node:
    """A node in a temporary home, run with the `mnode` command line."""

    root: Path
    peers: list[PeerSpec] = field(default_factory=list)
    settings: dict[tuple[str, str], str] = field(default_factory=dict)
    markets: list[MarketSpec] = field(default_factory=list)
    process: subprocess.Popen | None = None
    info: dict[str, Any] = field(default_factory=dict)
    context: zmq.Context = field(default_factory=zmq.Context)
    _sockets: list[zmq.Socket] = field(default_factory=list)
    #: each peer's key pair, made here (§2, the client: "your own ... whose public half you sent
    #: to the operator") and registered with `mnode peers add NAME PUBLIC_KEY`
    keys: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "home"

    def mnode(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        if "--" in args:  # options before the `--` that ends them
            cut = args.index("--")
            args = (*args[:cut], "--home", str(self.home), *args[cut:])
        else:
            args = (*args, "--home", str(self.home))
        done = subprocess.run(
            [mnode_command(), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"mnode {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
        return done

    def create(self) -> None:
        subprocess.run(
            [mnode_command(), "init", str(self.home)], check=True, capture_output=True, timeout=60
        )
        for peer in self.peers:
            public, secret = zmq.curve_keypair()
            self.keys[peer.name] = (public, secret)
            self.mnode(*peer.args(public.decode("ascii")))
        config = self.home / "config.toml"
        text = config.read_text()
        # §1: a port of `*` makes the node pick a free one; no analytics process for these checks.
        for name in ("orders", "market_data", "admin"):
            text = set_config_key(text, "endpoints", name, '"tcp://127.0.0.1:*"')
        text = set_config_key(text, "analytics", "enabled", "false")
        for (section, key), literal in self.settings.items():
            text = set_config_key(text, section, key, literal)
        text += "".join(market.toml() for market in self.markets)
        config.write_text(text)

    def start(self) -> None:
        with (
            open(self.root / "start.out", "w") as log_out,
            open(self.root / "start.err", "w") as log_err,
        ):  # the child keeps its own copies of the descriptors
            self.process = subprocess.Popen(
                [mnode_command(), "start", "--home", str(self.home)],
                stdout=log_out,
                stderr=log_err,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        node_json = self.home / "node.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mnode start exited {self.process.returncode}:\n"
                    + (self.root / "start.err").read_text()
                )
            if node_json.exists():
                try:
                    self.info = json.loads(node_json.read_text())
                except ValueError:  # being written
                    self.info = {}
                if self.info.get("endpoints"):
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("the node wrote no node.json within 60 s")
        # Ready when a registered peer's ping (or, CURVE off, anyone's) is answered.
        probe = self.peer(self.peers[0].name) if self.curve else self.anonymous()
        deadline = time.monotonic() + 60
        while True:
            probe.send({"v": 1, "type": "ping", "ref": "ready"})
            if probe.sock.poll(1000):
                probe.recv()
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the node does not answer a ping")
        probe.close()

    def stop(self) -> None:
        """`mnode stop` (the README's tour), then wait for the process this driver started."""
        for sock in self._sockets:
            if not sock.closed:
                sock.close(linger=0)
        if self.process is not None and self.process.poll() is None:
            self.mnode("stop", check=False)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.terminate()  # the process this driver started, by its handle
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        # destroy, not term: a socket a failed test left open (a monitor) must not hang it
        self.context.destroy(linger=0)

    # -- connection details (§1, §2) ---------------------------------------------------------

    @property
    def curve(self) -> bool:
        return bool(self.info.get("curve", True))

    @property
    def server_key(self) -> bytes:
        return self.info["server_public_key"].encode("ascii")

    def endpoint(self, name: str) -> str:
        return self.info["endpoints"][name]

    def key_pair(self, peer: str) -> tuple[bytes, bytes]:
        return self.keys[peer]

    def _socket(self, kind: int, endpoint: str, keys: tuple[bytes, bytes] | None) -> zmq.Socket:
        sock = self.context.socket(kind)
        sock.linger = 0
        if keys is not None:
            sock.curve_serverkey = self.server_key
            sock.curve_publickey, sock.curve_secretkey = keys
        sock.connect(endpoint)
        self._sockets.append(sock)
        return sock

    def peer(self, name: str) -> Peer:
        """A DEALER on the order socket with a registered peer's key pair."""
        return Peer(self._socket(zmq.DEALER, self.endpoint("orders"), self.key_pair(name)), name)

    def peer_with_keys(self, public: bytes, secret: bytes, server_key: bytes | None = None) -> Peer:
        sock = self.context.socket(zmq.DEALER)
        sock.linger = 0
        sock.curve_serverkey = server_key or self.server_key
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.connect(self.endpoint("orders"))
        self._sockets.append(sock)
        return Peer(sock, "unregistered")

    def anonymous(self) -> Peer:
        """CURVE off: a DEALER without any CURVE option (§2, CURVE off)."""
        return Peer(self._socket(zmq.DEALER, self.endpoint("orders"), None), "anon")

    def feed(self, name: str | None) -> Feed:
        keys = self.key_pair(name) if name is not None else None
        return Feed(self._socket(zmq.SUB, self.endpoint("market_data"), keys))

    def admin(self) -> Admin:
        keys = zmq.auth.load_certificate(self.home / "keys" / "operator.key_secret")
        keys = keys if self.curve else None
        return Admin(self._socket(zmq.DEALER, self.endpoint("admin"), keys))


# -- the order socket ------------------------------------------------------------------------------


class NoAnswer(AssertionError):
    pass


class Peer:
    """A DEALER on the order socket: one frame per message, MessagePack maps (§3)."""

    def __init__(self, sock: zmq.Socket, name: str) -> None:
        self.sock = sock
        self.name = name
        self.reports: list[dict] = []
        self._refs = itertools.count(1)

    def close(self) -> None:
        self.sock.close(linger=0)

    def send(self, message: Any) -> None:
        self.sock.send(encode(message))

    def send_raw(self, payload: bytes) -> None:
        self.sock.send(payload)

    def send_frames(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def recv_raw(self, timeout: float = TIMEOUT_S) -> list[bytes]:
        if not self.sock.poll(int(timeout * 1000)):
            raise NoAnswer(f"{self.name}: nothing within {timeout} s")
        return self.sock.recv_multipart()

    def recv(self, timeout: float = TIMEOUT_S) -> dict:
        """The next message of any kind (answer or report)."""
        frames = self.recv_raw(timeout)
        assert len(frames) == 1, f"§3: the node sends one frame per message, got {frames!r}"
        message = decode(frames[0])
        # §3: every payload is a map with string keys carrying `v` 1 and a str `type`.
        assert isinstance(message, dict), message
        assert all(isinstance(key, str) for key in message), message
        assert message.get("v") == 1 and type(message.get("v")) is int, message
        assert isinstance(message.get("type"), str), message
        return message

    def answer(self, timeout: float = TIMEOUT_S) -> dict:
        """The next answer; reports met on the way are kept in `self.reports`."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.0, deadline - time.monotonic()))
            if message.get("type") == "report":
                self.reports.append(message)
                continue
            return message

    def request(self, message: dict, timeout: float = TIMEOUT_S) -> dict:
        self.send(message)
        return self.answer(timeout)

    def ref(self) -> str:
        return f"{self.name}-{next(self._refs)}"

    def ping(self, ref: Any = None) -> dict:
        ref = self.ref() if ref is None else ref
        answer = self.request({"v": 1, "type": "ping", "ref": ref})
        assert answer == {"type": "pong", "v": 1, "ref": ref}, answer
        return answer

    def submit(self, cmds: list, ref: Any = None) -> dict:
        ref = self.ref() if ref is None else ref
        answer = self.request({"v": 1, "type": "submit", "cmds": cmds, "ref": ref})
        assert answer.get("type") == "reply" and answer.get("ref") == ref, answer
        return answer

    def snapshot(self, market: str) -> dict:
        ref = self.ref()
        answer = self.request({"v": 1, "type": "snapshot", "market": market, "ref": ref})
        assert answer.get("type") == "snapshot" and answer.get("ref") == ref, answer
        return answer

    def open_orders(self, owner: Any = None, **extra: Any) -> dict:
        ref = self.ref()
        message = {"v": 1, "type": "open_orders", "ref": ref, **extra}
        if owner is not None:
            message["owner"] = owner
        return self.request(message)

    def wait_reports(self, count: int = 1, timeout: float = TIMEOUT_S) -> list[dict]:
        """Read until `count` reports are kept (answers met meanwhile are an error)."""
        deadline = time.monotonic() + timeout
        while len(self.reports) < count:
            message = self.recv(max(0.0, deadline - time.monotonic()))
            assert message.get("type") == "report", f"an answer nobody asked for: {message}"
            self.reports.append(message)
        return self.reports

    def reports_before_pong(self) -> list[dict]:
        """Every report that arrives before the answer to a new ping (a barrier, §8/§9)."""
        before = len(self.reports)
        self.ping()
        return self.reports[before:]


def new(
    market: str, id: Any, owner: str, side: str, price: Any = None, qty: Any = "1", **kw
) -> dict:
    cmd = {"op": "new", "market": market, "id": id, "owner": owner, "side": side, "qty": qty}
    if price is not None:
        cmd["price"] = price
    cmd.update(kw)
    return cmd


def cancel(market: str, id: Any, owner: str, **kw) -> dict:
    return {"op": "cancel", "market": market, "id": id, "owner": owner, **kw}


def replace(market: str, id: Any, owner: str, **kw) -> dict:
    return {"op": "replace", "market": market, "id": id, "owner": owner, **kw}


def answers(reply: dict) -> list[dict]:
    """The `accepted`/`rejected` events of a reply, one per command (§6)."""
    return [e for e in reply["events"] if e["event"] in ("accepted", "rejected")]


def by_command(reply: dict) -> list[list[dict]]:
    """The reply's events cut at each answer: [answer, its events...] per command (§6)."""
    groups: list[list[dict]] = []
    for event in reply["events"]:
        if event["event"] in ("accepted", "rejected"):
            groups.append([event])
        else:
            assert groups, f"an event before any answer: {reply}"
            groups[-1].append(event)
    return groups


# -- market data -----------------------------------------------------------------------------------


class Feed:
    """A SUB on the market-data socket: two frames, topic and payload (§11)."""

    def __init__(self, sock: zmq.Socket) -> None:
        self.sock = sock
        self.kept: list[tuple[bytes, dict]] = []

    def subscribe(self, topic: bytes) -> None:
        self.sock.subscribe(topic)

    def recv(self, timeout: float = TIMEOUT_S) -> tuple[bytes, dict]:
        if not self.sock.poll(int(timeout * 1000)):
            raise NoAnswer(f"no market data within {timeout} s")
        frames = self.sock.recv_multipart()
        assert len(frames) == 2, f"§11: two frames, topic then payload; got {frames!r}"
        return frames[0], decode(frames[1])

    def next(self, topic: bytes, timeout: float = TIMEOUT_S) -> dict:
        """The next message of one topic (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            got, payload = self.recv(max(0.0, deadline - time.monotonic()))
            if got == topic:
                return payload

    def sync(self, peer: Peer, owner: str, market: str = "SYNC-ETH") -> None:
        """Make sure this SUB's earlier subscriptions are live (§11: a subscription takes effect a
        moment after connecting): subscribe to a scratch market too, and change that market
        until one of its messages arrives. Subscriptions travel in order, so the earlier ones
        are active once the scratch market's data comes."""
        topic = f"md.{market}.".encode()
        self.subscribe(topic)
        deadline = time.monotonic() + 30
        for n in itertools.count():
            ident = f"sync-{id(self)}-{n}"
            peer.submit([new(market, ident, owner, "buy", "1", "1")])
            peer.submit([cancel(market, ident, owner)])
            until = time.monotonic() + 0.5
            while time.monotonic() < until:
                if self.sock.poll(100):
                    got, _ = self.recv()
                    if got == topic:
                        self.drain(topic)
                        self.unsubscribe(topic)
                        return
            if time.monotonic() > deadline:
                raise NoAnswer("the market-data subscription never became active")

    def drain(self, topic: bytes) -> None:
        """Read the scratch market's messages that are already here."""
        while self.sock.poll(200):
            self.recv()

    def unsubscribe(self, topic: bytes) -> None:
        self.sock.unsubscribe(topic)


# -- the admin socket (§13) ------------------------------------------------------------------------


class Admin:
    def __init__(self, sock: zmq.Socket) -> None:
        self.sock = sock

    def __call__(self, cmd: str, **kw: Any) -> dict:
        self.sock.send(encode({"v": 1, "type": "admin", "cmd": cmd, "ref": cmd, **kw}))
        if not self.sock.poll(int(TIMEOUT_S * 1000)):
            raise NoAnswer(f"admin {cmd}: no answer")
        reply = decode(self.sock.recv())
        assert reply.get("ok") is True, reply
        return reply["result"]


def poll_until(check, timeout: float = TIMEOUT_S, interval: float = 0.05, what: str = "") -> Any:
    """Call `check` until it returns something true; that value, or AssertionError at the end."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or check}")
        time.sleep(interval)


def standard_markets(prefix: str, count: int, **kw: str) -> list[MarketSpec]:
    """`count` PUNK-ETH-like markets, P01-ETH, P02-ETH, ... (each test trades in its own)."""
    return [MarketSpec(f"{prefix}{i:02d}-ETH", **kw) for i in range(1, count + 1)]


class MarketPool:
    """Hands each test a market of its own, so tests of a module sharing a node do not meet."""

    def __init__(self, symbols: list[str]) -> None:
        self._free = list(symbols)

    def take(self) -> str:
        assert self._free, "the module's node has no market left: declare more"
        return self._free.pop(0)
