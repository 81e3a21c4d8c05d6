# cython: freethreading_compatible=False
"""Zero-copy STUN message parser and builder.

Theory of operation: ``parse`` checks the header, the magic cookie, the
length field and the attribute walk in one pass and records, for each
attribute, its type, length and value offset in a small index inside the
``Message``. Nothing is decoded until asked for. The index stops being
searched at the first MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256, because
RFC 8489 §14.5 says attributes after the integrity attribute are ignored;
the integrity and FINGERPRINT attributes themselves are located separately.

``MessageBuilder`` writes the header and each attribute straight into one
buffer, keeps the header length current, and computes MESSAGE-INTEGRITY,
MESSAGE-INTEGRITY-SHA256 and FINGERPRINT over the bytes already written.
"""

cimport cython
from cpython.buffer cimport (
    PyBUF_SIMPLE,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.number cimport PyIndex_Check
from cpython.unicode cimport (
    PyUnicode_AsUTF8String,
    PyUnicode_DecodeASCII,
    PyUnicode_DecodeUTF8,
)
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset, strlen

import hashlib
import os

from rice_fast.stun.errors import StunBuildError, StunParseError


cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object text, Py_ssize_t *size) except NULL


cdef extern from "<arpa/inet.h>" nogil:
    int AF_INET
    int AF_INET6
    const char *inet_ntop(int af, const void *src, char *dst, int size)
    int inet_pton(int af, const char *src, void *dst)


rice_crc32_init()

MAGIC_COOKIE = STUN_MAGIC_COOKIE
HEADER_SIZE = STUN_HEADER_SIZE

cdef const char *_REASONS[14]
_REASONS[0] = b"valid"
_REASONS[1] = b"message is shorter than the 20-byte header"
_REASONS[2] = b"the two most significant bits of the message type are not zero"
_REASONS[3] = b"the length field is not a multiple of 4"
_REASONS[4] = b"the length field does not match the size of the data"
_REASONS[5] = b"the magic cookie is not 0x2112a442"
_REASONS[6] = b"attribute header is truncated"
_REASONS[7] = b"attribute value runs past the end of the message"
_REASONS[8] = b"attribute padding runs past the end of the message"
_REASONS[9] = b"an attribute follows FINGERPRINT"
_REASONS[10] = b"MESSAGE-INTEGRITY is not 20 bytes long"
_REASONS[11] = b"MESSAGE-INTEGRITY-SHA256 is not 16 to 32 bytes in steps of 4"
_REASONS[12] = b"FINGERPRINT is not 4 bytes long"
_REASONS[13] = b"message is longer than 65555 bytes"


cdef Py_ssize_t stun_frame_error(const uint8_t *buf, Py_ssize_t length) noexcept nogil:
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t where = 0
    if _walk(buf, length, False, NULL, 0, &count, &where):
        return where + 1
    return 0


cdef inline int _verify_at(const rice_hmac_key *key, const uint8_t *buf,
                           uint32_t value_offset, uint16_t attr_type,
                           uint16_t attr_len) noexcept nogil:
    cdef uint8_t digest[32]
    cdef uint32_t start = value_offset - 4
    cdef uint16_t patched = <uint16_t>(start - STUN_HEADER_SIZE + 4 + attr_len)
    if attr_type == ATTR_MESSAGE_INTEGRITY:
        rice_hmac_sha1_stun(key, buf, patched, buf + STUN_HEADER_SIZE,
                            start - STUN_HEADER_SIZE, digest)
    else:
        rice_hmac_sha256_stun(key, buf, patched, buf + STUN_HEADER_SIZE,
                              start - STUN_HEADER_SIZE, digest)
    return rice_ct_equal(digest, buf + value_offset, attr_len)


cdef int stun_check_integrity(const rice_hmac_key *key, const uint8_t *buf,
                              Py_ssize_t length) noexcept nogil:
    cdef Py_ssize_t pos = STUN_HEADER_SIZE
    cdef uint16_t attr_type, attr_len
    cdef uint32_t mi_offset = 0
    while pos + 4 <= length:
        attr_type = rice_load16(buf + pos)
        attr_len = rice_load16(buf + pos + 2)
        if attr_type == ATTR_MESSAGE_INTEGRITY_SHA256:
            return _verify_at(key, buf, <uint32_t>(pos + 4), attr_type, attr_len)
        if attr_type == ATTR_MESSAGE_INTEGRITY and mi_offset == 0:
            mi_offset = <uint32_t>(pos + 4)
        elif attr_type != ATTR_MESSAGE_INTEGRITY and mi_offset:
            break
        pos += 4 + ((attr_len + 3) & ~3)
    if mi_offset:
        return _verify_at(key, buf, mi_offset, ATTR_MESSAGE_INTEGRITY, 20)
    return 0


cdef object _parse_error(int code, Py_ssize_t where):
    return StunParseError(_REASONS[code].decode("ascii"), where)


# Addresses repeat on hot paths (the same peers and servers answer again and
# again), so recently formatted host strings are kept in small direct-mapped
# caches keyed by the address bytes.
cdef enum:
    HOST_CACHE_SIZE = 64

cdef uint32_t _v4_keys[HOST_CACHE_SIZE]
cdef object _v4_hosts = [None] * HOST_CACHE_SIZE
cdef uint8_t _v6_keys[HOST_CACHE_SIZE][16]
cdef object _v6_hosts = [None] * HOST_CACHE_SIZE


