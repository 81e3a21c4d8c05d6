"""Unit tests of ICE candidates: priorities, foundations, SDP lines, checks.

The browser lines below are written by hand in the shapes that Chromium and
Firefox put in RTCIceCandidate.candidate and in SDP. Chromium writes the
transport in lower case and appends generation, ufrag, network-id and
network-cost. Firefox writes UDP and TCP in upper case with no extensions.
Addresses are from the documentation ranges of RFC 5737 and RFC 3849.
"""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from rice_fast.ice.candidate import (
    MAX_PRIORITY,
    Candidate,
    CandidateType,
    TcpType,
    candidate_priority,
    compute_foundation,
    default_type_preference,
    pair_priority,
    tcp_direction_preference,
    tcp_local_preference,
)
from rice_fast.ice.errors import CandidateError, CandidateParseError, IceError
from rice_fast.stun.transport import Address, TransportType

HOST = CandidateType.HOST
SRFLX = CandidateType.SERVER_REFLEXIVE
PRFLX = CandidateType.PEER_REFLEXIVE
RELAY = CandidateType.RELAYED
UDP = TransportType.UDP
TCP = TransportType.TCP

CHROME_HOST = (
    "candidate:1467250027 1 udp 2122260223 192.168.1.5 54321 typ host"
    " generation 0 ufrag 4ZcD network-id 1 network-cost 10"
)
CHROME_HOST_IPV6 = (
    "candidate:3574426211 1 udp 2122262783 2001:db8::5 54322 typ host"
    " generation 0 ufrag 4ZcD network-id 2 network-cost 10"
)
CHROME_MDNS = (
    "candidate:1467250027 1 udp 2122260223"
    " 5f3c8a8e-3e37-4c8b-9d2b-2a5fd0b6d1a0.local 54321 typ host"
    " generation 0 ufrag 4ZcD network-id 1 network-cost 10"
)
CHROME_SRFLX_HIDDEN = (
    "candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx"
    " raddr 0.0.0.0 rport 0 generation 0 ufrag 4ZcD network-id 1 network-cost 10"
)
CHROME_RELAY = (
    "candidate:2157334355 1 udp 41885439 198.51.100.9 61000 typ relay"
    " raddr 203.0.113.7 rport 54321 generation 0 ufrag 4ZcD network-id 1"
    " network-cost 10"
)
CHROME_TCP_ACTIVE = (
    "candidate:1853887674 1 tcp 1518280447 192.168.1.5 9 typ host"
    " tcptype active generation 0 ufrag 4ZcD network-id 1 network-cost 10"
)
FIREFOX_HOST = "candidate:0 1 UDP 2122252543 192.168.1.5 58017 typ host"
FIREFOX_HOST_IPV6 = "candidate:1 1 UDP 2122187007 2001:db8::5 51402 typ host"
FIREFOX_SRFLX = (
    "candidate:3 1 UDP 1686052863 203.0.113.7 58017 typ srflx"
    " raddr 192.168.1.5 rport 58017"
)
FIREFOX_RELAY = (
    "candidate:5 1 UDP 92217087 198.51.100.9 56233 typ relay"
    " raddr 203.0.113.7 rport 58017"
)
FIREFOX_TCP_ACTIVE = (
    "candidate:2 1 TCP 2105524479 192.168.1.5 9 typ host tcptype active"
)
FIREFOX_TCP_PASSIVE = (
    "candidate:4 1 TCP 2105458943 192.168.1.5 52118 typ host tcptype passive"
)

BROWSER_LINES = [
    CHROME_HOST,
    CHROME_HOST_IPV6,
    CHROME_MDNS,
    CHROME_SRFLX_HIDDEN,
    CHROME_RELAY,
    CHROME_TCP_ACTIVE,
    FIREFOX_HOST,
    FIREFOX_HOST_IPV6,
    FIREFOX_SRFLX,
    FIREFOX_RELAY,
    FIREFOX_TCP_ACTIVE,
    FIREFOX_TCP_PASSIVE,
]


