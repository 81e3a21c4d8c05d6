"""The asyncio datagram protocol under the UDP drivers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from rice_fast.io._address import Address, format_address
from rice_fast.io._tcp import sockname

__all__ = ["DatagramProtocol"]

logger = logging.getLogger(__name__)


class DatagramProtocol(asyncio.DatagramProtocol):
    """A UDP socket that hands each datagram to ``on_datagram(data, source)``.

    ``on_closed(reason)`` is called once when the socket closes, with None
    for a close that the owner asked for. ``on_error(exc)`` receives the
    socket errors that asyncio reports through ``error_received``, such as
    ``ConnectionRefusedError`` after an ICMP port unreachable. Linux reports
    those only on a connected socket.
    """

    def __init__(
        self,
        on_datagram: Callable[[bytes, Address], None],
        on_closed: Callable[[str | None], None] | None = None,
        *,
        on_error: Callable[[OSError], None] | None = None,
    ) -> None:
        self._on_datagram = on_datagram
        self._on_closed = on_closed
        self._on_error = on_error
        self.transport: asyncio.DatagramTransport | None = None
        self.local_address: Address = ("", 0)
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector datagram transport does not subclass
        # asyncio.DatagramTransport, so no isinstance check here.
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.local_address = sockname(self.transport.get_extra_info("sockname"))

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self._on_datagram(data, sockname(addr))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable and the like) and failed sends.
        logger.debug("UDP socket %s: %s", format_address(self.local_address), exc)
        if self._on_error is not None and isinstance(exc, OSError):
            self._on_error(exc)

    def sendto(self, data: bytes, destination: Address | None) -> None:
        """Send one datagram, unless the socket is closing.

        ``destination`` is None on a connected socket, which sends to its
        remote address.
        """
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, destination)

    def close(self) -> None:
        """Close the socket."""
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self._on_closed is not None:
            self._on_closed(None if exc is None else f"the socket failed: {exc}")
