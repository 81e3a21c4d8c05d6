"""Drive Chromium and Firefox ESR on the interop page inside a namespace.

``launch_chromium`` starts Debian's Chromium through Playwright, with a
wrapper executable that runs it under ``ip netns exec``, and grants the
page's origin microphone and camera permission: Chromium gathers a plain
127.0.0.1 host candidate only with media permission. ``launch_firefox``
starts Firefox ESR in the namespace with a fresh profile and speaks
WebDriver BiDi to it over a websocket whose socket is opened inside the
namespace. No geckodriver is needed.

Both drivers expose ``call(command, *arguments)``, which runs a command of
the page's ``window.iceTest`` (see ``peer.js``) and returns its JSON result.
``browser_offers`` and ``browser_answers`` run a whole negotiation between
a browser and a JSON-lines ICE peer from ``tests/interop/peers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import websockets
import websockets.asyncio.client
from playwright.async_api import Page, async_playwright

from tests.interop.harness import (
    DEFAULT_TIMEOUT,
    NetworkNamespace,
    PeerProcess,
    require_binary,
    require_file,
)
from tests.interop.peers.browser.sdp import build_data_channel_sdp, parse_sdp
from tests.interop.peers.python_peer import IceDescription, normalize_candidate

CHROMIUM = Path("/usr/lib/chromium/chromium")

# --headless and --no-sandbox come from Playwright (headless=True,
# chromium_sandbox=False). --allow-loopback-in-peer-connection lets WebRTC
# gather on 127.0.0.1.
CHROMIUM_FLAGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
)

# Firefox ESR preferences. The media ones make it gather on loopback while
# a fake microphone capture runs. The rest turn off its background traffic,
# none of which could leave the namespace anyway.
FIREFOX_PREFERENCES: dict[str, bool | int | str] = {
    "media.peerconnection.ice.loopback": True,
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.navigator.permission.fake": True,
    "app.update.auto": False,
    "app.update.enabled": False,
    "app.update.checkInstallTime": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.provider.google4.updateURL": "",
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.server": "",
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "services.settings.server": "",
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage": "about:blank",
    "browser.startup.page": 0,
    "browser.newtabpage.enabled": False,
    "browser.search.update": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "media.gmp-manager.updateEnabled": False,
}

# Port of Firefox's remote agent. The namespace is new and has nothing
# else on this port, because the page server takes an ephemeral port.
FIREFOX_REMOTE_PORT = 9222
_FIREFOX_START_TIMEOUT = 30.0
_CALL = "(name, argumentsJson) => window.iceTest.call(name, argumentsJson)"


class BrowserFailure(AssertionError):
    """A browser that did not start, or a page command that failed."""


class BrowserDriver(Protocol):
    """A browser with the interop page open."""

    name: str

    async def call(self, command: str, *arguments: Any) -> Any:
        """Run ``iceTest`` command ``command`` and return its JSON result."""
        ...


# Chromium


@dataclass
class ChromiumDriver:
    """Chromium with the interop page open, driven by Playwright."""

    page: Page
    name: str = "chromium"

    async def call(self, command: str, *arguments: Any) -> Any:
        """Run ``iceTest`` command ``command`` and return its JSON result."""
        try:
            text = await self.page.evaluate(
                "([name, argumentsJson]) => window.iceTest.call(name, argumentsJson)",
                [command, json.dumps(arguments)],
            )
        except Exception as error:  # Playwright raises its own Error type
            raise BrowserFailure(f"chromium: {command} failed: {error}") from None
        return json.loads(text)


def _write_chromium_wrapper(namespace: NetworkNamespace, directory: Path) -> Path:
    wrapper = directory / "chromium-in-namespace"
    command = " ".join(namespace.command([CHROMIUM]))
    wrapper.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@contextlib.asynccontextmanager
async def launch_chromium(
    namespace: NetworkNamespace,
    page_url: str,
    directory: Path,
    *,
    timeout: float = 20.0,
) -> AsyncIterator[ChromiumDriver]:
    """Start Chromium in ``namespace`` with a fresh profile and open ``page_url``.

    Raises:
        BrowserFailure: Chromium is not installed, does not start, or the
            page does not load.
    """
    require_file(CHROMIUM, "chromium")
    wrapper = _write_chromium_wrapper(namespace, directory)
    parts = urlsplit(page_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    async with async_playwright() as playwright:
        try:
            context = await playwright.chromium.launch_persistent_context(
                user_data_dir=str(directory / "chromium-profile"),
                executable_path=str(wrapper),
                headless=True,
                chromium_sandbox=False,
                args=list(CHROMIUM_FLAGS),
                timeout=timeout * 1000,
            )
        except Exception as error:  # Playwright raises its own Error type
            raise BrowserFailure(
                f"chromium did not start through {wrapper}: {error}"
            ) from None
        try:
            await context.grant_permissions(["microphone", "camera"], origin=origin)
            page = context.pages[0] if context.pages else await context.new_page()
            try:
                await page.goto(page_url, timeout=timeout * 1000)
            except Exception as error:  # Playwright raises its own Error type
                raise BrowserFailure(
                    f"chromium cannot load {page_url}: {error}"
                ) from None
            yield ChromiumDriver(page)
        finally:
            await context.close()


# Firefox and WebDriver BiDi


class BidiSession:
    """A WebDriver BiDi client on one websocket: commands and their results."""

    def __init__(self, connection: websockets.asyncio.client.ClientConnection) -> None:
        self.connection = connection
        self.ids = itertools.count(1)

    async def command(
        self, method: str, params: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Send ``method`` and return its ``result``; events are skipped.

        Raises:
            BrowserFailure: the browser returned an error or no response
                came within ``timeout``.
        """
        command_id = next(self.ids)
        message = {"id": command_id, "method": method, "params": params}
        await self.connection.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                raw = await asyncio.wait_for(self.connection.recv(), max(remaining, 0))
            except TimeoutError:
                raise BrowserFailure(
                    f"firefox: no response to {method} within {timeout} s"
                ) from None
            response = json.loads(raw)
            if response.get("id") != command_id:
                continue
            if response.get("type") == "error":
                raise BrowserFailure(
                    f"firefox: {method} failed: {response.get('error')}: "
                    f"{response.get('message')}"
                )
            result: dict[str, Any] = response["result"]
            return result