def make_candidate(**changes: object) -> Candidate:
    fields: dict[str, object] = {
        "foundation": "1",
        "component": 1,
        "transport": UDP,
        "priority": 2130706431,
        "address": ("192.0.2.1", 5000),
        "type": HOST,
    }
    fields.update(changes)
    return Candidate(**fields)  # type: ignore[arg-type]


def parse_error(line: str) -> CandidateParseError:
    with pytest.raises(CandidateParseError) as caught:
        Candidate.from_sdp(line)
    return caught.value


# Priorities


def test_candidate_priority_formula() -> None:
    # RFC 8445 §5.1.2.1: 2^24 * type pref + 2^8 * local pref + (256 - component).
    assert candidate_priority(126, 65535, 1) == 2130706431
    assert candidate_priority(126, 65535, 2) == 2130706430
    assert candidate_priority(0, 0, 255) == 1
    assert candidate_priority(100, 0, 256) == 100 << 24


def test_candidate_priority_limits() -> None:
    assert candidate_priority(126, 65535, 1) <= MAX_PRIORITY
    for arguments, field in [
        ((127, 0, 1), "type_preference"),
        ((-1, 0, 1), "type_preference"),
        ((0, 65536, 1), "local_preference"),
        ((0, 0, 0), "component"),
        ((0, 0, 257), "component"),
        ((True, 0, 1), "type_preference"),
        ((0, 0, 256), "priority"),
    ]:
        with pytest.raises(CandidateError) as caught:
            candidate_priority(*arguments)
        assert caught.value.field == field


def test_default_type_preferences() -> None:
    # RFC 8445 §5.1.2.2 recommended values.
    assert default_type_preference(HOST) == 126
    assert default_type_preference(PRFLX) == 110
    assert default_type_preference(SRFLX) == 100
    assert default_type_preference(RELAY) == 0


def test_default_type_preference_tcp() -> None:
    # RFC 6544 §4.2 keeps the UDP type preferences for TCP candidates.
    for candidate_type in CandidateType:
        udp = default_type_preference(candidate_type, UDP)
        for tcp_type in TcpType:
            tcp = default_type_preference(candidate_type, TCP, tcp_type)
            assert tcp == udp


def test_default_type_preference_rejects() -> None:
    with pytest.raises(CandidateError) as caught:
        default_type_preference(HOST, UDP, TcpType.ACTIVE)
    assert caught.value.field == "tcp_type"
    with pytest.raises(CandidateError) as caught:
        default_type_preference(HOST, TransportType.TLS)
    assert caught.value.field == "transport"
    with pytest.raises(CandidateError) as caught:
        default_type_preference("host")  # type: ignore[arg-type]
    assert caught.value.field == "type"


def test_tcp_direction_preferences() -> None:
    # RFC 6544 §4.2: host and relayed rank active > passive > so, and NATed
    # (server-reflexive) candidates rank so > active > passive.
    for candidate_type in (HOST, RELAY):
        assert tcp_direction_preference(candidate_type, TcpType.ACTIVE) == 6
        assert tcp_direction_preference(candidate_type, TcpType.PASSIVE) == 4
        assert tcp_direction_preference(candidate_type, TcpType.SIMULTANEOUS_OPEN) == 2
    for candidate_type in (SRFLX, PRFLX):
        assert tcp_direction_preference(candidate_type, TcpType.SIMULTANEOUS_OPEN) == 6
        assert tcp_direction_preference(candidate_type, TcpType.ACTIVE) == 4
        assert tcp_direction_preference(candidate_type, TcpType.PASSIVE) == 2


