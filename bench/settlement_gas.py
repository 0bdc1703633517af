"""Gas per trade of the settlement contract, for batches of 1, 10 and 50 ERC-20 trades, on anvil.

    python bench/settlement_gas.py [--sizes 1,10,50] [--json]

A fresh anvil (the pinned npm install, see the README's test command) on a free loopback port,
the contracts deployed from the checked-in artifacts, and per batch size one `settle` of that
many trades, each between a buy and a sell order of its own (so every trade writes two new
`filled` slots and signs two orders: the common case of a taker meeting one resting order).
Printed per size: the transaction's gas, the gas per trade, and the marginal gas of one more
trade (from the smallest to the largest batch). Every trade must settle, or the run fails.
The trade ids share one 256-bit word of the settled bitmap, already written by a first trade
not counted; on a running market one trade in 256 starts a new word (about 17k gas more).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from chain_fixtures import BUY, SELL, Market, Trade, open_market

from marketnode.node.chain import rpc


def batch_of(market: Market, size: int, first_id: int) -> list[Trade]:
    """`size` trades of 2 lots at 100 ticks, each filling a fresh buy and sell order."""
    trades = []
    for trade_id in range(first_id, first_id + size):
        buy = market.order(market.buyer, BUY, price=101, quantity=2)
        sell = market.order(market.seller, SELL, price=100, quantity=2)
        trades.append(market.trade(trade_id, buy, sell, quantity=2, price=100, buy_fee=2,
                                   sell_fee=2))  # fmt: skip
    return trades


def measure(market: Market, sizes: list[int]) -> list[dict[str, int]]:
    """One batch per size, after one trade not counted: every measured batch then finds the
    owners' and the fee recipient's balances already written, as on a running market."""
    market.settle(batch_of(market, 1, 0))
    rows, next_id = [], 1
    for size in sizes:
        outcome = market.settle(batch_of(market, size, next_id))
        if len(outcome.settled) != size:
            raise SystemExit(f"a batch of {size} settled {len(outcome.settled)}: {outcome.skipped}")
        gas = outcome.receipt["gasUsed"]
        rows.append({"trades": size, "gas": gas, "gas_per_trade": round(gas / size)})
        next_id += size
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50", help="batch sizes, comma separated")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    options = parser.parse_args()
    sizes = sorted({int(size) for size in options.sizes.split(",")})
    try:
        binary = rpc.anvil_binary()
        anvil = rpc.Anvil(binary)
        w3 = anvil.start()
    except rpc.ChainError as error:
        raise SystemExit(f"settlement_gas: {error}") from None
    try:
        rows = measure(open_market(w3), sizes)
    finally:
        anvil.stop()
    smallest, largest = rows[0], rows[-1]
    marginal = (
        round((largest["gas"] - smallest["gas"]) / (largest["trades"] - smallest["trades"]))
        if len(rows) > 1 else None
    )  # fmt: skip
    report = {
        "command": "python bench/settlement_gas.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).date().isoformat(),
        "machine": " ".join(platform.uname()),
        "chain": f"anvil {rpc.anvil_version(binary)}",
        "batches": rows,
        "marginal_gas_per_trade": marginal,
    }
    if options.json:
        print(json.dumps(report))
        return
    for row in rows:
        trades, gas, per_trade = row["trades"], row["gas"], row["gas_per_trade"]
        print(f"{trades:>3} trades: {gas:>10,} gas, {per_trade:>8,} a trade")
    if marginal is not None:
        print(f"one more trade: {marginal:,} gas ({report['chain']}, {report['date']})")


if __name__ == "__main__":
    main()
