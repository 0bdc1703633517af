"""The `markets` and `whoami` requests (docs/protocol.md §4, §6, §14)."""

from __future__ import annotations

import pytest

from .conftest import EXTRA, G_MARKETS, L_MARKETS, P_MARKETS
from .wire import is_canonical_decimal, new, poll_until

MARKET_KEYS = {
    "market",
    "base",
    "quote",
    "tick",
    "lot",
    "min_qty",
    "max_qty",
    "max_notional",
    "stp",
    "halted",
    *("signatures", "chain_id", "contract", "base_token", "quote_token", "base_token_id"),
    *("lot_units", "tick_units", "fee_bps"),
}
NOT_SIGNING = {
    "signatures": "off",
    "chain_id": None,
    "contract": None,
    "base_token": None,
    "quote_token": None,
    "base_token_id": "0",
    "lot_units": None,
    "tick_units": None,
    "fee_bps": 0,
}
"""§6: the settlement keys of a market that takes no signed orders, with no `[settlement]`
configured: `signatures` "off", the domain and token keys nil, `base_token_id` 0."""
LIMIT_KEYS = {
    "rate_per_s",
    "burst",
    "max_open_orders_per_owner",
    "max_commands_per_message",
    "max_message_bytes",
}
WHOAMI_KEYS = {
    "type",
    "v",
    "curve",
    "name",
    "registered",
    "owners",
    "relayer",
    "disabled",
    "cancel_on_disconnect",
    "ref",
}

DEFAULT_MARKETS = [
    {
        "market": "PUNK-ETH",
        "base": "PUNK",
        "quote": "ETH",
        "tick": "0.01",
        "lot": "1",
        "min_qty": "1",
        "max_qty": "500",
        "max_notional": "40000",
        "stp": "cancel_newest",
        "halted": False,
    }
    | NOT_SIGNING,
    {
        "market": "LAND-ETH",
        "base": "LAND",
        "quote": "ETH",
        "tick": "0.001",
        "lot": "1",
        "min_qty": "1",
        "max_qty": "1000",
        "max_notional": "10000",
        "stp": "cancel_newest",
        "halted": False,
    }
    | NOT_SIGNING,
    {
        "market": "GOLD-USDC",
        "base": "GOLD",
        "quote": "USDC",
        "tick": "0.05",
        "lot": "0.1",
        "min_qty": "0.1",
        "max_qty": "100",
        "max_notional": "250000",
        "stp": "decrement",
        "halted": False,
    }
    | NOT_SIGNING,
]


def markets_of(peer, ref="rules") -> dict:
    answer = peer.request({"v": 1, "type": "markets", "ref": ref})
    assert answer["type"] == "markets", answer
    assert set(answer) == {"type", "v", "markets", "limits", "ref"}, answer
    assert answer["ref"] == ref
    return answer


def whoami(peer, ref="me") -> dict:
    answer = peer.request({"v": 1, "type": "whoami", "ref": ref})
    assert answer["type"] == "whoami", answer
    assert set(answer) == WHOAMI_KEYS, answer
    assert answer["ref"] == ref
    return answer


def test_markets_lists_every_market_in_configured_order_with_its_rules(alice):
    """§6 markets: "`markets` | array of maps | one per market, in the node's configured order",
    each with `market`, `base`, `quote`, `tick`, `lot`, `min_qty`, `max_qty`, `max_notional`,
    `stp`, `halted`; §14's example shows the default markets."""
    answer = markets_of(alice)
    listed = answer["markets"]
    for market in listed:
        assert set(market) == MARKET_KEYS, market
        for key in ("tick", "lot", "min_qty", "max_qty", "max_notional"):
            assert market[key] is None or is_canonical_decimal(market[key]), market
    configured = ["PUNK-ETH", "LAND-ETH", "GOLD-USDC"] + [
        m.symbol for m in EXTRA + P_MARKETS + G_MARKETS + L_MARKETS
    ]
    assert [m["market"] for m in listed] == configured
    assert listed[:3] == DEFAULT_MARKETS
    by_symbol = {m["market"]: m for m in listed}
    assert (
        by_symbol["L01-ETH"]
        == {
            "market": "L01-ETH",
            "base": "L01",
            "quote": "ETH",
            "tick": "0.01",
            "lot": "1",
            "min_qty": "5",
            "max_qty": "10",
            "max_notional": "100",
            "stp": "cancel_newest",
            "halted": False,
        }
        | NOT_SIGNING
    )


def test_markets_without_bounds_say_nil_and_min_qty_is_at_least_a_lot(alice):
    """§6 markets: `max_qty` / `max_notional` "decimal str or nil ... nil: no bound"; `min_qty`
    "at least one lot"; engine.md: `min_qty` "default one lot", `stp` "default
    `cancel_newest`"."""
    unbounded = next(m for m in markets_of(alice)["markets"] if m["market"] == "U1-ETH")
    assert (
        unbounded
        == {
            "market": "U1-ETH",
            "base": "U1",
            "quote": "ETH",
            "tick": "0.5",
            "lot": "2",
            "min_qty": "2",
            "max_qty": None,
            "max_notional": None,
            "stp": "cancel_newest",
            "halted": False,
        }
        | NOT_SIGNING
    )


