# Declarations of the STUN codec, for other Cython modules to cimport.

from cpython.buffer cimport Py_buffer
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "rice_stun.h":
    ctypedef struct rice_hmac_key:
        pass

    void rice_hmac_key_init(rice_hmac_key *k, const uint8_t *key, size_t len)
    void rice_hmac_key_clear(rice_hmac_key *k)
    void rice_hmac_sha1_stun(const rice_hmac_key *k, const uint8_t *head,
                             uint16_t length, const uint8_t *body,
                             size_t body_len, uint8_t *out) nogil
    void rice_hmac_sha256_stun(const rice_hmac_key *k, const uint8_t *head,
                               uint16_t length, const uint8_t *body,
                               size_t body_len, uint8_t *out) nogil
    void rice_hmac_sha1(const rice_hmac_key *k, const uint8_t *data,
                        size_t len, uint8_t *out) nogil
    void rice_hmac_sha256(const rice_hmac_key *k, const uint8_t *data,
                          size_t len, uint8_t *out) nogil
    int rice_ct_equal(const uint8_t *a, const uint8_t *b, size_t len) nogil
    void rice_crc32_init()
    uint32_t rice_crc32(const uint8_t *p, size_t len) nogil
    uint16_t rice_load16(const uint8_t *p) nogil
    uint32_t rice_load32(const uint8_t *p) nogil
    void rice_store16(uint8_t *p, uint16_t v) nogil
    void rice_store32(uint8_t *p, uint32_t v) nogil


cdef enum:
    STUN_HEADER_SIZE = 20
    STUN_MAGIC_COOKIE = 0x2112A442
    STUN_FINGERPRINT_XOR = 0x5354554E
    ATTR_MESSAGE_INTEGRITY = 0x0008
    ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C
    ATTR_FINGERPRINT = 0x8028
    INLINE_ATTRIBUTES = 12
    NO_INDEX = 0xFFFF
    BUILDER_INLINE = 512
    MAX_UNKNOWN_REPORTED = 32


cdef struct AttrEntry:
    uint16_t type
    uint16_t length
    uint32_t offset  # of the attribute value, from the start of the message


cdef class IntegrityKey:
    cdef rice_hmac_key c_key
    cdef bytes _digest  # SHA-256 of the key, to compare keys without the key


# The attribute walk is defined here, inline, so that the batch module
# compiles it into its own loop instead of calling through a pointer.
cdef inline int _walk(const uint8_t *buf, Py_ssize_t length, bint legacy,
                      AttrEntry *entries, Py_ssize_t capacity,
                      Py_ssize_t *count, Py_ssize_t *where) noexcept nogil:
    """Walk the framing of buf[0:length]; return 0 or a reason code.

    Stores up to ``capacity`` index entries and the total number of
    attributes in ``count``; on failure ``where`` is the byte offset.
    """
    cdef Py_ssize_t pos = STUN_HEADER_SIZE
    cdef Py_ssize_t n = 0
    cdef uint16_t attr_type, attr_len
    cdef Py_ssize_t padded
    cdef bint after_fingerprint = False

    where[0] = 0
    if length < STUN_HEADER_SIZE:
        where[0] = length
        return 1
    if buf[0] & 0xC0:
        return 2
    if length > 0xFFFF + STUN_HEADER_SIZE:
        where[0] = 2
        return 13
    cdef uint16_t body = rice_load16(buf + 2)
    if body & 3:
        where[0] = 2
        return 3
    if body + STUN_HEADER_SIZE != length:
        where[0] = 2
        return 4
    if not legacy and rice_load32(buf + 4) != STUN_MAGIC_COOKIE:
        where[0] = 4
        return 5
    while pos < length:
        if after_fingerprint:
            where[0] = pos
            return 9
        if pos + 4 > length:
            where[0] = pos
            return 6
        attr_type = rice_load16(buf + pos)
        attr_len = rice_load16(buf + pos + 2)
        if pos + 4 + attr_len > length:
            where[0] = pos + 2
            return 7
        padded = (attr_len + 3) & ~3
        if pos + 4 + padded > length:
            where[0] = pos + 4 + attr_len
            return 8
        if attr_type == ATTR_MESSAGE_INTEGRITY and attr_len != 20:
            where[0] = pos + 2
            return 10
        if attr_type == ATTR_MESSAGE_INTEGRITY_SHA256 and (
            attr_len < 16 or attr_len > 32 or attr_len & 3
        ):
            where[0] = pos + 2
            return 11
        if attr_type == ATTR_FINGERPRINT:
            if attr_len != 4:
                where[0] = pos + 2
                return 12
            after_fingerprint = True
        if n < capacity:
            entries[n].type = attr_type
            entries[n].length = attr_len
            entries[n].offset = <uint32_t>(pos + 4)
        n += 1
        pos += 4 + padded
    count[0] = n
    return 0


