"""docs/protocol.md is enough to write a client: the example client written from it alone
(docs/examples/raw_client.py, pyzmq and msgspec only) trades against a real node, keys that
are not on the allowlist get nowhere, and the behaviours the page promises hold (reports,
halts, node-made cancels, market-data runs, admin answers)."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
import zmq
import zmq.auth

from marketnode.node.core import reasons
from marketnode.node.core.reasons import CancelReason
from marketnode.node.server import admin

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "protocol.md"
RAW_CLIENT = ROOT / "docs" / "examples" / "raw_client.py"
LINE = re.compile(r"^(maker|taker|md) +(->|<-) (\{.*\})$")


def load_raw_client():
    spec = importlib.util.spec_from_file_location("raw_client", RAW_CLIENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_raw_client(running, *extra: str) -> tuple[subprocess.CompletedProcess, list, list]:
    """Run the example client against `running` as alice (maker) and bob (taker).

    Returns the process, the (who, arrow, message) of every message line, and the notes."""
    home = running.home.path
    address = running.address
    command = [
        sys.executable,
        str(RAW_CLIENT),
        "--orders",
        address.orders,
        "--market-data",
        address.market_data,
        "--server-key",
        str(home / "keys" / "server.key"),
        "--maker-key",
        str(home / "keys" / "peers" / "alice.key_secret"),
        "--maker-owner",
        "0xa11ce",
        "--taker-key",
        str(home / "keys" / "peers" / "bob.key_secret"),
        "--taker-owner",
        "0xb0b",
        *extra,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    messages, notes = [], []
    for line in result.stdout.splitlines():
        match = LINE.match(line)
        if match:
            messages.append((match[1], match[2], json.loads(match[3])))
        elif line.startswith("# "):
            notes.append(line[2:])
        else:
            pytest.fail(f"unexpected output line: {line!r}")
    return result, messages, notes


def received(messages: list, who: str, kind: str) -> list[dict]:
    return [m for w, arrow, m in messages if w == who and arrow == "<-" and m["type"] == kind]


def kinds(events: list[dict]) -> list[str]:
    return [event["event"] for event in events]


def test_raw_client_uses_only_pyzmq_and_msgspec():
    tree = ast.parse(RAW_CLIENT.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    }
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"zmq", "msgspec"}


def test_raw_client_session(running_node):
    result, messages, notes = run_raw_client(running_node)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "session done" in notes

    # Every message both ways carries v 1; answers come back in request order with their ref.
    assert all(message["v"] == 1 for _, _, message in messages)
    for peer in ("maker", "taker"):
        sent = [m["ref"] for w, arrow, m in messages if w == peer and arrow == "->"]
        answers = [
            m["ref"] for w, arrow, m in messages if w == peer and arrow == "<-" and "ref" in m
        ]
        assert answers == sent

    assert len(received(messages, "maker", "pong")) == 1
    assert len(received(messages, "taker", "pong")) == 1

    maker_replies = [reply["events"] for reply in received(messages, "maker", "reply")]
    assert [kinds(events) for events in maker_replies] == [
        ["accepted", "rested"],
        ["accepted", "replaced", "rested"],
        ["accepted", "replaced"],
        ["accepted", "cancelled"],
        ["rejected"],
    ]
    new, moved, reduced, cancelled, again = maker_replies
    maker_id = new[0]["id"]
    assert new[1] == {
        "event": "rested",
        "seq": new[1]["seq"],
        "market": "PUNK-ETH",
        "id": maker_id,
        "owner": "0xa11ce",
        "side": "sell",
        "price": "100.5",
        "qty": "3",
    }
    assert moved[1]["in_place"] is False and moved[1]["price"] == "100.75"
    assert moved[2]["price"] == "100.75" and moved[2]["qty"] == "2"
    assert reduced[1]["in_place"] is True and reduced[1]["qty"] == "1"
    assert cancelled[1]["reason"] == "user" and cancelled[1]["remaining"] == "0"
    assert again[0]["reason"] == "unknown_order" and isinstance(again[0]["seq"], int)

    # The taker's reply holds the trade; the maker receives it as an execution report.
    (taker_reply,) = received(messages, "taker", "reply")
    accepted, trade = taker_reply["events"]
    assert accepted["event"] == "accepted" and accepted["owner"] == "0xb0b"
    assert trade["event"] == "trade"
    assert (trade["maker_id"], trade["maker_owner"]) == (maker_id, "0xa11ce")
    assert (trade["price"], trade["qty"], trade["maker_remaining"]) == ("100.5", "1", "2")
    (report,) = received(messages, "maker", "report")
    assert report["events"] == [trade]
    assert "ref" not in report

    # Engine seqs increase over the session; within a reply they are consecutive.
    seqs = [e["seq"] for events in [*maker_replies, taker_reply["events"]] for e in events]
    assert sorted(seqs) == list(range(min(seqs), min(seqs) + len(seqs)))
    for events in [*maker_replies, taker_reply["events"]]:
        numbers = [e["seq"] for e in events]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))

    (open_orders,) = received(messages, "maker", "open_orders")
    assert open_orders["orders"] == [
        {
            "market": "PUNK-ETH",
            "id": maker_id,
            "owner": "0xa11ce",
            "side": "sell",
            "price": "100.5",
            "qty": "2",
        }
    ]

    # Market data: one topic, seq from 1 without gaps, the trade on the tape, and the book kept
    # from it matches the final snapshot (empty).
    market_data = [m for w, _, m in messages if w == "md"]
    assert market_data, "no market data received"
    assert {m["topic"] for m in market_data} == {"md.PUNK-ETH."}
    assert [m["seq"] for m in market_data] == list(range(1, len(market_data) + 1))
    tape = [t for m in market_data for t in m["trades"]]
    assert tape == [{"seq": trade["seq"], "price": "100.5", "qty": "1", "aggressor": "buy"}]
    snapshots = received(messages, "maker", "snapshot")
    # Market data and snapshots carry the node's run: its start, in ms since the epoch.
    run = running_node.node.run
    assert isinstance(run, int) and abs(run - time.time() * 1000) < 3_600_000
    assert {m["run"] for m in market_data} == {s["run"] for s in snapshots} == {run}
    assert snapshots[0]["seq"] == 0 and snapshots[0]["bids"] == snapshots[0]["asks"] == []
    assert snapshots[-1]["seq"] == market_data[-1]["seq"]
    assert snapshots[-1]["bids"] == snapshots[-1]["asks"] == []
    assert any(n.startswith("md: book in sync with snapshot seq") for n in notes)


def test_raw_client_detects_a_gap_and_resynchronises(running_node):
    result, _, notes = run_raw_client(running_node, "--drop-md", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "md: dropping message seq 2 (--drop-md 2)" in notes
    assert "md: gap: expected seq 2, got 3: resynchronising from a snapshot" in notes
    resync = [n for n in notes if n.startswith("md: book loaded from snapshot at seq")]
    assert len(resync) == 2 and int(resync[1].rsplit(" ", 1)[1]) >= 3
    assert any(n.startswith("md: book in sync with snapshot seq") for n in notes)


def test_unknown_key_gets_nowhere(running_node, tmp_path):
    raw = load_raw_client()
    address = running_node.address
    _, stranger_file = zmq.auth.create_certificates(tmp_path, "stranger")
    stranger = zmq.auth.load_certificate(stranger_file)
    alice = running_node.keys["alice"]
    alice_keys = (alice.public, alice.secret)
    context = zmq.Context()
    try:
        # The handshake of a key off the allowlist fails, on every peer socket.
        for kind, endpoint in ((zmq.DEALER, address.orders), (zmq.SUB, address.market_data)):
            with pytest.raises(raw.NoAnswer, match="not on the node's allowlist"):
                raw.connect(context, kind, endpoint, address.server_key, stranger, 5.0)

        # A stranger's order, sent without waiting for the handshake, never gets an answer.
        dealer = context.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.curve_serverkey = address.server_key
        dealer.curve_publickey, dealer.curve_secretkey = stranger
        dealer.connect(address.orders)
        order = {
            "op": "new",
            "market": "PUNK-ETH",
            "id": "s1",
            "owner": "0xa11ce",
            "side": "buy",
            "price": "99",
            "qty": "1",
        }
        dealer.send(msgspec.msgpack.encode({"v": 1, "type": "submit", "cmds": [order]}))

        # Meanwhile a registered peer is served, and its market data flows.
        topic = b"md.PUNK-ETH."
        md = raw.connect(
            context, zmq.SUB, address.market_data, address.server_key, alice_keys, 5.0, topic
        )
        peer = raw.Peer(
            "maker",
            raw.connect(context, zmq.DEALER, address.orders, address.server_key, alice_keys, 5.0),
            "0xa11ce",
            5.0,
        )
        assert peer.request({"type": "ping"})["type"] == "pong"
        events = peer.submit({**order, "id": "a1", "price": "98"})
        assert kinds(events) == ["accepted", "rested"]
        assert md.poll(5000)
        _, payload = md.recv_multipart()
        assert msgspec.msgpack.decode(payload)["levels"] == [
            {"side": "buy", "price": "98", "qty": "1", "orders": 1}
        ]
        snapshot = peer.request({"type": "snapshot", "market": "PUNK-ETH"})
        assert snapshot["bids"] == [{"price": "98", "qty": "1", "orders": 1}]
        assert not dealer.poll(300), "an unregistered key got an answer"
    finally:
        context.destroy(linger=0)


def raw_peer(raw, context: zmq.Context, running, name: str, owner: str):
    """A connection of registered peer `name` to the order socket, as the example client makes."""
    key = running.keys[name]
    address = running.address
    sock = raw.connect(
        context, zmq.DEALER, address.orders, address.server_key, (key.public, key.secret), 5.0
    )
    return raw.Peer(name, sock, owner, 5.0)


def rest(order_id: str, owner: str, price: str) -> dict:
    return {
        "op": "new",
        "market": "PUNK-ETH",
        "id": order_id,
        "owner": owner,
        "side": "sell",
        "price": price,
        "qty": "1",
    }


def test_a_halted_market_takes_cancels_and_refuses_new_and_replace(running_node):
    raw = load_raw_client()
    context = zmq.Context()
    try:
        alice = raw_peer(raw, context, running_node, "alice", "0xa11ce")
        alice.submit(rest("a1", "0xa11ce", "100"), rest("a2", "0xa11ce", "101"))
        running_node.admin().call("halt", market="PUNK-ETH")
        # a `reason` a peer puts in its cancel is ignored: a peer's cancel is `user`
        cancel = {"op": "cancel", "market": "PUNK-ETH", "id": "a1", "owner": "0xa11ce"}
        replace = {"op": "replace", "market": "PUNK-ETH", "id": "a2", "owner": "0xa11ce"}
        events = alice.submit(
            {**cancel, "reason": "disconnect"},
            {**replace, "qty": "1"},
            rest("a3", "0xa11ce", "102"),
        )
        assert kinds(events) == ["accepted", "cancelled", "rejected", "rejected"]
        assert events[1]["reason"] == "user" and events[1]["id"] == "a1"
        assert [(e["reason"], e["seq"]) for e in events[2:]] == [("market_halted", None)] * 2
    finally:
        context.destroy(linger=0)


def test_a_relayers_cancel_is_in_its_reply_and_reported_to_the_placer(running_node):
    raw = load_raw_client()
    running_node.add_peer("relay", (), relayer=True)
    context = zmq.Context()
    try:
        placed_on = raw_peer(raw, context, running_node, "alice", "0xa11ce")
        placed_on.submit(rest("a1", "0xa11ce", "100"))
        # A ping on a second connection is enough to have alice's reports come there.
        alice = raw_peer(raw, context, running_node, "alice", "0xa11ce")
        assert alice.request({"type": "ping"})["type"] == "pong"
        relay = raw_peer(raw, context, running_node, "relay", "0xa11ce")
        events = relay.submit(
            {"op": "cancel", "market": "PUNK-ETH", "id": "a1", "owner": "0xa11ce"}
        )
        assert kinds(events) == ["accepted", "cancelled"]
        assert events[1]["seq"] == events[0]["seq"] + 1 and events[1]["reason"] == "user"
        report = alice.next_report()
        assert report == {"type": "report", "v": 1, "events": [events[1]]}
        assert not placed_on.sock.poll(200), "the report went to alice's older connection"
        assert not relay.reports and not relay.sock.poll(0), "the relayer got a report"
    finally:
        context.destroy(linger=0)


def test_disabling_a_peer_cancels_its_orders_with_reason_peer_disabled(running_node):
    raw = load_raw_client()
    context = zmq.Context()
    try:
        alice = raw_peer(raw, context, running_node, "alice", "0xa11ce")
        alice.submit(rest("a1", "0xa11ce", "100"))
        result = running_node.admin().call("disable_peer", peer="alice")
        assert result == {"peer": "alice", "disabled": True, "orders_cancelled": 1}
        (cancelled,) = alice.next_report()["events"]
        assert (cancelled["event"], cancelled["id"]) == ("cancelled", "a1")
        assert cancelled["reason"] == CancelReason.PEER_DISABLED == "peer_disabled"
        (refused,) = alice.submit(rest("a2", "0xa11ce", "100"))
        assert (refused["reason"], refused["seq"]) == ("peer_disabled", None)
    finally:
        context.destroy(linger=0)


def test_admin_answers_bad_requests(running_node):
    sock = running_node.admin().socket

    def call(*frames: bytes) -> dict:
        sock.send_multipart(list(frames))
        assert sock.poll(5000), "the admin socket did not answer"
        return msgspec.msgpack.decode(sock.recv())

    encode = msgspec.msgpack.encode
    assert call(encode({"v": 2, "type": "admin", "cmd": "status", "ref": 7})) == {
        "type": "admin",
        "v": 1,
        "ok": False,
        "error": "bad_version: this node speaks v1",
        "ref": 7,
    }
    status = encode({"v": 1, "type": "admin", "cmd": "status", "ref": 8})
    assert call(status, b"more") == {
        "type": "admin",
        "v": 1,
        "ok": False,
        "error": "malformed: send one frame",
    }
    book = {"v": 1, "type": "admin", "cmd": "book", "market": "PUNK-ETH", "ref": 9}
    refused = call(encode({**book, "depth": 0}))
    assert (refused["ok"], refused["ref"]) == (False, 9)
    assert call(encode({**book, "depth": 1}))["ok"] is True


def test_a_message_over_the_size_limit_closes_the_connection(node_factory):
    """The limit is the message's own size: the node allows for what CURVE adds to a frame."""
    running = node_factory("[limits]\nmax_message_bytes = 4096\n", {"alice": ("0xa11ce",)})
    raw = load_raw_client()
    context = zmq.Context()

    def ping_of(size: int) -> bytes:
        """A ping of exactly `size` bytes (a ref of 256 to 65535 characters has a 3-byte head)."""
        empty = len(msgspec.msgpack.encode({"v": 1, "type": "ping", "ref": ""}))
        ping = msgspec.msgpack.encode({"v": 1, "type": "ping", "ref": "x" * (size - empty - 2)})
        assert len(ping) == size
        return ping

    try:
        alice = raw_peer(raw, context, running, "alice", "0xa11ce")
        # a fresh address: the example client monitored this socket once already (handshake)
        monitor = alice.sock.get_monitor_socket(
            zmq.EVENT_DISCONNECTED, addr="inproc://size-limit-disconnects"
        )
        alice.sock.send(ping_of(4096))
        assert alice.receive()["type"] == "pong"
        alice.sock.send(ping_of(4097))
        assert monitor.poll(5000), "the connection was not closed"
        assert not alice.sock.poll(300), "a message over the limit was answered"
        # the DEALER reconnects by itself, as a new connection, and is served again
        assert alice.request({"type": "ping"})["type"] == "pong"
    finally:
        context.destroy(linger=0)


