# A batch's market data written as msgpack, included by _engine.pyx after _answers.pxi (whose
# buffer and writers it uses).
#
# node/server/marketdata.py builds one `md` message per market a batch changed: its trades
# (the tape entries the replies made) and the new totals of the price levels its changed orders
# sit or sat on, as `LevelChange` structs for msgspec to encode. `MarketDataWriter` writes the
# same messages without the level structs or the message struct; the fields' order is the
# protocol structs' (checked when the writer is made), and tests/test_answers_compiled.py
# compares its messages with the Python publisher's byte for byte.

MARKET_DATA_FIELDS = ("v", "market", "seq", "trades", "levels", "run")
TAPE_FIELDS = ("seq", "price", "qty", "aggressor")
LEVEL_FIELDS = ("side", "price", "qty", "orders")
"""The fields of the protocol's MarketData, TapeTrade and LevelChange, in the order written."""
cdef enum:  # where each field's encoded name is in MarketDataWriter.keys
    K_MARKET, K_SEQ, K_TRADES, K_LEVELS, K_RUN
    K_TAPE_SEQ, K_TAPE_PRICE, K_TAPE_QTY, K_TAPE_AGGRESSOR
    K_SIDE, K_LEVEL_PRICE, K_LEVEL_QTY, K_ORDERS


@cython.final
cdef class MarketDataWriter:
    """Writes a batch's `md` messages as node/server/marketdata.py's publisher encodes them."""

    cdef bytes head
    """The map header, the tag pair and the `v` pair: what every message starts with."""
    cdef list keys
    """The encoded names of MarketData's fields after `v`, then TapeTrade's, then LevelChange's."""
    cdef object tape_trade
    cdef Py_ssize_t tape_seq, tape_price, tape_qty, tape_aggressor
    cdef bytes buy, sell
    cdef Buffer out, levels

    def __init__(self, market_data, tape_trade, level_change, int version, encode):
        """`market_data`, `tape_trade`, `level_change`: the protocol's structs, whose field
        names must be the ones written here; `encode` msgspec's encoder for the keys."""
        for kind, names in ((market_data, MARKET_DATA_FIELDS), (tape_trade, TAPE_FIELDS),
                            (level_change, LEVEL_FIELDS)):
            if tuple(kind.__struct_fields__) != names:
                raise TypeError(f"{kind.__name__} has fields {kind.__struct_fields__}, "
                                f"the market-data writer writes {names}")
        config = market_data.__struct_config__
        self.head = (bytes([0x80 | (len(MARKET_DATA_FIELDS) + 1)]) + encode(config.tag_field)
                     + encode(config.tag) + encode("v") + encode(version))
        self.keys = [encode(name) for name in (*MARKET_DATA_FIELDS[1:], *TAPE_FIELDS,
                                               *LEVEL_FIELDS)]
        self.tape_trade = tape_trade
        self.tape_seq = slot_offset(tape_trade, "seq")
        self.tape_price = slot_offset(tape_trade, "price")
        self.tape_qty = slot_offset(tape_trade, "qty")
        self.tape_aggressor = slot_offset(tape_trade, "aggressor")
        self.buy, self.sell = encode("buy"), encode("sell")
        _open(&self.out)
        _open(&self.levels)

    def __dealloc__(self):
        free(self.out.data)
        free(self.levels.data)

    def messages(self, dict books, trades, changed, topic_seq, run):
        """[(market, payload)] of the batch, markets in order: each market's `trades`, then the
        totals of the levels the `changed` orders touch; `topic_seq[market]` counts on."""
        cdef Py_ssize_t start, count
        cdef Buffer* levels = &self.levels
        touched = set()
        for order in changed:
            if type(order) is not Order:
                raise TypeError(f"not an Order: {order!r}")
            touched.add((get(order, O_MARKET), not get(order, O_IS_BUY), get(order, O_PRICE)))
        levels.size = 0
        spans = {}  # market -> (start, end, count) of its levels in `levels`
        current, start, count = None, 0, 0
        for market, is_sell, price in sorted(touched):
            book = books.get(market)
            if book is None:
                continue
            if market != current:
                if current is not None:
                    spans[current] = (start, levels.size, count)
                current, start, count = market, levels.size, 0
            self._level(book, not is_sell, price)
            count += 1
        if current is not None:
            spans[current] = (start, levels.size, count)
        result = []
        for market in sorted(trades.keys() | spans.keys()):
            seq = (<dict>topic_seq).get(market, 0) + 1
            (<dict>topic_seq)[market] = seq
            result.append((market, self._message(market, seq, (<dict>trades).get(market, ()),
                                                 spans.get(market), run)))
        return result

    cdef int _level(self, book, bint is_buy, price) except -1:
        """One LevelChange: the side, the price, the level's total and order count (0 gone)."""
        cdef Buffer* levels = &self.levels
        side = get(book, B_BIDS if is_buy else B_ASKS)
        level = (<dict>get(side, S_LEVELS)).get(price)
        market = get(book, B_MARKET)
        _header(levels, len(LEVEL_FIELDS), 0x80, 0xde, 0xdf)
        _chunk(levels, self._key(K_SIDE))
        _chunk(levels, self.buy if is_buy else self.sell)
        _chunk(levels, self._key(K_LEVEL_PRICE))
        _text_value(levels, _text(get(market, M_TICK), price))
        _chunk(levels, self._key(K_LEVEL_QTY))
        qty = get(level, L_QTY) if level is not None else 0
        _text_value(levels, _text(get(market, M_LOT), qty))
        _chunk(levels, self._key(K_ORDERS))
        _integer(levels, get(level, L_COUNT) if level is not None else 0)
        return 0

    cdef bytes _message(self, market, long long seq, tape, span, run):
        cdef Buffer* out = &self.out
        cdef Py_ssize_t start, end, count
        out.size = 0
        _chunk(out, self.head)
        _chunk(out, self._key(K_MARKET))
        _text_value(out, market)
        _chunk(out, self._key(K_SEQ))
        _integer(out, seq)
        _chunk(out, self._key(K_TRADES))
        _header(out, len(tape), 0x90, 0xdc, 0xdd)
        for entry in tape:
            self._tape_entry(entry)
        _chunk(out, self._key(K_LEVELS))
        if span is None:
            _byte(out, 0x90)
        else:
            start, end, count = span
            _header(out, count, 0x90, 0xdc, 0xdd)
            _bytes(out, self.levels.data + start, end - start)
        _chunk(out, self._key(K_RUN))
        _integer(out, run)
        return PyBytes_FromStringAndSize(out.data, out.size)

    cdef inline bytes _key(self, Py_ssize_t at):
        return <bytes>PyList_GET_ITEM(self.keys, at)

    cdef int _tape_entry(self, entry) except -1:
        cdef Buffer* out = &self.out
        if type(entry) is not self.tape_trade:
            raise TypeError(f"not a tape entry: {entry!r}")
        _header(out, len(TAPE_FIELDS), 0x80, 0xde, 0xdf)
        _chunk(out, self._key(K_TAPE_SEQ))
        _integer(out, get(entry, self.tape_seq))
        _chunk(out, self._key(K_TAPE_PRICE))
        _text_value(out, get(entry, self.tape_price))
        _chunk(out, self._key(K_TAPE_QTY))
        _text_value(out, get(entry, self.tape_qty))
        _chunk(out, self._key(K_TAPE_AGGRESSOR))
        _text_value(out, get(entry, self.tape_aggressor))
        return 0
