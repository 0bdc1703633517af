"""The node's ZAP handler: every request answered, the key's Z85 text as the user id."""

from __future__ import annotations

import zmq
from zmq.utils import z85

from marketnode.node.server.zap import VERSION, ZapHandler, reply_to

KEY = bytes(range(32))
KEY_TEXT = z85.encode(KEY).decode()


def request(mechanism: bytes = b"CURVE", *credentials: bytes, version: bytes = VERSION):
    return [version, b"7", b"orders", b"127.0.0.1", b"", mechanism, *credentials]


def test_an_allowed_key_is_answered_200_with_its_text_as_user_id():
    seen = []
    reply = reply_to(request(b"CURVE", KEY), lambda domain, key: seen.append((domain, key)) or True)
    assert reply == [VERSION, b"7", b"200", b"OK", KEY_TEXT.encode(), b""]
    assert seen == [("orders", KEY_TEXT)]


def test_refused_other_mechanisms_and_malformed_requests_all_get_an_answer():
    def never(domain: str, key: str) -> bool:
        return False

    assert reply_to(request(b"CURVE", KEY), never)[2] == b"400"
    assert reply_to(request(b"NULL"), lambda *_: True)[2] == b"400"
    assert reply_to(request(b"CURVE", b"short"), lambda *_: True)[2] == b"400"
    assert reply_to(request(b"CURVE", KEY, version=b"2.0"), lambda *_: True)[:3] == [
        VERSION, b"7", b"500"
    ]  # fmt: skip
    assert reply_to([b"1.0"], lambda *_: True)[:3] == [VERSION, b"", b"500"]


def test_a_curve_socket_behind_the_handler_takes_allowed_keys_only():
    context = zmq.Context()
    server_public, server_secret = zmq.curve_keypair()
    allowed_public, allowed_secret = zmq.curve_keypair()
    stranger_public, stranger_secret = zmq.curve_keypair()
    handler = ZapHandler(context, lambda domain, key: key == allowed_public.decode())
    handler.start()
    try:
        server = context.socket(zmq.ROUTER)
        server.curve_server = True
        server.curve_publickey, server.curve_secretkey = server_public, server_secret
        server.zap_domain = b"orders"
        port = server.bind_to_random_port("tcp://127.0.0.1")

        def client(public: bytes, secret: bytes) -> zmq.Socket:
            sock = context.socket(zmq.DEALER)
            sock.curve_serverkey = server_public
            sock.curve_publickey, sock.curve_secretkey = public, secret
            sock.connect(f"tcp://127.0.0.1:{port}")
            return sock

        stranger = client(stranger_public, stranger_secret)
        friend = client(allowed_public, allowed_secret)
        stranger.send(b"from the stranger")
        friend.send(b"from the friend")
        assert server.poll(10_000)
        _identity, body = server.recv_multipart(copy=False)
        assert body.bytes == b"from the friend"
        assert body.get("User-Id") == allowed_public.decode()
        assert not server.poll(500)  # the stranger's message never arrives
        for sock in (stranger, friend, server):
            sock.close(linger=0)
    finally:
        handler.stop()
        handler.stop()  # idempotent
        context.destroy(linger=0)
