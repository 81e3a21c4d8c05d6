"""STUN message framing on a byte stream (TCP), and the asyncio protocols.

RFC 8489 sends STUN over TCP with no framing of its own: messages follow
each other, and a receiver finds each message's end from the 16-bit
length in its 20-byte header.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable

from rice_fast.io._address import Address, format_address
from rice_fast.stun import HEADER_SIZE, MAGIC_COOKIE

__all__ = ["StreamProtocol", "StunFramingError", "StunStreamDeframer", "sockname"]

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("!HHI")


class StunFramingError(ValueError):
    """Stream bytes that cannot start a STUN message.

    ``reason`` describes the problem and ``offset`` is the byte offset in
    the stream where the offending message starts.
    """

    reason: str
    offset: int

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"invalid STUN stream at byte {offset}: {reason}")
        self.reason = reason
        self.offset = offset


class StunStreamDeframer:
    """Split a TCP byte stream into whole STUN messages.

    ``feed`` returns the messages completed by the new bytes; a partial
    message stays buffered until the rest arrives. A header that cannot be
    STUN (top two bits set, wrong magic cookie, length not a multiple of
    4) raises ``StunFramingError``, after which the stream cannot be
    resynchronised and the connection should be closed.
    """

    __slots__ = ("_buffer", "_consumed")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._consumed = 0

    @property
    def buffered(self) -> int:
        """The number of bytes of an incomplete message kept for later."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data`` and return every message it completes, in order."""
        self._buffer += data
        frames: list[bytes] = []
        buffer = self._buffer
        start = 0
        while True:
            available = len(buffer) - start
            if available >= 1 and buffer[start] & 0xC0:
                raise StunFramingError(
                    f"first byte 0x{buffer[start]:02x} has the top two bits set",
                    self._consumed + start,
                )
            if available < HEADER_SIZE:
                break
            _, length, cookie = _HEADER.unpack_from(buffer, start)
            if cookie != MAGIC_COOKIE:
                raise StunFramingError(
                    f"magic cookie is 0x{cookie:08x}, expected 0x{MAGIC_COOKIE:08x}",
                    self._consumed + start,
                )
            if length & 3:
                raise StunFramingError(
                    f"message length {length} is not a multiple of 4",
                    self._consumed + start,
                )
            end = start + HEADER_SIZE + length
            if end > len(buffer):
                break
            frames.append(bytes(buffer[start:end]))
            start = end
        if start:
            del buffer[:start]
            self._consumed += start
        return frames


def sockname(address: object) -> Address:
    """Return the ``(host, port)`` part of a socket module address."""
    if not isinstance(address, tuple) or len(address) < 2:
        raise ValueError(f"expected an IP socket address, got {address!r}")
    return (str(address[0]), int(address[1]))


class StreamProtocol(asyncio.Protocol):
    """One TCP connection carrying STUN messages.

    ``on_message(protocol, data)`` receives each whole message and
    ``on_closed(protocol, reason)`` is called once when the connection
    ends, with None for a clean close by either side. Bytes that cannot be
    STUN close the connection and are logged at ``framing_log_level``.
    """

    def __init__(
        self,
        on_message: Callable[[StreamProtocol, bytes], None],
        on_closed: Callable[[StreamProtocol, str | None], None],
        on_connected: Callable[[StreamProtocol], None] | None = None,
        *,
        framing_log_level: int = logging.WARNING,
    ) -> None:
        self._on_message = on_message
        self._on_closed = on_closed
        self._on_connected = on_connected
        self._deframer = StunStreamDeframer()
        self.transport: asyncio.Transport | None = None
        self.local_address: Address = ("", 0)
        self.remote_address: Address = ("", 0)
        self._close_reason: str | None = None
        self._framing_log_level = framing_log_level
        self.framing_errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.local_address = sockname(transport.get_extra_info("sockname"))
        self.remote_address = sockname(transport.get_extra_info("peername"))
        if self._on_connected is not None:
            self._on_connected(self)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._deframer.feed(data)
        except StunFramingError as exc:
            self.framing_errors += 1
            logger.log(
                self._framing_log_level,
                "closing the TCP connection with %s (local address %s): it sent "
                "data that is not STUN (%s)",
                format_address(self.remote_address),
                format_address(self.local_address),
                exc,
            )
            self.close(
                f"{format_address(self.remote_address)} sent data over TCP that "
                f"is not STUN ({exc.reason})"
            )
            return
        for frame in frames:
            if self.transport is None or self.transport.is_closing():
                return
            self._on_message(self, frame)

    def write(self, data: bytes) -> None:
        """Send one message, unless the connection is closing."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self, reason: str | None = None) -> None:
        """Close the connection; ``reason`` is reported to ``on_closed``."""
        if self._close_reason is None:
            self._close_reason = reason
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        reason = self._close_reason
        if reason is None and exc is not None:
            reason = f"the connection failed: {exc}"
        if self._deframer.buffered and reason is None:
            reason = (
                f"the connection closed inside a message "
                f"({self._deframer.buffered} bytes buffered)"
            )
        self._on_closed(self, reason)
