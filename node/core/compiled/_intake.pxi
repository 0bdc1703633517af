# A submit's commands admitted and applied, included by _engine.pyx (whose names it uses).
#
# node/server/taking.py's `MessageTaker.apply` with node/server/gateway.py's `Gateway.admit`,
# for a message whose commands wait on no signature checks (every message but the few that
# carry signed orders): the node-set fields stamped, then authorization, halted markets,
# open-order limits and the signature rules, in the gateway's order and with its reasons, then
# the engine and the journal's list of commands. The node's own checks of a message (its
# size, the store, the peer's rate) stay in the gateway, which hands in what they decided;
# tests/test_intake_compiled.py runs both paths side by side and requires the same events,
# commands, books and counters.

from msgspec import Raw

from ..reasons import Reason as _Reason

cdef object NOT_AUTHORIZED = _Reason.NOT_AUTHORIZED
cdef object MARKET_HALTED = _Reason.MARKET_HALTED
cdef object TOO_MANY_ORDERS = _Reason.TOO_MANY_ORDERS
cdef object BAD_SIGNATURE = _Reason.BAD_SIGNATURE
cdef str NEW_TAG = NewOrder.__struct_config__.tag
cdef str CANCEL_TAG = CancelOrder.__struct_config__.tag
cdef str REPLACE_TAG = ReplaceOrder.__struct_config__.tag
cdef Py_ssize_t N_ORDER_HASH = slot_offset(NewOrder, "order_hash")
cdef Py_ssize_t C_ORDER_HASH = slot_offset(CancelOrder, "order_hash")
cdef Py_ssize_t M_SIGNATURES = slot_offset(Market, "signatures")


def admit_and_apply(engine, list journal, list commands, list out, list decoded, orders,
                    str name, owners, halted, signing, is_address, long long max_open, refused,
                    Py_ssize_t allowed, decode_command):
    """Admit and apply `commands` of peer `name` as MessageTaker.apply does for a message that
    is not held: events to `out`, each command as decoded to `decoded`, each command the engine
    took to `journal` (DurableEngine's uncommitted commands), one to `orders[market]` per
    command for a market that exists. `owners`: whom the peer may act for, None for anyone
    (a relayer, or CURVE off); `halted`, `signing`: the gateway's market sets; `is_address`:
    its owner pattern's fullmatch; `refused`, `allowed`: the message's admission
    (Gateway.admit_message)."""
    cdef Py_ssize_t index = 0
    cdef Py_ssize_t id_at, owner_at, market_at
    if type(engine) is not CompiledEngine:
        raise TypeError(f"not an engine of the compiled core: {engine!r}")
    books = <dict>get(engine, E_BOOKS)
    open_orders = get(engine, E_OPEN_ORDERS)
    past_allowed = refused or _Reason.THROTTLED
    for command in commands:
        if type(command) is Raw:
            command = decode_command(command)
        index += 1
        decoded.append(command)
        kind = type(command)
        if kind is Rejected:
            out.append(command)
            continue
        if kind is NewOrder:
            id_at, owner_at, market_at = N_ID, N_OWNER, N_MARKET
            put(command, N_PEER, name)
            put(command, N_ORDER_HASH, None)
        elif kind is CancelOrder:
            id_at, owner_at, market_at = C_ID, C_OWNER, C_MARKET
            put(command, C_REASON, None)
            put(command, C_ORDER_HASH, None)
        elif kind is ReplaceOrder:
            id_at, owner_at, market_at = R_ID, R_OWNER, R_MARKET
        else:
            raise TypeError(f"not a peer's command: {command!r}")
        market = get(command, market_at)
        known = type(market) is str and market in books
        if known:
            _count(orders, market, 1)
        if signing and known and market in signing and is_address(get(command, owner_at)):
            put(command, owner_at, get(command, owner_at).lower())
        reason = refused if index <= allowed else past_allowed
        if not reason:
            reason = _admission_reason(command, kind, get(command, owner_at), market,
                                       books.get(market) if known else None, owners, halted,
                                       open_orders, max_open, get(command, id_at))
        if not reason:
            _dispatch(engine, command, out)
            journal.append(command)
            continue
        tag = NEW_TAG if kind is NewOrder else CANCEL_TAG if kind is CancelOrder else REPLACE_TAG
        out.append(Rejected(None, tag, market, get(command, id_at), get(command, owner_at),
                            reason))


cdef object _admission_reason(command, kind, owner, market, book, owners, halted, open_orders,
                              long long max_open, order_id):
    """Gateway._reason and _signature_reason: the first rule `command` breaks, or None."""
    if owners is not None and owner not in owners:
        return NOT_AUTHORIZED
    if halted and kind is not CancelOrder and type(market) is str and market in halted:
        return MARKET_HALTED
    if kind is NewOrder and (<dict>open_orders).get(owner, 0) >= max_open:
        return TOO_MANY_ORDERS
    if book is None:
        return None
    if kind is ReplaceOrder:
        resting = (<dict>get(book, B_ORDERS)).get((owner, order_id))
        return BAD_SIGNATURE if resting is not None and get(resting, O_EXPIRY) else None
    if get(get(book, B_MARKET), M_SIGNATURES) != "required":
        return None
    if kind is NewOrder:
        return BAD_SIGNATURE if get(command, N_SIG) is None else None
    resting = (<dict>get(book, B_ORDERS)).get((owner, order_id))
    if resting is not None and get(resting, O_EXPIRY) and get(command, C_ORDER_HASH) is None:
        return BAD_SIGNATURE
    return None
