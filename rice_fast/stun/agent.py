"""StunAgent: STUN client transactions as a sans-IO state machine.

Theory of operation: ``send_request`` builds a request, queues its first
transmission and starts a timer. Over UDP the timer retransmits the same
bytes after RTO, 2 * RTO, 4 * RTO ... until Rc transmissions have been
sent, then waits Rm * RTO more before the transaction times out (RFC 8489
§6.2.1). Over TCP and TLS the request is sent once and times out after
``reliable_timeout``. A response is matched by transaction id and by the
address it came from, then checked for integrity when the request carried
credentials. After a 401 or 438 to a request with long-term credentials,
the agent resends the request under a new transaction id with the realm
and nonce of the challenge. The caller still sees one transaction, from
``send_request`` to its final event.

Timers live in a heap of ``(deadline, generation, transaction id)``; an
entry is stale when the transaction has moved on to a newer generation.
"""

from __future__ import annotations

import heapq
import ipaddress
import logging
import math
import numbers
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from rice_fast.stun._client_auth import (
    Challenge,
    KeyCache,
    add_long_term_credentials,
    read_challenge,
)
from rice_fast.stun._codec import (
    IntegrityKey,
    Message,
    MessageBuilder,
    new_transaction_id,
    parse,
)
from rice_fast.stun._constants import ErrorCode, MessageClass, message_type
from rice_fast.stun._rtt import RttEstimator
from rice_fast.stun.attributes import UnknownAttribute
from rice_fast.stun.credentials import (
    LongTermCredentials,
    PasswordAlgorithm,
    ShortTermCredentials,
)
from rice_fast.stun.errors import CredentialError, StunBuildError, StunParseError
from rice_fast.stun.events import (
    StunEvent,
    TransactionCancelled,
    TransactionFailed,
    TransactionSucceeded,
    TransactionTimedOut,
)
from rice_fast.stun.transport import Address, Transmit, TransportType, WaitUntil

__all__ = ["StunAgent", "StunAgentStats", "StunConfig"]

_log = logging.getLogger(__name__)

Credentials = ShortTermCredentials | LongTermCredentials


@dataclass(frozen=True, slots=True)
class StunConfig:
    """Retransmission and authentication settings of a StunAgent.

    Times are in seconds. The defaults are those of RFC 8489 §6.2.1, which
    make a UDP transaction time out 39.5 s after its first transmission.
    ``adaptive_rto`` starts each transaction with the RTO computed from the
    RTT samples of earlier transactions to the same server IP address, as
    RFC 8489 §6.2.1 recommends, and discards that value after
    ``rto_cache_lifetime`` without a sample. ``min_rto`` and ``max_rto``
    bound the adapted RTO and the doubling.
    """

    rto: float = 0.5
    max_transmissions: int = 7
    final_wait_factor: float = 16
    reliable_timeout: float = 39.5
    max_auth_retries: int = 2
    adaptive_rto: bool = False
    min_rto: float = 0.5
    max_rto: float = 60.0
    rto_cache_lifetime: float = 600.0

    def __post_init__(self) -> None:
        _check_seconds("rto", self.rto)
        _check_count("max_transmissions", self.max_transmissions, minimum=1)
        _check_finite("final_wait_factor", self.final_wait_factor)
        _check_seconds("reliable_timeout", self.reliable_timeout)
        _check_count("max_auth_retries", self.max_auth_retries, minimum=0)
        _check_seconds("min_rto", self.min_rto)
        _check_seconds("max_rto", self.max_rto)
        _check_seconds("rto_cache_lifetime", self.rto_cache_lifetime)
        if self.min_rto > self.max_rto:
            raise ValueError(
                f"min_rto {self.min_rto} is larger than max_rto {self.max_rto}; "
                "min_rto must be at most max_rto"
            )


def _check_finite(name: str, value: object) -> None:
    """Raise ValueError unless ``value`` is a finite, non-negative number."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite, non-negative number, got {value!r}")


def _check_seconds(name: str, value: object) -> None:
    """Raise ValueError unless ``value`` is a finite, positive number."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"{name} must be a finite, positive number of seconds, got {value!r}"
        )


