"""Market definitions: the `[[markets]]` tables of config.toml, checked and made integer rules.

A market's rules are stated in decimal text by the operator and applied by the engine in whole
ticks and lots; everything that can be wrong with a definition is caught here, at start-up, with
one line naming the file, the market and the key.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .decimals import Unit, parse_decimal

SYMBOL_PATTERN = re.compile(r"[A-Z0-9]+-[A-Z0-9]+")
ASSET_PATTERN = re.compile(r"[A-Z0-9]+")

STP_MODES = ("none", "cancel_newest", "cancel_oldest", "cancel_both", "decrement")
"""Self-trade prevention modes; the index is the engine's integer code."""

MAX_UNITS = 2**63 - 1
"""The most lots an order may have, and the most ticks x lots its notional may come to, in
every market, whatever its configuration says or leaves out: an order's record in the store
and the wire's integers are msgpack's, 64 bits at most, so a larger order would pass matching
and then fail its commit. It also bounds the price (at least one lot), and keeps the size
checks to 64-bit arithmetic. A larger one is refused as `qty_above_max` or
`notional_above_max` (docs/protocol.md)."""

REQUIRED_KEYS = ("symbol", "base", "quote", "tick_size", "lot_size")
CHAIN_KEYS = (
    "signatures", "base_token", "base_token_id", "quote_token", "lot_units", "tick_units",
    "fee_bps",
)  # fmt: skip
"""A market's settlement settings: what a signer commits to (docs/signing.md §1, §6)."""
OPTIONAL_KEYS = ("min_qty", "max_qty", "max_notional", "stp", *CHAIN_KEYS)

SIGNATURE_MODES = ("off", "optional", "required")
"""`off`: orders are never signed (trusted peers, the default); `optional`: signed and
unsigned orders trade together; `required`: only signed orders and signed cancels."""
ADDRESS_PATTERN = re.compile(r"0[xX][0-9a-fA-F]{40}")
MAX_TOKEN_UNITS = 1 << 96
"""The settlement contract's bound on what a lot or a tick is worth (its MAX_UNITS)."""
MAX_FEE_BPS = 65535


class ConfigError(ValueError):
    """A configuration mistake, worded as one line for the operator."""


class MarketSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A market as the operator wrote it: decimal text, journaled so replays see the same rules."""

    symbol: str
    base: str
    quote: str
    tick_size: str
    lot_size: str
    min_qty: str | None = None
    max_qty: str | None = None
    max_notional: str | None = None
    stp: str = "cancel_newest"
    signatures: str = "off"
    base_token: str | None = None
    """The base token's contract: an ERC-20, or an ERC-721 when `base_token_id` is not 0."""
    base_token_id: str = "0"
    quote_token: str | None = None
    lot_units: str | None = None
    """Base token units in one lot (an integer as text: 10**18 does not fit TOML's ints)."""
    tick_units: str | None = None
    """Quote token units per tick for one lot."""
    fee_bps: str = "0"
    """The fee the node charges, in basis points of the quote amount (a signer's
    `maxFeeBps` must allow it)."""


class Market:
    """A market's rules in engine units: ticks for prices, lots for quantities."""

    __slots__ = (
        "default_stp",
        "lot",
        "max_lots",
        "max_notional_units",
        "min_lots",
        "signatures",
        "spec",
        "symbol",
        "tick",
    )

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.tick = Unit(spec.tick_size)
        self.lot = Unit(spec.lot_size)
        self.min_lots = max(1, self.lot.ceil_units(spec.min_qty)) if spec.min_qty else 1
        self.max_lots = (
            min(self.lot.floor_units(spec.max_qty), MAX_UNITS) if spec.max_qty else MAX_UNITS
        )
        self.max_notional_units = (
            min(_floor_notional_units(spec.max_notional, self.tick, self.lot), MAX_UNITS)
            if spec.max_notional
            else MAX_UNITS
        )
        self.default_stp = STP_MODES.index(spec.stp)
        self.signatures = spec.signatures


def _floor_notional_units(max_notional: str, tick: Unit, lot: Unit) -> int:
    """Largest price_ticks x qty_lots whose notional stays within max_notional."""
    parsed = parse_decimal(max_notional)
    assert parsed is not None
    mantissa, exponent = parsed
    numerator = mantissa * 10 ** (tick.exponent + lot.exponent)
    denominator = tick.mantissa * lot.mantissa * 10**exponent
    return numerator // denominator


