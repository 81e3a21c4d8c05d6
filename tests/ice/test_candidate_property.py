"""Property tests of ICE candidates.

Formatting a valid candidate and parsing the line gives the candidate back,
and any string, random or a mutated browser line, either parses into a
candidate that round-trips or raises CandidateParseError and nothing else.
The priority and foundation helpers keep the orderings that RFC 8445
§5.1.2.1, §5.1.1.3 and §6.1.2.3 rely on.
"""

from __future__ import annotations

import ipaddress
import random
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rice_fast.ice.candidate import (
    MAX_PRIORITY,
    Candidate,
    CandidateType,
    TcpType,
    candidate_priority,
    compute_foundation,
    pair_priority,
)
from rice_fast.ice.errors import CandidateParseError
from rice_fast.stun.transport import Address, TransportType

# No deadline: the tests check behaviour, never timing.
property_settings = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

ICE_CHARS = string.ascii_letters + string.digits + "+/"
TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"
VISIBLE_CHARS = "".join(chr(code) for code in range(0x21, 0x7F))

# Hand-written Chromium and Firefox lines, the seeds of the mutation test.
SEED_LINES = [
    "candidate:1467250027 1 udp 2122260223 192.168.1.5 54321 typ host"
    " generation 0 ufrag 4ZcD network-id 1 network-cost 10",
    "candidate:1467250027 1 udp 2122260223"
    " 5f3c8a8e-3e37-4c8b-9d2b-2a5fd0b6d1a0.local 54321 typ host generation 0",
    "candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx"
    " raddr 0.0.0.0 rport 0 generation 0 ufrag 4ZcD network-id 1 network-cost 10",
    "candidate:1853887674 1 tcp 1518280447 192.168.1.5 9 typ host"
    " tcptype active generation 0 network-id 1",
    "a=candidate:0 1 UDP 2122252543 2001:db8::5 58017 typ host\r\n",
    "candidate:5 1 UDP 92217087 198.51.100.9 56233 typ relay"
    " raddr 203.0.113.7 rport 58017",
    "candidate:2 2 udp 2122262782 fe80::1%eth0 40000 typ host",
]

# Tokens and characters that mutations insert: pieces of valid lines, edge
# numbers, and characters that a parser might mishandle.
MUTATION_TOKENS = [
    "typ",
    "raddr",
    "rport",
    "tcptype",
    "generation",
    "udp",
    "TCP",
    "tls",
    "host",
    "srflx",
    "prflx",
    "relay",
    "active",
    "so",
    "0",
    "1",
    "256",
    "257",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "99999999999",
    "-1",
    "+1",
    "::",
    "0.0.0.0",
    "fe80::1%",
    "x.local",
    "[::1]",
    "a=candidate:",
    "",
]
MUTATION_CHARS = " :%.-+/=\t\r\n\x00\x1c\u00e9\u0661\u00b2" + string.ascii_letters[:6]


def mutate(line: str, rng: random.Random) -> str:
    """Apply one to four random character or token edits to ``line``."""
    for _ in range(rng.randint(1, 4)):
        tokens = line.split(" ")
        operation = rng.randrange(8)
        position = rng.randrange(len(line) + 1)
        if operation == 0 and line:
            line = line[:position] + line[position + 1 :]
        elif operation == 1:
            line = line[:position] + rng.choice(MUTATION_CHARS) + line[position:]
        elif operation == 2 and line:
            replacement = rng.choice(MUTATION_CHARS)
            line = line[:position] + replacement + line[position + 1 :]
        elif operation == 3 and len(tokens) > 1:
            del tokens[rng.randrange(len(tokens))]
            line = " ".join(tokens)
        elif operation == 4:
            index = rng.randrange(len(tokens))
            tokens.insert(index, tokens[index])
            line = " ".join(tokens)
        elif operation == 5 and len(tokens) > 1:
            first, second = rng.sample(range(len(tokens)), 2)
            tokens[first], tokens[second] = tokens[second], tokens[first]
            line = " ".join(tokens)
        elif operation == 6:
            tokens[rng.randrange(len(tokens))] = rng.choice(MUTATION_TOKENS)
            line = " ".join(tokens)
        else:
            line = line[:position]
    return line