def test_tcp_local_preference() -> None:
    # RFC 6544 §4.2: 2^13 * direction-pref + other-pref, other-pref 8191
    # with a single address.
    assert tcp_local_preference(HOST, TcpType.ACTIVE) == 6 * 8192 + 8191
    assert tcp_local_preference(HOST, TcpType.PASSIVE, 0) == 4 * 8192
    assert tcp_local_preference(SRFLX, TcpType.SIMULTANEOUS_OPEN, 100) == 6 * 8192 + 100
    with pytest.raises(CandidateError) as caught:
        tcp_local_preference(HOST, TcpType.ACTIVE, 8192)
    assert caught.value.field == "other_preference"
    with pytest.raises(CandidateError) as caught:
        tcp_local_preference(HOST, "active")  # type: ignore[arg-type]
    assert caught.value.field == "tcp_type"


def test_udp_host_outranks_tcp_host() -> None:
    udp = candidate_priority(default_type_preference(HOST), 65535, 1)
    best_tcp = max(
        candidate_priority(
            default_type_preference(HOST, TCP, tcp_type),
            tcp_local_preference(HOST, tcp_type),
            1,
        )
        for tcp_type in TcpType
    )
    assert udp > best_tcp


def test_browser_priorities_follow_formula() -> None:
    # The component is the low byte and the type preference the high byte.
    for line in BROWSER_LINES:
        candidate = Candidate.from_sdp(line)
        assert candidate.priority & 0xFF == 256 - candidate.component
    host = Candidate.from_sdp(CHROME_HOST)
    assert host.priority >> 24 == 126
    srflx = Candidate.from_sdp(FIREFOX_SRFLX)
    assert srflx.priority >> 24 == 100


def test_pair_priority_formula() -> None:
    # RFC 8445 §6.1.2.3: 2^32 * min(G, D) + 2 * max(G, D) + (G > D ? 1 : 0).
    high, low = 2130706431, 1694498815
    assert pair_priority(high, low) == 7277816997797167103
    assert pair_priority(low, high) == 7277816997797167102
    assert pair_priority(5, 5) == (5 << 32) + 10
    assert pair_priority(MAX_PRIORITY, MAX_PRIORITY) < 2**63


def test_pair_priority_rejects() -> None:
    for controlling, controlled, field in [
        (0, 1, "controlling"),
        (1, 0, "controlled"),
        (MAX_PRIORITY + 1, 1, "controlling"),
    ]:
        with pytest.raises(CandidateError) as caught:
            pair_priority(controlling, controlled)
        assert caught.value.field == field


# Foundations


def test_foundation_pinned_value() -> None:
    # A pinned value, so a change of the hash or of its input format fails
    # here: foundations must be the same in every call and every process.
    assert compute_foundation(HOST, "192.168.1.5", None, UDP) == "B2jAOd4W"
    server: Address = ("198.51.100.1", 3478)
    assert compute_foundation(SRFLX, "192.168.1.5", server, UDP) == "cjCxUe3F"


def test_foundation_format() -> None:
    foundation = compute_foundation(RELAY, "2001:db8::5", ("2001:db8::1", 3478), TCP)
    assert 1 <= len(foundation) <= 32
    assert foundation.isascii()
    assert foundation.replace("+", "").replace("/", "").isalnum()
    assert make_candidate(foundation=foundation).foundation == foundation


def test_foundation_same_inputs() -> None:
    # RFC 8445 §5.1.1.3: same type, base IP, server IP and transport give
    # the same foundation, whatever the ports.
    first = compute_foundation(SRFLX, "192.168.1.5", ("198.51.100.1", 3478), UDP)
    second = compute_foundation(SRFLX, "192.168.1.5", ("198.51.100.1", 5349), UDP)
    assert first == second
    ipv6_short = compute_foundation(HOST, "2001:db8::5", None, UDP)
    ipv6_long = compute_foundation(HOST, "2001:0DB8:0:0:0:0:0:5", None, UDP)
    assert ipv6_short == ipv6_long


