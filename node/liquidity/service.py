"""The liquidity process: every enabled `[liquidity.NAME]` instance of a home, each a peer of
the node with its own key (keys/peers/PEER.key_secret) and owner, quoting its market.

    python -m marketnode.node.server.supervisor PARENT SIGNAL \
        marketnode.node.liquidity.service HOME

The node starts it through its supervisor when the home configures an instance
(node/server/liquidity_link.py): it dies with the node and is restarted with a backoff when it
dies alone. One thread polls every instance's connection: a fill refreshes its instance at
once, the timer (`refresh_s`) otherwise. Each instance's ledger is written to its record,
liquidity/NAME.json (records.py), after each change, so a restarted process carries on with the
same inventory (an AMM's reserves) and a halted instance stays halted until the operator resumes
it (`mnode liquidity resume NAME`). The operator's stop and start (`mnode liquidity stop|start
NAME`) are written to the same record, which the process reads every second: a stop cancels the
instance's quotes and ends its quoting, and holds across restarts until a start.
liquidity/state.json says every second what each instance quotes, holds and earned, or why it
does not quote (`mnode liquidity status`). SIGTERM cancels every
instance's orders and ends it; an instance's peer should also be registered with
--cancel-on-disconnect, so that a killed process leaves nothing resting.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from marketnode.plugins.host import LIQUIDITY, plugin_host

from ..client import Client, ClientError, address_of_home
from ..core.markets import ConfigError
from ..home.keys import PEERS_FOLDER, load_key_pair
from ..home.layout import Home
from .config import Instance, load_instances
from .quoter import Quoter
from .records import save_ledger, saved_ledger, saved_record, state_path, write_json

log = logging.getLogger("marketnode.liquidity")
STATE_EVERY_S = 1.0
EXIT_CONFIG = 3
EXIT_NODE = 4


def open_quoter(home: Home, instance: Instance, context: zmq.Context) -> Quoter:
    config = home.config()
    key = load_key_pair(home.keys_path(config) / PEERS_FOLDER / f"{instance.peer}.key_secret")
    client = Client(address_of_home(home, config), key, context=context)
    ledger = saved_ledger(home.path, instance)
    quoter = Quoter(instance, client, plugin_host(LIQUIDITY), ledger=ledger)
    record = saved_record(home.path, instance) or {}
    quoter.halted = record.get("halted")
    quoter.stopped = record.get("stopped")
    return quoter


def run(
    home: Home,
    instances: list[Instance],
    stop: threading.Event,
    clock: Callable[[], float] = time.time,
) -> list[Quoter]:
    """Quote every instance until `stop` is set, then cancel their orders; the quoters."""
    context = zmq.Context.instance()
    quoters = [open_quoter(home, instance, context) for instance in instances if instance.enabled]
    poller = zmq.Poller()
    for quoter in quoters:
        poller.register(quoter.client.socket, zmq.POLLIN)
    written = 0.0
    try:
        while not stop.is_set():
            now = clock()
            for quoter in quoters:
                fills, halted = quoter.ledger.fills, quoter.halted
                quoter.absorb()
                due = now - quoter.refreshed_at >= quoter.instance.refresh_s
                if quoter.quoting and (quoter.fill_pending or due):
                    quoter.refresh()
                thrown = quoter.halted if quoter.halted != halted else None
                if quoter.ledger.fills != fills or thrown is not None:
                    save_ledger(home.path, quoter.instance, quoter.ledger, thrown)
            if now - written >= STATE_EVERY_S:
                follow_operator(home.path, quoters)
                write_state(home.path, quoters)
                written = now
            poller.poll(timeout=_wait_ms(quoters, now))
    finally:
        answering = True
        for quoter in quoters:  # once the node has not answered one, the others are not asked
            answering = answering and quoter.close()
            save_ledger(home.path, quoter.instance, quoter.ledger)
        write_state(home.path, quoters, stopped=True)
        for quoter in quoters:
            quoter.client.close()
    return quoters


def _wait_ms(quoters: list[Quoter], now: float) -> int:
    """Until the next instance's timer (at most a second, so `stop` is seen)."""
    waits = [q.refreshed_at + q.instance.refresh_s - now for q in quoters if q.quoting]
    return int(1000 * max(0.01, min([1.0, *waits])))


def follow_operator(home: Path, quoters: list[Quoter]) -> None:
    """What the operator wrote in the instances' records: a halt cleared (`mnode liquidity
    resume`) lets the instance quote again from its next refresh; a stop (`mnode liquidity
    stop`) cancels its quotes and ends its quoting until a start (`mnode liquidity start`)."""
    for quoter in quoters:
        record = saved_record(home, quoter.instance)
        if record is None:
            continue
        name = quoter.instance.name
        if quoter.halted is not None and record.get("halted") is None:
            log.warning("liquidity %s resumed by the operator", name)
            quoter.halted = None
        stopped = record.get("stopped")
        if stopped is not None and quoter.stopped is None:
            log.warning("liquidity %s stopped by %s", name, stopped.get("by"))
            quoter.stop(stopped)
        elif stopped is None and quoter.stopped is not None:
            log.warning("liquidity %s started by the operator", name)
            quoter.stopped = None


def write_state(home: Path, quoters: list[Quoter], stopped: bool = False) -> None:
    write_json(state_path(home), {
        "pid": os.getpid(), "updated_at": time.time(), "stopped": stopped,
        "instances": [quoter.summary() for quoter in quoters],
    })  # fmt: skip


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s liquidity %(message)s")
    if len(sys.argv) != 2:
        sys.exit("usage: python -m marketnode.node.liquidity.service HOME")
    home = Home(Path(sys.argv[1]))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        instances = load_instances(home.config_path)
    except ConfigError as error:
        log.error("%s", error)
        sys.exit(EXIT_CONFIG)
    try:
        run(home, instances, stop)
    except ClientError as error:
        log.error("the node cannot be reached: %s", error)
        sys.exit(EXIT_NODE)


if __name__ == "__main__":
    main()
