"""The relayer process a node starts beside itself when `[settlement] enabled` (through its
supervisor: it dies with the node, and is restarted with a backoff when it dies alone).

It reads the journal read-only, keeps its state in `settlement/state.sqlite` in the home, and
talks to the chain of `[settlement] rpc` as the key in `key_file`. Being a process of its own,
a slow chain or a long replay never touches the matching thread. SIGTERM ends it between steps.

    python -m marketnode.node.server.supervisor PARENT SIGNAL \
        marketnode.node.chain.relayer_service HOME
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.exceptions import Web3Exception

from ..core.markets import ConfigError
from ..home.config import SettlementConfig
from ..home.layout import Home
from ..store.lmdb_store import Store
from .journal_trades import JournalTrades
from .relayer import Relayer, RelayerSettings
from .rpc import ChainError, connect
from .settlement_store import SettlementStore, state_path

log = logging.getLogger("marketnode.relayer")
EXIT_CONFIG = 3


def relayer_key(home: Home, settlement: SettlementConfig) -> LocalAccount:
    """The relayer's key: hex (with or without 0x) alone in `key_file` (the configuration
    requires one when the relayer is enabled)."""
    path = Path(settlement.key_file)
    path = path if path.is_absolute() else home.path / path
    try:
        return Account.from_key(path.read_text().strip())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the relayer's key: {error.strerror}") from None
    except ValueError:
        raise ConfigError(f"{path}: not a private key (64 hex digits)") from None


def run(home: Home) -> None:
    config = home.config()
    settlement = config.settlement
    account = relayer_key(home, settlement)
    w3 = connect(settlement.rpc)
    settings = RelayerSettings(settlement.confirmations, settlement.batch_size,
                               float(settlement.stuck_after_s))  # fmt: skip
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with Store(home.store_path(config), readonly=True) as store:
        state = SettlementStore(state_path(home.path))
        journal = JournalTrades(store, settlement.max_delay_s)
        relayer = Relayer(w3, account, settlement.contract, state, journal, settings)
        log.info("relayer %s settling on %s", account.address, settlement.rpc)
        while not stopping:
            try:
                relayer.step()
            except (ChainError, OSError, ValueError, Web3Exception) as error:  # chain away: retry
                log.error("settlement step failed: %s", error)
            time.sleep(settlement.poll_interval_ms / 1000)
        state.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s relayer %(message)s")
    try:
        run(Home(Path(sys.argv[1])))
    except (ConfigError, ChainError) as error:
        log.error("%s", error)
        sys.exit(EXIT_CONFIG)


if __name__ == "__main__":
    main()
