"""The Firefox ESR harness, proved against aioice 0.13 in a network namespace.

Firefox ESR 153 (Debian) runs under WebDriver BiDi with the page from
``tests/interop/peers/browser`` and a fake microphone capture, without
which it gathers no loopback candidate. aioice runs as the JSON-lines peer
``python_peer.py``. Both, and the page's HTTP server, run inside a
namespace that the test creates. No DTLS handshake happens, so success is
iceConnectionState "connected" and a nominated, succeeded pair in
getStats().
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.harness import (
    BROWSER_PAGE_DIR,
    NetworkNamespace,
    python_peer_argv,
    serve_page,
    start_peer,
)
from tests.interop.peers.browser.drivers import (
    BrowserConnection,
    browser_answers,
    browser_offers,
    launch_firefox,
)
from tests.interop.peers.python_peer import candidate_address

pytestmark = pytest.mark.interop

TIMEOUT = 10.0


def check_connection(result: BrowserConnection) -> None:
    """Assert ICE connected on a loopback UDP pair that both sides agree on."""
    assert result.ice_connection_state == "connected"
    assert result.nominated_pair is not None
    assert result.nominated_pair["state"] == "succeeded"
    assert result.nominated_pair["nominated"] is True
    local = result.nominated_pair["local"]
    remote = result.nominated_pair["remote"]
    assert local["address"] == "127.0.0.1"
    assert local["protocol"] == "udp"
    assert result.peer_pair is not None
    peer_local = candidate_address(result.peer_pair["local"])
    assert (remote["address"], remote["port"]) == (peer_local.host, peer_local.port)


@pytest.mark.parametrize("offerer", ["firefox", "aioice"])
async def test_firefox_aioice_ice_connected(
    tmp_path: Path,
    network_namespace: NetworkNamespace,
    dtls_fingerprint: str,
    offerer: str,
    record_connect_time: Callable[[str, float], None],
) -> None:
    role = "controlled" if offerer == "firefox" else "controlling"
    argv = network_namespace.command(python_peer_argv(role, echo=False))
    async with (
        serve_page(network_namespace, BROWSER_PAGE_DIR, tmp_path) as server,
        launch_firefox(network_namespace, server.url, tmp_path) as browser,
        start_peer("aioice", argv, tmp_path) as peer,
    ):
        negotiate = browser_offers if offerer == "firefox" else browser_answers
        result = await negotiate(browser, peer, dtls_fingerprint, timeout=TIMEOUT)
    record_connect_time(f"firefox / aioice, {offerer} offers", result.seconds)

    check_connection(result)
    # Without DTLS the browser never gets past "connecting".
    assert result.connection_state == "connecting"