@dataclass
class FirefoxDriver:
    """Firefox ESR with the interop page open, driven by WebDriver BiDi."""

    session: BidiSession
    context: str
    name: str = "firefox"

    async def call(self, command: str, *arguments: Any) -> Any:
        """Run ``iceTest`` command ``command`` and return its JSON result."""
        result = await self.session.command(
            "script.callFunction",
            {
                "functionDeclaration": _CALL,
                "arguments": [
                    {"type": "string", "value": command},
                    {"type": "string", "value": json.dumps(arguments)},
                ],
                "target": {"context": self.context},
                "awaitPromise": True,
                "resultOwnership": "none",
            },
            timeout=DEFAULT_TIMEOUT + 5,
        )
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            raise BrowserFailure(f"firefox: {command} failed: {details.get('text')}")
        value = result["result"]
        if value.get("type") != "string":
            raise BrowserFailure(f"firefox: {command} returned {value!r}")
        return json.loads(value["value"])


def write_firefox_profile(directory: Path) -> Path:
    """Create a fresh profile directory with the preferences in user.js."""
    profile = directory / "firefox-profile"
    profile.mkdir()
    lines = [
        f"user_pref({json.dumps(name)}, {json.dumps(value)});"
        for name, value in FIREFOX_PREFERENCES.items()
    ]
    (profile / "user.js").write_text("\n".join(lines) + "\n")
    return profile