def _check_count(name: str, value: object, *, minimum: int) -> None:
    """Raise ValueError unless ``value`` is an int of at least ``minimum``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(f"{name} must be an int of at least {minimum}, got {value!r}")


@dataclass(frozen=True, slots=True)
class StunAgentStats:
    """A snapshot of a StunAgent's counters and RTT statistics.

    ``requests_sent`` counts first transmissions, resends after a 401 or
    438 included; ``retransmits`` counts the UDP retransmissions. The
    ``dropped_*`` counters count received messages that were discarded.
    RTT values are in seconds and None until the first sample; only
    responses to requests transmitted once are sampled (Karn's algorithm).
    """

    requests_sent: int = 0
    retransmits: int = 0
    indications_sent: int = 0
    responses_received: int = 0
    succeeded: int = 0
    failed: int = 0
    timeouts: int = 0
    cancelled: int = 0
    auth_retries: int = 0
    dropped_malformed: int = 0
    dropped_bad_fingerprint: int = 0
    dropped_unknown_transaction: int = 0
    dropped_wrong_source: int = 0
    dropped_bad_integrity: int = 0
    srtt: float | None = None
    rttvar: float | None = None
    rtt_min: float | None = None
    rtt_last: float | None = None
    rtt_samples: int = 0


@dataclass(slots=True)
class _Counters:
    requests_sent: int = 0
    retransmits: int = 0
    indications_sent: int = 0
    responses_received: int = 0
    succeeded: int = 0
    failed: int = 0
    timeouts: int = 0
    cancelled: int = 0
    auth_retries: int = 0
    dropped_malformed: int = 0
    dropped_bad_fingerprint: int = 0
    dropped_unknown_transaction: int = 0
    dropped_wrong_source: int = 0
    dropped_bad_integrity: int = 0


@dataclass(slots=True, eq=False)
class _Transaction:
    """One request from ``send_request`` to its final event.

    ``wire_id`` changes when the request is resent after a 401 or 438;
    ``transaction_id`` stays the id the caller was given.
    """

    transaction_id: bytes
    method: int
    destination: Address
    attributes: tuple[object, ...]
    credentials: Credentials | None
    fingerprint: bool
    wire_id: bytes = b""
    data: bytes = b""
    key: IntegrityKey | None = None
    challenge: Challenge | None = None
    challenge_from_cache: bool = False
    auth_retries: int = 0
    initial_rto: float = 0.5
    interval: float = 0.5
    transmissions: int = 0
    first_sent: float = 0.0
    retransmit_at: float | None = None
    timeout_at: float = 0.0
    generation: int = 0
    # Bumped to drop the transmissions of this request still in the queue.
    queue_epoch: int = 0


def _add_attributes(builder: MessageBuilder, attributes: Sequence[object]) -> None:
    for attribute in attributes:
        if isinstance(attribute, UnknownAttribute):
            # Its TYPE is a placeholder; the type is stored per object.
            builder.add(attribute.type, attribute.value)
        else:
            builder.add_attribute(attribute)


def _check_destination(destination: object) -> None:
    """Raise unless ``destination`` is an (IP address literal, port) tuple."""
    if not isinstance(destination, tuple) or len(destination) != 2:
        raise TypeError(
            f"destination must be an (IP address, port) tuple, got {destination!r}"
        )
    host, port = destination
    if not isinstance(host, str):
        raise TypeError(f"destination host must be a str IP address, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"destination port must be an int, got {port!r}")
    if not 1 <= port <= 65535:
        raise ValueError(f"destination port must be 1 to 65535, got {port}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"destination host {host!r} is not an IP address; resolve host "
            "names before sending"
        ) from None


def _check_now(now: object) -> None:
    if isinstance(now, bool) or not isinstance(now, numbers.Real):
        raise TypeError(f"now must be a float of seconds, got {now!r}")
    if not math.isfinite(now):
        raise ValueError(f"now must be a finite time in seconds, got {now!r}")


def _same_address(a: Address, b: Address) -> bool:
    if a[1] != b[1]:
        return False
    if a[0] == b[0]:
        return True
    # Compare textual forms of the same IP address ("::1" and "0::1").
    try:
        return ipaddress.ip_address(a[0]) == ipaddress.ip_address(b[0])
    except ValueError:
        return False


class StunAgent:
    """STUN transactions of one local transport address, without I/O.

    Call order: ``send_request`` or ``send_indication`` to start work;
    ``handle_data`` for every datagram or framed TCP message received on
    the local address; then ``poll(now)`` until it returns ``WaitUntil``
    or None, and ``poll_transmit(now)`` until it returns None, sending each
    ``Transmit``. Sleep until the ``WaitUntil`` deadline or the next input,
    and repeat. ``poll`` is what fires retransmissions and timeouts, so it
    must be called when the deadline passes even without input.

    ``transport`` decides the timers: retransmissions over UDP, a single
    transmission with ``reliable_timeout`` over TCP and TLS. ``software``,
    when set, is sent as SOFTWARE in every request.
    """

    def __init__(
        self,
        transport: TransportType,
        local_address: Address,
        *,
        config: StunConfig | None = None,
        software: str | None = None,
    ) -> None:
        if not isinstance(transport, TransportType):
            raise TypeError(f"transport must be a TransportType, got {transport!r}")
        if config is not None and not isinstance(config, StunConfig):
            raise TypeError(f"config must be a StunConfig, got {type(config).__name__}")
        if software is not None and not isinstance(software, str):
            raise TypeError(f"software must be str, got {type(software).__name__}")
        self._transport = transport
        self._local = local_address
        self._config = config if config is not None else StunConfig()
        self._software = software
        self._transactions: dict[bytes, _Transaction] = {}
        self._by_wire_id: dict[bytes, _Transaction] = {}
        self._timers: list[tuple[float, int, bytes]] = []
        self._events: deque[StunEvent] = deque()
        # Each entry is (transmit, transaction or None, the transaction's
        # queue_epoch when it was queued). An entry whose epoch is behind is
        # skipped, so dropping a request's queued copies costs O(1).
        self._transmits: deque[tuple[Transmit, _Transaction | None, int]] = deque()
        self._challenges: dict[Address, Challenge] = {}
        self._keys = KeyCache()
        self._rtt = RttEstimator()
        self._rtt_by_host: dict[str, RttEstimator] = {}
        self._counters = _Counters()

    # Properties.

    @property
    def transport(self) -> TransportType:
        """The transport this agent's messages travel over."""
        return self._transport

    @property
    def local_address(self) -> Address:
        """The local address used as the source of every Transmit."""
        return self._local

    @property
    def config(self) -> StunConfig:
        """The retransmission and authentication settings."""
        return self._config

    @property
    def stats(self) -> StunAgentStats:
        """A snapshot of the counters and RTT statistics."""
        c = self._counters
        rtt = self._rtt
        return StunAgentStats(
            requests_sent=c.requests_sent,
            retransmits=c.retransmits,
            indications_sent=c.indications_sent,
            responses_received=c.responses_received,
            succeeded=c.succeeded,
            failed=c.failed,
            timeouts=c.timeouts,
            cancelled=c.cancelled,
            auth_retries=c.auth_retries,
            dropped_malformed=c.dropped_malformed,
            dropped_bad_fingerprint=c.dropped_bad_fingerprint,
            dropped_unknown_transaction=c.dropped_unknown_transaction,
            dropped_wrong_source=c.dropped_wrong_source,
            dropped_bad_integrity=c.dropped_bad_integrity,
            srtt=rtt.srtt,
            rttvar=rtt.rttvar,
            rtt_min=rtt.min,
            rtt_last=rtt.last,
            rtt_samples=rtt.samples,
        )

    def pending_transactions(self) -> int:
        """Return how many transactions have not reached their final event."""
        return len(self._transactions)

    def initial_rto(self, destination: Address, now: float) -> float:
        """Return the RTO a new request to ``destination`` would start with."""
        config = self._config
        if not config.adaptive_rto:
            return config.rto
        estimator = self._rtt_by_host.get(destination[0])
        if estimator is None:
            return config.rto
        if now - estimator.last_update > config.rto_cache_lifetime:
            # RFC 8489 §6.2.1: a cached RTO is stale after 10 minutes
            # without transactions to that server.
            del self._rtt_by_host[destination[0]]
            return config.rto
        rto = estimator.rto(config.min_rto, config.max_rto)
        return config.rto if rto is None else rto

    # Sending.

    def send_request(
        self,
        method: int,
        destination: Address,
        now: float,
        *,
        attributes: Sequence[object] = (),
        credentials: Credentials | None = None,
        fingerprint: bool = True,
    ) -> bytes:
        """Start a request transaction and return its transaction id.

        ``attributes`` are typed attributes from ``rice_fast.stun.attributes``
        (anything with ``TYPE`` and ``encode(transaction_id)``, or an
        ``UnknownAttribute``), added in order before the agent's own
        SOFTWARE, credential, integrity and FINGERPRINT attributes. With
        ``ShortTermCredentials`` the request carries USERNAME and
        MESSAGE-INTEGRITY. With ``LongTermCredentials`` it goes first
        without credentials unless a challenge from this server is cached,
        and the agent itself resends it after a 401 or 438.

        ``destination`` is an ``(IP address, port)`` tuple with a port of 1
        to 65535; host names must be resolved first.

        Raises ``ValueError`` for a method outside 0x000..0xfff, a
        destination that is not an IP address and port, or a ``now`` that
        is not finite, ``TypeError`` for arguments of the wrong type, and
        ``StunBuildError`` when an attribute cannot be encoded.
        """
        _check_destination(destination)
        _check_now(now)
        if credentials is not None and not isinstance(
            credentials, ShortTermCredentials | LongTermCredentials
        ):
            raise TypeError(
                "credentials must be ShortTermCredentials or LongTermCredentials, "
                f"got {type(credentials).__name__}"
            )
        message_type(method, MessageClass.REQUEST)
        transaction_id = new_transaction_id()
        txn = _Transaction(
            transaction_id=transaction_id,
            method=method,
            destination=destination,
            attributes=tuple(attributes),
            credentials=credentials,
            fingerprint=fingerprint,
        )
        if isinstance(credentials, LongTermCredentials):
            challenge = self._challenges.get(destination)
            if challenge is not None:
                txn.challenge = challenge
                txn.challenge_from_cache = True
        request = self._build(txn, transaction_id)
        self._transactions[transaction_id] = txn
        self._start(txn, transaction_id, request, now)
        return transaction_id

    def send_indication(
        self,
        method: int,
        destination: Address,
        now: float,
        *,
        attributes: Sequence[object] = (),
        fingerprint: bool = True,
    ) -> None:
        """Queue an indication, which is sent once and gets no response.

        ``destination`` is checked as in ``send_request``. Raises
        ``ValueError`` for a method outside 0x000..0xfff or an invalid
        destination and ``StunBuildError`` when an attribute cannot be
        encoded.
        """
        _check_destination(destination)
        builder = MessageBuilder(
            message_type(method, MessageClass.INDICATION), new_transaction_id()
        )
        _add_attributes(builder, attributes)
        data: bytes = builder.finish(None, fingerprint=fingerprint)
        transmit = Transmit(self._transport, self._local, destination, data)
        self._transmits.append((transmit, None, 0))
        self._counters.indications_sent += 1

    def cancel(self, transaction_id: bytes) -> None:
        """Stop a transaction at once and report ``TransactionCancelled``.

        Transmissions of it that ``poll_transmit`` has not returned yet are
        dropped, and a later response is ignored. An id that is unknown or
        already final is ignored, since a response may have won the race.
        """
        txn = self._transactions.pop(transaction_id, None)
        if txn is None:
            return
        self._by_wire_id.pop(txn.wire_id, None)
        txn.generation += 1
        self._drop_queued(txn)
        self._counters.cancelled += 1
        self._events.append(TransactionCancelled(transaction_id))
        _log.debug("STUN transaction %s cancelled", transaction_id.hex())

    def cancel_retransmissions(self, transaction_id: bytes) -> None:
        """Stop retransmitting a request but keep waiting for its response.

        The transaction still succeeds or fails on a response, and times
        out when the full retransmission schedule would have ended. An id
        that is unknown or already final is ignored.
        """
        txn = self._transactions.get(transaction_id)
        if txn is None or txn.retransmit_at is None:
            return
        txn.retransmit_at = None
        self._schedule(txn)

    # Input.

    def handle_data(self, data: bytes, source: Address, now: float) -> Message | None:
        """Consume one received message and return it if it is not a response.

        Responses are matched against the pending transactions and never
        returned. A valid request or indication is returned for the caller
        to handle. Garbage, responses to unknown transactions, responses
        from another address than the request went to, and responses that
        fail their integrity or FINGERPRINT check are dropped and counted.
        Never raises for the content of ``data``.
        """
        try:
            message = parse(data)
        except StunParseError as exc:
            self._counters.dropped_malformed += 1
            _log.debug("dropped malformed STUN message from %s: %s", source, exc)
            return None
        if message.has_fingerprint and not message.check_fingerprint():
            self._counters.dropped_bad_fingerprint += 1
            _log.debug("dropped STUN message with a wrong FINGERPRINT from %s", source)
            return None
        if not message.is_response:
            return message

        txn = self._by_wire_id.get(message.transaction_id)
        if txn is None or message.method != txn.method:
            self._counters.dropped_unknown_transaction += 1
            _log.debug(
                "dropped STUN response %s from %s: no such transaction",
                message.transaction_id.hex(),
                source,
            )
            return None
        if not _same_address(source, txn.destination):
            self._counters.dropped_wrong_source += 1
            _log.debug(
                "dropped STUN response %s from %s: the request went to %s",
                message.transaction_id.hex(),
                source,
                txn.destination,
            )
            return None
        try:
            self._handle_response(txn, message, now)
        except StunParseError as exc:
            self._counters.dropped_malformed += 1
            _log.debug("dropped malformed STUN response from %s: %s", source, exc)
        return None

    # Output.

    def poll(self, now: float) -> StunEvent | WaitUntil | None:
        """Fire due timers and return the next event or the next deadline.

        Returns an event while any is queued, then ``WaitUntil`` with the
        earliest retransmission or timeout deadline, or None when no
        transaction is pending.
        """
        self._fire_timers(now)
        if self._events:
            return self._events.popleft()
        deadline = self._next_deadline()
        if deadline is None:
            return None
        return WaitUntil(deadline)

    def poll_transmit(self, now: float) -> Transmit | None:
        """Return the next message to send, or None.

        Fires due timers first, so retransmissions are not missed by a
        caller that drains transmits before polling for events.
        """
        self._fire_timers(now)
        transmits = self._transmits
        while transmits:
            transmit, txn, epoch = transmits.popleft()
            if txn is None or txn.queue_epoch == epoch:
                return transmit
        return None

    # Transactions.

    def _start(
        self,
        txn: _Transaction,
        wire_id: bytes,
        request: tuple[bytes, IntegrityKey | None],
        now: float,
    ) -> None:
        """Make ``request`` the current wire request and queue its first send."""
        txn.wire_id = wire_id
        txn.data, txn.key = request
        self._by_wire_id[wire_id] = txn
        txn.initial_rto = self.initial_rto(txn.destination, now)
        txn.interval = txn.initial_rto
        txn.transmissions = 0
        txn.first_sent = now
        # The final deadline is fixed here, so a caller that polls late
        # gets fewer retransmissions rather than a later timeout.
        txn.timeout_at = now + self._timeout(txn.initial_rto)
        self._transmit(txn, now)
        self._counters.requests_sent += 1
        _log.debug(
            "STUN request %s method %#05x to %s",
            wire_id.hex(),
            txn.method,
            txn.destination,
        )

    def _build(
        self, txn: _Transaction, wire_id: bytes
    ) -> tuple[bytes, IntegrityKey | None]:
        """Encode the request under ``wire_id``; return it and its key."""
        builder = MessageBuilder(
            message_type(txn.method, MessageClass.REQUEST), wire_id
        )
        _add_attributes(builder, txn.attributes)
        if self._software is not None:
            builder.add_software(self._software)

        key: IntegrityKey | None = None
        sha256 = False
        credentials = txn.credentials
        if isinstance(credentials, ShortTermCredentials):
            builder.add_username(credentials.username)
            key = credentials.key
        elif isinstance(credentials, LongTermCredentials) and txn.challenge:
            add_long_term_credentials(builder, credentials, txn.challenge)
            key = self._keys.get(credentials, txn.challenge)
            sha256 = txn.challenge.algorithm == PasswordAlgorithm.SHA256

        data: bytes = builder.finish(key, sha256=sha256, fingerprint=txn.fingerprint)
        return data, key

    def _transmit(self, txn: _Transaction, now: float) -> None:
        """Queue one transmission of the request and schedule the next step."""
        transmit = Transmit(self._transport, self._local, txn.destination, txn.data)
        self._transmits.append((transmit, txn, txn.queue_epoch))
        txn.transmissions += 1
        if (
            not self._transport.reliable
            and txn.transmissions < self._config.max_transmissions
        ):
            txn.retransmit_at = now + txn.interval
        else:
            txn.retransmit_at = None
        self._schedule(txn)

    def _timeout(self, initial_rto: float) -> float:
        """Return the time from the first transmission to the final timeout.

        Over UDP that is the Rc - 1 doubling intervals plus Rm * RTO after
        the last transmission (RFC 8489 §6.2.1): 39.5 s with the defaults.
        """
        config = self._config
        if self._transport.reliable:
            return config.reliable_timeout
        total = 0.0
        interval = initial_rto
        for _ in range(config.max_transmissions - 1):
            total += interval
            interval = min(interval * 2, config.max_rto)
        return total + config.final_wait_factor * initial_rto

    def _schedule(self, txn: _Transaction) -> None:
        txn.generation += 1
        deadline = txn.timeout_at
        if txn.retransmit_at is not None:
            deadline = min(deadline, txn.retransmit_at)
        heapq.heappush(self._timers, (deadline, txn.generation, txn.transaction_id))

    def _next_deadline(self) -> float | None:
        timers = self._timers
        while timers:
            deadline, generation, transaction_id = timers[0]
            txn = self._transactions.get(transaction_id)
            if txn is not None and txn.generation == generation:
                return deadline
            heapq.heappop(timers)
        return None

    def _fire_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, generation, transaction_id = heapq.heappop(timers)
            txn = self._transactions.get(transaction_id)
            if txn is None or txn.generation != generation:
                continue
            if txn.retransmit_at is not None and now < txn.timeout_at:
                txn.interval = min(txn.interval * 2, self._config.max_rto)
                self._counters.retransmits += 1
                _log.debug(
                    "STUN request %s retransmission %d",
                    txn.wire_id.hex(),
                    txn.transmissions,
                )
                self._transmit(txn, now)
            else:
                self._counters.timeouts += 1
                _log.debug("STUN request %s timed out", txn.wire_id.hex())
                self._finish(
                    txn, TransactionTimedOut(txn.transaction_id, txn.destination)
                )

    def _finish(self, txn: _Transaction, event: StunEvent) -> None:
        self._transactions.pop(txn.transaction_id, None)
        self._by_wire_id.pop(txn.wire_id, None)
        txn.generation += 1
        self._drop_queued(txn)
        self._events.append(event)

    def _drop_queued(self, txn: _Transaction) -> None:
        """Drop the queued transmissions of ``txn`` that are not returned yet."""
        txn.queue_epoch += 1

    # Responses.

    def _handle_response(
        self, txn: _Transaction, response: Message, now: float
    ) -> None:
        error = response.error_code() if response.is_error else None
        code = error[0] if error is not None else 0
        if txn.key is not None and not self._check_response_integrity(
            txn, response, code
        ):
            return
        self._counters.responses_received += 1

        unknown = response.unknown_comprehension_required()
        if unknown:
            # RFC 8489 §6.3.3 and §6.3.4: a success or error response with
            # unknown comprehension-required attributes fails the
            # transaction, with no retry after a 401 or 438.
            listed = ", ".join(f"0x{t:04x}" for t in unknown)
            detail = (
                f"the response has unknown comprehension-required attributes {listed}"
            )
            if error is not None and error[1]:
                detail = f"{error[1]} ({detail})"
            self._fail(txn, response, code, detail)
            return

        if response.is_success:
            rtt = now - txn.first_sent
            if txn.transmissions == 1:
                self._sample_rtt(txn.destination, rtt, now)
            self._counters.succeeded += 1
            _log.debug("STUN request %s succeeded", txn.wire_id.hex())
            self._finish(
                txn,
                TransactionSucceeded(
                    txn.transaction_id, response, txn.destination, rtt
                ),
            )
            return

        reason = error[1] if error is not None else "error response without ERROR-CODE"
        if code in (ErrorCode.UNAUTHENTICATED, ErrorCode.STALE_NONCE):
            failure = self._retry_auth(txn, response, code, now)
            if failure is None:
                return
            reason = f"{reason} ({failure})" if reason else failure
        self._fail(txn, response, code, reason)

    def _check_response_integrity(
        self, txn: _Transaction, response: Message, code: int
    ) -> bool:
        """Return whether a response to a signed request may be processed.

        RFC 8489 §9.1.4 and §9.2.4: a response without valid integrity is
        discarded over UDP and ends the transaction over TCP and TLS. A 401
        or 438 to a long-term request is the exception, because the server
        cannot sign it when it rejects the credentials or the nonce.
        """
        if response.has_integrity:
            assert txn.key is not None
            if response.check_integrity(txn.key):
                return True
        elif isinstance(txn.credentials, LongTermCredentials) and code in (
            ErrorCode.UNAUTHENTICATED,
            ErrorCode.STALE_NONCE,
        ):
            return True
        self._counters.dropped_bad_integrity += 1
        _log.debug(
            "STUN response %s failed its integrity check", response.transaction_id.hex()
        )
        if self._transport.reliable:
            self._fail(txn, response, code, "integrity check of the response failed")
        return False

    def _retry_auth(
        self, txn: _Transaction, response: Message, code: int, now: float
    ) -> str | None:
        """Resend after a 401 or 438; return None, or why no resend is made."""
        credentials = txn.credentials
        if not isinstance(credentials, LongTermCredentials):
            return "the request has no long-term credentials"
        if (
            code == ErrorCode.UNAUTHENTICATED
            and txn.challenge is not None
            and not txn.challenge_from_cache
        ):
            # Credentials built from this transaction's own challenge were
            # rejected: the username or password is wrong.
            self._challenges.pop(txn.destination, None)
            return "the server rejected the credentials"
        if txn.auth_retries >= self._config.max_auth_retries:
            self._challenges.pop(txn.destination, None)
            return f"gave up after {txn.auth_retries} authentication retries"
        challenge = read_challenge(response, txn.challenge)
        if isinstance(challenge, str):
            return challenge

        previous = txn.challenge
        txn.challenge = challenge
        wire_id = new_transaction_id()
        try:
            request = self._build(txn, wire_id)
        except (CredentialError, StunBuildError) as exc:
            # The realm comes from the network and SASLprep may reject it.
            txn.challenge = previous
            return f"cannot build the retry for the challenge: {exc}"

        self._challenges[txn.destination] = challenge
        txn.challenge_from_cache = False
        txn.auth_retries += 1
        self._counters.auth_retries += 1
        _log.debug(
            "STUN request %s got %d, resending with realm %r",
            txn.wire_id.hex(),
            code,
            challenge.realm,
        )
        self._by_wire_id.pop(txn.wire_id, None)
        self._drop_queued(txn)
        self._start(txn, wire_id, request, now)
        return None

    def _fail(
        self, txn: _Transaction, response: Message, code: int, reason: str
    ) -> None:
        self._counters.failed += 1
        _log.debug("STUN request %s failed: %d %s", txn.wire_id.hex(), code, reason)
        self._finish(
            txn,
            TransactionFailed(
                txn.transaction_id, response, code, reason, txn.destination
            ),
        )

    def _sample_rtt(self, destination: Address, rtt: float, now: float) -> None:
        self._rtt.update(rtt, now)
        if self._config.adaptive_rto:
            estimator = self._rtt_by_host.get(destination[0])
            if estimator is None:
                estimator = self._rtt_by_host[destination[0]] = RttEstimator()
            estimator.update(rtt, now)
