"""The TurnClient's requests: what each one carries and what its outcome does.

Each request kind has a builder (``send_*``) and a handler that receives
the agent's final event for it: ``TransactionSucceeded``,
``TransactionFailed`` (after the agent's own 401 and 438 retries) or
``TransactionTimedOut``. The timers of the allocation, the permissions
and the channels are fired here too, since firing a timer means sending
one of these requests.

Error handling follows RFC 8656. 437 Allocation Mismatch means the server
has no allocation for this 5-tuple, so the client allocates again from a
new local socket. 300 Try Alternate on Allocate moves to the
ALTERNATE-SERVER once (RFC 8489 §10). Other errors are reported as events.
"""

from __future__ import annotations

import enum
import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from rice_fast.stun import AttributeType, ErrorCode, Message, Method
from rice_fast.stun.attributes import (
    AdditionalAddressFamily,
    AddressErrorCode,
    AlternateDomain,
    ChannelNumber,
    ConnectionId,
    DontFragment,
    EvenPort,
    Lifetime,
    RequestedAddressFamily,
    RequestedTransport,
    ReservationToken,
    XorPeerAddress,
    XorRelayedAddress,
)
from rice_fast.stun.errors import StunParseError
from rice_fast.stun.events import StunEvent, TransactionFailed, TransactionSucceeded
from rice_fast.stun.transport import Address, TransportType
from rice_fast.turn import _peer_connections as _peers
from rice_fast.turn._connection import ServerConnection
from rice_fast.turn._options import refresh_delay
from rice_fast.turn._permissions import Channel, Permission
from rice_fast.turn.events import (
    AllocateSocket,
    AllocationCreated,
    AllocationDeleted,
    AllocationFailed,
    AllocationRefreshed,
    ChannelBindFailed,
    ChannelBound,
    ChannelExpired,
    PeerConnectFailed,
    PermissionCreated,
    PermissionExpired,
    PermissionFailed,
    ServerRedirected,
    SocketPurpose,
)

if TYPE_CHECKING:
    from rice_fast.turn.client import TurnClient

__all__ = [
    "AllocationState",
    "ClientState",
    "Kind",
    "Request",
    "fire_timers",
    "handlers",
    "next_deadline",
    "send_allocate",
    "send_refresh",
]

_log = logging.getLogger(__name__)

# RFC 8656 §6: 600 s is the default lifetime, used when a success
# response lacks LIFETIME.
DEFAULT_LIFETIME: Final = 600
# RFC 8656 §7.4: after 437 the client tries three different client
# transport addresses before it gives up on the server.
MAX_REALLOCATIONS: Final = 3
# Wait before resending a refresh that timed out or failed.
RETRY_DELAY: Final = 5.0
# coturn 4.6 implements dual allocations with the codepoints of the draft
# that became RFC 8656 (0x8032 ADDITIONAL-ADDRESS-FAMILY and 0x8033
# ADDRESS-ERROR-CODE) instead of the RFC's 0x8000 and 0x8001. Both are
# comprehension-optional, so the client sends both request attributes and
# reads either error attribute; a server ignores the numbers it does not know.
DRAFT_ADDITIONAL_ADDRESS_FAMILY: Final = 0x8032
DRAFT_ADDRESS_ERROR_CODE: Final = 0x8033


@dataclass(frozen=True, slots=True)
class _RawAttribute:
    """An attribute given by type and value, for numbers outside the registry."""

    TYPE: int
    value: bytes

    def encode(self, transaction_id: bytes) -> bytes:
        return self.value


class ClientState(enum.Enum):
    """Where a TurnClient is in its life."""

    IDLE = "idle"
    ALLOCATING = "allocating"
    ALLOCATED = "allocated"
    WAITING_SOCKET = "waiting for a socket"
    DELETING = "deleting"
    CLOSED = "closed"


class Kind(enum.Enum):
    """What a request in flight is for."""

    ALLOCATE = "Allocate"
    REFRESH = "Refresh"
    DELETE = "Refresh (delete)"
    PERMISSION = "CreatePermission"
    CHANNEL = "ChannelBind"
    CONNECT = "Connect"
    CONNECTION_BIND = "ConnectionBind"


