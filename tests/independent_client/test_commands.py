"""Commands in a `submit`, their answers and events, rejects and the decimal and id rules
(docs/protocol.md §3, §5, §6, §7, §8, §10)."""

from __future__ import annotations

import pytest

from .wire import answers, by_command, cancel, is_canonical_decimal, new, replace

A = "0xa11ce"
B = "0xb0b"

EVENT_KEYS = {
    "accepted": {"event", "seq", "op", "market", "id", "owner"},
    "rejected": {"event", "seq", "op", "market", "id", "owner", "reason"},
    "trade": {
        "event",
        "seq",
        "market",
        "price",
        "qty",
        "maker_id",
        "maker_owner",
        "taker_id",
        "taker_owner",
        "aggressor",
        "maker_remaining",
        "taker_remaining",
    },
    "rested": {"event", "seq", "market", "id", "owner", "side", "price", "qty"},
    "cancelled": {"event", "seq", "market", "id", "owner", "reason", "qty", "remaining"},
    "replaced": {"event", "seq", "market", "id", "owner", "side", "price", "qty", "in_place"},
}
DECIMAL_KEYS = {"price", "qty", "maker_remaining", "taker_remaining", "remaining"}


def only(reply: dict) -> dict:
    (answer,) = answers(reply)
    return answer


def rejected(reply: dict, reason: str, *, numbered: bool) -> dict:
    answer = only(reply)
    assert answer["event"] == "rejected" and answer["reason"] == reason, reply
    assert len(reply["events"]) == 1, f"§7: after `rejected` nothing follows: {reply}"
    if numbered:
        assert type(answer["seq"]) is int, f"§10: an engine reject's `seq` is an int: {answer}"
    else:
        assert answer["seq"] is None, f"§10: a reject before the engine has `seq` nil: {answer}"
    return answer


def kinds(events: list[dict]) -> list[str]:
    return [e["event"] for e in events]


# -- event shapes and decimals ---------------------------------------------------------------------


def test_every_event_kind_has_the_documented_keys_and_canonical_decimals(alice, bob, market):
    """§7: the keys of `accepted`, `rejected`, `trade`, `rested`, `cancelled`, `replaced` (and
    "`detail` (str) only for `malformed`"); §3: "The node always sends decimals as canonical
    str: no trailing zeros (`"100.5"`, not `"100.50"`), no trailing `.`"."""
    events = []
    events += alice.submit([new(market, "s1", A, "sell", "100.50", "3")])["events"]
    events += bob.submit([new(market, "b1", B, "buy", "101.00", "1.0")])["events"]
    events += alice.submit([replace(market, "s1", A, price="100.7")])["events"]
    events += alice.submit([cancel(market, "s1", A)])["events"]
    events += alice.submit([cancel(market, "s1", A)])["events"]
    events += alice.submit([{"op": "new", "market": market, "owner": A}])["events"]
    seen = set()
    for event in events:
        kind = event["event"]
        seen.add(kind)
        expected = EVENT_KEYS[kind] | (
            {"detail"} if event.get("reason") == "malformed" and kind == "rejected" else set()
        )
        assert set(event) == expected, event
        for key in DECIMAL_KEYS & set(event):
            assert is_canonical_decimal(event[key]), (key, event)
    assert seen == set(EVENT_KEYS)
    rested = next(e for e in events if e["event"] == "rested")
    assert rested["price"] == "100.5"
    trade = next(e for e in events if e["event"] == "trade")
    assert (trade["price"], trade["qty"], trade["maker_remaining"]) == ("100.5", "1", "2")


def test_a_rejected_answer_has_detail_only_for_malformed(alice, market):
    """§7: `rejected` ... "and `detail` (str) only for `malformed`"."""
    engine = rejected(alice.submit([new(market, "d1", A, "up", "1")]), "bad_side", numbered=True)
    assert "detail" not in engine
    gateway = rejected(
        alice.submit([new(market, "d2", B, "buy", "1")]), "not_authorized", numbered=False
    )
    assert "detail" not in gateway
    bad = rejected(
        alice.submit([{"op": "new", "market": market, "owner": A}]), "malformed", numbered=False
    )
    assert isinstance(bad["detail"], str)


# -- malformed commands ----------------------------------------------------------------------------


def _cmd(market, **kw):
    base = {
        "op": "new",
        "market": market,
        "id": "x1",
        "owner": A,
        "side": "buy",
        "price": "1",
        "qty": "1",
    }
    for key, value in kw.items():
        if value is _DROP:
            base.pop(key)
        else:
            base[key] = value
    return base


_DROP = object()

