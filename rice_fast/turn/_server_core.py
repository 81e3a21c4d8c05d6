"""State and response plumbing shared by the parts of TurnServer.

``ServerCore`` contains what every request handler needs: the configuration,
the tables and timers, the event and transmit queues, the counters and
the helpers that build, sign and queue responses. ``TurnServer`` owns one
and hands it to ``AllocateHandler`` and ``TcpRelay``.
"""

from __future__ import annotations

import logging
from collections import deque

from rice_fast.stun._codec import Message, MessageBuilder
from rice_fast.stun._constants import MessageClass, message_type
from rice_fast.stun.auth import AuthResult
from rice_fast.stun.transport import Address, Transmit, TransportType
from rice_fast.turn._allocations import (
    AllocationTable,
    FiveTupleKey,
    Signer,
    TimerQueue,
)
from rice_fast.turn._server_config import (
    Counters,
    DropReason,
    TurnServerConfig,
    build_authenticator,
)
from rice_fast.turn._server_messages import Rejection, finish_response, start_error
from rice_fast.turn.server_events import TurnServerEvent

__all__ = ["Request", "ServerCore"]

_log = logging.getLogger("rice_fast.turn.server")


def _padded(size: int) -> int:
    return size + (-size & 3)


class Request:
    """One authenticated request, and where to send its response."""

    __slots__ = ("key", "local", "message", "remote", "signer", "transport")

    def __init__(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        message: Message,
        signer: Signer,
    ) -> None:
        self.transport = transport
        self.local = local
        self.remote = remote
        self.key: FiveTupleKey = (transport, local, remote)
        self.message = message
        self.signer = signer


class ServerCore:
    """The server's shared state, queues and response helpers."""

    def __init__(self, config: TurnServerConfig) -> None:
        self.config = config
        self.authenticator, self.credentials = build_authenticator(config)
        self.counters = Counters()
        self.timers = TimerQueue()
        self.events: deque[TurnServerEvent] = deque()
        self.transmits: deque[Transmit] = deque()
        self.table = AllocationTable(self.counters, self.timers, self.events.append)
        self.software = config.software

        # The largest unauthenticated response is a 401 with REALM, NONCE,
        # PASSWORD-ALGORITHMS and the 15-byte reason "Unauthenticated".
        # Binding, 400, 420 and 438 responses stay below it.
        nonce = self.authenticator.nonce_issuer.issue(("0.0.0.0", 0), 0.0)
        realm = len(config.realm.encode("utf-8"))
        algorithms = len(self.authenticator.algorithms)
        self.unauthenticated_overhead = (
            (4 + 4 + 16)
            + (4 + _padded(realm))
            + (4 + _padded(len(nonce)))
            + (4 + 4 * algorithms)
        )

    # Queues and counters.

    def emit(self, event: TurnServerEvent) -> None:
        """Queue an event for ``TurnServer.poll``."""
        self.events.append(event)

    def transmit(self, transmit: Transmit) -> None:
        """Queue a message for ``poll_transmit``, or drop it when the queue is full."""
        if len(self.transmits) >= self.config.max_queued_transmits:
            self.drop(DropReason.QUEUE_FULL, transmit.destination, "queue is full")
            return
        self.transmits.append(transmit)

    def drop(self, reason: DropReason, source: Address, detail: str) -> None:
        """Count and log a message that draws no response."""
        self.counters.dropped[reason] += 1
        _log.debug("dropped a message from %s (%s): %s", source, reason.value, detail)

    # Responses to unauthenticated requests.

    def unsigned(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        request: Message,
        builder: MessageBuilder,
        *,
        success: bool = False,
    ) -> None:
        """Send a response without integrity, within the amplification bound."""
        data = finish_response(builder, None, None, fingerprint=request.has_fingerprint)
        if len(data) > request.size + self.unauthenticated_overhead:
            self.drop(DropReason.AMPLIFICATION, remote, f"{len(data)}-byte response")
            return
        if success:
            self.counters.success_responses += 1
        self.transmit(Transmit(transport, local, remote, data))

    def unsigned_error(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        request: Message,
        rejection: Rejection,
        unknown: list[int] | None = None,
    ) -> None:
        """Send an error response without integrity (400, 420)."""
        _log.debug("%d to %s: %s", rejection.code, remote, rejection.reason)
        self.counters.error_responses[rejection.code] += 1
        builder = start_error(request.method, request.transaction_id, rejection)
        if unknown:
            builder.add_unknown_attributes(unknown)
        self.unsigned(transport, local, remote, request, builder)

    def challenge(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        request: Message,
        result: AuthResult,
    ) -> None:
        """Send the authenticator's 400, 401 or 438 response."""
        _log.debug("%d to %s: %s", result.error_code, remote, result.reason)
        self.counters.error_responses[int(result.error_code)] += 1
        builder = MessageBuilder(
            message_type(request.method, MessageClass.ERROR), request.transaction_id
        )
        result.add_error_attributes(builder)
        self.unsigned(transport, local, remote, request, builder)

    # Responses to authenticated requests.

    def sign(self, builder: MessageBuilder, signer: Signer) -> bytes:
        """Finish a response with SOFTWARE, integrity and FINGERPRINT."""
        return finish_response(builder, signer, self.software, fingerprint=True)

    def reply(self, request: Request, builder: MessageBuilder) -> None:
        """Sign and send a success response."""
        data = self.sign(builder, request.signer)
        self.counters.success_responses += 1
        self.transmit(Transmit(request.transport, request.local, request.remote, data))

    def reject(self, request: Request, rejection: Rejection) -> None:
        """Sign and send an error response."""
        message = request.message
        self.send_error(
            request.key,
            message.method,
            message.transaction_id,
            request.signer,
            rejection,
        )

    def send_error(
        self,
        key: FiveTupleKey,
        method: int,
        transaction_id: bytes,
        signer: Signer,
        rejection: Rejection,
    ) -> None:
        """Sign and send an error response that was delayed (Allocate, Connect)."""
        _log.debug("%d to %s: %s", rejection.code, key[2], rejection.reason)
        self.counters.error_responses[rejection.code] += 1
        builder = start_error(method, transaction_id, rejection)
        data = self.sign(builder, signer)
        self.transmit(Transmit(key[0], key[1], key[2], data))

    def send_success(
        self, key: FiveTupleKey, builder: MessageBuilder, signer: Signer
    ) -> bytes:
        """Sign and send a success response that was delayed (Allocate, Connect)."""
        data = self.sign(builder, signer)
        self.counters.success_responses += 1
        self.transmit(Transmit(key[0], key[1], key[2], data))
        return data
