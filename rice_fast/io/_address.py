"""Text forms of ``(host, port)`` addresses and host name resolution."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

__all__ = ["Address", "format_address", "parse_address", "resolve_address"]

Address = tuple[str, int]


def bound_address(sock: socket.socket) -> Address:
    """Return the ``(host, port)`` a socket is bound to, without IPv6 extras."""
    host, port = sock.getsockname()[:2]
    return (host, port)


def format_address(address: Address) -> str:
    """Format ``(host, port)`` as ``host:port``, or ``[host]:port`` for IPv6."""
    host, port = address[0], address[1]
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def parse_address(text: str, *, default_port: int | None = None) -> Address:
    """Parse ``HOST:PORT``, ``[IPV6]:PORT`` or a bare IPv6 address with a port.

    ``default_port`` is used when the text has no port; without it, a
    missing port raises ``ValueError``, as does a port outside 0 to 65535.
    """
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"invalid address {text!r}: missing ']'")
        host = text[1:end]
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"invalid address {text!r}: expected ':' after ']'")
        port_text = rest[1:] if rest else ""
    elif text.count(":") > 1:
        # A bare IPv6 address: only "[::1]:3478" can carry a port.
        host = text
        port_text = ""
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError(f"invalid address {text!r}: the host is empty")
    if not port_text:
        if default_port is None:
            raise ValueError(
                f"invalid address {text!r}: missing port, use HOST:PORT or [IPV6]:PORT"
            )
        return (host, default_port)
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(
            f"invalid address {text!r}: port {port_text!r} is not a number"
        ) from None
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid address {text!r}: port {port} is not in 0..65535")
    return (host, port)


def _literal_family(host: str) -> socket.AddressFamily | None:
    try:
        parsed = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return socket.AF_INET6 if parsed.version == 6 else socket.AF_INET


async def resolve_address(
    address: Address, *, ipv6: bool = False, socktype: int = socket.SOCK_DGRAM
) -> tuple[socket.AddressFamily, Address]:
    """Resolve ``address`` to a numeric address and its address family.

    A literal IP address is returned as it is. A host name resolves to its
    first IPv4 address, or its first IPv6 address when ``ipv6`` is true.
    Raises ``ValueError`` when ``ipv6`` contradicts a literal address and
    ``OSError`` when the name does not resolve.
    """
    host, port = address[0], address[1]
    wanted = socket.AF_INET6 if ipv6 else socket.AF_INET
    family = _literal_family(host)
    if family is not None:
        if ipv6 and family != socket.AF_INET6:
            raise ValueError(f"{host} is an IPv4 address but IPv6 was requested")
        return family, (host, port)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, family=wanted, type=socktype)
    if not infos:
        raise OSError(f"host name {host!r} did not resolve")
    info = infos[0]
    return info[0], (str(info[4][0]), int(info[4][1]))
