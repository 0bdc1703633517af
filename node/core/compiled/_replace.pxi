# Replaces in the compiled engine, included by _engine.pyx (whose names it uses): the checks of
# node/core/validation.py's validate_replace and the steps of Engine._replace, in their order.


cdef object _replace_order(engine, command, list out):
    """validation.validate_replace and Engine._replace, step for step."""
    cdef bint in_place, is_buy
    book = _book_of(engine, get(command, R_MARKET))
    if book is None:
        return _reject(engine, "replace", command, Reason.UNKNOWN_MARKET, out)
    market = get(book, B_MARKET)
    owner = get(command, R_OWNER)
    order_id = get(command, R_ID)
    key = (owner, order_id)
    order = (<dict>get(book, B_ORDERS)).get(key)
    lots = ticks = None
    qty_text = get(command, R_QTY)
    if qty_text is not None:
        lots = _units(get(market, M_LOT), qty_text)
        if lots == NOT_A_NUMBER:
            return _reject(engine, "replace", command, Reason.BAD_QTY, out)
    price_text = get(command, R_PRICE)
    if price_text is not None:
        ticks = _units(get(market, M_TICK), price_text)
        if ticks == NOT_A_NUMBER:
            return _reject(engine, "replace", command, Reason.BAD_PRICE, out)
        if ticks == OFF_STEP:
            return _reject(engine, "replace", command, Reason.OFF_TICK, out)
    if lots is not None:
        reason = _size_reason(market, lots, None)
        if reason is not None:
            return _reject(engine, "replace", command, reason, out)
    if order is not None:
        ticks = get(order, O_PRICE) if ticks is None else ticks
        lots = get(order, O_REMAINING) if lots is None else lots
    if ticks is not None and lots is not None and ticks * lots > get(market, M_MAX_NOTIONAL):
        return _reject(engine, "replace", command, Reason.NOTIONAL_ABOVE_MAX, out)
    if order is None:
        return _reject(engine, "replace", command, Reason.UNKNOWN_ORDER, out)
    symbol = get(book, B_SYMBOL)
    out.append(Accepted(_next_seq(engine), "replace", symbol, order_id, owner))
    price = get(order, O_PRICE)
    remaining = get(order, O_REMAINING)
    is_buy = get(order, O_IS_BUY)
    in_place = ticks == price and lots <= remaining
    peer = get(order, O_PEER)
    side_name = "buy" if is_buy else "sell"
    out.append(
        Replaced(
            _next_seq(engine), symbol, get(order, O_ID), get(order, O_OWNER), side_name, ticks,
            lots, in_place, peer,
        )
    )
    if in_place:
        level = (<dict>get(get(book, B_BIDS if is_buy else B_ASKS), S_LEVELS))[price]
        put(level, L_QTY, get(level, L_QTY) - (remaining - lots))
        put(order, O_REMAINING, lots)
        (<set>get(engine, E_TOUCHED)).add(order)
        return
    _take_off(engine, book, order, key)
    incoming = Order(
        symbol, get(order, O_ID), get(order, O_OWNER), is_buy, ticks, lots, 0, get(order, O_STP),
        peer,
    )
    opposite = get(book, B_ASKS if is_buy else B_BIDS)
    _enter(engine, book, incoming, None, ticks * get(opposite, S_SIGN), False, out)