@dataclass(slots=True, eq=False)
class Request:
    """A request in flight: its kind, connection and target object."""

    kind: Kind
    conn: ServerConnection
    target: object


@dataclass(slots=True)
class AllocationState:
    """What the client knows of its allocation and its refresh timer."""

    relayed: tuple[Address, ...] = ()
    mapped: Address | None = None
    lifetime: int = 0
    expires_at: float | None = None
    refresh_at: float | None = None
    refresh_in_flight: bool = False
    created: bool = False
    redirected: bool = False
    reallocations: int = 0
    without_dont_fragment: bool = False
    last_error: tuple[int, str] = field(default=(0, ""))


def handlers(
    client: TurnClient,
) -> dict[Kind, Callable[[Request, StunEvent, float], None]]:
    """Return the outcome handler of each request kind, bound to ``client``."""
    table: dict[Kind, Callable[[TurnClient, Request, StunEvent, float], None]] = {
        Kind.ALLOCATE: _on_allocate,
        Kind.REFRESH: _on_refresh,
        Kind.DELETE: _on_delete,
        Kind.PERMISSION: _on_permission,
        Kind.CHANNEL: _on_channel,
        Kind.CONNECT: _on_connect,
        Kind.CONNECTION_BIND: _on_connection_bind,
    }
    return {kind: functools.partial(handler, client) for kind, handler in table.items()}


def _failure(event: StunEvent, request: Request) -> tuple[int, str]:
    """Return ``(code, reason)`` of a failed or timed-out request."""
    if isinstance(event, TransactionFailed):
        return event.code, event.reason
    return 0, f"{request.kind.value} request to {request.conn.server} timed out"


# Allocate.


def send_allocate(client: TurnClient, now: float) -> None:
    """Send the Allocate request on the control connection."""
    options = client.options
    attributes: list[object] = [RequestedTransport(int(options.relay_transport))]
    if options.address_family is not None:
        attributes.append(RequestedAddressFamily(int(options.address_family)))
    if options.dual_stack:
        attributes.append(AdditionalAddressFamily(2))
        attributes.append(
            _RawAttribute(DRAFT_ADDITIONAL_ADDRESS_FAMILY, b"\x02\x00\x00\x00")
        )
    if options.lifetime is not None:
        attributes.append(Lifetime(options.lifetime))
    if options.dont_fragment and not client.allocation.without_dont_fragment:
        attributes.append(DontFragment())
    if options.even_port is not None:
        attributes.append(EvenPort(options.even_port))
    if options.reservation_token is not None:
        attributes.append(ReservationToken(options.reservation_token))
    client._send_request(
        client._control, Method.ALLOCATE, Kind.ALLOCATE, None, attributes, now
    )


def _on_allocate(
    client: TurnClient, request: Request, event: StunEvent, now: float
) -> None:
    if request.conn is not client._control:
        return
    if isinstance(event, TransactionSucceeded):
        try:
            created = _read_allocation(client, event.response, request.conn)
        except StunParseError as exc:
            client._finish(AllocationFailed(0, f"invalid Allocate response: {exc}"))
            return
        _allocated(client, created, now)
        return
    code, reason = _failure(event, request)
    state = client.allocation
    if code == ErrorCode.TRY_ALTERNATE and isinstance(event, TransactionFailed):
        if _redirect(client, event.response, now):
            return
    elif code == ErrorCode.ALLOCATION_MISMATCH:
        _reallocate(client, "Allocate got 437 Allocation Mismatch")
        return
    elif (
        code == ErrorCode.UNKNOWN_ATTRIBUTE
        and client.options.dont_fragment
        and not state.without_dont_fragment
        and isinstance(event, TransactionFailed)
        and AttributeType.DONT_FRAGMENT in (event.response.unknown_attributes() or [])
    ):
        # RFC 8656 §7.4: a server that does not support DONT-FRAGMENT lists
        # it in the 420 response, and the client may allocate without it.
        state.without_dont_fragment = True
        send_allocate(client, now)
        return
    client._finish(AllocationFailed(code, reason))


