"""The data-channel SDP parser and builder of the browser harness."""

from __future__ import annotations

import hashlib

import pytest

from tests.interop.peers.browser.sdp import (
    SdpError,
    build_data_channel_sdp,
    certificate_fingerprint,
    parse_sdp,
)

# An offer in the shape Chromium writes for one data channel, after
# gathering, with made-up credentials, ports and fingerprint.
CHROMIUM_STYLE_OFFER = (
    "v=0\r\n"
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0\r\n"
    "a=extmap-allow-mixed\r\n"
    "a=msid-semantic: WMS\r\n"
    "m=application 40001 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "a=candidate:2832756457 1 udp 2122260223 127.0.0.1 40001 typ host generation 0"
    " network-id 1\r\n"
    "a=candidate:4009343353 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active"
    " generation 0 network-id 1\r\n"
    "a=ice-ufrag:Wq3s\r\n"
    "a=ice-pwd:z1hN0QkXl4n7fS2m8eUy6bTt\r\n"
    "a=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:"
    "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF\r\n"
    "a=setup:actpass\r\n"
    "a=mid:0\r\n"
    "a=sctp-port:5000\r\n"
    "a=max-message-size:262144\r\n"
)

# Session-level credentials and fingerprint, LF line ends, an ice-lite peer.
SESSION_LEVEL_OFFER = (
    "v=0\n"
    "o=mozilla...THIS_IS_SDPARTA-99.0 1 0 IN IP4 0.0.0.0\n"
    "s=-\n"
    "t=0 0\n"
    "a=ice-lite\n"
    "a=ice-ufrag:sess\n"
    "a=ice-pwd:sessionpasswordsessionpw\n"
    "a=fingerprint:sha-256 AA:BB\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n"
    "c=IN IP4 0.0.0.0\n"
    "a=mid:data\n"
    "a=setup:passive\n"
    "a=end-of-candidates\n"
)


def test_parse_chromium_style_offer() -> None:
    section = parse_sdp(CHROMIUM_STYLE_OFFER).data_channel()

    assert section.kind == "application"
    assert section.port == 40001
    assert section.protocol == "UDP/DTLS/SCTP"
    assert section.formats == ("webrtc-datachannel",)
    assert section.mid == "0"
    assert section.ufrag == "Wq3s"
    assert section.pwd == "z1hN0QkXl4n7fS2m8eUy6bTt"
    assert section.setup == "actpass"
    assert section.fingerprint is not None
    assert section.fingerprint.startswith("sha-256 01:23:")
    assert len(section.candidates) == 2
    assert section.candidates[0].startswith("candidate:2832756457 1 udp ")
    assert "tcptype active" in section.candidates[1]
    assert section.end_of_candidates is False
    assert ("sctp-port", "5000") in section.attributes


def test_parse_session_level_attributes() -> None:
    description = parse_sdp(SESSION_LEVEL_OFFER)
    section = description.data_channel()

    assert description.ice_lite is True
    assert section.ufrag == "sess"
    assert section.pwd == "sessionpasswordsessionpw"
    assert section.fingerprint == "sha-256 AA:BB"
    assert section.mid == "data"
    assert section.setup == "passive"
    assert section.candidates == ()
    assert section.end_of_candidates is True


def test_build_then_parse_round_trip() -> None:
    text = build_data_channel_sdp(
        ufrag="abcd",
        pwd="0123456789abcdefghijkl",
        candidates=[
            "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
            "a=candidate:2 1 udp 2130706175 127.0.0.1 5001 typ host",
            "3 1 udp 2130705919 127.0.0.1 5002 typ host",
        ],
        fingerprint="sha-256 AB:CD",
        setup="active",
        mid="7",
        session_id=42,
    )
    description = parse_sdp(text)
    section = description.data_channel()

    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert text.startswith("v=0\r\no=- 42 2 IN IP4 127.0.0.1\r\n")
    assert ("group", "BUNDLE 7") in description.session_attributes
    assert section.port == 9
    assert section.protocol == "UDP/DTLS/SCTP"
    assert section.formats == ("webrtc-datachannel",)
    assert section.mid == "7"
    assert section.ufrag == "abcd"
    assert section.pwd == "0123456789abcdefghijkl"
    assert section.setup == "active"
    assert section.fingerprint == "sha-256 AB:CD"
    assert section.candidates == (
        "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
        "candidate:2 1 udp 2130706175 127.0.0.1 5001 typ host",
        "candidate:3 1 udp 2130705919 127.0.0.1 5002 typ host",
    )
    assert section.end_of_candidates is True
    assert ("ice-options", "trickle") in section.attributes


def test_build_without_trickle_or_end() -> None:
    text = build_data_channel_sdp(
        ufrag="abcd",
        pwd="0123456789abcdefghijkl",
        candidates=[],
        fingerprint="sha-256 AB",
        setup="actpass",
        end_of_candidates=False,
        trickle=False,
    )
    section = parse_sdp(text).data_channel()

    assert section.candidates == ()
    assert section.end_of_candidates is False
    assert ("ice-options", "trickle") not in section.attributes


def test_certificate_fingerprint_format() -> None:
    der = b"not really a certificate"
    digest = hashlib.sha256(der).hexdigest().upper()

    fingerprint = certificate_fingerprint(der)

    algorithm, _, value = fingerprint.partition(" ")
    assert algorithm == "sha-256"
    assert value.split(":") == [digest[i : i + 2] for i in range(0, 64, 2)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "does not start with v=0"),
        ("v=1\r\n", "does not start with v=0"),
        ("v=0\r\nm=application 9\r\n", "fewer than four fields"),
        ("v=0\r\nm=application x UDP/DTLS/SCTP webrtc-datachannel\r\n", "port"),
        ("v=0\r\nbad line\r\n", "invalid SDP line"),
        (
            "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
            "a=setup:sideways\r\n",
            "a=setup",
        ),
    ],
)
def test_parse_rejects_invalid(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=message):
        parse_sdp(text)


def test_data_channel_missing() -> None:
    text = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"

    with pytest.raises(SdpError, match="no m=application"):
        parse_sdp(text).data_channel()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"setup": "both"}, "invalid setup role"),
        ({"ufrag": ""}, "must not be empty"),
    ],
)
def test_build_rejects_invalid(options: dict[str, str], message: str) -> None:
    arguments = {
        "ufrag": "abcd",
        "pwd": "0123456789abcdefghijkl",
        "candidates": [],
        "fingerprint": "sha-256 AB",
        "setup": "active",
        **options,
    }
    with pytest.raises(SdpError, match=message):
        build_data_channel_sdp(**arguments)  # type: ignore[arg-type]
