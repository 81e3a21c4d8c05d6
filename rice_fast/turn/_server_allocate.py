"""Allocate and Refresh for TurnServer (RFC 8656 §7, RFC 6156).

An Allocate that passes its checks becomes a ``PendingAllocation`` and one
``AllocateRelaySocket`` event per address family. The allocation is
created, and the success response sent, only when the I/O layer has
reported a result for every family, or when ``relay_socket_timeout``
passes. A dual
allocation whose second family fails succeeds with the other family and
an ADDRESS-ERROR-CODE; with no relayed address at all the request fails
with 440 (no requested family is relayed) or 508.

Meanwhile a retransmission of the request is ignored, another Allocate on
the 5-tuple gets 437 and other requests find no allocation (437), so a
client can never use an allocation whose socket does not exist yet.
"""

from __future__ import annotations

import logging
import secrets
from typing import Final

from rice_fast.stun._constants import (
    AddressFamily,
    AttributeType,
    ErrorCode,
    Method,
    TransportProtocol,
)
from rice_fast.stun.attributes import AddressErrorCode
from rice_fast.stun.transport import Address
from rice_fast.turn._allocations import (
    Allocation,
    PendingAllocation,
    Reservation,
    family_of,
)
from rice_fast.turn._server_core import Request, ServerCore
from rice_fast.turn._server_messages import (
    Rejection,
    granted_lifetime,
    read_allocate,
    read_lifetime,
    read_requested_family,
    start_success,
)
from rice_fast.turn.server_events import (
    AllocateRelaySocket,
    AllocationCreated,
    FiveTuple,
    RelaySocketReleased,
)

__all__ = ["AllocateHandler"]

_log = logging.getLogger("rice_fast.turn.server")

_FAMILY_ORDER: Final = (AddressFamily.IPV4, AddressFamily.IPV6)


