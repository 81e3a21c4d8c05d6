"""Agent, Stream and Component API: credentials, setup errors, events, close."""

from __future__ import annotations

import random

import pytest

from rice_fast.ice import (
    Agent,
    Candidate,
    CandidateType,
    Closed,
    Credentials,
    GatheredCandidate,
    GatheringComplete,
    IceEvent,
    IceUsageError,
    NotConnectedError,
    TcpType,
    generate_credentials,
)
from rice_fast.ice.stream import ICE_CHARS
from rice_fast.stun import TransportType, WaitUntil

UDP = TransportType.UDP
TCP = TransportType.TCP


def drain(agent: Agent, now: float = 0.0) -> list[IceEvent]:
    events: list[IceEvent] = []
    while True:
        result = agent.poll(now)
        if result is None or isinstance(result, WaitUntil):
            return events
        events.append(result)


def test_credentials_follow_rfc8445_section_5_3() -> None:
    agent = Agent(True)
    streams = [agent.add_stream() for _ in range(5)]
    seen = set()
    for stream in streams:
        credentials = stream.local_credentials
        assert len(credentials.ufrag) >= 4
        assert len(credentials.pwd) >= 22
        assert set(credentials.ufrag) <= set(ICE_CHARS)
        assert set(credentials.pwd) <= set(ICE_CHARS)
        seen.add(credentials.ufrag)
    assert len(seen) == 5
    assert "pwd=<hidden>" in repr(streams[0].local_credentials)


def test_seeded_credentials_repeat() -> None:
    assert generate_credentials(random.Random(5)) == generate_credentials(
        random.Random(5)
    )


@pytest.mark.parametrize(
    ("ufrag", "pwd"),
    [
        ("abc", "p" * 22),
        ("abcd", "p" * 21),
        ("ab:d", "p" * 22),
        ("abcd", "p" * 21 + " "),
    ],
)
def test_invalid_credentials_raise(ufrag: str, pwd: str) -> None:
    with pytest.raises(IceUsageError):
        Credentials(ufrag, pwd)
    stream = Agent(True).add_stream()
    with pytest.raises(IceUsageError):
        stream.set_remote_credentials(ufrag, pwd)


def test_agent_options_are_checked() -> None:
    with pytest.raises(IceUsageError, match="ta"):
        Agent(True, ta=0.001)
    with pytest.raises(IceUsageError, match="ICE-lite"):
        Agent(False, lite=True, stun_servers=[("192.0.2.9", 3478)])
    with pytest.raises(IceUsageError, match="max_pairs"):
        Agent(True, max_pairs=0)
    with pytest.raises(IceUsageError, match="tie_breaker"):
        Agent(True, tie_breaker=2**64)
    assert Agent(True, ta=0.005).ta == 0.005
    assert Agent(True, tie_breaker=7).tie_breaker == 7


def test_socket_errors() -> None:
    component = Agent(True).add_stream().add_component()
    with pytest.raises(IceUsageError):
        component.add_local_socket(UDP, ("not-an-ip", 1))
    with pytest.raises(IceUsageError):
        component.add_local_socket(UDP, ("192.0.2.1", 0))
    with pytest.raises(IceUsageError):
        component.add_local_socket(UDP, ("192.0.2.1", 5), TcpType.PASSIVE)
    with pytest.raises(IceUsageError):
        component.add_local_socket(TCP, ("192.0.2.1", 5))
    with pytest.raises(IceUsageError):
        component.add_local_socket(TransportType.TLS, ("192.0.2.1", 5))
    component.add_local_socket(UDP, ("192.0.2.1", 5))
    with pytest.raises(IceUsageError, match="already"):
        component.add_local_socket(UDP, ("192.0.2.1", 5))


def test_host_candidates_and_priorities() -> None:
    agent = Agent(True)
    stream = agent.add_stream()
    component = stream.add_component()
    first = component.add_local_socket(UDP, ("192.0.2.1", 5000))
    second = component.add_local_socket(UDP, ("192.0.2.2", 5000))
    active = component.add_local_socket(TCP, ("192.0.2.1", 1234), TcpType.ACTIVE)
    passive = component.add_local_socket(TCP, ("192.0.2.1", 6000), TcpType.PASSIVE)
    assert first.type is CandidateType.HOST
    assert first.priority > second.priority > active.priority > passive.priority
    assert active.address == ("192.0.2.1", 9)
    assert first.base_address == first.address
    stream.gather_candidates(0.0)
    events = drain(agent)
    gathered = [e.candidate for e in events if isinstance(e, GatheredCandidate)]
    assert gathered == [first, second, active, passive]
    assert isinstance(events[-1], GatheringComplete)
    with pytest.raises(IceUsageError):
        stream.add_component()
    with pytest.raises(IceUsageError, match="gathering"):
        component.add_local_socket(UDP, ("192.0.2.3", 5000))


def test_remote_candidate_errors() -> None:
    stream = Agent(True, trickle=True).add_stream()
    stream.add_component()
    candidate = Candidate.from_sdp(
        "candidate:1 2 udp 2130706431 192.0.2.9 5000 typ host"
    )
    with pytest.raises(IceUsageError, match="component 2"):
        stream.add_remote_candidate(candidate)
    stream.add_remote_candidate(
        Candidate.from_sdp("candidate:1 1 udp 2130706431 2001:DB8::9 5000 typ host")
    )
    # Addresses are kept in canonical text form.
    assert stream.remote_candidates[0].address == ("2001:db8::9", 5000)
    stream.end_of_remote_candidates()
    with pytest.raises(IceUsageError, match="end_of_remote_candidates"):
        stream.add_remote_candidate(
            Candidate.from_sdp("candidate:1 1 udp 2130706431 192.0.2.9 5000 typ host")
        )


def test_send_before_selection_raises() -> None:
    agent = Agent(True)
    component = agent.add_stream().add_component()
    with pytest.raises(NotConnectedError):
        component.send(b"early", 0.0)


def test_socket_allocated_without_request_raises() -> None:
    agent = Agent(True)
    agent.add_stream().add_component()
    with pytest.raises(IceUsageError, match="without an AllocateSocket"):
        agent.socket_allocated(1, 1, TCP, ("192.0.2.1", 0), ("192.0.2.2", 1), None, 0.0)


def test_close_reports_closed_once() -> None:
    agent = Agent(True)
    stream = agent.add_stream()
    stream.add_component().add_local_socket(UDP, ("192.0.2.1", 5000))
    stream.gather_candidates(0.0)
    drain(agent)
    agent.close(1.0)
    assert agent.closed
    events = drain(agent, 1.0)
    assert events == [Closed()]
    assert agent.poll(2.0) is None
    with pytest.raises(IceUsageError, match="closed"):
        agent.add_stream()


def test_idle_agent_polls_none() -> None:
    agent = Agent(True)
    assert agent.poll(0.0) is None
    assert agent.poll_transmit(0.0) is None
    assert agent.stats.checks_sent == 0