async def _wait_for_remote_agent(
    process: asyncio.subprocess.Process, log_file: Path, port: int
) -> None:
    ready = f"WebDriver BiDi listening on ws://127.0.0.1:{port}"
    deadline = time.monotonic() + _FIREFOX_START_TIMEOUT
    while time.monotonic() < deadline:
        log = log_file.read_text(errors="replace")
        if ready in log:
            return
        if process.returncode is not None:
            break
        await asyncio.sleep(0.1)
    tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-20:])
    raise BrowserFailure(
        f"firefox did not print {ready!r} within {_FIREFOX_START_TIMEOUT} s "
        f"(status {process.returncode}); end of its log:\n{tail}"
    )


async def _stop_process(process: asyncio.subprocess.Process) -> None:
    for sent in (None, signal.SIGTERM, signal.SIGKILL):
        if sent is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, sent)
        try:
            await asyncio.wait_for(process.wait(), 5.0)
            return
        except TimeoutError:
            continue


@contextlib.asynccontextmanager
async def launch_firefox(
    namespace: NetworkNamespace, page_url: str, directory: Path
) -> AsyncIterator[FirefoxDriver]:
    """Start Firefox ESR in ``namespace`` with a fresh profile and open ``page_url``.

    The page's fake microphone capture is started before the driver is
    returned, because Firefox gathers no loopback candidate without one.

    Raises:
        BrowserFailure: Firefox is missing, does not start its remote agent,
            or the page does not load.
    """
    firefox = require_binary("firefox-esr", "firefox-esr")
    profile = write_firefox_profile(directory)
    argv = [firefox, "--headless", "--no-remote", "-profile", str(profile)]
    argv += ["--remote-debugging-port", str(FIREFOX_REMOTE_PORT)]
    log_file = directory / "firefox.log"
    with log_file.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *namespace.command(argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        await _wait_for_remote_agent(process, log_file, FIREFOX_REMOTE_PORT)
        loop = asyncio.get_running_loop()
        sock = await loop.run_in_executor(
            None, namespace.connect_tcp, ("127.0.0.1", FIREFOX_REMOTE_PORT)
        )
        uri = f"ws://127.0.0.1:{FIREFOX_REMOTE_PORT}/session"
        async with websockets.asyncio.client.connect(
            uri, sock=sock, max_size=None, open_timeout=DEFAULT_TIMEOUT
        ) as connection:
            session = BidiSession(connection)
            await session.command("session.new", {"capabilities": {}})
            tree = await session.command("browsingContext.getTree", {})
            context = tree["contexts"][0]["context"]
            await session.command(
                "browsingContext.navigate",
                {"context": context, "url": page_url, "wait": "complete"},
            )
            driver = FirefoxDriver(session, context)
            # Firefox gathers on loopback only while a capture is active.
            tracks = await driver.call("startCapture")
            if not tracks:
                raise BrowserFailure("firefox: getUserMedia returned no track")
            yield driver
            with contextlib.suppress(BrowserFailure, websockets.ConnectionClosed):
                await session.command("browser.close", {}, timeout=5.0)
    finally:
        await _stop_process(process)


# Negotiations


@dataclass(frozen=True, slots=True)
class BrowserConnection:
    """How a browser and an ICE peer connected.

    ``seconds`` runs on the test's clock from the moment the browser gets
    the remote description until both sides report "connected";
    ``browser_milliseconds`` is the page's own time from setting the remote
    description to iceConnectionState "connected".
    """

    browser: str
    ice_connection_state: str
    connection_state: str
    nominated_pair: dict[str, Any] | None
    peer_pair: dict[str, Any] | None
    seconds: float
    browser_milliseconds: float | None


async def _wait_connected(
    browser: BrowserDriver,
    peer: PeerProcess,
    started: float,
    timeout: float,
) -> BrowserConnection:
    waited = await browser.call("waitForIceState", "connected", timeout * 1000)
    if not waited["reached"]:
        state = await browser.call("state")
        raise BrowserFailure(
            f"{browser.name}: iceConnectionState is {waited['state']!r}, not "
            f"'connected', after {timeout} s; page state: {json.dumps(state)}\n"
            + peer.report("state of the ICE peer")
        )
    await peer.wait_for_state(("connected", "ready"), timeout=timeout)
    seconds = time.monotonic() - started

    state = await browser.call("state")
    pair = await nominated_pair(browser)
    browser_ms = None
    if state["connectedAt"] is not None and state["remoteDescriptionAt"] is not None:
        browser_ms = state["connectedAt"] - state["remoteDescriptionAt"]
    return BrowserConnection(
        browser=browser.name,
        ice_connection_state=state["iceConnectionState"],
        connection_state=state["connectionState"],
        nominated_pair=pair,
        peer_pair=peer.find("selected"),
        seconds=seconds,
        browser_milliseconds=browser_ms,
    )


async def nominated_pair(browser: Any, timeout: float = 5.0) -> Any:
    """Return the browser's nominated pair from getStats(), or None.

    The nominated flag can appear in getStats() a few milliseconds after
    the "connected" event, so this polls until it does or ``timeout`` ends.
    """
    deadline = time.monotonic() + timeout
    pair = await browser.call("nominatedPair")
    while pair is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        pair = await browser.call("nominatedPair")
    return pair


async def browser_offers(
    browser: BrowserDriver,
    peer: PeerProcess,
    fingerprint: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> BrowserConnection:
    """Negotiate with the browser as offerer and ``peer`` as answerer.

    The peer's candidates are trickled to the browser one by one after the
    answer, followed by end of candidates. The peer must run with the
    controlled role, and its answer takes the DTLS client role
    (``a=setup:active``).
    """
    offer = await browser.call("createOffer")
    section = parse_sdp(offer["sdp"]).data_channel()
    if section.ufrag is None or section.pwd is None:
        raise BrowserFailure(f"{browser.name}: offer without ICE credentials")
    candidates = section.candidates or tuple(
        normalize_candidate(line) for line in offer["candidates"]
    )
    if not candidates:
        raise BrowserFailure(
            f"{browser.name} gathered no candidate; offer:\n{offer['sdp']}"
        )

    local = await peer.local_description(timeout=timeout)
    await peer.send_description(IceDescription(section.ufrag, section.pwd, candidates))
    mid = section.mid or "0"
    answer = build_data_channel_sdp(
        ufrag=local.ufrag,
        pwd=local.pwd,
        candidates=[],
        fingerprint=fingerprint,
        setup="active",
        mid=mid,
        end_of_candidates=False,
    )

    started = time.monotonic()
    await browser.call("applyAnswer", answer)
    for line in local.candidates:
        await browser.call("addRemoteCandidate", line, mid)
    await browser.call("addRemoteCandidate", None, mid)
    return await _wait_connected(browser, peer, started, timeout)


async def browser_answers(
    browser: BrowserDriver,
    peer: PeerProcess,
    fingerprint: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> BrowserConnection:
    """Negotiate with ``peer`` as offerer (all candidates in the offer).

    The peer must run with the controlling role; the offer has
    ``a=setup:actpass``.
    """
    local = await peer.local_description(timeout=timeout)
    offer = build_data_channel_sdp(
        ufrag=local.ufrag,
        pwd=local.pwd,
        candidates=local.candidates,
        fingerprint=fingerprint,
        setup="actpass",
    )
    started = time.monotonic()
    answer = await browser.call("createAnswer", offer)
    section = parse_sdp(answer["sdp"]).data_channel()
    if section.ufrag is None or section.pwd is None:
        raise BrowserFailure(f"{browser.name}: answer without ICE credentials")
    candidates = section.candidates or tuple(
        normalize_candidate(line) for line in answer["candidates"]
    )
    await peer.send_description(IceDescription(section.ufrag, section.pwd, candidates))
    return await _wait_connected(browser, peer, started, timeout)
