"""The labelled market: every wash pattern and benign kind is there, with times that let legs
be hours apart, and benign wallets are never labelled wash."""

from marketnode.node.tools.washgen import (
    BENIGN_KINDS,
    WASH_PATTERNS,
    generate_labelled_market,
    pattern_of,
)


def test_every_pattern_and_kind_is_drawn_and_the_labels_do_not_overlap():
    market = generate_labelled_market(4, 6000)
    assert {pattern_of(name) for name in market.wash_groups} == set(WASH_PATTERNS)
    assert all(market.benign[kind] for kind in BENIGN_KINDS)
    wash = set().union(*market.wash_groups.values())
    benign = set().union(*market.benign.values())
    assert not wash & benign and not wash & market.honest and not wash & market.makers
    assert not benign & market.honest


def test_commands_carry_times_and_slow_legs_are_hours_apart():
    market = generate_labelled_market(5, 6000)
    assert len(market.times) == len(market.commands)
    assert market.times == sorted(market.times)
    for name, members in market.wash_groups.items():
        if pattern_of(name) != "slow":
            continue
        times = [t for c, t in zip(market.commands, market.times, strict=True)
                 if c.get("owner") in members]  # fmt: skip
        assert times[-1] - times[0] >= 3600 * 10**9, name


def test_the_market_order_pattern_crosses_with_market_orders():
    market = generate_labelled_market(6, 6000)
    crossing = set().union(
        *(members for name, members in market.wash_groups.items()
          if pattern_of(name) == "market_order")
    )  # fmt: skip
    orders = [c for c in market.commands if c.get("owner") in crossing and c["op"] == "new"]
    assert any(c.get("type") == "market" and c["side"] == "buy" for c in orders)
    assert any(c.get("type") == "market" and c["side"] == "sell" for c in orders)


def test_the_same_seed_makes_the_same_market():
    assert generate_labelled_market(7, 3000).commands == generate_labelled_market(7, 3000).commands
