"""Scenarios: IPv6, lossy and reordering links, no path, two components, pair limit."""

from __future__ import annotations

import ipaddress
import random

import pytest

from rice_fast.ice import Agent, ComponentState, NotConnectedError
from tests.ice.sim import Link, Nat, Network, SimAgent, connect


def host_pair(
    network: Network,
    a_ips: list[str],
    b_ips: list[str],
    *,
    seed: int = 1,
    realms: tuple[str, str] = ("public", "public"),
    components: int = 1,
    **options: object,
) -> tuple[SimAgent, SimAgent]:
    a = SimAgent(
        network,
        "a",
        Agent(True, rng=random.Random(seed), **options),  # type: ignore[arg-type]
        a_ips,
        realm=realms[0],
        components=components,
    )
    b = SimAgent(
        network,
        "b",
        Agent(False, rng=random.Random(seed + 1), **options),  # type: ignore[arg-type]
        b_ips,
        realm=realms[1],
        components=components,
    )
    for component in range(1, components + 1):
        for ip in a_ips:
            a.add_udp(ip, component=component)
        for ip in b_ips:
            b.add_udp(ip, component=component)
    return a, b


def test_ipv6_host_connects() -> None:
    network = Network(91)
    a, b = host_pair(network, ["2001:db8::1"], ["2001:db8::2"])
    connect(a, b)
    assert a.connected()
    assert b.connected()
    selected = a.selected()
    assert selected is not None
    assert ipaddress.ip_address(selected.pair.remote.address[0]).version == 6
    a.send(b"over IPv6")
    network.run(network.now + 1.0)
    assert [d for _, _, d in b.received] == [b"over IPv6"]


def test_dual_stack_pairs_only_within_a_family() -> None:
    network = Network(92)
    a, b = host_pair(
        network, ["192.0.2.1", "2001:db8::1"], ["192.0.2.2", "2001:db8::2"]
    )
    connect(a, b)
    assert a.connected()
    assert b.connected()
    pairs = a.stream.candidate_pairs()
    assert pairs
    for pair, _ in pairs:
        local = ipaddress.ip_address(pair.local.address[0])
        remote = ipaddress.ip_address(pair.remote.address[0])
        assert local.version == remote.version


@pytest.mark.parametrize("seed", [101, 102, 103, 104, 105])
def test_twenty_percent_loss_still_connects(seed: int) -> None:
    network = Network(seed)
    network.default_link = Link(
        loss=0.2, duplicate=0.05, reorder=0.1, delay=0.02, jitter=0.02
    )
    a, b = host_pair(network, ["192.0.2.1"], ["192.0.2.2"], seed=seed)
    connect(a, b, until=60.0)
    assert a.connected()
    assert b.connected()
    for index in range(50):
        a.send(f"data {index}".encode())
    network.run(network.now + 1.0)
    received = [d for _, _, d in b.received]
    assert 20 <= len(received) <= 70
    assert all(d.startswith(b"data ") for d in received)


def test_duplication_and_reordering_connect() -> None:
    network = Network(106)
    network.default_link = Link(duplicate=0.5, reorder=0.5, delay=0.01, jitter=0.05)
    a, b = host_pair(network, ["192.0.2.1"], ["192.0.2.2"], seed=106)
    connect(a, b)
    assert a.connected()
    assert b.connected()


def test_no_path_fails() -> None:
    network = Network(107)
    network.add_nat("lan-a", Nat("198.51.100.1", mapping="apdm"))
    network.add_nat("lan-b", Nat("198.51.100.2", mapping="apdm"))
    a, b = host_pair(
        network, ["10.0.1.2"], ["10.0.2.2"], seed=107, realms=("lan-a", "lan-b")
    )
    connect(a, b, until=60.0)
    assert a.state() is ComponentState.FAILED
    assert b.state() is ComponentState.FAILED
    assert a.states() == [ComponentState.CONNECTING, ComponentState.FAILED]
    assert a.stream.checklist_state == "failed"
    # Every check gets its full retransmission schedule first (15.5 s).
    assert 15.0 < network.now < 20.0
    with pytest.raises(NotConnectedError):
        a.stream.component(1).send(b"nowhere", network.now)


def test_two_components_connect_independently() -> None:
    network = Network(108)
    a, b = host_pair(network, ["192.0.2.1"], ["192.0.2.2"], seed=108, components=2)
    connect(a, b)
    assert a.connected()
    assert b.connected()
    a.send(b"rtp", component=1)
    a.send(b"rtcp", component=2)
    network.run(network.now + 1.0)
    assert sorted((c, d) for _, c, d in b.received) == [(1, b"rtp"), (2, b"rtcp")]
    assert a.stream.checklist_state == "completed"


def test_pair_limit_is_enforced() -> None:
    network = Network(109)
    ips_a = [f"192.0.2.{n}" for n in range(1, 6)]
    ips_b = [f"198.51.100.{n}" for n in range(1, 6)]
    a, b = host_pair(network, ips_a, ips_b, seed=109, max_pairs=4)
    connect(a, b)
    assert a.connected()
    assert b.connected()
    assert len(a.stream.candidate_pairs()) <= 4
