"""Node configuration: config.toml read, checked and given defaults.

A file holding only `[[markets]]` tables is a complete configuration; every other key has a
default, documented in the repository's config.toml. Every mistake is one line naming the file,
the table and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..core.compiled import CORES
from ..core.markets import ConfigError, MarketSpec, parse_markets

SYNC_MODES = ("full", "no_metasync", "none")
"""LMDB durability: `full` syncs data and metadata on every commit; `no_metasync` skips the
metadata sync (a system crash may undo the last commit); `none` leaves flushing to the OS (a
power loss may lose the last commits, never corrupt the store)."""

_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB|TiB)?")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
_KINDS = {bool: "true or false", int: "a whole number", str: "a string", float: "a number"}


@dataclass(frozen=True)
class StoreConfig:
    """The LMDB book store of a node home."""

    path: str = "data"
    map_size: int = 256 << 20
    sync: str = "full"
    batch_size: int = 10_000
    retry_commit_s: int = 2
    """After a failed commit (disk or map full), how often the node tries to commit again."""


@dataclass(frozen=True)
class NodeSection:
    """The node's name (shown to operators) and how much it logs."""

    name: str = "marketnode"
    log_level: str = "info"


@dataclass(frozen=True)
class EndpointsConfig:
    """Where the node's ZeroMQ sockets bind."""

    orders: str = "tcp://127.0.0.1:7701"
    market_data: str = "tcp://127.0.0.1:7702"
    admin: str = "tcp://127.0.0.1:7703"


@dataclass(frozen=True)
class SecurityConfig:
    """CURVE authentication and where its keys and allowlist live in the home."""

    curve: bool = True
    keys: str = "keys"
    peers_file: str = "peers.json"


@dataclass(frozen=True)
class LimitsConfig:
    """Per-message and per-peer limits, each answered with its own reject code."""

    max_message_bytes: int = 1 << 20
    max_commands_per_message: int = 1000
    peer_rate_per_s: int = 200_000
    peer_burst: int = 400_000
    max_open_orders_per_owner: int = 100_000
    heartbeat_ms: int = 1000
    heartbeat_timeout_ms: int = 5000
    receive_queue_messages: int = 256
    """Messages libzmq queues per order-socket connection before it stops reading that peer
    (ZMQ_RCVHWM): the connection's inbound bound is this times max_message_bytes."""
    send_queue_messages: int = 10_000
    """Answers and reports queued per connection before more are dropped (ZMQ_SNDHWM)."""
    accept_rate_per_s: int = 100
    """New TCP connections a second the order socket takes in a storm; past it a share of
    new connections' SYNs is dropped and their kernels retry (admission.py). 0: no bound."""


@dataclass(frozen=True)
class AnalyticsConfig:
    """The analytics store (DuckDB), fed from the journal by a process beside the node."""

    enabled: bool = True
    file: str = "analytics.duckdb"
    interval_ms: int = 200
    nice: int = 0  # added to the analytics process's niceness: config.toml says why 0


@dataclass(frozen=True)
class MetricsConfig:
    """The node measuring itself: a sample a second off the matching thread, the last hour
    kept, minute rollups sent to the analytics store, and optionally a Prometheus endpoint."""

    enabled: bool = True
    interval_ms: int = 1000
    prometheus: str = ""
    """HOST:PORT of a Prometheus text endpoint (/metrics), or empty for none."""


@dataclass(frozen=True)
class IntegrityConfig:
    """When the running node scans; each detector's thresholds are in `detectors`."""

    scan_interval_s: int = 5
    """Seconds between the starts of a lane's scans (analytics/scanner.py). A wash scan reads
    only what arrived since the last one and costs about 0.2-2 s at 10,000 orders/s (more on a
    busy machine), so every 5 s keeps a wash trade's alert within about 10 s of its commit while
    the follower keeps most of the process; a slower scan spaces the next out by itself."""
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    """`[integrity.NAME]` tables as written: the plugins declare what they hold, so they are
    checked against the installed plugins (analytics.integrity.detector_settings), not here."""


