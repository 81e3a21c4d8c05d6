"""LongTermAuthenticator and ShortTermAuthenticator on hand-built requests."""

from __future__ import annotations

import logging

import pytest

from rice_fast.stun import IntegrityKey, Message, MessageBuilder, Method, parse
from rice_fast.stun._constants import AttributeType, MessageClass, message_type
from rice_fast.stun.attributes import PasswordAlgorithm as PasswordAlgorithmAttribute
from rice_fast.stun.attributes import PasswordAlgorithms
from rice_fast.stun.auth import (
    AuthResult,
    LongTermAuthenticator,
    ShortTermAuthenticator,
)
from rice_fast.stun.credentials import (
    NO_FEATURES,
    NonceIssuer,
    PasswordAlgorithm,
    SecurityFeatures,
    long_term_key,
    nonce_features,
    userhash,
)

CLIENT = ("192.0.2.10", 50000)
REALM = "example.org"
USERS = {"alice": "alice-password", "bob": "bob-password"}
SHA256_FIRST = PasswordAlgorithms(((2, b""), (1, b""))).encode(b"")


def binding() -> MessageBuilder:
    return MessageBuilder(
        message_type(Method.BINDING, MessageClass.REQUEST), b"\x09" * 12
    )


def signed(
    nonce: str,
    *,
    username: str | None = "alice",
    password: str = "alice-password",
    realm: str | None = REALM,
    algorithm: PasswordAlgorithm | None = None,
    offer: bytes | None = None,
    hashed: bool = False,
    sha256: bool = False,
) -> Message:
    """Build a long-term request as a client would after a challenge."""
    builder = binding()
    if hashed:
        assert username is not None
        builder.add(AttributeType.USERHASH, userhash(username, REALM))
    elif username is not None:
        builder.add_username(username)
    if realm is not None:
        builder.add_realm(realm)
    builder.add_nonce(nonce)
    if offer is not None:
        builder.add(AttributeType.PASSWORD_ALGORITHMS, offer)
    if algorithm is not None:
        builder.add_attribute(PasswordAlgorithmAttribute(int(algorithm)))
    key_algorithm = algorithm if algorithm is not None else PasswordAlgorithm.MD5
    key = IntegrityKey(
        long_term_key(username or "alice", REALM, password, key_algorithm)
    )
    return parse(builder.finish(key, sha256=sha256, fingerprint=True))


def challenge_nonce(authenticator: LongTermAuthenticator, now: float = 0.0) -> str:
    result = authenticator.authenticate(parse(binding().finish()), CLIENT, now)
    assert result.nonce is not None
    return result.nonce


def authenticator(**kwargs: object) -> LongTermAuthenticator:
    return LongTermAuthenticator(REALM, USERS, **kwargs)  # type: ignore[arg-type]


def assert_challenge(result: AuthResult, code: int) -> None:
    assert not result.accepted
    assert result.error_code == code
    assert result.realm == REALM
    assert result.nonce is not None
    assert result.key is None


def test_no_integrity_gets_401_challenge() -> None:
    auth = authenticator()

    result = auth.authenticate(parse(binding().finish()), CLIENT, 0.0)

    assert_challenge(result, 401)
    assert result.reason == "Unauthenticated"
    assert result.password_algorithms == SHA256_FIRST
    assert result.nonce is not None
    features = nonce_features(result.nonce)
    assert features is not None
    assert SecurityFeatures.PASSWORD_ALGORITHMS in features
    assert SecurityFeatures.USERNAME_ANONYMITY not in features


def test_challenge_error_attributes() -> None:
    result = authenticator().authenticate(parse(binding().finish()), CLIENT, 0.0)
    builder = MessageBuilder(
        message_type(Method.BINDING, MessageClass.ERROR), b"\x09" * 12
    )

    result.add_error_attributes(builder)
    response = parse(builder.finish())

    assert response.error_code() == (401, "Unauthenticated")
    assert response.realm() == REALM
    assert response.nonce() == result.nonce
    assert response.raw(AttributeType.PASSWORD_ALGORITHMS) == SHA256_FIRST


