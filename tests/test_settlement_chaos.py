"""Issue 14's judged scenario at a small size (bench/settlement_chaos.py): under `mnode load
--signed`, with the relayer SIGKILLed twice, the node SIGKILLed and restarted, a reorg and a
fee spike on anvil, every journal trade ends confirmed on chain exactly once under K blocks,
and the wallets' balances are what the journal's trades imply."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

CHAOS_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "settlement_chaos.py"


@pytest.mark.slow
def test_every_trade_settles_once_through_kills_a_reorg_and_a_fee_spike():
    result = subprocess.run(
        [sys.executable, str(CHAOS_SCRIPT), "--duration", "25", "--rate", "40", "--wallets",
         "4", "--json"],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["checks"] == dict.fromkeys(
        ("all_confirmed", "settled_once", "k_confirmations", "balances", "faults"), True
    )
    trades = report["trades"]
    assert trades["journal"] > 0 and trades["journal"] == trades["on_chain_events"]
    assert trades["twice"] == trades["missing"] == 0
    assert report["faults"]["relayer_kills"] == 2 and report["faults"]["node_kills"] == 1
    assert report["load"]["accepted"] > 0
