"""`mnode liquidity stop|start NAME`: through the instance's record, which the running liquidity
process reads every second, a stop cancels the instance's quotes and ends its quoting (shown
as stopped, when and by whom) and a start has it quote again; an unknown NAME is one line and
exit code 2; the process saving a fill never undoes the operator's stop. And the node's
side reading the process's report at housekeeping rather than per status request."""

from __future__ import annotations

import json
import threading
import time

from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.home.layout import Home
from marketnode.node.liquidity import records, service
from marketnode.node.liquidity.config import parse_instances
from marketnode.node.liquidity.ledger import Ledger
from marketnode.node.server.liquidity_link import LiquidityLink
from marketnode.plugins.host import LIQUIDITY, plugin_host
from tests.test_liquidity_service import wait_until

MARKET = "PUNK-ETH"
MAKER = {"strategy": "market_maker", "market": MARKET, "peer": "maker", "owner": "0x5002",
         "base": "100", "quote": "10000", "start_price": "100", "refresh_s": 0.2,
         "order_size": 2}  # fmt: skip


def mnode(home, *args: str):
    return CliRunner().invoke(app, ["liquidity", *args, "--home", str(home.path)])


def reported(home) -> dict:
    try:
        [instance] = json.loads(records.state_path(home.path).read_text())["instances"]
    except (OSError, ValueError):
        return {}
    return instance


def test_stop_cancels_the_quotes_and_start_quotes_again(running_node):
    node = running_node
    node.add_peer("maker", (MAKER["owner"],))
    table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in MAKER.items())
    with node.home.config_path.open("a") as config:
        config.write(f"\n[liquidity.maker]\n{table}")
    instances = parse_instances({"maker": MAKER}, "test", plugin_host(LIQUIDITY))
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(node.home, instances, stop))
    thread.start()
    watcher = node.client("alice")

    def resting() -> bool:
        book = watcher.snapshot(MARKET)
        return bool(book.bids and book.asks)

    try:
        assert wait_until(lambda: resting() and reported(node.home).get("state") == "quoting")
        stopped = mnode(node.home, "stop", "maker", "--by", "ops")
        assert stopped.exit_code == 0, stopped.stderr
        assert "maker stopped by ops" in stopped.stdout
        assert wait_until(lambda: reported(node.home).get("state") == "stopped")
        assert not resting(), "a stop cancels every resting quote"
        shown = reported(node.home)
        assert shown["stopped"]["by"] == "ops" and shown["quotes"] == []
        assert abs(shown["stopped"]["at"] - time.time()) < 60
        status = mnode(node.home, "status")
        assert "stopped at " in status.stdout and "by ops" in status.stdout
        again = mnode(node.home, "stop", "maker", "--json")
        assert json.loads(again.stdout) | {"process_running": True} == {
            "name": "maker", "state": "stopped", "changed": False, "halted": None,
            "stopped": shown["stopped"], "process_running": True,
        }  # fmt: skip
        assert not resting(), "still stopped a refresh later"

        started = mnode(node.home, "start", "maker", "--json")
        assert started.exit_code == 0, started.stderr
        answer = json.loads(started.stdout)
        assert answer["changed"] is True and answer["state"] == "quoting"
        assert answer["process_running"] is True
        assert wait_until(lambda: resting() and reported(node.home).get("state") == "quoting")
        assert reported(node.home)["stopped"] is None
        assert "is not stopped" in mnode(node.home, "start", "maker").stdout
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()

    for command in ("stop", "start"):
        unknown = mnode(node.home, command, "nobody")
        assert unknown.exit_code == 2
        assert unknown.stderr.splitlines() == [
            f"mnode: no liquidity instance 'nobody' in {node.home.config_path} "
            "(configured: maker)"
        ]


def test_a_stop_is_kept_when_the_process_saves_and_before_it_ever_ran(tmp_path):
    [instance] = parse_instances({"maker": MAKER}, "test", plugin_host(LIQUIDITY))
    home = tmp_path
    assert records.saved_ledger(home, instance) is None
    records.update_record(home, instance, lambda r: r.update(stopped={"at": 1.0, "by": "ops"}))
    assert records.saved_ledger(home, instance) is None, "stopped before it ran: no ledger yet"
    ledger = Ledger(base=100, quote=1000, start_base=100, fills=1)
    records.save_ledger(home, instance, ledger)
    record = records.saved_record(home, instance)
    assert record["stopped"] == {"at": 1.0, "by": "ops"} and record["halted"] is None
    assert records.saved_ledger(home, instance) == ledger
    records.save_ledger(home, instance, ledger, halt="inventory beyond max_inventory")
    records.update_record(home, instance, lambda r: r.update(halted=None))  # the resume
    records.save_ledger(home, instance, ledger)  # a save after it does not throw it again
    record = records.saved_record(home, instance)
    assert record["halted"] is None and record["stopped"] == {"at": 1.0, "by": "ops"}


def test_the_nodes_link_answers_status_from_its_last_reading(tmp_path):
    """The node reads liquidity/state.json at its housekeeping (`read_report`), never per
    `status` request, and says how old the report and the reading are."""
    link = LiquidityLink(Home(tmp_path), {"maker": MAKER})
    first = link.status()
    assert first["instances"] == [] and first["age_s"] is None and first["read_age_s"] is None
    report = {"pid": 1, "updated_at": time.time() - 2.0, "stopped": False,
              "instances": [{"name": "maker", "state": "quoting"}]}  # fmt: skip
    records.write_json(records.state_path(tmp_path), report)
    assert link.status()["instances"] == [], "a status request reads no file"
    link.read_report()
    shown = link.status()
    assert shown["instances"] == report["instances"]
    assert 2.0 <= shown["age_s"] < 60 and 0 <= shown["read_age_s"] < 60
    records.write_json(records.state_path(tmp_path), {**report, "instances": []})
    assert link.status()["instances"] == report["instances"], "until the next reading"
    link.read_report()
    assert link.status()["instances"] == []