# Check the framing of a STUN message in buf[0:length]: header, cookie,
# length field and attribute walk. Return 0 when valid, otherwise the byte
# offset of the first problem plus one. No allocation, safe without the GIL.
cdef Py_ssize_t stun_frame_error(const uint8_t *buf, Py_ssize_t length) noexcept nogil


cdef inline Py_ssize_t stun_frame_error_inline(const uint8_t *buf,
                                               Py_ssize_t length) noexcept nogil:
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t where = 0
    if _walk(buf, length, False, NULL, 0, &count, &where):
        return where + 1
    return 0

# Verify the integrity attribute of a framed STUN message in place: 1 when
# valid, 0 when invalid or absent. SHA-256 is preferred when both exist.
cdef int stun_check_integrity(const rice_hmac_key *key, const uint8_t *buf,
                              Py_ssize_t length) noexcept nogil


cdef class Message:
    cdef object _owner  # the bytes object, or None when _view is held
    cdef Py_buffer _view
    cdef bint _has_view
    cdef const uint8_t *_ptr
    cdef Py_ssize_t _len
    cdef uint16_t _type
    cdef uint16_t _count  # attributes in the index
    cdef uint16_t _limit  # attributes before the first integrity attribute
    cdef uint16_t _mi  # index of MESSAGE-INTEGRITY, or NO_INDEX
    cdef uint16_t _mi256  # index of MESSAGE-INTEGRITY-SHA256, or NO_INDEX
    cdef uint16_t _fp  # index of FINGERPRINT, or NO_INDEX
    cdef bint _legacy  # RFC 3489 message without the magic cookie
    cdef AttrEntry *_attrs
    cdef AttrEntry _inline[INLINE_ATTRIBUTES]

    cdef int _index(self) except -1
    cdef int _find(self, uint16_t attr_type)
    cdef bytes _value(self, int i)
    cdef bint _check(self, IntegrityKey key, bint fingerprint) noexcept
    cdef object _text(self, uint16_t attr_type)
    cdef object _text_at(self, int i)
    cdef object _u32(self, uint16_t attr_type)
    cdef object _u32_at(self, int i)
    cdef object _u64(self, uint16_t attr_type)
    cdef object _u64_at(self, int i)
    cdef object _address(self, int i, bint xor)


cdef class MessageBuilder:
    cdef uint8_t *_buf
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _len
    cdef bint _external
    cdef Py_buffer _view
    cdef int _stage  # 0 open, 1 after MI, 2 after MI-SHA256, 3 after FP
    cdef uint8_t _txid[12]
    cdef uint8_t _inline[BUILDER_INLINE]

    cdef uint8_t *_reserve(self, uint16_t attr_type, Py_ssize_t length) except NULL
    cdef int _put(self, uint16_t attr_type, const uint8_t *value,
                  Py_ssize_t length) except -1
    cdef int _put_xor_address(self, uint16_t attr_type, object host,
                              object port_number, bint xor) except -1
    cdef int _complete(self, IntegrityKey key, bint sha256,
                       bint fingerprint) except -1