MALFORMED_COMMANDS = {
    "not-a-map-int": lambda m: 5,
    "not-a-map-str": lambda m: "new",
    "not-a-map-array": lambda m: ["new", m],
    "not-a-map-nil": lambda m: None,
    "no-op": lambda m: _cmd(m, op=_DROP),
    "unknown-op": lambda m: _cmd(m, op="buy"),
    "int-op": lambda m: _cmd(m, op=1),
    "nil-op": lambda m: _cmd(m, op=None),
    "bin-op": lambda m: _cmd(m, op=b"new"),
    "no-id": lambda m: _cmd(m, id=_DROP),
    "nil-id": lambda m: _cmd(m, id=None),
    "float-id": lambda m: _cmd(m, id=1.5),
    "bool-id": lambda m: _cmd(m, id=True),
    "array-id": lambda m: _cmd(m, id=[1]),
    "empty-id": lambda m: _cmd(m, id=""),
    "65-char-id": lambda m: _cmd(m, id="i" * 65),
    "bin-id": lambda m: _cmd(m, id=b"x1"),
    "no-owner": lambda m: _cmd(m, owner=_DROP),
    "nil-owner": lambda m: _cmd(m, owner=None),
    "int-owner": lambda m: _cmd(m, owner=5),
    "empty-owner": lambda m: _cmd(m, owner=""),
    "129-char-owner": lambda m: _cmd(m, owner="o" * 129),
    "int-peer": lambda m: _cmd(m, peer=5),
    "bool-peer": lambda m: _cmd(m, peer=False),
    "map-peer": lambda m: _cmd(m, peer={"name": "bob"}),
    "bin-peer": lambda m: _cmd(m, peer=b"bob"),
    "int-reason-on-cancel": lambda m: cancel(m, "x1", A, reason=3),
    "array-reason-on-cancel": lambda m: cancel(m, "x1", A, reason=["ioc"]),
    "cancel-no-id": lambda m: {"op": "cancel", "market": m, "owner": A},
    "replace-no-owner": lambda m: {"op": "replace", "market": m, "id": "x1"},
}


@pytest.mark.parametrize("name", list(MALFORMED_COMMANDS))
def test_unreadable_commands_are_malformed_before_the_engine(alice, shared_market, name):
    """§5: "a command missing one of them, with an unknown `op`, an `id` or `owner` of the wrong
    type or length, with a `peer` (`new`) or `reason` (`cancel`) that is neither a str nor nil,
    or that is not a map at all, is rejected `malformed`"; §10: `seq` nil, "`op`, `market`,
    `id`, `owner` are echoed when readable (else nil), and `detail` says what is wrong"."""
    market = shared_market
    cmd = MALFORMED_COMMANDS[name](market)
    reply = alice.submit([cmd, new(market, f"after-{name}", A, "buy", "1")])
    first, second = by_command(reply)
    assert len(first) == 1, reply
    bad = first[0]
    assert bad["event"] == "rejected" and bad["reason"] == "malformed", reply
    assert bad["seq"] is None and isinstance(bad["detail"], str) and bad["detail"], bad
    assert set(bad) == EVENT_KEYS["rejected"] | {"detail"}, bad
    if isinstance(cmd, dict):
        for key in ("op", "market", "id", "owner"):
            value = cmd.get(key)
            readable = {
                "op": value in ("new", "cancel", "replace"),
                "market": isinstance(value, str),
                "id": (isinstance(value, str) and 1 <= len(value) <= 64)
                or (isinstance(value, int) and not isinstance(value, bool)),
                "owner": isinstance(value, str) and 1 <= len(value) <= 128,
            }[key]
            if readable:
                assert bad[key] == value, (key, bad)
            elif value is None:
                assert bad[key] is None, (key, bad)
    else:
        assert (bad["op"], bad["market"], bad["id"], bad["owner"]) == (None,) * 4, bad
    # §4: "One bad command does not spoil the others"
    assert kinds(second) == ["accepted", "rested"], reply


def test_unknown_op_is_echoed_as_sent(alice, market):
    """§7: `rejected` has "`op`, `market`, `id`, `owner` (each as sent, or nil when it could not
    be read)": an unknown `op` str can be read."""
    bad = rejected(alice.submit([_cmd(market, op="buy")]), "malformed", numbered=False)
    assert (bad["op"], bad["market"], bad["id"], bad["owner"]) == ("buy", market, "x1", A), bad


@pytest.mark.parametrize(
    "peer", ["bob", "", None, "someone else"], ids=["name", "empty", "nil", "other"]
)
def test_a_str_or_nil_peer_in_new_is_ignored(alice, shared_market, peer):
    market = shared_market
    """§5: "A `peer` key, if sent as a str or nil, is ignored (the node fills it in with the
    authenticated peer)"."""
    reply = alice.submit([_cmd(market, id=f"p-{peer}", peer=peer)])
    assert kinds(reply["events"]) == ["accepted", "rested"], reply


