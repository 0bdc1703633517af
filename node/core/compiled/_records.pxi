# The store's per-commit record work, included by _engine.pyx (whose names it uses): what
# node/store/statehash.py's `BookHash.plan` does, step for step, for the orders this engine
# changed. The record layout stays the store's: it hands in its encoder and, for signed
# orders (rare), its own functions for their value and the part of it the digest covers.

include "_digest.pxi"

cdef Py_ssize_t O_MARKET = slot_offset(Order, "market")


def plan_records(changed, dict stored, unsigned long long value, dict nonce_writes, encode,
                 signed_value, hashed_value, int nonced_record):
    """(writes, digests, state hash) of statehash.BookHash.plan for `changed` orders (each an
    `Order`) and the changed owners' `nonce_writes`, given the `stored` digests by key and the
    hash `value` before; sums wrap at 2**64 as the hash's modulus does."""
    cdef dict writes = {}
    cdef dict digests = {}
    cdef list live = []
    cdef bytes joined
    cdef uint64_t found
    for order in changed:
        if type(order) is not Order:
            raise TypeError(f"not an Order: {order!r}")
        if get(order, O_REMAINING):
            live.append(order)
        else:
            key = encode((get(order, O_MARKET), get(order, O_OWNER), get(order, O_ID)))
            if key in stored:
                writes[key] = None
    for order in live:
        key = encode((get(order, O_MARKET), get(order, O_OWNER), get(order, O_ID)))
        if get(order, O_EXPIRY):
            writes[key] = signed_value(order)
        else:
            writes[key] = encode((
                get(order, O_IS_BUY), get(order, O_PRICE), get(order, O_REMAINING),
                get(order, O_PRIORITY), get(order, O_STP), get(order, O_PEER),
            ))
    for records in (writes, nonce_writes):
        for key, record in (<dict>records).items():
            old = stored.get(key)
            if old is not None:
                value -= <unsigned long long>old
            if record is None:
                digests[key] = None
                continue
            hashed = record if (<bytes>record)[0] != nonced_record else hashed_value(record)
            joined = key + hashed
            found = _digest64(<const unsigned char*>joined, len(joined))
            digests[key] = found
            value += found
    return writes, digests, value