def check_line(line: str) -> None:
    """Parse ``line``: a result must round-trip, an error must be ours."""
    try:
        candidate = Candidate.from_sdp(line)
    except CandidateParseError as error:
        assert error.field
        assert error.reason
        assert len(error.line) <= 103
        return
    assert Candidate.from_sdp(candidate.to_sdp()) == candidate


# Candidate strategies

ipv4_hosts = st.ip_addresses(v=4).map(str)
ipv6_hosts = st.ip_addresses(v=6).map(str)
zoned_hosts = st.tuples(
    st.ip_addresses(network=ipaddress.IPv6Network("fe80::/10")).map(str),
    st.text(string.ascii_letters + string.digits, min_size=1, max_size=8),
).map(lambda parts: f"{parts[0]}%{parts[1]}")
mdns_hosts = st.uuids().map(lambda value: f"{value}.local")
host_names = st.lists(
    st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=10)
    .filter(lambda label: label.strip("-") != "")
    .filter(lambda label: not label.replace("-", "").isdigit()),
    min_size=1,
    max_size=4,
).map(".".join)
hosts = st.one_of(ipv4_hosts, ipv6_hosts, zoned_hosts, mdns_hosts, host_names)
addresses: st.SearchStrategy[Address] = st.tuples(hosts, st.integers(0, 65535))

extension_names = st.text(TOKEN_CHARS, min_size=1, max_size=12).filter(
    lambda name: name not in {"raddr", "rport", "tcptype"}
)
extension_values = st.text(VISIBLE_CHARS, min_size=1, max_size=16)
transports = st.one_of(
    st.tuples(st.just(TransportType.UDP), st.none()),
    st.tuples(st.just(TransportType.TCP), st.none() | st.sampled_from(list(TcpType))),
)


@st.composite
def candidates(draw: st.DrawFn) -> Candidate:
    transport, tcp_type = draw(transports)
    return Candidate(
        foundation=draw(st.text(ICE_CHARS, min_size=1, max_size=32)),
        component=draw(st.integers(1, 256)),
        transport=transport,
        priority=draw(st.integers(1, MAX_PRIORITY)),
        address=draw(addresses),
        type=draw(st.sampled_from(list(CandidateType))),
        related_address=draw(st.none() | addresses),
        tcp_type=tcp_type,
        extensions=tuple(
            draw(st.lists(st.tuples(extension_names, extension_values), max_size=5))
        ),
    )


# Round trips


@property_settings
@given(candidates(), st.booleans())
def test_format_parse_round_trip(candidate: Candidate, prefix: bool) -> None:
    line = candidate.to_sdp(prefix=prefix)
    assert Candidate.from_sdp(line) == candidate
    assert Candidate.from_sdp(line + "\r\n") == candidate


@property_settings
@given(candidates())
def test_format_is_stable(candidate: Candidate) -> None:
    line = candidate.to_sdp()
    assert Candidate.from_sdp(line).to_sdp() == line
    assert line.isascii()
    assert "\r" not in line
    assert "\n" not in line


# Bad input raises only CandidateParseError


@property_settings
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    check_line(text)
    check_line("candidate:" + text)
    check_line("a=candidate:" + text)


@property_settings
@given(
    st.lists(
        st.sampled_from(MUTATION_TOKENS) | st.text(VISIBLE_CHARS, max_size=12),
        max_size=16,
    )
)
def test_random_tokens(tokens: list[str]) -> None:
    check_line("candidate:" + " ".join(tokens))


@property_settings
@given(st.sampled_from(SEED_LINES), st.integers(0, 2**32 - 1))
def test_mutated_browser_lines(seed: str, rng_seed: int) -> None:
    check_line(mutate(seed, random.Random(rng_seed)))


@property_settings
@given(candidates(), st.integers(0, 2**32 - 1))
def test_mutated_formatted_lines(candidate: Candidate, rng_seed: int) -> None:
    check_line(mutate(candidate.to_sdp(), random.Random(rng_seed)))


