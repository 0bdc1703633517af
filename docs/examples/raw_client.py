"""A marketnode client from scratch: pyzmq and msgspec only, following docs/protocol.md.

It plays two registered peers in one market and follows that market's data feed:

  maker  checks its key with a ping (like any request, it also makes this connection the
         one its execution reports come to), rests a sell order, receives the fill as an
         execution report, lists its open orders, replaces the order twice (moving it, then
         reducing it in place), cancels it, and cancels it once more to see a reject;
  taker  sends a buy that crosses the maker's order;
  md     keeps a level-2 book of the market from a snapshot plus the market-data messages,
         detects sequence gaps and node restarts (a new `run`) and resynchronises from a new
         snapshot.

    python docs/examples/raw_client.py \\
        --orders tcp://127.0.0.1:7701 --market-data tcp://127.0.0.1:7702 \\
        --server-key HOME/keys/server.key \\
        --maker-key HOME/keys/peers/alice.key_secret --maker-owner 0xa11ce \\
        --taker-key HOME/keys/peers/bob.key_secret --taker-owner 0xb0b

`--server-key` takes the server's public key file or its 40 Z85 characters (as printed by
`mnode start`; write `--server-key=KEY` when the key starts with `-`). With `--check` it only
connects with the maker's key and pings. `--drop-md N` ignores the N-th market-data message
received, as if the network had lost it, to show the gap detection and resynchronisation at
work.

Every message is printed on one line: `WHO -> {...}` sent, `WHO <- {...}` received, where WHO is
maker, taker or md; lines starting with `#` are the client's own notes.
Exit status: 0 done, 2 a key was refused or the node did not answer in time, 3 an answer was
not the expected one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

VERSION = 1
encode = msgspec.msgpack.encode
decode = msgspec.msgpack.decode


class NoAnswer(Exception):
    """The node refused a key, or did not answer within the time-out (exit status 2)."""


class Unexpected(Exception):
    """The node answered, but not as this session expects (exit status 3)."""


def show(who: str, arrow: str, message: Any) -> None:
    print(f"{who:<5} {arrow} {json.dumps(message, separators=(',', ':'))}", flush=True)


def note(text: str) -> None:
    print(f"# {text}", flush=True)


# -- CURVE -------------------------------------------------------------------------------------


def server_public_key(text: str) -> bytes:
    """The node's public key: a key file (HOME/keys/server.key) or 40 Z85 characters."""
    if len(text) == 40 and not Path(text).exists():
        return text.encode("ascii")
    public, _ = zmq.auth.load_certificate(text)
    return public


def key_pair(path: str) -> tuple[bytes, bytes]:
    """(public, secret) from a NAME.key_secret file."""
    public, secret = zmq.auth.load_certificate(path)
    if secret is None:
        raise SystemExit(f"{path}: holds no secret key (give the NAME.key_secret file)")
    return public, secret


def connect(
    context: zmq.Context,
    kind: int,
    endpoint: str,
    server_key: bytes,
    keys: tuple[bytes, bytes],
    timeout_s: float,
    subscribe: bytes | None = None,
) -> zmq.Socket:
    """A CURVE client socket, connected, once its handshake with the node has succeeded.

    The node never answers a refused key; libzmq's socket monitor is how a client learns that
    the handshake failed (ZAP status 400: the key is not on the node's allowlist)."""
    sock = context.socket(kind)
    sock.linger = 0
    sock.curve_serverkey = server_key
    sock.curve_publickey, sock.curve_secretkey = keys
    if subscribe is not None:
        sock.subscribe(subscribe)
    monitor = sock.get_monitor_socket()
    sock.connect(endpoint)
    try:
        failure = handshake_failure(monitor, endpoint, timeout_s)
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
    if failure is not None:
        sock.close(linger=0)
        raise NoAnswer(failure)
    return sock


def handshake_failure(monitor: zmq.Socket, endpoint: str, timeout_s: float) -> str | None:
    """None once the CURVE handshake succeeded, else why it did not."""
    deadline = time.monotonic() + timeout_s
    while True:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0 or not monitor.poll(left_ms):
            return f"no CURVE handshake with {endpoint} within {timeout_s:g} s"
        event = recv_monitor_message(monitor)
        if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            return None
        if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return (
                f"{endpoint} refused this key (ZAP status {event['value']}): "
                "it is not on the node's allowlist"
            )
        if event["event"] in (
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
        ):
            return f"CURVE handshake with {endpoint} failed: wrong server key?"


