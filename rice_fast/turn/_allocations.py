"""The TURN server's tables: allocations, permissions, channels, timers.

Every record with a lifetime is a ``Timed`` object with an absolute
``expires`` time. ``TimerQueue`` keeps one heap entry per record at a
time: a refresh that extends ``expires`` changes nothing in the heap, and
when the old entry comes due the record is pushed again at its new time.
Only a refresh that shortens the lifetime pushes at once. Removing a
record clears ``alive``, and its heap entry is skipped when it comes up.
The forwarding paths compare ``expires`` with ``now`` themselves, so
nothing is relayed past an expiry even before the timer runs.

``AllocationTable`` owns the lookups (by 5-tuple, by relayed address, by
connection id) and emits the table events of ``server_events`` as it
changes them.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from typing import Final

from rice_fast.stun._codec import IntegrityKey
from rice_fast.stun._constants import AddressFamily, TransportProtocol
from rice_fast.stun.transport import Address, TransportType
from rice_fast.turn._server_config import Counters
from rice_fast.turn.server_events import (
    AllocationDeleted,
    AllocationExpired,
    ChannelBound,
    ChannelExpired,
    ClosePeerConnection,
    FiveTuple,
    PermissionExpired,
    PermissionInstalled,
    RelaySocketReleased,
    TurnServerEvent,
)

__all__ = [
    "FiveTupleKey",
    "Allocation",
    "AllocationTable",
    "Channel",
    "ChannelCooloff",
    "ConnectionState",
    "PeerConnection",
    "PendingAllocation",
    "Permission",
    "Reservation",
    "Signer",
    "Timed",
    "TimerQueue",
    "family_of",
]

_log = logging.getLogger("rice_fast.turn.server")

FiveTupleKey = tuple[TransportType, Address, Address]
"""A ``FiveTuple`` as a plain tuple, the form the lookups use."""

_FAMILY_ORDER: Final = (AddressFamily.IPV4, AddressFamily.IPV6)


def family_of(host: str) -> AddressFamily:
    """Return the address family of a canonical IP address text."""
    return AddressFamily.IPV6 if ":" in host else AddressFamily.IPV4


class Timed:
    """A record with an absolute expiry time, scheduled in a ``TimerQueue``."""

    __slots__ = ("alive", "expires", "scheduled")

    def __init__(self, expires: float) -> None:
        self.expires = expires
        self.scheduled: float | None = None
        self.alive = True


class TimerQueue:
    """A heap of ``Timed`` records ordered by expiry, with lazy updates."""

    __slots__ = ("_heap", "_sequence")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timed]] = []
        self._sequence = itertools.count()

    def schedule(self, item: Timed) -> None:
        """Make sure ``item`` comes due no later than its ``expires``."""
        if item.scheduled is None or item.expires < item.scheduled:
            item.scheduled = item.expires
            heapq.heappush(self._heap, (item.expires, next(self._sequence), item))

    def next_deadline(self) -> float | None:
        """The earliest time an entry comes due, or None when empty.

        Entries of removed records are discarded first. The entry returned
        may still belong to a record whose lifetime was extended, which
        only makes the caller wake up early.
        """
        heap = self._heap
        while heap:
            deadline, _, item = heap[0]
            if item.alive and item.scheduled == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> Timed | None:
        """Remove and return a live record whose ``expires`` is at or before now."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, item = heapq.heappop(heap)
            if not item.alive or item.scheduled != deadline:
                continue
            item.scheduled = None
            if item.expires > now:
                self.schedule(item)
                continue
            return item
        return None

    def __len__(self) -> int:
        return len(self._heap)


class Signer:
    """The key that signs responses to one authenticated client."""

    __slots__ = ("key", "sha256", "username")

    def __init__(self, username: str, key: IntegrityKey, sha256: bool) -> None:
        self.username = username
        self.key = key
        self.sha256 = sha256


class Permission(Timed):
    """Permission for one peer IP address on one relayed address."""

    __slots__ = ("allocation", "ip", "relayed")

    def __init__(
        self, allocation: Allocation, ip: str, relayed: Address, expires: float
    ) -> None:
        super().__init__(expires)
        self.allocation = allocation
        self.ip = ip
        self.relayed = relayed