@pytest.mark.parametrize(
    "reason", ["stp", "peer_disabled", "", None], ids=["stp", "disabled", "empty", "nil"]
)
def test_a_str_or_nil_reason_in_cancel_is_ignored(alice, shared_market, reason):
    market = shared_market
    """§5 cancel: "The `cancelled` event of a peer's cancel always has reason `user`: a `reason`
    key in the command, if sent as a str or nil, is ignored"."""
    alice.submit([new(market, f"r-{reason}", A, "buy", "1")])
    reply = alice.submit([cancel(market, f"r-{reason}", A, reason=reason)])
    assert kinds(reply["events"]) == ["accepted", "cancelled"], reply
    assert reply["events"][1]["reason"] == "user"


@pytest.mark.parametrize(
    "cmd",
    [
        lambda m: cancel(m, "w1", A, peer=5),
        lambda m: replace(m, "w1", A, peer=5, qty="1"),
        lambda m: new(m, "w2", A, "buy", "1", reason=5),
        lambda m: replace(m, "w1", A, reason=5, qty="1"),
    ],
    ids=["int-peer-on-cancel", "int-peer-on-replace", "int-reason-on-new", "int-reason-on-replace"],
)
def test_peer_and_reason_are_ordinary_keys_outside_new_and_cancel(alice, market, cmd):
    """§3: "two names are taken: `peer` in a `new` and `reason` in a `cancel` [...]; in the
    other commands they are keys like any other" (and unknown keys are ignored)."""
    alice.submit([new(market, "w1", A, "buy", "1", "2")])
    reply = alice.submit([cmd(market)])
    assert kinds(reply["events"])[0] == "accepted", reply


def test_unknown_keys_in_commands_are_ignored(alice, market):
    """§3: "Keys a map does not define are ignored, in requests and in commands"."""
    reply = alice.submit(
        [{**new(market, "u1", A, "buy", "1"), "note": {"mine": [1, 2]}, "x": None}]
    )
    assert kinds(reply["events"]) == ["accepted", "rested"], reply


# -- engine rejects --------------------------------------------------------------------------------


def test_engine_validation_stops_at_the_first_failure_in_the_table_order(alice, limited):
    """§10 "Command rejects from the engine": "Validation stops at the first failure, in this
    order" (unknown_market, bad_side, bad_type, bad_tif, bad_stp, bad_qty, bad_price, off_tick,
    off_lot, qty_below_min, qty_above_max, notional_above_max, duplicate_id, would_cross,
    fok_unfillable, unknown_order); each engine reject has an int `seq`."""
    cmd = {
        "op": "new",
        "market": "NOPE-ETH",
        "id": "v1",
        "owner": A,
        "side": "up",
        "type": "stop",
        "tif": "day",
        "stp": "nope",
        "qty": "0",
        "price": "-1",
    }
    steps = [
        ("unknown_market", {"market": limited}),
        ("bad_side", {"side": "buy"}),
        ("bad_type", {"type": "limit"}),
        ("bad_tif", {"tif": "GTC"}),
        ("bad_stp", {"stp": "none"}),
        ("bad_qty", {"qty": "1.5"}),
        ("bad_price", {"price": "1.001"}),
        ("off_tick", {"price": "1"}),
        ("off_lot", {"qty": "2"}),
        ("qty_below_min", {"qty": "11"}),
        ("qty_above_max", {"qty": "10", "price": "20"}),
        ("notional_above_max", {"price": "1"}),
    ]
    got = []
    for _, fix in steps:
        got.append(only(alice.submit([dict(cmd)]))["reason"])
        cmd.update(fix)
    assert got == [reason for reason, _ in steps]
    assert kinds(alice.submit([dict(cmd)])["events"]) == ["accepted", "rested"]  # buy 10 @ 1
    got = [
        only(alice.submit([dict(cmd)]))["reason"],  # the same id again
        only(alice.submit([new(limited, "v2", A, "sell", "1", "5", tif="POST_ONLY")]))["reason"],
        only(
            alice.submit([new(limited, "v3", A, "sell", "0.5", "5", tif="POST_ONLY", qty_note=1)])
        )["reason"],
        only(alice.submit([new(limited, "v4", A, "buy", "2", "5", tif="FOK")]))["reason"],
        only(alice.submit([cancel(limited, "nope", A)]))["reason"],
        only(alice.submit([replace(limited, "nope", A, qty="5")]))["reason"],
    ]
    assert got == [
        "duplicate_id",
        "would_cross",
        "would_cross",
        "fok_unfillable",
        "unknown_order",
        "unknown_order",
    ]