# -- order entry -------------------------------------------------------------------------------


class Peer:
    """One DEALER connection to the order socket. Answers come back in request order, each
    with the `ref` of its request; execution reports may arrive in between at any time."""

    def __init__(self, name: str, sock: zmq.Socket, owner: str, timeout_s: float) -> None:
        self.name = name
        self.sock = sock
        self.owner = owner
        self.timeout_ms = int(timeout_s * 1000)
        self.refs = itertools.count(1)
        self.reports: list[dict] = []

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return its answer (reports received meanwhile are kept)."""
        ref = next(self.refs)
        message = {"v": VERSION, **body, "ref": ref}
        show(self.name, "->", message)
        self.sock.send(encode(message))
        while True:
            answer = self.receive()
            if answer["type"] == "report":
                self.reports.append(answer)
                continue
            # An error to a request that was not a map with str keys comes with ref null.
            if answer.get("ref") == ref or (answer["type"] == "error" and answer["ref"] is None):
                return answer
            note(f"{self.name}: ignoring an answer to an earlier request: ref {answer['ref']}")

    def receive(self) -> dict[str, Any]:
        if not self.sock.poll(self.timeout_ms):
            raise NoAnswer(f"{self.name}: no answer within {self.timeout_ms / 1000:g} s")
        message = decode(self.sock.recv())
        show(self.name, "<-", message)
        return message

    def submit(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        answer = self.request({"type": "submit", "cmds": list(commands)})
        if answer["type"] != "reply":
            raise Unexpected(f"{self.name}: submit answered with {answer}")
        return answer["events"]

    def next_report(self) -> dict[str, Any]:
        while not self.reports:
            message = self.receive()
            if message["type"] == "report":
                self.reports.append(message)
        return self.reports.pop(0)


def expect(events: list[dict], *kinds: str, reason: str | None = None) -> list[dict]:
    """Check a reply's events start with `kinds` (and the reject reason); return them."""
    got = [event["event"] for event in events]
    if got[: len(kinds)] != list(kinds):
        raise Unexpected(f"expected events {list(kinds)}, got {got}")
    if reason is not None and events[0].get("reason") != reason:
        raise Unexpected(f"expected reject reason {reason}, got {events[0].get('reason')}")
    return events


# -- market data -------------------------------------------------------------------------------