def test_the_example_book_resynchronises_when_the_run_changes(capsys):
    raw = load_raw_client()
    context = zmq.Context()
    try:
        publisher = context.socket(zmq.XPUB)
        publisher.bind("inproc://md")
        subscriber = context.socket(zmq.SUB)
        subscriber.subscribe(b"md.PUNK-ETH.")
        subscriber.connect("inproc://md")
        assert publisher.poll(5000) and publisher.recv() == b"\x01md.PUNK-ETH."

        def snapshot(run: int, seq: int, asks: list) -> dict:
            levels = [{"price": p, "qty": "1", "orders": 1} for p in asks]
            return {
                "type": "snapshot",
                "v": 1,
                "market": "PUNK-ETH",
                "seq": seq,
                "bids": [],
                "asks": levels,
                "run": run,
            }

        class Node:
            """Answers the book's snapshot requests, one after the other."""

            def __init__(self, *snapshots: dict) -> None:
                self.snapshots = list(snapshots)

            def request(self, body: dict) -> dict:
                assert body == {"type": "snapshot", "market": "PUNK-ETH"}
                return self.snapshots.pop(0)

        def publish(run: int, seq: int, price: str) -> None:
            level = {"side": "sell", "price": price, "qty": "1", "orders": 1}
            message = {
                "type": "md",
                "v": 1,
                "market": "PUNK-ETH",
                "seq": seq,
                "trades": [],
                "levels": [level],
                "run": run,
            }
            publisher.send_multipart([b"md.PUNK-ETH.", msgspec.msgpack.encode(message)])

        book = raw.Book(subscriber, "PUNK-ETH", 0, 5.0)
        book.load(snapshot(1, 4, ["100"]))
        publish(1, 5, "99")  # applied
        publish(2, 1, "102")  # the node restarted: new snapshot (run 2, seq 0), then applied
        publish(1, 6, "98")  # from before the restart: a new snapshot, and skipped
        book.pump(Node(snapshot(2, 0, ["101"]), snapshot(2, 1, ["101", "102"])), wait_ms=1000)
        assert book.restarts == 2 and book.gaps == 0
        assert (book.run, book.seq) == (2, 1)
        assert book.levels["sell"] == {"101": ("1", 1), "102": ("1", 1)}
        notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("#")]
        assert "# md: run changed from 1 to 2: the node restarted; resynchronising" in notes
        assert "# md: seq 6 is from before the restart, skipped" in notes
    finally:
        context.destroy(linger=0)


