"""Server side of the STUN credential mechanisms (RFC 8489 §9.1.3, §9.2.5).

``ShortTermAuthenticator`` checks USERNAME and the integrity attribute
against a table of short-term passwords, as an ICE agent does.
``LongTermAuthenticator`` decides, for one request, whether its USERNAME
or USERHASH, REALM, NONCE and integrity attribute are acceptable. It keeps
no per-client state: nonces come from a ``NonceIssuer``, which signs the
client address and the issue time into each nonce. StunServer uses it for
Binding, and a TURN server can use it for every request method.

The long-term checks run in this order:

1. No MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256: 401 with REALM, a new
   NONCE and, when the nonce cookie announces it, PASSWORD-ALGORITHMS.
2. USERNAME (or USERHASH), REALM or NONCE missing: 400.
3. A NONCE that this issuer did not give this client, or gave it longer ago
   than its lifetime: 438 with a new nonce. RFC 8489 uses 438 for expired
   nonces. An unknown nonce gets the same 438 (rather than a 401), so
   that a client whose address changed, or whose nonce predates a
   server restart, retries once instead of failing.
4. A nonce with the password algorithms bit: either neither
   PASSWORD-ALGORITHMS nor PASSWORD-ALGORITHM (the client follows RFC 5389
   and uses MD5), or both, with PASSWORD-ALGORITHMS equal to the offer and
   PASSWORD-ALGORITHM one of its entries; anything else is a 400, because
   a changed offer means a bid-down attack. A nonce without that bit
   means MD5.
5. A REALM other than ours, a user that is not found, or an integrity
   value that does not match: 401 with a new nonce.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from rice_fast.stun._codec import IntegrityKey, Message, MessageBuilder
from rice_fast.stun._constants import AttributeType, ErrorCode
from rice_fast.stun.attributes import PasswordAlgorithm as PasswordAlgorithmAttribute
from rice_fast.stun.attributes import PasswordAlgorithms
from rice_fast.stun.credentials import (
    NonceIssuer,
    NonceStatus,
    PasswordAlgorithm,
    SecurityFeatures,
    long_term_key,
    nonce_features,
    short_term_key,
    userhash,
)
from rice_fast.stun.errors import CredentialError, StunParseError

__all__ = [
    "AuthResult",
    "Authenticator",
    "LongTermAuthenticator",
    "ShortTermAuthenticator",
]

_log = logging.getLogger(__name__)

_KEY_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of ``LongTermAuthenticator.authenticate`` for one request.

    When ``accepted``, ``username`` and ``key`` identify the user and the
    response must carry integrity under ``key``: MESSAGE-INTEGRITY-SHA256
    when ``use_sha256`` (the request used it), else MESSAGE-INTEGRITY.
    Otherwise the response must be an error response without integrity,
    built with ``add_error_attributes``.
    """

    accepted: bool
    username: str | None = None
    key: IntegrityKey | None = None
    algorithm: PasswordAlgorithm | None = None
    use_sha256: bool = False
    error_code: int = 0
    reason: str = ""
    realm: str | None = None
    nonce: str | None = None
    password_algorithms: bytes | None = None

    def add_error_attributes(self, builder: MessageBuilder) -> None:
        """Add ERROR-CODE, then REALM, NONCE and PASSWORD-ALGORITHMS if set."""
        builder.add_error_code(self.error_code, self.reason)
        if self.realm is not None:
            builder.add_realm(self.realm)
        if self.nonce is not None:
            builder.add_nonce(self.nonce)
        if self.password_algorithms is not None:
            builder.add(AttributeType.PASSWORD_ALGORITHMS, self.password_algorithms)


_BAD_REQUEST = AuthResult(
    accepted=False,
    error_code=ErrorCode.BAD_REQUEST,
    reason=ErrorCode.BAD_REQUEST.reason,
)
_UNAUTHENTICATED = AuthResult(
    accepted=False,
    error_code=ErrorCode.UNAUTHENTICATED,
    reason=ErrorCode.UNAUTHENTICATED.reason,
)


class Authenticator(Protocol):
    """Interface of the credential checkers that StunServer calls."""

    def authenticate(
        self, message: Message, remote: tuple[str, int], now: float
    ) -> AuthResult:
        """Check the credentials of a request received from ``remote``."""
        ...