class Channel(Timed):
    """A channel number bound to one peer transport address."""

    __slots__ = ("allocation", "number", "peer", "relayed")

    def __init__(
        self,
        allocation: Allocation,
        number: int,
        peer: Address,
        relayed: Address,
        expires: float,
    ) -> None:
        super().__init__(expires)
        self.allocation = allocation
        self.number = number
        self.peer = peer
        self.relayed = relayed


class ChannelCooloff(Timed):
    """An expired binding whose number and peer may not be rebound elsewhere."""

    __slots__ = ("allocation", "number", "peer")

    def __init__(
        self, allocation: Allocation, number: int, peer: Address, expires: float
    ) -> None:
        super().__init__(expires)
        self.allocation = allocation
        self.number = number
        self.peer = peer


class ConnectionState(enum.Enum):
    """The state of an RFC 6062 peer connection."""

    CONNECTING = "connecting"
    AWAITING_BIND = "awaiting_bind"
    BOUND = "bound"


class PeerConnection(Timed):
    """A TCP connection between a relayed address and a peer (RFC 6062).

    ``transaction_id`` and ``signer`` belong to the Connect request, which
    gets its response once the connection attempt ends. Both are None for
    a connection the peer opened.
    """

    __slots__ = (
        "allocation",
        "connection_id",
        "data_connection",
        "peer",
        "signer",
        "state",
        "transaction_id",
    )

    def __init__(
        self,
        allocation: Allocation,
        connection_id: int,
        peer: Address,
        state: ConnectionState,
        expires: float,
    ) -> None:
        super().__init__(expires)
        self.allocation = allocation
        self.connection_id = connection_id
        self.peer = peer
        self.state = state
        self.transaction_id: bytes | None = None
        self.signer: Signer | None = None
        self.data_connection: FiveTupleKey | None = None


class Reservation(Timed):
    """A relay port held for a later Allocate with RESERVATION-TOKEN."""

    __slots__ = ("address", "token")

    def __init__(self, token: bytes, address: Address, expires: float) -> None:
        super().__init__(expires)
        self.token = token
        self.address = address


class Allocation(Timed):
    """One allocation: its 5-tuple, owner, relayed addresses and tables."""

    __slots__ = (
        "allocation_id",
        "channel_peers",
        "channels",
        "connected_peers",
        "connections",
        "cooloff_numbers",
        "cooloff_peers",
        "five_tuple",
        "key",
        "permissions",
        "relayed",
        "response",
        "transaction_id",
        "transport",
        "username",
    )

    def __init__(
        self,
        allocation_id: int,
        five_tuple: FiveTuple,
        username: str,
        transport: TransportProtocol,
        relayed: dict[AddressFamily, Address],
        transaction_id: bytes,
        expires: float,
    ) -> None:
        super().__init__(expires)
        self.allocation_id = allocation_id
        self.five_tuple = five_tuple
        self.key: FiveTupleKey = (
            five_tuple.transport,
            five_tuple.local,
            five_tuple.remote,
        )
        self.username = username
        self.transport = transport
        self.relayed = relayed
        self.transaction_id = transaction_id
        self.response = b""
        self.permissions: dict[str, Permission] = {}
        self.channels: dict[int, Channel] = {}
        self.channel_peers: dict[Address, Channel] = {}
        self.cooloff_numbers: dict[int, ChannelCooloff] = {}
        self.cooloff_peers: dict[Address, ChannelCooloff] = {}
        self.connections: dict[int, PeerConnection] = {}
        self.connected_peers: dict[Address, PeerConnection] = {}

    def relayed_addresses(self) -> tuple[Address, ...]:
        """The relayed addresses, IPv4 first."""
        relayed = self.relayed
        return tuple(relayed[f] for f in _FAMILY_ORDER if f in relayed)

    def pending_connections(self) -> int:
        """Peer connections not yet bound to a client data connection."""
        return sum(
            1 for c in self.connections.values() if c.state is not ConnectionState.BOUND
        )


