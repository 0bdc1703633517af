"""`mnode integrity maker|makers`, and `[liquidity.NAME]` owners known to `mnode integrity scan`."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.test_integrity import home, mnode  # noqa: F401  (the fixture: a replayed scenario)


def scanned(home_path) -> set[tuple[str, tuple[str, ...]]]:
    result = mnode("integrity", "scan", "--home", str(home_path), "--json")
    assert result.exit_code == 0, result.stderr
    return {(a["detector"], tuple(a["wallets"])) for a in json.loads(result.stdout)}


def test_a_declared_maker_is_nobodys_partner_and_still_self_trades(home):  # noqa: F811
    before = scanned(home)
    assert {a for a in before if "0xk" in a[1]} == {
        ("round_trips", ("0xchurn", "0xk")), ("trade_cycles", ("0xchurn", "0xk")),
        ("churn", ("0xchurn", "0xk")),
    }  # fmt: skip
    for owner in ("0xk", "0xw"):  # 0xw self-trades
        declared = mnode("integrity", "maker", owner, "--reason", "desk", "--home", str(home))
        assert declared.exit_code == 0, declared.stderr
        assert declared.stderr == f"{owner} in every market: a known market maker (desk)\n"
    after = scanned(home)
    assert after == {a for a in before if "0xk" not in a[1]}
    assert ("self_trades", ("0xw",)) in after
    listed = mnode("integrity", "makers", "--home", str(home), "--json")
    assert [(m["owner"], m["market"], m["source"]) for m in json.loads(listed.stdout)] == [
        ("0xk", "*", "operator"), ("0xw", "*", "operator"),
    ]  # fmt: skip
    forgot = mnode("integrity", "maker", "0xk", "--forget", "--home", str(home))
    assert forgot.exit_code == 0 and "no longer" in forgot.stderr
    assert scanned(home) == before


def test_a_liquidity_instances_owner_is_known_to_the_scan(home):  # noqa: F811
    config = home / "config.toml"
    config.write_text(config.read_text() + '\n[liquidity.desk]\nstrategy = "market_maker"\n'
                      'market = "PUNK-ETH"\npeer = "desk"\nowner = "0xK"\n')  # fmt: skip
    assert not {a for a in scanned(home) if "0xk" in a[1]}
    listed = mnode("integrity", "makers", "--home", str(home), "--json")
    makers = [(m["owner"], m["market"], m["source"], m["why"]) for m in json.loads(listed.stdout)]
    assert makers == [("0xk", "PUNK-ETH", "liquidity", "desk")]


def test_maker_mistakes_are_one_line(home):  # noqa: F811
    unsaid = mnode("integrity", "maker", "0xk", "--home", str(home))
    assert (unsaid.exit_code, unsaid.stderr) == (
        2, "mnode: say why: --reason TEXT (a market-making agreement, a desk, …)\n",
    )  # fmt: skip
    unknown = mnode("integrity", "maker", "0xk", "--market", "PUNK-ETH", "--forget",
                    "--home", str(home))  # fmt: skip
    assert (unknown.exit_code, unknown.stderr) == (
        2, "mnode: 0xk was not declared a market maker in PUNK-ETH\n",
    )  # fmt: skip
    (home / "node.json").write_text("{}")
    running = mnode("integrity", "maker", "0xk", "--reason", "desk", "--home", str(home))
    assert running.exit_code == 4
    assert running.stderr.startswith(f"mnode: a node is running on {home}: stop it first")


def test_the_analytics_process_knows_the_liquidity_owners_and_books_them(home):  # noqa: F811
    """The analytics process records config.toml's instances when it starts, its first sync
    books them, and the answers to user SQL show them (the file's external access closed)."""
    from marketnode.node.analytics.service import AnalyticsService
    from marketnode.node.home.layout import Home

    config = home / "config.toml"
    table = 'strategy = "market_maker"\nmarket = "PUNK-ETH"\npeer = "desk"\nowner = "0xK"\n'
    config.write_text(config.read_text() + f'\n[liquidity.desk]\n{table}quote = "1000"\n')
    service = AnalyticsService(Home(home), token=b"t")
    try:
        service.follower.sync()
        answer = service.sql("SELECT instance, owner, base, quote, fills FROM liquidity_pnl")
        assert answer["ok"], answer
        # 0xk bought 2+3+4+5+6+7 from the churner and sold as much back at 106: flat
        ((instance, owner, base, quote, fills),) = answer["result"]["rows"]
        books = (instance, owner, Decimal(base), Decimal(quote), fills)
        assert books == ("desk", "0xk", 0, 1000, 12)
        known = service.sql("SELECT owner, market, source FROM known_makers")["result"]["rows"]
        assert known == [["0xk", "PUNK-ETH", "liquidity"]]
    finally:
        service.close()
