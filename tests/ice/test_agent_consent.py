"""Scenarios: consent freshness (RFC 7675) and keepalives (RFC 8445 §11)."""

from __future__ import annotations

import itertools
import random

import pytest

from rice_fast.ice import Agent, ComponentState, ConsentLost, NotConnectedError
from rice_fast.stun import Method, TransportType, is_stun, parse
from tests.ice.sim import Network, SimAgent, connect


def host_pair(
    seed: int, a_options: dict[str, object], b_options: dict[str, object]
) -> tuple[Network, SimAgent, SimAgent]:
    network = Network(seed)
    a = SimAgent(
        network,
        "a",
        Agent(True, rng=random.Random(seed), **a_options),  # type: ignore[arg-type]
        ["192.0.2.1"],
    )
    b = SimAgent(
        network,
        "b",
        Agent(False, rng=random.Random(seed + 1), **b_options),  # type: ignore[arg-type]
        ["192.0.2.2"],
    )
    a.add_udp("192.0.2.1")
    b.add_udp("192.0.2.2")
    return network, a, b


def stun_sent(
    network: Network, source_ip: str, after: float, *, request: bool
) -> dict[bytes, float]:
    """First send time of each Binding request (or indication) from an IP."""
    first: dict[bytes, float] = {}
    for time, transmit in network.sent:
        if time < after or transmit.transport is not TransportType.UDP:
            continue
        if transmit.source[0] != source_ip or not is_stun(transmit.data):
            continue
        message = parse(transmit.data)
        if message.method != Method.BINDING:
            continue
        if (request and message.is_request) or (not request and message.is_indication):
            first.setdefault(message.transaction_id, time)
    return first


def test_consent_requests_every_four_to_six_seconds() -> None:
    network, a, b = host_pair(71, {}, {})
    connect(a, b)
    start = network.now
    network.run(start + 60.0)
    times = sorted(stun_sent(network, "192.0.2.1", start, request=True).values())
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) >= 9
    assert all(4.0 <= gap <= 6.0 for gap in gaps), gaps
    assert len(set(round(gap, 3) for gap in gaps)) > 1, "the interval is not randomized"
    assert a.connected()
    assert b.connected()
    assert not [e for _, e in a.events if isinstance(e, ConsentLost)]


def test_consent_lost_30s_after_peer_stops_answering() -> None:
    network, a, b = host_pair(72, {}, {})
    connect(a, b)
    network.run(network.now + 10.0)
    stopped = network.now
    b.paused = True
    network.run(stopped + 45.0)
    lost = [(t, e) for t, e in a.events if isinstance(e, ConsentLost)]
    assert len(lost) == 1
    lost_at, event = lost[0]
    # The last success came at most one interval plus an RTT before the
    # pause, and consent expires 30 s after it.
    assert stopped + 30.0 - 6.5 <= lost_at <= stopped + 30.0
    assert event.pair.remote.address[0] == "192.0.2.2"
    assert a.state() is ComponentState.FAILED
    assert a.states()[-1] is ComponentState.FAILED
    with pytest.raises(NotConnectedError):
        a.stream.component(1).send(b"no consent", network.now)


def test_keepalives_when_idle_without_consent() -> None:
    network, a, b = host_pair(
        73, {"consent_freshness": False}, {"consent_freshness": False}
    )
    connect(a, b)
    start = network.now
    network.run(start + 61.0)
    indications = sorted(stun_sent(network, "192.0.2.1", start, request=False).values())
    assert len(indications) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(indications)]
    assert all(abs(gap - 15.0) < 0.5 for gap in gaps), gaps
    assert b.agent.stats.keepalives_received >= 4
    assert not stun_sent(network, "192.0.2.1", start, request=True)


def test_no_keepalives_while_data_flows() -> None:
    network, a, b = host_pair(
        74, {"consent_freshness": False}, {"consent_freshness": False}
    )
    connect(a, b)
    start = network.now

    def pump(count: int) -> None:
        a.send(b"tick")
        if count < 50:
            network.at(network.now + 1.0, lambda: pump(count + 1))

    pump(0)
    network.run(start + 45.0)
    assert not stun_sent(network, "192.0.2.1", start, request=False)
    assert stun_sent(network, "192.0.2.2", start, request=False)


def test_lite_agent_sends_keepalives_and_no_consent() -> None:
    network, a, b = host_pair(75, {}, {"lite": True})
    a.agent.set_remote_lite(True)
    connect(a, b)
    start = network.now
    network.run(start + 40.0)
    assert len(stun_sent(network, "192.0.2.2", start, request=False)) >= 2
    assert not stun_sent(network, "192.0.2.2", start, request=True)
    # The full agent checks consent of the lite one, which responds.
    assert stun_sent(network, "192.0.2.1", start, request=True)
    assert a.connected()
    assert b.connected()