def _read_allocation(
    client: TurnClient, response: Message, conn: ServerConnection
) -> AllocationCreated:
    transaction_id = response.transaction_id
    relayed = tuple(
        XorRelayedAddress.decode(value, transaction_id).address
        for value in response.raw_all(AttributeType.XOR_RELAYED_ADDRESS)
    )
    if not relayed:
        raise StunParseError("the success response has no XOR-RELAYED-ADDRESS", 0)
    relayed = tuple(sorted(relayed, key=lambda a: ":" in a[0]))
    lifetime = response.lifetime()
    token = response.raw(AttributeType.RESERVATION_TOKEN)
    address_error = None
    raw_error = response.raw(AttributeType.ADDRESS_ERROR_CODE)
    if raw_error is None:
        raw_error = response.raw(DRAFT_ADDRESS_ERROR_CODE)
    if raw_error is not None:
        decoded = AddressErrorCode.decode(raw_error, transaction_id)
        address_error = (int(decoded.family), decoded.code, decoded.reason)
    return AllocationCreated(
        relayed_addresses=relayed,
        mapped_address=response.xor_mapped_address(),
        lifetime=DEFAULT_LIFETIME if lifetime is None else lifetime,
        local_address=conn.local,
        reservation_token=token if token is not None and len(token) == 8 else None,
        address_error=address_error,
    )


def _allocated(client: TurnClient, created: AllocationCreated, now: float) -> None:
    state = client.allocation
    state.relayed = created.relayed_addresses
    state.mapped = created.mapped_address
    state.created = True
    state.reallocations = 0
    client._state = ClientState.ALLOCATED
    client._stats["allocations"] += 1
    _schedule_refresh(client, created.lifetime, now)
    _log.info(
        "TURN allocation on %s: relayed %s, lifetime %d s",
        client.server,
        ", ".join(map(str, created.relayed_addresses)),
        created.lifetime,
    )
    client._events.append(created)
    client._permissions.schedule_unconfirmed(now)
    client._channels.schedule_unconfirmed(now)
    fire_timers(client, now)


def _redirect(client: TurnClient, response: Message, now: float) -> bool:
    """Follow ALTERNATE-SERVER once; return False when it cannot be followed."""
    state = client.allocation
    try:
        alternate = response.address(AttributeType.ALTERNATE_SERVER)
        domain_raw = response.raw(AttributeType.ALTERNATE_DOMAIN)
        domain = (
            AlternateDomain.decode(domain_raw, response.transaction_id).domain
            if domain_raw is not None
            else None
        )
    except StunParseError:
        return False
    if state.redirected or alternate is None:
        return False
    if (":" in alternate[0]) != (":" in client.server[0]):
        # The socket cannot reach a server of the other family.
        return False
    state.redirected = True
    client._server = alternate
    if domain is not None:
        client._server_hostname = domain
    elif not client._explicit_hostname:
        client._server_hostname = alternate[0]
    client._events.append(ServerRedirected(alternate))
    _log.info("TURN server redirected the allocation to %s", alternate)
    if client.transport is TransportType.UDP:
        old = client._control
        client._connections.pop(old.local, None)
        client._control = client._open_connection(old.local, alternate)
        send_allocate(client, now)
        return True
    client._state = ClientState.WAITING_SOCKET
    client._events.append(
        AllocateSocket(SocketPurpose.ALTERNATE_SERVER, client.transport, alternate)
    )
    return True


def _reallocate(client: TurnClient, reason: str) -> None:
    """Start over on a new local socket after 437 (RFC 8656 §5, §7.4)."""
    state = client.allocation
    if state.reallocations >= MAX_REALLOCATIONS:
        client._finish(
            AllocationFailed(
                ErrorCode.ALLOCATION_MISMATCH,
                f"{reason}, after {state.reallocations} re-allocations",
            )
        )
        return
    state.reallocations += 1
    client._stats["reallocations"] += 1
    _log.info("TURN allocation lost (%s); allocating from a new socket", reason)
    client._cancel_requests(keep=())
    state.relayed = ()
    state.expires_at = None
    state.refresh_at = None
    state.refresh_in_flight = False
    client._permissions.reset()
    client._channels.reset()
    client._state = ClientState.WAITING_SOCKET
    client._events.append(
        AllocateSocket(SocketPurpose.REALLOCATE, client.transport, client.server)
    )