ENGINE_REJECTS = {
    "unknown_market": [
        lambda m: new("NOPE-ETH", "e", A, "buy", "1"),
        lambda m: new("punk-eth", "e", A, "buy", "1"),
        lambda m: new(5, "e", A, "buy", "1"),
        lambda m: cancel("NOPE-ETH", "e", A),
    ],
    "bad_side": [
        lambda m: new(m, "e", A, "BUY", "1"),
        lambda m: new(m, "e", A, None, "1"),
        lambda m: {k: v for k, v in new(m, "e", A, "buy", "1").items() if k != "side"},
    ],
    "bad_type": [
        lambda m: new(m, "e", A, "buy", "1", type=None),
        lambda m: new(m, "e", A, "buy", "1", type="stop"),
    ],
    "bad_tif": [
        lambda m: new(m, "e", A, "buy", "1", tif=None),
        lambda m: new(m, "e", A, "buy", "1", tif="gtc"),
    ],
    "bad_stp": [lambda m: new(m, "e", A, "buy", "1", stp="always")],
    "bad_qty": [
        lambda m: {k: v for k, v in new(m, "e", A, "buy", "1").items() if k != "qty"},
        lambda m: new(m, "e", A, "buy", "1", qty=1.0),
        lambda m: new(m, "e", A, "buy", "1", qty=True),
        lambda m: new(m, "e", A, "buy", "1", qty=None),
        lambda m: new(m, "e", A, "buy", "1", qty="0"),
        lambda m: new(m, "e", A, "buy", "1", qty=0),
        lambda m: new(m, "e", A, "buy", "1", qty=-2),
        lambda m: new(m, "e", A, "buy", "1", qty="-1"),
        lambda m: new(m, "e", A, "buy", "1", qty="+1"),
        lambda m: new(m, "e", A, "buy", "1", qty="1e0"),
        lambda m: new(m, "e", A, "buy", "1", qty=" 1"),
        lambda m: new(m, "e", A, "buy", "1", qty="1 "),
        lambda m: new(m, "e", A, "buy", "1", qty="one"),
        lambda m: new(m, "e", A, "buy", "1", qty="1.0.0"),
        lambda m: new(m, "e", A, "buy", "1", qty="1." + "0" * 39),  # 41 characters
        lambda m: new(m, "e", A, "buy", "1", qty=b"1"),
        lambda m: replace(m, "e", A, qty=2.0),
    ],
    "bad_price": [
        lambda m: new(m, "e", A, "buy"),
        lambda m: new(m, "e", A, "buy", type="limit"),
        lambda m: {**new(m, "e", A, "buy"), "price": None},
        lambda m: new(m, "e", A, "buy", 100.5),
        lambda m: new(m, "e", A, "buy", 1.0),
        lambda m: new(m, "e", A, "buy", True),
        lambda m: new(m, "e", A, "buy", "0"),
        lambda m: new(m, "e", A, "buy", 0),
        lambda m: new(m, "e", A, "buy", "-1"),
        lambda m: new(m, "e", A, "buy", "1e2"),
        lambda m: new(m, "e", A, "buy", "1,5"),
        lambda m: new(m, "e", A, "buy", "1." + "0" * 39),
        lambda m: replace(m, "e", A, price=1.5),
    ],
    "off_tick": [
        lambda m: new(m, "e", A, "buy", "1.001"),
        lambda m: replace(m, "e", A, price="1.005"),
    ],
    "off_lot": [
        lambda m: new(m, "e", A, "buy", "1", "1.5"),
        lambda m: replace(m, "e", A, qty="0.5"),
    ],
    "qty_above_max": [
        lambda m: new(m, "e", A, "buy", "1", "501"),
        lambda m: new(m, "e", A, "buy", "1", 501),
    ],
    "notional_above_max": [lambda m: new(m, "e", A, "buy", "100.01", "400")],
    "unknown_order": [
        lambda m: cancel(m, "e", A),
        lambda m: replace(m, "e", A, qty="1"),
        lambda m: cancel(m, "E", A),
    ],
}


@pytest.mark.parametrize(
    "reason,index",
    [(reason, i) for reason, cases in ENGINE_REJECTS.items() for i in range(len(cases))],
)
def test_engine_rejects(alice, shared_market, reason, index):
    """§10 "Command rejects from the engine (`rejected` event, `seq` is an int)": each reason of
    the table for a command that triggers it; §3: "a float price is rejected `bad_price` and a
    float quantity `bad_qty` ... Booleans are refused the same way"; §5 new: "a nil `type` is
    rejected `bad_type`, a nil `tif` `bad_tif`, a nil `price` on a limit order `bad_price`"."""
    market = shared_market
    cmd = ENGINE_REJECTS[reason][index](market)
    cmd["id"] = f"e-{reason}-{index}"  # one market for all the cases: ids of their own
    if cmd["op"] == "replace" and reason != "unknown_order":
        alice.submit([new(market, cmd["id"], A, "buy", "1", "2")])
    rejected(alice.submit([cmd]), reason, numbered=True)


def test_a_nil_stp_means_the_markets_default(alice, market):
    """§5 new: "a nil `stp` means the market's default" (the market's is cancel_newest)."""
    alice.submit([new(market, "n1", A, "sell", "5")])
    reply = alice.submit([new(market, "n2", A, "buy", "5", stp=None)])
    assert kinds(reply["events"]) == ["accepted", "cancelled"], reply
    assert reply["events"][1]["reason"] == "stp" and reply["events"][1]["id"] == "n2"


