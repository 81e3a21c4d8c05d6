"""ChannelData framing (RFC 8656 §12) and the STUN/ChannelData stream deframer.

A ChannelData message is a 4-byte header (channel number, payload length)
and the payload. Over UDP nothing follows the payload, or padding that the
receiver ignores; over TCP and TLS the sender pads the message to a multiple
of 4 bytes with zeros and the receiver consumes the padding too, so a
13-byte payload forwards 13 bytes but consumes 16 (RFC 8656 §12.5).
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t
from libc.string cimport memcpy, memmove, memset

from rice_fast.stun._codec cimport (
    STUN_HEADER_SIZE,
    STUN_MAGIC_COOKIE,
    rice_load16,
    rice_load32,
    rice_store16,
)

import numpy as np

from rice_fast.turn.errors import ChannelDataError, FramingError

# RFC 8656 §12 has clients bind 0x4000..0x4FFF; RFC 5766 allowed up to
# 0x7FFF and its clients (coturn's among them) still use that range, so a
# relay must accept and send it.
MIN_CHANNEL = 0x4000
MAX_CHANNEL = 0x4FFF
MAX_LEGACY_CHANNEL = 0x7FFF

FRAME_STUN = 1
FRAME_CHANNEL_DATA = 2


cdef inline int _check_channel(int channel) except -1:
    if channel < 0x4000 or channel > 0x7FFF:
        raise ChannelDataError(
            f"channel number 0x{channel:x} is outside 0x4000..0x7fff", 0
        )
    return 0


cdef inline Py_ssize_t _padded(Py_ssize_t length) noexcept nogil:
    return (length + 3) & ~3


def encode_channel_data(int channel, payload, bint stream=False):
    """Return a ChannelData message for ``channel`` carrying ``payload``.

    With ``stream`` true the message is padded with zeros to a multiple of
    4 bytes, as TCP and TLS require. Raises ``ChannelDataError`` for a
    channel outside 0x4000..0x7fff or a payload over 65535 bytes.
    """
    cdef const uint8_t *src
    cdef Py_ssize_t n
    cdef const uint8_t[::1] view
    _check_channel(channel)
    if PyBytes_CheckExact(payload):
        src = <const uint8_t *>PyBytes_AS_STRING(payload)
        n = PyBytes_GET_SIZE(payload)
    else:
        view = memoryview(payload).cast("B")
        n = view.shape[0]
        src = &view[0] if n else NULL
    if n > 0xFFFF:
        raise ChannelDataError(f"payload of {n} bytes exceeds 65535", 2)
    cdef Py_ssize_t total = 4 + (_padded(n) if stream else n)
    cdef object out = PyBytes_FromStringAndSize(NULL, total)
    cdef uint8_t *dst = <uint8_t *>PyBytes_AS_STRING(out)
    rice_store16(dst, <uint16_t>channel)
    rice_store16(dst + 2, <uint16_t>n)
    if n:
        memcpy(dst + 4, src, n)
    if total > 4 + n:
        memset(dst + 4 + n, 0, total - 4 - n)
    return out


def encode_channel_data_into(buffer, Py_ssize_t offset, int channel, payload,
                             bint stream=False):
    """Write a ChannelData message into ``buffer`` at ``offset``.

    Returns the number of bytes written. Raises ``ChannelDataError`` when it
    does not fit or the channel or payload is invalid.
    """
    cdef uint8_t[::1] out = memoryview(buffer).cast("B")
    cdef const uint8_t[::1] data = memoryview(payload).cast("B")
    cdef Py_ssize_t n = data.shape[0]
    _check_channel(channel)
    if n > 0xFFFF:
        raise ChannelDataError(f"payload of {n} bytes exceeds 65535", 2)
    cdef Py_ssize_t total = 4 + (_padded(n) if stream else n)
    if offset < 0 or offset + total > out.shape[0]:
        raise ChannelDataError(
            f"{total} bytes at offset {offset} do not fit in a buffer of "
            f"{out.shape[0]} bytes",
            0,
        )
    rice_store16(&out[offset], <uint16_t>channel)
    rice_store16(&out[offset + 2], <uint16_t>n)
    if n:
        memcpy(&out[offset + 4], &data[0], n)
    if total > 4 + n:
        memset(&out[offset + 4 + n], 0, total - 4 - n)
    return total


cdef inline int _channel_error(const uint8_t *p, Py_ssize_t length,
                               Py_ssize_t *where) noexcept nogil:
    """Return 0 for a valid ChannelData message, else a reason code."""
    if length < 4:
        where[0] = length
        return 1
    if (p[0] & 0xC0) != 0x40:
        where[0] = 0
        return 2
    if rice_load16(p + 2) > length - 4:
        where[0] = 2
        return 4
    return 0


cdef const char *_CHANNEL_REASONS[5]
_CHANNEL_REASONS[0] = b"valid"
_CHANNEL_REASONS[1] = b"ChannelData is shorter than its 4-byte header"
_CHANNEL_REASONS[2] = b"the first two bits are not 01"
_CHANNEL_REASONS[3] = b"unused"
_CHANNEL_REASONS[4] = b"length field exceeds the data"


def decode_channel_data(data):
    """Decode a ChannelData message into ``(channel, payload)``.

    ``payload`` is a memoryview of ``data``: nothing is copied. Bytes after
    the payload (UDP padding) are ignored. Raises ``ChannelDataError``.
    """
    cdef Py_buffer view
    cdef Py_ssize_t where = 0
    cdef int code
    cdef uint16_t channel, length
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        code = _channel_error(<const uint8_t *>view.buf, view.len, &where)
        if code:
            raise ChannelDataError(_CHANNEL_REASONS[code].decode("ascii"), where)
        channel = rice_load16(<const uint8_t *>view.buf)
        length = rice_load16(<const uint8_t *>view.buf + 2)
    finally:
        PyBuffer_Release(&view)
    return channel, memoryview(data)[4:4 + length]


def channel_data_payload(data):
    """Return ``(channel, payload bytes)`` of a ChannelData message.

    Copies the payload into new ``bytes``; faster than ``decode_channel_data``
    for small payloads taken from ``bytes``. Raises ``ChannelDataError``.
    """
    cdef const uint8_t *p
    cdef Py_ssize_t n
    cdef Py_ssize_t where = 0
    cdef int code
    cdef const uint8_t[::1] view
    if PyBytes_CheckExact(data):
        p = <const uint8_t *>PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
    else:
        view = memoryview(data).cast("B")
        n = view.shape[0]
        if n < 4:
            raise ChannelDataError(_CHANNEL_REASONS[1].decode("ascii"), n)
        p = &view[0]
    code = _channel_error(p, n, &where)
    if code:
        raise ChannelDataError(_CHANNEL_REASONS[code].decode("ascii"), where)
    return rice_load16(p), PyBytes_FromStringAndSize(
        <const char *>p + 4, rice_load16(p + 2)
    )


def is_channel_data(data):
    """Return whether ``data`` is a valid ChannelData message."""
    cdef Py_ssize_t where = 0
    cdef const uint8_t[::1] view
    if PyBytes_CheckExact(data):
        return _channel_error(<const uint8_t *>PyBytes_AS_STRING(data),
                              PyBytes_GET_SIZE(data), &where) == 0
    view = memoryview(data).cast("B")
    if view.shape[0] < 4:
        return False
    return _channel_error(&view[0], view.shape[0], &where) == 0


@cython.boundscheck(True)
cdef int _check_batch(const uint8_t[::1] buffer, const int64_t[::1] offsets,
                      const int64_t[::1] lengths) except -1:
    cdef Py_ssize_t i
    cdef Py_ssize_t size = buffer.shape[0]
    if offsets.shape[0] != lengths.shape[0]:
        raise ValueError(
            f"offsets has {offsets.shape[0]} entries but lengths has "
            f"{lengths.shape[0]}"
        )
    for i in range(offsets.shape[0]):
        if offsets[i] < 0 or lengths[i] < 0 or offsets[i] + lengths[i] > size:
            raise ValueError(
                f"datagram {i} (offset {offsets[i]}, length {lengths[i]}) "
                f"lies outside the {size}-byte buffer"
            )
    return 0


def decode_channel_data_batch(const uint8_t[::1] buffer,
                              const int64_t[::1] offsets,
                              const int64_t[::1] lengths):
    """Decode many ChannelData datagrams in one call.

    ``buffer`` is a uint8 array holding the datagrams and ``offsets`` and
    ``lengths`` int64 arrays locating each one. Returns four arrays:
    channel (uint16, 0 when invalid), payload offset into ``buffer``
    (int64), payload length (int32) and validity (bool). Raises
    ``ValueError`` when an entry lies outside ``buffer``.
    """
    _check_batch(buffer, offsets, lengths)
    cdef Py_ssize_t n = offsets.shape[0]
    channels_array = np.zeros(n, dtype=np.uint16)
    payload_offsets_array = np.full(n, -1, dtype=np.int64)
    payload_lengths_array = np.zeros(n, dtype=np.int32)
    valid_array = np.zeros(n, dtype=np.bool_)
    cdef uint16_t[::1] channels = channels_array
    cdef int64_t[::1] payload_offsets = payload_offsets_array
    cdef int32_t[::1] payload_lengths = payload_lengths_array
    cdef uint8_t[::1] valid = valid_array.view(np.uint8)
    cdef Py_ssize_t i, where
    cdef const uint8_t *base = &buffer[0] if buffer.shape[0] else NULL
    cdef const uint8_t *p
    with nogil:
        for i in range(n):
            p = base + offsets[i]
            if _channel_error(p, lengths[i], &where) == 0:
                channels[i] = rice_load16(p)
                payload_offsets[i] = offsets[i] + 4
                payload_lengths[i] = rice_load16(p + 2)
                valid[i] = 1
    return channels_array, payload_offsets_array, payload_lengths_array, valid_array


def encode_channel_data_batch(const uint16_t[::1] channels,
                              const uint8_t[::1] payloads,
                              const int64_t[::1] offsets,
                              const int64_t[::1] lengths,
                              bint stream=False):
    """Encode many payloads as ChannelData messages into one new buffer.

    ``payloads`` holds the payloads located by ``offsets`` and ``lengths``;
    ``channels`` gives each one's channel. Returns ``(buffer, offsets,
    lengths)`` locating each encoded message in the new uint8 buffer.
    """
    _check_batch(payloads, offsets, lengths)
    cdef Py_ssize_t n = offsets.shape[0]
    cdef Py_ssize_t i
    cdef Py_ssize_t total = 0
    if channels.shape[0] != n:
        raise ValueError(f"channels has {channels.shape[0]} entries, expected {n}")
    for i in range(n):
        if channels[i] < 0x4000 or channels[i] > 0x7FFF:
            raise ChannelDataError(
                f"channel number 0x{channels[i]:x} of entry {i} is outside "
                "0x4000..0x7fff",
                0,
            )
        if lengths[i] > 0xFFFF:
            raise ChannelDataError(
                f"payload {i} of {lengths[i]} bytes exceeds 65535", 2
            )
        total += 4 + (_padded(lengths[i]) if stream else lengths[i])
    out_array = np.zeros(total, dtype=np.uint8)
    out_offsets_array = np.empty(n, dtype=np.int64)
    out_lengths_array = np.empty(n, dtype=np.int64)
    cdef uint8_t[::1] out = out_array
    cdef int64_t[::1] out_offsets = out_offsets_array
    cdef int64_t[::1] out_lengths = out_lengths_array
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t size
    cdef uint8_t *dst = &out[0] if total else NULL
    cdef const uint8_t *src = &payloads[0] if payloads.shape[0] else NULL
    with nogil:
        for i in range(n):
            size = 4 + (_padded(lengths[i]) if stream else lengths[i])
            rice_store16(dst + pos, channels[i])
            rice_store16(dst + pos + 2, <uint16_t>lengths[i])
            if lengths[i]:
                memcpy(dst + pos + 4, src + offsets[i], lengths[i])
            out_offsets[i] = pos
            out_lengths[i] = size
            pos += size
    return out_array, out_offsets_array, out_lengths_array


@cython.final
cdef class StreamDeframer:
    """Split a TCP or TLS byte stream into STUN and ChannelData frames.

    Call ``feed(data)`` with each chunk read, then ``next_frame()`` until it
    returns None. Each frame is ``(kind, frame_bytes)`` with kind
    ``FRAME_STUN`` or ``FRAME_CHANNEL_DATA``; ChannelData frames exclude
    their stream padding. Bytes at a frame start that are neither raise
    ``FramingError`` from ``next_frame``, and every later call raises it
    again, because a stream cannot be resynchronised.
    """

    cdef uint8_t *_buf
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _start
    cdef Py_ssize_t _end
    cdef object _error
    cdef readonly Py_ssize_t frames
    cdef readonly Py_ssize_t bytes_received

    def __cinit__(self):
        self._cap = 4096
        self._buf = <uint8_t *>PyMem_Malloc(self._cap)
        if self._buf == NULL:
            raise MemoryError()
        self._start = 0
        self._end = 0
        self._error = None

    def __dealloc__(self):
        PyMem_Free(self._buf)

    @property
    def buffered(self):
        """Bytes received but not yet returned as a frame."""
        return self._end - self._start

    @property
    def error(self):
        """The ``FramingError`` that stopped the stream, or None."""
        return self._error

    def feed(self, data):
        """Append bytes read from the stream."""
        cdef const uint8_t[::1] view = memoryview(data).cast("B")
        cdef Py_ssize_t n = view.shape[0]
        cdef Py_ssize_t need
        cdef Py_ssize_t cap
        cdef uint8_t *grown
        if n == 0:
            return
        self.bytes_received += n
        if self._start and self._end + n > self._cap:
            memmove(self._buf, self._buf + self._start, self._end - self._start)
            self._end -= self._start
            self._start = 0
        need = self._end + n
        if need > self._cap:
            cap = self._cap
            while cap < need:
                cap *= 2
            grown = <uint8_t *>PyMem_Malloc(cap)
            if grown == NULL:
                raise MemoryError()
            memcpy(grown, self._buf, self._end)
            PyMem_Free(self._buf)
            self._buf = grown
            self._cap = cap
        memcpy(self._buf + self._end, &view[0], n)
        self._end += n

    def next_frame(self):
        """Return the next complete ``(kind, frame)``, or None for more data."""
        if self._error is not None:
            raise self._error
        cdef Py_ssize_t avail = self._end - self._start
        cdef const uint8_t *p = self._buf + self._start
        cdef Py_ssize_t size
        cdef Py_ssize_t consumed
        cdef int kind
        if avail < 4:
            return None
        if (p[0] & 0xC0) == 0x00:
            if avail < STUN_HEADER_SIZE:
                return None
            if rice_load32(p + 4) != STUN_MAGIC_COOKIE:
                self._error = FramingError(
                    "stream frame starts like STUN but has no magic cookie",
                    self.bytes_received - avail + 4,
                )
                raise self._error
            size = STUN_HEADER_SIZE + <Py_ssize_t>rice_load16(p + 2)
            consumed = size
            kind = FRAME_STUN
        elif (p[0] & 0xC0) == 0x40:
            size = 4 + <Py_ssize_t>rice_load16(p + 2)
            consumed = _padded(size)
            kind = FRAME_CHANNEL_DATA
        else:
            self._error = FramingError(
                f"stream frame starts with 0x{p[0]:02x}, neither STUN nor "
                "ChannelData",
                self.bytes_received - avail,
            )
            raise self._error
        if avail < consumed:
            return None
        frame = PyBytes_FromStringAndSize(<const char *>p, size)
        self._start += consumed
        if self._start == self._end:
            self._start = 0
            self._end = 0
        self.frames += 1
        return kind, frame

    def take_buffered(self):
        """Remove and return the bytes not yet returned as a frame.

        For a connection that stops being framed, such as an RFC 6062 data
        connection after its ConnectionBind, whose later bytes are raw.
        """
        cdef object rest = PyBytes_FromStringAndSize(
            <const char *>self._buf + self._start, self._end - self._start
        )
        self._start = 0
        self._end = 0
        return rest

    def frames_from(self, data):
        """Feed ``data`` and return every frame now complete, as a list."""
        self.feed(data)
        result = []
        while True:
            frame = self.next_frame()
            if frame is None:
                return result
            result.append(frame)