class PendingAllocation(Timed):
    """An Allocate request waiting for the I/O layer to bind relay sockets.

    ``families`` maps each requested family to its request id, and
    ``results`` collects the results: an address, or an error code (440
    for a family the server does not relay, 508 when binding failed).
    """

    __slots__ = (
        "families",
        "five_tuple",
        "key",
        "lifetime",
        "reservation_token",
        "reserve_next",
        "results",
        "signer",
        "transaction_id",
        "transport",
    )

    def __init__(
        self,
        five_tuple: FiveTuple,
        transaction_id: bytes,
        signer: Signer,
        transport: TransportProtocol,
        lifetime: int,
        expires: float,
    ) -> None:
        super().__init__(expires)
        self.five_tuple = five_tuple
        self.key: FiveTupleKey = (
            five_tuple.transport,
            five_tuple.local,
            five_tuple.remote,
        )
        self.transaction_id = transaction_id
        self.signer = signer
        self.transport = transport
        self.lifetime = lifetime
        self.families: dict[AddressFamily, int] = {}
        self.results: dict[AddressFamily, Address | int] = {}
        self.reserve_next = False
        self.reservation_token: bytes | None = None

    def complete(self) -> bool:
        """Whether every requested family has its result."""
        return all(family in self.results for family in self.families)