def test_username_anonymity_in_nonce() -> None:
    nonce = challenge_nonce(authenticator(username_anonymity=True))

    features = nonce_features(nonce)
    assert features is not None
    assert SecurityFeatures.USERNAME_ANONYMITY in features


def test_sha256_request_accepted() -> None:
    auth = authenticator()
    nonce = challenge_nonce(auth)
    request = signed(
        nonce, algorithm=PasswordAlgorithm.SHA256, offer=SHA256_FIRST, sha256=True
    )

    result = auth.authenticate(request, CLIENT, 1.0)

    assert result.accepted
    assert result.username == "alice"
    assert result.algorithm is PasswordAlgorithm.SHA256
    assert result.use_sha256
    assert result.key == IntegrityKey(
        long_term_key("alice", REALM, "alice-password", PasswordAlgorithm.SHA256)
    )


def test_md5_with_offer_accepted() -> None:
    auth = authenticator()
    nonce = challenge_nonce(auth)
    request = signed(nonce, algorithm=PasswordAlgorithm.MD5, offer=SHA256_FIRST)

    result = auth.authenticate(request, CLIENT, 1.0)

    assert result.accepted
    assert result.algorithm is PasswordAlgorithm.MD5
    assert not result.use_sha256


def test_rfc5389_client_md5_accepted() -> None:
    # A client that ignores the nonce cookie sends neither
    # PASSWORD-ALGORITHMS nor PASSWORD-ALGORITHM and uses MD5.
    auth = authenticator()
    nonce = challenge_nonce(auth)

    result = auth.authenticate(signed(nonce), CLIENT, 1.0)

    assert result.accepted
    assert result.algorithm is PasswordAlgorithm.MD5


def test_rfc5389_client_rejected_without_md5() -> None:
    auth = authenticator(algorithms=(PasswordAlgorithm.SHA256,))
    nonce = challenge_nonce(auth)

    result = auth.authenticate(signed(nonce), CLIENT, 1.0)

    assert not result.accepted
    assert result.error_code == 400


def test_changed_offer_is_bid_down() -> None:
    auth = authenticator()
    nonce = challenge_nonce(auth)
    md5_only = PasswordAlgorithms(((1, b""),)).encode(b"")

    result = auth.authenticate(
        signed(nonce, algorithm=PasswordAlgorithm.MD5, offer=md5_only), CLIENT, 1.0
    )

    assert not result.accepted
    assert result.error_code == 400
    assert result.nonce is None


def test_algorithm_without_offer_rejected() -> None:
    auth = authenticator()
    nonce = challenge_nonce(auth)

    result = auth.authenticate(
        signed(nonce, algorithm=PasswordAlgorithm.SHA256, sha256=True), CLIENT, 1.0
    )

    assert result.error_code == 400


def test_algorithm_outside_offer_rejected() -> None:
    auth = authenticator(algorithms=(PasswordAlgorithm.SHA256,))
    nonce = challenge_nonce(auth)
    offer = PasswordAlgorithms(((2, b""),)).encode(b"")

    result = auth.authenticate(
        signed(nonce, algorithm=PasswordAlgorithm.MD5, offer=offer), CLIENT, 1.0
    )

    assert result.error_code == 400


@pytest.mark.parametrize(
    "missing", ["username", "realm"], ids=["no username", "no realm"]
)
def test_missing_credential_attribute_gets_400(missing: str) -> None:
    auth = authenticator()
    nonce = challenge_nonce(auth)
    request = signed(
        nonce,
        username=None if missing == "username" else "alice",
        realm=None if missing == "realm" else REALM,
    )

    result = auth.authenticate(request, CLIENT, 1.0)

    assert not result.accepted
    assert result.error_code == 400
    assert result.realm is None


def test_expired_nonce_gets_438() -> None:
    issuer = NonceIssuer(lifetime=10.0, features=SecurityFeatures.PASSWORD_ALGORITHMS)
    auth = authenticator(nonce_issuer=issuer)
    nonce = challenge_nonce(auth, now=0.0)

    result = auth.authenticate(signed(nonce), CLIENT, 11.0)

    assert_challenge(result, 438)
    assert result.reason == "Stale Nonce"
    assert result.nonce != nonce
    assert auth.authenticate(signed(result.nonce or ""), CLIENT, 11.0).accepted