def test_markets_gives_the_default_limits(alice):
    """§6 markets: "The limits map (`[limits]`, §12)": `rate_per_s`, `burst`,
    `max_open_orders_per_owner`, `max_commands_per_message`, `max_message_bytes`; §12's
    defaults; §14's example."""
    assert markets_of(alice)["limits"] == {
        "rate_per_s": 200000,
        "burst": 400000,
        "max_open_orders_per_owner": 100000,
        "max_commands_per_message": 1000,
        "max_message_bytes": 1048576,
    }


def test_markets_shows_a_halt(alice, market, admin):
    """§6 markets: `halted` "the operator halted it: `new` and `replace` are rejected
    `market_halted`"; §4: "ask again after a `market_halted` to see when trading resumes"."""

    def halted():
        return next(m for m in markets_of(alice)["markets"] if m["market"] == market)["halted"]

    assert halted() is False
    admin("halt", market=market)
    try:
        assert halted() is True
        assert (
            alice.submit([new(market, "h", "0xa11ce", "buy", "1")])["events"][0]["reason"]
            == "market_halted"
        )
    finally:
        admin("resume", market=market)
    assert halted() is False


def test_whoami_of_a_registered_peer(node, alice, mm, bob):
    """§6 whoami: `curve`, `name` ("the peer name the node knows this connection by"),
    `registered`, `owners`, `relayer`, `disabled`, `cancel_on_disconnect`; §14's example for
    alice; `owners` "empty for a relayer"."""
    assert whoami(alice) == {
        "type": "whoami",
        "v": 1,
        "curve": True,
        "name": "alice",
        "registered": True,
        "owners": ["0xa11ce"],
        "relayer": False,
        "disabled": False,
        "cancel_on_disconnect": False,
        "ref": "me",
    }
    relayer = whoami(mm)
    assert (relayer["name"], relayer["owners"], relayer["relayer"]) == ("mm", [], True)
    cod = node.peer("cod")
    try:
        answer = whoami(cod)
        assert (answer["name"], answer["owners"], answer["cancel_on_disconnect"]) == (
            "cod",
            ["0xc0d"],
            True,
        )
    finally:
        cod.close()
    dave = node.peer("dave")
    try:
        assert sorted(whoami(dave)["owners"]) == ["0xda7e", "0xda7e2"]
    finally:
        dave.close()


@pytest.mark.parametrize("kind", ["markets", "whoami"])
def test_markets_and_whoami_make_this_connection_the_reports_one(node, bob, market, kind):
    """§4: "Every request (a `submit`, `snapshot`, `open_orders`, `ping`, `markets` or `whoami`)
    also makes the connection it came on the one that receives the peer's execution reports";
    §8: answers are "`reply`, `snapshot`, `open_orders`, `pong`, `markets`, `whoami` or
    `error`", in request order."""
    first, second = node.peer("alice"), node.peer("alice")
    try:
        first.submit([new(market, "s1", "0xa11ce", "sell", "10", "2")])
        second.send({"v": 1, "type": kind, "ref": 1})
        second.send({"v": 1, "type": "ping", "ref": 2})
        assert [second.answer()["type"], second.answer()["type"]] == [kind, "pong"]
        bob.submit([new(market, "t1", "0xb0b", "buy", "10", "1")])
        assert len(second.wait_reports(1)) == 1
        assert first.reports_before_pong() == []
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("kind", ["markets", "whoami"])
def test_markets_and_whoami_versions_and_shape(alice, kind):
    """§3: a `v` other than 1 is `bad_version`; a request without `ref` gets `ref: nil`; keys a
    map does not define are ignored."""
    answer = alice.request({"v": 3, "type": kind, "ref": "x"})
    assert (answer["type"], answer["reason"], answer["ref"]) == ("error", "bad_version", "x")
    assert alice.request({"v": 1, "type": kind})["ref"] is None
    assert alice.request({"v": 1, "type": kind, "extra": [1], "ref": 4})["type"] == kind


def test_whoami_of_a_disabled_peer(node, admin):
    """§6 whoami: `disabled` "the operator disabled the peer: its commands are rejected
    `peer_disabled`"."""
    peer = node.peer("dis")
    try:
        assert whoami(peer)["disabled"] is False
        admin("disable_peer", peer="dis")
        try:
            poll_until(lambda: whoami(peer)["disabled"] is True, what="whoami says disabled")
        finally:
            admin("enable_peer", peer="dis")
        assert whoami(peer)["disabled"] is False
    finally:
        peer.close()