def test_foundation_differs_per_input() -> None:
    server: Address = ("198.51.100.1", 3478)
    base = compute_foundation(SRFLX, "192.168.1.5", server, UDP)
    assert compute_foundation(RELAY, "192.168.1.5", server, UDP) != base
    assert compute_foundation(SRFLX, "192.168.1.6", server, UDP) != base
    assert compute_foundation(SRFLX, "192.168.1.5", ("198.51.100.2", 3478), UDP) != base
    assert compute_foundation(SRFLX, "192.168.1.5", server, TCP) != base
    assert compute_foundation(SRFLX, "192.168.1.5", None, UDP) != base
    eth0 = compute_foundation(HOST, "fe80::1%eth0", None, UDP)
    eth1 = compute_foundation(HOST, "fe80::1%eth1", None, UDP)
    assert eth0 != eth1


def test_foundation_rejects() -> None:
    for arguments, field in [
        ((HOST, "192.168.1.5", ("198.51.100.1", 3478), UDP), "server"),
        ((HOST, "", None, UDP), "base_ip"),
        ((HOST, "192.168.1.5", None, TransportType.TLS), "transport"),
        (("host", "192.168.1.5", None, UDP), "type"),
    ]:
        with pytest.raises(CandidateError) as caught:
            compute_foundation(*arguments)  # type: ignore[arg-type]
        assert caught.value.field == field


# Parsing browser lines


def test_parse_chrome_host() -> None:
    candidate = Candidate.from_sdp(CHROME_HOST)
    assert candidate.foundation == "1467250027"
    assert candidate.component == 1
    assert candidate.transport is UDP
    assert candidate.priority == 2122260223
    assert candidate.address == ("192.168.1.5", 54321)
    assert candidate.type is HOST
    assert candidate.related_address is None
    assert candidate.tcp_type is None
    assert candidate.extensions == (
        ("generation", "0"),
        ("ufrag", "4ZcD"),
        ("network-id", "1"),
        ("network-cost", "10"),
    )
    assert candidate.base_address is None
    assert not candidate.is_mdns


def test_parse_chrome_host_ipv6() -> None:
    candidate = Candidate.from_sdp(CHROME_HOST_IPV6)
    assert candidate.address == ("2001:db8::5", 54322)
    assert candidate.extension("network-id") == "2"


def test_parse_chrome_mdns() -> None:
    candidate = Candidate.from_sdp(CHROME_MDNS)
    assert candidate.address == ("5f3c8a8e-3e37-4c8b-9d2b-2a5fd0b6d1a0.local", 54321)
    assert candidate.is_mdns
    assert candidate.type is HOST


def test_parse_chrome_srflx_hidden_related() -> None:
    candidate = Candidate.from_sdp(CHROME_SRFLX_HIDDEN)
    assert candidate.type is SRFLX
    assert candidate.address == ("203.0.113.7", 54321)
    assert candidate.related_address == ("0.0.0.0", 0)
    assert candidate.related_address_hidden
    assert candidate.extension("ufrag") == "4ZcD"


def test_parse_chrome_relay() -> None:
    candidate = Candidate.from_sdp(CHROME_RELAY)
    assert candidate.type is RELAY
    assert candidate.priority == 41885439
    assert candidate.address == ("198.51.100.9", 61000)
    assert candidate.related_address == ("203.0.113.7", 54321)
    assert not candidate.related_address_hidden


def test_parse_chrome_tcp_active() -> None:
    candidate = Candidate.from_sdp(CHROME_TCP_ACTIVE)
    assert candidate.transport is TCP
    assert candidate.tcp_type is TcpType.ACTIVE
    assert candidate.address == ("192.168.1.5", 9)
    assert candidate.extension("generation") == "0"
    assert ("tcptype", "active") not in candidate.extensions


def test_parse_firefox_host() -> None:
    candidate = Candidate.from_sdp(FIREFOX_HOST)
    assert candidate.foundation == "0"
    assert candidate.transport is UDP
    assert candidate.priority == 2122252543
    assert candidate.address == ("192.168.1.5", 58017)
    assert candidate.extensions == ()


def test_parse_firefox_host_ipv6() -> None:
    candidate = Candidate.from_sdp(FIREFOX_HOST_IPV6)
    assert candidate.address == ("2001:db8::5", 51402)
    assert candidate.transport is UDP


