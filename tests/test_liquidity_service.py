"""The liquidity process against a real node: its loop quoting two instances (each its own
peer and owner), refreshing on a fill, keeping its ledgers across a restart and cancelling on
stop; and its supervision by the node's side (liquidity_link)."""

from __future__ import annotations

import json
import threading
import time

import psutil
from conftest import LOOPBACK_ENDPOINTS, NO_ANALYTICS, start_node
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.home.keys import PEERS_FOLDER, create_key_pair
from marketnode.node.home.layout import Home
from marketnode.node.home.peers import Peer, load_allowlist, save_allowlist
from marketnode.node.liquidity import service
from marketnode.node.liquidity.config import parse_instances
from marketnode.node.server.liquidity_link import LiquidityLink
from marketnode.plugins.host import LIQUIDITY, plugin_host

MARKET = "PUNK-ETH"
TABLES = {
    "pool": {"strategy": "amm", "market": MARKET, "peer": "pool", "owner": "0x5001",
             "base": "500", "quote": "5000", "refresh_s": 0.2},
    "maker": {"strategy": "market_maker", "market": MARKET, "peer": "maker", "owner": "0x5002",
              "base": "100", "quote": "1000", "refresh_s": 0.2, "order_size": 2},
}  # fmt: skip


def wait_until(condition, within_s: float = 20.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def state_of(home):
    try:
        return json.loads(service.state_path(home.path).read_text())
    except (OSError, ValueError):
        return None


def quoting(home) -> list:
    return (state_of(home) or {}).get("instances", [])


def test_the_process_quotes_refreshes_on_fills_and_cancels_on_stop(running_node):
    node = running_node
    for table in TABLES.values():
        node.add_peer(table["peer"], (table["owner"],))
    instances = parse_instances(TABLES, "test", plugin_host(LIQUIDITY))
    stop = threading.Event()
    result: list = []
    thread = threading.Thread(
        target=lambda: result.extend(service.run(node.home, instances, stop)), daemon=True
    )
    thread.start()
    watcher = node.client("alice")
    assert wait_until(
        lambda: all(i["quotes"] for i in quoting(node.home)) and len(quoting(node.home)) == 2
    )  # the maker quotes around the pool's mid
    book = watcher.snapshot(MARKET)
    best_ask = book.asks[0]
    taking = {"op": "new", "market": MARKET, "id": "t1", "owner": "0xa11ce", "side": "buy",
              "price": best_ask.price, "qty": "1", "tif": "IOC"}  # fmt: skip
    watcher.submit([taking])
    assert wait_until(lambda: sum(i["fills"] for i in quoting(node.home)) == 1)
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    book = watcher.snapshot(MARKET)
    assert not book.bids and not book.asks, "stopping cancels every instance's orders"
    saved = {q.instance.name: q.ledger for q in result}
    assert sum(ledger.fills for ledger in saved.values()) == 1
    for instance in instances:
        again = service.saved_ledger(node.home.path, instance)
        assert again == saved[instance.name], "a restarted process carries on with its ledger"
    assert state_of(node.home)["stopped"] is True


def test_a_halt_survives_a_restart_until_the_operator_resumes(running_node):
    node = running_node
    node.add_peer("careful", ("0x5003",))
    tables = {"careful": {"strategy": "market_maker", "market": MARKET, "peer": "careful",
                          "owner": "0x5003", "base": "10", "quote": "1000", "start_price": "100",
                          "refresh_s": 0.2, "max_daily_loss": -1.0}}  # fmt: skip
    for loss in (-1.0, 1e12):  # the first run halts at once; the second, within its limit,
        tables["careful"]["max_daily_loss"] = loss  # starts halted all the same
        instances = parse_instances(tables, "test", plugin_host(LIQUIDITY))
        service.state_path(node.home.path).unlink(missing_ok=True)
        stop = threading.Event()
        thread = threading.Thread(target=service.run, args=(node.home, instances, stop))
        thread.start()
        assert wait_until(lambda: any(i["halted"] for i in quoting(node.home)))
        stop.set()
        thread.join(timeout=30)
        assert not node.client("alice").snapshot(MARKET).bids, "halted: nothing rests"
    record = service.saved_record(node.home.path, instances[0])
    assert "max_daily_loss" in record["halted"]
    result = CliRunner().invoke(app, ["liquidity", "resume", "careful", "--home",
                                      str(node.home.path)])  # fmt: skip
    assert result.exit_code == 0 and "resumed" in result.stdout
    assert service.saved_record(node.home.path, instances[0])["halted"] is None


def test_the_link_supervises_the_process_and_shows_its_death(running_node):
    home = running_node.home
    bad = {"broken": {"strategy": "no_such", "market": MARKET, "peer": "p", "owner": "0x1"}}
    with home.config_path.open("a") as config:
        config.write('\n[liquidity.broken]\nstrategy = "no_such"\nmarket = "PUNK-ETH"\n'
                     'peer = "p"\nowner = "0x1"\n')  # fmt: skip
    link = LiquidityLink(home, bad)
    assert LiquidityLink(home, {}).status() == "off"
    link.start()
    try:
        assert wait_until(lambda: "exit code 3" in link.status()["state"])
    finally:
        link.stop()
    assert link.status()["state"] == "off"


def test_a_node_whose_home_configures_an_instance_runs_the_process(tmp_path):
    """`[liquidity.NAME]` in config.toml: the node starts the process beside it, its status
    shows the process and its instance's report, and stopping the node stops it."""
    home = Home.create(tmp_path / "home")
    config = home.config()
    key = create_key_pair(home.keys_path(config) / PEERS_FOLDER, "pool")
    path = home.peers_path(config)
    save_allowlist(path, load_allowlist(path).with_peer(Peer("pool", key.public_text, ("0x5001",))))
    table = "".join(f"{name} = {json.dumps(value)}\n" for name, value in TABLES["pool"].items())
    text = home.config_path.read_text()
    markets = text[text.index("\n[[markets]]") + 1 :]
    home.config_path.write_text(
        f"{LOOPBACK_ENDPOINTS}{NO_ANALYTICS}\n[liquidity.pool]\n{table}\n{markets}"
    )
    running = start_node(home)
    admin = running.admin()
    try:

        def reported() -> bool:
            shown = admin.call("status")["liquidity"]
            return shown != "off" and bool(shown["instances"])

        assert wait_until(reported, within_s=60.0), admin.call("status")["liquidity"]
        status = admin.call("status")
        assert status["liquidity"]["state"].startswith("running since")
        assert status["core"]["core"] in ("compiled", "python") and status["core"]["reason"]
        process = running.node.liquidity.supervisor.pid
        assert wait_until(lambda: admin.call("book", market=MARKET)["bids"], within_s=60.0)
    finally:
        running.stop()
    assert process is not None and not psutil.pid_exists(process)  # stopped with the node
    # the process's closing cancels were served before the node closed: nothing of it rests
    book = CliRunner().invoke(app, ["book", MARKET, "--json", "--home", str(home.path)])
    assert book.exit_code == 0, book.stderr
    assert json.loads(book.stdout)["bids"] == json.loads(book.stdout)["asks"] == []