def test_raw_client_check_reports_a_refused_key(running_node, tmp_path):
    _, stranger_file = zmq.auth.create_certificates(tmp_path, "stranger")
    address = running_node.address
    result = subprocess.run(
        [
            sys.executable,
            str(RAW_CLIENT),
            "--orders",
            address.orders,
            "--market-data",
            address.market_data,
            # = keeps a Z85 key starting with '-' from reading as an option
            f"--server-key={address.server_key.decode('ascii')}",
            "--maker-key",
            str(stranger_file),
            "--maker-owner",
            "0xa11ce",
            "--check",
            "--timeout",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not on the node's allowlist" in result.stdout


def reason_table(text: str, heading: str) -> list[str]:
    """The codes in the first column of the table under `heading` (to the next heading)."""
    section = text[text.index(heading) :]
    section = section[: section.index("\n#", 1)]
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)


def test_the_reject_tables_list_exactly_the_reasons():
    text = DOC.read_text()
    engine = reason_table(text, "### Command rejects from the engine")
    gateway = reason_table(text, "### Command rejects before the engine")
    message = reason_table(text, "### Message errors")
    # the engine's, in validation order (a malformed command never reaches the engine)
    assert engine == [r for r in reasons.ENGINE_REASONS if r is not reasons.Reason.MALFORMED]
    # the gateway's, in the order the node checks them
    assert gateway == [reasons.Reason.MALFORMED, *reasons.GATEWAY_REASONS]
    # whole messages refused, then the errors of one kind of request
    assert message[: len(reasons.MESSAGE_REASONS)] == list(reasons.MESSAGE_REASONS)
    assert message[len(reasons.MESSAGE_REASONS) :] == ["unknown_market", "not_authorized"]
    assert set(engine) | set(gateway) | set(message) == set(reasons.Reason)


def test_doc_lists_every_admin_command_and_cancel_reason():
    text = DOC.read_text()
    for cmd in admin._HANDLERS:
        assert f"| `{cmd}` |" in text, f"admin command {cmd} is not documented"
    for reason in ("user", "ioc", "stp", CancelReason.PEER_DISABLED, CancelReason.DISCONNECT):
        assert f"| `{reason}` | by " in text or f"| `{reason}` | because " in text, reason
    assert text.count("| `run` | int |") == 2, "snapshot and md messages carry run"
    assert "not enforced" not in text.lower() and "current behaviour" not in text.lower()
    assert "](examples/raw_client.py)" in text and "](engine.md" in text


def doc_exchanges() -> list[tuple[object, dict]]:
    """The (request, answer) pairs of §14's sessions: `send(who, REQUEST)` followed by
    `receive(who)` and the answer printed."""
    session = DOC.read_text().split("## 14. ", 1)[1].split("## 15. ", 1)[0]
    pairs = []
    for block in re.findall(r"```pycon\n(.*?)```", session, flags=re.DOTALL):
        sent = None
        lines = block.splitlines()
        for index, line in enumerate(lines):
            if line.startswith(">>> send("):
                sent = ast.literal_eval(line[len(">>> send(") : -1].split(", ", 1)[1])
            elif line.startswith(">>> receive(") and sent is not None:
                printed = []
                for following in lines[index + 1 :]:
                    if following.startswith(">>>"):
                        break
                    printed.append(following)
                pairs.append((sent, ast.literal_eval("\n".join(printed))))
                sent = None
    return pairs


def test_the_docs_examples_of_stateless_requests_and_errors_hold(running_node):
    """Every example of §14 whose answer does not depend on the session's trading (`markets`,
    `whoami`, and the message-level errors) is what the node answers."""
    raw = load_raw_client()
    context = zmq.Context()
    try:
        alice = raw_peer(raw, context, running_node, "alice", "0xa11ce")
        checked = []
        for sent, documented in doc_exchanges():
            if documented["type"] not in ("markets", "whoami", "error"):
                continue
            alice.sock.send(msgspec.msgpack.encode(sent))
            assert alice.sock.poll(5000), f"no answer to {sent}"
            assert msgspec.msgpack.decode(alice.sock.recv()) == documented, sent
            checked.append(documented["type"])
        assert {"markets", "whoami", "error"} <= set(checked)
    finally:
        context.destroy(linger=0)