def test_parse_firefox_srflx() -> None:
    candidate = Candidate.from_sdp(FIREFOX_SRFLX)
    assert candidate.type is SRFLX
    assert candidate.related_address == ("192.168.1.5", 58017)
    assert not candidate.related_address_hidden


def test_parse_firefox_relay() -> None:
    candidate = Candidate.from_sdp(FIREFOX_RELAY)
    assert candidate.type is RELAY
    assert candidate.address == ("198.51.100.9", 56233)
    assert candidate.related_address == ("203.0.113.7", 58017)


def test_parse_firefox_tcp() -> None:
    active = Candidate.from_sdp(FIREFOX_TCP_ACTIVE)
    assert active.transport is TCP
    assert active.tcp_type is TcpType.ACTIVE
    assert active.address == ("192.168.1.5", 9)
    passive = Candidate.from_sdp(FIREFOX_TCP_PASSIVE)
    assert passive.tcp_type is TcpType.PASSIVE
    assert passive.address[1] == 52118


def test_parse_tcp_simultaneous_open() -> None:
    line = "candidate:7 1 tcp 1684796671 203.0.113.7 40000 typ srflx raddr 10.0.0.2"
    candidate = Candidate.from_sdp(line + " rport 40000 tcptype so")
    assert candidate.tcp_type is TcpType.SIMULTANEOUS_OPEN
    assert candidate.related_address == ("10.0.0.2", 40000)


def test_parse_ipv6_zone() -> None:
    line = "candidate:2 1 udp 2122262783 fe80::1%eth0 40000 typ host"
    candidate = Candidate.from_sdp(line)
    assert candidate.address == ("fe80::1%eth0", 40000)
    assert candidate.to_sdp() == line
    numeric = Candidate.from_sdp(line.replace("%eth0", "%3"))
    assert numeric.address[0] == "fe80::1%3"


def test_parse_prefix_and_line_end() -> None:
    expected = Candidate.from_sdp(FIREFOX_HOST)
    for line in [
        "a=" + FIREFOX_HOST,
        FIREFOX_HOST + "\r\n",
        "a=" + FIREFOX_HOST + "\r\n",
        "  " + FIREFOX_HOST + " \t ",
        FIREFOX_HOST.replace(" typ ", "  typ  "),
    ]:
        assert Candidate.from_sdp(line) == expected


def test_parse_transport_case() -> None:
    for transport_text in ("udp", "UDP", "Udp"):
        line = f"candidate:0 1 {transport_text} 2122252543 192.168.1.5 58017 typ host"
        assert Candidate.from_sdp(line).transport is UDP


def test_parse_keeps_unknown_extensions_in_order() -> None:
    line = (
        "candidate:0 1 udp 2122252543 192.168.1.5 58017 typ host"
        " zeta 1 generation 0 alpha x/y ufrag abc zeta 2"
    )
    candidate = Candidate.from_sdp(line)
    assert candidate.extensions == (
        ("zeta", "1"),
        ("generation", "0"),
        ("alpha", "x/y"),
        ("ufrag", "abc"),
        ("zeta", "2"),
    )
    assert candidate.extension("zeta") == "1"
    assert candidate.extension("missing") is None
    assert Candidate.from_sdp(candidate.to_sdp()) == candidate


def test_parse_related_address_after_extensions() -> None:
    line = (
        "candidate:3 1 UDP 1686052863 203.0.113.7 58017 typ srflx"
        " generation 0 rport 58017 raddr 192.168.1.5"
    )
    candidate = Candidate.from_sdp(line)
    assert candidate.related_address == ("192.168.1.5", 58017)
    assert candidate.extensions == (("generation", "0"),)


def test_parse_hidden_ipv6_related_address() -> None:
    line = "candidate:3 1 udp 1686052863 2001:db8::7 58017 typ srflx raddr :: rport 0"
    candidate = Candidate.from_sdp(line)
    assert candidate.related_address == ("::", 0)
    assert candidate.related_address_hidden