def test_seed_lines_parse() -> None:
    for line in SEED_LINES:
        Candidate.from_sdp(line)


# Priorities and foundations

type_preferences = st.integers(0, 126)
local_preferences = st.integers(0, 65535)
components = st.integers(1, 256)
priorities = st.integers(1, MAX_PRIORITY)


@property_settings
@given(type_preferences, local_preferences, components)
def test_priority_in_range(
    type_preference: int, local_preference: int, component: int
) -> None:
    if type_preference == 0 and local_preference == 0 and component == 256:
        return
    priority = candidate_priority(type_preference, local_preference, component)
    assert 1 <= priority <= MAX_PRIORITY
    assert priority >> 24 == type_preference
    assert (priority >> 8) & 0xFFFF == local_preference
    assert priority & 0xFF == 256 - component


@property_settings
@given(
    st.tuples(type_preferences, local_preferences, components),
    st.tuples(type_preferences, local_preferences, components),
)
def test_type_preference_dominates(
    first: tuple[int, int, int], second: tuple[int, int, int]
) -> None:
    # A higher type preference wins whatever the local preference and
    # component. With equal types the local preference decides.
    if (0, 0, 256) in (first, second):
        return
    first_priority = candidate_priority(*first)
    second_priority = candidate_priority(*second)
    if first[0] != second[0]:
        assert (first_priority > second_priority) == (first[0] > second[0])
    elif first[1] != second[1]:
        assert (first_priority > second_priority) == (first[1] > second[1])


@property_settings
@given(priorities, priorities)
def test_pair_priority_order(controlling: int, controlled: int) -> None:
    priority = pair_priority(controlling, controlled)
    assert 0 < priority < 2**63
    assert priority >> 32 == min(controlling, controlled)
    swapped = pair_priority(controlled, controlling)
    if controlling > controlled:
        assert priority == swapped + 1
    elif controlling < controlled:
        assert priority == swapped - 1
    else:
        assert priority == swapped


@property_settings
@given(priorities, priorities, priorities, priorities)
def test_pair_priority_min_dominates(
    first_g: int, first_d: int, second_g: int, second_d: int
) -> None:
    first = pair_priority(first_g, first_d)
    second = pair_priority(second_g, second_d)
    if min(first_g, first_d) != min(second_g, second_d):
        assert (first > second) == (min(first_g, first_d) > min(second_g, second_d))


foundation_keys = st.tuples(
    st.sampled_from(list(CandidateType)),
    st.sampled_from(["192.0.2.1", "192.0.2.2", "2001:db8::1", "fe80::1%eth0"]),
    st.none() | st.sampled_from(["198.51.100.1", "198.51.100.2", "2001:db8::3"]),
    st.sampled_from([TransportType.UDP, TransportType.TCP]),
)


@property_settings
@given(foundation_keys, foundation_keys, st.integers(0, 65535))
def test_foundation_equal_iff_inputs_equal(
    first: tuple[CandidateType, str, str | None, TransportType],
    second: tuple[CandidateType, str, str | None, TransportType],
    port: int,
) -> None:
    def foundation(key: tuple[CandidateType, str, str | None, TransportType]) -> str:
        candidate_type, base_ip, server_ip, transport = key
        if candidate_type is CandidateType.HOST:
            server_ip = None
        server = None if server_ip is None else (server_ip, port)
        return compute_foundation(candidate_type, base_ip, server, transport)

    def normalized(
        key: tuple[CandidateType, str, str | None, TransportType],
    ) -> tuple[CandidateType, str, str | None, TransportType]:
        if key[0] is CandidateType.HOST:
            return (key[0], key[1], None, key[3])
        return key

    first_foundation = foundation(first)
    assert first_foundation == foundation(first)
    assert len(first_foundation) == 8
    assert set(first_foundation) <= set(ICE_CHARS)
    same = normalized(first) == normalized(second)
    assert (first_foundation == foundation(second)) == same