# Refresh and delete.


def _schedule_refresh(client: TurnClient, lifetime: int, now: float) -> None:
    state = client.allocation
    state.lifetime = lifetime
    state.expires_at = now + lifetime
    state.refresh_at = now + refresh_delay(lifetime)


def send_refresh(client: TurnClient, now: float, *, delete: bool = False) -> None:
    """Send a Refresh, or with ``delete`` a Refresh with LIFETIME 0."""
    attributes: list[object] = []
    if delete:
        attributes.append(Lifetime(0))
    elif client.options.lifetime is not None:
        attributes.append(Lifetime(client.options.lifetime))
    kind = Kind.DELETE if delete else Kind.REFRESH
    client._send_request(client._control, Method.REFRESH, kind, None, attributes, now)
    client.allocation.refresh_in_flight = not delete
    client.allocation.refresh_at = None


def _on_refresh(
    client: TurnClient, request: Request, event: StunEvent, now: float
) -> None:
    state = client.allocation
    state.refresh_in_flight = False
    if request.conn is not client._control:
        return
    if isinstance(event, TransactionSucceeded):
        lifetime = event.response.lifetime()
        if lifetime is None:
            lifetime = state.lifetime
        if lifetime == 0:
            client._finish(AllocationFailed(0, "the server granted a lifetime of 0"))
            return
        client._stats["refreshes"] += 1
        _schedule_refresh(client, lifetime, now)
        client._events.append(AllocationRefreshed(lifetime))
        return
    code, reason = _failure(event, request)
    if code == ErrorCode.ALLOCATION_MISMATCH:
        _reallocate(client, "Refresh got 437 Allocation Mismatch")
        return
    state.last_error = (code, reason)
    _log.info("TURN refresh failed (%d %s); retrying", code, reason)
    if state.expires_at is not None and now + RETRY_DELAY < state.expires_at:
        state.refresh_at = now + RETRY_DELAY


def _on_delete(
    client: TurnClient, request: Request, event: StunEvent, now: float
) -> None:
    if isinstance(event, TransactionSucceeded):
        client._finish(AllocationDeleted(confirmed=True))
        return
    code, _ = _failure(event, request)
    # RFC 8656 §8.3: a 437 to a delete means the allocation is already gone,
    # so the request has in effect succeeded.
    client._finish(AllocationDeleted(confirmed=code == ErrorCode.ALLOCATION_MISMATCH))


# Permissions and channels.


def _send_permission(client: TurnClient, entry: Permission, now: float) -> None:
    transaction_id = client._send_request(
        client._control,
        Method.CREATE_PERMISSION,
        Kind.PERMISSION,
        entry,
        [XorPeerAddress((entry.ip, 0))],
        now,
    )
    client._permissions.sent(entry, transaction_id)


def _on_permission(
    client: TurnClient, request: Request, event: StunEvent, now: float
) -> None:
    entry = request.target
    assert isinstance(entry, Permission)
    table = client._permissions
    if not table.finished(entry) or request.conn is not client._control:
        return
    if isinstance(event, TransactionSucceeded):
        if table.confirmed(entry.ip, now):
            client._events.append(PermissionCreated(entry.ip))
        return
    code, reason = _failure(event, request)
    if code == ErrorCode.ALLOCATION_MISMATCH:
        _reallocate(client, "CreatePermission got 437 Allocation Mismatch")
        return
    if not isinstance(event, TransactionFailed) and entry.installed:
        # A lost refresh: try again while the permission still holds.
        assert entry.expires_at is not None
        if now + RETRY_DELAY < entry.expires_at:
            table.retry(entry, now + RETRY_DELAY)
            return
    if not entry.installed:
        table.discard(entry)
    client._events.append(PermissionFailed(entry.ip, code, reason))


