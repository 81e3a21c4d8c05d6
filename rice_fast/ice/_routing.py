"""Input routing, sending and routes of an Agent, as its base class.

``AgentRouting`` is the half of the agent that moves bytes: it sorts
input by its 5-tuple (TURN server, STUN response, STUN request, data),
frames output for the route it takes (UDP, RFC 4571 over TCP, or through a
TurnClient), derives a pair's route from its local candidate, and opens
the TCP connections of RFC 6544 active candidates. ``Agent`` adds the
public API, the poll loop and the timers; the attributes declared here are
set in ``Agent.__init__``.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Final

from rice_fast.ice._checks import CheckLists, PairRecord, Transaction, canonical
from rice_fast.ice._consent import SelectedPath
from rice_fast.ice._framing4571 import frame
from rice_fast.ice._paths import (
    LocalSocket,
    RelayEndpoint,
    Route,
    RouteKind,
    TcpConnection,
)
from rice_fast.ice.candidate import Candidate, CandidateType, TcpType
from rice_fast.ice.component import Component, NotConnectedError
from rice_fast.ice.events import (
    AllocateSocket,
    DataReceived,
    IceEvent,
    RemoveSocket,
)
from rice_fast.stun import MessageBuilder, Method, is_stun, new_transaction_id, parse
from rice_fast.stun._constants import MessageClass, message_type
from rice_fast.stun.agent import StunAgent
from rice_fast.stun.errors import StunParseError
from rice_fast.stun.transport import Address, Transmit, TransportType
from rice_fast.turn._framing import encode_channel_data
from rice_fast.turn.errors import TurnError

if TYPE_CHECKING:
    from rice_fast.ice._conncheck import Checker
    from rice_fast.ice._gathering import Gatherer
    from rice_fast.ice._session import Session
    from rice_fast.ice.stream import Stream

__all__ = ["AgentRouting", "PendingOwner"]

_log = logging.getLogger(__name__)

_SEND_INDICATION: Final = message_type(Method.SEND, MessageClass.INDICATION)

PendingOwner = RelayEndpoint | PairRecord
"""The owner of a pending ``AllocateSocket``: a TURN allocation or a TCP pair."""


class AgentRouting:
    """Input routing, output framing, routes and TCP connections of an agent."""

    _checks: CheckLists
    _checker: Checker
    _gatherer: Gatherer
    _session: Session
    _streams: dict[int, Stream]
    _stats: dict[str, int]
    _udp_sockets: dict[Address, LocalSocket]
    _tcp_listeners: dict[Address, LocalSocket]
    _tcp_active: dict[tuple[int, int, str], LocalSocket]
    _connections: dict[tuple[Address, Address], TcpConnection]
    _pending_sockets: dict[tuple[int, int, Address, Address], PendingOwner]
    _turn_routes: dict[tuple[Address, Address], RelayEndpoint]
    _relays: dict[Address, RelayEndpoint]
    _stun_transactions: dict[bytes, StunAgent]
    _transactions: dict[bytes, Transaction]
    _udp_data: dict[tuple[Address, Address], Component]
    _relay_data: dict[tuple[Address, Address], Component]
    _relay_deliveries: list[DataReceived]
    _transmits: deque[Transmit]
    _events: deque[IceEvent]

    def _finish_transaction(self, txn: Transaction) -> None:
        txn.done = True
        txn.timer_generation += 1
        self._transactions.pop(txn.transaction_id, None)

    # Input.

    def _handle_udp(
        self, local: Address, remote: Address, data: bytes, now: float
    ) -> DataReceived | None:
        relay = self._turn_routes.get((local, remote))
        if relay is not None and relay.turn is not None:
            relay.turn.handle_data(data, remote, now)
            self._gatherer.poll_relay(relay, now)
            return self._take_relay_delivery()
        socket = self._udp_sockets.get(local)
        if socket is None:
            self._count_drop("unknown_socket", remote, "datagram on an unknown socket")
            return None
        if data and data[0] <= 3 and is_stun(data):
            self._handle_stun(Route(RouteKind.UDP, local, remote, local), data, now)
            return None
        component = self._udp_data.get((local, remote))
        if component is None:
            self._count_drop(
                "unroutable_data", remote, "data from an unvalidated address"
            )
            return None
        self._stats["data_received"] += 1
        return DataReceived(component._stream._id, component._id, data)

    def _handle_stream(
        self, local: Address, remote: Address, data: bytes, now: float
    ) -> None:
        key = (local, remote)
        relay = self._turn_routes.get(key)
        if relay is not None and relay.turn is not None:
            relay.turn.handle_data(data, remote, now, local=local)
            self._gatherer.poll_relay(relay, now)
            self._events.extend(self._relay_deliveries)
            self._relay_deliveries.clear()
            return
        connection = self._connections.get(key)
        if connection is None:
            listener = self._tcp_listeners.get(local)
            if listener is None:
                self._count_drop(
                    "unknown_socket", remote, "TCP data on an unknown socket"
                )
                return
            connection = TcpConnection(local, remote, listener, requested=False)
            self._connections[key] = connection
        route = Route(
            RouteKind.TCP,
            local,
            remote,
            connection.socket.address,
            connection=connection,
        )
        component = connection.socket.component
        for packet in connection.deframer.feed(data):
            if packet and packet[0] <= 3 and is_stun(packet):
                self._handle_stun(route, packet, now)
            elif connection.validated:
                self._stats["data_received"] += 1
                self._events.append(
                    DataReceived(component._stream._id, component._id, packet)
                )
            else:
                self._count_drop("unroutable_data", remote, "TCP data before a check")

    def _on_relay_data(
        self, relay: RelayEndpoint, peer: Address, data: bytes, now: float
    ) -> None:
        """Handle a packet a TURN server relayed from ``peer``."""
        relayed = None
        for candidate in relay.candidates:
            relayed = canonical(candidate.address)
            if (":" in relayed[0]) == (":" in peer[0]):
                break
        if relayed is None:
            return
        route = Route(RouteKind.RELAY, relayed, peer, relayed, relay=relay)
        if data and data[0] <= 3 and is_stun(data):
            self._handle_stun(route, data, now)
            return
        component = self._relay_data.get((relayed, peer))
        if component is None:
            self._count_drop("unroutable_data", peer, "relayed data before a check")
            return
        self._stats["data_received"] += 1
        self._relay_deliveries.append(
            DataReceived(component._stream._id, component._id, data)
        )

    def _take_relay_delivery(self) -> DataReceived | None:
        deliveries = self._relay_deliveries
        if not deliveries:
            return None
        first = deliveries[0]
        self._events.extend(deliveries[1:])
        deliveries.clear()
        return first

    def _handle_stun(self, route: Route, data: bytes, now: float) -> None:
        try:
            message = parse(data)
        except StunParseError as exc:
            self._drop("malformed", route, f"malformed STUN: {exc}")
            return
        if message.has_fingerprint and not message.check_fingerprint():
            self._drop("bad_fingerprint", route, "FINGERPRINT does not match")
            return
        if message.is_response and route.kind is RouteKind.UDP:
            stun = self._stun_transactions.get(message.transaction_id)
            if stun is not None:
                self._gatherer.handle_stun(stun, data, route.remote, now)
                return
        if message.method != Method.BINDING:
            self._drop("not_binding", route, f"STUN method {message.method:#x}")
            return
        try:
            if message.is_request:
                self._checker.on_request(route, message, now)
            elif message.is_response:
                self._checker.on_response(route, message, now)
            else:
                self._stats["keepalives_received"] += 1
        except StunParseError as exc:
            self._drop("malformed", route, f"malformed STUN attribute: {exc}")

    # Sending.

    def _send_route(self, route: Route, data: bytes, now: float) -> bool:
        """Queue ``data`` on ``route``; return False when the route is gone."""
        kind = route.kind
        if kind is RouteKind.UDP:
            self._transmits.append(
                Transmit(TransportType.UDP, route.local, route.remote, data)
            )
            return True
        if kind is RouteKind.TCP:
            connection = route.connection
            if connection is None or connection.closed:
                return False
            self._transmits.append(
                Transmit(
                    TransportType.TCP, connection.local, connection.remote, frame(data)
                )
            )
            return True
        relay = route.relay
        if relay is None or relay.turn is None or relay.closed:
            return False
        turn = relay.turn
        peer = route.remote
        try:
            if peer[0] not in relay.permissions:
                turn.create_permission(peer, now)
                relay.permissions.add(peer[0])
            turn.send_to(peer, data, now)
        except TurnError as exc:
            _log.debug("cannot send to %s through TURN: %s", peer, exc)
            return False
        self._drain_turn(relay, now)
        return True

    def _drain_turn(self, relay: RelayEndpoint, now: float) -> None:
        turn = relay.turn
        if turn is None:
            return
        while (transmit := turn.poll_transmit(now)) is not None:
            self._transmits.append(transmit)

    def _send_data(
        self, component: Component, path: SelectedPath, data: bytes, now: float
    ) -> Transmit:
        route = path.route
        path.last_sent = now
        kind = route.kind
        if kind is RouteKind.UDP:
            return Transmit(TransportType.UDP, route.local, route.remote, data)

        if kind is RouteKind.TCP:
            connection = route.connection
            if connection is None or connection.closed:
                raise NotConnectedError("the selected TCP connection is closed")
            return self._stream_transmit(
                TransportType.TCP, connection.local, connection.remote, frame(data)
            )

        relay = route.relay
        turn = None if relay is None else relay.turn
        if relay is None or turn is None or relay.closed or not turn.allocated:
            raise NotConnectedError("the TURN allocation of the selected pair is gone")
        if turn.transport is TransportType.UDP:
            channel = turn.channel_of(route.remote)
            if channel is not None:
                payload = encode_channel_data(channel, data)
            else:
                builder = MessageBuilder(_SEND_INDICATION, new_transaction_id())
                builder.add_xor_peer_address(route.remote[0], route.remote[1])
                builder.add_data(data)
                payload = builder.finish()
            return Transmit(TransportType.UDP, turn.local_address, turn.server, payload)

        # Over TCP and TLS the TurnClient frames (and encrypts) the data.
        try:
            turn.send_to(route.remote, data, now)
        except TurnError as exc:
            raise NotConnectedError(f"cannot send through TURN: {exc}") from None
        self._drain_turn(relay, now)
        return self._stream_transmit(
            turn.transport, turn.local_address, turn.server, b""
        )

    def _stream_transmit(
        self,
        transport: TransportType,
        source: Address,
        destination: Address,
        tail: bytes,
    ) -> Transmit:
        """Return one Transmit: the queued bytes of a connection, then ``tail``."""
        parts = []
        kept: deque[Transmit] = deque()
        for transmit in self._transmits:
            if (
                transmit.transport is not TransportType.UDP
                and transmit.source == source
                and transmit.destination == destination
            ):
                parts.append(transmit.data)
                transport = transmit.transport
            else:
                kept.append(transmit)
        if not parts:
            return Transmit(transport, source, destination, tail)
        self._transmits = kept
        parts.append(tail)
        return Transmit(transport, source, destination, b"".join(parts))

    # Routes.

    def _route_for_pair(self, record: PairRecord) -> Route | None:
        local = record.local
        remote = record.remote.address
        if local.type is CandidateType.RELAYED:
            relay = self._relays.get(record.base)
            if relay is None or relay.closed or relay.turn is None:
                return None
            return Route(RouteKind.RELAY, record.base, remote, record.base, relay=relay)
        if local.transport is TransportType.TCP:
            connection = record.connection
            if connection is None or connection.closed:
                return None
            return Route(
                RouteKind.TCP,
                connection.local,
                connection.remote,
                record.base,
                connection=connection,
            )
        return Route(RouteKind.UDP, record.base, remote, record.base)

    def _component_of_route(self, route: Route) -> Component | None:
        if route.kind is RouteKind.UDP:
            socket = self._udp_sockets.get(route.local)
            return None if socket is None else socket.component
        if route.kind is RouteKind.TCP:
            return (
                None if route.connection is None else route.connection.socket.component
            )
        return None if route.relay is None else route.relay.component

    def _local_candidate_for_route(self, route: Route) -> Candidate | None:
        if route.kind is RouteKind.UDP:
            socket = self._udp_sockets.get(route.local)
            return None if socket is None else socket.candidate
        if route.kind is RouteKind.TCP:
            return (
                None if route.connection is None else route.connection.socket.candidate
            )
        if route.relay is None:
            return None
        for candidate in route.relay.candidates:
            if canonical(candidate.address) == route.local:
                return candidate
        return None

    def _local_index_for_route(self, stream: Stream, route: Route) -> int | None:
        candidate = self._local_candidate_for_route(route)
        if candidate is None:
            return None
        for index, stored in enumerate(self._checks.locals[stream._list_id]):
            if stored is candidate:
                return index
        return None

    def _accept_data(self, route: Route, component: Component) -> None:
        """Accept application data on a route validated in either direction."""
        if route.kind is RouteKind.UDP:
            self._udp_data[(route.local, route.remote)] = component
        elif route.kind is RouteKind.RELAY:
            self._relay_data[(route.local, route.remote)] = component
        elif route.connection is not None:
            route.connection.validated = True

    # TCP connections.

    def _request_connection(self, record: PairRecord, now: float) -> bool:
        """Find or ask for the TCP connection of an active pair (RFC 6544 §7.1)."""
        component = record.stream.component(record.component_id)
        local = record.local
        if local.tcp_type is TcpType.ACTIVE:
            socket = self._tcp_active.get(
                (component.stream_id, component.id, record.base[0])
            )
            source = (record.base[0], 0)
        else:
            socket = self._tcp_listeners.get(record.base)
            source = record.base
        if socket is None:
            return False

        remote = record.remote.address
        for connection in self._connections.values():
            if (
                connection.requested
                and connection.socket is socket
                and connection.remote == remote
                and not connection.closed
            ):
                record.connection = connection
                return True

        key = (component.stream_id, component.id, canonical(source), remote)
        already = key in self._pending_sockets
        self._pending_sockets[key] = record
        record.connecting = True
        if not already:
            self._emit(
                AllocateSocket(
                    component.stream_id, component.id, TransportType.TCP, source, remote
                )
            )
        return True

    def _connection_result(
        self, record: PairRecord, remote: Address, local: Address | None, now: float
    ) -> None:
        record.connecting = False
        live = self._checks.records.get(record.pair_id) is record
        txn = record.transaction
        if local is None:
            if live and txn is not None and not txn.done:
                self._finish_transaction(txn)
                self._checks.mark_failed(record)
                self._checker.on_timeout(txn, now)
            return
        local = canonical(local)
        component = record.stream.component(record.component_id)
        socket = self._tcp_active.get(
            (component.stream_id, component.id, record.base[0])
        )
        if socket is None:
            socket = self._tcp_listeners.get(record.base)
        if socket is None:
            return
        connection = TcpConnection(local, remote, socket, requested=True)
        self._connections[(local, remote)] = connection
        if not live:
            self._emit_remove_socket(component, connection)
            return
        record.connection = connection
        if txn is not None and not txn.done:
            route = self._route_for_pair(record)
            if route is not None:
                self._send_route(route, txn.request, now)
                txn.transmissions += 1

    def _emit_remove_socket(
        self, component: Component, connection: TcpConnection
    ) -> None:
        source = connection.local
        self._emit(
            RemoveSocket(
                component.stream_id,
                component.id,
                TransportType.TCP,
                source,
                connection.remote,
            )
        )

    # Events and drops.

    def _emit(self, event: IceEvent) -> None:
        self._events.append(event)

    def _drop(self, reason: str, route: Route, detail: str) -> None:
        self._count_drop(reason, route.remote, detail)

    def _count_drop(self, reason: str, remote: Address, detail: str) -> None:
        self._stats["dropped_" + reason] += 1
        _log.debug("dropped input from %s: %s", remote, detail)