class Book:
    """A market's level-2 book from a snapshot plus market-data messages.

    Each level change is the level's new absolute total, so a change already contained in the
    snapshot can be applied again without harm. Topic seqs count from 1 within a run of the
    node; a message of another `run` means the node restarted."""

    def __init__(self, sock: zmq.Socket, market: str, drop: int, timeout_s: float) -> None:
        self.sock = sock
        self.market = market
        self.topic = b"md." + market.encode("ascii") + b"."
        self.levels: dict[str, dict[str, tuple[str, int]]] = {"buy": {}, "sell": {}}
        self.run: int | None = None
        self.seq = 0
        self.received = 0
        self.drop = drop
        self.gaps = 0
        self.restarts = 0
        self.timeout_s = timeout_s

    def load(self, snapshot: dict[str, Any]) -> None:
        self.levels = {
            "buy": {level["price"]: (level["qty"], level["orders"]) for level in snapshot["bids"]},
            "sell": {level["price"]: (level["qty"], level["orders"]) for level in snapshot["asks"]},
        }
        self.run = snapshot["run"]
        self.seq = snapshot["seq"]

    def resync(self, peer: Peer) -> None:
        """Take a snapshot; messages of its run with a seq up to its seq are already in it."""
        snapshot = peer.request({"type": "snapshot", "market": self.market})
        if snapshot["type"] != "snapshot":
            raise Unexpected(f"snapshot answered with {snapshot}")
        self.load(snapshot)
        note(f"md: book loaded from snapshot at seq {self.seq}")

    def pump(self, peer: Peer, wait_ms: int = 100) -> None:
        """Apply the messages that arrive within `wait_ms` (then any already queued)."""
        while self.sock.poll(wait_ms):
            wait_ms = 0
            topic, payload = self.sock.recv_multipart()
            message = decode(payload)
            self.received += 1
            if self.received == self.drop:
                note(f"md: dropping message seq {message['seq']} (--drop-md {self.drop})")
                continue
            show("md", "<-", {"topic": topic.decode("ascii"), **message})
            if topic != self.topic or message["market"] != self.market:
                continue
            self.take(peer, message)

    def take(self, peer: Peer, message: dict[str, Any]) -> None:
        """One market-data message of this market: apply, skip, or resynchronise."""
        if self.run is None:
            self.resync(peer)
        if message["run"] != self.run:
            self.restarts += 1
            note(
                f"md: run changed from {self.run} to {message['run']}: the node restarted; "
                "resynchronising"
            )
            self.resync(peer)
            if message["run"] != self.run:
                note(f"md: seq {message['seq']} is from before the restart, skipped")
                return
        if message["seq"] <= self.seq:
            note(f"md: seq {message['seq']} already in the book, skipped")
            return
        if message["seq"] != self.seq + 1:
            self.gaps += 1
            note(
                f"md: gap: expected seq {self.seq + 1}, got {message['seq']}: "
                "resynchronising from a snapshot"
            )
            self.resync(peer)
            if message["seq"] != self.seq + 1:
                return  # published before the snapshot was taken: already in it
        self.apply(message)

    def apply(self, message: dict[str, Any]) -> None:
        for trade in message["trades"]:
            note(f"md: trade {trade['qty']} @ {trade['price']} ({trade['aggressor']} aggressor)")
        for level in message["levels"]:
            side = self.levels[level["side"]]
            if level["orders"] == 0:
                side.pop(level["price"], None)
            else:
                side[level["price"]] = (level["qty"], level["orders"])
        self.seq = message["seq"]

    def catch_up(self, peer: Peer) -> dict[str, Any]:
        """Take a snapshot and read market data up to its seq; return the snapshot."""
        snapshot = peer.request({"type": "snapshot", "market": self.market})
        deadline = time.monotonic() + self.timeout_s
        while (self.run, self.seq) != (snapshot["run"], snapshot["seq"]):
            if time.monotonic() > deadline:
                break
            self.pump(peer)
        return snapshot

    def same_as(self, snapshot: dict[str, Any]) -> bool:
        other = Book(self.sock, self.market, 0, self.timeout_s)
        other.load(snapshot)
        return other.levels == self.levels


# -- the session -------------------------------------------------------------------------------


