"""``StunClient``: a ``StunAgent`` on one UDP socket or one TCP connection."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Sequence
from types import TracebackType

from rice_fast.io._address import Address, format_address
from rice_fast.io._driver import AgentDriver, MessageHandler, method_name
from rice_fast.io._tcp import StreamProtocol, sockname
from rice_fast.io._udp import DatagramProtocol
from rice_fast.io.errors import StunConnectionError, StunTimeoutError
from rice_fast.stun.agent import StunAgent, StunConfig
from rice_fast.stun.credentials import LongTermCredentials, ShortTermCredentials
from rice_fast.stun.events import TransactionSucceeded
from rice_fast.stun.transport import Transmit, TransportType

__all__ = ["StunClient", "check_server_address"]

logger = logging.getLogger(__name__)


def check_server_address(address: Address, role: str = "STUN server") -> None:
    """Raise unless ``address`` is a numeric address a request can go to.

    ``role`` names the address in the message. Port 0 and the unspecified
    addresses 0.0.0.0 and :: raise ``ValueError``, and so does a host that
    is not an IP address literal. A value that is not a ``(str, int)``
    tuple raises ``TypeError``.
    """
    if (
        not isinstance(address, tuple)
        or len(address) != 2
        or not isinstance(address[0], str)
        or isinstance(address[1], bool)
        or not isinstance(address[1], int)
    ):
        raise TypeError(f"{role} address must be a (host, port) tuple, got {address!r}")
    host, port = address
    if not 1 <= port <= 65535:
        raise ValueError(
            f"{role} port must be 1 to 65535, got {port} in {format_address(address)}"
        )
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{role} host {host!r} is not an IP address; resolve it first"
        ) from None
    if ip.is_unspecified:
        raise ValueError(
            f"{role} address {host} is unspecified and names no host; give the "
            "address the server listens on, such as 127.0.0.1 or ::1"
        )


class StunClient:
    """A STUN client: one ``StunAgent`` driven over one socket.

    Open it with ``await StunClient.open_udp(...)`` or ``await
    StunClient.open_tcp(...)`` and close it with ``close()`` (or use it as
    an async context manager). A UDP client sends to any destination
    unless it was opened with ``remote_address``, and a TCP client sends
    only to the server it connected to. ``agent`` is the underlying
    sans-IO agent, for its statistics.
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
        local_address: Address | None,
        *,
        remote_address: Address | None = None,
        config: StunConfig | None = None,
        software: str | None = None,
        on_message: MessageHandler | None = None,
    ) -> StunClient:
        """Bind a UDP socket to ``local_address`` and start an agent on it.

        Port 0 binds an ephemeral port. With ``remote_address`` the socket
        is connected to that server: it sends only there, and an ICMP port
        unreachable (or another socket error) fails the pending requests
        at once with ``StunConnectionError`` instead of letting them time
        out. ``local_address`` may then be None, for the address of the
        route to the server. Raises ``StunConnectionError`` when the socket
        cannot be bound or connected, and ``ValueError`` for a
        ``remote_address`` with port 0 or an unspecified IP address.
        """
        if remote_address is not None:
            check_server_address(remote_address)
        elif local_address is None:
            raise ValueError("open_udp needs a local_address or a remote_address")
        loop = asyncio.get_running_loop()
        holder: list[StunClient] = []

        def on_datagram(data: bytes, source: Address) -> None:
            if holder:
                holder[0]._driver.handle_data(data, source)

        def on_closed(reason: str | None) -> None:
            if holder:
                holder[0]._on_closed(reason)

        def on_error(exc: OSError) -> None:
            if holder:
                holder[0]._on_socket_error(exc)

        family = socket.AF_UNSPEC
        if remote_address is not None:
            family = socket.AF_INET6 if ":" in remote_address[0] else socket.AF_INET
        try:
            _, protocol = await loop.create_datagram_endpoint(
                lambda: DatagramProtocol(on_datagram, on_closed, on_error=on_error),
                local_addr=local_address,
                remote_addr=remote_address,
                family=family,
            )
        except OSError as exc:
            if remote_address is None:
                assert local_address is not None
                what = f"bind a UDP socket to {format_address(local_address)}"
            else:
                what = f"open a UDP socket to {format_address(remote_address)}"
            raise StunConnectionError(
                f"cannot {what}: {exc.strerror or exc}",
                server=remote_address,
                transport="udp",
            ) from exc
        bound = protocol.local_address
        connected: Address | None = None
        if remote_address is not None:
            assert protocol.transport is not None
            connected = sockname(protocol.transport.get_extra_info("peername"))
        agent = StunAgent(TransportType.UDP, bound, config=config, software=software)

        def send(transmit: Transmit) -> None:
            if connected is None:
                protocol.sendto(transmit.data, transmit.destination)
            elif transmit.destination == connected:
                protocol.sendto(transmit.data, None)
            else:
                logger.debug(
                    "dropping a message for %s: this UDP socket is connected to %s",
                    format_address(transmit.destination),
                    format_address(connected),
                )

        driver = AgentDriver(agent, send, transport_name="udp", on_message=on_message)
        client = cls(TransportType.UDP, driver, bound, connected, protocol)
        holder.append(client)
        if connected is None:
            logger.debug("STUN client on udp %s", format_address(bound))
        else:
            logger.debug(
                "STUN client on udp %s -> %s",
                format_address(bound),
                format_address(connected),
            )
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
        when the connection fails, ``StunTimeoutError`` when it takes
        longer than ``connect_timeout`` seconds, and ``ValueError`` for a
        server with port 0 or an unspecified IP address.
        """
        check_server_address(server)
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
                    # The error reaches the caller through the pending
                    # requests, so bytes that are not STUN are logged at
                    # DEBUG only.
                    lambda: StreamProtocol(
                        on_frame, on_closed, framing_log_level=logging.DEBUG
                    ),
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

        ``destination`` defaults to the connected server (TCP, or UDP
        opened with ``remote_address``) and is required otherwise.
        ``timeout`` bounds the wait in seconds; without it the agent's
        retransmission schedule decides. Raises ``StunErrorResponse``,
        ``StunTimeoutError``, ``StunConnectionError`` or ``StunIOError``
        (a success response that the agent rejected), and ``ValueError``
        for a destination with port 0 or an unspecified IP address.
        """
        if destination is None:
            if self.remote_address is None:
                raise ValueError("destination is required for a UDP STUN client")
            destination = self.remote_address
        check_server_address(destination)
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
        """Send an indication to ``destination`` (by default the connected server).

        Raises ``ValueError`` as ``request`` does for an invalid destination.
        """
        if destination is None:
            if self.remote_address is None:
                raise ValueError("destination is required for a UDP STUN client")
            destination = self.remote_address
        check_server_address(destination)
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

    def _on_socket_error(self, exc: OSError) -> None:
        # NOTE: an unconnected UDP socket cannot tell which destination an
        # ICMP error is about, so its requests still wait for their
        # timeout. Linux reports such errors only on connected sockets.
        if self.transport is not TransportType.UDP or self.remote_address is None:
            return
        if isinstance(exc, ConnectionRefusedError):
            detail = "nothing listens on that UDP port (ICMP port unreachable)"
        else:
            detail = f"the UDP socket reported an error: {exc.strerror or exc}"
        self._driver.fail_pending(detail, self.remote_address)

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
