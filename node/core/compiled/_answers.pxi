# A submit's answer written as msgpack straight from the core's events, included by _engine.pyx
# (whose slot helpers it uses).
#
# node/server/answers.py turns each event into its wire struct (node/protocol/wire_events.py:
# decimal text for prices and quantities, no peer names) and msgspec encodes the reply; for a
# batch of 100 orders that is some 200 structs made only to be encoded once. `AnswerWriter`
# writes the same bytes without them: the layout of every event kind (its tag, its wire
# fields, which of them are ticks or lots) comes from wire_events.py as data, so the two paths
# cannot drift apart by a field, and tests/test_answers_compiled.py compares them byte for
# byte. Values the writer has no fast path for (a float id, a map as the ref, an int from 2**63)
# go through msgspec's own encoder and are spliced in as it wrote them.

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL
    bint PyUnicode_IS_COMPACT_ASCII(object text)


cdef int ROLE_PLAIN = 0, ROLE_TICKS = 1, ROLE_LOTS = 2
cdef enum:
    MAX_FIELDS = 14  # an event's wire fields at most: with its tag, its map fits a fixmap
cdef Py_ssize_t U_TEXT = slot_offset(Unit, "_text_cache")
cdef Py_ssize_t T_MARKET = slot_offset(Trade, "market"), T_PRICE = slot_offset(Trade, "price")
cdef Py_ssize_t T_QTY = slot_offset(Trade, "qty"), T_SEQ = slot_offset(Trade, "seq")
cdef Py_ssize_t T_AGGRESSOR = slot_offset(Trade, "aggressor")
cdef Py_ssize_t T_MAKER_PEER = slot_offset(Trade, "maker_peer")
cdef Py_ssize_t T_TAKER_PEER = slot_offset(Trade, "taker_peer")
cdef Py_ssize_t J_REASON = slot_offset(Rejected, "reason")


@cython.final
cdef class _Layout:
    """One event kind as the wire shows it: its tag's key and value, then its fields."""

    cdef bytes tag
    """The encoded tag pair ("event", "trade"), written first."""
    cdef list keys
    """Each wire field's encoded name."""
    cdef Py_ssize_t offsets[MAX_FIELDS]
    cdef int roles[MAX_FIELDS]
    cdef bint omit_none[MAX_FIELDS]
    """Fields left out when None (a struct with omit_defaults whose default is None)."""
    cdef Py_ssize_t market
    """The offset of the kind's `market`, for the units of its ticks and lots (-1: none)."""
    cdef Py_ssize_t peer
    """The offset of the placing peer's name the event is reported by (-1: not reported)."""
    cdef object kind
    cdef Py_ssize_t written
    """Events of the kind in the reply being written, counted into the metrics at its end."""


cdef struct Buffer:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity


