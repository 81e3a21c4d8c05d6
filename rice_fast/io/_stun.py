"""One-shot STUN Binding requests: ``binding_request`` and ``stun_binding``."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from rice_fast.io._address import Address, format_address, parse_address
from rice_fast.io._address import resolve_address as _resolve
from rice_fast.io._client import StunClient, check_server_address
from rice_fast.io.errors import StunConnectionError, StunIOError, StunTimeoutError
from rice_fast.stun import AttributeType, Method
from rice_fast.stun.agent import StunConfig
from rice_fast.stun.credentials import LongTermCredentials, ShortTermCredentials
from rice_fast.stun.errors import StunParseError
from rice_fast.stun.transport import TransportType

__all__ = ["BindingResult", "binding_request", "stun_binding"]

DEFAULT_PORT = 3478


@dataclass(frozen=True, slots=True)
class BindingResult:
    """The outcome of a successful Binding request.

    ``mapped_address`` is the server-reflexive address and ``local_address``
    the socket's own address. ``rtt`` is the time in seconds from the first
    transmission of the request to its response, so it includes waits for
    retransmissions. After a 401 it counts from the resend. ``software`` is
    the server's SOFTWARE without trailing NUL bytes, and ``server`` the
    numeric address that sent the response. ``legacy`` is true when the
    server sent only the RFC 3489 MAPPED-ADDRESS and no XOR-MAPPED-ADDRESS.
    ``authenticated`` is true when the request was signed and the response
    carried integrity. Short-term credentials sign every request, and
    long-term ones only the resend after the server's 401 challenge, so
    with long-term credentials it is false when the server never asked.
    """

    mapped_address: Address
    rtt: float
    software: str | None
    server: Address
    transport: TransportType
    local_address: Address
    legacy: bool = False
    authenticated: bool = False


async def binding_request(
    server: Address | str,
    *,
    transport: TransportType | str = "udp",
    credentials: ShortTermCredentials | LongTermCredentials | None = None,
    local_address: Address | None = None,
    timeout: float | None = None,
    ipv6: bool = False,
    config: StunConfig | None = None,
    legacy: bool = False,
) -> BindingResult:
    """Send one Binding request to ``server`` and return the mapped address.

    ``server`` is ``(host, port)`` or text such as ``"stun.example:3478"``
    or ``"[::1]:3478"`` (port 3478 when missing). ``transport`` is "udp"
    or "tcp". ``local_address`` defaults to the address the route to the
    server uses, on an ephemeral port. ``timeout`` bounds the whole exchange
    in seconds; without it the agent's retransmission schedule (``config``)
    decides. ``legacy`` leaves out FINGERPRINT, for RFC 3489 servers that
    reject attributes they do not know.

    Raises ``StunTimeoutError`` when no response arrives,
    ``StunErrorResponse`` for an error response, ``StunConnectionError``
    when the socket or connection fails (over UDP also when an ICMP port
    unreachable comes back) and ``StunIOError`` for an invalid response
    or one without a mapped address. All four are ``StunIOError`` or a
    subclass. A server with port 0 or an unspecified IP address, such as
    0.0.0.0, raises ``ValueError``.
    """
    kind = TransportType(transport)
    if kind not in (TransportType.UDP, TransportType.TCP):
        raise ValueError(f"transport must be 'udp' or 'tcp', got {kind.value!r}")
    if isinstance(server, str):
        server = parse_address(server, default_port=DEFAULT_PORT)
    socktype = socket.SOCK_STREAM if kind is TransportType.TCP else socket.SOCK_DGRAM
    try:
        async with asyncio.timeout(timeout):
            try:
                _, numeric = await _resolve(server, ipv6=ipv6, socktype=socktype)
            except OSError as exc:
                raise StunConnectionError(
                    f"cannot resolve STUN server {format_address(server)}: {exc}",
                    server=server,
                    transport=kind.value,
                ) from exc
            check_server_address(numeric)
            return await _exchange(
                kind, numeric, credentials, local_address, config, legacy
            )
    except TimeoutError as exc:
        if isinstance(exc, StunTimeoutError):
            raise
        raise StunTimeoutError(server, transport=kind.value, timeout=timeout) from None


async def _exchange(
    kind: TransportType,
    server: Address,
    credentials: ShortTermCredentials | LongTermCredentials | None,
    local_address: Address | None,
    config: StunConfig | None,
    legacy: bool,
) -> BindingResult:
    if kind is TransportType.TCP:
        client = await StunClient.open_tcp(
            server, local_address=local_address, config=config
        )
    else:
        # A connected socket picks the source address of the route to the
        # server, and receives the ICMP errors that end a request at once.
        client = await StunClient.open_udp(
            local_address, remote_address=server, config=config
        )
    async with client:
        # The destination defaults to the address the socket is connected
        # to, in the spelling the kernel reports for the response source.
        event = await client.request(
            Method.BINDING,
            credentials=credentials,
            fingerprint=not legacy,
        )
    response = event.response
    try:
        mapped = response.xor_mapped_address()
        software = response.software()
    except StunParseError as exc:
        raise StunIOError(
            f"STUN server {format_address(event.remote)} over {kind.value} sent "
            f"an invalid Binding response: {exc}",
            server=event.remote,
            transport=kind.value,
        ) from exc
    if mapped is None:
        raise StunIOError(
            f"the Binding response from STUN server {format_address(event.remote)} "
            f"over {kind.value} has no XOR-MAPPED-ADDRESS or MAPPED-ADDRESS",
            server=event.remote,
            transport=kind.value,
        )
    if software is not None:
        software = software.rstrip("\x00")
    has_xor = response.has(AttributeType.XOR_MAPPED_ADDRESS) or response.has(
        AttributeType.XOR_MAPPED_ADDRESS_OLD
    )
    return BindingResult(
        mapped_address=mapped,
        rtt=event.rtt,
        software=software or None,
        server=event.remote,
        transport=kind,
        local_address=client.local_address,
        legacy=not has_xor,
        # The agent signs a long-term request only after a challenge, and
        # drops a response to a signed request that fails its integrity
        # check, so integrity here means that the credentials were used.
        authenticated=credentials is not None and response.has_integrity,
    )


def stun_binding(
    server: Address | str,
    *,
    transport: TransportType | str = "udp",
    credentials: ShortTermCredentials | LongTermCredentials | None = None,
    local_address: Address | None = None,
    timeout: float | None = None,
    ipv6: bool = False,
    config: StunConfig | None = None,
    legacy: bool = False,
) -> BindingResult:
    """Run ``binding_request`` in a new event loop, for scripts.

    Takes the same arguments and raises the same errors; it cannot be
    called from a running event loop.
    """
    return asyncio.run(
        binding_request(
            server,
            transport=transport,
            credentials=credentials,
            local_address=local_address,
            timeout=timeout,
            ipv6=ipv6,
            config=config,
            legacy=legacy,
        )
    )