def test_ip_version() -> None:
    assert Candidate.from_sdp(FIREFOX_HOST).ip_version == 4
    assert Candidate.from_sdp(FIREFOX_HOST_IPV6).ip_version == 6
    assert Candidate.from_sdp(CHROME_MDNS).ip_version == 0
    assert make_candidate(address=("fe80::1%eth0", 1)).ip_version == 6
    assert make_candidate(address=("::ffff:192.0.2.1", 1)).ip_version == 6


def test_parse_host_names() -> None:
    line = "candidate:0 1 udp 2122252543 {} 58017 typ host"
    upper = Candidate.from_sdp(line.format("ABCDEF01-2345.LOCAL"))
    assert upper.is_mdns
    dotted = Candidate.from_sdp(line.format("abcdef01-2345.local."))
    assert dotted.is_mdns
    plain = Candidate.from_sdp(line.format("turn.example.com"))
    assert not plain.is_mdns
    assert plain.address[0] == "turn.example.com"


# Parse errors


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("", "prefix"),
        ("a=ice-ufrag:4ZcD", "prefix"),
        ("candidate:", "line"),
        ("candidate:0 1 udp 2122252543 192.168.1.5 58017 typ", "line"),
        ("candidate:0 1 udp 2122252543 192.168.1.5 58017 host x", "typ"),
        ("candidate:0 1 sctp 2122252543 192.168.1.5 58017 typ host", "transport"),
        ("candidate:0 1 tls 2122252543 192.168.1.5 58017 typ host", "transport"),
        ("candidate:0 1 udp 2122252543 192.168.1.5 58017 typ nat", "type"),
        ("candidate:0 0 udp 2122252543 192.168.1.5 58017 typ host", "component"),
        ("candidate:0 257 udp 2122252543 192.168.1.5 58017 typ host", "component"),
        ("candidate:0 1000 udp 2122252543 192.168.1.5 58017 typ host", "component"),
        ("candidate:0 +1 udp 2122252543 192.168.1.5 58017 typ host", "component"),
        ("candidate:0 1 udp 0 192.168.1.5 58017 typ host", "priority"),
        ("candidate:0 1 udp 2147483648 192.168.1.5 58017 typ host", "priority"),
        ("candidate:0 1 udp 12345678901 192.168.1.5 58017 typ host", "priority"),
        ("candidate:0 1 udp -5 192.168.1.5 58017 typ host", "priority"),
        ("candidate:0 1 udp 2122252543 192.168.1.5 65536 typ host", "port"),
        ("candidate:0 1 udp 2122252543 192.168.1.5 1_000 typ host", "port"),
        ("candidate:0 1 udp 2122252543 192.168.1.256 58017 typ host", "address"),
        ("candidate:0 1 udp 2122252543 2001:db8::g 58017 typ host", "address"),
        ("candidate:0 1 udp 2122252543 fe80::1% 58017 typ host", "address"),
        ("candidate:0 1 udp 2122252543 [::1] 58017 typ host", "address"),
        ("candidate:0 1 udp 2122252543 a..local 58017 typ host", "address"),
        ("candidate:0 1 udp 2122252543 host_name 58017 typ host", "address"),
        (
            "candidate:0 1 udp 2122252543 192.168.1.5 58017 typ host tcptype active",
            "tcp_type",
        ),
        ("candidate:0 1 tcp 2122252543 192.168.1.5 9 typ host tcptype up", "tcptype"),
        (
            "candidate:0 1 tcp 2122252543 192.168.1.5 9 typ host tcptype so tcptype so",
            "tcptype",
        ),
        ("candidate:0 1 udp 1 203.0.113.7 1 typ srflx raddr 10.0.0.1", "rport"),
        ("candidate:0 1 udp 1 192.168.1.5 1 typ host generation", "extensions"),
        ("candidate:0 1 udp 1 203.0.113.7 1 typ srflx raddr 10.0.0.1 x 1", "rport"),
        ("candidate:0 1 udp 1 203.0.113.7 1 typ srflx rport 5 x 1", "raddr"),
        (
            "candidate:0 1 udp 1 203.0.113.7 1 typ srflx raddr 1.2.3.4 rport 70000",
            "rport",
        ),
        (
            "candidate:0 1 udp 1 203.0.113.7 1 typ srflx raddr 1.2.3 rport 7",
            "related_address",
        ),
        (
            "candidate:0 1 udp 1 203.0.113.7 1 typ srflx raddr a raddr b rport 1",
            "raddr",
        ),
        (
            "candidate:0 1 udp 1 203.0.113.7 1 typ srflx rport 1 rport 1 raddr a",
            "rport",
        ),
        ("candidate:0 1 udp 1 192.168.1.5 1 typ host gener(ation) 0", "extensions"),
        ("candidate:x=y 1 udp 1 192.168.1.5 1 typ host", "foundation"),
        ("candidate:" + "a" * 33 + " 1 udp 1 192.168.1.5 1 typ host", "foundation"),
        ("candidate:0 1 udp 1 192.168.1.5 1 typ host ufrag caf\u00e9", "line"),
        ("candidate:0 1 udp 1 192.168.1.5 1 typ host ufrag a\x00b", "line"),
        ("candidate:0 1 udp 1 192.168.1.5\r\n1 typ host", "line"),
        ("candidate:0 \u0661 udp 1 192.168.1.5 1 typ host", "line"),
    ],
)
def test_parse_error_names_field(line: str, field: str) -> None:
    error = parse_error(line)
    assert error.field == field
    assert error.line == line
    assert repr(line) in str(error)
    assert field in str(error)


