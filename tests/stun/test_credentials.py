"""Tests for rice_fast.stun.credentials."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import hmac
import pickle
import stringprep
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rice_fast.stun import (
    AttributeType,
    IntegrityKey,
    MessageBuilder,
    MessageClass,
    Method,
    message_type,
    new_transaction_id,
    parse,
)
from rice_fast.stun.credentials import (
    MAX_NONCE_CHARS,
    NONCE_COOKIE,
    LongTermCredentials,
    NonceIssuer,
    NonceStatus,
    PasswordAlgorithm,
    SecurityFeatures,
    ShortTermCredentials,
    long_term_key,
    make_nonce,
    nonce_features,
    rest_api_expiry,
    rest_api_password,
    rest_api_username,
    saslprep,
    short_term_key,
    userhash,
)
from rice_fast.stun.errors import CredentialError, StunError

# RFC 4013 §3, the examples table.
RFC4013_EXAMPLES = [
    pytest.param("I\u00adX", "IX", id="soft-hyphen-mapped-to-nothing"),
    pytest.param("user", "user", id="no-transformation"),
    pytest.param("USER", "USER", id="case-preserved"),
    pytest.param("\u00aa", "a", id="nfkc-latin1-input"),
    pytest.param("\u2168", "IX", id="nfkc-roman-numeral"),
]

RFC4013_ERRORS = [
    pytest.param("\u0007", r"U\+0007 at position 0", id="prohibited-character"),
    pytest.param("\u0627\u0031", r"U\+0031 at position 1", id="bidirectional-check"),
]


@pytest.mark.parametrize(("text", "expected"), RFC4013_EXAMPLES)
def test_saslprep_rfc4013_examples(text: str, expected: str) -> None:
    assert saslprep(text) == expected


@pytest.mark.parametrize(("text", "code_point"), RFC4013_ERRORS)
def test_saslprep_rfc4013_errors(text: str, code_point: str) -> None:
    with pytest.raises(CredentialError, match=code_point):
        saslprep(text)


def test_saslprep_error_is_value_error() -> None:
    with pytest.raises(ValueError) as caught:
        saslprep("\u0007")

    assert isinstance(caught.value, StunError)


def test_saslprep_error_names_position() -> None:
    with pytest.raises(CredentialError, match=r"U\+007F at position 3"):
        saslprep("abc\u007fdef")


def test_saslprep_bidi_error_names_last_position() -> None:
    with pytest.raises(CredentialError, match=r"U\+0031 at position 3"):
        saslprep("\u06271\u06271")


def test_saslprep_error_hides_text() -> None:
    with pytest.raises(CredentialError) as caught:
        saslprep("hunter2-secret\u0000")

    assert "hunter2" not in str(caught.value)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a\u00a0b", "a b", id="no-break-space"),
        pytest.param("a\u3000b", "a b", id="ideographic-space"),
        pytest.param("a\u200bb", "ab", id="zero-width-space"),
        pytest.param("a\ufeffb", "ab", id="zero-width-no-break-space"),
        pytest.param("\ufb01", "fi", id="nfkc-ligature"),
        pytest.param("\u0627\u0628", "\u0627\u0628", id="right-to-left-only"),
        pytest.param("", "", id="empty"),
    ],
)
def test_saslprep_mapping(text: str, expected: str) -> None:
    assert saslprep(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("\u0085", id="non-ascii-control"),
        pytest.param("\ue000", id="private-use"),
        pytest.param("\ufffe", id="non-character"),
        pytest.param("\ud800", id="surrogate"),
        pytest.param("\ufff9", id="not-plain-text"),
        pytest.param("\u2ff0", id="not-canonical"),
        pytest.param("\u200e", id="display-property"),
        pytest.param("\U000e0001", id="tagging"),
        pytest.param("\u0627a\u0627", id="left-to-right-in-right-to-left"),
        pytest.param("1\u0627", id="right-to-left-must-start"),
    ],
)
def test_saslprep_prohibited(text: str) -> None:
    with pytest.raises(CredentialError):
        saslprep(text)


def test_saslprep_unassigned_rejected_for_stored_strings() -> None:
    # U+0221 was assigned in Unicode 4.0, after the Unicode 3.2 tables.
    assert stringprep.in_table_a1("\u0221")

    with pytest.raises(CredentialError, match=r"U\+0221 at position 1"):
        saslprep("a\u0221")


def test_saslprep_unassigned_allowed_for_queries() -> None:
    assert saslprep("a\u0221", allow_unassigned=True) == "a\u0221"


def test_saslprep_rejects_bytes() -> None:
    with pytest.raises(TypeError):
        saslprep(b"user")  # type: ignore[arg-type]


# Every code point, surrogates included.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=24)


@given(ANY_TEXT)
def test_saslprep_is_idempotent(text: str) -> None:
    try:
        prepared = saslprep(text)
    except CredentialError:
        return

    assert saslprep(prepared) == prepared


@given(ANY_TEXT, st.booleans())
def test_saslprep_raises_only_credential_error(text: str, unassigned: bool) -> None:
    try:
        saslprep(text, allow_unassigned=unassigned)
    except CredentialError as error:
        assert "U+" in str(error)


def test_short_term_key_is_prepared_password() -> None:
    assert short_term_key("VOkJxbRl1RmTxUk/WvJxBt") == b"VOkJxbRl1RmTxUk/WvJxBt"
    assert short_term_key("pass\u00adword") == b"password"
    assert short_term_key("\u00e9") == "\u00e9".encode()


def test_long_term_key_md5() -> None:
    # RFC 8489 §9.2.2: MD5 of username ":" realm ":" password.
    expected = hashlib.md5(b"user:realm:pass").digest()

    assert long_term_key("user", "realm", "pass") == expected


def test_long_term_key_sha256() -> None:
    expected = hashlib.sha256(b"user:realm:pass").digest()
    key = long_term_key("user", "realm", "pass", PasswordAlgorithm.SHA256)

    assert key == expected


def test_long_term_key_prepares_every_part() -> None:
    expected = hashlib.md5(b"IX:a:IX").digest()

    assert long_term_key("\u2168", "\u00aa", "I\u00adX") == expected


def test_long_term_key_rejects_unknown_algorithm() -> None:
    with pytest.raises(CredentialError, match="unknown password algorithm 3"):
        long_term_key("user", "realm", "pass", 3)


def test_long_term_key_rejects_long_username() -> None:
    with pytest.raises(CredentialError, match="allows at most 508"):
        long_term_key("u" * 509, "realm", "pass")


def test_long_term_key_rejects_long_realm() -> None:
    with pytest.raises(CredentialError, match="allows at most 127"):
        long_term_key("user", "r" * 128, "pass")


def test_long_term_key_error_hides_password() -> None:
    with pytest.raises(CredentialError) as caught:
        long_term_key("user", "realm", "topsecret\u0001")

    assert "topsecret" not in str(caught.value)


def test_userhash_is_sha256_of_username_and_realm() -> None:
    # RFC 8489 §14.4.
    expected = hashlib.sha256(b"user:example.org").digest()

    assert userhash("user", "example.org") == expected


def test_password_algorithm_numbers() -> None:
    # RFC 8489 §18.5.
    assert PasswordAlgorithm.MD5.value == 1
    assert PasswordAlgorithm.SHA256.value == 2


def test_short_term_credentials_key() -> None:
    credentials = ShortTermCredentials("evtj:h6vY", "VOkJxbRl1RmTxUk/WvJxBt")

    assert credentials.key == IntegrityKey(b"VOkJxbRl1RmTxUk/WvJxBt")
    assert credentials.key is credentials.key


def test_short_term_credentials_frozen() -> None:
    credentials = ShortTermCredentials("a:b", "pass")

    with pytest.raises(dataclasses.FrozenInstanceError):
        credentials.password = "other"  # type: ignore[misc]


def test_short_term_credentials_repr_hides_password() -> None:
    credentials = ShortTermCredentials("a:b", "hunter2")

    assert "hunter2" not in repr(credentials)
    assert "a:b" in repr(credentials)


def test_short_term_credentials_reject_bad_password() -> None:
    with pytest.raises(CredentialError):
        ShortTermCredentials("a:b", "bad\u0007")


def test_short_term_credentials_reject_long_username() -> None:
    with pytest.raises(CredentialError):
        ShortTermCredentials("u" * 509, "pass")


def test_short_term_credentials_equality() -> None:
    first = ShortTermCredentials("a:b", "pass")
    second = ShortTermCredentials("a:b", "pass")

    assert first == second
    assert hash(first) == hash(second)
    assert first != ShortTermCredentials("a:b", "other")


def test_long_term_credentials_key_md5() -> None:
    credentials = LongTermCredentials("user", "pass", "realm")
    expected = IntegrityKey(hashlib.md5(b"user:realm:pass").digest())

    assert credentials.algorithm is PasswordAlgorithm.MD5
    assert credentials.key == expected
    assert credentials.key is credentials.key


def test_long_term_credentials_key_sha256_from_int() -> None:
    credentials = LongTermCredentials("user", "pass", "realm", 2)  # type: ignore[arg-type]
    expected = IntegrityKey(hashlib.sha256(b"user:realm:pass").digest())

    assert credentials.algorithm is PasswordAlgorithm.SHA256
    assert credentials.key == expected


def test_long_term_credentials_userhash() -> None:
    credentials = LongTermCredentials("user", "pass", "realm")

    assert credentials.userhash == userhash("user", "realm")


def test_long_term_credentials_repr_hides_password() -> None:
    credentials = LongTermCredentials("user", "hunter2", "realm")

    assert "hunter2" not in repr(credentials)
    assert "realm" in repr(credentials)
    assert "MD5" in repr(credentials)


def test_long_term_credentials_reject_unknown_algorithm() -> None:
    with pytest.raises(CredentialError):
        LongTermCredentials("user", "pass", "realm", 7)  # type: ignore[arg-type]


def test_long_term_credentials_copy_and_pickle() -> None:
    credentials = LongTermCredentials("user", "pass", "realm", PasswordAlgorithm.SHA256)

    assert copy.copy(credentials) == credentials
    assert copy.deepcopy(credentials).key == credentials.key
    assert pickle.loads(pickle.dumps(credentials)) == credentials


def test_long_term_credentials_replace() -> None:
    credentials = LongTermCredentials("user", "pass", "realm")
    changed = dataclasses.replace(credentials, password="other")

    assert changed.key != credentials.key


def test_security_feature_bit_order() -> None:
    # RFC 8489 §18.1 with erratum 6290: bit 0 is the least significant bit.
    assert make_nonce(SecurityFeatures.PASSWORD_ALGORITHMS, "") == "obMatJos2AAAB"
    assert make_nonce(SecurityFeatures.USERNAME_ANONYMITY, "") == "obMatJos2AAAC"
    assert make_nonce(SecurityFeatures(0), "") == "obMatJos2AAAA"


def test_make_nonce_appends_opaque() -> None:
    both = SecurityFeatures.PASSWORD_ALGORITHMS | SecurityFeatures.USERNAME_ANONYMITY

    assert make_nonce(both, "abc\u00e9") == "obMatJos2AAADabc\u00e9"


@pytest.mark.parametrize("bits", [0, 1, 0x800000, 0xC00000, 0xFFFFFF])
def test_nonce_features_round_trip(bits: int) -> None:
    nonce = make_nonce(bits, "rest")

    assert nonce_features(nonce) == SecurityFeatures(bits)


@pytest.mark.parametrize(
    "nonce",
    [
        pytest.param("f//499k954d6OL34oL9FSTvy64sA", id="rfc5769-nonce"),
        pytest.param("obMatJos2", id="prefix-only"),
        pytest.param("obMatJos2AA", id="short-features"),
        pytest.param("obMatJos2AA==rest", id="padded-features"),
        pytest.param("obMatJos2A*AArest", id="not-base64"),
        pytest.param("obMatJos2\u00e9\u00e9\u00e9\u00e9", id="non-ascii"),
        pytest.param("", id="empty"),
    ],
)
def test_nonce_features_without_cookie(nonce: str) -> None:
    assert nonce_features(nonce) is None


@pytest.mark.parametrize("char", ['"', "\\", "\n", "\r", "\x00", "\x7f", "\ud800"])
def test_make_nonce_rejects_non_qdtext(char: str) -> None:
    with pytest.raises(CredentialError, match="position 14"):
        make_nonce(SecurityFeatures(0), "a" + char)


def test_make_nonce_rejects_long_nonce() -> None:
    make_nonce(SecurityFeatures(0), "a" * (MAX_NONCE_CHARS - 13))

    with pytest.raises(CredentialError, match="allows at most 127"):
        make_nonce(SecurityFeatures(0), "a" * (MAX_NONCE_CHARS - 12))


@pytest.mark.parametrize("bits", [-1, 1 << 24])
def test_make_nonce_rejects_wide_features(bits: int) -> None:
    with pytest.raises(CredentialError):
        make_nonce(bits, "")


CLIENT = ("192.0.2.1", 32853)
SECRET = b"0123456789abcdef0123456789abcdef"


def test_nonce_issuer_valid() -> None:
    issuer = NonceIssuer(SECRET, lifetime=600.0)
    nonce = issuer.issue(CLIENT, now=100.0)

    assert issuer.check(nonce, CLIENT, now=100.0) is NonceStatus.VALID
    assert issuer.check(nonce, CLIENT, now=700.0) is NonceStatus.VALID


def test_nonce_issuer_stale_after_lifetime() -> None:
    issuer = NonceIssuer(SECRET, lifetime=600.0)
    nonce = issuer.issue(CLIENT, now=100.0)

    assert issuer.check(nonce, CLIENT, now=700.5) is NonceStatus.STALE


def test_nonce_issuer_stale_from_future() -> None:
    issuer = NonceIssuer(SECRET)
    nonce = issuer.issue(CLIENT, now=100.0)

    assert issuer.check(nonce, CLIENT, now=99.0) is NonceStatus.STALE


def test_nonce_issuer_invalid_for_other_client() -> None:
    issuer = NonceIssuer(SECRET)
    nonce = issuer.issue(CLIENT, now=1.0)

    assert issuer.check(nonce, ("192.0.2.1", 32854), now=1.0) is NonceStatus.INVALID
    assert issuer.check(nonce, ("192.0.2.2", 32853), now=1.0) is NonceStatus.INVALID
    assert issuer.check(nonce, "192.0.2.1:32853", now=1.0) is NonceStatus.INVALID


def test_nonce_issuer_string_client() -> None:
    issuer = NonceIssuer(SECRET)
    nonce = issuer.issue("udp 192.0.2.1:32853 198.51.100.1:3478", now=1.0)

    assert issuer.check(nonce, "udp 192.0.2.1:32853 198.51.100.1:3478", 2.0) is (
        NonceStatus.VALID
    )
    assert issuer.check(nonce, "udp 192.0.2.1:32853", 2.0) is NonceStatus.INVALID


def test_nonce_issuer_tampered_text() -> None:
    issuer = NonceIssuer(SECRET)
    nonce = issuer.issue(CLIENT, now=1.0)

    for index, char in enumerate(nonce):
        replacement = "B" if char == "A" else "A"
        tampered = nonce[:index] + replacement + nonce[index + 1 :]
        assert issuer.check(tampered, CLIENT, now=1.0) is NonceStatus.INVALID, index


@pytest.mark.parametrize(
    "nonce",
    [
        pytest.param("", id="empty"),
        pytest.param("f//499k954d6OL34oL9FSTvy64sA", id="foreign"),
        pytest.param("obMatJos2AAAA" + "\u00e9" * 32, id="non-ascii"),
        pytest.param("obMatJos2AAAA" + "+" * 32, id="standard-base64"),
        pytest.param("obMatJos2AAAA" + "A" * 31, id="short"),
    ],
)
def test_nonce_issuer_invalid_text(nonce: str) -> None:
    issuer = NonceIssuer(SECRET)

    assert issuer.check(nonce, CLIENT, now=1.0) is NonceStatus.INVALID


def test_nonce_issuer_other_secret_invalid() -> None:
    nonce = NonceIssuer(SECRET).issue(CLIENT, now=1.0)

    assert NonceIssuer().check(nonce, CLIENT, now=1.0) is NonceStatus.INVALID


def test_nonce_issuer_shared_secret_valid() -> None:
    nonce = NonceIssuer(SECRET).issue(CLIENT, now=1.0)

    assert NonceIssuer(SECRET).check(nonce, CLIENT, now=2.0) is NonceStatus.VALID


def test_nonce_issuer_features_bound() -> None:
    features = SecurityFeatures.PASSWORD_ALGORITHMS
    nonce = NonceIssuer(SECRET, features=features).issue(CLIENT, now=1.0)
    other = NonceIssuer(SECRET)

    assert nonce_features(nonce) == features
    assert other.check(nonce, CLIENT, now=1.0) is NonceStatus.INVALID


@pytest.mark.parametrize("now", [0.0, -5.25, 1e12])
def test_nonce_issuer_text_is_valid_nonce(now: float) -> None:
    features = (
        SecurityFeatures.PASSWORD_ALGORITHMS | SecurityFeatures.USERNAME_ANONYMITY
    )
    issuer = NonceIssuer(SECRET, features=features)
    nonce = issuer.issue(CLIENT, now)

    assert nonce.startswith(NONCE_COOKIE)
    assert len(nonce) <= MAX_NONCE_CHARS
    assert nonce.isascii()
    assert '"' not in nonce
    assert "\\" not in nonce
    assert nonce.isprintable()
    assert issuer.features == features
    assert issuer.check(nonce, CLIENT, now) is NonceStatus.VALID


def test_nonce_issuer_nonce_fits_attribute() -> None:
    issuer = NonceIssuer(SECRET)
    builder = MessageBuilder(
        message_type(Method.ALLOCATE, MessageClass.ERROR), new_transaction_id()
    )
    builder.add_nonce(issuer.issue(CLIENT, now=1.0))
    nonce = parse(builder.finish()).nonce()

    assert nonce is not None
    assert issuer.check(nonce, CLIENT, now=1.0) is NonceStatus.VALID


def test_nonce_issuer_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def spy(first: bytes, second: bytes) -> bool:
        calls.append((first, second))
        return real_compare(first, second)

    # The module calls hmac.compare_digest through the hmac module.
    monkeypatch.setattr(hmac, "compare_digest", spy)
    issuer = NonceIssuer(SECRET)
    nonce = issuer.issue(CLIENT, now=1.0)

    assert issuer.check(nonce, CLIENT, now=1.0) is NonceStatus.VALID
    assert len(calls) == 1
    assert len(calls[0][0]) == 16


def test_nonce_issuer_random_secret_by_default() -> None:
    first = NonceIssuer().issue(CLIENT, now=1.0)
    second = NonceIssuer().issue(CLIENT, now=1.0)

    assert first != second


def test_nonce_issuer_rejects_short_secret() -> None:
    with pytest.raises(CredentialError, match="15 bytes"):
        NonceIssuer(b"x" * 15)


@pytest.mark.parametrize("lifetime", [0.0, -1.0, float("nan"), float("inf")])
def test_nonce_issuer_rejects_bad_lifetime(lifetime: float) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        NonceIssuer(SECRET, lifetime=lifetime)


@pytest.mark.parametrize("now", [float("nan"), float("inf"), 1e30])
def test_nonce_issuer_rejects_bad_now(now: float) -> None:
    with pytest.raises(ValueError, match="now"):
        NonceIssuer(SECRET).issue(CLIENT, now)


def test_rest_api_password() -> None:
    # base64(HMAC-SHA1(secret, username)), as coturn's use-auth-secret uses.
    username = rest_api_username("alice", 1700000000)
    digest = hmac.new(b"north", username.encode(), hashlib.sha1).digest()

    assert rest_api_password(b"north", username) == base64.b64encode(digest).decode()
    assert rest_api_password("north", username) == rest_api_password(b"north", username)
    assert len(rest_api_password(b"north", username)) == 28


def test_rest_api_password_rejects_empty_secret() -> None:
    with pytest.raises(CredentialError):
        rest_api_password(b"", "1700000000:alice")


def test_rest_api_username() -> None:
    assert rest_api_username("alice", 1700000000) == "1700000000:alice"


@pytest.mark.parametrize("expiry", [-1, True, 1.5])
def test_rest_api_username_rejects_bad_expiry(expiry: int) -> None:
    with pytest.raises(CredentialError):
        rest_api_username("alice", expiry)


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("1700000000:alice", 1700000000),
        ("1700000000:alice:extra", 1700000000),
        ("1700000000", 1700000000),
        ("alice", None),
        ("alice:1700000000", None),
        ("17x:alice", None),
        (":alice", None),
        ("\u00b2:alice", None),
        ("9" * 5000 + ":alice", None),
        ("", None),
    ],
)
def test_rest_api_expiry(username: str, expected: int | None) -> None:
    assert rest_api_expiry(username) == expected


def build_request(credentials: LongTermCredentials, *, sha256: bool) -> bytes:
    builder = MessageBuilder(
        message_type(Method.ALLOCATE, MessageClass.REQUEST), new_transaction_id()
    )
    builder.add_username(credentials.username)
    builder.add_realm(credentials.realm)
    builder.add_nonce(make_nonce(SecurityFeatures.PASSWORD_ALGORITHMS, "xyz"))
    if sha256:
        builder.add_message_integrity_sha256(credentials.key)
    else:
        builder.add_message_integrity(credentials.key)
    builder.add_fingerprint()
    data: bytes = builder.finish()
    return data


def test_round_trip_sha1_with_md5_key() -> None:
    credentials = LongTermCredentials("alice", "s3cret", "example.org")
    message = parse(build_request(credentials, sha256=False))
    wrong = LongTermCredentials("alice", "s3cret!", "example.org")

    assert message.has_message_integrity
    assert message.check_message_integrity(credentials.key)
    assert message.check_fingerprint()
    assert message.username() == "alice"
    assert not message.check_message_integrity(wrong.key)


def test_round_trip_sha256_with_sha256_key() -> None:
    credentials = LongTermCredentials(
        "alice", "s3cret", "example.org", PasswordAlgorithm.SHA256
    )
    message = parse(build_request(credentials, sha256=True))
    md5 = LongTermCredentials("alice", "s3cret", "example.org")

    assert message.has_message_integrity_sha256
    assert message.check_message_integrity_sha256(credentials.key)
    assert message.check_integrity(credentials.key)
    assert message.check_fingerprint()
    assert not message.check_message_integrity_sha256(md5.key)


def test_round_trip_both_integrity_attributes() -> None:
    # RFC 8489 §14.6 allows MESSAGE-INTEGRITY before MESSAGE-INTEGRITY-SHA256.
    credentials = ShortTermCredentials("a:b", "password")
    builder = MessageBuilder(
        message_type(Method.BINDING, MessageClass.REQUEST), new_transaction_id()
    )
    builder.add_username(credentials.username)
    builder.add_message_integrity(credentials.key)
    builder.add_message_integrity_sha256(credentials.key, length=16)
    builder.add_fingerprint()
    message = parse(builder.finish())

    assert message.check_message_integrity(credentials.key)
    assert message.check_message_integrity_sha256(credentials.key)
    assert len(message.raw(AttributeType.MESSAGE_INTEGRITY_SHA256) or b"") == 16
    assert message.check_fingerprint()


@pytest.mark.parametrize(
    ("build", "subject"),
    [
        (lambda: LongTermCredentials("al\u0007ice", "secret", "realm"), "username"),
        (lambda: LongTermCredentials("alice", "secret", "re\u0007alm"), "realm"),
        (lambda: LongTermCredentials("alice", "se\u0007cret", "realm"), "password"),
        (lambda: ShortTermCredentials("alice", "se\u0007cret"), "password"),
        (lambda: long_term_key("alice", "realm", "se\u0007cret"), "password"),
        (lambda: userhash("al\u0007ice", "realm"), "username"),
    ],
    ids=["long-username", "long-realm", "long-password", "short", "key", "hash"],
)
def test_saslprep_error_names_the_part(
    build: Callable[[], object], subject: str
) -> None:
    with pytest.raises(CredentialError) as caught:
        build()

    message = str(caught.value)
    assert message.startswith(f"invalid {subject}: ")
    assert "position 2" in message
    assert "ASCII control character" in message
    if subject == "password":
        assert "U+0007" not in message
        assert "\u0007" not in message
        assert "cret" not in message
    else:
        assert "U+0007" in message


def test_saslprep_password_hides_normalized_character() -> None:
    # U+FB01 (the "fi" ligature) becomes "fi" under NFKC, and those
    # left-to-right letters between Arabic letters break the bidi rule.
    # The "f" exists only in the NFKC text, so the position is counted there.
    with pytest.raises(CredentialError) as caught:
        short_term_key("\u0627\ufb01\u0627")

    message = str(caught.value)
    assert message.startswith("invalid password: ")
    assert "U+" not in message
    assert "RFC 3454" in message


def test_saslprep_password_type_error_names_password() -> None:
    with pytest.raises(TypeError, match="password must be str"):
        short_term_key(5)  # type: ignore[arg-type]
