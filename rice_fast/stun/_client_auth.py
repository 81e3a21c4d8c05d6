"""Client side of the long-term credential mechanism (RFC 8489 §9.2.4)."""

from __future__ import annotations

from dataclasses import dataclass

from rice_fast.stun._codec import IntegrityKey, Message, MessageBuilder
from rice_fast.stun._constants import AttributeType
from rice_fast.stun.attributes import PasswordAlgorithm as PasswordAlgorithmAttribute
from rice_fast.stun.attributes import PasswordAlgorithms
from rice_fast.stun.credentials import (
    MAX_NONCE_BYTES,
    MAX_NONCE_CHARS,
    MAX_REALM_BYTES,
    MAX_REALM_CHARS,
    LongTermCredentials,
    PasswordAlgorithm,
    SecurityFeatures,
    long_term_key,
    nonce_features,
    userhash,
)

__all__ = ["Challenge", "KeyCache", "add_long_term_credentials", "read_challenge"]

_SUPPORTED = frozenset(int(a) for a in PasswordAlgorithm)


@dataclass(frozen=True, slots=True)
class Challenge:
    """Realm, nonce and algorithm choice from a 401 or 438 response.

    ``password_algorithms`` is the PASSWORD-ALGORITHMS value to copy back
    unchanged, or None when the nonce cookie did not set the password
    algorithms bit (an RFC 5389 server: MD5 and MESSAGE-INTEGRITY).
    """

    realm: str
    nonce: str
    algorithm: PasswordAlgorithm
    password_algorithms: bytes | None
    use_userhash: bool


def read_challenge(response: Message, previous: Challenge | None) -> Challenge | str:
    """Read REALM, NONCE and the algorithm offer from a 401 or 438 response.

    Returns the new challenge, or the reason why the client cannot retry.
    A 438 may omit REALM, and then ``previous`` supplies it. A REALM or
    NONCE longer than RFC 8489 allows is a reason not to retry.
    Raises ``StunParseError`` for a malformed attribute.
    """
    nonce = response.nonce()
    realm = response.realm()
    too_long = _too_long(
        "NONCE",
        nonce,
        response.raw(AttributeType.NONCE),
        MAX_NONCE_CHARS,
        MAX_NONCE_BYTES,
        "§14.10",
    ) or _too_long(
        "REALM",
        realm,
        response.raw(AttributeType.REALM),
        MAX_REALM_CHARS,
        MAX_REALM_BYTES,
        "§14.9",
    )
    if too_long:
        return too_long
    if realm is None and previous is not None:
        realm = previous.realm
    if realm is None or nonce is None:
        return "the error response has no REALM or NONCE"

    features = nonce_features(nonce)
    algorithm = PasswordAlgorithm.MD5
    offer: bytes | None = None
    if features is not None and SecurityFeatures.PASSWORD_ALGORITHMS in features:
        offer = response.raw(AttributeType.PASSWORD_ALGORITHMS)
    if offer is not None:
        # RFC 8489 §9.2.4: use the first offered algorithm the client
        # supports, and echo the offer so the server can detect a bid-down.
        entries = PasswordAlgorithms.decode(offer, response.transaction_id)
        chosen = next((a for a, _ in entries.algorithms if a in _SUPPORTED), None)
        if chosen is None:
            return "the server offers no supported password algorithm"
        algorithm = PasswordAlgorithm(chosen)
    use_userhash = (
        features is not None and SecurityFeatures.USERNAME_ANONYMITY in features
    )
    return Challenge(realm, nonce, algorithm, offer, use_userhash)


def _too_long(
    name: str,
    text: str | None,
    value: bytes | None,
    max_chars: int,
    max_bytes: int,
    section: str,
) -> str | None:
    """Return why a REALM or NONCE breaks the RFC 8489 size limits, or None."""
    if text is None or value is None:
        return None
    if len(text) > max_chars or len(value) > max_bytes:
        return (
            f"the {name} of the challenge is {len(text)} characters "
            f"({len(value)} bytes) long, but RFC 8489 {section} allows at most "
            f"{max_chars} characters and {max_bytes} bytes"
        )
    return None


class KeyCache:
    """Long-term keys by (username, realm, password, algorithm).

    Deriving a key hashes the password and keying an ``IntegrityKey`` costs
    more than signing a message, so the agent derives each key once. The
    cache is small and cleared when full.
    """

    __slots__ = ("_keys",)

    _LIMIT = 64

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, str, int], IntegrityKey] = {}

    def get(
        self, credentials: LongTermCredentials, challenge: Challenge
    ) -> IntegrityKey:
        """Return the key for these credentials in the challenge's realm."""
        lookup = (
            credentials.username,
            challenge.realm,
            credentials.password,
            int(challenge.algorithm),
        )
        key = self._keys.get(lookup)
        if key is not None:
            return key
        if (
            credentials.realm == challenge.realm
            and credentials.algorithm == challenge.algorithm
        ):
            key = credentials.key
        else:
            key = IntegrityKey(
                long_term_key(
                    credentials.username,
                    challenge.realm,
                    credentials.password,
                    challenge.algorithm,
                )
            )
        if len(self._keys) >= self._LIMIT:
            self._keys.clear()
        self._keys[lookup] = key
        return key


def add_long_term_credentials(
    builder: MessageBuilder,
    credentials: LongTermCredentials,
    challenge: Challenge,
) -> None:
    """Add USERNAME or USERHASH, REALM, NONCE and the algorithm attributes."""
    if challenge.use_userhash:
        if credentials.realm == challenge.realm:
            hashed = credentials.userhash
        else:
            hashed = userhash(credentials.username, challenge.realm)
        builder.add(AttributeType.USERHASH, hashed)
    else:
        builder.add_username(credentials.username)
    builder.add_realm(challenge.realm)
    builder.add_nonce(challenge.nonce)
    if challenge.password_algorithms is not None:
        builder.add(AttributeType.PASSWORD_ALGORITHMS, challenge.password_algorithms)
        builder.add_attribute(PasswordAlgorithmAttribute(int(challenge.algorithm)))