def test_the_price_of_a_market_order_is_ignored(alice, bob, market):
    """§5 new: `price` "required for `limit`, ignored for `market`"."""
    alice.submit([new(market, "m1", A, "sell", "7", "1")])
    reply = bob.submit([new(market, "m2", B, "buy", 1.5, "1", type="market")])
    assert kinds(reply["events"]) == ["accepted", "trade"], reply
    assert reply["events"][1]["price"] == "7"
    reply = bob.submit([new(market, "m3", B, "buy", "junk", "1", type="market")])
    assert kinds(reply["events"]) == ["accepted", "cancelled"], reply
    assert reply["events"][1]["reason"] == "ioc"


# -- decimals and ids ------------------------------------------------------------------------------


def test_int_prices_and_quantities_are_read_as_decimal_text(alice, market):
    """§3: "In commands a client may also send an **int** (`3` is read as `"3"`)"."""
    reply = alice.submit([new(market, "i1", A, "buy", 12, 3)])
    assert reply["events"][1]["price"] == "12" and reply["events"][1]["qty"] == "3", reply
    reply = alice.submit([replace(market, "i1", A, price=11, qty=2)])
    assert reply["events"][1]["price"] == "11" and reply["events"][1]["qty"] == "2", reply


def test_decimal_text_of_40_characters_is_taken(alice, market):
    """§3: decimals "at most 40 characters"; the node sends them canonical."""
    price = "1." + "0" * 38  # 40 characters
    assert len(price) == 40
    reply = alice.submit([new(market, "forty", A, "buy", price, "2")])
    assert kinds(reply["events"]) == ["accepted", "rested"], reply
    assert reply["events"][1]["price"] == "1"


def test_the_node_sends_decimals_canonical(alice, gold):
    """§3: "The node always sends decimals as canonical str: no trailing zeros (`"100.5"`, not
    `"100.50"`), no trailing `.`"; decimal text is "digits, at most one `.`"."""
    reply = alice.submit(
        [new(gold, "g1", A, "buy", "100.50", "2.50"), new(gold, "g2", A, "buy", "0100.00", "0.10")]
    )
    rested = [e for e in reply["events"] if e["event"] == "rested"]
    assert [(e["price"], e["qty"]) for e in rested] == [("100.5", "2.5"), ("100", "0.1")], reply
    snapshot = alice.snapshot(gold)
    assert snapshot["bids"] == [
        {"price": "100.5", "qty": "2.5", "orders": 1},
        {"price": "100", "qty": "0.1", "orders": 1},
    ]
    orders = alice.open_orders(A)["orders"]
    mine = [(o["price"], o["qty"]) for o in orders if o["market"] == gold]
    assert mine == [("100.5", "2.5"), ("100", "0.1")]


def test_ids_come_back_as_sent_with_their_type(alice, market):
    """§3: "**Order ids** (`id`) are chosen by the client: a str of 1 to 64 characters or an int.
    They come back exactly as sent, with their type: `1` and `"1"` are different ids"."""
    long_id = "L" * 64
    reply = alice.submit(
        [
            new(market, 1, A, "buy", "1"),
            new(market, "1", A, "buy", "1"),
            new(market, long_id, A, "buy", "1"),
            new(market, "é", A, "buy", "1"),
            new(market, -7, A, "buy", "1"),
            new(market, 2**53, A, "buy", "1"),
        ]
    )
    accepted = answers(reply)
    assert [a["event"] for a in accepted] == ["accepted"] * 6, reply
    ids = [a["id"] for a in accepted]
    assert ids == [1, "1", long_id, "é", -7, 2**53]
    assert [type(i) for i in ids] == [int, str, str, str, int, int]
    orders = [o for o in alice.open_orders(A)["orders"] if o["market"] == market]
    assert {(type(o["id"]), o["id"]) for o in orders} == {(type(i), i) for i in ids}
    reply = alice.submit([cancel(market, "1", A)])
    assert reply["events"][1]["id"] == "1" and type(reply["events"][1]["id"]) is str
    assert any(
        o["id"] == 1 and type(o["id"]) is int
        for o in alice.open_orders(A)["orders"]
        if o["market"] == market
    )