class ShortTermAuthenticator:
    """Check requests against short-term credentials (RFC 8489 §9.1.3).

    Call ``authenticate(message, remote, now)`` for each request before
    acting on it, and build the response from its result (see
    ``AuthResult``).

    ``users`` maps a USERNAME to its password, or is a callable that
    returns the password or None (an ICE agent looks up its ufrag pair this
    way). A request without USERNAME or without an integrity attribute
    gets 400; an unknown USERNAME or a wrong integrity value gets 401.
    Keys are derived once per (username, password) and cached; neither
    passwords nor keys are logged.
    """

    def __init__(self, users: Mapping[str, str] | Callable[[str], str | None]) -> None:
        self._users = users
        # None marks a password that SASLprep rejects.
        self._keys: dict[tuple[str, str], IntegrityKey | None] = {}

    def authenticate(
        self, message: Message, remote: tuple[str, int], now: float
    ) -> AuthResult:
        """Check the USERNAME and integrity of a request from ``remote``.

        Never raises for the content of ``message``: a malformed USERNAME
        gives a 400 result.
        """
        try:
            username = message.username()
        except StunParseError as exc:
            _log.debug("400 for a request from %s: %s", remote, exc)
            return _BAD_REQUEST
        if username is None or not message.has_integrity:
            _log.debug("400 for a request from %s: credentials are missing", remote)
            return _BAD_REQUEST

        users = self._users
        password = (
            users.get(username) if isinstance(users, Mapping) else users(username)
        )
        if password is None:
            _log.debug("401 for a request from %s: unknown user", remote)
            return _UNAUTHENTICATED
        lookup = (username, password)
        if lookup in self._keys:
            key = self._keys[lookup]
        else:
            try:
                key = IntegrityKey(short_term_key(password))
            except CredentialError as exc:
                # The message gives the position and the rule, not the
                # character. The None entry keeps this warning to one line
                # per user and password.
                _log.warning("password of user %r is unusable: %s", username, exc)
                key = None
            if len(self._keys) >= _KEY_CACHE_LIMIT:
                self._keys.clear()
            self._keys[lookup] = key
        if key is None:
            return _UNAUTHENTICATED
        if not message.check_integrity(key):
            _log.debug("401 for a request from %s: integrity check failed", remote)
            return _UNAUTHENTICATED
        return AuthResult(
            accepted=True,
            username=username,
            key=key,
            use_sha256=message.has_message_integrity_sha256,
        )