class AllocationTable:
    """The server's lookups, kept consistent, with events for each change."""

    def __init__(
        self,
        counters: Counters,
        timers: TimerQueue,
        emit: Callable[[TurnServerEvent], None],
    ) -> None:
        self._counters = counters
        self._timers = timers
        self._emit = emit
        self.by_five_tuple: dict[FiveTupleKey, Allocation] = {}
        self.udp_relays: dict[Address, Allocation] = {}
        self.tcp_relays: dict[Address, Allocation] = {}
        self.pending: dict[FiveTupleKey, PendingAllocation] = {}
        self.pending_requests: dict[int, PendingAllocation] = {}
        self.per_user: Counter[str] = Counter()
        self.reservations: dict[bytes, Reservation] = {}
        self.connections: dict[int, PeerConnection] = {}
        self.data_connections: dict[FiveTupleKey, PeerConnection] = {}
        self.pending_connection_count = 0

    # Allocations.

    def add(self, allocation: Allocation) -> None:
        """Enter a new allocation in every lookup and schedule its expiry.

        The quota was counted by ``reserve_quota`` when the request arrived.
        """
        self.by_five_tuple[allocation.key] = allocation
        relays = self._relays(allocation)
        for address in allocation.relayed.values():
            relays[address] = allocation
        self._counters.allocations += 1
        self._counters.allocations_created += 1
        self._timers.schedule(allocation)

    def remove(self, allocation: Allocation, *, expired: bool) -> None:
        """Remove an allocation with everything in it, emitting the events."""
        if not allocation.alive:
            return
        allocation.alive = False
        for channel in list(allocation.channels.values()):
            self._drop_channel(channel)
        for cooloff in allocation.cooloff_numbers.values():
            cooloff.alive = False
        for permission in list(allocation.permissions.values()):
            self._drop_permission(permission)
        for connection in list(allocation.connections.values()):
            self.drop_connection(connection, notify=True)

        del self.by_five_tuple[allocation.key]
        relays = self._relays(allocation)
        for address in allocation.relayed.values():
            relays.pop(address, None)
        self.release_quota(allocation.username)
        self._counters.allocations -= 1

        relayed = allocation.relayed_addresses()
        if expired:
            self._counters.allocations_expired += 1
            self._emit(
                AllocationExpired(
                    allocation.five_tuple,
                    allocation.username,
                    relayed,
                    allocation.allocation_id,
                )
            )
        else:
            self._counters.allocations_deleted += 1
            self._emit(
                AllocationDeleted(
                    allocation.five_tuple,
                    allocation.username,
                    relayed,
                    allocation.allocation_id,
                )
            )
        for address in relayed:
            self._emit(RelaySocketReleased(address, allocation.transport))
        _log.info(
            "allocation %d %s: user %r, client %s %s, relayed %s",
            allocation.allocation_id,
            "expired" if expired else "deleted",
            allocation.username,
            allocation.five_tuple.transport.value,
            allocation.five_tuple.remote,
            list(relayed),
        )

    def reserve_quota(self, username: str) -> None:
        """Count an allocation, pending or created, against its user's quota."""
        self.per_user[username] += 1

    def release_quota(self, username: str) -> None:
        """Undo ``reserve_quota`` when an allocation fails or goes away."""
        self.per_user[username] -= 1
        if self.per_user[username] <= 0:
            del self.per_user[username]

    def remove_family(self, allocation: Allocation, family: AddressFamily) -> None:
        """Release one relayed address of a dual allocation, and its tables."""
        relayed = allocation.relayed.pop(family)
        for channel in list(allocation.channels.values()):
            if channel.relayed == relayed:
                self._drop_channel(channel)
        for permission in list(allocation.permissions.values()):
            if permission.relayed == relayed:
                self._drop_permission(permission)
        self._relays(allocation).pop(relayed, None)
        self._emit(RelaySocketReleased(relayed, allocation.transport))
        _log.info(
            "allocation %d released its %s relayed address %s",
            allocation.allocation_id,
            family.name,
            relayed,
        )

    def _relays(self, allocation: Allocation) -> dict[Address, Allocation]:
        if allocation.transport is TransportProtocol.TCP:
            return self.tcp_relays
        return self.udp_relays

    # Permissions.

    def install_permission(
        self, allocation: Allocation, ip: str, relayed: Address, expires: float
    ) -> None:
        """Create or refresh the permission for ``ip``."""
        permission = allocation.permissions.get(ip)
        if permission is not None:
            permission.expires = expires
            self._timers.schedule(permission)
            return
        permission = Permission(allocation, ip, relayed, expires)
        allocation.permissions[ip] = permission
        self._counters.permissions += 1
        self._timers.schedule(permission)
        self._emit(PermissionInstalled(relayed, ip, allocation.five_tuple))

    def expire_permission(self, permission: Permission) -> None:
        """Remove a permission whose lifetime ended."""
        self._drop_permission(permission)

    def _drop_permission(self, permission: Permission) -> None:
        permission.alive = False
        allocation = permission.allocation
        del allocation.permissions[permission.ip]
        self._counters.permissions -= 1
        self._emit(
            PermissionExpired(permission.relayed, permission.ip, allocation.five_tuple)
        )

    # Channels.

    def channel_conflict(
        self, allocation: Allocation, number: int, peer: Address
    ) -> str | None:
        """Check the RFC 8656 §12.2 binding rules; return why they fail, or None.

        A number may be bound to one peer and a peer to one number. An
        expired binding keeps both for the cool-off time: RFC 8656 §12 has
        the client wait 5 minutes before rebinding either elsewhere, and the
        server enforces that. Binding the same number to the same peer again
        is a refresh and is allowed.
        """
        channel = allocation.channels.get(number)
        if channel is not None and channel.peer != peer:
            return "channel number is bound to another peer"
        channel = allocation.channel_peers.get(peer)
        if channel is not None and channel.number != number:
            return "peer is bound to another channel number"
        cooloff = allocation.cooloff_numbers.get(number)
        if cooloff is not None and cooloff.peer != peer:
            return "channel number was bound to another peer less than 5 min ago"
        cooloff = allocation.cooloff_peers.get(peer)
        if cooloff is not None and cooloff.number != number:
            return "peer was bound to another channel number less than 5 min ago"
        return None

    def bind_channel(
        self,
        allocation: Allocation,
        number: int,
        peer: Address,
        relayed: Address,
        expires: float,
    ) -> None:
        """Create or refresh a channel; call ``channel_conflict`` first."""
        channel = allocation.channels.get(number)
        if channel is not None:
            channel.expires = expires
            self._timers.schedule(channel)
            return
        self._end_cooloff(allocation, number, peer)
        channel = Channel(allocation, number, peer, relayed, expires)
        allocation.channels[number] = channel
        allocation.channel_peers[peer] = channel
        self._counters.channels += 1
        self._timers.schedule(channel)
        self._emit(ChannelBound(allocation.five_tuple, number, peer, relayed))

    def expire_channel(self, channel: Channel, cooloff_until: float) -> None:
        """Remove an expired channel and hold its number and peer in cool-off."""
        self._drop_channel(channel)
        allocation = channel.allocation
        cooloff = ChannelCooloff(
            allocation, channel.number, channel.peer, cooloff_until
        )
        allocation.cooloff_numbers[channel.number] = cooloff
        allocation.cooloff_peers[channel.peer] = cooloff
        self._timers.schedule(cooloff)

    def end_cooloff(self, cooloff: ChannelCooloff) -> None:
        """Forget a cool-off whose time is over."""
        cooloff.alive = False
        allocation = cooloff.allocation
        if allocation.cooloff_numbers.get(cooloff.number) is cooloff:
            del allocation.cooloff_numbers[cooloff.number]
        if allocation.cooloff_peers.get(cooloff.peer) is cooloff:
            del allocation.cooloff_peers[cooloff.peer]

    def _end_cooloff(self, allocation: Allocation, number: int, peer: Address) -> None:
        cooloff = allocation.cooloff_numbers.get(number)
        if cooloff is not None:
            self.end_cooloff(cooloff)
        cooloff = allocation.cooloff_peers.get(peer)
        if cooloff is not None:
            self.end_cooloff(cooloff)

    def _drop_channel(self, channel: Channel) -> None:
        channel.alive = False
        allocation = channel.allocation
        del allocation.channels[channel.number]
        del allocation.channel_peers[channel.peer]
        self._counters.channels -= 1
        self._emit(
            ChannelExpired(
                allocation.five_tuple, channel.number, channel.peer, channel.relayed
            )
        )

    # Reservations.

    def add_reservation(self, reservation: Reservation) -> None:
        """Hold a reserved relay port until it is redeemed or expires."""
        self.reservations[reservation.token] = reservation
        self._timers.schedule(reservation)

    def take_reservation(self, token: bytes, now: float) -> Reservation | None:
        """Remove and return the live reservation for ``token``, if any."""
        reservation = self.reservations.get(token)
        if reservation is None or reservation.expires <= now:
            return None
        del self.reservations[token]
        reservation.alive = False
        return reservation

    def expire_reservation(self, reservation: Reservation) -> None:
        """Give an unused reserved port back to the I/O layer."""
        reservation.alive = False
        self.reservations.pop(reservation.token, None)
        self._emit(RelaySocketReleased(reservation.address, TransportProtocol.UDP))

    # RFC 6062 peer connections.

    def add_connection(self, connection: PeerConnection) -> None:
        """Enter a new peer connection and schedule its timeout."""
        allocation = connection.allocation
        allocation.connections[connection.connection_id] = connection
        allocation.connected_peers[connection.peer] = connection
        self.connections[connection.connection_id] = connection
        self.pending_connection_count += 1
        self._counters.peer_connections += 1
        self._timers.schedule(connection)

    def bind_connection(
        self, connection: PeerConnection, data_connection: FiveTupleKey
    ) -> None:
        """Record that a client data connection now carries ``connection``."""
        connection.state = ConnectionState.BOUND
        connection.data_connection = data_connection
        # Bound connections live as long as their allocation.
        connection.alive = False
        self.data_connections[data_connection] = connection
        self.pending_connection_count -= 1

    def drop_connection(self, connection: PeerConnection, *, notify: bool) -> None:
        """Forget a peer connection, asking the I/O layer to close it if ``notify``."""
        if self.connections.pop(connection.connection_id, None) is None:
            return
        connection.alive = False
        allocation = connection.allocation
        allocation.connections.pop(connection.connection_id, None)
        if allocation.connected_peers.get(connection.peer) is connection:
            del allocation.connected_peers[connection.peer]
        if connection.state is ConnectionState.BOUND:
            assert connection.data_connection is not None
            self.data_connections.pop(connection.data_connection, None)
        else:
            self.pending_connection_count -= 1
        self._counters.peer_connections -= 1
        if notify:
            self._emit(ClosePeerConnection(connection.connection_id))