def test_parse_error_is_value_error() -> None:
    error = parse_error("candidate:nonsense")
    assert isinstance(error, ValueError)
    assert isinstance(error, CandidateError)
    assert isinstance(error, IceError)


def test_parse_error_truncates_long_line() -> None:
    line = FIREFOX_HOST + " junk" * 1000 + " odd"
    error = parse_error(line)
    assert len(error.line) == 103
    assert error.line.endswith("...")
    assert line.startswith(error.line[:100])
    assert len(str(error)) < 250


def test_parse_error_pickles() -> None:
    error = parse_error(FIREFOX_HOST.replace("58017", "99999") + " pad" * 40)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is CandidateParseError
    assert copy.line == error.line
    assert copy.field == error.field
    assert str(copy) == str(error)
    field_error = CandidateError("port", "too big")
    field_copy = pickle.loads(pickle.dumps(field_error))
    assert str(field_copy) == str(field_error)


def test_parse_rejects_non_string() -> None:
    with pytest.raises(TypeError):
        Candidate.from_sdp(FIREFOX_HOST.encode())  # type: ignore[arg-type]


# Formatting


def test_format_browser_lines_round_trip() -> None:
    for line in BROWSER_LINES:
        candidate = Candidate.from_sdp(line)
        assert Candidate.from_sdp(candidate.to_sdp()) == candidate
        assert Candidate.from_sdp(candidate.to_sdp(prefix=True)) == candidate


def test_format_chrome_lines_unchanged() -> None:
    # Chromium lines are already in the order and case that to_sdp writes.
    for line in [CHROME_HOST, CHROME_MDNS, CHROME_SRFLX_HIDDEN, CHROME_TCP_ACTIVE]:
        assert Candidate.from_sdp(line).to_sdp() == line


def test_format_prefix() -> None:
    candidate = Candidate.from_sdp(FIREFOX_SRFLX)
    expected = (
        "candidate:3 1 udp 1686052863 203.0.113.7 58017 typ srflx"
        " raddr 192.168.1.5 rport 58017"
    )
    assert candidate.to_sdp() == expected
    assert candidate.to_sdp(prefix=True) == "a=" + expected