class LongTermAuthenticator:
    """Check requests against the long-term credentials of one realm.

    Call ``authenticate(message, remote, now)`` for each request before
    acting on it, and build the response from its result (see
    ``AuthResult``).

    ``users`` maps a username to its password, or is a callable that
    returns the password or None. USERHASH is resolved through a table of
    SHA-256 hashes built from a mapping (and rebuilt when the mapping's size
    changes), or through ``userhash_lookup`` when ``users`` is a callable.
    ``algorithms`` is the PASSWORD-ALGORITHMS offer, in order of
    preference; MD5 stays accepted from clients that send no algorithm
    (RFC 5389 clients) as long as it is in the offer. ``nonce_issuer``
    defaults to a ``NonceIssuer`` with a random secret, a 600 s lifetime
    and the password algorithms feature, plus username anonymity when
    ``username_anonymity`` is true.

    Keys are derived once per (user, password, algorithm) and cached.
    Neither passwords nor keys are logged.
    """

    def __init__(
        self,
        realm: str,
        users: Mapping[str, str] | Callable[[str], str | None],
        *,
        nonce_issuer: NonceIssuer | None = None,
        algorithms: Sequence[PasswordAlgorithm] = (
            PasswordAlgorithm.SHA256,
            PasswordAlgorithm.MD5,
        ),
        userhash_lookup: Callable[[bytes], str | None] | None = None,
        username_anonymity: bool = False,
    ) -> None:
        if not realm:
            raise ValueError("realm must not be empty")
        offer = tuple(PasswordAlgorithm(a) for a in algorithms)
        if not offer:
            raise ValueError("algorithms must name at least one password algorithm")
        if nonce_issuer is None:
            features = SecurityFeatures.PASSWORD_ALGORITHMS
            if username_anonymity:
                features |= SecurityFeatures.USERNAME_ANONYMITY
            nonce_issuer = NonceIssuer(features=features)
        announce = SecurityFeatures.PASSWORD_ALGORITHMS in nonce_issuer.features
        if not announce and PasswordAlgorithm.MD5 not in offer:
            raise ValueError(
                "algorithms without MD5 need a nonce issuer with the "
                "PASSWORD_ALGORITHMS feature, or no client can authenticate"
            )
        # Raises CredentialError for a realm that SASLprep rejects.
        userhash("probe", realm)

        self._realm = realm
        self._users = users
        self._issuer = nonce_issuer
        self._offer = offer
        self._offer_value = (
            PasswordAlgorithms(tuple((int(a), b"") for a in offer)).encode(b"")
            if announce
            else None
        )
        self._announce = announce
        self._userhash_lookup = userhash_lookup
        self._userhashes: dict[bytes, str] = {}
        self._userhash_count = -1
        self._keys: dict[tuple[str, str, PasswordAlgorithm], IntegrityKey] = {}

    @property
    def realm(self) -> str:
        """The REALM sent in challenges and expected in requests."""
        return self._realm

    @property
    def nonce_issuer(self) -> NonceIssuer:
        """The issuer of the NONCE values in challenges."""
        return self._issuer

    @property
    def algorithms(self) -> tuple[PasswordAlgorithm, ...]:
        """The password algorithms offered, in order of preference."""
        return self._offer

    def challenge(self, code: int, remote: tuple[str, int], now: float) -> AuthResult:
        """Return a 401 or 438 result with REALM, a new NONCE and the offer."""
        return AuthResult(
            accepted=False,
            error_code=code,
            reason=ErrorCode(code).reason,
            realm=self._realm,
            nonce=self._issuer.issue(remote, now),
            password_algorithms=self._offer_value,
        )

    def authenticate(
        self, message: Message, remote: tuple[str, int], now: float
    ) -> AuthResult:
        """Check the credentials of a request received from ``remote``.

        Never raises for the content of ``message``: a malformed credential
        attribute gives a 400 result.
        """
        if not message.has_integrity:
            return self.challenge(ErrorCode.UNAUTHENTICATED, remote, now)
        try:
            return self._authenticate(message, remote, now)
        except (StunParseError, CredentialError) as exc:
            _log.debug("400 for a request from %s: %s", remote, exc)
            return _BAD_REQUEST

    def _authenticate(
        self, message: Message, remote: tuple[str, int], now: float
    ) -> AuthResult:
        username = message.username()
        hashed = message.raw(AttributeType.USERHASH)
        realm = message.realm()
        nonce = message.nonce()
        if (username is None and hashed is None) or realm is None or nonce is None:
            _log.debug("400 for a request from %s: credentials are missing", remote)
            return _BAD_REQUEST

        status = self._issuer.check(nonce, remote, now)
        if status is not NonceStatus.VALID:
            _log.debug("438 for a request from %s: nonce is %s", remote, status.value)
            return self.challenge(ErrorCode.STALE_NONCE, remote, now)

        algorithm = self._negotiated_algorithm(message, nonce)
        if algorithm is None:
            _log.debug("400 for a request from %s: password algorithm mismatch", remote)
            return _BAD_REQUEST

        if realm != self._realm:
            _log.debug("401 for a request from %s: realm %r is not ours", remote, realm)
            return self.challenge(ErrorCode.UNAUTHENTICATED, remote, now)
        if username is None:
            assert hashed is not None
            username = self._resolve_userhash(hashed)
        password = None if username is None else self._password(username)
        if username is None or password is None:
            _log.debug("401 for a request from %s: unknown user", remote)
            return self.challenge(ErrorCode.UNAUTHENTICATED, remote, now)

        key = self._key(username, password, algorithm)
        if not message.check_integrity(key):
            _log.debug("401 for a request from %s: integrity check failed", remote)
            return self.challenge(ErrorCode.UNAUTHENTICATED, remote, now)
        return AuthResult(
            accepted=True,
            username=username,
            key=key,
            algorithm=algorithm,
            use_sha256=message.has_message_integrity_sha256,
        )

    def _negotiated_algorithm(
        self, message: Message, nonce: str
    ) -> PasswordAlgorithm | None:
        """Apply RFC 8489 §9.2.5 to PASSWORD-ALGORITHM(S); None means 400."""
        features = nonce_features(nonce)
        announced = (
            features is not None and SecurityFeatures.PASSWORD_ALGORITHMS in features
        )
        offer = message.raw(AttributeType.PASSWORD_ALGORITHMS)
        chosen = message.raw(AttributeType.PASSWORD_ALGORITHM)
        if not announced or (offer is None and chosen is None):
            if PasswordAlgorithm.MD5 not in self._offer:
                return None
            return PasswordAlgorithm.MD5
        if offer is None or chosen is None or offer != self._offer_value:
            return None
        number = PasswordAlgorithmAttribute.decode(
            chosen, message.transaction_id
        ).algorithm
        for algorithm in self._offer:
            if algorithm == number:
                return algorithm
        return None

    def _password(self, username: str) -> str | None:
        users = self._users
        if isinstance(users, Mapping):
            return users.get(username)
        return users(username)

    def _resolve_userhash(self, hashed: bytes) -> str | None:
        users = self._users
        if not isinstance(users, Mapping):
            if self._userhash_lookup is None:
                return None
            return self._userhash_lookup(hashed)
        if len(users) != self._userhash_count:
            table: dict[bytes, str] = {}
            for name in users:
                try:
                    table[userhash(name, self._realm)] = name
                except CredentialError:
                    continue
            self._userhashes = table
            self._userhash_count = len(users)
        return self._userhashes.get(hashed)

    def _key(
        self, username: str, password: str, algorithm: PasswordAlgorithm
    ) -> IntegrityKey:
        # The password is part of the cache key so that a changed password
        # takes effect at once.
        lookup = (username, password, algorithm)
        key = self._keys.get(lookup)
        if key is None:
            if len(self._keys) >= _KEY_CACHE_LIMIT:
                self._keys.clear()
            key = IntegrityKey(
                long_term_key(username, self._realm, password, algorithm)
            )
            self._keys[lookup] = key
        return key
