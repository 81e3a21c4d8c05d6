"""pytest-benchmark suites of the TURN relay: rice-fast relay beside coturn.

Both relays run for the whole module on loopback with one relay thread
(see ``bench.relay_load``). Two timings fit pytest-benchmark's model of
one call per round:

- one allocation of a new client: Allocate, the 401, Allocate with
  MESSAGE-INTEGRITY, the success response;
- one burst of 2,000 ChannelData datagrams (100-byte payload, over 1 or
  100 allocations), from the first sendmmsg until the sink has counted
  all of them. The burst fits the socket buffers, so nothing is lost and
  the time is the relay's.

Rates under sustained load, and the loss at each rate, need long runs
that pytest-benchmark does not model: ``python -m bench.relay_report``
measures those. With ``--benchmark-disable`` each benchmark runs once as
a smoke test.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import relay_load
from bench.relay_load import RelayProcess, Session, Sink

BURST = 2_000
IMPLEMENTATIONS = ("rice_fast", "coturn")


@pytest.fixture(scope="module")
def relays() -> Iterator[dict[str, RelayProcess]]:
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as name:
        directory = Path(name)
        started: dict[str, RelayProcess] = {}
        try:
            for implementation in IMPLEMENTATIONS:
                folder = directory / implementation
                folder.mkdir()
                if implementation == "rice_fast":
                    started[implementation] = relay_load.start_rice_relay(folder)
                else:
                    started[implementation] = relay_load.start_coturn(folder)
            yield started
        finally:
            for relay in started.values():
                relay.stop()


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    counter = Sink()
    try:
        yield counter
    finally:
        counter.close()


@pytest.fixture(scope="module")
def channels(
    relays: dict[str, RelayProcess], sink: Sink
) -> Iterator[dict[tuple[str, int], list[Session]]]:
    opened: dict[tuple[str, int], list[Session]] = {}
    try:
        for name, relay in relays.items():
            for allocations in (1, 100):
                opened[(name, allocations)] = relay_load.open_channels(
                    relay.address, sink, allocations
                )
        yield opened
    finally:
        for sessions in opened.values():
            relay_load.close_sessions(sessions)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_allocate_with_auth(
    benchmark: Any, relays: dict[str, RelayProcess], implementation: str
) -> None:
    benchmark.group = "TURN Allocate with the 401 challenge, one new client"
    server = relays[implementation].address
    host = relay_load.client_host()
    # The sockets stay open until the end, so that no later client gets
    # the port, and with it the 5-tuple, of an allocation made before.
    sessions: list[Session] = []

    def allocate() -> int:
        run = relay_load.allocate_many(server, 1, host=host, time_cap=5.0)
        sessions.extend(run.sessions)
        return len(run.sessions)

    try:
        completed = benchmark.pedantic(allocate, rounds=200, warmup_rounds=5)
    finally:
        relay_load.close_sessions(sessions)

    assert completed == 1


@pytest.mark.parametrize("allocations", [1, 100])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_channel_data_burst(
    benchmark: Any,
    relays: dict[str, RelayProcess],
    channels: dict[tuple[str, int], list[Session]],
    sink: Sink,
    implementation: str,
    allocations: int,
) -> None:
    benchmark.group = f"burst of {BURST:,} ChannelData, 100 B, {allocations} alloc"
    server = relays[implementation].address
    sessions = channels[(implementation, allocations)]

    def send() -> int:
        return relay_load.burst(sessions, server, sink, payload=100, count=BURST)

    received = benchmark.pedantic(send, rounds=20, warmup_rounds=2)
    benchmark.extra_info["datagrams"] = BURST

    assert received == BURST