@cython.final
cdef class AnswerWriter:
    """Writes a submit's `reply` from its core events and routes what others are owed, as
    node/server/answers.py's `Outbox._answer_submit` does with wire structs."""

    cdef dict layouts
    cdef bytes prefix, ref_key
    cdef object encode, raw, tape_trade, str_enum
    cdef set text_kinds
    """The str enums met so far, whose members are written as their text."""
    cdef object event_counts, reject_counts, trade_counts, volume_lots
    """Counters and defaultdicts: dicts of a subclass, reached as dicts (neither overrides
    what is used of them)."""
    cdef Buffer out

    def __init__(self, layouts, bytes prefix, bytes ref_key, encode, raw, tape_trade, str_enum,
                 event_counts, reject_counts, trade_counts, volume_lots):
        """`layouts`: {kind: (tag field, tag, [(field, role, omitted when None)])}, roles as
        ROLE_*; `prefix` the reply's bytes before its events, `ref_key` its encoded `ref`
        key; `encode` msgspec's encoder for what has no fast path here, `raw` msgspec.Raw,
        `tape_trade` the market data's trade struct; `str_enum` the enum base whose str
        members travel as their text; the four counters are the loop metrics'."""
        self.layouts = {}
        for kind, (tag_field, tag, fields) in layouts.items():
            self.layouts[kind] = _layout_of(kind, tag_field, tag, fields, encode)
        self.prefix, self.ref_key = prefix, ref_key
        self.encode, self.raw, self.tape_trade, self.str_enum = encode, raw, tape_trade, str_enum
        self.text_kinds = set()
        self.event_counts, self.reject_counts = event_counts, reject_counts
        self.trade_counts, self.volume_lots = trade_counts, volume_lots
        _open(&self.out)

    def __dealloc__(self):
        free(self.out.data)

    def reply(self, list events, dict books, requester, ref, reports, trades):
        """The encoded reply of `events`; a trade's tape entry goes to `trades[market]`, an
        event of another peer's order to `reports[peer]` (as msgspec.Raw, encoded once)."""
        cdef Py_ssize_t start
        cdef _Layout layout
        cdef Buffer* out = &self.out
        out.size = 0
        for layout in self.layouts.values():
            layout.written = 0
        _chunk(out, self.prefix)
        _header(out, len(events), 0x90, 0xdc, 0xdd)
        for event in events:
            kind = type(event)
            layout = self.layouts.get(kind)
            if layout is None:
                raise TypeError(f"not an event: {event!r}")
            layout.written += 1
            start = out.size
            self._event(event, layout, books)
            if kind is Rejected:
                _count(self.reject_counts, get(event, J_REASON), 1)
            elif kind is Trade:
                self._tape(event, books, trades)
                self._report(get(event, T_MAKER_PEER), requester, None, start, reports)
                self._report(get(event, T_TAKER_PEER), requester, get(event, T_MAKER_PEER),
                             start, reports)
            elif layout.peer >= 0:
                self._report(get(event, layout.peer), requester, None, start, reports)
        _chunk(out, self.ref_key)
        self._value(ref)
        for layout in self.layouts.values():
            if layout.written:
                _count(self.event_counts, layout.kind, layout.written)
                layout.written = 0
        return PyBytes_FromStringAndSize(out.data, out.size)

    cdef int _event(self, event, _Layout layout, dict books) except -1:
        cdef Py_ssize_t index, fields = len(layout.keys), present = fields + 1
        cdef Buffer* out = &self.out
        market = None
        for index in range(fields):
            if layout.omit_none[index] and get(event, layout.offsets[index]) is None:
                present -= 1
        _header(out, present, 0x80, 0xde, 0xdf)
        _chunk(out, layout.tag)
        for index in range(fields):
            value = get(event, layout.offsets[index])
            if layout.omit_none[index] and value is None:
                continue
            _chunk(out, <bytes>PyList_GET_ITEM(layout.keys, index))
            if layout.roles[index] == ROLE_PLAIN:
                self._value(value)
                continue
            if market is None:
                market = get(books[get(event, layout.market)], B_MARKET)
            unit = get(market, M_TICK if layout.roles[index] == ROLE_TICKS else M_LOT)
            _text_value(out, _text(unit, value))
        return 0

    cdef int _tape(self, event, dict books, trades) except -1:
        symbol = get(event, T_MARKET)
        market = get(books[symbol], B_MARKET)
        qty = get(event, T_QTY)
        _count(self.trade_counts, symbol, 1)
        _count(self.volume_lots, symbol, qty)
        entry = self.tape_trade(get(event, T_SEQ), _text(get(market, M_TICK), get(event, T_PRICE)),
                                _text(get(market, M_LOT), qty), get(event, T_AGGRESSOR))
        tape = (<dict>trades).get(symbol)
        if tape is None:
            tape = (<dict>trades)[symbol] = []
        (<list>tape).append(entry)
        return 0

    cdef int _report(self, peer, requester, also_not, Py_ssize_t start, reports) except -1:
        """The event written from `start` goes to `peer`'s report, unless `peer` is None, the
        requester (who has it in the reply) or `also_not` (who has it already)."""
        if peer is None or peer == requester or (also_not is not None and peer == also_not):
            return 0
        wire = self.raw(PyBytes_FromStringAndSize(self.out.data + start, self.out.size - start))
        events = (<dict>reports).get(peer)
        if events is None:
            events = (<dict>reports)[peer] = []
        (<list>events).append(wire)
        return 0

    cdef int _value(self, value) except -1:
        return _write_value(&self.out, value, self.encode, self.text_kinds, self.str_enum)