def test_format_leaves_out_base_address() -> None:
    candidate = make_candidate(
        type=SRFLX,
        address=("203.0.113.7", 40000),
        related_address=("10.0.0.2", 5000),
        base_address=("10.0.0.2", 5000),
    )
    line = candidate.to_sdp()
    assert line.count("10.0.0.2") == 1
    parsed = Candidate.from_sdp(line)
    assert parsed == dataclasses.replace(candidate, base_address=None)


# Field checks


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"foundation": ""}, "foundation"),
        ({"foundation": "a" * 33}, "foundation"),
        ({"foundation": "a-b"}, "foundation"),
        ({"foundation": "\u00e9"}, "foundation"),
        ({"foundation": 1}, "foundation"),
        ({"component": 0}, "component"),
        ({"component": 257}, "component"),
        ({"component": True}, "component"),
        ({"component": 1.0}, "component"),
        ({"transport": TransportType.TLS}, "transport"),
        ({"transport": "udp"}, "transport"),
        ({"priority": 0}, "priority"),
        ({"priority": MAX_PRIORITY + 1}, "priority"),
        ({"address": ("192.0.2.1", 65536)}, "address"),
        ({"address": ("192.0.2.1", -1)}, "address"),
        ({"address": ("192.0.2.1",)}, "address"),
        ({"address": ("2001:db8::1", 5000, 0, 0)}, "address"),
        ({"address": ["192.0.2.1", 5000]}, "address"),
        ({"address": ("", 5000)}, "address"),
        ({"address": ("bad host", 5000)}, "address"),
        ({"address": (b"192.0.2.1", 5000)}, "address"),
        ({"type": "host"}, "type"),
        ({"related_address": ("999.1.1.1", 1)}, "related_address"),
        ({"tcp_type": TcpType.ACTIVE}, "tcp_type"),
        ({"transport": TCP, "tcp_type": "active"}, "tcp_type"),
        ({"extensions": [("generation", "0")]}, "extensions"),
        ({"extensions": (("generation",),)}, "extensions"),
        ({"extensions": (("generation", 0),)}, "extensions"),
        ({"extensions": (("generation", ""),)}, "extensions"),
        ({"extensions": (("generation", "a b"),)}, "extensions"),
        ({"extensions": (("", "1"),)}, "extensions"),
        ({"extensions": (("na me", "1"),)}, "extensions"),
        ({"extensions": (("raddr", "1.2.3.4"),)}, "extensions"),
        ({"extensions": (("tcptype", "active"),)}, "extensions"),
        ({"base_address": ("192.0.2.1", 70000)}, "base_address"),
    ],
)
def test_candidate_rejects_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(CandidateError) as caught:
        make_candidate(**changes)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_candidate_accepts_edge_values() -> None:
    assert make_candidate(component=256).component == 256
    assert make_candidate(priority=1).priority == 1
    assert make_candidate(priority=MAX_PRIORITY).priority == MAX_PRIORITY
    assert make_candidate(address=("192.0.2.1", 0)).address[1] == 0
    assert make_candidate(foundation="+/aZ09").foundation == "+/aZ09"
    assert make_candidate(foundation="a" * 32).foundation == "a" * 32
    assert make_candidate(transport=TCP).tcp_type is None
    extensions = (("x-custom.ext", "~!@#$%^&*()"),)
    assert make_candidate(extensions=extensions).extensions == extensions


def test_candidate_is_frozen_and_slotted() -> None:
    candidate = make_candidate()
    with pytest.raises(dataclasses.FrozenInstanceError):
        candidate.priority = 5  # type: ignore[misc]
    assert not hasattr(candidate, "__dict__")
    assert hash(candidate) == hash(make_candidate())
    assert candidate != make_candidate(base_address=("192.0.2.1", 5000))


def test_replace_checks_fields() -> None:
    candidate = make_candidate()
    assert dataclasses.replace(candidate, component=2).component == 2
    with pytest.raises(CandidateError):
        dataclasses.replace(candidate, component=0)