@dataclass(frozen=True)
class ScalingConfig:
    """How often the node asks its scaling policies, and how long a scale-up is held."""

    enabled: bool = True
    interval_s: int = 5
    stabilization_s: int = 300
    policies: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    """`[scaling.NAME]` tables as written, checked against the installed policies
    (ops.scaling.policy_settings)."""


@dataclass(frozen=True)
class SettlementConfig:
    """The chain the node's signed orders are for: the EIP-712 domain every signature names
    (docs/signing.md), and the processes that check signatures."""

    chain_id: int = 31337
    """The chain's id (31337: anvil and the embedded demo chain)."""
    contract: str = ""
    """The settlement contract's address (the domain's verifyingContract); required once a
    market takes signed orders."""
    verifier_workers: int = 0
    """Processes checking signatures; 0: one fewer than the cores, at least one."""
    enabled: bool = False
    """Run the relayer process (trades between signed orders settled on the chain)."""
    rpc: str = "embedded"
    """`embedded` (an in-process chain) or a JSON-RPC URL (http:// or https://)."""
    key_file: str = ""
    """A file (in the home, or an absolute path) holding the relayer's private key as hex;
    required when enabled (the relayer signs its own transactions, so it keeps its nonces)."""
    confirmations: int = 3
    """Blocks on top of a batch's block before its trades are final."""
    batch_size: int = 50
    """Most trades in one settlement transaction (the contract takes at most 100)."""
    max_delay_s: int = 30
    """Longest a trade waits for its batch: the oldest pending trade's deadline."""
    stuck_after_s: int = 30
    """A transaction unmined this long is replaced at its nonce with higher fees."""
    poll_interval_ms: int = 500
    """How often the relayer reads the journal and the chain."""


@dataclass(frozen=True)
class EngineConfig:
    """Which matching core runs (node/core/compiled): both give the same events and state."""

    core: str = "auto"
    """"auto": the compiled core where it was built, else the Python engine; "compiled":
    refuse to start without it; "python": the reference. MARKETNODE_CORE overrides it."""


