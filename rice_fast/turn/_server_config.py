"""TurnServer configuration, counters and the credential lookup it uses."""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rice_fast.stun._constants import AddressFamily
from rice_fast.stun.auth import LongTermAuthenticator
from rice_fast.stun.credentials import (
    NonceIssuer,
    PasswordAlgorithm,
    SecurityFeatures,
    rest_api_expiry,
    rest_api_password,
    userhash,
)
from rice_fast.stun.errors import CredentialError
from rice_fast.turn._peer_policy import PeerPolicy

__all__ = ["DropReason", "TurnServerConfig", "TurnServerStats"]

Users = Mapping[str, str] | Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class TurnServerConfig:
    """Settings of a TurnServer. Times are in seconds.

    Credentials: ``users`` maps usernames to passwords, or is a callable
    returning the password or None. ``rest_api_secret`` enables the
    time-limited "TURN REST API" scheme. There a username ``"expiry:user"``
    has the password base64(HMAC-SHA1(secret, username)), and is rejected
    with 401 once the UNIX time ``expiry`` has passed. At least one of the
    two is required. The UNIX time is ``now + unix_time_offset``, because
    the server never reads a clock: set the offset to ``time.time() -
    time.monotonic()`` when ``now`` comes from ``time.monotonic()``.

    ``username_anonymity`` announces USERHASH support in the nonce cookie
    (RFC 8489 §9.2). None turns it on when every user can be found from
    its hash, that is when ``users`` is a mapping and there is no REST API
    secret. ``nonce_secret`` lets server processes accept each other's
    nonces; by default each server draws its own.

    Lifetimes: Allocate and Refresh grant the requested LIFETIME clamped
    to ``default_lifetime`` .. ``max_lifetime``, or ``default_lifetime``
    when the request has none (RFC 8656 §7.2). Permissions last
    ``permission_lifetime`` and channels ``channel_lifetime``. An expired
    channel's number and peer stay reserved for ``channel_cooloff``,
    because RFC 8656 §12 has clients wait that long before rebinding them
    elsewhere, and the server enforces the wait.

    Limits: the per-user and total allocation quotas draw 486, and the
    per-allocation permission and channel limits draw 508. TCP peer
    connections that are not yet bound to a client data connection are
    limited per allocation and in total. The limits are defaults chosen
    for this library, not RFC values.

    ``relay_families`` are the address families the I/O layer can bind
    relay sockets in; a request for another gets 440. ``tcp_relay``
    enables RFC 6062 TCP allocations. ``peer_policy`` decides which peer
    addresses may be used (403 otherwise). ``software`` is sent as SOFTWARE
    in responses to authenticated requests only. At most
    ``max_queued_transmits`` messages wait for ``poll_transmit``; more are
    dropped and counted.
    """

    realm: str
    users: Users | None = None
    rest_api_secret: bytes | str | None = None
    unix_time_offset: float = 0.0
    username_anonymity: bool | None = None
    password_algorithms: tuple[PasswordAlgorithm, ...] = (
        PasswordAlgorithm.SHA256,
        PasswordAlgorithm.MD5,
    )
    nonce_secret: bytes | None = None
    nonce_lifetime: float = 600.0
    default_lifetime: int = 600
    max_lifetime: int = 3600
    permission_lifetime: float = 300.0
    channel_lifetime: float = 600.0
    channel_cooloff: float = 300.0
    reservation_lifetime: float = 30.0
    relay_socket_timeout: float = 10.0
    peer_connect_timeout: float = 30.0
    connection_bind_timeout: float = 30.0
    max_allocations: int = 10_000
    max_allocations_per_user: int = 100
    max_permissions: int = 256
    max_channels: int = 256
    max_pending_connections: int = 1024
    max_pending_connections_per_allocation: int = 32
    relay_families: frozenset[AddressFamily] = frozenset(
        (AddressFamily.IPV4, AddressFamily.IPV6)
    )
    tcp_relay: bool = True
    peer_policy: PeerPolicy = field(default_factory=PeerPolicy)
    software: str | None = None
    max_queued_transmits: int = 65_536

    def __post_init__(self) -> None:
        if self.users is None and self.rest_api_secret is None:
            raise ValueError(
                "TURN needs credentials: set users, rest_api_secret or both"
            )
        if self.rest_api_secret is not None and not self.rest_api_secret:
            raise ValueError("rest_api_secret is empty; use a long random secret")
        if not 1 <= self.default_lifetime <= self.max_lifetime:
            raise ValueError(
                f"default_lifetime {self.default_lifetime} must be at least 1 "
                f"and at most max_lifetime {self.max_lifetime}"
            )
        for name in (
            "permission_lifetime",
            "channel_lifetime",
            "channel_cooloff",
            "reservation_lifetime",
            "relay_socket_timeout",
            "peer_connect_timeout",
            "connection_bind_timeout",
            "nonce_lifetime",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} {value!r} is not a positive number")
        for name in (
            "max_allocations",
            "max_allocations_per_user",
            "max_permissions",
            "max_channels",
            "max_pending_connections",
            "max_pending_connections_per_allocation",
            "max_queued_transmits",
        ):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if not self.relay_families:
            raise ValueError("relay_families is empty; list IPv4, IPv6 or both")
        if self.software is not None and len(self.software) > 127:
            raise ValueError(
                f"software of {len(self.software)} characters is too long; "
                "RFC 8489 §14.14 allows at most 127"
            )


