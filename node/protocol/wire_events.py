"""Events as peers and files see them, derived from the core's events.

A wire event is its core event with the same tag and fields in the same order, except that
prices and quantities (`Ticks`, `Lots` in core/events.py) are canonical decimal strings (the
per-market text caches make this a dict hit) and the node-only fields (`PeerName`: who placed an
order is the node's business, not the counterparty's) are left out. An event with neither, like
`accepted` and `rejected`, leaves as it is. The wire structs and their conversions are made here
from the core structs' annotations, so a field added to a core event reaches the wire without a
second edit. The same records are encoded as msgpack for peers and as JSON by `mnode replay`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, Union, get_args

import msgspec

from ..core.book import OrderBook
from ..core.events import Cancelled, Event, Replaced, Rested, Role, Trade

WireField = tuple[str, Any, Role | None]
"""A field as peers see it: its name, its type on the wire, and its role if it is converted."""


def role_of(field_type: Any) -> Role | None:
    """The role a core event field's annotation states (`Ticks`, `Lots`, `PeerName`), if any."""
    extras = getattr(field_type, "__metadata__", ())
    return next((extra for extra in extras if isinstance(extra, Role)), None)


def wire_fields(kind: type[msgspec.Struct]) -> list[WireField]:
    """The fields of core event `kind` that peers see, in order; prices and quantities typed
    as the text they travel as."""
    fields: list[WireField] = []
    for field in msgspec.structs.fields(kind):
        role = role_of(field.type)
        if role is not Role.NODE_ONLY:
            fields.append((field.name, str if role else field.type, role))
    return fields


def wire_form(kind: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """The struct peers receive for core event `kind`: `kind` itself when none of its fields
    has a role, else `Wire<Kind>` with the same tag.

    Every field of a derived struct is required (the node always sends it, so a client decoding
    it learns of a missing field rather than guessing a default).
    """
    if not any(role_of(field.type) for field in msgspec.structs.fields(kind)):
        return kind
    config = kind.__struct_config__
    return msgspec.defstruct(
        f"Wire{kind.__name__}",
        [(name, wire_type) for name, wire_type, _ in wire_fields(kind)],
        tag=config.tag,
        tag_field=config.tag_field,
        gc=False,
        module=__name__,
    )


UNIT_OF_ROLE = {Role.TICKS: "tick", Role.LOTS: "lot"}
"""The market's `Unit` attribute that turns a field of each converting role into text."""


def derive_wire_events(
    kinds: tuple[type[msgspec.Struct], ...],
) -> tuple[dict[type, type], Callable[[Any, dict[str, OrderBook]], Any]]:
    """The wire form of each event kind, and the function that turns an event into its form.

    The function is generated as source from `wire_fields`, the way `dataclasses` makes
    `__init__`: it runs for every event a peer or `mnode replay` sees, and a loop over a field
    table measured twice the per-event cost of straight-line code (one more call per event, a
    tenth more).
    For each kind it reads, e.g. for a trade: `market = books[event.market].market;
    lot = market.lot.text_of; return WireTrade(event.seq, event.market,
    market.tick.text_of(event.price), lot(event.qty), ...)` (a unit used more than once is
    bound once).
    """
    forms = {kind: wire_form(kind) for kind in kinds}
    namespace: dict[str, Any] = {}
    as_is: list[str] = []
    blocks: list[str] = []
    for index, (kind, form) in enumerate(forms.items()):
        namespace[f"kind_{index}"], namespace[f"form_{index}"] = kind, form
        if form is kind:
            as_is.append(f"kind is kind_{index}")
            continue
        fields = wire_fields(kind)
        if "market" not in {name for name, _, _ in fields}:
            raise TypeError(f"{kind.__name__} has prices or quantities but no market for them")
        uses = Counter(UNIT_OF_ROLE[role] for _, _, role in fields if role)
        shared = sorted(unit for unit, count in uses.items() if count > 1)  # bound once
        arguments = ", ".join(_argument(name, role, shared) for name, _, role in fields)
        blocks += [
            f"    if kind is kind_{index}:",
            "        market = books[event.market].market",
            *(f"        {unit} = market.{unit}.text_of" for unit in shared),
            f"        return form_{index}({arguments})",
        ]
    lines = ["def wire_event(event, books):", "    kind = type(event)"]
    if as_is:
        lines += [f"    if {' or '.join(as_is)}:", "        return event"]
    lines += [*blocks, "    raise TypeError(f'not an event: {event!r}')"]
    source = "\n".join(lines)  # made above from field names only
    exec(compile(source, f"<wire_event derived in {__name__}>", "exec"), namespace)
    function = namespace["wire_event"]
    function.__module__ = __name__
    function.__doc__ = "The event as peers and files see it; TypeError for what is not an event."
    return forms, function


def _argument(name: str, role: Role | None, shared: list[str]) -> str:
    """The expression of one field of a wire struct in the generated conversion."""
    if role is None:
        return f"event.{name}"
    unit = UNIT_OF_ROLE[role]
    return f"{unit}(event.{name})" if unit in shared else f"market.{unit}.text_of(event.{name})"


WIRE_FORMS, wire_event = derive_wire_events(get_args(Event))
"""Each core event kind and the struct peers receive for it; `wire_event(event, books)` turns
an event into its form (decimal text, no peer names)."""

WireTrade = WIRE_FORMS[Trade]
WireRested = WIRE_FORMS[Rested]
WireCancelled = WIRE_FORMS[Cancelled]
WireReplaced = WIRE_FORMS[Replaced]
WireEvent = Union[tuple(WIRE_FORMS.values())]  # noqa: UP007 - built from a tuple of types
"""Any event as peers receive it (what a `reply` or `report` carries)."""


WireLayout = tuple[str, str, list[tuple[str, Role | None, bool]]]
"""An event kind as a writer of its wire bytes needs it: the tag field and the tag, then each
wire field's name, role and whether it is left out when None."""


def wire_layouts(kinds: tuple[type[msgspec.Struct], ...]) -> dict[type, WireLayout]:
    """What a writer that encodes core events straight to msgpack must know of each kind to
    write exactly the bytes msgspec writes for its wire form (the compiled core's answer
    writer, node/core/compiled/_answers.pxi): the field order, the roles, and the fields a
    kind that leaves itself as is omits at their default (`rejected`'s `detail`)."""
    layouts: dict[type, WireLayout] = {}
    for kind in kinds:
        config = kind.__struct_config__
        as_is = wire_form(kind) is kind
        defaults = {field.name: field.default for field in msgspec.structs.fields(kind)}
        fields = []
        for name, _, role in wire_fields(kind):
            omitted = as_is and config.omit_defaults and defaults[name] is not msgspec.NODEFAULT
            if omitted and defaults[name] is not None:
                raise TypeError(f"{kind.__name__}.{name}: only a None default can be left out")
            fields.append((name, role, omitted))
        layouts[kind] = (config.tag_field, config.tag, fields)
    return layouts


def event_record(event: Any, books: dict[str, OrderBook]) -> dict[str, Any]:
    """The event as a plain dict (`event` first), as JSON and msgpack render it."""
    return msgspec.to_builtins(wire_event(event, books))
