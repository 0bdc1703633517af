# Reading and writing the slots of the core's objects without attribute look-ups, included by
# _engine.pyx.
#
# The orders, commands and books the engine works on are msgspec Structs and `__slots__`
# classes: each field lives at a fixed offset in the object, which its member descriptor holds.
# `obj.field` finds that descriptor by name through the type's dictionaries on every access, which
# is most of what the compiled engine spent its time on; `slot_offset` reads the offset once, and
# `get`/`put` go straight to it, which is what the descriptor itself does at the end of that look-up.
# Only objects of the exact class whose offset was taken may be passed (the engine checks a book's
# class where a command enters; everything below it the engine made itself).

from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset

    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member


cdef inline Py_ssize_t slot_offset(object cls, str name) except -1:
    """Where `cls` keeps the slot `name` (a TypeError if it is not a slot of `cls` itself)."""
    descriptor = cls.__dict__.get(name)
    if type(descriptor).__name__ != "member_descriptor":
        raise TypeError(f"{cls.__name__}.{name} is not a slot")
    return (<PyMemberDescrObject*>descriptor).d_member.offset


cdef inline object get(object owner, Py_ssize_t offset):
    cdef PyObject* value = (<PyObject**>((<char*><PyObject*>owner) + offset))[0]
    if value is NULL:
        raise AttributeError(f"{type(owner).__name__}: slot at {offset} is not set")
    return <object>value


cdef inline void put(object owner, Py_ssize_t offset, object value) noexcept:
    cdef PyObject** slot = <PyObject**>((<char*><PyObject*>owner) + offset)
    cdef PyObject* old = slot[0]
    Py_INCREF(value)
    slot[0] = <PyObject*>value
    Py_XDECREF(old)