@dataclass(frozen=True)
class LiquidityConfig:
    """`[liquidity.NAME]` tables as written, one liquidity instance each: checked against the
    installed strategies by the liquidity process's own parsing (node/liquidity/config.py)."""

    instances: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class NodeConfig:
    markets: list[MarketSpec] = field(default_factory=list)
    store: StoreConfig = field(default_factory=StoreConfig)
    node: NodeSection = field(default_factory=NodeSection)
    endpoints: EndpointsConfig = field(default_factory=EndpointsConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    integrity: IntegrityConfig = field(default_factory=IntegrityConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    settlement: SettlementConfig = field(default_factory=SettlementConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    liquidity: LiquidityConfig = field(default_factory=LiquidityConfig)


LOG_LEVELS = ("debug", "info", "warning", "error")
MIN_MESSAGE_BYTES = 1024
ENDPOINT_SCHEMES = ("tcp://", "ipc://", "inproc://")


def default_config_text() -> str:
    """The documented default configuration (the repository's config.toml)."""
    return resources.files(__package__).joinpath("default_config.toml").read_text("utf-8")


def default_markets() -> list[MarketSpec]:
    """The markets of the default configuration (the benchmark and sample flows trade them)."""
    return parse_config(default_config_text(), "config.toml").markets


def load_config(path: Path) -> NodeConfig:
    """Read and check `path`; raise ConfigError with one line on any mistake."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not a text file (byte {error.start} is not UTF-8); a config.toml is TOML text"
        ) from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str) -> NodeConfig:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    known = ("markets", *_SECTIONS)
    for key in document:
        if key not in known:
            raise ConfigError(f"{source}: {key}: unknown key (known: {', '.join(known)})")
    sections = {
        name: _parse_section(document.get(name, {}), cls, f"{source}: [{name}]")
        for name, cls in _SECTIONS.items()
    }
    markets = parse_markets(document.get("markets"), source)
    signed = [spec.symbol for spec in markets if spec.signatures != "off"]
    if signed and not sections["settlement"].contract:
        raise ConfigError(
            f"{source}: [settlement]: contract: missing (market {signed[0]} takes signed "
            "orders, which name the settlement contract)"
        )
    _check_relayer(sections["settlement"], f"{source}: [settlement]")
    return NodeConfig(markets=markets, **sections)


def _check_relayer(settlement: SettlementConfig, where: str) -> None:
    """An enabled relayer needs a contract, its key and a chain it can reach from its own
    process (the embedded chain lives inside one process: a tool running the relayer in
    process, such as the demo, uses it with `enabled` false)."""
    if not settlement.enabled:
        return
    if not settlement.contract:
        raise ConfigError(f"{where}: contract: missing (enabled = true settles on it)")
    if not settlement.key_file:
        raise ConfigError(f"{where}: key_file: missing (the relayer signs its transactions)")
    if settlement.rpc == "embedded":
        raise ConfigError(
            f'{where}: rpc: "embedded" cannot be shared with the relayer process: give a '
            "JSON-RPC URL (anvil, geth, a provider) when enabled = true"
        )


_SECTIONS: dict[str, type] = {
    "node": NodeSection,
    "endpoints": EndpointsConfig,
    "security": SecurityConfig,
    "store": StoreConfig,
    "limits": LimitsConfig,
    "analytics": AnalyticsConfig,
    "integrity": IntegrityConfig,
    "metrics": MetricsConfig,
    "scaling": ScalingConfig,
    "settlement": SettlementConfig,
    "engine": EngineConfig,
    "liquidity": LiquidityConfig,
}


def _positive(value: int) -> bool:
    return value > 0


_CHECKS: dict[tuple[type, str], tuple[Any, str]] = {
    (StoreConfig, "path"): (bool, "must be a non-empty string"),
    (StoreConfig, "sync"): (SYNC_MODES.__contains__, f"must be one of {', '.join(SYNC_MODES)}"),
    (StoreConfig, "batch_size"): (
        lambda v: 1 <= v <= 100_000,
        "must be a whole number from 1 to 100000",
    ),
    (StoreConfig, "map_size"): (lambda v: v >= 1 << 20, "must be at least 1MiB"),
    (StoreConfig, "retry_commit_s"): (_positive, "must be a whole number > 0"),
    (NodeSection, "name"): (bool, "must be a non-empty string"),
    (NodeSection, "log_level"): (
        LOG_LEVELS.__contains__,
        f"must be one of {', '.join(LOG_LEVELS)}",
    ),
    (SecurityConfig, "keys"): (bool, "must be a non-empty string"),
    (AnalyticsConfig, "file"): (bool, "must be a non-empty string"),
    (AnalyticsConfig, "interval_ms"): (_positive, "must be a whole number > 0"),
    (AnalyticsConfig, "nice"): (lambda v: 0 <= v <= 19, "must be from 0 to 19"),
    (IntegrityConfig, "scan_interval_s"): (_positive, "must be a whole number > 0"),
    (ScalingConfig, "interval_s"): (_positive, "must be a whole number > 0"),
    (ScalingConfig, "stabilization_s"): (_positive, "must be a whole number > 0"),
    (MetricsConfig, "interval_ms"): (
        lambda v: v >= 1000,
        "must be at least 1000 (psutil is asked at most once a second)",
    ),
    (MetricsConfig, "prometheus"): (
        lambda v: v == "" or re.fullmatch(r"[^\s:]+:\d{1,5}", v) is not None,
        'must be HOST:PORT (such as "127.0.0.1:9464") or "" for none',
    ),
    (SecurityConfig, "peers_file"): (bool, "must be a non-empty string"),
    (EngineConfig, "core"): (CORES.__contains__, f"must be one of {', '.join(CORES)}"),
    (SettlementConfig, "chain_id"): (_positive, "must be a whole number > 0"),
    (SettlementConfig, "contract"): (
        lambda v: v == "" or re.fullmatch(r"0[xX][0-9a-fA-F]{40}", v) is not None,
        'must be an address (0x and 40 hex digits) or "" for none',
    ),
    (SettlementConfig, "verifier_workers"): (lambda v: 0 <= v <= 64, "must be from 0 to 64"),
    (SettlementConfig, "rpc"): (
        lambda v: v == "embedded" or v.startswith(("http://", "https://")),
        'must be "embedded" or a JSON-RPC URL (http:// or https://)',
    ),
    (SettlementConfig, "confirmations"): (lambda v: 1 <= v <= 1000, "must be from 1 to 1000"),
    (SettlementConfig, "batch_size"): (lambda v: 1 <= v <= 100, "must be from 1 to 100"),
    (SettlementConfig, "max_delay_s"): (_positive, "must be a whole number > 0"),
    (SettlementConfig, "stuck_after_s"): (_positive, "must be a whole number > 0"),
    (SettlementConfig, "poll_interval_ms"): (
        lambda v: 10 <= v <= 60_000,
        "must be from 10 to 60000",
    ),
}
for _name in EndpointsConfig.__dataclass_fields__:
    _CHECKS[EndpointsConfig, _name] = (
        lambda v: v.startswith(ENDPOINT_SCHEMES),
        "must be a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH or inproc://NAME)",
    )
for _name in LimitsConfig.__dataclass_fields__:
    _CHECKS[LimitsConfig, _name] = (_positive, "must be a whole number > 0")
_CHECKS[LimitsConfig, "accept_rate_per_s"] = (lambda v: v >= 0, "must be a whole number >= 0")
_CHECKS[LimitsConfig, "max_message_bytes"] = (
    lambda v: v >= MIN_MESSAGE_BYTES,
    f"must be at least {MIN_MESSAGE_BYTES} (a CURVE handshake must fit)",
)


def _parse_section(table: Any, cls: type, where: str) -> Any:
    """A [section] as its dataclass: known keys only, each of its default's type and checked."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    tables = {
        IntegrityConfig: "detectors", ScalingConfig: "policies", LiquidityConfig: "instances"
    }.get(cls)  # fmt: skip
    fields = [name for name in cls.__dataclass_fields__ if name != tables]
    defaults = cls()
    values: dict[str, Any] = {}
    for key, value in table.items():
        if tables is not None and isinstance(value, dict):
            values.setdefault(tables, {})[key] = value
            continue
        if key not in fields:
            hint = f" or a [{where.rsplit('[', 1)[1][:-1]}.NAME] table" if tables else ""
            raise ConfigError(
                f"{where}: {key}: unknown key (known keys: {', '.join(fields)}{hint})"
            )
        if cls is StoreConfig and key == "map_size":
            value = parse_size(value, f"{where}: map_size")
        expected = type(getattr(defaults, key))
        if expected is float and type(value) is int:
            value = float(value)
        if type(value) is not expected:
            raise ConfigError(f"{where}: {key}: must be {_KINDS[expected]}, got {value!r}")
        check = _CHECKS.get((cls, key))
        if check is not None and not check[0](value):
            raise ConfigError(f"{where}: {key}: {check[1]}, got {value!r}")
        values[key] = value
    return cls(**values)


def parse_size(value: Any, where: str) -> int:
    """Bytes from an integer or a string such as "256MiB"."""
    if type(value) is int and value > 0:
        return value
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if match:
            return int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    raise ConfigError(
        f'{where}: must be a size such as "256MiB" or a number of bytes, got {value!r}'
    )