def parse_markets(tables: Any, source: str) -> list[MarketSpec]:
    """Check the `[[markets]]` tables of `source`; raise ConfigError naming file, market and key."""
    if tables is None:
        return []
    if not isinstance(tables, list):
        raise ConfigError(f"{source}: markets: must be an array of tables ([[markets]])")
    specs: list[MarketSpec] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        spec = _parse_market(table, f"{source}: market {_label(table, index)}")
        if spec.symbol in seen:
            raise ConfigError(
                f"{source}: market {_label(table, index)}: symbol: duplicate symbol {spec.symbol!r}"
            )
        seen.add(spec.symbol)
        specs.append(spec)
    return specs


def _label(table: Any, index: int) -> str:
    symbol = table.get("symbol") if isinstance(table, dict) else None
    return f"{symbol!r} (markets[{index}])" if isinstance(symbol, str) else f"markets[{index}]"


def _parse_market(table: Any, where: str) -> MarketSpec:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    for key in table:
        if key not in REQUIRED_KEYS and key not in OPTIONAL_KEYS:
            known = ", ".join(REQUIRED_KEYS + OPTIONAL_KEYS)
            raise ConfigError(f"{where}: {key}: unknown key (known keys: {known})")
    for key in REQUIRED_KEYS:
        if key not in table:
            raise ConfigError(f"{where}: {key}: missing (required)")
    values: dict[str, str] = {}
    for key, value in table.items():
        if not isinstance(value, str):
            hint = (
                ' (write decimals as strings, e.g. "0.01")'
                if key.endswith(("_size", "_qty", "notional"))
                else ""
            )
            raise ConfigError(f"{where}: {key}: must be a string, got {value!r}{hint}")
        values[key] = value
    if not SYMBOL_PATTERN.fullmatch(values["symbol"]):
        raise ConfigError(
            f"{where}: symbol: must match [A-Z0-9]+-[A-Z0-9]+, got {values['symbol']!r}"
        )
    for key in ("base", "quote"):
        if not ASSET_PATTERN.fullmatch(values[key]):
            raise ConfigError(f"{where}: {key}: must match [A-Z0-9]+, got {values[key]!r}")
    for key in ("tick_size", "lot_size"):
        parsed = parse_decimal(values[key])
        if parsed is None or parsed[0] <= 0:
            raise ConfigError(f"{where}: {key}: must be a decimal > 0, got {values[key]!r}")
    for key in ("min_qty", "max_qty", "max_notional"):
        if key in values:
            parsed = parse_decimal(values[key])
            if parsed is None or parsed[0] <= 0:
                raise ConfigError(f"{where}: {key}: must be a decimal > 0, got {values[key]!r}")
    if "stp" in values and values["stp"] not in STP_MODES:
        raise ConfigError(
            f"{where}: stp: must be one of {', '.join(STP_MODES)}, got {values['stp']!r}"
        )
    if values.get("signatures", "off") not in SIGNATURE_MODES:
        raise ConfigError(
            f"{where}: signatures: must be one of {', '.join(SIGNATURE_MODES)}, "
            f"got {values['signatures']!r}"
        )
    spec = MarketSpec(**values)
    market = Market(spec)
    if market.max_lots < market.min_lots:
        raise ConfigError(f"{where}: max_qty: admits no quantity at or above min_qty in whole lots")
    if market.max_notional_units < 1:
        raise ConfigError(f"{where}: max_notional: smaller than one tick times one lot")
    _check_chain_keys(spec, market, where)
    return spec


def _check_chain_keys(spec: MarketSpec, market: Market, where: str) -> None:
    """A market that takes signed orders names its tokens and what a lot and a tick are worth
    in them, within what the settlement contract takes."""
    for key in ("base_token", "quote_token"):
        value = getattr(spec, key)
        if value is not None and not ADDRESS_PATTERN.fullmatch(value):
            raise ConfigError(f"{where}: {key}: must be an address (0x and 40 hex digits)")
    bounds = {"base_token_id": 1 << 256, "lot_units": MAX_TOKEN_UNITS + 1,
              "tick_units": MAX_TOKEN_UNITS + 1, "fee_bps": MAX_FEE_BPS + 1}  # fmt: skip
    for key, limit in bounds.items():
        value = getattr(spec, key)
        if value is not None and not (value.isdigit() and int(value) < limit):
            raise ConfigError(f"{where}: {key}: must be a whole number below {limit}")
    if spec.signatures == "off":
        return
    for key in ("base_token", "quote_token", "lot_units", "tick_units"):
        if getattr(spec, key) is None:
            raise ConfigError(f"{where}: {key}: missing (required with signatures)")
    for key in ("lot_units", "tick_units"):
        if int(getattr(spec, key)) < 1:
            raise ConfigError(f"{where}: {key}: must be at least 1")
    if int(spec.base_token_id) and (int(spec.lot_units) != 1 or market.max_lots != 1):
        raise ConfigError(
            f"{where}: base_token_id: an ERC-721 base moves one token: lot_units must be "
            '"1" and max_qty one lot'
        )