cdef int _write_value(Buffer* out, value, encode, set text_kinds, str_enum) except -1:
    """Write one value as msgspec would: str, int, bool and None here, the rest by `encode`
    (msgspec's encoder); a str enum's member as its text, its kind noted in `text_kinds`."""
    cdef long long number
    cdef int overflow = 0
    kind = type(value)
    if kind is str:
        _text_value(out, value)
    elif kind is int:
        number = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow:
            _chunk(out, encode(value))
        else:
            _integer(out, number)
    elif value is None:
        _byte(out, 0xc0)
    elif kind is bool:
        _byte(out, 0xc3 if value else 0xc2)
    elif kind in text_kinds or isinstance(value, str) and isinstance(value, str_enum):
        text_kinds.add(kind)
        _text_value(out, value)
    else:
        _chunk(out, encode(value))
    return 0


cdef inline int _text_value(Buffer* out, text) except -1:
    """A str as msgpack writes it (fixstr, str8, str16 or str32 by its UTF-8 length); an ASCII
    one, as most text here is, straight from its characters, which are its UTF-8."""
    cdef Py_ssize_t length
    cdef const char* utf8
    if PyUnicode_IS_COMPACT_ASCII(text):
        length = PyUnicode_GET_LENGTH(text)
        utf8 = <const char*>PyUnicode_DATA(text)
    else:
        utf8 = PyUnicode_AsUTF8AndSize(text, &length)
    if length < 32:  # a fixstr, as nearly every name, id and decimal is
        _byte(out, 0xa0 | length)
    else:
        _header(out, length, 0xa0, 0xda, 0xdb, 0xd9, 32)
    return _bytes(out, utf8, length)


cdef inline int _integer(Buffer* out, long long number) except -1:
    """An int in [-2**63, 2**63) in msgpack's shortest form (msgspec's choice too)."""
    if 0 <= number < 0x80:
        return _byte(out, number)
    if -32 <= number < 0:
        return _byte(out, number & 0xff)
    if number > 0:
        if number <= 0xff:
            _byte(out, 0xcc)
            return _big_endian(out, number, 1)
        if number <= 0xffff:
            _byte(out, 0xcd)
            return _big_endian(out, number, 2)
        if number <= 0xffffffff:
            _byte(out, 0xce)
            return _big_endian(out, number, 4)
        _byte(out, 0xcf)
        return _big_endian(out, number, 8)
    if number >= -0x80:
        _byte(out, 0xd0)
        return _big_endian(out, <unsigned long long>number, 1)
    if number >= -0x8000:
        _byte(out, 0xd1)
        return _big_endian(out, <unsigned long long>number, 2)
    if number >= -0x80000000:
        _byte(out, 0xd2)
        return _big_endian(out, <unsigned long long>number, 4)
    _byte(out, 0xd3)
    return _big_endian(out, <unsigned long long>number, 8)


cdef inline int _header(Buffer* out, Py_ssize_t count, int fixed, int two, int four,
                        int one=-1, Py_ssize_t fixed_limit=16) except -1:
    """A map's, an array's or a string's length: the fixed form below `fixed_limit`, else the
    smallest of one (strings only), two or four bytes."""
    if count < fixed_limit:
        return _byte(out, fixed | count)
    if one >= 0 and count <= 0xff:
        _byte(out, one)
        return _big_endian(out, count, 1)
    if count <= 0xffff:
        _byte(out, two)
        return _big_endian(out, count, 2)
    _byte(out, four)
    return _big_endian(out, count, 4)


