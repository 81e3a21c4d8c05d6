"""Helpers of the ICE interop tests: peer subprocesses, namespaces, the page.

Every real ICE peer (libnice, pion, the Python agent next to a browser)
runs as a subprocess that speaks JSON lines. It prints its credentials and
candidates as ``{"type": "local", ...}`` and reads the other side's
``{"ufrag", "pwd", "candidates"}`` on stdin. Then it reports state
changes, the selected pair and received data, and exits at end of input.
Each peer's module docstring under ``tests/interop/peers`` describes the
protocol. ``PeerProcess`` starts such a peer, reads its
messages with timeouts and turns every failure (an exit, an ``error``
message, a timeout) into a ``PeerFailure`` with the command, the exit
status, the messages so far and the end of its stderr.

Browsers run in a network namespace that the test creates
(``NetworkNamespace``), together with the page's HTTP server
(``serve_page``) and the Python ICE peer, so that the browser sees only a
loopback interface and sends nothing to any other address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.interop.peers.python_peer import IceDescription, InteropAgent, SelectedPair

PEERS_DIR = Path(__file__).resolve().parent / "peers"
LIBNICE_PEER = PEERS_DIR / "libnice_peer.py"
PION_PEER_SOURCE = PEERS_DIR / "pion_peer"
PYTHON_PEER = PEERS_DIR / "python_peer.py"
BROWSER_PAGE_DIR = PEERS_DIR / "browser"

# Debian's python3-gi binds only to the system interpreter.
SYSTEM_PYTHON = Path("/usr/bin/python3")
NICE_TYPELIB = Path("/usr/lib/x86_64-linux-gnu/girepository-1.0/Nice-0.1.typelib")
GOCODE = Path("/usr/share/gocode")

DEFAULT_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_BUILD_TIMEOUT = 180.0
_CLONE_NEWNET = 0x40000000


class PeerFailure(AssertionError):
    """A peer that exited, reported an error or timed out, as the message states."""


def require_file(path: Path, package: str) -> Path:
    """Return ``path``, or raise PeerFailure naming the Debian package to install."""
    if not path.exists():
        raise PeerFailure(
            f"{path} not found: install the Debian package {package} "
            "(scripts/install-interop-deps installs every interop peer)"
        )
    return path


def require_binary(name: str, package: str) -> str:
    """Return the path of ``name`` on PATH, or raise PeerFailure naming the package."""
    path = shutil.which(name)
    if path is None:
        raise PeerFailure(
            f"{name} not found on PATH: install the Debian package {package} "
            "(scripts/install-interop-deps installs every interop peer)"
        )
    return path


# Peer subprocesses


@dataclass
class PeerProcess:
    """A peer subprocess that speaks JSON lines on stdin and stdout.

    Messages read so far are kept in ``messages``, in order. stderr goes to
    ``stderr_file``.
    """

    name: str
    argv: list[str]
    process: asyncio.subprocess.Process
    stderr_file: Path
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The subprocess's pid."""
        return self.process.pid

    def report(self, reason: str) -> str:
        """Return a failure message: the reason, command, status, output, stderr."""
        status = self.process.returncode
        state = "running" if status is None else f"exited with status {status}"
        recent = "\n".join(f"    {json.dumps(m)}" for m in self.messages[-15:])
        try:
            stderr = self.stderr_file.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            stderr = []
        stderr_text = "\n".join(f"    {line}" for line in stderr) or "    (empty)"
        return (
            f"{self.name} peer: {reason}\n"
            f"  command: {' '.join(self.argv)}\n"
            f"  process: {state}\n"
            f"  messages so far:\n{recent or '    (none)'}\n"
            f"  end of stderr:\n{stderr_text}"
        )

    async def next_message(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Read the next JSON line; raise PeerFailure on EOF, bad JSON or timeout."""
        message = await self._read_message(timeout)
        if message is None:
            raise PeerFailure(self.report(f"no output line within {timeout:.1f} s"))
        return message

    async def _read_message(self, timeout: float) -> dict[str, Any] | None:
        """Read the next JSON line, or return None after ``timeout`` seconds."""
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            return None
        if not line:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 1.0)
            raise PeerFailure(self.report("stdout closed (the peer exited)"))
        try:
            message = json.loads(line)
        except ValueError:
            raise PeerFailure(
                self.report(f"output line is not JSON: {line[:200]!r}")
            ) from None
        if not isinstance(message, dict):
            raise PeerFailure(self.report(f"output line is not an object: {message!r}"))
        self.messages.append(message)
        if message.get("type") == "error":
            raise PeerFailure(
                self.report(f"reported an error: {message.get('message')}")
            )
        return message

    async def wait_for(
        self,
        kind: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Return the first message of type ``kind`` (that ``match`` accepts).

        Messages already read count too, so the order of calls does not
        matter. Raises PeerFailure if none arrives within ``timeout``.
        """
        for message in self.messages:
            if message.get("type") == kind and (match is None or match(message)):
                return message
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            received = await self._read_message(remaining)
            if received is None:
                break
            if received.get("type") == kind and (match is None or match(received)):
                return received
        raise PeerFailure(self.report(f"no {kind!r} message within {timeout:.1f} s"))

    async def wait_for_state(
        self, states: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT
    ) -> str:
        """Wait for a ``state`` message with one of ``states``; return the state."""
        message = await self.wait_for(
            "state", timeout=timeout, match=lambda m: m.get("state") in states
        )
        return str(message["state"])

    def find(self, kind: str) -> dict[str, Any] | None:
        """Return the last message of type ``kind`` read so far, or None."""
        for earlier in self.messages[::-1]:
            if earlier.get("type") == kind:
                return earlier
        return None

    async def local_description(
        self, *, timeout: float = DEFAULT_TIMEOUT
    ) -> IceDescription:
        """Wait for the peer's ``local`` message and return its description."""
        message = await self.wait_for("local", timeout=timeout)
        try:
            return IceDescription.from_json(message)
        except ValueError as error:
            raise PeerFailure(self.report(f"invalid local message: {error}")) from None

    async def send(self, message: dict[str, Any]) -> None:
        """Write one JSON line to the peer's stdin."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            await self.process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise PeerFailure(self.report("stdin closed (the peer exited)")) from None

    async def send_description(self, description: IceDescription) -> None:
        """Send the other side's credentials and candidates."""
        await self.send({"type": "remote", **description.to_json()})

    async def close(self, timeout: float = _STOP_TIMEOUT) -> int:
        """Close stdin, wait for the exit, then SIGTERM and SIGKILL by pid."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        for sent in (None, signal.SIGTERM, signal.SIGKILL):
            if sent is not None and self.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, sent)
            try:
                return await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                continue
        raise PeerFailure(self.report("did not exit after SIGKILL"))


@contextlib.asynccontextmanager
async def start_peer(
    name: str,
    argv: Sequence[str],
    directory: Path,
    *,
    env: dict[str, str] | None = None,
) -> AsyncIterator[PeerProcess]:
    """Start a JSON-lines peer; close it and wait for its exit on leaving.

    Raises PeerFailure when the program cannot be started.
    """
    stderr_file = directory / f"{name}.stderr"
    command = [str(part) for part in argv]
    with stderr_file.open("wb") as stderr:
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
                env=env,
                limit=1 << 20,
            )
        except OSError as error:
            raise PeerFailure(
                f"{name} peer: cannot start {' '.join(command)}: {error}"
            ) from None
    peer = PeerProcess(name, command, process, stderr_file)
    try:
        yield peer
    finally:
        await peer.close()


def libnice_peer_argv(
    role: str,
    *,
    transport: str = "udp",
    turn: tuple[str, int] | None = None,
    turn_user: str = "",
    turn_password: str = "",
    turn_transport: str = "udp",
    force_relay: bool = False,
    greeting: str | None = None,
    echo: bool = True,
    timeout: float = 25.0,
) -> list[str]:
    """Return the command line of the libnice peer; raise PeerFailure if missing."""
    require_file(SYSTEM_PYTHON, "python3")
    require_file(NICE_TYPELIB, "gir1.2-nice-0.1")
    argv = [str(SYSTEM_PYTHON), str(LIBNICE_PEER), "--role", role]
    argv += ["--transport", transport, "--timeout", str(timeout)]
    if turn is not None:
        argv += ["--turn", f"{turn[0]}:{turn[1]}", "--turn-user", turn_user]
        argv += ["--turn-password", turn_password, "--turn-transport", turn_transport]
    if force_relay:
        argv.append("--force-relay")
    if greeting is not None:
        argv += ["--greeting", greeting]
    if not echo:
        argv.append("--no-echo")
    return argv


def build_pion_peer(directory: Path) -> Path:
    """Build the pion peer offline into ``directory``; return the binary.

    Raises PeerFailure with go's output when the build fails.
    """
    go = require_binary("go", "golang-go")
    require_file(GOCODE / "src/github.com/pion/ice", "golang-github-pion-ice-dev")
    require_file(GOCODE / "src/github.com/pion/turn", "golang-github-pion-turn-dev")
    binary = directory / "pion_peer"
    env = dict(os.environ)
    env.update(
        GO111MODULE="off",
        GOPATH=f"{directory / 'gopath'}:{GOCODE}",
        GOPROXY="off",
        GOFLAGS="",
    )
    if "HOME" not in env:
        env["GOCACHE"] = str(directory / "go-cache")
    command = [go, "build", "-o", str(binary), "."]
    try:
        result = subprocess.run(
            command,
            cwd=PION_PEER_SOURCE,
            env=env,
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PeerFailure(
            f"go build of the pion peer took over {_BUILD_TIMEOUT:.0f} s"
        ) from None
    if result.returncode != 0:
        raise PeerFailure(
            f"go build of the pion peer failed with status {result.returncode}:\n"
            f"  command: GO111MODULE=off GOPATH={env['GOPATH']} GOPROXY=off "
            f"{' '.join(command)} (in {PION_PEER_SOURCE})\n"
            f"{result.stdout}{result.stderr}"
        )
    return binary


def pion_peer_argv(
    binary: Path,
    role: str,
    *,
    turn_url: str | None = None,
    turn_user: str = "",
    turn_password: str = "",
    relay_only: bool = False,
    greeting: str | None = None,
    echo: bool = True,
    timeout: float = 25.0,
) -> list[str]:
    """Return the command line of the pion peer in ICE mode."""
    argv = [str(binary), "-mode", "ice", "-role", role, "-timeout", f"{timeout}s"]
    if turn_url is not None:
        argv += ["-turn", turn_url, "-turn-user", turn_user]
        argv += ["-turn-password", turn_password]
    if relay_only:
        argv.append("-relay-only")
    if greeting is not None:
        argv += ["-greeting", greeting]
    if not echo:
        argv.append("-echo=false")
    return argv


def pion_turn_client_argv(
    binary: Path,
    server: tuple[str, int],
    peer: tuple[str, int],
    *,
    user: str,
    password: str,
    count: int = 3,
    message: str = "hello through pion's relay",
    timeout: float = 25.0,
) -> list[str]:
    """Return the command line of the pion peer in TURN client mode."""
    return [
        str(binary),
        "-mode",
        "turn-client",
        "-turn-server",
        f"{server[0]}:{server[1]}",
        "-turn-user",
        user,
        "-turn-password",
        password,
        "-peer",
        f"{peer[0]}:{peer[1]}",
        "-count",
        str(count),
        "-message",
        message,
        "-timeout",
        f"{timeout}s",
    ]


def python_peer_argv(
    role: str,
    *,
    agent: str = "aioice",
    greeting: str = "",
    echo: bool = True,
    timeout: float = 25.0,
) -> list[str]:
    """Return the command line of the Python agent as a JSON-lines peer.

    Next to a browser, run it with ``echo`` false: an echoed DTLS client
    hello makes the browser fail its DTLS handshake at once.
    """
    argv = [sys.executable, str(PYTHON_PEER), "--agent", agent, "--role", role]
    argv += ["--timeout", str(timeout)]
    if greeting:
        argv += ["--greeting", greeting]
    if not echo:
        argv.append("--no-echo")
    return argv


# An in-process agent against a peer subprocess


@dataclass(frozen=True, slots=True)
class Connected:
    """Both sides connected: the time taken and each side's selected pair."""

    seconds: float
    agent_pair: SelectedPair | None
    peer_pair: dict[str, Any] | None


async def connect_agent_to_peer(
    agent: InteropAgent, peer: PeerProcess, *, timeout: float = DEFAULT_TIMEOUT
) -> Connected:
    """Exchange descriptions between ``agent`` and ``peer`` and connect both.

    The clock starts when the peer has the agent's description and stops
    when the agent's ``connect`` has returned and the peer has reported a
    ``connected`` or ``ready`` state.
    """
    remote = await peer.local_description(timeout=timeout)
    local = await agent.gather()
    await agent.set_remote(remote)
    await agent.add_remote_candidate(None)

    started = time.monotonic()
    await peer.send_description(local)
    connect = asyncio.ensure_future(agent.connect())
    try:
        await peer.wait_for_state(("connected", "ready"), timeout=timeout)
        await asyncio.wait_for(connect, timeout)
    except TimeoutError:
        raise PeerFailure(
            peer.report(f"the in-process agent did not connect within {timeout} s")
        ) from None
    except ConnectionError as error:
        raise PeerFailure(
            peer.report(f"the in-process agent failed to connect: {error}")
        ) from None
    finally:
        connect.cancel()
    seconds = time.monotonic() - started
    peer_pair = await peer.wait_for("selected", timeout=timeout)
    return Connected(seconds, agent.selected_pair(), peer_pair)


async def connect_peers(
    first: PeerProcess, second: PeerProcess, *, timeout: float = DEFAULT_TIMEOUT
) -> float:
    """Exchange descriptions between two peer subprocesses and connect them.

    Returns the seconds from sending the descriptions until both peers have
    reported a ``connected`` or ``ready`` state.
    """
    first_local = await first.local_description(timeout=timeout)
    second_local = await second.local_description(timeout=timeout)
    started = time.monotonic()
    await first.send_description(second_local)
    await second.send_description(first_local)
    await first.wait_for_state(("connected", "ready"), timeout=timeout)
    await second.wait_for_state(("connected", "ready"), timeout=timeout)
    return time.monotonic() - started


# Network namespaces


def _enter_namespace(name: str) -> None:
    """Move the calling thread into the network namespace ``name``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into {name} failed: {os.strerror(error)}")
    finally:
        os.close(fd)


@dataclass
class NetworkNamespace:
    """A network namespace with only a loopback interface, made by the test.

    Programs run in it through ``command``; ``connect_tcp`` opens a TCP
    connection from this process to an address inside it.
    """

    name: str
    ip: str

    @classmethod
    def create(cls, prefix: str = "rice-fast") -> NetworkNamespace:
        """Create the namespace and bring its loopback up.

        Raises:
            PeerFailure: ``ip`` is missing or ``ip netns add`` failed (it
                needs root).
        """
        ip = require_binary("ip", "iproute2")
        name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        namespace = cls(name, ip)
        namespace._run("netns", "add", name)
        try:
            namespace._run("netns", "exec", name, ip, "link", "set", "lo", "up")
        except PeerFailure:
            namespace.delete()
            raise
        return namespace

    def _run(self, *arguments: str) -> str:
        result = subprocess.run(
            [self.ip, *arguments], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise PeerFailure(
                f"ip {' '.join(arguments)} failed with status {result.returncode}: "
                f"{result.stderr.strip()} (network namespaces need root)"
            )
        return result.stdout

    def command(self, argv: Sequence[str | Path]) -> list[str]:
        """Return ``argv`` wrapped to run inside the namespace."""
        return [self.ip, "netns", "exec", self.name, *(str(part) for part in argv)]

    def pids(self) -> list[int]:
        """Return the pids of the processes still running in the namespace."""
        output = self._run("netns", "pids", self.name)
        return [int(word) for word in output.split()]

    def connect_tcp(
        self, address: tuple[str, int], timeout: float = DEFAULT_TIMEOUT
    ) -> socket.socket:
        """Open a TCP connection to ``address`` inside the namespace.

        A short-lived thread enters the namespace with setns(2), which
        changes only that thread, and creates the socket there. The socket
        stays in the namespace when the thread ends, and this process can
        use it like any other.
        """
        result: list[socket.socket] = []
        failure: list[BaseException] = []

        def connect() -> None:
            try:
                _enter_namespace(self.name)
                result.append(socket.create_connection(address, timeout=timeout))
            except OSError as error:
                failure.append(error)

        thread = threading.Thread(target=connect, name=f"connect-in-{self.name}")
        thread.start()
        thread.join()
        if failure:
            raise PeerFailure(
                f"cannot connect to {address[0]}:{address[1]} in the network "
                f"namespace {self.name}: {failure[0]}"
            )
        sock = result[0]
        sock.settimeout(None)
        return sock

    def delete(self) -> None:
        """Stop what still runs in the namespace, by pid, and delete it.

        Every process in the namespace was started by this test run, so the
        leftovers (a browser's helper processes, say) get SIGKILL.
        """
        with contextlib.suppress(PeerFailure):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._run("netns", "delete", self.name)


# The page's HTTP server

_SERVING = re.compile(rb"Serving HTTP on \S+ port (\d+)")


@dataclass(frozen=True, slots=True)
class PageServer:
    """An HTTP server for the browser page inside a namespace."""

    url: str
    process: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def serve_page(
    namespace: NetworkNamespace,
    directory: Path,
    log_dir: Path,
    *,
    page: str = "index.html",
    timeout: float = DEFAULT_TIMEOUT,
) -> AsyncIterator[PageServer]:
    """Serve ``directory`` on 127.0.0.1 inside ``namespace``; yield its page URL.

    The server is Python's ``http.server`` on a port the kernel picks,
    stopped by pid on leaving.
    """
    argv = [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1"]
    argv += ["--directory", str(directory), "0"]
    log_file = log_dir / "page-server.log"
    with log_file.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *namespace.command(argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    try:
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout)
        except TimeoutError:
            line = b""
        match = _SERVING.search(line)
        if match is None:
            raise PeerFailure(
                f"the page server did not start: {' '.join(namespace.command(argv))} "
                f"printed {line!r}; log: {log_file.read_text(errors='replace')[-500:]}"
            )
        port = int(match.group(1))
        yield PageServer(f"http://127.0.0.1:{port}/{page}", process)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            await process.wait()
