# Matching of the compiled engine, included by _engine.pyx (whose names it uses): the steps of
# node/core/matching.py in the same order, on the same levels and orders.


cdef bint _match(engine, book, taker, limit_key, list out) except -1:
    """matching.match: trade `taker` while it crosses `limit_key`; True if STP stopped it.

    On return the taker's `remaining` is what is left for the caller to rest or cancel."""
    cdef bint is_buy = get(taker, O_IS_BUY)
    cdef long long stp = get(taker, O_STP)
    cdef long long seq = get(engine, E_SEQ)
    cdef bint stopped = False
    opposite = get(book, B_ASKS if is_buy else B_BIDS)
    keys = <list>get(opposite, S_KEYS)
    levels = <dict>get(opposite, S_LEVELS)
    sign = get(opposite, S_SIGN)
    index = <dict>get(book, B_ORDERS)
    open_orders = get(engine, E_OPEN_ORDERS)
    touched = <set>get(engine, E_TOUCHED)
    symbol = get(book, B_SYMBOL)
    owner = get(taker, O_OWNER)
    taker_id = get(taker, O_ID)
    taker_peer = get(taker, O_PEER)
    aggressor = "buy" if is_buy else "sell"
    remaining = get(taker, O_REMAINING)
    while keys:
        key = keys[len(keys) - 1]
        if key < limit_key:
            break
        level = levels[key * sign]
        queue = get(level, L_ORDERS)
        level_price = get(level, L_PRICE)
        while queue:
            maker = queue[0]
            maker_remaining = get(maker, O_REMAINING)
            if not maker_remaining:
                queue.popleft()
                continue
            maker_owner = get(maker, O_OWNER)
            if stp and maker_owner == owner:
                if stp == CANCEL_NEWEST:
                    stopped = True
                    break
                if stp == CANCEL_OLDEST or stp == CANCEL_BOTH:
                    seq += 1
                    out.append(
                        Cancelled(
                            seq, symbol, get(maker, O_ID), owner, STP_REASON, maker_remaining, 0,
                            get(maker, O_PEER),
                        )
                    )
                    _drop_head(queue, level, index, open_orders, maker, touched)
                    if stp == CANCEL_BOTH:
                        stopped = True
                        break
                    continue
                # decrement: both lose the smaller remaining quantity, nobody trades
                cut = remaining if remaining < maker_remaining else maker_remaining
                remaining = remaining - cut
                maker_remaining = maker_remaining - cut
                seq += 1
                out.append(
                    Cancelled(
                        seq, symbol, get(maker, O_ID), owner, STP_REASON, cut, maker_remaining,
                        get(maker, O_PEER),
                    )
                )
                seq += 1
                out.append(
                    Cancelled(seq, symbol, taker_id, owner, STP_REASON, cut, remaining, taker_peer)
                )
                if maker_remaining:
                    put(maker, O_REMAINING, maker_remaining)
                    put(level, L_QTY, get(level, L_QTY) - cut)
                    touched.add(maker)
                else:
                    _drop_head(queue, level, index, open_orders, maker, touched)
                if not remaining:
                    break
                continue
            fill = remaining if remaining < maker_remaining else maker_remaining
            remaining = remaining - fill
            maker_remaining = maker_remaining - fill
            seq += 1
            out.append(
                Trade(
                    seq,
                    symbol,
                    level_price,
                    fill,
                    get(maker, O_ID),
                    maker_owner,
                    taker_id,
                    owner,
                    aggressor,
                    maker_remaining,
                    remaining,
                    get(maker, O_PEER),
                    taker_peer,
                )
            )
            touched.add(maker)
            if maker_remaining:
                put(maker, O_REMAINING, maker_remaining)
                put(level, L_QTY, get(level, L_QTY) - fill)
            else:
                _drop_head(queue, level, index, open_orders, maker, touched)
            if not remaining:
                break
        if not get(level, L_COUNT):
            del levels[level_price]
            keys.pop()
        if stopped or not remaining:
            break
    put(engine, E_SEQ, seq)
    put(taker, O_REMAINING, remaining)
    return stopped


cdef inline object _drop_head(queue, level, dict index, open_orders, maker, set touched):
    """matching._drop_head: remove the order at the front of its level (filled, or cancelled
    by self-trade prevention)."""
    queue.popleft()
    put(level, L_QTY, get(level, L_QTY) - get(maker, O_REMAINING))
    put(level, L_COUNT, get(level, L_COUNT) - 1)
    put(maker, O_REMAINING, 0)
    del index[get(maker, O_OWNER), get(maker, O_ID)]
    open_orders[get(maker, O_OWNER)] -= 1
    touched.add(maker)