cdef inline int _big_endian(Buffer* out, unsigned long long number, int width) except -1:
    cdef int shift
    _room(out, width)
    for shift in range(width - 1, -1, -1):
        out.data[out.size] = <char>((number >> (8 * shift)) & 0xff)
        out.size += 1
    return 0


cdef inline int _byte(Buffer* out, int byte) except -1:
    _room(out, 1)
    out.data[out.size] = <char>byte
    out.size += 1
    return 0


cdef inline int _chunk(Buffer* out, bytes chunk) except -1:
    return _bytes(out, PyBytes_AS_STRING(chunk), PyBytes_GET_SIZE(chunk))


cdef inline int _bytes(Buffer* out, const char* chunk, Py_ssize_t length) except -1:
    _room(out, length)
    if length > 16:
        memcpy(out.data + out.size, chunk, length)
    else:
        _short_copy(out.data + out.size, chunk, length)
    out.size += length
    return 0


cdef inline void _short_copy(char* to, const char* source, Py_ssize_t length) noexcept:
    """Up to 16 bytes in two overlapping words rather than by a call to memcpy: most of what
    is written (names, ids, decimals) is a few bytes long; nothing past `source`'s end is
    read."""
    if length >= 8:
        memcpy(to, source, 8)
        memcpy(to + length - 8, source + length - 8, 8)
    elif length >= 4:
        memcpy(to, source, 4)
        memcpy(to + length - 4, source + length - 4, 4)
    elif length:
        to[0] = source[0]
        to[length >> 1] = source[length >> 1]
        to[length - 1] = source[length - 1]


cdef int _open(Buffer* buffer) except -1:
    """An empty buffer of 4 KiB to start with (it grows as it is written)."""
    buffer.size, buffer.capacity = 0, 4096
    buffer.data = <char*>malloc(buffer.capacity)
    if buffer.data is NULL:
        raise MemoryError()
    return 0


cdef inline int _room(Buffer* out, Py_ssize_t wanted) except -1:
    cdef char* grown
    cdef Py_ssize_t capacity = out.capacity
    if out.size + wanted <= capacity:
        return 0
    while out.size + wanted > capacity:
        capacity *= 2
    grown = <char*>realloc(out.data, capacity)
    if grown is NULL:
        raise MemoryError()
    out.data, out.capacity = grown, capacity
    return 0


cdef _Layout _layout_of(kind, str tag_field, str tag, list fields, encode):
    """The writer's layout of `kind` from its wire fields: (name, role, omitted when None)."""
    cdef _Layout layout = _Layout()
    cdef Py_ssize_t index
    if len(fields) > MAX_FIELDS:
        raise TypeError(f"{kind.__name__}: {len(fields)} wire fields, the writer takes {MAX_FIELDS}")
    layout.kind = kind
    layout.tag = encode(tag_field) + encode(tag)
    layout.keys = [encode(name) for name, _, _ in fields]
    for index, (name, role, omit) in enumerate(fields):
        layout.offsets[index] = slot_offset(kind, name)
        layout.roles[index] = role
        layout.omit_none[index] = omit
    names = [name for name, _, _ in fields]
    layout.market = slot_offset(kind, "market") if "market" in names else -1
    if any(role != ROLE_PLAIN for _, role, _ in fields) and layout.market < 0:
        raise TypeError(f"{kind.__name__} has prices or quantities but no market for them")
    layout.peer = slot_offset(kind, "peer") if "peer" in kind.__struct_fields__ else -1
    return layout


cdef inline _count(counter, key, amount):
    (<dict>counter)[key] = (<dict>counter).get(key, 0) + amount


cdef inline object _text(unit, value):
    """The unit's decimal text of `value`, from its cache where it is there."""
    text = (<dict>get(unit, U_TEXT)).get(value)
    return unit.text_of(value) if text is None else text