def test_owners_of_1_to_128_characters_compared_exactly(mm, market):
    """§3: "**Owners** are str of 1 to 128 characters, compared exactly (`"0xA11CE"` is not
    `"0xa11ce"`)" (a relayer may act for any owner)."""
    reply = mm.submit(
        [
            new(market, "o1", "o" * 128, "buy", "1"),
            new(market, "o1", "x", "buy", "1"),
            new(market, "o1", "0xA11CE", "buy", "1"),
            new(market, "o1", "0xa11ce", "buy", "1"),
        ]
    )
    assert [a["event"] for a in answers(reply)] == ["accepted"] * 4, reply  # no duplicate_id
    assert [a["owner"] for a in answers(reply)] == ["o" * 128, "x", "0xA11CE", "0xa11ce"]
    reply = mm.submit([cancel(market, "o1", "0xA11CE")])
    assert kinds(reply["events"]) == ["accepted", "cancelled"]
    assert mm.snapshot(market)["bids"] == [{"price": "1", "qty": "3", "orders": 3}]


def test_an_id_may_be_reused_once_the_order_is_gone(alice, market):
    """§5 new: `id` "unique per owner among the owner's live orders in that market"."""
    alice.submit([new(market, "again", A, "buy", "1")])
    rejected(alice.submit([new(market, "again", A, "buy", "1")]), "duplicate_id", numbered=True)
    alice.submit([cancel(market, "again", A)])
    assert kinds(alice.submit([new(market, "again", A, "buy", "1")])["events"]) == [
        "accepted",
        "rested",
    ]


# -- gateway rejects -------------------------------------------------------------------------------


def test_not_authorized_for_an_owner_the_peer_does_not_act_for(alice, bob, market):
    """§10 "Command rejects before the engine": `not_authorized` "the peer may not act for the
    command's `owner`", `seq` nil; §5: "the peer must be allowed to act for it"."""
    alice.submit([new(market, "n1", A, "sell", "10", "2")])
    reply = bob.submit(
        [
            new(market, "n2", A, "buy", "10", "1"),
            cancel(market, "n1", A),
            replace(market, "n1", A, qty="1"),
            new(market, "n3", "0xA11CE", "buy", "1"),
        ]
    )
    for answer, cmd_op in zip(answers(reply), ["new", "cancel", "replace", "new"], strict=True):
        assert (answer["event"], answer["reason"], answer["seq"], answer["op"]) == (
            "rejected",
            "not_authorized",
            None,
            cmd_op,
        )
    assert len(reply["events"]) == 4
    assert bob.snapshot(market)["asks"] == [{"price": "10", "qty": "2", "orders": 1}]


def test_gateway_rejects_come_before_the_engine(alice, bob, market, admin):
    """§10: "Then each command, in order, gets the first of these that applies (and, if none
    does, goes to the engine)" (malformed, peer_disabled, throttled, not_authorized,
    market_halted, too_many_orders): a gateway reason wins over an engine one."""
    reply = bob.submit([new("NOPE-ETH", "g1", A, "up", "1")])
    rejected(reply, "not_authorized", numbered=False)
    admin("halt", market=market)
    try:
        rejected(bob.submit([new(market, "g2", A, "buy", "1")]), "not_authorized", numbered=False)
        rejected(alice.submit([new(market, "g3", A, "up", 1.5)]), "market_halted", numbered=False)
        rejected(alice.submit([_cmd(market, id=None)]), "malformed", numbered=False)
    finally:
        admin("resume", market=market)


def test_a_halted_market_refuses_new_and_replace_but_takes_cancels(alice, market, admin):
    """§10: `market_halted` "(`new`, `replace`) the operator halted the command's market (admin
    `halt`). **Cancels are not refused**"; §13: "until `resume`"."""
    alice.submit([new(market, "h1", A, "buy", "1", "3"), new(market, "h2", A, "buy", "2", "3")])
    admin("halt", market=market)
    try:
        reply = alice.submit(
            [
                new(market, "h3", A, "buy", "1"),
                replace(market, "h1", A, qty="1"),
                cancel(market, "h2", A),
                cancel(market, "nope", A),
            ]
        )
        groups = by_command(reply)
        assert [(g[0]["event"], g[0].get("reason"), g[0]["seq"] is None) for g in groups] == [
            ("rejected", "market_halted", True),
            ("rejected", "market_halted", True),
            ("accepted", None, False),
            ("rejected", "unknown_order", False),
        ], reply
        assert kinds(groups[2]) == ["accepted", "cancelled"]
    finally:
        admin("resume", market=market)
    assert kinds(alice.submit([new(market, "h3", A, "buy", "1")])["events"]) == [
        "accepted",
        "rested",
    ]


# -- answers, order and seq ------------------------------------------------------------------------


