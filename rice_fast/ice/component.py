"""Component: one transport flow of a stream, with its sockets and selected pair.

A component owns the sockets the caller gives it, the local candidates
gathered from them, and once ICE selects a pair, the path that
``Component.send`` frames application data for.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from rice_fast.ice._checks import canonical
from rice_fast.ice._paths import LocalSocket
from rice_fast.ice.candidate import Candidate, TcpType
from rice_fast.ice.errors import IceError
from rice_fast.ice.events import CandidatePair, ComponentState
from rice_fast.stun.transport import Address, Transmit, TransportType

if TYPE_CHECKING:
    from rice_fast.ice._checks import PairRecord
    from rice_fast.ice._consent import SelectedPath
    from rice_fast.ice.stream import Stream

__all__ = ["Component", "IceUsageError", "NotConnectedError"]

_log = logging.getLogger(__name__)

# RFC 6544 §4.5: active TCP candidates are signalled with port 9 (discard).
ACTIVE_TCP_PORT = 9


class IceUsageError(IceError, ValueError):
    """An Agent, Stream or Component call that is invalid in the current state.

    The message names the value or state and what to do instead.
    """


class NotConnectedError(IceUsageError):
    """``Component.send`` without a selected pair (none yet, failed or closed)."""


class Component:
    """One component of a stream: sockets, local candidates, selected pair.

    Created by ``Stream.add_component``. Give it sockets with
    ``add_local_socket`` before or during gathering, then read its state
    from the agent's events. ``send`` works once a pair is selected.
    """

    def __init__(self, stream: Stream, component_id: int) -> None:
        self._stream = stream
        self._id = component_id
        self._state = ComponentState.NEW
        self._sockets: list[LocalSocket] = []
        self._candidates: list[Candidate] = []
        self._gathering_started = False
        self._gathering_pending = 0
        self._gathering_complete = False
        self._selected: SelectedPath | None = None
        self._nominating: PairRecord | None = None
        self._first_valid_at: float | None = None
        self._other_preference = 8191

    # Properties.

    @property
    def id(self) -> int:
        """The component id, counted from 1 within the stream."""
        return self._id

    @property
    def stream_id(self) -> int:
        """The id of the stream this component belongs to."""
        return self._stream.id

    @property
    def state(self) -> ComponentState:
        """The current connection state."""
        return self._state

    @property
    def local_candidates(self) -> tuple[Candidate, ...]:
        """The candidates gathered so far, in gathering order (no prflx)."""
        return tuple(self._candidates)

    @property
    def selected_pair(self) -> CandidatePair | None:
        """The pair data goes out on, or None."""
        selected = self._selected
        if selected is None or selected.lost:
            return None
        return selected.pair

    @property
    def gathering_complete(self) -> bool:
        """Whether every gathering task of this component ended."""
        return self._gathering_complete

    # Sockets.

    def add_local_socket(
        self,
        transport: TransportType,
        address: Address,
        tcp_type: TcpType | None = None,
        *,
        local_preference: int | None = None,
    ) -> Candidate:
        """Register a socket of this component and return its host candidate.

        UDP: ``address`` is the bound socket's address. TCP: pass
        ``TcpType.PASSIVE`` with the listening socket's address,
        ``TcpType.SIMULTANEOUS_OPEN`` with the address of a bound socket
        that both listens and connects, or ``TcpType.ACTIVE`` with the
        local IP address the agent may open connections from (the port is
        ignored and written as 9). Data from the socket goes to
        ``Agent.handle_data`` with this address as ``local``.

        ``local_preference`` (0 to 65535 for UDP, 0 to 8191 for TCP as the
        RFC 6544 ``other-pref``) ranks this address against the others of
        the component; by default each new address ranks below the one
        before. Gathering starts at once when the stream is gathering.

        Raises ``IceUsageError`` for an address that is not an IP literal,
        a TCP socket without ``tcp_type``, a UDP one with it, a duplicate,
        or a component whose gathering already completed.
        """
        return self._stream._agent._session.add_local_socket(
            self, transport, address, tcp_type, local_preference
        )

    # Data.

    def send(self, data: bytes, now: float) -> Transmit:
        """Frame ``data`` for the selected pair and return what to send.

        Over UDP the Transmit carries ``data`` itself; through a TURN
        server it is ChannelData when a channel is bound, else a Send
        indication; over TCP it has the RFC 4571 length prefix. For a TCP
        connection or a TURN server over TCP or TLS, bytes the agent had
        queued for the same connection are put in front, so the returned
        Transmit is the whole stream segment, in order.

        Raises ``NotConnectedError`` when no pair is selected, after
        consent was lost, or once the agent is closed.
        """
        selected = self._selected
        if selected is None or selected.lost or self._stream._agent.closed:
            raise NotConnectedError(
                f"component {self._id} of stream {self.stream_id} has no selected "
                "pair; wait for SelectedPair"
            )
        return self._stream._agent._send_data(self, selected, data, now)

    # Internals used by the agent.

    def _current_selection(self) -> SelectedPath | None:
        """Return the live selected path of the current ICE generation, or None."""
        selected = self._selected
        if selected is None or selected.lost:
            return None
        if selected.generation != self._stream._generation:
            return None
        return selected

    def _set_state(self, state: ComponentState) -> bool:
        if state is self._state:
            return False
        self._state = state
        return True

    def _next_local_preference(self, transport: TransportType) -> int:
        """Hand out decreasing local preferences by address (RFC 8445 §5.1.2.1)."""
        preference = self._other_preference
        self._other_preference = max(0, preference - 1)
        if transport is TransportType.UDP:
            return 0xFFFF - (8191 - preference)
        return preference


def check_socket_address(
    transport: TransportType, address: Address, tcp_type: TcpType | None
) -> Address:
    """Validate a socket address and return it in canonical form."""
    try:
        host, port = address
        ipaddress.ip_address(host)
    except (TypeError, ValueError):
        raise IceUsageError(
            f"socket address {address!r} is not an (IP address, port) pair"
        ) from None
    if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise IceUsageError(f"socket port {port!r} is not in 0..65535")
    if transport is TransportType.UDP:
        if tcp_type is not None:
            raise IceUsageError(f"tcp_type {tcp_type} given for a UDP socket")
        if port == 0:
            raise IceUsageError("a UDP socket address needs its bound port, not 0")
    elif transport is TransportType.TCP:
        if tcp_type is None:
            raise IceUsageError(
                "a TCP socket needs tcp_type: TcpType.PASSIVE, ACTIVE or "
                "SIMULTANEOUS_OPEN"
            )
        if tcp_type is TcpType.ACTIVE:
            port = ACTIVE_TCP_PORT
        elif port == 0:
            raise IceUsageError("a passive TCP socket address needs its port, not 0")
    else:
        raise IceUsageError(
            f"transport {transport} is not UDP or TCP; TLS is never a candidate "
            "transport"
        )
    return canonical((host, port))
