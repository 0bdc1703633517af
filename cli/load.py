"""`mnode load`: offer a realistic order flow to a running node and report what came back."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from marketnode.node.chain.orders import dev_wallets
from marketnode.node.client import ClientError, address_of_home
from marketnode.node.core.markets import MarketSpec
from marketnode.node.home.config import NodeConfig
from marketnode.node.home.peers import load_allowlist
from marketnode.node.tools.flow import FlowMix, generate_flow
from marketnode.node.tools.load import (
    SIGNED_KINDS,
    LoadProfile,
    LoadResult,
    run_load,
    signed_flow,
)

from .common import (
    EXIT_NOT_RUNNING,
    EXIT_USAGE,
    HomeOption,
    JsonOption,
    fail,
    operator_errors,
    print_json,
    require_home,
    require_running_node,
)
from .order import AsOption, KeyOption, peer_key


def load_command(
    rate: Annotated[
        float,
        typer.Option("--rate", min=0, help="Orders/s offered (0: as fast as the node answers)."),
    ] = 1000,
    duration: Annotated[
        float, typer.Option("--duration", min=0.1, help="Seconds of sending.")
    ] = 10,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Commands per message.")] = 1,
    markets: Annotated[
        str | None, typer.Option("--markets", help="Comma-separated symbols (default: all).")
    ] = None,
    owners: Annotated[
        int,
        typer.Option(
            "--owners",
            min=1,
            help="Wallets trading, for a relayer peer (with --signed: the first N dev wallets).",
        ),
    ] = 50,
    signed: Annotated[
        bool,
        typer.Option(
            "--signed",
            help="Every order signed (EIP-712) by its owner, one of the dev wallets "
            "(`mnode chain fund-dev-wallets` gives them tokens on a test chain), on the "
            "markets that take signed orders; an order's nonce is its id.",
        ),
    ] = False,
    mix: Annotated[
        str | None,
        typer.Option(
            "--mix",
            help="Weights of kinds: limit, post_only, cancel, replace, ioc, fok, market "
            "(e.g. limit=0.5,cancel=0.3,market=0.2).",
        ),
    ] = None,
    burst_at: Annotated[
        float | None, typer.Option("--burst-at", help="A drop starts this many seconds in.")
    ] = None,
    burst_for: Annotated[
        float, typer.Option("--burst-for", min=0.1, help="Seconds the drop lasts.")
    ] = 3,
    burst_x: Annotated[
        float, typer.Option("--burst-x", min=1, help="Rate multiple during the drop.")
    ] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the flow.")] = 1,
    first_id: Annotated[
        int,
        typer.Option(
            "--first-id", min=1, help="First client order id (use new ones for each run)."
        ),
    ] = 1,
    as_peer: AsOption = None,
    key: KeyOption = None,
    home: HomeOption = None,
    json: JsonOption = False,
) -> None:
    """Offer a realistic order flow to the running node and report what came back.

    A seeded flow (limits near the mid, cancels, replaces, IOC, FOK, market orders) at a rate,
    with an optional drop; then sent, accepted, rejected, throughput and acknowledgement latency
    percentiles. With --signed, limit, post-only, IOC and FOK orders signed by dev wallets.
    """
    node_home = require_home(home)
    key_pair, _ = peer_key(node_home, as_peer, key)
    with operator_errors():
        config = node_home.config()
        specs = config.markets
        if markets:
            wanted = [symbol.strip() for symbol in markets.split(",") if symbol.strip()]
            known = {spec.symbol: spec for spec in specs}
            unknown = [symbol for symbol in wanted if symbol not in known]
            if unknown:
                fail(
                    f"unknown market(s): {', '.join(unknown)} (markets: {', '.join(known)})",
                    EXIT_USAGE,
                )
            specs = [known[symbol] for symbol in wanted]
        if signed:
            specs = _signed_markets(config, specs, bool(markets))
        owner_names = None
        if key_pair is not None:
            peer = load_allowlist(node_home.peers_path(config)).by_key.get(key_pair.public_text)
            if peer is not None and not peer.relayer:
                owner_names = list(peer.owners)
    profile = LoadProfile(
        rate=rate,
        duration_s=duration,
        batch=batch,
        burst_at_s=burst_at,
        burst_for_s=burst_for,
        burst_x=burst_x,
    )
    require_running_node(node_home)
    count = profile.orders_needed() if rate > 0 else max(batch, int(200_000 * duration))
    flow_mix = _parse_mix(mix, signed)
    if signed:
        commands = signed_flow(count, seed, specs, config.settlement, dev_wallets(owners),
                               flow_mix, first_id)  # fmt: skip
    else:
        commands = generate_flow(count, seed=seed, markets=specs, owners=owners, mix=flow_mix,
                                 owner_names=owner_names, first_id=first_id)  # fmt: skip
    try:
        address = address_of_home(node_home, config)
        with _progress(json) as progress:
            task = progress.add_task("load", total=duration)

            def update(result: LoadResult, elapsed: float) -> None:
                progress.update(
                    task,
                    completed=min(elapsed, duration),
                    description=f"sent {result.sent:,} answered {result.answered:,}",
                )

            result = run_load(address, key_pair, commands, profile, on_progress=update)
    except ClientError as error:
        fail(str(error), EXIT_NOT_RUNNING if error.unreachable else EXIT_USAGE)
    summary = result.summary()
    if json:
        print_json(summary)
        return
    latency = summary["latency_ms"]
    rejects = (
        ", ".join(f"{reason} {n}" for reason, n in sorted(summary["rejects"].items())) or "none"
    )
    typer.echo(
        f"sent {summary['sent']:,} orders in {summary['messages']:,} messages "
        f"over {summary['elapsed_s']} s\n"
        f"accepted {summary['accepted']:,}, rejected {summary['rejected']:,} ({rejects})"
        + (f", errors {summary['errors']}" if summary["errors"] else "")
        + f"\nthroughput {summary['orders_per_s']:,} orders/s answered\n"
        f"ack latency ms: p50 {latency['p50']}  p90 {latency['p90']}  p99 {latency['p99']}  "
        f"p99.9 {latency['p99.9']}  max {latency['max']}"
    )


def _signed_markets(config: NodeConfig, specs: list[MarketSpec], named: bool
                    ) -> list[MarketSpec]:  # fmt: skip
    """The markets a signed load trades: those of `specs` taking signed orders (every one of
    them when the operator named them)."""
    if not config.settlement.contract:
        fail("--signed: [settlement] contract is not set in the config "
             "(`mnode chain deploy` writes it)", EXIT_USAGE)  # fmt: skip
    unsigned = [spec.symbol for spec in specs if spec.signatures == "off"]
    if named and unsigned:
        fail(f"--signed: {', '.join(unsigned)} take(s) no signed orders (signatures = \"off\")",
             EXIT_USAGE)  # fmt: skip
    chosen = [spec for spec in specs if spec.signatures != "off"]
    if not chosen:
        fail("--signed: no market takes signed orders (set a market's signatures, or "
             "`mnode chain deploy --test-tokens --market SYMBOL`)", EXIT_USAGE)  # fmt: skip
    return chosen


def _parse_mix(text: str | None, signed: bool = False) -> FlowMix | None:
    if not text:
        return None
    weights = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in FlowMix.__dataclass_fields__:
            fail(
                f"--mix: unknown kind {name!r} (kinds: {', '.join(FlowMix.__dataclass_fields__)})",
                EXIT_USAGE,
            )
        try:
            weights[name] = float(value)
        except ValueError:
            fail(f"--mix: {name}: not a number: {value!r}", EXIT_USAGE)
        if weights[name] < 0:
            fail(f"--mix: {name}: must be >= 0", EXIT_USAGE)
    if signed:
        weights = dict.fromkeys(FlowMix.__dataclass_fields__, 0.0) | weights
        unsignable = [name for name, weight in weights.items()
                      if weight and name not in SIGNED_KINDS]  # fmt: skip
        if unsignable:
            fail(f"--mix: {', '.join(unsignable)}: not with --signed (signed kinds: "
                 f"{', '.join(SIGNED_KINDS)})", EXIT_USAGE)  # fmt: skip
    mix = FlowMix(**weights)
    if not any(getattr(mix, name) for name in FlowMix.__dataclass_fields__):
        fail("--mix: every weight is 0", EXIT_USAGE)
    return mix


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=quiet,
        console=Console(stderr=True),
    )
