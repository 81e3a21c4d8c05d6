"""``StunClient``: a ``StunAgent`` on one UDP socket or one TCP connection."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from types import TracebackType

from rice_fast.io._address import Address, format_address
from rice_fast.io._driver import AgentDriver, MessageHandler, method_name
from rice_fast.io._tcp import StreamProtocol
from rice_fast.io._udp import DatagramProtocol
from rice_fast.io.errors import StunConnectionError, StunTimeoutError
from rice_fast.stun.agent import StunAgent, StunConfig
from rice_fast.stun.credentials import LongTermCredentials, ShortTermCredentials
from rice_fast.stun.events import TransactionSucceeded
from rice_fast.stun.transport import Transmit, TransportType

__all__ = ["StunClient"]

logger = logging.getLogger(__name__)


class StunClient:
    """A STUN client: one ``StunAgent`` driven over one socket.

    Open it with ``await StunClient.open_udp(...)`` or ``await
    StunClient.open_tcp(...)`` and close it with ``close()`` (or use it as
    an async context manager). A UDP client sends to any destination; a
    TCP client sends only to the server it connected to. ``agent`` is the
    underlying sans-IO agent, for its statistics.
    """

    def __init__(
        self,
        transport: TransportType,
        driver: AgentDriver,
        local_address: Address,
        remote_address: Address | None,
        endpoint: DatagramProtocol | StreamProtocol,
    ) -> None:
        self.transport = transport
        self.local_address = local_address
        self.remote_address = remote_address
        self._driver = driver
        self._endpoint = endpoint
        self._closed = asyncio.get_running_loop().create_future()

    @property
    def agent(self) -> StunAgent:
        """The sans-IO agent this client drives."""
        return self._driver.agent

    @property
    def driver(self) -> AgentDriver:
        """The driver that runs the agent's timer and transmits."""
        return self._driver

    @classmethod
    async def open_udp(
        cls,
        local_address: Address,
        *,
        config: StunConfig | None = None,
        software: str | None = None,
        on_message: MessageHandler | None = None,
    ) -> StunClient:
        """Bind a UDP socket to ``local_address`` and start an agent on it.

        Port 0 binds an ephemeral port. Raises ``StunConnectionError`` when
        the socket cannot be bound.
        """
        loop = asyncio.get_running_loop()
        holder: list[StunClient] = []

        def on_datagram(data: bytes, source: Address) -> None:
            if holder:
                holder[0]._driver.handle_data(data, source)

        def on_closed(reason: str | None) -> None:
            if holder:
                holder[0]._on_closed(reason)

        try:
            _, protocol = await loop.create_datagram_endpoint(
                lambda: DatagramProtocol(on_datagram, on_closed),
                local_addr=local_address,
            )
        except OSError as exc:
            raise StunConnectionError(
                f"cannot bind a UDP socket to {format_address(local_address)}: {exc}",
                transport="udp",
            ) from exc
        bound = protocol.local_address
        agent = StunAgent(TransportType.UDP, bound, config=config, software=software)

        def send(transmit: Transmit) -> None:
            protocol.sendto(transmit.data, transmit.destination)

        driver = AgentDriver(agent, send, transport_name="udp", on_message=on_message)
        client = cls(TransportType.UDP, driver, bound, None, protocol)
        holder.append(client)
        logger.debug("STUN client on udp %s", format_address(bound))
        return client

    @classmethod
    async def open_tcp(
        cls,
        server: Address,
        *,
        local_address: Address | None = None,
        config: StunConfig | None = None,
        software: str | None = None,
        on_message: MessageHandler | None = None,
        connect_timeout: float | None = None,
    ) -> StunClient:
        """Connect to ``server`` over TCP and start an agent on the connection.

        ``server`` must be a numeric address. Raises ``StunConnectionError``
        when the connection fails and ``StunTimeoutError`` when it takes
        longer than ``connect_timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        holder: list[StunClient] = []

        def on_frame(protocol: StreamProtocol, data: bytes) -> None:
            if holder:
                holder[0]._driver.handle_data(data, protocol.remote_address)

        def on_closed(protocol: StreamProtocol, reason: str | None) -> None:
            if holder:
                holder[0]._on_closed(reason)

        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        try:
            async with asyncio.timeout(connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: StreamProtocol(on_frame, on_closed),
                    server[0],
                    server[1],
                    family=family,
                    local_addr=local_address,
                )
        except TimeoutError:
            raise StunTimeoutError(
                server, transport="tcp", method="TCP connect", timeout=connect_timeout
            ) from None
        except OSError as exc:
            raise StunConnectionError(
                f"cannot connect to STUN server {format_address(server)} over tcp: "
                f"{exc.strerror or exc}",
                server=server,
                transport="tcp",
            ) from exc
        agent = StunAgent(
            TransportType.TCP, protocol.local_address, config=config, software=software
        )

        def send(transmit: Transmit) -> None:
            if transmit.destination != protocol.remote_address:
                logger.debug(
                    "dropping a message for %s: this TCP connection goes to %s",
                    format_address(transmit.destination),
                    format_address(protocol.remote_address),
                )
                return
            protocol.write(transmit.data)

        driver = AgentDriver(agent, send, transport_name="tcp", on_message=on_message)
        client = cls(
            TransportType.TCP,
            driver,
            protocol.local_address,
            protocol.remote_address,
            protocol,
        )
        holder.append(client)
        logger.debug(
            "STUN client on tcp %s -> %s",
            format_address(protocol.local_address),
            format_address(protocol.remote_address),
        )
        return client

    async def request(
        self,
        method: int,
        destination: Address | None = None,
        *,
        attributes: Sequence[object] = (),
        credentials: ShortTermCredentials | LongTermCredentials | None = None,
        fingerprint: bool = True,
        timeout: float | None = None,
    ) -> TransactionSucceeded:
        """Send a request and wait for its success response.

        ``destination`` defaults to the connected server (TCP) and is
        required over UDP. ``timeout`` bounds the wait in seconds; without
        it the agent's retransmission schedule decides. Raises
        ``StunErrorResponse``, ``StunTimeoutError`` or
        ``StunConnectionError``.
        """
        if destination is None:
            if self.remote_address is None:
                raise ValueError("destination is required for a UDP STUN client")
            destination = self.remote_address
        future = self._driver.request(
            method,
            destination,
            attributes=attributes,
            credentials=credentials,
            fingerprint=fingerprint,
        )
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError as exc:
            if isinstance(exc, StunTimeoutError):
                raise
            raise StunTimeoutError(
                destination,
                transport=self.transport.value,
                method=method_name(method),
                timeout=timeout,
            ) from None

    def send_indication(
        self,
        method: int,
        destination: Address | None = None,
        *,
        attributes: Sequence[object] = (),
    ) -> None:
        """Send an indication to ``destination`` (the server over TCP)."""
        if destination is None:
            if self.remote_address is None:
                raise ValueError("destination is required for a UDP STUN client")
            destination = self.remote_address
        self._driver.send_indication(method, destination, attributes=attributes)

    def close(self) -> None:
        """Close the socket and fail the transactions still pending."""
        self._driver.close()
        self._endpoint.close()

    async def wait_closed(self) -> None:
        """Wait until the socket is closed."""
        await asyncio.shield(self._closed)

    async def __aenter__(self) -> StunClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()

    def _on_closed(self, reason: str | None) -> None:
        if reason is not None:
            logger.debug(
                "STUN client %s %s closed: %s",
                self.transport.value,
                format_address(self.local_address),
                reason,
            )
        if reason is None and self.transport is TransportType.TCP:
            reason = "the server closed the TCP connection"
        self._driver.close(reason)
        if not self._closed.done():
            self._closed.set_result(None)