def test_nonce_of_other_client_gets_438() -> None:
    auth = authenticator()
    nonce = challenge_nonce(auth)

    result = auth.authenticate(signed(nonce), ("192.0.2.11", 50000), 1.0)

    assert_challenge(result, 438)


def test_forged_nonce_gets_438() -> None:
    result = authenticator().authenticate(
        signed("obMatJos2gAAAnot-a-real-nonce"), CLIENT, 1.0
    )

    assert_challenge(result, 438)


def test_wrong_password_gets_401() -> None:
    auth = authenticator()
    nonce = challenge_nonce(auth)

    result = auth.authenticate(signed(nonce, password="guess"), CLIENT, 1.0)

    assert_challenge(result, 401)


def test_unknown_user_gets_401() -> None:
    auth = authenticator()
    nonce = challenge_nonce(auth)

    result = auth.authenticate(signed(nonce, username="mallory"), CLIENT, 1.0)

    assert_challenge(result, 401)


def test_other_realm_gets_401() -> None:
    auth = authenticator()
    nonce = challenge_nonce(auth)

    result = auth.authenticate(signed(nonce, realm="other.example"), CLIENT, 1.0)

    assert_challenge(result, 401)


def test_userhash_resolved_from_mapping() -> None:
    users = dict(USERS)
    auth = LongTermAuthenticator(REALM, users, username_anonymity=True)
    nonce = challenge_nonce(auth)
    request = signed(
        nonce,
        algorithm=PasswordAlgorithm.SHA256,
        offer=SHA256_FIRST,
        hashed=True,
        sha256=True,
    )

    result = auth.authenticate(request, CLIENT, 1.0)
    assert result.accepted
    assert result.username == "alice"

    users["carol"] = "carol-password"
    carol = signed(nonce, username="carol", password="carol-password", hashed=True)
    assert auth.authenticate(carol, CLIENT, 1.0).username == "carol"


def test_userhash_resolved_by_callable() -> None:
    hashes = {userhash("alice", REALM): "alice"}
    auth = LongTermAuthenticator(
        REALM, USERS.get, userhash_lookup=hashes.get, username_anonymity=True
    )
    nonce = challenge_nonce(auth)

    result = auth.authenticate(signed(nonce, hashed=True), CLIENT, 1.0)

    assert result.accepted
    assert result.username == "alice"


def test_userhash_without_lookup_gets_401() -> None:
    auth = LongTermAuthenticator(REALM, USERS.get)
    nonce = challenge_nonce(auth)

    result = auth.authenticate(signed(nonce, hashed=True), CLIENT, 1.0)

    assert_challenge(result, 401)


def test_user_lookup_callable() -> None:
    calls: list[str] = []

    def lookup(username: str) -> str | None:
        calls.append(username)
        return USERS.get(username)

    auth = LongTermAuthenticator(REALM, lookup)
    nonce = challenge_nonce(auth)

    assert auth.authenticate(signed(nonce), CLIENT, 1.0).accepted
    assert calls == ["alice"]


def test_key_cached_per_user_and_algorithm() -> None:
    auth = authenticator()
    nonce = challenge_nonce(auth)

    first = auth.authenticate(signed(nonce), CLIENT, 1.0)
    second = auth.authenticate(signed(nonce), CLIENT, 2.0)
    sha = auth.authenticate(
        signed(
            nonce, algorithm=PasswordAlgorithm.SHA256, offer=SHA256_FIRST, sha256=True
        ),
        CLIENT,
        3.0,
    )

    assert first.key is second.key
    assert sha.key is not first.key


def test_changed_password_takes_effect() -> None:
    users = dict(USERS)
    auth = LongTermAuthenticator(REALM, users)
    nonce = challenge_nonce(auth)
    assert auth.authenticate(signed(nonce), CLIENT, 1.0).accepted

    users["alice"] = "new-password"

    assert not auth.authenticate(signed(nonce), CLIENT, 2.0).accepted
    assert auth.authenticate(
        signed(nonce, password="new-password"), CLIENT, 2.0
    ).accepted


