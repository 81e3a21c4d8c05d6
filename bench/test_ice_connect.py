"""Time from start to selected pair: two rice_fast agents beside two aioice ones.

Both pairs of agents run on loopback in one process over real UDP sockets,
with host candidates only, from creating the agents to both sides having
a selected (nominated) pair. Each round creates and closes fresh agents.
"""

from __future__ import annotations

import asyncio

import aioice
import aioice.ice
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from rice_fast.io._ice import IceConnection

GROUP = "ICE connect on loopback: create two agents, gather, check, select"


async def _rice_fast_connect(ta: float) -> None:
    left = await IceConnection.create(controlling=True, ta=ta)
    right = await IceConnection.create(controlling=False, ta=ta)
    try:
        offers = await asyncio.gather(left.gather(), right.gather())
        left.set_remote(offers[1].ufrag, offers[1].pwd, offers[1].candidates)
        right.set_remote(offers[0].ufrag, offers[0].pwd, offers[0].candidates)
        await asyncio.gather(left.connected(), right.connected())
    finally:
        await left.close()
        await right.close()


async def _aioice_connect() -> None:
    left = aioice.Connection(ice_controlling=True, components=1, use_ipv6=False)
    right = aioice.Connection(ice_controlling=False, components=1, use_ipv6=False)
    try:
        await asyncio.gather(left.gather_candidates(), right.gather_candidates())
        for one, other in ((left, right), (right, left)):
            one.remote_username = other.local_username
            one.remote_password = other.local_password
            for candidate in other.local_candidates:
                await one.add_remote_candidate(candidate)
            await one.add_remote_candidate(None)
        await asyncio.gather(left.connect(), right.connect())
    finally:
        await left.close()
        await right.close()


@pytest.fixture
def loopback_aioice(monkeypatch: pytest.MonkeyPatch) -> None:
    # aioice skips loopback when gathering; keep it on 127.0.0.1.
    monkeypatch.setattr(
        aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    )


# RFC 8445 §14.2 paces new checks by Ta, 50 ms by default; aioice does not
# pace its checks. The 5 ms row shows the protocol work without that wait.
@pytest.mark.parametrize("ta", [0.05, 0.005], ids=["ta-50ms", "ta-5ms"])
def test_connect_rice_fast(benchmark: BenchmarkFixture, ta: float) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["implementation"] = f"rice_fast, Ta {ta * 1000:g} ms"
    benchmark.pedantic(  # type: ignore[no-untyped-call]
        lambda: asyncio.run(_rice_fast_connect(ta)), rounds=10, warmup_rounds=1
    )


def test_connect_aioice(benchmark: BenchmarkFixture, loopback_aioice: None) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["implementation"] = "aioice"
    benchmark.pedantic(  # type: ignore[no-untyped-call]
        lambda: asyncio.run(_aioice_connect()), rounds=10, warmup_rounds=1
    )
