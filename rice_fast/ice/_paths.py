"""The agent's sockets, TCP connections and TURN allocations, and routes.

A ``Route`` names the path one message took or will take: a UDP socket
and a remote address, a TCP connection, or a TURN allocation and a peer.
The agent responds to a request on the route it arrived on, and a pair's
checks and data go out on the route derived from its local candidate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rice_fast.ice._framing4571 import Rfc4571Deframer
from rice_fast.ice.candidate import Candidate, TcpType
from rice_fast.stun.agent import StunAgent
from rice_fast.stun.transport import Address, TransportType

if TYPE_CHECKING:
    from rice_fast.ice._gathering import TurnConfig
    from rice_fast.ice.component import Component
    from rice_fast.turn.client import TurnClient

__all__ = ["LocalSocket", "RelayEndpoint", "Route", "RouteKind", "TcpConnection"]


class RouteKind(enum.Enum):
    """The kind of path between the agent and the peer."""

    UDP = "udp"
    TCP = "tcp"
    RELAY = "relay"


@dataclass(slots=True, eq=False)
class LocalSocket:
    """A socket the caller gave a component, and its host candidate.

    For an active TCP candidate there is no socket yet: ``address`` is
    ``(IP, 9)`` as RFC 6544 §4.5 writes it, and each connection gets its
    own port when the caller opens it.
    """

    transport: TransportType
    address: Address
    tcp_type: TcpType | None
    component: Component
    candidate: Candidate
    stun: StunAgent | None = None


@dataclass(slots=True, eq=False)
class TcpConnection:
    """One TCP connection of a TCP candidate, opened by either side.

    ``requested`` marks connections the agent asked for with
    ``AllocateSocket``; those are the ones it reports with ``RemoveSocket``
    when no pair needs them any more.
    """

    local: Address
    remote: Address
    socket: LocalSocket
    requested: bool
    validated: bool = False
    deframer: Rfc4571Deframer = field(default_factory=Rfc4571Deframer)
    closed: bool = False


@dataclass(slots=True, eq=False)
class RelayEndpoint:
    """A TurnClient gathering, and then serving, relayed candidates.

    Over UDP the client shares the component's socket ``socket``; over TCP
    and TLS it owns a connection whose local address is ``local``.
    ``pending`` stays true until the allocation succeeded or failed, which
    is when the component's gathering counts it as done.
    """

    config: TurnConfig
    component: Component
    turn: TurnClient | None
    local: Address | None
    socket: LocalSocket | None
    pending: bool = True
    candidates: list[Candidate] = field(default_factory=list)
    permissions: set[str] = field(default_factory=set)
    closed: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    """The path of one message: kind, local and remote address, and owner.

    ``local`` is the UDP socket address, the TCP connection's local
    address, or the relayed address of a TURN allocation. ``base`` is the
    address of the local candidate the route belongs to.
    """

    kind: RouteKind
    local: Address
    remote: Address
    base: Address
    connection: TcpConnection | None = None
    relay: RelayEndpoint | None = None

    @property
    def transport(self) -> TransportType:
        """The candidate transport: TCP for a TCP connection, else UDP."""
        return TransportType.TCP if self.kind is RouteKind.TCP else TransportType.UDP
