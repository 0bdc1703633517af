"""`mnode load --signed` against a real `mnode start` process: every order signed by a dev
wallet and accepted as signed (the journal holds its digest), trades made; and each mistake in
one line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.chain.orders import dev_wallets
from marketnode.node.core.commands import NewOrder
from marketnode.node.core.engine import Engine
from marketnode.node.core.events import Trade
from marketnode.node.store.lmdb_store import Store
from marketnode.node.tools.e2e import (
    make_signed,
    prepare_home,
    start_node_process,
    stop_node_process,
)

runner = CliRunner()
SIGNATURE_REJECTS = {"bad_signature", "wrong_chain", "nonce_used", "expired", "malformed"}


def mnode(home, *args: str):
    return runner.invoke(app, [*args, "--home", str(home.path)])


@pytest.fixture
def signed_home(tmp_path):
    """A home whose PUNK-ETH takes signed orders (the e2e bench's settings), with the relayer
    peer `load`, served by `mnode start`; the process is stopped after the test."""
    home, _ = prepare_home(tmp_path / "home")
    make_signed(home.path)
    process = start_node_process(home)
    yield home, process
    stop_node_process(process)


def test_signed_load_is_accepted_as_signed_and_trades(signed_home):
    home, process = signed_home
    loaded = mnode(home, "load", "--signed", "--as", "load", "--rate", "400", "--duration", "2",
                   "--owners", "4", "--first-id", "7", "--json")  # fmt: skip
    assert loaded.exit_code == 0, loaded.stderr
    summary = json.loads(loaded.stdout)
    assert summary["sent"] == summary["answered"] > 0
    assert summary["accepted"] > summary["sent"] // 2
    assert not SIGNATURE_REJECTS & set(summary["rejects"]), summary["rejects"]
    stop_node_process(process)
    owners = {wallet.text for wallet in dev_wallets(4)}
    engine, trades, orders = Engine(), [], []
    with Store(home.store_path(home.config()), readonly=True) as store:
        for _, command in store.journal():
            out: list = []
            engine.process(command, out)
            trades += [event for event in out if type(event) is Trade]
            if type(command) is NewOrder:
                orders.append(command)
    assert len(orders) == summary["sent"]
    assert all(order.order_hash and order.sig and order.owner in owners for order in orders)
    assert {order.market for order in orders} == {"PUNK-ETH"}  # the one market taking them
    assert sorted(int(order.nonce) for order in orders) == list(range(7, 7 + len(orders)))
    assert trades and all(t.maker_owner in owners and t.taker_owner in owners for t in trades)


def test_signed_load_mistakes_are_one_line(tmp_path, signed_home):
    home, _ = signed_home
    plain, _ = prepare_home(tmp_path / "plain")
    cases = [
        (plain, [], "--signed: [settlement] contract is not set"),
        (home, ["--markets", "LAND-ETH"], "--signed: LAND-ETH take(s) no signed orders"),
        (home, ["--mix", "limit=1,cancel=0.5"], "--mix: cancel: not with --signed"),
        (home, ["--mix", "market=1"], "--mix: market: not with --signed"),
    ]
    for where, extra, words in cases:
        result = mnode(where, "load", "--signed", "--as", "load", "--duration", "1", *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert result.stderr.startswith("mnode: ") and result.stderr.count("\n") == 1
        assert words in result.stderr, result.stderr
