"""Run a sans-IO ``StunAgent`` from asyncio callbacks.

Theory of operation: the owner of a socket calls ``handle_data`` for every
message it receives, and ``request`` to start a transaction. After each
input, and when the one timer fires, the driver polls the agent for events
until it returns a deadline, sends every pending ``Transmit`` through the
owner's ``send`` callback and re-arms the timer at the agent's deadline.
The clock given to the agent as ``now`` is ``loop.time()``. Each request
returns a future that the transaction's final event resolves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from rice_fast.io._address import Address, format_address
from rice_fast.io._timer import DeadlineTimer
from rice_fast.io.errors import (
    StunConnectionError,
    StunErrorResponse,
    StunIOError,
    StunTimeoutError,
)
from rice_fast.stun import Message, Method
from rice_fast.stun.agent import StunAgent
from rice_fast.stun.credentials import LongTermCredentials, ShortTermCredentials
from rice_fast.stun.events import (
    StunEvent,
    TransactionCancelled,
    TransactionFailed,
    TransactionSucceeded,
    TransactionTimedOut,
)
from rice_fast.stun.transport import Transmit, WaitUntil

__all__ = ["AgentDriver", "MessageHandler", "method_name"]

logger = logging.getLogger(__name__)

MessageHandler = Callable[[Message, Address], None]

# A bound on poll/drain rounds per input. One input produces a handful of
# events and transmits; reaching this means the agent keeps producing work.
_MAX_ROUNDS = 1000


def method_name(method: int) -> str:
    """Return the RFC name of a STUN method ("Binding", "CreatePermission")."""
    try:
        name = Method(method).name
    except ValueError:
        return f"method 0x{method:03x}"
    return "".join(part.capitalize() for part in name.split("_"))


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[TransactionSucceeded]
    method: int
    destination: Address


class AgentDriver:
    """A ``StunAgent`` whose timer and transmits asyncio runs.

    ``send`` writes one ``Transmit`` to the socket; ``transport_name``
    ("udp" or "tcp") appears in error messages. ``on_message`` receives
    every valid STUN request or indication that is not a response to one
    of the agent's transactions.
    """

    def __init__(
        self,
        agent: StunAgent,
        send: Callable[[Transmit], None],
        *,
        transport_name: str,
        on_message: MessageHandler | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.agent = agent
        self._send = send
        self._transport_name = transport_name
        self._on_message = on_message
        self._timer = DeadlineTimer(self._loop, self._process)
        self._pending: dict[bytes, _Pending] = {}
        self._closed: StunConnectionError | None = None

    @property
    def timer(self) -> DeadlineTimer:
        """The driver's only timer, armed at the agent's next deadline."""
        return self._timer

    @property
    def pending(self) -> int:
        """The number of transactions still waiting for their final event."""
        return len(self._pending)

    def request(
        self,
        method: int,
        destination: Address,
        *,
        attributes: Sequence[object] = (),
        credentials: ShortTermCredentials | LongTermCredentials | None = None,
        fingerprint: bool = True,
    ) -> asyncio.Future[TransactionSucceeded]:
        """Start a transaction and return the future of its success event.

        The future raises ``StunErrorResponse`` for a final error response,
        ``StunIOError`` for a success response that the agent rejected,
        ``StunTimeoutError`` when the agent gives up and
        ``StunConnectionError`` when the socket closes or fails first. Cancelling the
        future cancels the transaction.
        """
        if self._closed is not None:
            raise self._closed
        transaction_id = self.agent.send_request(
            method,
            destination,
            self._loop.time(),
            attributes=attributes,
            credentials=credentials,
            fingerprint=fingerprint,
        )
        future: asyncio.Future[TransactionSucceeded] = self._loop.create_future()
        self._pending[transaction_id] = _Pending(future, method, destination)
        future.add_done_callback(partial(self._on_future_done, transaction_id))
        self._process()
        return future

    def send_indication(
        self, method: int, destination: Address, *, attributes: Sequence[object] = ()
    ) -> None:
        """Send a STUN indication, which has no response."""
        if self._closed is not None:
            raise self._closed
        self.agent.send_indication(
            method, destination, self._loop.time(), attributes=attributes
        )
        self._process()

    def handle_data(self, data: bytes, source: Address) -> None:
        """Feed one received datagram or deframed message to the agent."""
        if self._closed is not None:
            return
        message = self.agent.handle_data(data, source, self._loop.time())
        if message is not None and self._on_message is not None:
            try:
                self._on_message(message, source)
            except Exception:
                logger.exception(
                    "message handler failed on a message from %s",
                    format_address(source),
                )
        self._process()

    def close(self, reason: str | None = None) -> None:
        """Stop the timer and fail every pending transaction.

        ``reason`` describes why the socket closed, and pending futures and later
        requests raise ``StunConnectionError`` with it.
        """
        if self._closed is not None:
            return
        if reason is None:
            reason = f"the STUN {self._transport_name} socket was closed"
        self._closed = StunConnectionError(reason, transport=self._transport_name)
        self._timer.cancel()
        pending = list(self._pending.items())
        self._pending.clear()
        for transaction_id, entry in pending:
            self.agent.cancel(transaction_id)
            if not entry.future.done():
                entry.future.set_exception(self._connection_error(entry, reason))

    def fail_pending(self, reason: str, destination: Address | None = None) -> int:
        """Fail the pending transactions at once; return how many failed.

        Each future raises ``StunConnectionError`` with ``reason``. With
        ``destination``, only the transactions to that address fail. The
        driver stays open for new requests, unlike after ``close``.
        """
        failed = [
            (transaction_id, entry)
            for transaction_id, entry in self._pending.items()
            if destination is None or entry.destination == destination
        ]
        for transaction_id, entry in failed:
            del self._pending[transaction_id]
            self.agent.cancel(transaction_id)
            if not entry.future.done():
                entry.future.set_exception(self._connection_error(entry, reason))
        if failed:
            self._process()
        return len(failed)

    def _connection_error(self, entry: _Pending, reason: str) -> StunConnectionError:
        return StunConnectionError(
            f"{method_name(entry.method)} request to "
            f"{format_address(entry.destination)} failed: {reason}",
            server=entry.destination,
            transport=self._transport_name,
        )

    def _on_future_done(
        self, transaction_id: bytes, future: asyncio.Future[TransactionSucceeded]
    ) -> None:
        if not future.cancelled():
            return
        if self._pending.pop(transaction_id, None) is None:
            return
        if self._closed is None:
            self.agent.cancel(transaction_id)
            self._process()

    def _process(self) -> None:
        """Poll events, drain transmits and re-arm the timer."""
        if self._closed is not None:
            return
        now = self._loop.time()
        deadline: float | None = None
        for _ in range(_MAX_ROUNDS):
            result = self.agent.poll(now)
            if isinstance(result, StunEvent):
                self._dispatch(result)
                continue
            deadline = result.deadline if isinstance(result, WaitUntil) else None
            if not self._drain(now):
                break
        else:
            logger.warning(
                "STUN agent still had work after %d rounds; continuing on the "
                "next timer",
                _MAX_ROUNDS,
            )
            deadline = now
        self._timer.arm(deadline)

    def _drain(self, now: float) -> bool:
        sent = False
        while (transmit := self.agent.poll_transmit(now)) is not None:
            self._send(transmit)
            sent = True
        return sent

    def _dispatch(self, event: StunEvent) -> None:
        if isinstance(event, TransactionSucceeded):
            entry = self._pending.pop(event.transaction_id, None)
            if entry is not None and not entry.future.done():
                entry.future.set_result(event)
        elif isinstance(event, TransactionFailed):
            entry = self._pending.pop(event.transaction_id, None)
            if entry is None or entry.future.done():
                return
            if not event.response.is_error:
                # The agent rejected a success response, so the server sent
                # no error: report an invalid response, not an error code.
                entry.future.set_exception(
                    StunIOError(
                        f"STUN server {format_address(event.remote)} over "
                        f"{self._transport_name} sent an invalid "
                        f"{method_name(entry.method)} response: {event.reason}",
                        server=event.remote,
                        transport=self._transport_name,
                    )
                )
            else:
                entry.future.set_exception(
                    StunErrorResponse(
                        event.code,
                        event.reason,
                        server=event.remote,
                        transport=self._transport_name,
                        method=method_name(entry.method),
                        response=event.response,
                    )
                )
        elif isinstance(event, TransactionTimedOut):
            entry = self._pending.pop(event.transaction_id, None)
            if entry is not None and not entry.future.done():
                entry.future.set_exception(
                    StunTimeoutError(
                        event.remote,
                        transport=self._transport_name,
                        method=method_name(entry.method),
                    )
                )
        elif isinstance(event, TransactionCancelled):
            entry = self._pending.pop(event.transaction_id, None)
            if entry is not None and not entry.future.done():
                entry.future.cancel()
        else:
            logger.debug("ignoring STUN agent event %r", event)
