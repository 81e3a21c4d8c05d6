"""Values and events that the ICE ``Agent`` hands its caller.

Every event is a frozen, slotted dataclass deriving from ``IceEvent`` and
comes out of ``Agent.poll``. Streams and components are named by their
ids: a stream id is the value of ``Stream.id`` and component ids count
from 1 within their stream (1 for RTP, 2 for RTCP when not muxed).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rice_fast.ice.candidate import Candidate
from rice_fast.stun.transport import Address, TransportType

__all__ = [
    "ComponentState",
    "CandidatePair",
    "CandidatePairState",
    "IceEvent",
    "GatheredCandidate",
    "GatheringComplete",
    "ComponentStateChange",
    "SelectedPair",
    "AllocateSocket",
    "RemoveSocket",
    "DataReceived",
    "ConsentLost",
    "Closed",
]


class ComponentState(enum.Enum):
    """The connection state of one component.

    NEW until its checks start, CONNECTING while checks run, CONNECTED
    once a pair is selected, and FAILED when every check failed or consent
    was lost (RFC 7675). An ICE restart takes a FAILED component back to
    CONNECTING; a CONNECTED one stays CONNECTED on its old pair until a
    new pair is selected.
    """

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"


class CandidatePairState(enum.Enum):
    """The state of a candidate pair in a check list (RFC 8445 §6.1.2.6)."""

    FROZEN = "frozen"
    WAITING = "waiting"
    IN_PROGRESS = "in-progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CandidatePair:
    """A local and a remote candidate of the same component and transport.

    ``local`` is a local candidate with its ``base_address`` set: a host,
    peer-reflexive or relayed candidate. Data for the pair leaves from
    the base (or through the TURN server for a relayed candidate) and goes
    to ``remote.address``.
    """

    local: Candidate
    remote: Candidate


@dataclass(frozen=True, slots=True)
class IceEvent:
    """Base class of the events that ``Agent.poll`` returns."""


@dataclass(frozen=True, slots=True)
class GatheredCandidate(IceEvent):
    """A new local candidate to signal to the peer (trickle it, or collect it).

    Peer-reflexive local candidates are never reported, because RFC 8445
    §7.2.5.3.1 states that they are not signalled.
    """

    stream_id: int
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class GatheringComplete(IceEvent):
    """Gathering for one component ended: every server responded or timed out.

    A trickle agent signals end-of-candidates once every component of the
    stream reported this; a non-trickle agent sends its offer or answer.
    """

    stream_id: int
    component_id: int


@dataclass(frozen=True, slots=True)
class ComponentStateChange(IceEvent):
    """A component moved to ``state``."""

    stream_id: int
    component_id: int
    state: ComponentState


@dataclass(frozen=True, slots=True)
class SelectedPair(IceEvent):
    """The pair that ``Component.send`` uses from now on.

    Reported when the first pair is selected and again whenever the
    selection changes: renomination, a higher-priority nomination under
    aggressive nomination, or the end of an ICE restart.
    """

    stream_id: int
    component_id: int
    pair: CandidatePair


@dataclass(frozen=True, slots=True)
class AllocateSocket(IceEvent):
    """Open a TCP connection from ``source`` to ``destination`` and report it.

    Used for RFC 6544 active TCP candidates and for TURN servers reached
    over TCP or TLS (the TLS session runs inside the agent, so the socket
    is plain TCP either way). ``source`` is ``(local IP, 0)``: bind to that
    address on any port. Report the result with ``Agent.socket_allocated``,
    passing the connection's local address, or None when it failed.
    """

    stream_id: int
    component_id: int
    transport: TransportType
    source: Address
    destination: Address


@dataclass(frozen=True, slots=True)
class RemoveSocket(IceEvent):
    """Close the TCP connection between ``source`` and ``destination``.

    Reported for connections the agent asked for with ``AllocateSocket``
    once no candidate pair or TURN allocation uses them, and on close.
    """

    stream_id: int
    component_id: int
    transport: TransportType
    source: Address
    destination: Address


@dataclass(frozen=True, slots=True)
class DataReceived(IceEvent):
    """Application data that arrived on a validated pair of a component.

    ``Agent.handle_data`` returns this directly for a UDP datagram, with
    ``data`` the very object passed in. Data that came over a TCP
    connection (one read can hold several RFC 4571 frames) or through a
    TURN server over TCP or TLS is reported by ``Agent.poll`` instead.
    """

    stream_id: int
    component_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ConsentLost(IceEvent):
    """No consent response on the selected pair for 30 s (RFC 7675 §5.1).

    The agent stopped sending on ``pair``; a ``ComponentStateChange`` to
    FAILED follows.
    """

    stream_id: int
    component_id: int
    pair: CandidatePair


@dataclass(frozen=True, slots=True)
class Closed(IceEvent):
    """``Agent.close`` finished: TURN allocations are deleted or timed out.

    ``Agent.poll`` returns None afterwards.
    """