def test_one_answer_per_command_in_command_order_with_their_events(alice, bob, market):
    """§6 reply: "for each command in order: its answer, `accepted` or `rejected`, then **every**
    other event of the command, in engine order ... a reply to *n* commands holds exactly *n*
    `accepted` or `rejected` events; the events between two answers belong to the first one's
    command"; §4: "Commands of one message are not atomic"."""
    alice.submit([new(market, "s1", A, "sell", "10", "2"), new(market, "s2", A, "sell", "11", "2")])
    cmds = [
        new(market, "t1", B, "buy", "11", "3"),  # takes s1 (2) then s2 (1): two trades, filled
        new(market, "t2", B, "up", "1"),  # bad_side
        {"op": "new", "market": market, "owner": B},  # malformed
        new(market, "t3", B, "buy", "9", "1"),  # rests
        cancel(market, "t3", B),
        new(market, "t4", B, "buy", "11", "2", tif="IOC"),  # takes s2's last 1, rest ioc
        new(market, "t3", B, "buy", "9", "1"),  # the id is free again
    ]
    reply = bob.submit(cmds)
    groups = by_command(reply)
    assert len(groups) == len(cmds) == len(answers(reply))
    assert [kinds(g) for g in groups] == [
        ["accepted", "trade", "trade"],
        ["rejected"],
        ["rejected"],
        ["accepted", "rested"],
        ["accepted", "cancelled"],
        ["accepted", "trade", "cancelled"],
        ["accepted", "rested"],
    ], reply
    for group, cmd in zip(groups, cmds, strict=True):
        if isinstance(cmd, dict) and "id" in cmd:
            assert group[0]["id"] == cmd["id"]
    trades = [e for e in groups[0] if e["event"] == "trade"]
    assert [
        (t["maker_id"], t["price"], t["qty"], t["maker_remaining"], t["taker_remaining"])
        for t in trades
    ] == [
        ("s1", "10", "2", "0", "1"),
        ("s2", "11", "1", "1", "0"),
    ]
    assert (
        groups[5][2]["reason"] == "ioc"
        and groups[5][2]["qty"] == "1"
        and groups[5][2]["remaining"] == "0"
    )
    # §8: "within a reply the numbered events have consecutive seqs"
    seqs = [e["seq"] for e in reply["events"] if e["seq"] is not None]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert all(e["seq"] is None for e in groups[2])


def test_seqs_increase_across_replies_and_gateway_rejects_take_no_number(alice, bob, market):
    """§8: "the engine numbers every event it produces, `accepted` and engine `rejected`
    included, with one counter over all markets and all peers: gapless, increasing ... Events
    that never reached the engine ... have `seq` nil and take no number"."""
    r1 = alice.submit([new(market, "q1", A, "buy", "1")])
    r2 = alice.submit(
        [new(market, "q2", B, "buy", "1"), {"op": "new"}, new(market, "q2", A, "up", "1")]
    )
    last1 = r1["events"][-1]["seq"]
    (engine_reject,) = [e for e in r2["events"] if e["seq"] is not None]
    assert engine_reject["seq"] > last1
    # nothing else runs between these two of alice's requests unless other tests do: the gap is
    # the other peers' share, never negative
    r3 = bob.submit([new(market, "q3", B, "buy", "1")])
    assert r3["events"][0]["seq"] > engine_reject["seq"]


def test_new_events_follow_the_documented_shapes(alice, bob, market):
    """§7 "What follows each answer": `new`: "zero or more `trade` (and `cancelled` with reason
    `stp`), then one of: `rested` ..., `cancelled` with reason `ioc` or `stp` ..., or nothing
    (filled in full)"; §5: "Market and IOC orders never rest ...; FOK fills in full at once or
    is rejected `fok_unfillable`; POST_ONLY is rejected `would_cross` rather than take
    liquidity. Trades happen at the resting order's price"."""
    alice.submit([new(market, "a1", A, "sell", "10", "5"), new(market, "a2", A, "sell", "12", "5")])
    partial = bob.submit([new(market, "b1", B, "buy", "11", "7")])  # 5 @ 10, 2 rest @ 11
    assert kinds(partial["events"]) == ["accepted", "trade", "rested"], partial
    assert partial["events"][1]["price"] == "10" and partial["events"][2]["qty"] == "2"
    assert partial["events"][1]["aggressor"] == "buy"
    market_order = bob.submit(
        [new(market, "b2", B, "buy", qty="9", type="market")]
    )  # 5 @ 12, 4 ioc
    assert kinds(market_order["events"]) == ["accepted", "trade", "cancelled"], market_order
    assert market_order["events"][2]["reason"] == "ioc" and market_order["events"][2]["qty"] == "4"
    rejected(
        bob.submit([new(market, "b3", B, "buy", "12", "1", tif="FOK")]),
        "fok_unfillable",
        numbered=True,
    )
    alice.submit([new(market, "a3", A, "sell", "13", "2")])
    fok = bob.submit([new(market, "b3", B, "buy", "13", "2", tif="FOK")])
    assert kinds(fok["events"]) == ["accepted", "trade"], fok
    rejected(
        alice.submit([new(market, "a4", A, "sell", "11", "1", tif="POST_ONLY")]),
        "would_cross",
        numbered=True,
    )
    post = alice.submit([new(market, "a4", A, "sell", "11.01", "1", tif="POST_ONLY")])
    assert kinds(post["events"]) == ["accepted", "rested"], post
    sell = alice.submit([new(market, "a5", A, "sell", "1", "2")])  # hits b1's 2 @ 11
    assert kinds(sell["events"]) == ["accepted", "trade"], sell
    assert sell["events"][1]["price"] == "11" and sell["events"][1]["aggressor"] == "sell"


