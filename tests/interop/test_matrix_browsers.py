"""rice_fast's ICE agent and relay against Chromium 156 and Firefox ESR 153.

Chromium (Debian) runs through Playwright and Firefox ESR (Debian) under
WebDriver BiDi with a fake microphone capture, because without one it
gathers no loopback candidate. Both load the page from
``tests/interop/peers/browser``; rice_fast's agent runs as the JSON-lines
peer ``python_peer.py --agent rice_fast``. The browser, the page's HTTP
server and, for the relay scenarios, ``rice-fast relay`` run inside a
namespace that the test creates. No DTLS handshake happens, so a scenario
passes when iceConnectionState is "connected" and getStats() shows a
nominated, succeeded pair with the addresses, ports and transport of the
pair that rice_fast selected.

Each scenario runs twice per browser, once with the browser offering and
once with rice_fast offering (its SDP written by ``peers/browser/sdp.py``):
host candidates over UDP, the browser relaying through ``rice-fast relay``
with ``iceTransportPolicy: "relay"``, and candidates trickled in both
directions.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.interop.conftest import (
    check_browser_pair,
    trickle_browser_answers,
    trickle_browser_offers,
    use_turn_server,
)
from tests.interop.harness import (
    BROWSER_PAGE_DIR,
    NetworkNamespace,
    python_peer_argv,
    serve_page,
    start_peer,
)
from tests.interop.peers.browser.drivers import (
    browser_answers,
    browser_offers,
    launch_chromium,
    launch_firefox,
)
from tests.interop.peers.python_peer import candidate_address

if TYPE_CHECKING:
    from tests.interop.conftest import RiceRelay, ScenarioRecorder

pytestmark = pytest.mark.interop

TIMEOUT = 10.0
Launcher = Callable[[NetworkNamespace, str, Path], AbstractAsyncContextManager[Any]]
LAUNCHERS: dict[str, Launcher] = {
    "chromium": launch_chromium,
    "firefox": launch_firefox,
}
# (browser, offerer): each browser meets rice_fast once offering, once answering.
CASES = [
    pytest.param(browser, offerer, id=f"{browser}-{offerer}-offers")
    for browser in LAUNCHERS
    for offerer in (browser, "rice_fast")
]


def rice_fast_role(offerer: str) -> str:
    """Return rice_fast's role: the offerer is controlling."""
    return "controlling" if offerer == "rice_fast" else "controlled"


def rice_fast_argv(
    namespace: NetworkNamespace, role: str, *, trickle: bool = False
) -> list[str]:
    """Return the command line of rice_fast's peer inside the namespace."""
    argv = python_peer_argv(role, agent="rice_fast", echo=False)
    if trickle:
        argv.append("--trickle")
    return namespace.command(argv)


@pytest.mark.parametrize(("browser", "offerer"), CASES)
async def test_browser_host_udp(
    tmp_path: Path,
    network_namespace: NetworkNamespace,
    dtls_fingerprint: str,
    browser: str,
    offerer: str,
    interop_result: ScenarioRecorder,
) -> None:
    role = rice_fast_role(offerer)
    interop_result.describe(browser, f"{offerer} offers", role, "udp")
    argv = rice_fast_argv(network_namespace, role)
    async with (
        serve_page(network_namespace, BROWSER_PAGE_DIR, tmp_path) as server,
        LAUNCHERS[browser](network_namespace, server.url, tmp_path) as page,
        start_peer("rice_fast", argv, tmp_path) as peer,
    ):
        negotiate = browser_offers if offerer == browser else browser_answers
        result = await negotiate(page, peer, dtls_fingerprint, timeout=TIMEOUT)
        interop_result.connected(result.seconds)

    check_browser_pair(result)
    assert result.nominated_pair is not None
    assert result.nominated_pair["local"]["candidateType"] == "host"
    assert result.nominated_pair["local"]["address"] == "127.0.0.1"


@pytest.mark.parametrize(("browser", "offerer"), CASES)
async def test_browser_relayed_through_rice_relay(
    tmp_path: Path,
    network_namespace: NetworkNamespace,
    namespace_relay: Callable[[], RiceRelay],
    dtls_fingerprint: str,
    browser: str,
    offerer: str,
    interop_result: ScenarioRecorder,
) -> None:
    """The browser gathers and uses only relayed candidates on ``rice-fast relay``."""
    role = rice_fast_role(offerer)
    interop_result.describe(
        browser,
        f"{offerer} offers, {browser} relayed through rice-fast relay",
        role,
        "udp via TURN",
    )
    relay = namespace_relay()
    argv = rice_fast_argv(network_namespace, role)
    async with (
        serve_page(network_namespace, BROWSER_PAGE_DIR, tmp_path) as server,
        LAUNCHERS[browser](network_namespace, server.url, tmp_path) as page,
        start_peer("rice_fast", argv, tmp_path) as peer,
    ):
        await use_turn_server(page, relay)
        negotiate = browser_offers if offerer == browser else browser_answers
        result = await negotiate(page, peer, dtls_fingerprint, timeout=TIMEOUT)
        interop_result.connected(result.seconds)
    counters = relay.counters()

    check_browser_pair(result)
    assert result.nominated_pair is not None
    local = result.nominated_pair["local"]
    low, high = relay.relay_ports
    assert local["candidateType"] == "relay"
    assert low <= local["port"] <= high
    assert result.peer_pair is not None
    assert candidate_address(result.peer_pair["local"]).type == "host"
    assert counters["allocations_created"] >= 1


@pytest.mark.parametrize(("browser", "offerer"), CASES)
async def test_browser_trickle_both_ways(
    tmp_path: Path,
    network_namespace: NetworkNamespace,
    dtls_fingerprint: str,
    browser: str,
    offerer: str,
    interop_result: ScenarioRecorder,
) -> None:
    """Each side's candidates reach the other one at a time, after the SDP."""
    role = rice_fast_role(offerer)
    interop_result.describe(
        browser, f"{offerer} offers, trickle both ways", role, "udp"
    )
    argv = rice_fast_argv(network_namespace, role, trickle=True)
    async with (
        serve_page(network_namespace, BROWSER_PAGE_DIR, tmp_path) as server,
        LAUNCHERS[browser](network_namespace, server.url, tmp_path) as page,
        start_peer("rice_fast", argv, tmp_path) as peer,
    ):
        negotiate = (
            trickle_browser_offers if offerer == browser else trickle_browser_answers
        )
        result = await negotiate(page, peer, dtls_fingerprint, timeout=TIMEOUT)
        interop_result.connected(result.seconds)

    check_browser_pair(result)
    local = peer.find("local")
    assert local is not None
    assert local["candidates"] == []
    trickled = [m for m in peer.messages if m["type"] == "candidate"]
    assert trickled
    assert trickled[-1]["candidate"] is None
