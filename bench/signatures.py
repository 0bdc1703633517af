"""How many signed orders a second the node's checks verify: one process, and the pool.

    python bench/signatures.py [--orders 20000] [--batch 500] [--workers N] [--rounds 3] [--json]

Each check computes the order's EIP-712 digest (keccak over its encoding) and recovers the
signer from a 65-byte low-s signature (coincurve), as a verifier worker does. Orders are
signed beforehand by 100 owners from a fixed seed. Measured:

- `single`: `check_order` in a loop in this process; orders per wall second and per CPU
  second (the CPU figure is what one core does when the machine is shared), and per CPU
  second its two parts alone: the digest (`order_digest`) and the recovery (`recover_signer`
  on the digest);
- `pool`: a `VerifierPool` of N workers fed batches of `--batch` from this process (batching,
  pickling, the ipc sockets included), orders per wall second, and per CPU second of the
  workers (their user + system time, read from /proc before they stop);
- `eth_account`: eth-account recovering the signer from the typed data (a sample of 300),
  the path this module exists to avoid.

Best of `--rounds` for each. Target (issue 14): >= 15,000 verified per core per second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime

import psutil
from coincurve import PrivateKey
from eth_account import Account
from eth_account.messages import encode_typed_data

from marketnode.node.chain.eip712 import ORDER_TYPE, Domain, Order, address_text, order_digest
from marketnode.node.chain.keccak import keccak256
from marketnode.node.chain.signatures import SignedOrder, check_order, recover_signer
from marketnode.node.chain.verifier import VerifierPool

DOMAIN = Domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
NOW = 1_800_000_000
OWNERS = 100


def signed_orders(count: int) -> list[SignedOrder]:
    keys = [PrivateKey(keccak256(f"bench owner {n}".encode())) for n in range(OWNERS)]
    owners = [keccak256(key.public_key.format(compressed=False)[1:])[12:] for key in keys]
    items = []
    for n in range(count):
        owner = n % OWNERS
        order = Order(owners[owner], b"\x22" * 20, 0, b"\x33" * 20, n & 1, 10_000 + n % 500,
                      1 + n % 50, 10**18, 10**16, n, NOW + 3600, 30)  # fmt: skip
        compact = keys[owner].sign_recoverable(order_digest(DOMAIN, order), hasher=None)
        items.append(SignedOrder(order, compact[:64] + bytes((compact[64] + 27,)), 31337))
    return items


def single(items: list[SignedOrder]) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    good = sum(
        check_order(DOMAIN, item.order, item.signature, item.chain_id, NOW).reason is None
        for item in items
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert good == len(items), "a good order was refused"
    started = time.process_time()
    digests = [order_digest(DOMAIN, item.order) for item in items]
    digest_cpu = time.process_time() - started
    started = time.process_time()
    for digest, item in zip(digests, items, strict=True):
        recover_signer(digest, item.signature)
    recover_cpu = time.process_time() - started
    return {"per_wall_s": len(items) / wall, "per_cpu_s": len(items) / cpu,
            "digest_per_cpu_s": len(items) / digest_cpu,
            "recover_per_cpu_s": len(items) / recover_cpu}  # fmt: skip


def _cpu_seconds(pids: list[int]) -> float:
    times = [psutil.Process(pid).cpu_times() for pid in pids]
    return sum(t.user + t.system for t in times)


def pool(items: list[SignedOrder], batch: int, workers: int | None) -> dict[str, float]:
    with VerifierPool(workers) as verifiers:
        while verifiers.ready_workers < verifiers.size:
            verifiers.wait(0.05)
        pids = verifiers.worker_pids()
        cpu_before = _cpu_seconds(pids)
        started = time.perf_counter()
        for number, first in enumerate(range(0, len(items), batch)):
            verifiers.submit(number, DOMAIN, NOW, items[first : first + batch])
        good = 0
        while verifiers.pending:
            for done in verifiers.wait(5.0):
                good += sum(verdict.reason is None for verdict in done.verdicts)
        wall = time.perf_counter() - started
        cpu = _cpu_seconds(pids) - cpu_before
        assert good == len(items) and verifiers.restarts == 0
        return {"workers": verifiers.size, "per_wall_s": len(items) / wall,
                "per_worker_cpu_s": len(items) / cpu}  # fmt: skip


def eth_account(items: list[SignedOrder]) -> dict[str, float]:
    names = [field.split(" ")[1] for field in ORDER_TYPE[6:-1].split(",")]
    types = [field.split(" ")[0] for field in ORDER_TYPE[6:-1].split(",")]
    domain = {"name": "marketnode", "version": "1", "chainId": DOMAIN.chain_id,
              "verifyingContract": address_text(DOMAIN.verifying_contract)}  # fmt: skip
    domain_types = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"}]  # fmt: skip
    order_types = [{"name": n, "type": t} for n, t in zip(names, types, strict=True)]
    started = time.perf_counter()
    for item in items:
        message = dict(zip(names, item.order, strict=True))
        for name in ("owner", "base", "quote"):
            message[name] = address_text(message[name])
        signable = encode_typed_data(full_message={
            "types": {"EIP712Domain": domain_types, "Order": order_types},
            "primaryType": "Order", "domain": domain, "message": message})  # fmt: skip
        owner = Account.recover_message(signable, signature=item.signature)
        assert owner.lower() == address_text(item.order.owner)
    return {"per_wall_s": len(items) / (time.perf_counter() - started)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=None, help="default: the pool's")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    items = signed_orders(options.orders)
    singles = [single(items) for _ in range(options.rounds)]
    pools = [pool(items, options.batch, options.workers) for _ in range(options.rounds)]
    reference = eth_account(items[:300])
    best_single = max(singles, key=lambda run: run["per_cpu_s"])
    best_pool = max(pools, key=lambda run: run["per_wall_s"])
    report = {
        "single_per_wall_s": round(max(run["per_wall_s"] for run in singles)),
        "single_per_cpu_s": round(best_single["per_cpu_s"]),
        "digest_per_cpu_s": round(max(run["digest_per_cpu_s"] for run in singles)),
        "recover_per_cpu_s": round(max(run["recover_per_cpu_s"] for run in singles)),
        "pool_workers": best_pool["workers"],
        "pool_per_wall_s": round(best_pool["per_wall_s"]),
        "pool_per_worker_cpu_s": round(max(run["per_worker_cpu_s"] for run in pools)),
        "eth_account_per_wall_s": round(reference["per_wall_s"]),
        "orders": options.orders,
        "batch": options.batch,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cpus",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if options.json:
        print(json.dumps(report))
        return
    print(
        f"one process: {report['single_per_wall_s']:,} verified/s wall, "
        f"{report['single_per_cpu_s']:,} per CPU second (digest alone "
        f"{report['digest_per_cpu_s']:,}, recovery alone {report['recover_per_cpu_s']:,})\n"
        f"pool of {report['pool_workers']}: {report['pool_per_wall_s']:,} verified/s wall, "
        f"{report['pool_per_worker_cpu_s']:,} per worker CPU second\n"
        f"eth-account: {report['eth_account_per_wall_s']:,} verified/s\n"
        f"(best of {options.rounds}; load average {report['load_average_1m']})"
    )


if __name__ == "__main__":
    main()