cdef inline char *_put_octet(char *p, uint8_t value) noexcept nogil:
    if value >= 100:
        p[0] = <char>(48 + value // 100)
        p += 1
        value %= 100
        p[0] = <char>(48 + value // 10)
        p += 1
    elif value >= 10:
        p[0] = <char>(48 + value // 10)
        p += 1
    p[0] = <char>(48 + value % 10)
    return p + 1


cdef object _format_host(const uint8_t *addr, bint ipv6):
    cdef char text[64]
    cdef char *end
    cdef uint32_t key
    cdef unsigned int slot
    cdef object host
    cdef list cache
    if ipv6:
        slot = (addr[15] ^ (addr[14] << 1) ^ addr[7] ^ (addr[3] << 2)) % HOST_CACHE_SIZE
        cache = <list>_v6_hosts
        host = cache[slot]
        if host is not None and memcmp(_v6_keys[slot], addr, 16) == 0:
            return host
        inet_ntop(AF_INET6, addr, text, sizeof(text))
        host = PyUnicode_DecodeASCII(text, strlen(text), NULL)
        memcpy(_v6_keys[slot], addr, 16)
        cache[slot] = host
        return host
    key = rice_load32(addr)
    slot = (key ^ (key >> 11) ^ (key >> 22)) % HOST_CACHE_SIZE
    cache = <list>_v4_hosts
    host = cache[slot]
    if host is not None and _v4_keys[slot] == key:
        return host
    end = _put_octet(text, addr[0])
    end[0] = 46
    end = _put_octet(end + 1, addr[1])
    end[0] = 46
    end = _put_octet(end + 1, addr[2])
    end[0] = 46
    end = _put_octet(end + 1, addr[3])
    host = PyUnicode_DecodeASCII(text, end - text, NULL)
    _v4_keys[slot] = key
    cache[slot] = host
    return host


@cython.final
cdef class IntegrityKey:
    """HMAC contexts keyed once with one credential key.

    Build one per credential (the short-term password, or the long-term key
    from ``long_term_key``) and reuse it: keying costs far more than
    hashing a message. The key bytes are not kept.
    """

    def __cinit__(self, key):
        cdef const uint8_t[::1] view
        if isinstance(key, str):
            raise TypeError(
                "IntegrityKey takes bytes; encode a short-term password "
                "with SASLprep first (rice_fast.stun.short_term_key)"
            )
        view = memoryview(key).cast("B")
        if view.shape[0]:
            rice_hmac_key_init(&self.c_key, &view[0], view.shape[0])
        else:
            rice_hmac_key_init(&self.c_key, <const uint8_t *>b"", 0)
        self._digest = hashlib.sha256(bytes(key)).digest()

    def __dealloc__(self):
        rice_hmac_key_clear(&self.c_key)

    def hmac_sha1(self, data):
        """Return HMAC-SHA1 of ``data`` under this key (20 bytes)."""
        cdef uint8_t out[20]
        cdef const uint8_t[::1] view
        if PyBytes_CheckExact(data):
            rice_hmac_sha1(
                &self.c_key, <const uint8_t *>PyBytes_AS_STRING(data),
                PyBytes_GET_SIZE(data), out,
            )
            return PyBytes_FromStringAndSize(<char *>out, 20)
        view = memoryview(data).cast("B")
        if view.shape[0]:
            rice_hmac_sha1(&self.c_key, &view[0], view.shape[0], out)
        else:
            rice_hmac_sha1(&self.c_key, <const uint8_t *>b"", 0, out)
        return PyBytes_FromStringAndSize(<char *>out, 20)

    def hmac_sha256(self, data):
        """Return HMAC-SHA256 of ``data`` under this key (32 bytes)."""
        cdef uint8_t out[32]
        cdef const uint8_t[::1] view
        if PyBytes_CheckExact(data):
            rice_hmac_sha256(
                &self.c_key, <const uint8_t *>PyBytes_AS_STRING(data),
                PyBytes_GET_SIZE(data), out,
            )
            return PyBytes_FromStringAndSize(<char *>out, 32)
        view = memoryview(data).cast("B")
        if view.shape[0]:
            rice_hmac_sha256(&self.c_key, &view[0], view.shape[0], out)
        else:
            rice_hmac_sha256(&self.c_key, <const uint8_t *>b"", 0, out)
        return PyBytes_FromStringAndSize(<char *>out, 32)

    def __eq__(self, other):
        if not isinstance(other, IntegrityKey):
            return NotImplemented
        return self._digest == (<IntegrityKey>other)._digest

    def __hash__(self):
        return hash(self._digest)

    def __repr__(self):
        return "<IntegrityKey>"


cdef object _pool = b""
cdef Py_ssize_t _pool_pos = 0


def _reset_pool():
    global _pool, _pool_pos
    _pool = b""
    _pool_pos = 0


os.register_at_fork(after_in_child=_reset_pool)


def new_transaction_id():
    """Return 12 random bytes from the operating system's CSPRNG.

    Bytes are drawn 4 KiB at a time to avoid one system call per id; the
    pool is discarded in a forked child so two processes never share ids.
    """
    global _pool, _pool_pos
    if _pool_pos + 12 > PyBytes_GET_SIZE(_pool):
        _pool = os.urandom(4092)
        _pool_pos = 0
    cdef object result = PyBytes_FromStringAndSize(
        PyBytes_AS_STRING(_pool) + _pool_pos, 12
    )
    _pool_pos += 12
    return result


cdef object _attributes_module = None


cdef object _attributes():
    global _attributes_module
    if _attributes_module is None:
        from rice_fast.stun import attributes as _attributes
        _attributes_module = _attributes
    return _attributes_module


cdef inline uint16_t _lookup_type(object attr_type) except? 0xFFFF:
    if not PyIndex_Check(attr_type):
        raise TypeError(
            f"attribute type must be an int, got {type(attr_type).__name__}"
        )
    if not 0 <= attr_type <= 0xFFFF:
        raise ValueError(f"attribute type {attr_type!r} is outside 0..0xffff")
    return <uint16_t>attr_type


@cython.final
@cython.freelist(32)
cdef class Message:
    """A parsed STUN message that refers to its input without copying.

    Attribute values are decoded on access. Lookups see the attributes
    before the first integrity attribute; MESSAGE-INTEGRITY,
    MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are checked with
    ``check_integrity`` and ``check_fingerprint``.
    """

    def __cinit__(self):
        self._attrs = self._inline
        self._has_view = False

    def __dealloc__(self):
        if self._attrs != self._inline:
            PyMem_Free(self._attrs)
        if self._has_view:
            PyBuffer_Release(&self._view)

    def __init__(self):
        raise TypeError("use rice_fast.stun.parse(data) to create a Message")

    cdef int _index(self) except -1:
        cdef Py_ssize_t count = 0
        cdef Py_ssize_t where = 0
        cdef int code
        code = _walk(self._ptr, self._len, self._legacy, self._inline,
                     INLINE_ATTRIBUTES, &count, &where)
        if code:
            raise _parse_error(code, where)
        if count > INLINE_ATTRIBUTES:
            self._attrs = <AttrEntry *>PyMem_Malloc(count * sizeof(AttrEntry))
            if self._attrs == NULL:
                self._attrs = self._inline
                raise MemoryError()
            _walk(self._ptr, self._len, self._legacy, self._attrs, count,
                  &count, &where)
        self._count = <uint16_t>count
        self._type = rice_load16(self._ptr)
        self._mi = NO_INDEX
        self._mi256 = NO_INDEX
        self._fp = NO_INDEX
        self._limit = self._count
        cdef uint16_t i, t
        cdef bint ignored_since = False
        for i in range(self._count):
            t = self._attrs[i].type
            if t == ATTR_MESSAGE_INTEGRITY:
                if self._mi == NO_INDEX and self._mi256 == NO_INDEX:
                    self._mi = i
                    self._limit = i
            elif t == ATTR_MESSAGE_INTEGRITY_SHA256:
                # Only MESSAGE-INTEGRITY may come between the two integrity
                # attributes; after anything else MI-SHA256 is ignored too.
                if self._mi256 == NO_INDEX and not ignored_since:
                    self._mi256 = i
                    if self._mi == NO_INDEX:
                        self._limit = i
            elif t == ATTR_FINGERPRINT:
                self._fp = i
            elif self._limit != self._count:
                ignored_since = True
        return 0

    cdef int _find(self, uint16_t attr_type):
        cdef uint16_t i
        if attr_type == ATTR_MESSAGE_INTEGRITY:
            return -1 if self._mi == NO_INDEX else self._mi
        if attr_type == ATTR_MESSAGE_INTEGRITY_SHA256:
            return -1 if self._mi256 == NO_INDEX else self._mi256
        if attr_type == ATTR_FINGERPRINT:
            return -1 if self._fp == NO_INDEX else self._fp
        for i in range(self._limit):
            if self._attrs[i].type == attr_type:
                return i
        return -1

    cdef bytes _value(self, int i):
        return PyBytes_FromStringAndSize(
            <const char *>self._ptr + self._attrs[i].offset, self._attrs[i].length
        )

    # The header.

    @property
    def message_type(self):
        """The 14-bit message type (method and class combined)."""
        return self._type

    @property
    def method(self):
        """The 12-bit method, such as 0x001 for Binding."""
        cdef uint16_t t = self._type
        return (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2)

    @property
    def message_class(self):
        """The class: 0 request, 1 indication, 2 success, 3 error."""
        return ((self._type >> 4) & 1) | ((self._type >> 7) & 2)

    @property
    def is_request(self):
        return (self._type & 0x0110) == 0x0000

    @property
    def is_indication(self):
        return (self._type & 0x0110) == 0x0010

    @property
    def is_success(self):
        return (self._type & 0x0110) == 0x0100

    @property
    def is_error(self):
        return (self._type & 0x0110) == 0x0110

    @property
    def is_response(self):
        return (self._type & 0x0100) != 0

    @property
    def transaction_id(self):
        """The 96-bit transaction id (bytes 8 to 20 of the header)."""
        return PyBytes_FromStringAndSize(<const char *>self._ptr + 8, 12)

    @property
    def legacy(self):
        """True for an RFC 3489 message, which has no magic cookie."""
        return self._legacy

    @property
    def legacy_transaction_id(self):
        """The 128-bit RFC 3489 transaction id (bytes 4 to 20)."""
        return PyBytes_FromStringAndSize(<const char *>self._ptr + 4, 16)

    @property
    def size(self):
        """Total size of the message in bytes, header included."""
        return self._len

    @property
    def data(self):
        """The message bytes (the parsed object itself when it was bytes)."""
        if self._owner is not None:
            return self._owner
        return PyBytes_FromStringAndSize(<const char *>self._ptr, self._len)

    def __len__(self):
        return self._count

    def __repr__(self):
        return (
            f"<Message type=0x{self._type:04x} "
            f"transaction_id={self.transaction_id.hex()} "
            f"attributes={[hex(t) for t in self.attribute_types()]}>"
        )

    # The attribute index.

    def attribute_types(self):
        """Return the types of all attributes, in order, ignored ones too."""
        cdef uint16_t i
        return [self._attrs[i].type for i in range(self._count)]

    def has(self, attr_type_value):
        """Return whether a processed attribute of this type is present."""
        return self._find(_lookup_type(attr_type_value)) >= 0

    def raw(self, attr_type_value):
        """Return the value bytes of the first such attribute, or None."""
        cdef int i = self._find(_lookup_type(attr_type_value))
        if i < 0:
            return None
        return self._value(i)

    def raw_all(self, attr_type_value):
        """Return the value bytes of every processed attribute of this type."""
        cdef uint16_t attr_type = _lookup_type(attr_type_value)
        cdef uint16_t i
        return [
            self._value(i)
            for i in range(self._limit)
            if self._attrs[i].type == attr_type
        ]

    def attribute_offset(self, attr_type_value):
        """Return the byte offset of the attribute's value, or -1."""
        cdef int i = self._find(_lookup_type(attr_type_value))
        if i < 0:
            return -1
        return self._attrs[i].offset

    def get(self, attr_type_value):
        """Decode the first attribute of this type into its typed object.

        Returns None when absent. Unknown types come back as
        ``UnknownAttribute``. Raises ``StunParseError`` when the value is
        malformed, with the offset into this message.
        """
        cdef int i = self._find(_lookup_type(attr_type_value))
        if i < 0:
            return None
        return self._decode(i)

    def _decode(self, int i):
        try:
            return _attributes().decode_attribute(
                self._attrs[i].type, self._value(i), self.transaction_id
            )
        except StunParseError as exc:
            raise StunParseError(exc.reason, self._attrs[i].offset + exc.offset)

    def attributes(self):
        """Decode every processed attribute into typed objects, in order."""
        cdef uint16_t i
        return [self._decode(i) for i in range(self._limit)]

    def unknown_comprehension_required(self, known=None):
        """Return the comprehension-required types not in ``known``.

        ``known`` defaults to every attribute type this library decodes.
        A request with such attributes is answered with a 420 error that
        lists them in UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1). Each type is
        listed once, and at most 32 are, which keeps a 420 response small
        whatever the request holds.
        """
        if known is None:
            known = _attributes().KNOWN_ATTRIBUTES
        cdef uint16_t i, t
        cdef uint8_t seen[4096]
        memset(seen, 0, sizeof(seen))
        result = []
        for i in range(self._limit):
            t = self._attrs[i].type
            if t >= 0x8000 or seen[t >> 3] & (1 << (t & 7)):
                continue
            seen[t >> 3] |= 1 << (t & 7)
            if t not in known:
                result.append(t)
                if len(result) == MAX_UNKNOWN_REPORTED:
                    break
        return result

    # Integrity and fingerprint.

    @property
    def has_integrity(self):
        return self._mi != NO_INDEX or self._mi256 != NO_INDEX

    @property
    def has_message_integrity(self):
        return self._mi != NO_INDEX

    @property
    def has_message_integrity_sha256(self):
        return self._mi256 != NO_INDEX

    @property
    def has_fingerprint(self):
        return self._fp != NO_INDEX

    def check_integrity(self, IntegrityKey key not None):
        """Verify the integrity attribute with ``key`` in constant time.

        Uses MESSAGE-INTEGRITY-SHA256 when present, else MESSAGE-INTEGRITY.
        Returns False when neither is present.
        """
        cdef uint16_t i = self._mi256 if self._mi256 != NO_INDEX else self._mi
        if i == NO_INDEX:
            return False
        return bool(_verify_at(&key.c_key, self._ptr, self._attrs[i].offset,
                               self._attrs[i].type, self._attrs[i].length))

    def check_message_integrity(self, IntegrityKey key not None):
        """Verify MESSAGE-INTEGRITY (HMAC-SHA1) only."""
        if self._mi == NO_INDEX:
            return False
        return bool(_verify_at(&key.c_key, self._ptr, self._attrs[self._mi].offset,
                               ATTR_MESSAGE_INTEGRITY, 20))

    def check_message_integrity_sha256(self, IntegrityKey key not None):
        """Verify MESSAGE-INTEGRITY-SHA256 only."""
        cdef uint16_t i = self._mi256
        if i == NO_INDEX:
            return False
        return bool(_verify_at(&key.c_key, self._ptr, self._attrs[i].offset,
                               ATTR_MESSAGE_INTEGRITY_SHA256,
                               self._attrs[i].length))

    def check_fingerprint(self):
        """Return whether FINGERPRINT is present and matches the CRC-32."""
        if self._fp == NO_INDEX:
            return False
        cdef uint32_t start = self._attrs[self._fp].offset - 4
        cdef uint32_t expected = rice_crc32(self._ptr, start) ^ STUN_FINGERPRINT_XOR
        return expected == rice_load32(self._ptr + start + 4)

    def check(self, IntegrityKey key=None, bint fingerprint=True):
        """Verify the fingerprint (when ``fingerprint``) and the integrity.

        A receive-path shortcut: returns False if FINGERPRINT is missing or
        wrong while required, or if ``key`` is given and integrity fails.
        """
        return self._check(key, fingerprint)

    cdef bint _check(self, IntegrityKey key, bint fingerprint) noexcept:
        cdef uint32_t start
        cdef uint16_t i
        if fingerprint:
            if self._fp == NO_INDEX:
                return False
            start = self._attrs[self._fp].offset - 4
            if (rice_crc32(self._ptr, start) ^ STUN_FINGERPRINT_XOR) != rice_load32(
                self._ptr + start + 4
            ):
                return False
        if key is None:
            return True
        i = self._mi256 if self._mi256 != NO_INDEX else self._mi
        if i == NO_INDEX:
            return False
        return _verify_at(&key.c_key, self._ptr, self._attrs[i].offset,
                          self._attrs[i].type, self._attrs[i].length) != 0

    # Typed accessors for the attributes on hot paths.

    cdef object _text(self, uint16_t attr_type):
        cdef int i = self._find(attr_type)
        if i < 0:
            return None
        return self._text_at(i)

    cdef object _text_at(self, int i):
        try:
            return PyUnicode_DecodeUTF8(
                <const char *>self._ptr + self._attrs[i].offset,
                self._attrs[i].length, NULL
            )
        except UnicodeDecodeError:
            raise StunParseError("attribute is not valid UTF-8",
                                 self._attrs[i].offset)

    cdef object _u32(self, uint16_t attr_type):
        cdef int i = self._find(attr_type)
        if i < 0:
            return None
        return self._u32_at(i)

    cdef object _u32_at(self, int i):
        if self._attrs[i].length != 4:
            raise StunParseError(
                f"attribute 0x{self._attrs[i].type:04x} is not 4 bytes long",
                self._attrs[i].offset - 2,
            )
        return rice_load32(self._ptr + self._attrs[i].offset)

    cdef object _u64(self, uint16_t attr_type):
        cdef int i = self._find(attr_type)
        if i < 0:
            return None
        return self._u64_at(i)

    cdef object _u64_at(self, int i):
        if self._attrs[i].length != 8:
            raise StunParseError(
                f"attribute 0x{self._attrs[i].type:04x} is not 8 bytes long",
                self._attrs[i].offset - 2,
            )
        cdef const uint8_t *p = self._ptr + self._attrs[i].offset
        return (<uint64_t>rice_load32(p) << 32) | rice_load32(p + 4)

    cdef object _address(self, int i, bint xor):
        cdef const uint8_t *p = self._ptr + self._attrs[i].offset
        cdef uint16_t length = self._attrs[i].length
        cdef uint8_t addr[16]
        cdef int k
        cdef uint16_t port
        if length < 4:
            raise StunParseError("address attribute is shorter than 4 bytes",
                                 self._attrs[i].offset - 2)
        port = rice_load16(p + 2)
        if xor:
            port ^= STUN_MAGIC_COOKIE >> 16
        if p[1] == 0x01:
            if length != 8:
                raise StunParseError("IPv4 address attribute is not 8 bytes long",
                                     self._attrs[i].offset - 2)
            memcpy(addr, p + 4, 4)
            if xor:
                rice_store32(addr, rice_load32(addr) ^ STUN_MAGIC_COOKIE)
            return (_format_host(addr, False), port)
        if p[1] == 0x02:
            if length != 20:
                raise StunParseError("IPv6 address attribute is not 20 bytes long",
                                     self._attrs[i].offset - 2)
            memcpy(addr, p + 4, 16)
            if xor:
                rice_store32(addr, rice_load32(addr) ^ STUN_MAGIC_COOKIE)
                for k in range(12):
                    addr[4 + k] ^= self._ptr[8 + k]
            return (_format_host(addr, True), port)
        raise StunParseError(f"unknown address family 0x{p[1]:02x}",
                             self._attrs[i].offset + 1)

    def username(self):
        """USERNAME as text, or None."""
        return self._text(0x0006)

    def realm(self):
        """REALM as text, or None."""
        return self._text(0x0014)

    def nonce(self):
        """NONCE as text, or None."""
        return self._text(0x0015)

    def software(self):
        """SOFTWARE as text, or None."""
        return self._text(0x8022)

    def priority(self):
        """PRIORITY (RFC 8445) as an int, or None."""
        return self._u32(0x0024)

    def lifetime(self):
        """LIFETIME (RFC 8656) in seconds, or None."""
        return self._u32(0x000D)

    def ice_controlling(self):
        """The ICE-CONTROLLING tie-breaker, or None."""
        return self._u64(0x802A)

    def ice_controlled(self):
        """The ICE-CONTROLLED tie-breaker, or None."""
        return self._u64(0x8029)

    def use_candidate(self):
        """Whether USE-CANDIDATE is present."""
        return self._find(0x0025) >= 0

    def ice_attributes(self):
        """Read a connectivity check's attributes in one pass.

        Returns ``(username, priority, ice_controlling, ice_controlled,
        use_candidate)``: the first four are None when absent, the last is
        a bool. Equivalent to calling the five accessors, at the cost of
        one call on the hot path of an ICE agent.
        """
        cdef uint16_t i
        cdef int username = -1
        cdef int priority = -1
        cdef int controlling = -1
        cdef int controlled = -1
        cdef bint use_candidate = False
        cdef uint16_t t
        for i in range(self._limit):
            t = self._attrs[i].type
            if t == 0x0006:
                if username < 0:
                    username = i
            elif t == 0x0024:
                if priority < 0:
                    priority = i
            elif t == 0x802A:
                if controlling < 0:
                    controlling = i
            elif t == 0x8029:
                if controlled < 0:
                    controlled = i
            elif t == 0x0025:
                use_candidate = True
        return (
            None if username < 0 else self._text_at(username),
            None if priority < 0 else self._u32_at(priority),
            None if controlling < 0 else self._u64_at(controlling),
            None if controlled < 0 else self._u64_at(controlled),
            use_candidate,
        )

    def xor_address(self, attr_type_value):
        """Decode an XOR address attribute into ``(host, port)``, or None."""
        cdef int i = self._find(_lookup_type(attr_type_value))
        if i < 0:
            return None
        return self._address(i, True)

    def address(self, attr_type_value):
        """Decode a plain address attribute into ``(host, port)``, or None."""
        cdef int i = self._find(_lookup_type(attr_type_value))
        if i < 0:
            return None
        return self._address(i, False)

    def xor_mapped_address(self):
        """The reflexive address as ``(host, port)``, or None.

        Reads XOR-MAPPED-ADDRESS, then the pre-RFC 5389 type 0x8020, then
        the RFC 3489 MAPPED-ADDRESS.
        """
        cdef int i = self._find(0x0020)
        if i >= 0:
            return self._address(i, True)
        i = self._find(0x8020)
        if i >= 0:
            return self._address(i, True)
        i = self._find(0x0001)
        if i >= 0:
            return self._address(i, False)
        return None

    def xor_peer_address(self):
        """XOR-PEER-ADDRESS as ``(host, port)``, or None."""
        return self.xor_address(0x0012)

    def xor_relayed_address(self):
        """XOR-RELAYED-ADDRESS as ``(host, port)``, or None."""
        return self.xor_address(0x0016)

    def error_code(self):
        """ERROR-CODE as ``(code, reason)``, or None.

        The 21 reserved bits are ignored. The reason phrase is decoded as
        UTF-8 with replacement characters, since it is only for display.
        """
        cdef int i = self._find(0x0009)
        if i < 0:
            return None
        cdef const uint8_t *p = self._ptr + self._attrs[i].offset
        cdef uint16_t length = self._attrs[i].length
        if length < 4:
            raise StunParseError("ERROR-CODE is shorter than 4 bytes",
                                 self._attrs[i].offset - 2)
        if p[3] > 99:
            raise StunParseError(f"ERROR-CODE number {p[3]} is above 99",
                                 self._attrs[i].offset + 3)
        reason = (<bytes>p[4:length]).decode("utf-8", "replace")
        return ((p[2] & 0x07) * 100 + p[3], reason)

    def unknown_attributes(self):
        """UNKNOWN-ATTRIBUTES as a list of types, or None."""
        cdef int i = self._find(0x000A)
        if i < 0:
            return None
        cdef const uint8_t *p = self._ptr + self._attrs[i].offset
        cdef uint16_t length = self._attrs[i].length
        cdef uint16_t k
        if length & 1:
            raise StunParseError("UNKNOWN-ATTRIBUTES has an odd length",
                                 self._attrs[i].offset - 2)
        return [rice_load16(p + 2 * k) for k in range(length // 2)]

    def channel_number(self):
        """CHANNEL-NUMBER (RFC 8656), or None."""
        cdef int i = self._find(0x000C)
        if i < 0:
            return None
        if self._attrs[i].length != 4:
            raise StunParseError("CHANNEL-NUMBER is not 4 bytes long",
                                 self._attrs[i].offset - 2)
        return rice_load16(self._ptr + self._attrs[i].offset)

    def data_attribute(self):
        """The DATA attribute's bytes (RFC 8656), or None."""
        return self.raw(0x0013)


cdef Message _new_message(object data, bint legacy):
    cdef Message msg = Message.__new__(Message)
    if PyBytes_CheckExact(data):
        msg._owner = data
        msg._ptr = <const uint8_t *>PyBytes_AS_STRING(data)
        msg._len = PyBytes_GET_SIZE(data)
    else:
        try:
            PyObject_GetBuffer(data, &msg._view, PyBUF_SIMPLE)
        except BufferError:
            raise TypeError(
                f"STUN data must be a contiguous buffer, got a non-contiguous "
                f"{type(data).__name__}; pass bytes(data)"
            ) from None
        msg._has_view = True
        msg._owner = None
        msg._ptr = <const uint8_t *>msg._view.buf
        msg._len = msg._view.len
    msg._legacy = legacy
    msg._index()
    if legacy and rice_load32(msg._ptr + 4) == STUN_MAGIC_COOKIE:
        msg._legacy = False
    return msg


def parse(data, *, bint legacy=False):
    """Parse one STUN message from ``bytes`` or any contiguous buffer.

    The message keeps a reference to ``data`` and copies nothing. With
    ``legacy`` true, a message without the magic cookie is accepted as an
    RFC 3489 message. Raises ``StunParseError`` for anything else invalid,
    and ``TypeError`` when ``data`` is not a buffer.
    """
    return _new_message(data, legacy)


def parse_verified(data, IntegrityKey key=None, *, bint fingerprint=True):
    """Parse a message and verify it in one call; the receive-path shortcut.

    Returns the ``Message`` when its FINGERPRINT (unless ``fingerprint`` is
    false) and, with ``key``, its integrity attribute verify, and None when
    either is missing or wrong. Raises ``StunParseError`` for bytes that
    are not a STUN message, as ``parse`` does.
    """
    cdef Message message = _new_message(data, False)
    if message._check(key, fingerprint):
        return message
    return None


def frame_error(data):
    """Return None if ``data`` is framed as a STUN message, else the error.

    Cheaper than ``parse`` when only validity matters; the error is the
    ``StunParseError`` that ``parse`` would raise.
    """
    cdef const uint8_t[::1] view
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t where = 0
    cdef int code
    if PyBytes_CheckExact(data):
        code = _walk(<const uint8_t *>PyBytes_AS_STRING(data),
                     PyBytes_GET_SIZE(data), False, NULL, 0, &count, &where)
        if code:
            return _parse_error(code, where)
        return None
    view = memoryview(data).cast("B")
    if view.shape[0] == 0:
        return _parse_error(1, 0)
    code = _walk(&view[0], view.shape[0], False, NULL, 0, &count, &where)
    if code:
        return _parse_error(code, where)
    return None


def is_stun(data):
    """Return whether ``data`` starts like a STUN message (RFC 7983 range).

    Checks only the first byte (0 to 3), the magic cookie and the length;
    use it to demultiplex STUN from ChannelData, DTLS and RTP.
    """
    cdef const uint8_t *p
    cdef Py_ssize_t length
    cdef const uint8_t[::1] view
    if PyBytes_CheckExact(data):
        p = <const uint8_t *>PyBytes_AS_STRING(data)
        length = PyBytes_GET_SIZE(data)
    else:
        view = memoryview(data).cast("B")
        length = view.shape[0]
        if length < STUN_HEADER_SIZE:
            return False
        p = &view[0]
    if length < STUN_HEADER_SIZE or p[0] > 3:
        return False
    if rice_load32(p + 4) != STUN_MAGIC_COOKIE:
        return False
    return rice_load16(p + 2) + STUN_HEADER_SIZE == length


cdef inline unsigned long long _as_unsigned(object value, unsigned long long maximum,
                                            str name) except? 0xFFFFFFFFFFFFFFFF:
    cdef unsigned long long result
    if not PyIndex_Check(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    try:
        result = value
    except OverflowError:
        raise StunBuildError(f"{name} {value!r} is outside 0..{maximum}") from None
    if result > maximum:
        raise StunBuildError(f"{name} {value!r} is outside 0..{maximum}")
    return result


cdef inline uint16_t _checked_type(object attr_type) except? 0xFFFF:
    return <uint16_t>_as_unsigned(attr_type, 0xFFFF, "attribute type")


cdef inline uint32_t _checked_u32(object value, str name) except? 0xFFFFFFFF:
    return <uint32_t>_as_unsigned(value, 0xFFFFFFFF, name)


cdef inline uint64_t _checked_u64(object value, str name) except? 0xFFFFFFFFFFFFFFFF:
    return <uint64_t>_as_unsigned(value, 0xFFFFFFFFFFFFFFFF, name)


@cython.final
@cython.freelist(8)
cdef class MessageBuilder:
    """Build one STUN message attribute by attribute into a single buffer.

    ``buffer``, when given, is a writable buffer the message is written
    into (``finish`` then returns the number of bytes written); otherwise
    the builder grows its own buffer and ``finish`` returns ``bytes``.
    Only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT may follow
    MESSAGE-INTEGRITY, and nothing may follow FINGERPRINT: breaking either
    rule raises ``StunBuildError``.
    """

    def __cinit__(self, message_type, transaction_id, buffer=None):
        self._buf = self._inline
        self._cap = BUILDER_INLINE
        self._external = False
        cdef uint16_t checked_type = <uint16_t>_as_unsigned(
            message_type, 0x3FFF, "message type"
        )
        cdef const uint8_t[::1] txid
        if PyBytes_CheckExact(transaction_id):
            if PyBytes_GET_SIZE(transaction_id) != 12:
                raise StunBuildError(
                    "transaction id must be 12 bytes, got "
                    f"{PyBytes_GET_SIZE(transaction_id)}"
                )
            memcpy(self._txid, PyBytes_AS_STRING(transaction_id), 12)
        else:
            txid = memoryview(transaction_id).cast("B")
            if txid.shape[0] != 12:
                raise StunBuildError(
                    f"transaction id must be 12 bytes, got {txid.shape[0]}"
                )
            memcpy(self._txid, &txid[0], 12)
        if buffer is not None:
            PyObject_GetBuffer(buffer, &self._view, PyBUF_WRITABLE)
            self._external = True
            self._buf = <uint8_t *>self._view.buf
            self._cap = self._view.len
            if self._cap < STUN_HEADER_SIZE:
                raise StunBuildError(
                    f"buffer of {self._cap} bytes cannot hold the 20-byte header"
                )
        rice_store16(self._buf, checked_type)
        rice_store16(self._buf + 2, 0)
        rice_store32(self._buf + 4, STUN_MAGIC_COOKIE)
        memcpy(self._buf + 8, self._txid, 12)
        self._len = STUN_HEADER_SIZE
        self._stage = 0

    def __dealloc__(self):
        if self._external:
            PyBuffer_Release(&self._view)
        elif self._buf != self._inline:
            PyMem_Free(self._buf)

    cdef uint8_t *_reserve(self, uint16_t attr_type,
                           Py_ssize_t length) except NULL:
        cdef Py_ssize_t padded = (length + 3) & ~3
        cdef Py_ssize_t needed = self._len + 4 + padded
        cdef Py_ssize_t cap
        cdef uint8_t *grown
        if self._stage == 3:
            raise StunBuildError(
                f"cannot add attribute 0x{attr_type:04x} after FINGERPRINT"
            )
        if self._stage and attr_type != ATTR_FINGERPRINT and not (
            self._stage == 1 and attr_type == ATTR_MESSAGE_INTEGRITY_SHA256
        ):
            raise StunBuildError(
                f"cannot add attribute 0x{attr_type:04x} after the integrity "
                "attribute; only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT may "
                "follow it"
            )
        if length > 0xFFFF:
            raise StunBuildError(
                f"attribute 0x{attr_type:04x} value of {length} bytes exceeds 65535"
            )
        if needed - STUN_HEADER_SIZE > 0xFFFF:
            raise StunBuildError(
                f"message body of {needed - STUN_HEADER_SIZE} bytes exceeds 65535"
            )
        if needed > self._cap:
            if self._external:
                raise StunBuildError(
                    f"message of {needed} bytes does not fit in the "
                    f"{self._cap}-byte buffer"
                )
            cap = self._cap * 2
            while cap < needed:
                cap *= 2
            if self._buf == self._inline:
                grown = <uint8_t *>PyMem_Malloc(cap)
                if grown != NULL:
                    memcpy(grown, self._buf, self._len)
            else:
                grown = <uint8_t *>PyMem_Realloc(self._buf, cap)
            if grown == NULL:
                raise MemoryError()
            self._buf = grown
            self._cap = cap
        cdef uint8_t *p = self._buf + self._len
        rice_store16(p, attr_type)
        rice_store16(p + 2, <uint16_t>length)
        if padded != length:
            memset(p + 4 + length, 0, padded - length)
        self._len = needed
        rice_store16(self._buf + 2, <uint16_t>(needed - STUN_HEADER_SIZE))
        return p + 4

    cdef int _put(self, uint16_t attr_type, const uint8_t *value,
                  Py_ssize_t length) except -1:
        cdef uint8_t *p = self._reserve(attr_type, length)
        if length:
            memcpy(p, value, length)
        return 0

    cdef int _put_xor_address(self, uint16_t attr_type, object host,
                              object port_number, bint xor) except -1:
        cdef uint8_t addr[16]
        cdef bytes text
        cdef int k
        cdef uint8_t *p
        cdef uint16_t port = <uint16_t>_as_unsigned(port_number, 0xFFFF, "port")
        if not isinstance(host, str):
            raise TypeError(f"host must be a str, got {type(host).__name__}")
        if "\x00" in host:
            raise StunBuildError(f"host {host!r} contains a NUL character")
        # A zone ("%eth0") is not part of the address on the wire, and only
        # IPv6 link-local addresses have one.
        text = PyUnicode_AsUTF8String(host.partition("%")[0] if ":" in host else host)
        if inet_pton(AF_INET, text, addr) == 1:
            p = self._reserve(attr_type, 8)
            p[0] = 0
            p[1] = 0x01
            if xor:
                rice_store16(p + 2, <uint16_t>(port ^ (STUN_MAGIC_COOKIE >> 16)))
                rice_store32(p + 4, rice_load32(addr) ^ STUN_MAGIC_COOKIE)
            else:
                rice_store16(p + 2, <uint16_t>port)
                memcpy(p + 4, addr, 4)
            return 0
        if inet_pton(AF_INET6, text, addr) == 1:
            p = self._reserve(attr_type, 20)
            p[0] = 0
            p[1] = 0x02
            if xor:
                rice_store16(p + 2, <uint16_t>(port ^ (STUN_MAGIC_COOKIE >> 16)))
                rice_store32(p + 4, rice_load32(addr) ^ STUN_MAGIC_COOKIE)
                for k in range(12):
                    p[8 + k] = addr[4 + k] ^ self._txid[k]
            else:
                rice_store16(p + 2, <uint16_t>port)
                memcpy(p + 4, addr, 16)
            return 0
        raise StunBuildError(f"host {host!r} is not an IPv4 or IPv6 address")

    @property
    def length(self):
        """Bytes written so far, header included."""
        return self._len

    @property
    def transaction_id(self):
        return PyBytes_FromStringAndSize(<char *>self._txid, 12)

    def add(self, attr_type, value):
        """Append an attribute with raw value bytes, padded to 4 bytes."""
        cdef uint16_t checked = _checked_type(attr_type)
        cdef const uint8_t[::1] view
        if PyBytes_CheckExact(value):
            self._put(checked, <const uint8_t *>PyBytes_AS_STRING(value),
                      PyBytes_GET_SIZE(value))
            return
        view = memoryview(value).cast("B")
        if view.shape[0]:
            self._put(checked, &view[0], view.shape[0])
        else:
            self._put(checked, NULL, 0)

    def add_attribute(self, attribute):
        """Append a typed attribute object from ``rice_fast.stun.attributes``.

        The type is the class's ``TYPE``, or the instance's ``type`` for
        ``UnknownAttribute``, whose class ``TYPE`` is -1.
        """
        if not hasattr(attribute, "TYPE") or not hasattr(attribute, "encode"):
            raise TypeError(
                f"{attribute!r} is not an attribute from rice_fast.stun.attributes"
            )
        cdef int attr_type = attribute.TYPE
        if attr_type < 0:
            attr_type = attribute.type
        self.add(attr_type, attribute.encode(self.transaction_id))

    def add_text(self, attr_type, value):
        """Append a UTF-8 text attribute (USERNAME, REALM, NONCE, SOFTWARE)."""
        cdef bytes raw
        cdef const char *utf8
        cdef Py_ssize_t size
        if isinstance(value, str):
            utf8 = PyUnicode_AsUTF8AndSize(value, &size)
            self._put(_checked_type(attr_type), <const uint8_t *>utf8, size)
            return
        elif PyBytes_CheckExact(value):
            raw = value
        elif isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
        else:
            raise TypeError(
                f"text attribute value must be str or bytes, got "
                f"{type(value).__name__}"
            )
        self._put(_checked_type(attr_type), <const uint8_t *>PyBytes_AS_STRING(raw),
                  PyBytes_GET_SIZE(raw))

    def add_username(self, value):
        """Append USERNAME, which RFC 8489 §14.3 limits to 508 bytes."""
        cdef Py_ssize_t start = self._len
        self.add_text(0x0006, value)
        if rice_load16(self._buf + start + 2) > 508:
            self._len = start
            rice_store16(self._buf + 2, <uint16_t>(start - STUN_HEADER_SIZE))
            raise StunBuildError(
                f"USERNAME of {rice_load16(self._buf + start + 2)} bytes is longer "
                "than 508 bytes"
            )

    def add_software(self, value):
        self.add_text(0x8022, value)

    def add_realm(self, value):
        self.add_text(0x0014, value)

    def add_nonce(self, value):
        self.add_text(0x0015, value)

    def add_u32(self, attr_type, value):
        """Append an attribute holding one 32-bit big-endian integer."""
        cdef uint32_t checked = _checked_u32(value, "value")
        cdef uint8_t *p = self._reserve(_checked_type(attr_type), 4)
        rice_store32(p, checked)

    def add_u64(self, attr_type, value):
        """Append an attribute holding one 64-bit big-endian integer."""
        cdef uint64_t checked = _checked_u64(value, "value")
        cdef uint8_t *p = self._reserve(_checked_type(attr_type), 8)
        rice_store32(p, <uint32_t>(checked >> 32))
        rice_store32(p + 4, <uint32_t>checked)

    def add_priority(self, value):
        """Append PRIORITY (RFC 8445 §7.1.1)."""
        cdef uint32_t checked = _checked_u32(value, "priority")
        cdef uint8_t *p = self._reserve(0x0024, 4)
        rice_store32(p, checked)

    def add_ice_controlling(self, value):
        """Append ICE-CONTROLLING with the agent's tie-breaker."""
        cdef uint64_t tie_breaker = _checked_u64(value, "tie-breaker")
        cdef uint8_t *p = self._reserve(0x802A, 8)
        rice_store32(p, <uint32_t>(tie_breaker >> 32))
        rice_store32(p + 4, <uint32_t>tie_breaker)

    def add_ice_controlled(self, value):
        """Append ICE-CONTROLLED with the agent's tie-breaker."""
        cdef uint64_t tie_breaker = _checked_u64(value, "tie-breaker")
        cdef uint8_t *p = self._reserve(0x8029, 8)
        rice_store32(p, <uint32_t>(tie_breaker >> 32))
        rice_store32(p + 4, <uint32_t>tie_breaker)

    def add_use_candidate(self):
        """Append the empty USE-CANDIDATE attribute."""
        self._reserve(0x0025, 0)

    def add_lifetime(self, seconds):
        """Append LIFETIME in seconds."""
        cdef uint32_t checked = _checked_u32(seconds, "lifetime")
        cdef uint8_t *p = self._reserve(0x000D, 4)
        rice_store32(p, checked)

    def add_channel_number(self, channel):
        """Append CHANNEL-NUMBER; the RFC 8656 range is 0x4000..0x4fff."""
        cdef uint16_t checked = <uint16_t>_as_unsigned(channel, 0xFFFF,
                                                       "channel number")
        cdef uint8_t *p = self._reserve(0x000C, 4)
        rice_store16(p, checked)
        rice_store16(p + 2, 0)

    def add_requested_transport(self, protocol):
        """Append REQUESTED-TRANSPORT (17 for UDP, 6 for TCP)."""
        cdef uint8_t checked = <uint8_t>_as_unsigned(protocol, 0xFF,
                                                     "protocol number")
        cdef uint8_t *p = self._reserve(0x0019, 4)
        p[0] = checked
        p[1] = 0
        p[2] = 0
        p[3] = 0

    def add_address(self, attr_type, str host, port):
        """Append a plain address attribute such as MAPPED-ADDRESS."""
        self._put_xor_address(_checked_type(attr_type), host, port, False)

    def add_xor_address(self, attr_type, str host, port):
        """Append an XOR address attribute such as XOR-PEER-ADDRESS."""
        self._put_xor_address(_checked_type(attr_type), host, port, True)

    def add_xor_mapped_address(self, str host, port):
        """Append XOR-MAPPED-ADDRESS."""
        self._put_xor_address(0x0020, host, port, True)

    def add_mapped_address(self, str host, port):
        """Append the RFC 3489 MAPPED-ADDRESS."""
        self._put_xor_address(0x0001, host, port, False)

    def add_xor_peer_address(self, str host, port):
        """Append XOR-PEER-ADDRESS."""
        self._put_xor_address(0x0012, host, port, True)

    def add_xor_relayed_address(self, str host, port):
        """Append XOR-RELAYED-ADDRESS."""
        self._put_xor_address(0x0016, host, port, True)

    def add_data(self, value):
        """Append DATA."""
        self.add(0x0013, value)

    def add_error_code(self, code, reason=""):
        """Append ERROR-CODE; the reserved bits are written as zero."""
        if not PyIndex_Check(code):
            raise TypeError(f"error code must be an int, got {type(code).__name__}")
        code = int(code)
        if not isinstance(reason, str):
            raise TypeError(
                f"error reason must be a str, got {type(reason).__name__}"
            )
        if not 300 <= code <= 699:
            raise StunBuildError(f"error code {code} is outside 300..699")
        cdef bytes text = reason.encode("utf-8")
        if len(text) > 763:
            raise StunBuildError(
                f"error reason of {len(text)} bytes exceeds 763 bytes"
            )
        cdef uint8_t *p = self._reserve(0x0009, 4 + len(text))
        p[0] = 0
        p[1] = 0
        p[2] = <uint8_t>(code // 100)
        p[3] = <uint8_t>(code % 100)
        if len(text):
            memcpy(p + 4, PyBytes_AS_STRING(text), len(text))

    def add_unknown_attributes(self, types):
        """Append UNKNOWN-ATTRIBUTES, two bytes per type."""
        cdef list values = list(types)
        cdef Py_ssize_t k
        for k in range(len(values)):
            if not 0 <= values[k] <= 0xFFFF:
                raise StunBuildError(
                    f"attribute type {values[k]} is outside 0..65535"
                )
        cdef uint8_t *p = self._reserve(0x000A, 2 * len(values))
        for k in range(len(values)):
            rice_store16(p + 2 * k, <uint16_t>values[k])

    def add_message_integrity(self, IntegrityKey key not None):
        """Append MESSAGE-INTEGRITY (HMAC-SHA1) over what is written so far."""
        if self._stage:
            raise StunBuildError(
                "MESSAGE-INTEGRITY must come before any other integrity "
                "attribute and before FINGERPRINT"
            )
        cdef Py_ssize_t start = self._len
        cdef uint8_t *p = self._reserve(ATTR_MESSAGE_INTEGRITY, 20)
        rice_hmac_sha1_stun(&key.c_key, self._buf,
                            <uint16_t>(self._len - STUN_HEADER_SIZE),
                            self._buf + STUN_HEADER_SIZE,
                            start - STUN_HEADER_SIZE, p)
        self._stage = 1

    def add_message_integrity_sha256(self, IntegrityKey key not None,
                                     int length=32):
        """Append MESSAGE-INTEGRITY-SHA256, truncated to ``length`` bytes.

        ``length`` is 16 to 32 in steps of 4 (RFC 8489 §14.6).
        """
        cdef uint8_t digest[32]
        if length < 16 or length > 32 or length & 3:
            raise StunBuildError(
                f"MESSAGE-INTEGRITY-SHA256 length {length} is not 16..32 "
                "in steps of 4"
            )
        if self._stage > 1:
            raise StunBuildError(
                "MESSAGE-INTEGRITY-SHA256 must come before FINGERPRINT and "
                "only once"
            )
        cdef Py_ssize_t start = self._len
        cdef uint8_t *p = self._reserve(ATTR_MESSAGE_INTEGRITY_SHA256, length)
        rice_hmac_sha256_stun(&key.c_key, self._buf,
                              <uint16_t>(self._len - STUN_HEADER_SIZE),
                              self._buf + STUN_HEADER_SIZE,
                              start - STUN_HEADER_SIZE, digest)
        memcpy(p, digest, length)
        self._stage = 2

    def add_fingerprint(self):
        """Append FINGERPRINT; nothing can be added after it."""
        cdef Py_ssize_t start = self._len
        cdef uint8_t *p = self._reserve(ATTR_FINGERPRINT, 4)
        rice_store32(p, rice_crc32(self._buf, start) ^ STUN_FINGERPRINT_XOR)
        self._stage = 3

    cdef int _complete(self, IntegrityKey key, bint sha256, bint fingerprint) except -1:
        if key is not None:
            if sha256:
                self.add_message_integrity_sha256(key)
            else:
                self.add_message_integrity(key)
        if fingerprint:
            self.add_fingerprint()
        return 0

    def finish(self, IntegrityKey key=None, *, bint sha256=False,
               bint fingerprint=False):
        """Complete the message and return it as ``bytes``.

        With ``key``, appends MESSAGE-INTEGRITY, or MESSAGE-INTEGRITY-SHA256
        when ``sha256`` is true; with ``fingerprint``, appends FINGERPRINT.
        A builder that writes into a caller's buffer uses ``finish_into``.
        """
        if self._external:
            raise StunBuildError(
                "this builder writes into a caller's buffer: call finish_into()"
            )
        self._complete(key, sha256, fingerprint)
        return PyBytes_FromStringAndSize(<char *>self._buf, self._len)

    def finish_into(self, IntegrityKey key=None, *, bint sha256=False,
                    bint fingerprint=False):
        """Complete a message written into the caller's buffer.

        Takes the same arguments as ``finish`` and returns the message length
        in bytes, counted from the start of the buffer.
        """
        if not self._external:
            raise StunBuildError(
                "this builder owns its buffer: call finish() to get the bytes"
            )
        self._complete(key, sha256, fingerprint)
        return self._len
