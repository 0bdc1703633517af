"""Keccak-256, Ethereum's hash (the original Keccak padding, not NIST SHA3-256's), fast enough
for the signature checks.

pycryptodome (installed with web3 and vyper) computes it in C, but its public
`Crypto.Hash.keccak.new(...).digest()` builds a Python object, a state and a buffer through
ctypes for every hash: about 10 us, where the hashing itself takes well under 1. A signed
order needs two hashes and the whole check has about 65 us (the 15,000 checks a second per
core of issue 14), so this module drives pycryptodome's own compiled Keccak directly: one
state per thread, reset, absorb, squeeze into one buffer, about 3.5 us a hash.

That compiled library's functions are pycryptodome's internal interface (the same calls its
`Keccak_Hash` makes); tests/test_signing.py checks this function against the public one on
many inputs, so a change there fails a test rather than a digest.
"""

from __future__ import annotations

import threading
from ctypes import c_size_t, c_ubyte

from Crypto.Hash.keccak import _raw_keccak_lib as _lib
from Crypto.Util._raw_api import VoidPointer, create_string_buffer

_CAPACITY_BYTES = c_size_t(64)
"""Keccak-256: capacity 512 bits, twice the digest."""
_ROUNDS = c_ubyte(24)
_DIGEST_BYTES = c_size_t(32)
_KECCAK_PADDING = c_ubyte(0x01)
"""0x01 is Keccak's own domain padding (SHA3-256 uses 0x06)."""


class _ThreadState(threading.local):
    """One Keccak state and output buffer per thread, made on first use, kept for the
    thread's life (a state is about 200 bytes)."""

    def __init__(self) -> None:
        pointer = VoidPointer()
        if _lib.keccak_init(pointer.address_of(), _CAPACITY_BYTES, _ROUNDS):
            raise RuntimeError("pycryptodome could not make a Keccak state")
        self.state = pointer.get()
        self.out = create_string_buffer(32)


_states = _ThreadState()
_reset, _absorb, _squeeze = _lib.keccak_reset, _lib.keccak_absorb, _lib.keccak_digest


def keccak256(data: bytes) -> bytes:
    """The 32-byte Keccak-256 of `data`."""
    local = _states
    state = local.state
    _reset(state)
    _absorb(state, data, c_size_t(len(data)))
    _squeeze(state, local.out, _DIGEST_BYTES, _KECCAK_PADDING)
    return local.out.raw
