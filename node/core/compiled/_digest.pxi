# The record digest of the state hash in C, included by _records.pxi: BLAKE2b (RFC 7693)
# with an 8-byte digest, no key, salt or personalization, which is what node/store/statehash.py
# computes with `hashlib.blake2b(data, digest_size=8)` and reads as a little-endian integer.
# hashlib's object, its `digest()` bytes and `int.from_bytes` cost more than the hash itself
# for a record of a hundred bytes or so; here it is one call that returns the 64-bit number.
# tests/test_engine_cores.py compares it with hashlib on inputs of every length up to three
# blocks, and the record plan's digests with statehash's.

from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memset

cdef uint64_t BLAKE2B_IV[8]
BLAKE2B_IV[:] = [
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
]
cdef unsigned char BLAKE2B_SIGMA[10][16]
for _row, _order in enumerate((
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    (14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3),
    (11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4),
    (7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8),
    (9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13),
    (2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9),
    (12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11),
    (13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10),
    (6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5),
    (10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0),
)):
    for _column, _word in enumerate(_order):
        BLAKE2B_SIGMA[_row][_column] = _word
cdef uint64_t DIGEST_PARAMETERS = 0x01010000 | 8
"""The parameter block's first word: fanout 1, depth 1, no key, an 8-byte digest."""
cdef Py_ssize_t BLOCK_BYTES = 128


cdef inline uint64_t _rotate(uint64_t word, int bits) noexcept nogil:
    return (word >> bits) | (word << (64 - bits))


cdef inline uint64_t _load(const unsigned char* at) noexcept nogil:
    """A little-endian word, whatever the machine's byte order."""
    cdef uint64_t word = 0
    cdef int index
    for index in range(7, -1, -1):
        word = (word << 8) | at[index]
    return word


cdef inline void _mix(uint64_t* v, int a, int b, int c, int d, uint64_t x, uint64_t y) noexcept nogil:
    v[a] = v[a] + v[b] + x
    v[d] = _rotate(v[d] ^ v[a], 32)
    v[c] = v[c] + v[d]
    v[b] = _rotate(v[b] ^ v[c], 24)
    v[a] = v[a] + v[b] + y
    v[d] = _rotate(v[d] ^ v[a], 16)
    v[c] = v[c] + v[d]
    v[b] = _rotate(v[b] ^ v[c], 63)


cdef void _compress(uint64_t* h, const unsigned char* block, uint64_t counted, bint last) noexcept nogil:
    cdef uint64_t v[16]
    cdef uint64_t m[16]
    cdef const unsigned char* s
    cdef int index, round_
    for index in range(16):
        m[index] = _load(block + 8 * index)
    for index in range(8):
        v[index] = h[index]
        v[index + 8] = BLAKE2B_IV[index]
    v[12] ^= counted  # the byte counter's high word stays 0: records are far below 2**64 bytes
    if last:
        v[14] = ~v[14]
    for round_ in range(12):
        s = BLAKE2B_SIGMA[round_ % 10]
        _mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
        _mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        _mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
        _mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        _mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
        _mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        _mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
        _mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    for index in range(8):
        h[index] ^= v[index] ^ v[index + 8]


cdef uint64_t _digest64(const unsigned char* data, Py_ssize_t length) noexcept nogil:
    """BLAKE2b-64 of `length` bytes at `data`, as the little-endian number of its digest."""
    cdef uint64_t h[8]
    cdef unsigned char last[128]
    cdef uint64_t counted = 0
    cdef int index
    for index in range(8):
        h[index] = BLAKE2B_IV[index]
    h[0] ^= DIGEST_PARAMETERS
    while length > BLOCK_BYTES:  # a full block that is also the last is compressed as the last
        counted += BLOCK_BYTES
        _compress(h, data, counted, False)
        data += BLOCK_BYTES
        length -= BLOCK_BYTES
    memset(last, 0, BLOCK_BYTES)
    memcpy(last, data, length)
    counted += length
    _compress(h, last, counted, True)
    return h[0]


def digest64(bytes data):
    """The 64-bit BLAKE2b digest of `data` as statehash reads it (`int.from_bytes(
    blake2b(data, digest_size=8).digest(), "little")`)."""
    return _digest64(<const unsigned char*>data, len(data))