def test_rfc5389_issuer_offers_no_algorithms() -> None:
    auth = authenticator(
        algorithms=(PasswordAlgorithm.MD5,),
        nonce_issuer=NonceIssuer(features=NO_FEATURES),
    )

    result = auth.authenticate(parse(binding().finish()), CLIENT, 0.0)

    assert result.password_algorithms is None
    assert result.nonce is not None
    assert nonce_features(result.nonce) == NO_FEATURES


def test_malformed_username_gets_400() -> None:
    builder = binding()
    builder.add(AttributeType.USERNAME, b"\xff\xfe")
    builder.add_realm(REALM)
    builder.add_nonce(challenge_nonce(authenticator()))
    request = parse(builder.finish(IntegrityKey(b"k"), fingerprint=True))

    result = authenticator().authenticate(request, CLIENT, 1.0)

    assert result.error_code == 400


def test_no_secret_in_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    auth = authenticator()
    nonce = challenge_nonce(auth)
    caplog.set_level(logging.DEBUG, logger="rice_fast.stun.auth")

    auth.authenticate(signed(nonce, password="guess"), CLIENT, 1.0)
    auth.authenticate(signed(nonce), CLIENT, 1.0)

    assert caplog.records
    assert "alice-password" not in caplog.text
    assert "guess" not in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"algorithms": ()}, "algorithms"),
        (
            {
                "algorithms": (PasswordAlgorithm.SHA256,),
                "nonce_issuer": NonceIssuer(features=NO_FEATURES),
            },
            "MD5",
        ),
    ],
)
def test_invalid_configuration_raises(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        authenticator(**kwargs)


def test_empty_realm_raises() -> None:
    with pytest.raises(ValueError, match="realm"):
        LongTermAuthenticator("", USERS)


# Short-term credentials.


def short_term_request(
    username: str | None, password: str, *, sha256: bool = False
) -> Message:
    builder = binding()
    if username is not None:
        builder.add_username(username)
    key = IntegrityKey(password.encode())
    return parse(builder.finish(key, sha256=sha256, fingerprint=True))


def test_short_term_accepted() -> None:
    auth = ShortTermAuthenticator({"r:l": "ice-password"})

    result = auth.authenticate(short_term_request("r:l", "ice-password"), CLIENT, 0.0)

    assert result.accepted
    assert result.username == "r:l"
    assert result.key == IntegrityKey(b"ice-password")
    assert not result.use_sha256


def test_short_term_sha256_answered_in_kind() -> None:
    auth = ShortTermAuthenticator({"r:l": "ice-password"})
    request = short_term_request("r:l", "ice-password", sha256=True)

    assert auth.authenticate(request, CLIENT, 0.0).use_sha256


@pytest.mark.parametrize(
    ("request_message", "code"),
    [
        (short_term_request(None, "ice-password"), 400),
        (parse(binding().finish()), 400),
        (short_term_request("x:y", "ice-password"), 401),
        (short_term_request("r:l", "wrong"), 401),
    ],
    ids=["no username", "no integrity", "unknown username", "wrong password"],
)
def test_short_term_rejected(request_message: Message, code: int) -> None:
    auth = ShortTermAuthenticator(
        lambda name: "ice-password" if name == "r:l" else None
    )

    result = auth.authenticate(request_message, CLIENT, 0.0)

    assert not result.accepted
    assert result.error_code == code
    assert result.realm is None
    assert result.nonce is None


def test_short_term_unusable_password_warning_hides_character(
    caplog: pytest.LogCaptureFixture,
) -> None:
    auth = ShortTermAuthenticator({"r:l": "pass\u0007word"})
    request = short_term_request("r:l", "pass\u0007word")
    caplog.set_level(logging.WARNING, logger="rice_fast.stun.auth")

    first = auth.authenticate(request, CLIENT, 0.0)
    second = auth.authenticate(request, CLIENT, 1.0)

    assert first.error_code == 401
    assert second.error_code == 401
    (record,) = caplog.records
    message = record.getMessage()
    assert "'r:l'" in message
    assert "password" in message
    assert "position 4" in message
    assert "ASCII control character" in message
    assert "U+0007" not in message
    assert "\u0007" not in message
    assert "pass" not in message.replace("password", "")
