"""The liquidity process: every enabled `[liquidity.NAME]` instance of a home, each a peer of
the node with its own key (keys/peers/PEER.key_secret) and owner, quoting its market.

    python -m marketnode.node.server.supervisor PARENT SIGNAL \
        marketnode.node.liquidity.service HOME

The node starts it through its supervisor when the home configures an instance
(node/server/liquidity_link.py): it dies with the node and is restarted with a backoff when it
dies alone. One thread polls every instance's connection: a fill refreshes its instance at
once, the timer (`refresh_s`) otherwise. Each instance's ledger is written to
liquidity/NAME.json after each change, so a restarted process carries on with the same
inventory (an AMM's reserves) and a halted instance stays halted until the operator resumes it
(`mnode liquidity resume NAME`), and liquidity/state.json says every second what each instance
quotes, holds and earned, or why it stopped (`mnode liquidity status`). SIGTERM cancels every
instance's orders and ends it; an instance's peer should also be registered with
--cancel-on-disconnect, so that a killed process leaves nothing resting.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from ..client import Client, ClientError, address_of_home
from ..core.markets import ConfigError
from ..home.keys import PEERS_FOLDER, load_key_pair
from ..home.layout import Home
from .builtins import liquidity_host
from .config import Instance, load_instances
from .ledger import Ledger
from .quoter import Quoter

log = logging.getLogger("marketnode.liquidity")
FOLDER = "liquidity"
STATE_FILE = "state.json"
STATE_EVERY_S = 1.0
EXIT_CONFIG = 3
EXIT_NODE = 4


def state_path(home: Path) -> Path:
    return home / FOLDER / STATE_FILE


def ledger_path(home: Path, name: str) -> Path:
    return home / FOLDER / f"{name}.json"


def write_json(path: Path, record: Any) -> None:
    """Replace `path` whole (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(record, indent=1))
    os.replace(scratch, path)


def saved_record(home: Path, instance: Instance) -> dict[str, Any] | None:
    """What an earlier run left for this instance (its ledger, why it halted), if it was of
    the same market and owner (else the instance starts again from its configured holdings)."""
    try:
        record = json.loads(ledger_path(home, instance.name).read_text())
    except (OSError, ValueError):
        return None
    if (record.get("market"), record.get("owner")) != (instance.market, instance.owner):
        return None
    return record


def saved_ledger(home: Path, instance: Instance) -> Ledger | None:
    record = saved_record(home, instance)
    if record is None:
        return None
    fields = {field.name for field in dataclasses.fields(Ledger)}
    return Ledger(**{key: value for key, value in record["ledger"].items() if key in fields})


def open_quoter(home: Home, instance: Instance, context: zmq.Context) -> Quoter:
    config = home.config()
    key = load_key_pair(home.keys_path(config) / PEERS_FOLDER / f"{instance.peer}.key_secret")
    client = Client(address_of_home(home, config), key, context=context)
    quoter = Quoter(instance, client, liquidity_host(), ledger=saved_ledger(home.path, instance))
    quoter.halted = (saved_record(home.path, instance) or {}).get("halted")
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
                if quoter.halted is None and (quoter.fill_pending or due):
                    quoter.refresh()
                if quoter.ledger.fills != fills or quoter.halted != halted:
                    save_ledger(home.path, quoter)
            if now - written >= STATE_EVERY_S:
                resume_cleared(home.path, quoters)
                write_state(home.path, quoters)
                written = now
            poller.poll(timeout=_wait_ms(quoters, now))
    finally:
        for quoter in quoters:
            quoter.close()
            save_ledger(home.path, quoter)
        write_state(home.path, quoters, stopped=True)
        for quoter in quoters:
            quoter.client.close()
    return quoters


def _wait_ms(quoters: list[Quoter], now: float) -> int:
    """Until the next instance's timer (at most a second, so `stop` is seen)."""
    waits = [q.refreshed_at + q.instance.refresh_s - now for q in quoters if q.halted is None]
    return int(1000 * max(0.01, min([1.0, *waits])))


def resume_cleared(home: Path, quoters: list[Quoter]) -> None:
    """A halted instance whose halt the operator cleared (`mnode liquidity resume`) quotes
    again from its next refresh."""
    for quoter in quoters:
        if quoter.halted is not None:
            record = saved_record(home, quoter.instance)
            if record is not None and record.get("halted") is None:
                log.warning("liquidity %s resumed by the operator", quoter.instance.name)
                quoter.halted = None


def save_ledger(home: Path, quoter: Quoter) -> None:
    """The instance's ledger and halt, which survive a restart (a kill switch stays thrown)."""
    record = {"market": quoter.instance.market, "owner": quoter.instance.owner,
              "halted": quoter.halted, "ledger": dataclasses.asdict(quoter.ledger)}  # fmt: skip
    write_json(ledger_path(home, quoter.instance.name), record)


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
