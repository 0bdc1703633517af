# A batch's journal entry written as msgpack straight from its commands, included by
# _engine.pyx after _answers.pxi (whose buffer and value writers it uses).
#
# node/store/lmdb_store.py journals each group commit's commands as one msgpack array, which
# msgspec's encoder writes from the command structs; for the order commands that is the
# largest share of the store's own work after the engine. `JournalWriter` writes the same bytes:
# each kind's layout (its tag, its fields' encoded names in order, their defaults) is read from
# the struct's own msgspec configuration when the writer is made, a field is left out exactly
# when msgspec leaves it out (omit_defaults: the value is its default object itself), the map's
# header has the size msgspec gives it (by the fields there could be: a NewOrder's 16 fields
# and tag take a map16 even when seven are written), and any command or value it has no fast
# path for is written by msgspec and spliced in. tests/test_journal_compiled.py compares the
# two byte for byte.

import msgspec


cdef extern from "Python.h":
    ctypedef struct PyTypeObject:
        pass
    PyTypeObject PyUnicode_Type
    PyTypeObject PyLong_Type
    PyTypeObject* Py_TYPE(PyObject* value)
    long long _long_long "PyLong_AsLongLongAndOverflow"(PyObject* value, int* overflow) except? -1

cdef enum:
    MAX_COMMAND_FIELDS = 30


@cython.final
cdef class _CommandLayout:
    """One command kind as msgspec encodes it: its tag pair, then each field unless it holds
    its default."""

    cdef object kind
    cdef Py_ssize_t count
    """How many fields the kind has."""
    cdef bytes tag
    cdef list keys
    """Each field's encoded name, written before its value (the arrays below point into them)."""
    cdef const char* key_data[MAX_COMMAND_FIELDS]
    cdef Py_ssize_t key_size[MAX_COMMAND_FIELDS]
    cdef list defaults
    """Each field's default object (kept here so the pointers below stay valid)."""
    cdef Py_ssize_t offsets[MAX_COMMAND_FIELDS]
    cdef PyObject* default_of[MAX_COMMAND_FIELDS]
    """The default a field is left out at, or NULL for a field that has none (always written)."""


@cython.final
cdef class JournalWriter:
    """Writes a list of commands as msgspec's msgpack encoder does."""

    cdef list layout_list
    cdef object encode, str_enum
    cdef set text_kinds
    cdef Buffer out

    def __init__(self, kinds, encode, str_enum):
        """`kinds`: the command structs to write here (each tagged, with omit_defaults, and
        no default other than None or a str); `encode` msgspec's encoder for the rest;
        `str_enum` the enum base whose str members are written as their text."""
        self.layout_list = [_command_layout(kind, encode) for kind in kinds]
        self.encode, self.str_enum = encode, str_enum
        self.text_kinds = set()
        _open(&self.out)

    def __dealloc__(self):
        free(self.out.data)

    def encode_batch(self, list commands):
        """The msgpack bytes of `commands`, as `encode(commands)` writes them."""
        cdef Buffer* out = &self.out
        cdef _CommandLayout layout
        out.size = 0
        _header(out, len(commands), 0x90, 0xdc, 0xdd)
        for command in commands:
            kind = type(command)
            for layout in self.layout_list:  # three kinds: a scan is cheaper than a dict
                if layout.kind is kind:
                    self._command(command, layout)
                    break
            else:
                _chunk(out, self.encode(command))
        return PyBytes_FromStringAndSize(out.data, out.size)

    cdef int _command(self, command, _CommandLayout layout) except -1:
        cdef Py_ssize_t index, fields = layout.count, present = fields + 1
        cdef PyObject* value
        cdef PyObject* values[MAX_COMMAND_FIELDS]
        cdef long long number
        cdef int overflow = 0
        cdef Buffer* out = &self.out
        cdef set text_kinds = self.text_kinds
        encode, str_enum = self.encode, self.str_enum
        for index in range(fields):
            value = values[index] = (<PyObject**>((<char*><PyObject*>command)
                                                  + layout.offsets[index]))[0]
            if value is NULL:
                raise AttributeError(f"{type(command).__name__}: a field is not set")
            if value == layout.default_of[index]:
                present -= 1
        if fields + 1 < 16:
            _byte(out, 0x80 | present)
        else:  # msgspec sizes the header by the fields there could be, then fills it in
            _byte(out, 0xde)
            _big_endian(out, present, 2)
        _chunk(out, layout.tag)
        for index in range(fields):
            value = values[index]
            if value == layout.default_of[index]:
                continue
            _bytes(out, layout.key_data[index], layout.key_size[index])
            # a command's values are str and int but for odd input: those two without
            # _write_value's other cases, the rest through it
            if Py_TYPE(value) is &PyUnicode_Type:
                _text_value(out, <object>value)
                continue
            if Py_TYPE(value) is &PyLong_Type:
                number = _long_long(value, &overflow)
                if not overflow:
                    _integer(out, number)
                    continue
            _write_value(out, <object>value, encode, text_kinds, str_enum)
        return 0


cdef _CommandLayout _command_layout(kind, encode):
    """The writer's layout of the struct `kind`, refused (TypeError) where msgspec's encoding
    of it is not what the writer writes."""
    cdef _CommandLayout layout = _CommandLayout()
    cdef Py_ssize_t index
    config = kind.__struct_config__
    fields = msgspec.structs.fields(kind)
    if config.array_like or not config.omit_defaults or config.tag is None:
        raise TypeError(f"{kind.__name__}: the journal writer takes tagged maps with omit_defaults")
    if len(fields) > MAX_COMMAND_FIELDS:  # and so below 0xffff, a map16's limit
        raise TypeError(f"{kind.__name__}: {len(fields)} fields, the writer takes {MAX_COMMAND_FIELDS}")
    layout.kind, layout.count = kind, len(fields)
    layout.tag = encode(config.tag_field) + encode(config.tag)
    layout.keys = [encode(field.encode_name) for field in fields]
    for index, key in enumerate(layout.keys):
        layout.key_data[index] = PyBytes_AS_STRING(key)
        layout.key_size[index] = PyBytes_GET_SIZE(key)
    layout.defaults = []
    for index, field in enumerate(fields):
        if field.default_factory is not msgspec.NODEFAULT:
            raise TypeError(f"{kind.__name__}.{field.name}: a default factory")
        default = field.default
        if default is not msgspec.NODEFAULT and default is not None and type(default) is not str:
            raise TypeError(f"{kind.__name__}.{field.name}: a default of {type(default).__name__}")
        layout.offsets[index] = slot_offset(kind, field.name)
        layout.defaults.append(default)
        layout.default_of[index] = NULL if default is msgspec.NODEFAULT else <PyObject*>default
    return layout
