"""Consent freshness (RFC 7675) of rice_fast's agent against Chromium 156.

rice_fast's agent, as the JSON-lines peer ``python_peer.py --agent
rice_fast``, connects to Chromium inside a network namespace that the test
creates. Once the browser has responded to a consent request, the page
closes its RTCPeerConnection, which then sends no more responses.
RFC 7675 §5.1 ends consent 30 s after the last response.
``IceConnection`` turns ``ConsentLost`` into a component state change to
FAILED, which the peer prints as a ``failed`` state after ``connected``.
The last response came before the close, so that state must arrive within
30 s of the close.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.interop.conftest import (
    check_browser_pair,
    close_peer_connection,
    run_in_page,
)
from tests.interop.harness import (
    BROWSER_PAGE_DIR,
    NetworkNamespace,
    python_peer_argv,
    serve_page,
    start_peer,
)
from tests.interop.peers.browser.drivers import browser_offers, launch_chromium

if TYPE_CHECKING:
    from tests.interop.conftest import ScenarioRecorder
    from tests.interop.peers.browser.drivers import BrowserDriver

pytestmark = pytest.mark.interop

TIMEOUT = 10.0
# RFC 7675 §5.1: consent expires 30 s after the last consent response.
CONSENT_TIMEOUT = 30.0
# Time allowed on top for the peer to notice the state (it reads the
# component state every 50 ms) and to print it.
REPORT_MARGIN = 1.0


# The first consent request leaves at most 6 s after the selection
# (5 s randomized by +/-20 %, RFC 7675 §5.1).
CONSENT_INTERVAL_MAX = 6.0

# Sums responsesSent of the candidate pairs in getStats(): the Binding
# requests that the browser responded to, checks and consent requests alike.
_RESPONSES_SENT = """async () => {
  const stats = await session.pc.getStats();
  let sent = 0;
  stats.forEach((report) => {
    if (report.type === "candidate-pair") {
      sent += report.responsesSent ?? 0;
    }
  });
  return JSON.stringify(sent);
}"""


async def responses_sent(browser: BrowserDriver) -> int:
    """Return how many Binding requests the page's peer connection responded to."""
    return int(await run_in_page(browser, _RESPONSES_SENT))


@pytest.mark.slow
async def test_consent_lost_after_chromium_closes(
    tmp_path: Path,
    network_namespace: NetworkNamespace,
    dtls_fingerprint: str,
    interop_result: ScenarioRecorder,
) -> None:
    interop_result.describe(
        "chromium", "consent lost after the browser closes", "controlled", "udp"
    )
    # The peer must outlive the 30 s of consent and the browser's start.
    argv = python_peer_argv("controlled", agent="rice_fast", echo=False, timeout=55.0)
    async with (
        serve_page(network_namespace, BROWSER_PAGE_DIR, tmp_path) as server,
        launch_chromium(network_namespace, server.url, tmp_path) as browser,
        start_peer("rice_fast", network_namespace.command(argv), tmp_path) as peer,
    ):
        result = await browser_offers(browser, peer, dtls_fingerprint, timeout=TIMEOUT)
        interop_result.connected(result.seconds)
        check_browser_pair(result)

        # Close only after the browser responded to a consent request (the
        # first leaves 4 to 6 s after the selection), so that the 30 s run
        # from a consent response and not from the selection.
        responses_at_connect = await responses_sent(browser)
        deadline = time.monotonic() + CONSENT_INTERVAL_MAX + TIMEOUT
        while await responses_sent(browser) <= responses_at_connect:
            assert time.monotonic() < deadline, (
                f"chromium sent no response to a consent request within "
                f"{CONSENT_INTERVAL_MAX + TIMEOUT} s of connecting"
            )
            await asyncio.sleep(0.1)
        await close_peer_connection(browser)
        closed = time.monotonic()
        await peer.wait_for_state(("failed",), timeout=CONSENT_TIMEOUT + REPORT_MARGIN)
        lost_after = time.monotonic() - closed
    print(f"rice_fast reported consent lost {lost_after:.1f} s after the close")

    states = [m["state"] for m in peer.messages if m["type"] == "state"]
    assert states == ["checking", "connected", "failed"]