class DropReason(enum.Enum):
    """Why a TurnServer dropped a message without a response."""

    MALFORMED = "malformed"
    BAD_FINGERPRINT = "bad_fingerprint"
    RESPONSE = "response"
    UNKNOWN_INDICATION = "unknown_indication"
    NOT_STUN = "not_stun"
    NO_ALLOCATION = "no_allocation"
    NO_PERMISSION = "no_permission"
    NO_CHANNEL = "no_channel"
    FAMILY_MISMATCH = "family_mismatch"
    UNKNOWN_ATTRIBUTE = "unknown_attribute"
    UNKNOWN_RELAY = "unknown_relay"
    TCP_ALLOCATION = "tcp_allocation"
    TOO_LARGE = "too_large"
    DATA_CONNECTION = "data_connection"
    AMPLIFICATION = "amplification"
    QUEUE_FULL = "queue_full"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class TurnServerStats:
    """A snapshot of a TurnServer's counters.

    ``allocations``, ``permissions``, ``channels`` and
    ``peer_connections`` are the current table sizes; the others count
    since the server was created. ``*_to_peer`` counts what the server
    relayed from clients to peers and ``*_to_client`` what it relayed from
    peers to clients, payload bytes only. Traffic that a compiled
    forwarding path relays without calling the server is not included.
    ``dropped`` counts by reason the messages that drew no response.
    ``error_responses`` counts by ERROR-CODE.
    """

    allocations: int
    permissions: int
    channels: int
    peer_connections: int
    allocations_created: int
    allocations_expired: int
    allocations_deleted: int
    requests: int
    success_responses: int
    error_responses: Mapping[int, int]
    packets_to_peer: int
    bytes_to_peer: int
    packets_to_client: int
    bytes_to_client: int
    dropped: Mapping[DropReason, int]


@dataclass(slots=True)
class Counters:
    """The mutable counters behind ``TurnServerStats``."""

    allocations: int = 0
    permissions: int = 0
    channels: int = 0
    peer_connections: int = 0
    allocations_created: int = 0
    allocations_expired: int = 0
    allocations_deleted: int = 0
    requests: int = 0
    success_responses: int = 0
    error_responses: Counter[int] = field(default_factory=Counter)
    packets_to_peer: int = 0
    bytes_to_peer: int = 0
    packets_to_client: int = 0
    bytes_to_client: int = 0
    dropped: Counter[DropReason] = field(default_factory=Counter)

    def snapshot(self) -> TurnServerStats:
        """Copy the counters into a frozen ``TurnServerStats``."""
        return TurnServerStats(
            allocations=self.allocations,
            permissions=self.permissions,
            channels=self.channels,
            peer_connections=self.peer_connections,
            allocations_created=self.allocations_created,
            allocations_expired=self.allocations_expired,
            allocations_deleted=self.allocations_deleted,
            requests=self.requests,
            success_responses=self.success_responses,
            error_responses=dict(self.error_responses),
            packets_to_peer=self.packets_to_peer,
            bytes_to_peer=self.bytes_to_peer,
            packets_to_client=self.packets_to_client,
            bytes_to_client=self.bytes_to_client,
            dropped=dict(self.dropped),
        )


class CredentialLookup:
    """Password lookup over a user table and the TURN REST API scheme.

    ``LongTermAuthenticator`` calls ``password(username)`` without the
    time, so the server sets ``unix_now`` before each authentication.
    """

    __slots__ = ("_hashed_count", "_hashes", "_secret", "_users", "unix_now")

    def __init__(self, users: Users | None, secret: bytes | str | None) -> None:
        self._users = users
        self._secret = secret
        self._hashes: dict[bytes, str] = {}
        self._hashed_count = -1
        self.unix_now = 0.0

    def password(self, username: str) -> str | None:
        """Return the password for ``username``, or None to reject it."""
        if self._secret is not None:
            expiry = rest_api_expiry(username)
            if expiry is not None:
                # An expired REST API username is rejected like an unknown
                # one: the client gets 401 and must fetch new credentials.
                if expiry < self.unix_now:
                    return None
                return rest_api_password(self._secret, username)
        users = self._users
        if users is None:
            return None
        if isinstance(users, Mapping):
            return users.get(username)
        return users(username)

    def username_for_hash(self, hashed: bytes, realm: str) -> str | None:
        """Resolve a USERHASH through the user table, when it is a mapping."""
        users = self._users
        if not isinstance(users, Mapping):
            return None
        if len(users) != self._hashed_count:
            table: dict[bytes, str] = {}
            for name in users:
                try:
                    table[userhash(name, realm)] = name
                except CredentialError:
                    continue
            self._hashes = table
            self._hashed_count = len(users)
        return self._hashes.get(hashed)


def build_authenticator(
    config: TurnServerConfig,
) -> tuple[LongTermAuthenticator, CredentialLookup]:
    """Build the authenticator for ``config`` and the lookup behind it."""
    lookup = CredentialLookup(config.users, config.rest_api_secret)
    anonymity = config.username_anonymity
    if anonymity is None:
        anonymity = isinstance(config.users, Mapping) and config.rest_api_secret is None

    features = SecurityFeatures.PASSWORD_ALGORITHMS
    if anonymity:
        features |= SecurityFeatures.USERNAME_ANONYMITY
    issuer = NonceIssuer(
        config.nonce_secret, lifetime=config.nonce_lifetime, features=features
    )

    realm = config.realm

    def resolve_hash(hashed: bytes) -> str | None:
        return lookup.username_for_hash(hashed, realm)

    authenticator = LongTermAuthenticator(
        realm,
        lookup.password,
        nonce_issuer=issuer,
        algorithms=config.password_algorithms,
        userhash_lookup=resolve_hash if anonymity else None,
    )
    return authenticator, lookup