def session(args: argparse.Namespace) -> None:
    context = zmq.Context()
    server_key = server_public_key(args.server_key)
    maker_keys = key_pair(args.maker_key)
    timeout = args.timeout

    maker = Peer(
        "maker",
        connect(context, zmq.DEALER, args.orders, server_key, maker_keys, timeout),
        args.maker_owner,
        timeout,
    )
    if maker.request({"type": "ping"})["type"] != "pong":
        raise Unexpected("ping not answered with pong")
    if args.check:
        note("the node answers this key")
        return
    note("maker: its execution reports now come here (the ping was its latest request)")
    me = maker.request({"type": "whoami"})
    if not me["relayer"] and args.maker_owner not in me["owners"]:
        raise Unexpected(f"the node does not let {me['name']!r} act for {args.maker_owner}")
    rules = {market["market"]: market for market in maker.request({"type": "markets"})["markets"]}
    if args.market not in rules:
        raise Unexpected(f"the node has no market {args.market} (it has {', '.join(rules)})")
    market = rules[args.market]
    note(
        f"maker: the node knows this key as {me['name']!r}; {args.market} has tick "
        f"{market['tick']} and lot {market['lot']}{' (halted)' if market['halted'] else ''}"
    )

    taker = Peer(
        "taker",
        connect(context, zmq.DEALER, args.orders, server_key, key_pair(args.taker_key), timeout),
        args.taker_owner,
        timeout,
    )
    topic = b"md." + args.market.encode("ascii") + b"."
    md_sock = connect(context, zmq.SUB, args.market_data, server_key, maker_keys, timeout, topic)
    book = Book(md_sock, args.market, args.drop_md, timeout)
    taker.request({"type": "ping"})
    book.resync(maker)

    run = format(int(time.time() * 1000) % 16**8, "08x")
    maker_id, taker_id = f"mk-{run}", f"tk-{run}"
    market = args.market

    note("maker rests a sell order")
    expect(
        maker.submit(
            {
                "op": "new",
                "market": market,
                "id": maker_id,
                "owner": maker.owner,
                "side": "sell",
                "type": "limit",
                "price": args.price,
                "qty": args.qty,
                "tif": "GTC",
            }
        ),
        "accepted",
        "rested",
    )
    book.pump(maker)

    note("taker buys across it")
    expect(
        taker.submit(
            {
                "op": "new",
                "market": market,
                "id": taker_id,
                "owner": taker.owner,
                "side": "buy",
                "price": args.price,
                "qty": args.take_qty,
                "tif": "IOC",
            }
        ),
        "accepted",
        "trade",
    )
    report = maker.next_report()
    fills = [e for e in report["events"] if e["event"] == "trade" and e["maker_id"] == maker_id]
    if not fills:
        raise Unexpected(f"the maker's report holds no fill of {maker_id}")
    note(f"maker filled {fills[0]['qty']}, {fills[0]['maker_remaining']} left")
    book.pump(maker)

    note("maker lists its open orders")
    orders = maker.request({"type": "open_orders", "owner": maker.owner})
    if not any(order["id"] == maker_id for order in orders.get("orders", [])):
        raise Unexpected(f"{maker_id} is not among the open orders")

    note("maker moves its order to a new price (it loses its time priority)")
    events = expect(
        maker.submit(
            {
                "op": "replace",
                "market": market,
                "id": maker_id,
                "owner": maker.owner,
                "price": args.new_price,
            }
        ),
        "accepted",
        "replaced",
    )
    if events[1]["in_place"]:
        raise Unexpected("a price change should re-enter the order")
    book.pump(maker)

    note("maker reduces it in place (priority kept)")
    events = expect(
        maker.submit(
            {"op": "replace", "market": market, "id": maker_id, "owner": maker.owner, "qty": "1"}
        ),
        "accepted",
        "replaced",
    )
    if not events[1]["in_place"]:
        raise Unexpected("a smaller quantity at the same price should be in place")
    book.pump(maker)

    note("maker cancels it")
    cancel = {"op": "cancel", "market": market, "id": maker_id, "owner": maker.owner}
    expect(maker.submit(cancel), "accepted", "cancelled")
    note("maker cancels it again: the order is gone")
    expect(maker.submit(cancel), "rejected", reason="unknown_order")

    snapshot = book.catch_up(maker)
    if book.same_as(snapshot):
        note(
            f"md: book in sync with snapshot seq {snapshot['seq']} of run {snapshot['run']}, "
            f"gaps seen: {book.gaps}, restarts seen: {book.restarts}"
        )
    else:
        note(f"md: book differs from snapshot seq {snapshot['seq']} (is the market busy?)")
    note("session done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", required=True, help="order endpoint, tcp://HOST:PORT")
    parser.add_argument("--market-data", required=True, help="market-data endpoint")
    parser.add_argument("--server-key", required=True, help="server.key file or its Z85 text")
    parser.add_argument("--maker-key", required=True, help="maker's NAME.key_secret file")
    parser.add_argument("--maker-owner", required=True, help="an owner the maker may act for")
    parser.add_argument("--taker-key", help="taker's NAME.key_secret file")
    parser.add_argument("--taker-owner", help="an owner the taker may act for")
    parser.add_argument("--market", default="PUNK-ETH")
    parser.add_argument("--price", default="100.5", help="the maker's price (decimal text)")
    parser.add_argument("--new-price", default="100.75", help="the price it is moved to")
    parser.add_argument("--qty", default="3", help="the maker's quantity")
    parser.add_argument("--take-qty", default="1", help="the taker's quantity")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for answers")
    parser.add_argument("--drop-md", type=int, default=0, metavar="N", help="lose md message N")
    parser.add_argument("--check", action="store_true", help="only connect and ping")
    args = parser.parse_args(argv)
    if not args.check and not (args.taker_key and args.taker_owner):
        parser.error("--taker-key and --taker-owner are needed (or --check)")
    try:
        session(args)
    except NoAnswer as error:
        note(f"no answer: {error}")
        return 2
    except Unexpected as error:
        note(f"unexpected: {error}")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
