"""Public-key recovery from an Ethereum signature (libsecp256k1, through coincurve's binding),
fast enough for the signature checks.

coincurve's `PublicKey.from_signature_and_message(...).format(...)` allocates three cffi
objects, a Python key object and its context on every call: about 5 us beside the 45 us the
recovery itself takes on the machine of docs/performance.md, where a whole check has about
65 us (the 15,000 checks a second per core of issue 14). This module makes the same three
library calls (parse the compact signature, recover, serialize uncompressed) into buffers made
once per thread.

Those calls are coincurve's compiled binding (`coincurve._libsecp256k1`, the interface its own
`ecdsa` module calls); tests/test_signing.py checks this function against coincurve's public
one on many signatures, so a change there fails a test rather than a check.
"""

from __future__ import annotations

import threading

from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

_UNCOMPRESSED = 65


class _ThreadBuffers(threading.local):
    """A parsed signature, a public key and an output buffer per thread (libsecp256k1's
    context is read-only once made, so one is shared)."""

    def __init__(self) -> None:
        self.signature = ffi.new("secp256k1_ecdsa_recoverable_signature *")
        self.key = ffi.new("secp256k1_pubkey *")
        self.out = ffi.new(f"unsigned char[{_UNCOMPRESSED}]")
        self.out_len = ffi.new("size_t *")
        self.view = ffi.buffer(self.out, _UNCOMPRESSED)


_buffers = _ThreadBuffers()
_CONTEXT = GLOBAL_CONTEXT.ctx
_FLAGS = lib.SECP256K1_EC_UNCOMPRESSED


def recover_point(digest: bytes, rs: bytes, recovery_id: int) -> bytes | None:
    """The 64-byte public key (x || y, no 0x04 prefix) that signed the 32-byte `digest` with
    the 64-byte `rs` and `recovery_id` (0-3), or None when `rs` does not parse or recovers
    no key (or an argument has the wrong length: the library reads 32 and 64 bytes whatever it
    is given). Low-s is the caller's rule."""
    if len(digest) != 32 or len(rs) != 64 or not 0 <= recovery_id <= 3:
        return None
    buffers = _buffers
    if not lib.secp256k1_ecdsa_recoverable_signature_parse_compact(
        _CONTEXT, buffers.signature, rs, recovery_id
    ):
        return None
    if not lib.secp256k1_ecdsa_recover(_CONTEXT, buffers.key, buffers.signature, digest):
        return None
    buffers.out_len[0] = _UNCOMPRESSED
    lib.secp256k1_ec_pubkey_serialize(_CONTEXT, buffers.out, buffers.out_len, buffers.key, _FLAGS)
    return buffers.view[1:_UNCOMPRESSED]
