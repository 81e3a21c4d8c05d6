"""StunServer: a sans-IO STUN Binding server (RFC 8489 §6.3).

Theory of operation: each received message is parsed once. Anything that
is not a well-formed request is dropped or ignored and counted. Each
request gets exactly one queued response: 400 for a method other than
Binding, the authenticator's 400, 401 or 438 when credentials are
required and missing or wrong, 420 with UNKNOWN-ATTRIBUTES for unknown
comprehension-required attributes, and otherwise a success response with
XOR-MAPPED-ADDRESS set to the request's source address.

Amplification: a response to a request that is not authenticated carries
the attributes the protocol requires (XOR-MAPPED-ADDRESS, ERROR-CODE,
UNKNOWN-ATTRIBUTES, REALM, NONCE, PASSWORD-ALGORITHMS, FINGERPRINT) and
SOFTWARE only when the whole response stays within the request's size
plus ``UNAUTHENTICATED_ALLOWANCE`` bytes. The required attributes alone
can exceed that bound: a 20-byte request draws a 40-byte IPv4 Binding
response, and a 401 carries the realm and nonce, so keep the realm short.
Responses to authenticated requests carry SOFTWARE always.

FINGERPRINT is added when the request carried one, and always over UDP,
where STUN often shares a port with other protocols (RFC 7983) and the
receiver uses FINGERPRINT to tell STUN apart. Over TCP and TLS it follows
the request.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from rice_fast.stun._codec import IntegrityKey, Message, MessageBuilder, parse
from rice_fast.stun._constants import (
    AttributeType,
    ErrorCode,
    MessageClass,
    Method,
    message_type,
)
from rice_fast.stun.auth import Authenticator, AuthResult
from rice_fast.stun.errors import StunBuildError, StunParseError
from rice_fast.stun.transport import Address, Transmit, TransportType

__all__ = ["UNAUTHENTICATED_ALLOWANCE", "StunServer", "StunServerStats"]

_log = logging.getLogger(__name__)

UNAUTHENTICATED_ALLOWANCE: Final = 32
"""Bytes an optional attribute may add beyond the size of an unauthenticated
request: SOFTWARE is left out of a response that would exceed it."""

# RFC 8489 §14.14: SOFTWARE is fewer than 128 characters and 763 bytes.
_MAX_SOFTWARE_CHARS: Final = 127
_MAX_SOFTWARE_BYTES: Final = 763

_FINGERPRINT_SIZE: Final = 8


@dataclass(frozen=True, slots=True)
class StunServerStats:
    """A snapshot of a StunServer's counters.

    ``requests`` counts well-formed requests; each draws one response,
    counted in ``success_responses`` or ``error_responses`` (and in one of
    the per-code counters). The ``dropped_*`` and ``ignored_*`` counters
    count messages that drew no response.
    """

    requests: int = 0
    success_responses: int = 0
    error_responses: int = 0
    bad_requests: int = 0
    unauthenticated: int = 0
    stale_nonces: int = 0
    unknown_attributes: int = 0
    dropped_malformed: int = 0
    dropped_bad_fingerprint: int = 0
    dropped_queue_full: int = 0
    ignored_indications: int = 0
    ignored_responses: int = 0


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    success_responses: int = 0
    error_responses: int = 0
    bad_requests: int = 0
    unauthenticated: int = 0
    stale_nonces: int = 0
    unknown_attributes: int = 0
    dropped_malformed: int = 0
    dropped_bad_fingerprint: int = 0
    dropped_queue_full: int = 0
    ignored_indications: int = 0
    ignored_responses: int = 0


def _types(known_attributes: Iterable[int]) -> frozenset[int]:
    """Check ``known_attributes`` and return it as a frozenset."""
    if isinstance(known_attributes, str | bytes) or not isinstance(
        known_attributes, Iterable
    ):
        raise TypeError(
            "known_attributes must be an iterable of attribute types, got "
            f"{type(known_attributes).__name__}"
        )
    types = frozenset(known_attributes)
    for value in types:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(
                f"known_attributes must contain ints, got {type(value).__name__}"
            )
        if not 0 <= value <= 0xFFFF:
            raise ValueError(
                f"known_attributes contains {value}, outside the attribute type "
                "range 0x0000..0xffff"
            )
    return types


class StunServer:
    """Respond to STUN Binding requests, without I/O.

    Call order: ``handle_data`` for every datagram or framed TCP message
    received, then ``poll_transmit(now)`` until it returns None, sending
    each ``Transmit``. The server has no timers, so there is no ``poll``.

    ``software`` is sent as SOFTWARE, within the amplification bound
    described in the module docstring. With ``authenticator`` (a
    ``LongTermAuthenticator`` or ``ShortTermAuthenticator``), every request
    must pass its credential checks and responses to accepted requests
    carry MESSAGE-INTEGRITY, or MESSAGE-INTEGRITY-SHA256 when the request
    used it. ``known_attributes``
    are the comprehension-required types that do not draw a 420; the
    default is every type this library decodes. At most
    ``max_queued_transmits`` responses wait for ``poll_transmit``; more are
    dropped and counted.
    """

    def __init__(
        self,
        *,
        software: str | None = None,
        authenticator: Authenticator | None = None,
        known_attributes: Iterable[int] | None = None,
        max_queued_transmits: int = 4096,
    ) -> None:
        self._software: bytes | None = None
        if software is not None:
            if not isinstance(software, str):
                raise TypeError(
                    f"software must be str or None, got {type(software).__name__}"
                )
            encoded = software.encode("utf-8")
            if (
                len(software) > _MAX_SOFTWARE_CHARS
                or len(encoded) > _MAX_SOFTWARE_BYTES
            ):
                raise ValueError(
                    f"software of {len(software)} characters is too long; "
                    f"RFC 8489 §14.14 allows at most {_MAX_SOFTWARE_CHARS}"
                )
            self._software = encoded
        if isinstance(max_queued_transmits, bool) or not isinstance(
            max_queued_transmits, int
        ):
            raise TypeError(
                "max_queued_transmits must be an int, got "
                f"{type(max_queued_transmits).__name__}"
            )
        if max_queued_transmits < 1:
            raise ValueError(
                f"max_queued_transmits must be at least 1, got {max_queued_transmits}"
            )
        if authenticator is not None and not callable(
            getattr(authenticator, "authenticate", None)
        ):
            raise TypeError(
                "authenticator must have an authenticate(message, remote, now) "
                f"method, got {type(authenticator).__name__}"
            )
        self._authenticator = authenticator
        self._known = None if known_attributes is None else _types(known_attributes)
        self._max_queued = max_queued_transmits
        self._transmits: deque[Transmit] = deque()
        self._counters = _Counters()

    @property
    def authenticator(self) -> Authenticator | None:
        """The credential checker, or None for an open server."""
        return self._authenticator

    @property
    def stats(self) -> StunServerStats:
        """A snapshot of the counters."""
        c = self._counters
        return StunServerStats(
            requests=c.requests,
            success_responses=c.success_responses,
            error_responses=c.error_responses,
            bad_requests=c.bad_requests,
            unauthenticated=c.unauthenticated,
            stale_nonces=c.stale_nonces,
            unknown_attributes=c.unknown_attributes,
            dropped_malformed=c.dropped_malformed,
            dropped_bad_fingerprint=c.dropped_bad_fingerprint,
            dropped_queue_full=c.dropped_queue_full,
            ignored_indications=c.ignored_indications,
            ignored_responses=c.ignored_responses,
        )

    def handle_data(
        self,
        transport: TransportType,
        local: Address,
        remote: Address,
        data: bytes,
        now: float,
    ) -> None:
        """Process one received message and queue the response, if any.

        ``local`` is the address the message arrived on and the source of
        the response; ``remote`` is its source and the response's
        destination. Never raises for the content of ``data``; raises
        ``TypeError`` when ``transport`` is not a ``TransportType``.
        """
        if not isinstance(transport, TransportType):
            raise TypeError(f"transport must be a TransportType, got {transport!r}")
        try:
            message = parse(data)
        except StunParseError as exc:
            self._counters.dropped_malformed += 1
            _log.debug("dropped malformed STUN message from %s: %s", remote, exc)
            return
        if message.has_fingerprint and not message.check_fingerprint():
            self._counters.dropped_bad_fingerprint += 1
            _log.debug("dropped STUN message with a wrong FINGERPRINT from %s", remote)
            return
        if message.is_indication:
            self._counters.ignored_indications += 1
            return
        if message.is_response:
            self._counters.ignored_responses += 1
            return

        self._counters.requests += 1
        try:
            response = self._respond(transport, remote, message, now)
        except (StunParseError, StunBuildError) as exc:
            self._counters.dropped_malformed += 1
            _log.debug("dropped STUN request from %s: %s", remote, exc)
            return
        if len(self._transmits) >= self._max_queued:
            self._counters.dropped_queue_full += 1
            _log.debug("dropped STUN response to %s: transmit queue is full", remote)
            return
        self._transmits.append(Transmit(transport, local, remote, response))

    def poll_transmit(self, now: float) -> Transmit | None:
        """Return the next response to send, or None."""
        if not self._transmits:
            return None
        return self._transmits.popleft()

    # Requests.

    def _respond(
        self,
        transport: TransportType,
        remote: Address,
        request: Message,
        now: float,
    ) -> bytes:
        """Build the one response to ``request``."""
        fingerprint = request.has_fingerprint or transport is TransportType.UDP
        if request.method != Method.BINDING:
            _log.debug(
                "400 for STUN method %#05x from %s: not served", request.method, remote
            )
            return self._error(request, ErrorCode.BAD_REQUEST, fingerprint=fingerprint)

        key: IntegrityKey | None = None
        sha256 = False
        if self._authenticator is not None:
            result = self._authenticator.authenticate(request, remote, now)
            if not result.accepted:
                return self._challenge(request, result, fingerprint)
            key = result.key
            sha256 = result.use_sha256

        unknown = request.unknown_comprehension_required(self._known)
        if unknown:
            _log.debug("420 for a STUN request from %s: %s", remote, unknown)
            self._counters.unknown_attributes += 1
            return self._error(
                request,
                ErrorCode.UNKNOWN_ATTRIBUTE,
                unknown=unknown,
                key=key,
                sha256=sha256,
                fingerprint=fingerprint,
            )

        builder = MessageBuilder(
            message_type(request.method, MessageClass.SUCCESS), request.transaction_id
        )
        builder.add_xor_mapped_address(remote[0], remote[1])
        self._add_software(builder, request, key is not None, fingerprint)
        self._counters.success_responses += 1
        _log.debug("Binding success response to %s", remote)
        data: bytes = builder.finish(key, sha256=sha256, fingerprint=fingerprint)
        return data

    def _challenge(
        self, request: Message, result: AuthResult, fingerprint: bool
    ) -> bytes:
        """Build the unsigned error response the authenticator asked for."""
        if result.error_code == ErrorCode.UNAUTHENTICATED:
            self._counters.unauthenticated += 1
        elif result.error_code == ErrorCode.STALE_NONCE:
            self._counters.stale_nonces += 1
        elif result.error_code == ErrorCode.BAD_REQUEST:
            self._counters.bad_requests += 1
        self._counters.error_responses += 1
        builder = MessageBuilder(
            message_type(request.method, MessageClass.ERROR), request.transaction_id
        )
        result.add_error_attributes(builder)
        self._add_software(builder, request, False, fingerprint)
        data: bytes = builder.finish(None, fingerprint=fingerprint)
        return data

    def _error(
        self,
        request: Message,
        code: ErrorCode,
        *,
        unknown: list[int] | None = None,
        key: IntegrityKey | None = None,
        sha256: bool = False,
        fingerprint: bool,
    ) -> bytes:
        if code == ErrorCode.BAD_REQUEST:
            self._counters.bad_requests += 1
        self._counters.error_responses += 1
        builder = MessageBuilder(
            message_type(request.method, MessageClass.ERROR), request.transaction_id
        )
        builder.add_error_code(code, code.reason)
        if unknown:
            builder.add_unknown_attributes(unknown)
        self._add_software(builder, request, key is not None, fingerprint)
        data: bytes = builder.finish(key, sha256=sha256, fingerprint=fingerprint)
        return data

    def _add_software(
        self,
        builder: MessageBuilder,
        request: Message,
        authenticated: bool,
        fingerprint: bool,
    ) -> None:
        """Add SOFTWARE unless it would break the amplification bound."""
        software = self._software
        if software is None:
            return
        if not authenticated:
            size = builder.length + 4 + len(software) + (-len(software) & 3)
            if fingerprint:
                size += _FINGERPRINT_SIZE
            if size > request.size + UNAUTHENTICATED_ALLOWANCE:
                return
        builder.add_text(AttributeType.SOFTWARE, software)
