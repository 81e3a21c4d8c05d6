"""RFC 4571 framing: a 2-byte length before each packet on a TCP stream.

RFC 6544 §3 carries ICE connectivity checks and application data over TCP
with this framing. ``Rfc4571Deframer`` splits a byte stream back into
packets, across partial reads and several packets in one read.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_FRAME", "FrameTooLargeError", "Rfc4571Deframer", "frame"]

MAX_FRAME: Final = 0xFFFF
"""The largest packet the 16-bit length prefix can describe."""


class FrameTooLargeError(ValueError):
    """A packet longer than 65535 bytes cannot be framed by RFC 4571."""


def frame(data: bytes) -> bytes:
    """Prefix ``data`` with its length as RFC 4571 §2 defines.

    Raises ``FrameTooLargeError`` (a ValueError) for more than 65535 bytes.
    """
    size = len(data)
    if size > MAX_FRAME:
        raise FrameTooLargeError(
            f"a packet of {size} bytes exceeds the RFC 4571 limit of {MAX_FRAME}"
        )
    return size.to_bytes(2, "big") + data


class Rfc4571Deframer:
    """Reassemble RFC 4571 packets from the reads of one TCP connection.

    ``feed`` returns the packets that the read completed, in order, and
    keeps the rest buffered. A zero-length packet is returned as ``b""``.
    """

    __slots__ = ("_buffer", "frames")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames = 0

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete packet waiting for more input."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Consume one read and return the packets it completed."""
        buffer = self._buffer
        if not buffer:
            # Fast path: whole packets in one read, nothing buffered.
            packets = self._split(data)
            if packets is not None:
                return packets
        buffer += data
        packets = []
        offset = 0
        end = len(buffer)
        while end - offset >= 2:
            size = (buffer[offset] << 8) | buffer[offset + 1]
            if end - offset - 2 < size:
                break
            packets.append(bytes(buffer[offset + 2 : offset + 2 + size]))
            offset += 2 + size
        del buffer[:offset]
        self.frames += len(packets)
        return packets

    def _split(self, data: bytes) -> list[bytes] | None:
        """Split ``data`` when it ends on a packet boundary, else return None."""
        packets = []
        offset = 0
        end = len(data)
        while offset < end:
            if end - offset < 2:
                return None
            size = (data[offset] << 8) | data[offset + 1]
            if end - offset - 2 < size:
                return None
            packets.append(data[offset + 2 : offset + 2 + size])
            offset += 2 + size
        self.frames += len(packets)
        return packets