def test_cancel_and_replace_events(alice, market):
    """§7: `cancel` → `cancelled` with reason `user`; `replace` → `replaced`; "if `in_place` is
    false, then the re-entry's events as for `new`"; §5 replace: "Same price and a smaller or
    equal quantity: the order is reduced in place ... (`replaced` with `in_place: true`).
    Anything else: the order leaves the book and re-enters ... (`replaced` with `in_place:
    false`, then the re-entry's events)"."""
    alice.submit([new(market, "c1", A, "buy", "5", "4")])
    same = alice.submit([replace(market, "c1", A, qty="4")])
    assert (
        kinds(same["events"]) == ["accepted", "replaced"] and same["events"][1]["in_place"] is True
    ), same
    down = alice.submit([replace(market, "c1", A, qty="3", price="5")])
    assert (
        kinds(down["events"]) == ["accepted", "replaced"] and down["events"][1]["in_place"] is True
    )
    assert (down["events"][1]["price"], down["events"][1]["qty"], down["events"][1]["side"]) == (
        "5",
        "3",
        "buy",
    )
    up = alice.submit([replace(market, "c1", A, qty="6")])
    assert (
        kinds(up["events"]) == ["accepted", "replaced", "rested"]
        and up["events"][1]["in_place"] is False
    ), up
    moved = alice.submit([replace(market, "c1", A, price="5.5")])
    assert kinds(moved["events"]) == ["accepted", "replaced", "rested"], moved
    assert moved["events"][2]["price"] == "5.5" and moved["events"][2]["qty"] == "6"
    gone = alice.submit([cancel(market, "c1", A)])
    assert kinds(gone["events"]) == ["accepted", "cancelled"], gone
    assert (
        gone["events"][1]["reason"],
        gone["events"][1]["qty"],
        gone["events"][1]["remaining"],
    ) == ("user", "6", "0")
    assert answers(alice.submit([cancel(market, "c1", A)]))[0]["reason"] == "unknown_order"


def test_a_replace_that_crosses_trades_at_once(alice, bob, market):
    """§5 replace: the re-entered order "may trade at once (`replaced` with `in_place: false`,
    then the re-entry's events)"."""
    alice.submit([new(market, "x1", A, "sell", "10", "2")])
    bob.submit([new(market, "y1", B, "buy", "9", "3")])
    reply = bob.submit([replace(market, "y1", B, price="10")])
    assert kinds(reply["events"]) == ["accepted", "replaced", "trade", "rested"], reply
    assert reply["events"][2]["price"] == "10" and reply["events"][3]["qty"] == "1"


def test_self_trade_prevention_events(alice, carol, gold):
    """§7: `cancelled` reason `stp` "by self-trade prevention: the incoming order or a resting one
    of the same owner"; `remaining` "above 0 only after an STP `decrement`" (the market's mode
    here is decrement)."""
    carol.submit([new(gold, "k1", A, "sell", "10", "5")])
    reply = alice.submit([new(gold, "k2", A, "buy", "10", "2")])
    assert kinds(reply["events"]) == ["accepted", "cancelled", "cancelled"], reply
    maker_cut = next(e for e in reply["events"][1:] if e["id"] == "k1")
    taker_cut = next(e for e in reply["events"][1:] if e["id"] == "k2")
    assert (maker_cut["reason"], maker_cut["qty"], maker_cut["remaining"]) == ("stp", "2", "3")
    assert (taker_cut["reason"], taker_cut["qty"], taker_cut["remaining"]) == ("stp", "2", "0")
    reply = alice.submit([new(gold, "k3", A, "buy", "10", "1", stp="cancel_oldest")])
    assert kinds(reply["events"]) == ["accepted", "cancelled", "rested"], reply
    assert reply["events"][1]["id"] == "k1" and reply["events"][1]["remaining"] == "0"


def test_quantities_add_up_for_every_order(alice, bob, market):
    """§7: "For every order, filled + resting + cancelled = its quantity (after a replace, the
    new quantity)"."""
    alice.submit([new(market, "z1", A, "sell", "10", "3"), new(market, "z2", A, "sell", "10", "4")])
    reply = bob.submit([new(market, "w1", B, "buy", "10", "9", tif="IOC")])
    filled = sum(int(e["qty"]) for e in reply["events"] if e["event"] == "trade")
    dropped = sum(int(e["qty"]) for e in reply["events"] if e["event"] == "cancelled")
    assert (filled, dropped) == (7, 2), reply
    assert bob.snapshot(market)["asks"] == []
