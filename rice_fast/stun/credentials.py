"""STUN credentials: SASLprep, integrity keys, nonces and time-limited passwords.

RFC 8489 §9 defines two credential mechanisms. The short-term mechanism
(§9.1, used by ICE) keys MESSAGE-INTEGRITY with the prepared password. The
long-term mechanism (§9.2, used by TURN) keys it with a hash of username,
realm and password, and the server hands out a NONCE that the client echoes
back. This module derives those keys and wraps them in the ``IntegrityKey``
objects that the codec signs and verifies messages with. It also encodes the
nonce cookie that announces RFC 8489 security features, issues stateless
expiring nonces for servers, and computes the time-limited "TURN REST API"
passwords that let relay nodes share users without sharing state.

No function here logs, and no exception message contains a password, a key
or a secret.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import secrets
import stringprep
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from rice_fast.stun._codec import IntegrityKey
from rice_fast.stun.errors import CredentialError

__all__ = [
    "MAX_NONCE_BYTES",
    "MAX_NONCE_CHARS",
    "MAX_REALM_BYTES",
    "MAX_REALM_CHARS",
    "MAX_USERNAME_BYTES",
    "NONCE_COOKIE",
    "NO_FEATURES",
    "CredentialError",
    "LongTermCredentials",
    "NonceIssuer",
    "NonceStatus",
    "PasswordAlgorithm",
    "SecurityFeatures",
    "ShortTermCredentials",
    "long_term_key",
    "make_nonce",
    "nonce_features",
    "rest_api_expiry",
    "rest_api_password",
    "rest_api_username",
    "saslprep",
    "short_term_key",
    "userhash",
]

# RFC 8489 §14.3: USERNAME is fewer than 509 bytes of UTF-8.
MAX_USERNAME_BYTES: Final = 508
# RFC 8489 §14.9 and §14.10: REALM and NONCE are fewer than 128 characters,
# and their values at most 763 bytes.
MAX_REALM_CHARS: Final = 127
MAX_NONCE_CHARS: Final = 127
MAX_REALM_BYTES: Final = 763
MAX_NONCE_BYTES: Final = 763

# RFC 3454 and so RFC 4013 are defined on Unicode 3.2, and the standard
# library's ``stringprep`` tables use the same version.
_UCD_3_2 = unicodedata.ucd_3_2_0

# RFC 4013 §2.3: characters that must not appear in SASLprep output, with the
# reason that error messages give.
_PROHIBITED: Final[tuple[tuple[Callable[[str], bool], str], ...]] = (
    (stringprep.in_table_c12, "non-ASCII space (RFC 3454 table C.1.2)"),
    (stringprep.in_table_c21, "ASCII control character (RFC 3454 table C.2.1)"),
    (stringprep.in_table_c22, "non-ASCII control character (RFC 3454 table C.2.2)"),
    (stringprep.in_table_c3, "private use code point (RFC 3454 table C.3)"),
    (stringprep.in_table_c4, "non-character code point (RFC 3454 table C.4)"),
    (stringprep.in_table_c5, "surrogate code point (RFC 3454 table C.5)"),
    (stringprep.in_table_c6, "not plain text (RFC 3454 table C.6)"),
    (stringprep.in_table_c7, "not canonical representation (RFC 3454 table C.7)"),
    (stringprep.in_table_c8, "display property or deprecated (RFC 3454 table C.8)"),
    (stringprep.in_table_c9, "tagging character (RFC 3454 table C.9)"),
)


def saslprep(text: str, *, allow_unassigned: bool = False) -> str:
    """Prepare ``text`` with the SASLprep profile of stringprep (RFC 4013).

    The steps are those of RFC 4013 §2. Characters of RFC 3454 table B.1
    (such as U+00AD) are removed and non-ASCII spaces (table C.1.2) become
    U+0020. The result is normalized with NFKC on Unicode 3.2, checked for
    prohibited output (tables C.1.2, C.2.1, C.2.2 and C.3 to C.9) and for
    the bidirectional rules of RFC 3454 §6. Unassigned code points (table
    A.1) are rejected, as RFC 4013 §2.5 requires for stored strings such as
    passwords, unless ``allow_unassigned`` is true (the rule for queries).

    Raises:
        CredentialError: a character is prohibited, unassigned or breaks
            the bidirectional rules. The message names the character's
            position and code point, never the text.
        TypeError: ``text`` is not a ``str``.
    """
    return _saslprep(text, allow_unassigned=allow_unassigned)


def _saslprep(
    text: str,
    *,
    allow_unassigned: bool = False,
    subject: str | None = None,
    secret: bool = False,
) -> str:
    """Prepare ``text`` as ``saslprep`` does, with errors that name ``subject``.

    With ``secret`` (a password) the message gives the position and the
    rule that failed, but not the code point.
    """
    if not isinstance(text, str):
        if subject is None:
            raise TypeError(f"saslprep takes str, not {type(text).__name__}")
        raise TypeError(f"{subject} must be str, not {type(text).__name__}")

    # Printable ASCII is its own SASLprep output: no ASCII character is
    # mapped, NFKC leaves it alone, and only ASCII controls are prohibited.
    if text.isascii() and text.isprintable():
        return text

    mapped = "".join(_map_character(char) for char in text)
    prepared = _UCD_3_2.normalize("NFKC", mapped)

    for index, char in enumerate(prepared):
        reason: str | None = None
        for in_table, prohibited in _PROHIBITED:
            if in_table(char):
                reason = prohibited
                break
        if reason is None and not allow_unassigned and stringprep.in_table_a1(char):
            reason = "code point unassigned in Unicode 3.2 (RFC 3454 table A.1)"
        if reason is not None:
            raise _rejected(text, prepared, index, reason, subject, secret)

    _check_bidi(text, prepared, subject, secret)
    return prepared


def _map_character(char: str) -> str:
    if stringprep.in_table_b1(char):
        return ""
    if stringprep.in_table_c12(char):
        return " "
    return char


def _check_bidi(text: str, prepared: str, subject: str | None, secret: bool) -> None:
    # RFC 3454 §6: a string with any right-to-left character (table D.1)
    # contains no left-to-right character (table D.2), and starts and ends
    # with a right-to-left character. Table C.8 was rejected already.
    if not any(stringprep.in_table_d1(char) for char in prepared):
        return

    for index, char in enumerate(prepared):
        if stringprep.in_table_d2(char):
            reason = "left-to-right character in right-to-left text (RFC 3454 §6)"
            raise _rejected(text, prepared, index, reason, subject, secret)

    for index, end in ((0, "start"), (len(prepared) - 1, "end")):
        if not stringprep.in_table_d1(prepared[index]):
            reason = f"right-to-left text must {end} with a right-to-left character"
            raise _rejected(
                text, prepared, index, reason + " (RFC 3454 §6)", subject, secret
            )


def _rejected(
    text: str,
    prepared: str,
    index: int,
    reason: str,
    subject: str | None,
    secret: bool,
) -> CredentialError:
    # Most rejected characters pass mapping and NFKC unchanged, so the same
    # occurrence in the caller's text gives the useful position. The others
    # only exist after normalization.
    char = prepared[index]
    position = -1
    for _ in range(prepared.count(char, 0, index) + 1):
        position = text.find(char, position + 1)
        if position < 0:
            break

    if position >= 0:
        where = f"position {position}"
    else:
        where = f"position {index} of the NFKC-normalized text"
    shown = "a character" if secret else f"U+{ord(char):04X}"
    message = f"SASLprep rejected {shown} at {where}: {reason}"
    if subject is not None:
        message = f"invalid {subject}: {message}"
    return CredentialError(message)


class PasswordAlgorithm(enum.IntEnum):
    """Password algorithms of the long-term mechanism (RFC 8489 §18.5)."""

    MD5 = 0x0001
    SHA256 = 0x0002


def _password_algorithm(value: int) -> PasswordAlgorithm:
    try:
        return PasswordAlgorithm(value)
    except ValueError:
        raise CredentialError(
            f"unknown password algorithm {value!r}, expected 1 (MD5) or 2 (SHA-256)"
        ) from None


def _check_username_size(username: str) -> None:
    if not isinstance(username, str):
        raise TypeError(f"username must be str, not {type(username).__name__}")
    size = len(username.encode("utf-8", "surrogatepass"))
    if size > MAX_USERNAME_BYTES:
        raise CredentialError(
            f"username is {size} bytes of UTF-8, but RFC 8489 §14.3 allows at "
            f"most {MAX_USERNAME_BYTES}"
        )


def _prepare_username(username: str) -> str:
    prepared = _saslprep(username, subject="username")
    _check_username_size(prepared)
    return prepared


def _prepare_realm(realm: str) -> str:
    prepared = _saslprep(realm, subject="realm")
    if len(prepared) > MAX_REALM_CHARS:
        raise CredentialError(
            f"realm is {len(prepared)} characters long, but RFC 8489 §14.9 "
            f"allows at most {MAX_REALM_CHARS}"
        )
    return prepared


def _prepare_password(password: str) -> str:
    # The message names the position and the rule, never the character.
    return _saslprep(password, subject="password", secret=True)


def short_term_key(password: str) -> bytes:
    """Derive the short-term integrity key: UTF-8 of SASLprep(password).

    RFC 8489 §9.1.1. Raises ``CredentialError`` when SASLprep rejects the
    password.
    """
    return _prepare_password(password).encode("utf-8")


def long_term_key(
    username: str,
    realm: str,
    password: str,
    algorithm: int = PasswordAlgorithm.MD5,
) -> bytes:
    """Derive the long-term integrity key of RFC 8489 §9.2.2.

    The key is MD5 (16 bytes) or SHA-256 (32 bytes) of
    ``username ":" realm ":" password``, each part prepared and encoded as
    UTF-8.

    NOTE: RFC 8489 prepares the three parts with the OpaqueString profile
    of RFC 8265, and this function applies SASLprep (RFC 4013), which
    RFC 5389 used. The two agree on ASCII text. OpaqueString normalizes
    with NFC where SASLprep uses NFKC, so for example SASLprep turns U+2168
    into "IX" and OpaqueString keeps it. The RFC 8489 Appendix B.1 sample
    password contains U+00AD, U+00AA and U+2168, and the RFC gives its
    SASLprep result, "TheMatrIX", as the prepared form.

    Raises:
        CredentialError: a part is rejected by SASLprep or too long, or
            ``algorithm`` is not MD5 or SHA-256.
    """
    chosen = _password_algorithm(algorithm)
    text = ":".join(
        (
            _prepare_username(username),
            _prepare_realm(realm),
            _prepare_password(password),
        )
    )
    data = text.encode("utf-8")
    if chosen is PasswordAlgorithm.SHA256:
        return hashlib.sha256(data).digest()
    return hashlib.md5(data).digest()


def userhash(username: str, realm: str) -> bytes:
    """Compute the USERHASH value: SHA-256 of ``username ":" realm``.

    RFC 8489 §14.4, with both parts prepared as in ``long_term_key``.
    Raises ``CredentialError`` when a part is rejected or too long.
    """
    text = f"{_prepare_username(username)}:{_prepare_realm(realm)}"
    return hashlib.sha256(text.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True, repr=False)
class ShortTermCredentials:
    """A username and password of the short-term mechanism (RFC 8489 §9.1).

    ICE uses these with ``username`` set to ``"remote-ufrag:local-ufrag"``.
    The integrity key is derived once, at construction, so bad input raises
    ``CredentialError`` here rather than on the first message.
    """

    username: str
    password: str
    _key: IntegrityKey = field(init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _check_username_size(self.username)
        object.__setattr__(self, "_key", IntegrityKey(short_term_key(self.password)))

    @property
    def key(self) -> IntegrityKey:
        """Integrity key for MESSAGE-INTEGRITY and MESSAGE-INTEGRITY-SHA256."""
        return self._key

    def __repr__(self) -> str:
        return f"ShortTermCredentials(username={self.username!r}, password=<hidden>)"

    def __reduce__(self) -> tuple[type[ShortTermCredentials], tuple[str, str]]:
        return (type(self), (self.username, self.password))


@dataclass(frozen=True, slots=True, repr=False)
class LongTermCredentials:
    """A username, password and realm of the long-term mechanism (RFC 8489 §9.2).

    ``algorithm`` selects the MD5 or SHA-256 key (RFC 8489 §18.5), and an
    ``int`` is converted to ``PasswordAlgorithm``. The integrity key and USERHASH are
    derived once, at construction, so bad input raises ``CredentialError``
    here rather than on the first message.
    """

    username: str
    password: str
    realm: str
    algorithm: PasswordAlgorithm = PasswordAlgorithm.MD5
    _key: IntegrityKey = field(init=False, compare=False, hash=False)
    _userhash: bytes = field(init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        algorithm = _password_algorithm(self.algorithm)
        key = long_term_key(self.username, self.realm, self.password, algorithm)
        object.__setattr__(self, "algorithm", algorithm)
        object.__setattr__(self, "_key", IntegrityKey(key))
        object.__setattr__(self, "_userhash", userhash(self.username, self.realm))

    @property
    def key(self) -> IntegrityKey:
        """Integrity key for MESSAGE-INTEGRITY and MESSAGE-INTEGRITY-SHA256."""
        return self._key

    @property
    def userhash(self) -> bytes:
        """USERHASH value for this username and realm (RFC 8489 §14.4)."""
        return self._userhash

    def __repr__(self) -> str:
        return (
            f"LongTermCredentials(username={self.username!r}, password=<hidden>, "
            f"realm={self.realm!r}, algorithm={self.algorithm.name})"
        )

    def __reduce__(
        self,
    ) -> tuple[type[LongTermCredentials], tuple[str, str, str, PasswordAlgorithm]]:
        return (type(self), (self.username, self.password, self.realm, self.algorithm))


# RFC 8489 §9.2: a server that implements RFC 8489 starts every NONCE with
# this string and 4 base64 characters of the 24-bit security feature set.
NONCE_COOKIE: Final = "obMatJos2"
_COOKIE_LENGTH: Final = len(NONCE_COOKIE) + 4


class SecurityFeatures(enum.IntFlag):
    """STUN security features announced by the nonce cookie (RFC 8489 §18.1).

    The value is the 24-bit set read as a big-endian number, with bit 0 the
    least significant bit. RFC 8489 first numbered the bits from the other
    end; its verified erratum 6290 says bit 0 is the rightmost bit, which
    matches the Appendix B.1 sample request: that nonce sets ``1 << 1`` and
    the request carries USERHASH.
    """

    PASSWORD_ALGORITHMS = 1 << 0
    USERNAME_ANONYMITY = 1 << 1


NO_FEATURES: Final = SecurityFeatures(0)


def make_nonce(features: SecurityFeatures | int, opaque: str) -> str:
    """Build a NONCE value: the nonce cookie for ``features``, then ``opaque``.

    Raises:
        CredentialError: ``features`` does not fit in 24 bits, ``opaque``
            contains a character that is not qdtext (RFC 8489 §14.10 and
            RFC 3261: no ``"``, ``\\`` or control characters), or the nonce
            would be 128 characters or longer.
    """
    bits = int(features)
    if not 0 <= bits < 1 << 24:
        raise CredentialError(
            f"security features {bits:#x} do not fit in 24 bits (RFC 8489 §9.2)"
        )

    for index, char in enumerate(opaque):
        if not _is_qdtext(char):
            raise CredentialError(
                f"nonce character U+{ord(char):04X} at position "
                f"{_COOKIE_LENGTH + index} is not qdtext (RFC 8489 §14.10)"
            )

    encoded = base64.b64encode(bits.to_bytes(3, "big")).decode("ascii")
    nonce = NONCE_COOKIE + encoded + opaque
    if len(nonce) > MAX_NONCE_CHARS:
        raise CredentialError(
            f"nonce is {len(nonce)} characters long, but RFC 8489 §14.10 "
            f"allows at most {MAX_NONCE_CHARS}"
        )
    return nonce


def _is_qdtext(char: str) -> bool:
    # RFC 3261 §25.1: qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII.
    # Line folding is left out, and surrogates cannot be encoded as UTF-8.
    code = ord(char)
    if code >= 0x80:
        return not 0xD800 <= code <= 0xDFFF
    return char in " \t!" or 0x23 <= code <= 0x5B or 0x5D <= code <= 0x7E


def nonce_features(nonce: str) -> SecurityFeatures | None:
    """Read the security features from a NONCE value's cookie.

    Returns ``None`` when ``nonce`` does not start with a nonce cookie,
    which means that the server follows RFC 5389 rather than RFC 8489.
    Unassigned bits are kept in the returned value.
    """
    if len(nonce) < _COOKIE_LENGTH or not nonce.startswith(NONCE_COOKIE):
        return None
    try:
        raw = base64.b64decode(nonce[len(NONCE_COOKIE) : _COOKIE_LENGTH], validate=True)
    except ValueError:
        return None
    if len(raw) != 3:
        return None
    return SecurityFeatures(int.from_bytes(raw, "big"))


class NonceStatus(enum.Enum):
    """Result of ``NonceIssuer.check``."""

    VALID = "valid"
    STALE = "stale"
    INVALID = "invalid"


_BASE64URL: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)
_TAG_SIZE: Final = 16
# 8 bytes of issue time and the tag, in base64url without padding.
_NONCE_BODY_CHARS: Final = 32


class NonceIssuer:
    """Issue NONCE values that expire, and check them without per-client state.

    A nonce is the nonce cookie of ``features``, then 32 base64url
    characters. They carry the issue time (signed milliseconds on the
    caller's clock) and a 16-byte tag: HMAC-SHA256 under ``secret`` of the
    cookie, the issue time and the client, truncated. ``check`` recomputes
    the HMAC for the client at hand, so a nonce is valid only for the client
    it was issued to, and only for ``lifetime`` seconds after ``issue``.

    Call ``issue(client, now)`` when sending a 401 or 438 error response,
    and ``check(nonce, client, now)`` on each authenticated request. A STALE
    nonce calls for 438 (Stale Nonce) with a new nonce, and an INVALID one
    for 401 (Unauthenticated).

    Server processes that share ``secret`` accept each other's nonces as long
    as their ``now`` values come from the same clock, such as
    ``time.monotonic()`` on one host. A random secret is drawn when none is
    given, so nonces do not survive a restart.
    """

    __slots__ = ("_cookie", "_features", "_lifetime", "_mac")

    def __init__(
        self,
        secret: bytes | None = None,
        lifetime: float = 600.0,
        features: SecurityFeatures | int = NO_FEATURES,
    ) -> None:
        if secret is None:
            secret = secrets.token_bytes(32)
        if not isinstance(secret, bytes):
            raise TypeError(f"nonce secret must be bytes, not {type(secret).__name__}")
        if len(secret) < 16:
            raise CredentialError(
                f"nonce secret is {len(secret)} bytes long, but at least 16 "
                "random bytes are required"
            )
        if not (math.isfinite(lifetime) and lifetime > 0):
            raise ValueError(
                f"nonce lifetime {lifetime!r} is not a positive number of seconds"
            )

        self._cookie = make_nonce(features, "")
        self._features = SecurityFeatures(int(features))
        self._lifetime = float(lifetime)
        # Keyed once: each nonce copies this object instead of re-keying.
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)

    @property
    def lifetime(self) -> float:
        """Seconds for which an issued nonce is VALID."""
        return self._lifetime

    @property
    def features(self) -> SecurityFeatures:
        """Security features that the issued nonces announce."""
        return self._features

    def issue(self, client: tuple[str, int] | str, now: float) -> str:
        """Return a new nonce for ``client``, valid from ``now`` for ``lifetime``.

        ``client`` is the request's source address, or any string that
        identifies the client, such as a 5-tuple written out.
        """
        stamp = struct.pack("!q", _milliseconds(now))
        body = base64.urlsafe_b64encode(stamp + self._tag(stamp, client))
        return self._cookie + body.decode("ascii")

    def check(
        self, nonce: str, client: tuple[str, int] | str, now: float
    ) -> NonceStatus:
        """Check a nonce that ``client`` sent back at time ``now``.

        Returns INVALID when this issuer did not issue ``nonce`` to
        ``client``, STALE when it did but more than ``lifetime`` seconds
        before ``now`` (or after ``now``, on a clock that went back), and
        VALID otherwise. Any text is accepted without raising.
        """
        cookie_length = len(self._cookie)
        if len(nonce) != cookie_length + _NONCE_BODY_CHARS:
            return NonceStatus.INVALID
        if not nonce.startswith(self._cookie):
            return NonceStatus.INVALID

        body = nonce[cookie_length:]
        if not _BASE64URL.issuperset(body):
            return NonceStatus.INVALID
        raw = base64.urlsafe_b64decode(body)

        stamp = raw[:8]
        if not hmac.compare_digest(raw[8:], self._tag(stamp, client)):
            return NonceStatus.INVALID

        (issued,) = struct.unpack("!q", stamp)
        age = now - issued / 1000
        if not 0 <= age <= self._lifetime:
            return NonceStatus.STALE
        return NonceStatus.VALID

    def _tag(self, stamp: bytes, client: tuple[str, int] | str) -> bytes:
        mac = self._mac.copy()
        mac.update(self._cookie.encode("ascii"))
        mac.update(stamp)
        mac.update(_client_bytes(client))
        return mac.digest()[:_TAG_SIZE]


def _milliseconds(now: float) -> int:
    # The issue time travels as a signed 64-bit count of milliseconds.
    if not (math.isfinite(now) and abs(now) < 2**53):
        raise ValueError(f"now {now!r} is not a finite time in seconds")
    return math.floor(now * 1000)


def _client_bytes(client: tuple[str, int] | str) -> bytes:
    # The leading letter keeps a string client from matching an address.
    if isinstance(client, str):
        return b"s" + client.encode("utf-8", "surrogatepass")
    host, port = client[0], client[1]
    return b"a" + f"{host}\x00{port}".encode("utf-8", "surrogatepass")


def rest_api_password(secret: bytes | str, username: str) -> str:
    """Compute the "TURN REST API" password for ``username``.

    The password is base64 of HMAC-SHA1 keyed with the secret shared by the
    TURN servers and the service that hands out credentials, as coturn's
    ``use-auth-secret`` option expects. A ``str`` secret is encoded as UTF-8.

    Raises:
        CredentialError: ``secret`` is empty.
    """
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        raise CredentialError("TURN REST API secret is empty")
    digest = hmac.new(key, username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def rest_api_username(user: str, expiry: int) -> str:
    """Build a "TURN REST API" username: ``f"{expiry}:{user}"``.

    ``expiry`` is the UNIX time in seconds after which the server rejects
    the credentials.

    Raises:
        CredentialError: ``expiry`` is not a non-negative ``int``.
    """
    if isinstance(expiry, bool) or not isinstance(expiry, int) or expiry < 0:
        raise CredentialError(
            f"expiry {expiry!r} is not a non-negative UNIX time in seconds"
        )
    return f"{expiry}:{user}"


def rest_api_expiry(username: str) -> int | None:
    """Read the expiry time from a "TURN REST API" username.

    Returns the UNIX time before the first ``":"`` (or the whole username
    when it is only digits), or ``None`` when there is no such time. Any
    text is accepted without raising.
    """
    head = username.split(":", 1)[0]

    # Python refuses to convert very long digit strings, and no UNIX time
    # needs more than 20 digits.
    if not head or len(head) > 20 or not (head.isascii() and head.isdigit()):
        return None
    return int(head)