def _send_channel(client: TurnClient, entry: Channel, now: float) -> None:
    transaction_id = client._send_request(
        client._control,
        Method.CHANNEL_BIND,
        Kind.CHANNEL,
        entry,
        [ChannelNumber(entry.number), XorPeerAddress(entry.peer)],
        now,
    )
    client._channels.sent(entry, transaction_id)


def _on_channel(
    client: TurnClient, request: Request, event: StunEvent, now: float
) -> None:
    entry = request.target
    assert isinstance(entry, Channel)
    table = client._channels
    if not table.finished(entry) or request.conn is not client._control:
        return
    if isinstance(event, TransactionSucceeded):
        first = table.confirmed(entry, now)
        if client._permissions.confirmed(entry.peer[0], now):
            client._events.append(PermissionCreated(entry.peer[0]))
        if first:
            client._events.append(ChannelBound(entry.peer, entry.number))
        return
    code, reason = _failure(event, request)
    if code == ErrorCode.ALLOCATION_MISMATCH:
        _reallocate(client, "ChannelBind got 437 Allocation Mismatch")
        return
    if not isinstance(event, TransactionFailed) and entry.bound:
        assert entry.expires_at is not None
        if now + RETRY_DELAY < entry.expires_at:
            table.retry(entry, now + RETRY_DELAY)
            return
    if not entry.bound:
        table.discard(entry)
    client._events.append(ChannelBindFailed(entry.peer, entry.number, code, reason))


# RFC 6062.


def _on_connect(
    client: TurnClient, request: Request, event: StunEvent, now: float
) -> None:
    peer = request.target
    assert isinstance(peer, tuple)
    if isinstance(event, TransactionSucceeded):
        raw = event.response.raw(AttributeType.CONNECTION_ID)
        try:
            if raw is None:
                raise StunParseError("the Connect response has no CONNECTION-ID", 0)
            connection_id = ConnectionId.decode(raw, b"").connection_id
        except StunParseError as exc:
            client._events.append(PeerConnectFailed(peer, None, 0, str(exc)))
            return
        _peers.request_socket(client, connection_id, peer)
        return
    code, reason = _failure(event, request)
    if code == ErrorCode.ALLOCATION_MISMATCH:
        _reallocate(client, "Connect got 437 Allocation Mismatch")
    client._events.append(PeerConnectFailed(peer, None, code, reason))


def _on_connection_bind(
    client: TurnClient, request: Request, event: StunEvent, now: float
) -> None:
    connection_id = request.target
    assert isinstance(connection_id, int)
    if isinstance(event, TransactionSucceeded):
        _peers.bound(client, connection_id)
        return
    code, reason = _failure(event, request)
    _peers.failed(client, connection_id, code, reason)


# Timers.


def fire_timers(client: TurnClient, now: float) -> None:
    """Send the refreshes that are due and report expiries."""
    state = client.allocation
    if client._state is ClientState.DELETING:
        return
    if state.expires_at is not None and now >= state.expires_at:
        code, reason = state.last_error
        detail = f" (last refresh error: {code} {reason})" if reason else ""
        client._finish(AllocationFailed(0, f"the allocation expired{detail}"))
        return
    due = state.refresh_at is not None and now >= state.refresh_at
    if due and not state.refresh_in_flight:
        send_refresh(client, now)

    permissions = client._permissions
    if permissions.next_deadline() <= now:
        for entry in permissions.expired(now):
            client._events.append(PermissionExpired(entry.ip))
        for entry in permissions.due(now):
            _send_permission(client, entry, now)
    channels = client._channels
    if channels.next_deadline() <= now:
        for channel in channels.expired(now):
            client._events.append(ChannelExpired(channel.peer, channel.number))
        for channel in channels.due(now):
            _send_channel(client, channel, now)


def next_deadline(client: TurnClient) -> float:
    """Return the earliest timer of the allocation, permissions and channels."""
    if client._state is not ClientState.ALLOCATED:
        return math.inf
    state = client.allocation
    deadline = client._permissions.next_deadline()
    channels = client._channels.next_deadline()
    if channels < deadline:
        deadline = channels
    at = state.refresh_at
    if at is not None and at < deadline:
        deadline = at
    at = state.expires_at
    if at is not None and at < deadline:
        deadline = at
    return deadline