class AllocateHandler:
    """The Allocate and Refresh methods, and the relay socket handshake."""

    def __init__(self, core: ServerCore) -> None:
        self._core = core
        self._next_allocation_id = 1
        self._next_request_id = 1
        # Request ids of Allocate requests that failed or were abandoned
        # before the I/O layer reported: a socket bound late is released.
        self._abandoned: dict[int, TransportProtocol] = {}

    def allocate(
        self, request: Request, allocation: Allocation | None, now: float
    ) -> None:
        """Check an authenticated Allocate and ask for its relay sockets."""
        core = self._core
        table = core.table
        config = core.config
        if allocation is not None or request.key in table.pending:
            core.reject(request, Rejection.of(ErrorCode.ALLOCATION_MISMATCH))
            return
        options = read_allocate(request.message, request.transport, config)
        if isinstance(options, Rejection):
            core.reject(request, options)
            return

        username = request.signer.username
        total = len(table.by_five_tuple) + len(table.pending)
        if (
            total >= config.max_allocations
            or table.per_user[username] >= config.max_allocations_per_user
        ):
            core.reject(request, Rejection.of(ErrorCode.ALLOCATION_QUOTA_REACHED))
            return

        families = options.families
        reserved: Address | None = None
        if options.reservation_token is not None:
            reservation = table.take_reservation(options.reservation_token, now)
            if reservation is None:
                rejection = Rejection.of(
                    ErrorCode.INSUFFICIENT_CAPACITY,
                    "RESERVATION-TOKEN is unknown or expired",
                )
                core.reject(request, rejection)
                return
            reserved = reservation.address
            families = (family_of(reserved[0]),)

        five_tuple = FiveTuple(request.transport, request.local, request.remote)
        pending = PendingAllocation(
            five_tuple,
            request.message.transaction_id,
            request.signer,
            options.transport,
            granted_lifetime(options.lifetime, config),
            now + config.relay_socket_timeout,
        )
        pending.reserve_next = options.reserve_next
        table.reserve_quota(username)
        table.pending[request.key] = pending
        core.timers.schedule(pending)
        for family in families:
            if family not in config.relay_families:
                pending.results[family] = ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED
                continue
            request_id = self._next_request_id
            self._next_request_id += 1
            pending.families[family] = request_id
            table.pending_requests[request_id] = pending
            core.emit(
                AllocateRelaySocket(
                    request_id,
                    family,
                    options.transport,
                    options.even_port,
                    options.reserve_next,
                    reserved,
                    five_tuple,
                )
            )
        if pending.complete():
            self._finish(pending, now)

    def relay_socket_result(
        self, request_id: int, relayed: Address | None, now: float
    ) -> None:
        """Record the I/O layer's result; see ``TurnServer``."""
        core = self._core
        pending = core.table.pending_requests.pop(request_id, None)
        if pending is None:
            transport = self._abandoned.pop(request_id, None)
            if transport is None:
                raise ValueError(
                    f"relay socket request {request_id} is unknown or has a "
                    "result already; report each AllocateRelaySocket once"
                )
            if relayed is not None:
                core.emit(RelaySocketReleased(relayed, transport))
            return

        family = next(f for f, i in pending.families.items() if i == request_id)
        if relayed is None:
            pending.results[family] = ErrorCode.INSUFFICIENT_CAPACITY
        elif family_of(relayed[0]) is not family:
            # Put the request back so that a corrected result still works.
            core.table.pending_requests[request_id] = pending
            raise ValueError(
                f"relay socket request {request_id} is for {family.name}, "
                f"but {relayed!r} is not"
            )
        else:
            pending.results[family] = (relayed[0], relayed[1])
        if pending.complete():
            self._finish(pending, now)

    def timed_out(self, pending: PendingAllocation, now: float) -> None:
        """Fail the families without a result in time, then finish."""
        for family, request_id in pending.families.items():
            if family not in pending.results:
                del self._core.table.pending_requests[request_id]
                self._abandoned[request_id] = pending.transport
                pending.results[family] = ErrorCode.INSUFFICIENT_CAPACITY
        _log.debug("relay socket for %s timed out", pending.five_tuple.remote)
        self._finish(pending, now)

    def abandon(self, pending: PendingAllocation) -> None:
        """Drop an Allocate whose client went away, releasing bound sockets."""
        core = self._core
        table = core.table
        pending.alive = False
        del table.pending[pending.key]
        table.release_quota(pending.signer.username)
        for family, request_id in pending.families.items():
            result = pending.results.get(family)
            if result is None:
                del table.pending_requests[request_id]
                self._abandoned[request_id] = pending.transport
            elif isinstance(result, tuple):
                core.emit(RelaySocketReleased(result, pending.transport))

    def _finish(self, pending: PendingAllocation, now: float) -> None:
        """Create the allocation from the bound sockets, or fail the request."""
        core = self._core
        table = core.table
        pending.alive = False
        del table.pending[pending.key]
        signer = pending.signer
        relayed = {
            family: result
            for family, result in pending.results.items()
            if isinstance(result, tuple)
        }
        if not relayed:
            table.release_quota(signer.username)
            codes = set(pending.results.values())
            if codes == {ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED}:
                rejection = Rejection.of(ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED)
            else:
                rejection = Rejection.of(
                    ErrorCode.INSUFFICIENT_CAPACITY, "no relay socket could be bound"
                )
            core.send_error(
                pending.key, Method.ALLOCATE, pending.transaction_id, signer, rejection
            )
            return

        allocation_id = self._next_allocation_id
        self._next_allocation_id += 1
        allocation = Allocation(
            allocation_id,
            pending.five_tuple,
            signer.username,
            pending.transport,
            relayed,
            pending.transaction_id,
            now + pending.lifetime,
        )
        builder = start_success(Method.ALLOCATE, pending.transaction_id)
        for family in _FAMILY_ORDER:
            result = pending.results.get(family)
            if isinstance(result, tuple):
                builder.add_xor_relayed_address(result[0], result[1])
            elif result is not None:
                reason = ErrorCode(result).reason
                builder.add_attribute(AddressErrorCode(family, result, reason))
        builder.add_lifetime(pending.lifetime)
        remote = pending.five_tuple.remote
        builder.add_xor_mapped_address(remote[0], remote[1])
        if pending.reserve_next:
            host, port = next(iter(relayed.values()))
            token = secrets.token_bytes(8)
            expires = now + core.config.reservation_lifetime
            table.add_reservation(Reservation(token, (host, port + 1), expires))
            builder.add(AttributeType.RESERVATION_TOKEN, token)
        allocation.response = core.send_success(pending.key, builder, signer)
        table.add(allocation)

        addresses = allocation.relayed_addresses()
        core.emit(
            AllocationCreated(
                pending.five_tuple,
                signer.username,
                addresses,
                pending.transport,
                pending.lifetime,
                allocation_id,
            )
        )
        _log.info(
            "allocation %d created: user %r, client %s %s, relayed %s %s, "
            "lifetime %d s",
            allocation_id,
            signer.username,
            pending.five_tuple.transport.value,
            remote,
            pending.transport.name,
            list(addresses),
            pending.lifetime,
        )

    def refresh(self, request: Request, allocation: Allocation, now: float) -> None:
        """Refresh or delete an allocation (RFC 8656 §8.2).

        A LIFETIME of 0 deletes it at once and releases its relay sockets.
        With REQUESTED-ADDRESS-FAMILY a dual allocation loses only that
        family; a nonzero lifetime always applies to the whole allocation.
        """
        core = self._core
        message = request.message
        lifetime = read_lifetime(message)
        if isinstance(lifetime, Rejection):
            core.reject(request, lifetime)
            return
        family = read_requested_family(message)
        if isinstance(family, Rejection):
            core.reject(request, family)
            return
        if family is not None and family not in allocation.relayed:
            core.reject(request, Rejection.of(ErrorCode.PEER_ADDRESS_FAMILY_MISMATCH))
            return

        if lifetime == 0:
            granted = 0
            if family is not None and len(allocation.relayed) > 1:
                core.table.remove_family(allocation, family)
            else:
                core.table.remove(allocation, expired=False)
        else:
            granted = granted_lifetime(lifetime, core.config)
            allocation.expires = now + granted
            core.timers.schedule(allocation)
        builder = start_success(Method.REFRESH, message.transaction_id)
        builder.add_lifetime(granted)
        core.reply(request, builder)
