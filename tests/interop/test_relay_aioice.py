"""aioice 0.13's TURN client against ``rice-fast relay``, over UDP and TCP.

``aioice.turn.create_turn_endpoint`` allocates with the long-term
credential, binds a channel on its first send to a peer and then sends
ChannelData. The peer is a UDP echo socket of the test on 127.0.0.1, so
every datagram crosses the relay twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import aioice.turn
import pytest

if TYPE_CHECKING:
    from tests.conftest import Address
    from tests.interop.conftest import RiceRelay

USER = "alice"
PASSWORD = "wonderland"
DATAGRAMS = 20
TIMEOUT = 5.0

pytestmark = pytest.mark.interop


class _Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.sources: list[Address] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.sources.append(addr)
        if self.transport is not None:
            self.transport.sendto(data, addr)


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.received.put_nowait((data, addr))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_aioice_allocates_and_echoes(
    rice_relay: Callable[..., RiceRelay], transport: str
) -> None:
    relay = rice_relay("--allow-peer", "127.0.0.1/32")
    loop = asyncio.get_running_loop()
    echo_transport, echo = await loop.create_datagram_endpoint(
        _Echo, local_addr=("127.0.0.1", 0)
    )
    peer: Address = echo_transport.get_extra_info("sockname")[:2]
    turn, receiver = await aioice.turn.create_turn_endpoint(
        _Receiver, relay.address, USER, PASSWORD, transport=transport
    )
    try:
        relayed = turn.get_extra_info("sockname")
        low, high = relay.relay_ports
        assert relayed[0] == "127.0.0.1"
        assert low <= relayed[1] <= high

        replies: list[tuple[bytes, Address]] = []
        for index in range(DATAGRAMS):
            payload = f"datagram {index} over {transport}".encode()
            turn.sendto(payload, peer)
            replies.append(await asyncio.wait_for(receiver.received.get(), TIMEOUT))

        expected = [f"datagram {i} over {transport}".encode() for i in range(DATAGRAMS)]
        assert [data for data, _ in replies] == expected
        assert {source for _, source in replies} == {peer}
        assert set(echo.sources) == {tuple(relayed)}
    finally:
        turn.close()
        echo_transport.close()

    # aioice closes with a Refresh of LIFETIME 0; give it time to arrive.
    await asyncio.sleep(0.2)
    counters = relay.counters()
    assert counters["allocations_created"] == 1
    assert counters["allocations"] == 0
    assert counters["channels"] == 0
