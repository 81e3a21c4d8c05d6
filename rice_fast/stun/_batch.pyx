# cython: freethreading_compatible=False
"""Classify and verify many datagrams in one call.

Theory of operation: the caller keeps a batch of received datagrams in one
``uint8`` buffer and describes each one by an offset and a length, as a
``recvmmsg`` loop fills them. Each function here acquires typed memoryviews
once per call, checks every offset and length against the buffer, then runs
one loop over the datagrams without the GIL and without creating a Python
object per datagram. Results go into caller-allocated numpy arrays; the
public facade, ``rice_fast.stun.batch``, allocates them and wraps them.

The STUN framing rules are the ones of ``rice_fast.stun._codec``, because
this module calls its ``stun_frame_error`` and ``stun_check_integrity``. A
STUN datagram is valid here exactly when ``rice_fast.stun.frame_error``
accepts it.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t
from libc.stdlib cimport free, malloc

from rice_fast.stun._codec cimport (
    ATTR_FINGERPRINT,
    STUN_FINGERPRINT_XOR,
    STUN_HEADER_SIZE,
    STUN_MAGIC_COOKIE,
    IntegrityKey,
    rice_crc32,
    rice_crc32_init,
    rice_hmac_key,
    rice_load16,
    rice_load32,
    stun_check_integrity,
    stun_frame_error_inline,
)

# rice_stun.h defines its CRC-32 table as a static array, so this module has
# its own copy and must fill it itself.
rice_crc32_init()

cdef enum:
    DATAGRAM_OTHER = 0
    DATAGRAM_STUN = 1
    DATAGRAM_CHANNEL_DATA = 2

KIND_OTHER = DATAGRAM_OTHER
KIND_STUN = DATAGRAM_STUN
KIND_CHANNEL_DATA = DATAGRAM_CHANNEL_DATA

# RFC 8656 §12 has clients bind 0x4000..0x4FFF and reserves 0x5000 and up,
# but RFC 5766 allowed 0x4000..0x7FFF and its clients still use that range,
# so every channel number whose first two bits are 01 is accepted.
cdef enum:
    CHANNEL_LAST = 0x7FFF
    CHANNEL_DATA_HEADER = 4

ctypedef fused index_t:
    int32_t
    int64_t

ctypedef fused key_index_t:
    int32_t
    int64_t

cdef uint8_t _EMPTY[1]


cdef object _describe(object value):
    """Name the type, dtype and shape of ``value`` for an error message."""
    dtype = getattr(value, "dtype", None)
    shape = getattr(value, "shape", None)
    if dtype is None or shape is None:
        return type(value).__name__
    flags = getattr(value, "flags", None)
    contiguous = flags is None or bool(flags["C_CONTIGUOUS"])
    text = f"{type(value).__name__} with dtype {dtype} and shape {tuple(shape)}"
    if not contiguous:
        text += " that is not C-contiguous"
    return text


cdef inline const uint8_t *_base(const uint8_t[::1] buffer) noexcept nogil:
    if buffer.shape[0] == 0:
        return _EMPTY
    return &buffer[0]


cdef const uint8_t[::1] _buffer_view(object buffer):
    cdef const uint8_t[::1] view
    try:
        view = buffer
    except (TypeError, ValueError, BufferError):
        raise TypeError(
            "buffer must be a 1-D C-contiguous uint8 array (or bytes, "
            f"bytearray or memoryview of bytes), got {_describe(buffer)}"
        ) from None
    return view


cdef Py_ssize_t _first_out_of_bounds(const index_t[::1] offsets,
                                     const index_t[::1] lengths,
                                     Py_ssize_t size) noexcept nogil:
    """Return the first i whose datagram is outside buffer[0:size], or -1."""
    cdef Py_ssize_t i
    cdef int64_t offset, length
    for i in range(offsets.shape[0]):
        offset = offsets[i]
        length = lengths[i]
        if offset < 0 or length < 0 or offset > size - length:
            return i
    return -1


cdef int _check_bounds(const index_t[::1] offsets, const index_t[::1] lengths,
                       Py_ssize_t size) except -1:
    cdef Py_ssize_t bad
    if offsets.shape[0] != lengths.shape[0]:
        raise ValueError(
            f"offsets has {offsets.shape[0]} entries but lengths has "
            f"{lengths.shape[0]}; pass one offset and one length per datagram"
        )
    with nogil:
        bad = _first_out_of_bounds(offsets, lengths, size)
    if bad >= 0:
        raise ValueError(
            f"datagram {bad} (offset {offsets[bad]}, length {lengths[bad]}) "
            f"is outside the {size}-byte buffer; offsets and lengths must be "
            "non-negative and offset + length at most the buffer size"
        )
    return 0


cdef object _index_error(object offsets, object lengths):
    """Build the TypeError for offsets and lengths that are not index arrays."""
    cdef const int64_t[::1] _wide
    cdef const int32_t[::1] _narrow
    for name, value in (("offsets", offsets), ("lengths", lengths)):
        try:
            _wide = value
        except (TypeError, ValueError, BufferError):
            try:
                _narrow = value
            except (TypeError, ValueError, BufferError):
                return TypeError(
                    f"{name} must be a 1-D C-contiguous int64 or int32 array, "
                    f"got {_describe(value)}"
                )
    return TypeError(
        f"offsets and lengths must have the same dtype, got "
        f"{_describe(offsets)} and {_describe(lengths)}"
    )


cdef int _check_out(Py_ssize_t capacity, Py_ssize_t count, str name) except -1:
    if capacity < count:
        raise ValueError(
            f"output array {name} has {capacity} entries but the batch has "
            f"{count} datagrams"
        )
    return 0


cdef void _classify_loop(
    const uint8_t *base,
    const index_t[::1] offsets,
    const index_t[::1] lengths,
    uint8_t[::1] kind,
    uint8_t[::1] message_class,
    uint16_t[::1] method,
    int64_t[::1] transaction_id_offset,
    uint8_t[::1] valid,
    uint16_t[::1] channel,
    int64_t[::1] payload_offset,
    int32_t[::1] payload_length,
) noexcept nogil:
    cdef Py_ssize_t i
    cdef int64_t offset
    cdef Py_ssize_t length
    cdef const uint8_t *p
    cdef uint16_t word, body
    # One store per output and datagram: the compiler cannot prove that the
    # output arrays do not overlap, so it would keep every overwritten store.
    cdef uint8_t kind_value, class_value, valid_value
    cdef uint16_t method_value, channel_value
    cdef int64_t transaction_id_value, payload_offset_value
    cdef int32_t payload_length_value

    for i in range(offsets.shape[0]):
        offset = offsets[i]
        length = lengths[i]
        p = base + offset

        kind_value = DATAGRAM_OTHER
        class_value = 0
        method_value = 0
        transaction_id_value = -1
        valid_value = 0
        channel_value = 0
        payload_offset_value = -1
        payload_length_value = 0

        if (length >= 8 and (p[0] & 0xC0) == 0
                and rice_load32(p + 4) == STUN_MAGIC_COOKIE):
            word = rice_load16(p)
            kind_value = DATAGRAM_STUN
            class_value = ((word >> 4) & 1) | ((word >> 7) & 2)
            method_value = ((word & 0x000F) | ((word & 0x00E0) >> 1)
                            | ((word & 0x3E00) >> 2))
            if length >= STUN_HEADER_SIZE:
                transaction_id_value = offset + 8
                valid_value = stun_frame_error_inline(p, length) == 0
        elif length >= CHANNEL_DATA_HEADER and (p[0] & 0xC0) == 0x40:
            word = rice_load16(p)
            body = rice_load16(p + 2)
            kind_value = DATAGRAM_CHANNEL_DATA
            channel_value = word
            # RFC 8656 §12.5: over UDP the datagram may carry padding after
            # the payload, so only a length that overruns it is invalid.
            if CHANNEL_DATA_HEADER + body <= length:
                payload_offset_value = offset + CHANNEL_DATA_HEADER
                payload_length_value = body
                valid_value = word <= CHANNEL_LAST

        kind[i] = kind_value
        message_class[i] = class_value
        method[i] = method_value
        transaction_id_offset[i] = transaction_id_value
        valid[i] = valid_value
        channel[i] = channel_value
        payload_offset[i] = payload_offset_value
        payload_length[i] = payload_length_value


def classify_into(
    buffer,
    offsets,
    lengths,
    uint8_t[::1] kind not None,
    uint8_t[::1] message_class not None,
    uint16_t[::1] method not None,
    int64_t[::1] transaction_id_offset not None,
    uint8_t[::1] valid not None,
    uint16_t[::1] channel not None,
    int64_t[::1] payload_offset not None,
    int32_t[::1] payload_length not None,
):
    """Classify each datagram into the eight output arrays; return the count.

    Each output array needs at least one entry per datagram; entries past
    the count are left unchanged. Raises ``TypeError`` for a wrong type or
    dtype and ``ValueError`` for mismatched sizes or an out-of-bounds
    datagram, before writing anything.
    """
    cdef const uint8_t[::1] data = _buffer_view(buffer)
    cdef const uint8_t *base = _base(data)
    cdef const int64_t[::1] offsets64, lengths64
    cdef const int32_t[::1] offsets32, lengths32
    cdef bint wide = True
    cdef Py_ssize_t count

    # int64 is the fast path; int32 costs one failed buffer acquisition.
    try:
        offsets64 = offsets
        lengths64 = lengths
    except (TypeError, ValueError, BufferError):
        wide = False
    if not wide:
        try:
            offsets32 = offsets
            lengths32 = lengths
        except (TypeError, ValueError, BufferError):
            raise _index_error(offsets, lengths) from None

    if wide:
        _check_bounds(offsets64, lengths64, data.shape[0])
        count = offsets64.shape[0]
    else:
        _check_bounds(offsets32, lengths32, data.shape[0])
        count = offsets32.shape[0]

    _check_out(kind.shape[0], count, "kind")
    _check_out(message_class.shape[0], count, "message_class")
    _check_out(method.shape[0], count, "method")
    _check_out(transaction_id_offset.shape[0], count, "transaction_id_offset")
    _check_out(valid.shape[0], count, "valid")
    _check_out(channel.shape[0], count, "channel")
    _check_out(payload_offset.shape[0], count, "payload_offset")
    _check_out(payload_length.shape[0], count, "payload_length")

    if wide:
        with nogil:
            _classify_loop(base, offsets64, lengths64, kind, message_class, method,
                           transaction_id_offset, valid, channel, payload_offset,
                           payload_length)
    else:
        with nogil:
            _classify_loop(base, offsets32, lengths32, kind, message_class, method,
                           transaction_id_offset, valid, channel, payload_offset,
                           payload_length)
    return count


cdef inline bint _is_framed_stun(const uint8_t *p, Py_ssize_t length) noexcept nogil:
    if length < STUN_HEADER_SIZE or p[0] & 0xC0:
        return False
    if rice_load32(p + 4) != STUN_MAGIC_COOKIE:
        return False
    return stun_frame_error_inline(p, length) == 0


cdef inline bint _fingerprint_matches(const uint8_t *p,
                                      Py_ssize_t length) noexcept nogil:
    """Check FINGERPRINT of a message whose framing is already valid."""
    cdef Py_ssize_t pos = STUN_HEADER_SIZE
    cdef Py_ssize_t last = -1
    while pos < length:
        last = pos
        pos += 4 + ((rice_load16(p + pos + 2) + 3) & ~3)
    if last < 0 or rice_load16(p + last) != ATTR_FINGERPRINT:
        return False
    return (rice_crc32(p, last) ^ STUN_FINGERPRINT_XOR) == rice_load32(p + last + 4)


cdef void _fingerprint_loop(const uint8_t *base, const index_t[::1] offsets,
                            const index_t[::1] lengths,
                            uint8_t[::1] out) noexcept nogil:
    cdef Py_ssize_t i
    cdef const uint8_t *p
    cdef Py_ssize_t length
    for i in range(offsets.shape[0]):
        p = base + offsets[i]
        length = lengths[i]
        out[i] = _is_framed_stun(p, length) and _fingerprint_matches(p, length)


def check_fingerprint_into(buffer, offsets, lengths, uint8_t[::1] out not None):
    """Write whether each datagram is framed STUN with a valid FINGERPRINT.

    ``out`` is a bool or uint8 array with one entry per datagram at least.
    Returns the number of datagrams.
    """
    cdef const uint8_t[::1] data = _buffer_view(buffer)
    cdef const uint8_t *base = _base(data)
    cdef const int64_t[::1] offsets64, lengths64
    cdef const int32_t[::1] offsets32, lengths32
    cdef bint wide = True
    cdef Py_ssize_t count

    # int64 is the fast path; int32 costs one failed buffer acquisition.
    try:
        offsets64 = offsets
        lengths64 = lengths
    except (TypeError, ValueError, BufferError):
        wide = False
    if not wide:
        try:
            offsets32 = offsets
            lengths32 = lengths
        except (TypeError, ValueError, BufferError):
            raise _index_error(offsets, lengths) from None

    if wide:
        _check_bounds(offsets64, lengths64, data.shape[0])
        count = offsets64.shape[0]
    else:
        _check_bounds(offsets32, lengths32, data.shape[0])
        count = offsets32.shape[0]
    _check_out(out.shape[0], count, "out")

    if wide:
        with nogil:
            _fingerprint_loop(base, offsets64, lengths64, out)
    else:
        with nogil:
            _fingerprint_loop(base, offsets32, lengths32, out)
    return count


cdef void _integrity_loop(const uint8_t *base, const index_t[::1] offsets,
                          const index_t[::1] lengths,
                          const rice_hmac_key **keys,
                          const key_index_t[::1] key_index,
                          bint use_index, uint8_t[::1] out) noexcept nogil:
    cdef Py_ssize_t i
    cdef const uint8_t *p
    cdef Py_ssize_t length
    cdef const rice_hmac_key *key = keys[0]
    for i in range(offsets.shape[0]):
        if use_index:
            if key_index[i] < 0:
                out[i] = 0
                continue
            key = keys[key_index[i]]
        p = base + offsets[i]
        length = lengths[i]
        out[i] = _is_framed_stun(p, length) and stun_check_integrity(key, p, length)


cdef Py_ssize_t _first_bad_key(const key_index_t[::1] key_index,
                               Py_ssize_t key_count) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(key_index.shape[0]):
        if key_index[i] < -1 or key_index[i] >= key_count:
            return i
    return -1


cdef int _check_key_index(const key_index_t[::1] key_index, Py_ssize_t count,
                          Py_ssize_t key_count) except -1:
    cdef Py_ssize_t bad
    if key_index.shape[0] != count:
        raise ValueError(
            f"key_index has {key_index.shape[0]} entries but the batch has "
            f"{count} datagrams"
        )
    with nogil:
        bad = _first_bad_key(key_index, key_count)
    if bad >= 0:
        raise ValueError(
            f"key_index[{bad}] is {key_index[bad]}, outside -1..{key_count - 1} "
            f"for {key_count} keys"
        )
    return 0


cdef int _integrity_run(const uint8_t *base, const index_t[::1] offsets,
                        const index_t[::1] lengths, const rice_hmac_key **keys,
                        Py_ssize_t key_count, object key_index,
                        uint8_t[::1] out) except -1:
    """Check key_index against the batch, then run the loop without the GIL."""
    cdef const int32_t[::1] index32 = None
    cdef const int64_t[::1] index64 = None
    cdef Py_ssize_t count = offsets.shape[0]

    if key_index is None:
        with nogil:
            _integrity_loop(base, offsets, lengths, keys, index32, False, out)
        return 0
    try:
        index32 = key_index
    except (TypeError, ValueError, BufferError):
        try:
            index64 = key_index
        except (TypeError, ValueError, BufferError):
            raise TypeError(
                "key_index must be a 1-D C-contiguous int32 or int64 array, "
                f"got {_describe(key_index)}"
            ) from None
        _check_key_index(index64, count, key_count)
        with nogil:
            _integrity_loop(base, offsets, lengths, keys, index64, True, out)
        return 0
    _check_key_index(index32, count, key_count)
    with nogil:
        _integrity_loop(base, offsets, lengths, keys, index32, True, out)
    return 0


cdef tuple _key_tuple(object keys, object key_index):
    cdef tuple key_list
    cdef Py_ssize_t k
    if isinstance(keys, IntegrityKey):
        return (keys,)
    if isinstance(keys, (str, bytes, bytearray, memoryview)):
        raise TypeError(
            "keys must be an IntegrityKey or a sequence of them, got "
            f"{type(keys).__name__}; wrap the key bytes with IntegrityKey(key)"
        )
    try:
        key_list = tuple(keys)
    except TypeError:
        raise TypeError(
            "keys must be an IntegrityKey or a sequence of them, got "
            f"{type(keys).__name__}"
        ) from None
    if not key_list:
        raise ValueError("keys is empty; pass at least one IntegrityKey")
    for k in range(len(key_list)):
        if not isinstance(key_list[k], IntegrityKey):
            raise TypeError(
                f"keys[{k}] must be an IntegrityKey, got {type(key_list[k]).__name__}"
            )
    if key_index is None:
        raise ValueError(
            "key_index is required with a sequence of keys; pass an int32 array "
            "with one key number (or -1 to skip) per datagram"
        )
    return key_list


def check_integrity_into(buffer, offsets, lengths, keys, key_index,
                         uint8_t[::1] out not None):
    """Write whether each datagram is framed STUN whose integrity verifies.

    ``keys`` is one ``IntegrityKey`` or a sequence of them. With a
    sequence, ``key_index`` (int32 or int64, one entry per datagram)
    selects the key of each datagram, and -1 skips the datagram (False).
    With a single key, ``key_index`` may be None. Returns the number of
    datagrams.
    """
    cdef const uint8_t[::1] data = _buffer_view(buffer)
    cdef const uint8_t *base = _base(data)
    cdef const int64_t[::1] offsets64, lengths64
    cdef const int32_t[::1] offsets32, lengths32
    cdef bint wide = True
    cdef Py_ssize_t count, key_count, k
    cdef tuple key_list
    cdef const rice_hmac_key *single
    cdef const rice_hmac_key **pointers = &single

    # int64 is the fast path; int32 costs one failed buffer acquisition.
    try:
        offsets64 = offsets
        lengths64 = lengths
    except (TypeError, ValueError, BufferError):
        wide = False
    if not wide:
        try:
            offsets32 = offsets
            lengths32 = lengths
        except (TypeError, ValueError, BufferError):
            raise _index_error(offsets, lengths) from None

    key_list = _key_tuple(keys, key_index)
    key_count = len(key_list)
    single = &(<IntegrityKey>key_list[0]).c_key

    if wide:
        _check_bounds(offsets64, lengths64, data.shape[0])
        count = offsets64.shape[0]
    else:
        _check_bounds(offsets32, lengths32, data.shape[0])
        count = offsets32.shape[0]
    _check_out(out.shape[0], count, "out")

    if key_count > 1:
        pointers = <const rice_hmac_key **>malloc(
            key_count * sizeof(const rice_hmac_key *)
        )
        if pointers == NULL:
            raise MemoryError()
        for k in range(key_count):
            pointers[k] = &(<IntegrityKey>key_list[k]).c_key
    try:
        if wide:
            _integrity_run(base, offsets64, lengths64, pointers, key_count,
                           key_index, out)
        else:
            _integrity_run(base, offsets32, lengths32, pointers, key_count,
                           key_index, out)
    finally:
        if pointers != &single:
            free(pointers)
    return count
