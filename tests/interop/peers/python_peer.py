"""The Python ICE agent under test, in-process or as a JSON-lines peer.

``InteropAgent`` is the small surface that the interop tests need from an
ICE agent: gather, take the remote description, connect, send and receive,
report the selected pair. ``AioiceAgent`` implements it with aioice, the
stand-in until rice_fast's own agent and its asyncio runner exist. To
switch, a test needs only a rice_fast implementation and its name in
``AGENTS``.

Run as a script, the module wraps one agent in the JSON-lines protocol of
the other peers in this folder, for scenarios where the agent must run in
a separate process, such as inside a network namespace next to a browser:

- stdout, once gathering is done: ``{"type": "local", "ufrag", "pwd",
  "candidates"}``;
- stdin, first line: the peer's ``{"ufrag", "pwd", "candidates"}``; later
  lines ``{"type": "candidate", "candidate"}`` (``null`` for end of
  candidates) and ``{"type": "send", "data"}``;
- stdout, with ``--trickle``: the ``local`` message without candidates,
  then ``{"type": "candidate", "candidate"}`` for each one and ``null``
  for the end;
- stdout afterwards: ``{"type": "state", "state"}`` (``checking``,
  ``connected``, ``failed``; rice_fast's agent also reports ``failed``
  after ``connected`` when consent is lost), ``{"type": "selected",
  "local", "remote"}``, ``{"type": "data", "data"}`` for each datagram
  (echoed unless ``--no-echo``), ``{"type": "sent", "data"}`` and
  ``{"type": "error", "message"}``.

The script exits on end of input on stdin or after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aioice
import aioice.ice

CANDIDATE_PREFIX = "candidate:"


@dataclass(frozen=True, slots=True)
class IceDescription:
    """ICE credentials and candidates, as one side sends them to the other.

    Candidates are SDP ``candidate`` attribute values that start with
    ``candidate:`` and carry no ``a=`` prefix.
    """

    ufrag: str
    pwd: str
    candidates: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the description as the JSON object of the peer protocol."""
        return {"ufrag": self.ufrag, "pwd": self.pwd, "candidates": [*self.candidates]}

    @classmethod
    def from_json(cls, message: dict[str, Any]) -> IceDescription:
        """Read a description from a JSON object of the peer protocol.

        Raises:
            ValueError: ``ufrag``, ``pwd`` or ``candidates`` is missing or
                not of the expected type.
        """
        ufrag = message.get("ufrag")
        pwd = message.get("pwd")
        candidates = message.get("candidates", [])
        if not isinstance(ufrag, str) or not isinstance(pwd, str):
            raise ValueError(f"description without ufrag and pwd strings: {message!r}")
        if not isinstance(candidates, list) or not all(
            isinstance(line, str) for line in candidates
        ):
            raise ValueError(f"candidates is not a list of strings: {candidates!r}")
        return cls(ufrag, pwd, tuple(normalize_candidate(line) for line in candidates))


@dataclass(frozen=True, slots=True)
class SelectedPair:
    """The candidate pair an agent sends on, as two SDP candidate values."""

    local: str
    remote: str


@dataclass(frozen=True, slots=True)
class CandidateAddress:
    """The transport, address and type fields of an SDP candidate value."""

    transport: str
    host: str
    port: int
    type: str


def candidate_address(line: str) -> CandidateAddress:
    """Read the transport (lower case), address, port and type of a candidate.

    Raises:
        ValueError: the value has fewer than eight fields or a bad port.
    """
    fields = normalize_candidate(line).removeprefix(CANDIDATE_PREFIX).split()
    if len(fields) < 8 or fields[6] != "typ" or not fields[5].isdigit():
        raise ValueError(f"not an SDP candidate value: {line!r}")
    return CandidateAddress(fields[2].lower(), fields[4], int(fields[5]), fields[7])


def normalize_candidate(line: str) -> str:
    """Return ``line`` as ``candidate:...``, without ``a=`` or a line end."""
    text = line.strip().removeprefix("a=")
    if not text.startswith(CANDIDATE_PREFIX):
        text = CANDIDATE_PREFIX + text
    return text


def is_udp_candidate(line: str) -> bool:
    """Return whether an SDP candidate value has the UDP transport."""
    fields = normalize_candidate(line).split()
    return len(fields) > 2 and fields[2].lower() == "udp"


class InteropAgent(Protocol):
    """An ICE agent with one component, driven by the interop tests.

    Call order: ``gather``, then ``set_remote`` (and any number of
    ``add_remote_candidate``), then ``connect``; ``send``, ``recv`` and
    ``selected_pair`` after ``connect`` returns; ``close`` last.
    """

    controlling: bool

    async def gather(self) -> IceDescription:
        """Gather local candidates and return the local description."""
        ...

    async def set_remote(self, description: IceDescription) -> None:
        """Set the remote credentials and add the remote candidates."""
        ...

    async def add_remote_candidate(self, line: str | None) -> None:
        """Add one trickled remote candidate, or end of candidates for None."""
        ...

    async def connect(self) -> None:
        """Run the checks until a pair is selected; raise ConnectionError if not."""
        ...

    def selected_pair(self) -> SelectedPair | None:
        """Return the selected pair, or None before one is selected."""
        ...

    async def send(self, data: bytes) -> None:
        """Send a datagram on the selected pair."""
        ...

    async def recv(self) -> bytes:
        """Return the next datagram received on the selected pair."""
        ...

    async def close(self) -> None:
        """Close the agent and its sockets."""
        ...


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


class AioiceAgent:
    """aioice 0.13's ``Connection`` behind the ``InteropAgent`` surface.

    aioice skips loopback addresses when it gathers, so creating one of these
    replaces ``aioice.ice.get_host_addresses`` for the whole process with a
    function that returns only ``127.0.0.1``.
    """

    def __init__(
        self,
        *,
        controlling: bool,
        turn_server: tuple[str, int] | None = None,
        turn_user: str | None = None,
        turn_password: str | None = None,
        turn_transport: str = "udp",
        relay_only: bool = False,
    ) -> None:
        aioice.ice.get_host_addresses = _loopback_host_addresses
        self.controlling = controlling
        policy = aioice.ice.TransportPolicy
        self.connection = aioice.Connection(
            ice_controlling=controlling,
            components=1,
            turn_server=turn_server,
            turn_username=turn_user,
            turn_password=turn_password,
            turn_transport=turn_transport,
            use_ipv6=False,
            transport_policy=policy.RELAY if relay_only else policy.ALL,
        )

    async def gather(self) -> IceDescription:
        """Gather local candidates and return the local description."""
        await self.connection.gather_candidates()
        candidates = tuple(
            CANDIDATE_PREFIX + candidate.to_sdp()
            for candidate in self.connection.local_candidates
        )
        return IceDescription(
            self.connection.local_username, self.connection.local_password, candidates
        )

    async def set_remote(self, description: IceDescription) -> None:
        """Set the remote credentials and add the remote candidates."""
        self.connection.remote_username = description.ufrag
        self.connection.remote_password = description.pwd
        for line in description.candidates:
            await self.add_remote_candidate(line)

    async def add_remote_candidate(self, line: str | None) -> None:
        """Add one remote candidate, or end of candidates for None.

        aioice checks UDP pairs only, so TCP candidates are not added.
        """
        if line is None:
            await self.connection.add_remote_candidate(None)
            return
        if not is_udp_candidate(line):
            return
        text = normalize_candidate(line).removeprefix(CANDIDATE_PREFIX)
        await self.connection.add_remote_candidate(aioice.Candidate.from_sdp(text))

    async def connect(self) -> None:
        """Run the checks until a pair is nominated; raise ConnectionError if not."""
        await self.connection.connect()

    def selected_pair(self) -> SelectedPair | None:
        """Return the nominated pair of component 1, or None."""
        # NOTE: aioice 0.13 has no public accessor for the nominated pair;
        # this reads its private ``_nominated`` table.
        pair = self.connection._nominated.get(1)
        if pair is None:
            return None
        return SelectedPair(
            CANDIDATE_PREFIX + pair.local_candidate.to_sdp(),
            CANDIDATE_PREFIX + pair.remote_candidate.to_sdp(),
        )

    async def send(self, data: bytes) -> None:
        """Send a datagram on the nominated pair."""
        await self.connection.send(data)

    async def recv(self) -> bytes:
        """Return the next datagram received."""
        data: bytes = await self.connection.recv()
        return data

    async def close(self) -> None:
        """Close the connection and its sockets."""
        await self.connection.close()


class RiceFastAgent:
    """rice_fast's ``IceConnection`` behind the ``InteropAgent`` surface.

    It gathers UDP host candidates on 127.0.0.1 (and TCP ones with
    ``tcp``), server-reflexive and relayed ones from ``turn_server``, and
    with ``relay_only`` signals only its relayed candidates.
    """

    def __init__(
        self,
        *,
        controlling: bool,
        turn_server: tuple[str, int] | None = None,
        turn_user: str | None = None,
        turn_password: str | None = None,
        turn_transport: str = "udp",
        relay_only: bool = False,
        tcp: bool = False,
        addresses: tuple[str, ...] = ("127.0.0.1",),
        trickle: bool = False,
    ) -> None:
        self.controlling = controlling
        self._turn = turn_server
        self._turn_user = turn_user or ""
        self._turn_password = turn_password or ""
        self._turn_transport = turn_transport
        self._relay_only = relay_only
        self._tcp = tcp
        self._addresses = addresses
        self._trickle = trickle
        self._connection: Any = None

    async def start(self) -> IceDescription:
        """Create the agent and bind its sockets; return credentials only.

        With ``trickle``, signal this description at once and the
        candidates as ``gather`` reports them.
        """
        from rice_fast.ice import TurnConfig
        from rice_fast.io._ice import IceConnection
        from rice_fast.stun.transport import TransportType

        if self._connection is None:
            turn = []
            if self._turn is not None:
                turn.append(
                    TurnConfig(
                        self._turn,
                        self._turn_user,
                        self._turn_password,
                        TransportType(self._turn_transport),
                    )
                )
            self._connection = await IceConnection.create(
                controlling=self.controlling,
                addresses=self._addresses,
                tcp=self._tcp,
                turn_servers=turn,
                trickle=self._trickle,
            )
        credentials = self._connection.local_credentials()
        return IceDescription(credentials.ufrag, credentials.pwd)

    def _signalled(self, candidate: Any) -> bool:
        from rice_fast.ice import CandidateType

        return not self._relay_only or candidate.type is CandidateType.RELAYED

    async def gather(
        self, on_candidate: Callable[[str], None] | None = None
    ) -> IceDescription:
        """Create the agent, gather, and return the local description.

        ``on_candidate`` gets each candidate to signal as it is gathered,
        for trickle ICE.
        """
        await self.start()
        if on_candidate is not None:

            def report(candidate: Any) -> None:
                if self._signalled(candidate):
                    on_candidate(candidate.to_sdp())

            self._connection.on_candidate = report
        local = await self._connection.gather()
        candidates = [c for c in local.candidates if self._signalled(c)]
        return IceDescription(
            local.ufrag, local.pwd, tuple(c.to_sdp() for c in candidates)
        )

    async def set_remote(self, description: IceDescription) -> None:
        """Set the remote credentials and add the remote candidates."""
        from rice_fast.ice import Candidate

        self._connection.set_remote(
            description.ufrag,
            description.pwd,
            [Candidate.from_sdp(line) for line in description.candidates],
        )

    async def add_remote_candidate(self, line: str | None) -> None:
        """Add one remote candidate, or end of candidates for None."""
        from rice_fast.ice import Candidate, CandidateParseError

        if line is None:
            self._connection.end_of_remote_candidates()
            return
        try:
            candidate = Candidate.from_sdp(line)
        except CandidateParseError:
            # Browsers trickle candidates of transports ICE cannot use here.
            return
        self._connection.add_remote_candidate(candidate)

    async def connect(self) -> None:
        """Run the checks until a pair is selected; raise ConnectionError if not."""
        from rice_fast.io._ice import IceConnectionError

        try:
            await self._connection.connected()
        except (IceConnectionError, TimeoutError) as error:
            raise ConnectionError(str(error) or "ICE timed out") from error

    def selected_pair(self) -> SelectedPair | None:
        """Return the selected pair of component 1, or None."""
        if self._connection is None:
            return None
        pair = self._connection.selected_pair()
        if pair is None:
            return None
        return SelectedPair(pair.local.to_sdp(), pair.remote.to_sdp())

    async def send(self, data: bytes) -> None:
        """Send a datagram on the selected pair."""
        self._connection.send(data)

    async def recv(self) -> bytes:
        """Return the next datagram received."""
        data: bytes = await self._connection.recv()
        return data

    async def wait_failed(self, interval: float = 0.05) -> None:
        """Return once component 1 is FAILED, as after consent is lost.

        ``IceConnection`` reports ``ConsentLost`` as a component state
        change to FAILED, which this reads from the agent every
        ``interval`` seconds.
        """
        from rice_fast.ice import ComponentState

        component = self._connection.agent.streams[0].component(1)
        while component.state is not ComponentState.FAILED:
            await asyncio.sleep(interval)

    async def close(self) -> None:
        """Close the agent, its sockets and its TURN allocations."""
        if self._connection is not None:
            await self._connection.close()


AgentFactory = Callable[..., InteropAgent]

AGENTS: dict[str, AgentFactory] = {"aioice": AioiceAgent, "rice_fast": RiceFastAgent}


def create_agent(name: str, *, controlling: bool, **options: Any) -> InteropAgent:
    """Create the agent called ``name`` in ``AGENTS``.

    Raises:
        ValueError: no agent of that name.
    """
    factory = AGENTS.get(name)
    if factory is None:
        raise ValueError(f"unknown agent {name!r}; expected one of {sorted(AGENTS)}")
    return factory(controlling=controlling, **options)


# The JSON-lines peer


def _emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    return reader


async def _converse(agent: InteropAgent, options: argparse.Namespace) -> None:
    """Send the greeting, then report (and echo) every datagram received."""
    if options.greeting:
        await agent.send(options.greeting.encode())
        _emit(type="sent", data=options.greeting)
    while True:
        data = await agent.recv()
        _emit(type="data", data=data.decode("utf-8", "replace"))
        if options.echo:
            await agent.send(data)


async def _connect(agent: InteropAgent, options: argparse.Namespace) -> None:
    _emit(type="state", state="checking")
    try:
        await agent.connect()
    except ConnectionError as error:
        _emit(type="state", state="failed")
        _emit(type="error", message=f"connect failed: {error}")
        raise
    pair = agent.selected_pair()
    if pair is not None:
        _emit(type="selected", local=pair.local, remote=pair.remote)
    _emit(type="state", state="connected")
    watcher = None
    if isinstance(agent, RiceFastAgent):
        watcher = asyncio.create_task(_report_failure(agent))
    try:
        await _converse(agent, options)
    finally:
        if watcher is not None:
            watcher.cancel()


async def _report_failure(agent: RiceFastAgent) -> None:
    """Print a ``failed`` state once the connected agent fails (consent lost)."""
    await agent.wait_failed()
    _emit(type="state", state="failed")


async def _gather(agent: InteropAgent, options: argparse.Namespace) -> None:
    """Gather and print the local description, then any trickled candidates.

    With ``--trickle``, the ``local`` message has no candidates. Each one
    follows as ``{"type": "candidate", "candidate"}``, and ``null`` ends
    them. rice_fast's agent reports each candidate as it is gathered.
    aioice gathers them all first.
    """
    if not options.trickle:
        local = await agent.gather()
        _emit(type="local", **local.to_json())
        return
    if isinstance(agent, RiceFastAgent):
        credentials = await agent.start()
        _emit(type="local", **credentials.to_json())
        await agent.gather(lambda line: _emit(type="candidate", candidate=line))
    else:
        local = await agent.gather()
        _emit(type="local", **IceDescription(local.ufrag, local.pwd).to_json())
        for line in local.candidates:
            _emit(type="candidate", candidate=line)
    _emit(type="candidate", candidate=None)


async def _handle_command(
    agent: InteropAgent, message: dict[str, Any], options: argparse.Namespace
) -> asyncio.Task[None] | None:
    """Carry out one stdin command; return the connect task it starts, if any."""
    kind = message.get("type", "remote")
    if kind == "remote":
        await agent.set_remote(IceDescription.from_json(message))
        return asyncio.create_task(_connect(agent, options))
    if kind == "candidate":
        await agent.add_remote_candidate(message.get("candidate"))
    elif kind == "send":
        await agent.send(message["data"].encode())
    else:
        raise ValueError(f"unknown message type {kind!r} on stdin")
    return None


async def _read_commands(
    agent: InteropAgent, reader: asyncio.StreamReader, options: argparse.Namespace
) -> int:
    """Read stdin commands until end of input, watching the connect task."""
    connection: asyncio.Task[None] | None = None
    next_line = asyncio.ensure_future(reader.readline())
    try:
        while True:
            waiting: set[asyncio.Future[Any]] = {next_line}
            if connection is not None:
                waiting.add(connection)
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if connection is not None and connection in done:
                # Raises the connect failure; a normal return ends the talk.
                connection.result()
                connection = None
            if next_line not in done:
                continue
            line = next_line.result()
            if not line:
                return 0
            next_line = asyncio.ensure_future(reader.readline())
            if line.strip():
                started = await _handle_command(agent, json.loads(line), options)
                connection = started or connection
    finally:
        next_line.cancel()
        if connection is not None:
            connection.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await connection


async def run_peer(options: argparse.Namespace) -> int:
    """Run one agent as a JSON-lines peer; return the exit status."""
    # Only rice_fast's agent has a trickle mode of its own.
    agent_options: dict[str, Any] = {}
    if options.trickle and options.agent == "rice_fast":
        agent_options["trickle"] = True
    agent = create_agent(
        options.agent, controlling=options.role == "controlling", **agent_options
    )
    try:
        await _gather(agent, options)
        reader = await _stdin_lines()
        return await asyncio.wait_for(
            _read_commands(agent, reader, options), options.timeout
        )
    except TimeoutError:
        _emit(type="error", message=f"timed out after {options.timeout} s")
        return 1
    except (ConnectionError, ValueError, KeyError) as error:
        _emit(type="error", message=f"{type(error).__name__}: {error}")
        return 1
    finally:
        await agent.close()


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", choices=sorted(AGENTS), default="aioice")
    parser.add_argument("--role", choices=("controlling", "controlled"), required=True)
    parser.add_argument(
        "--greeting", default="", help="text sent once connected (none when empty)"
    )
    parser.add_argument(
        "--no-echo", dest="echo", action="store_false", help="do not echo data back"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds before giving up"
    )
    parser.add_argument(
        "--trickle",
        action="store_true",
        help="print the candidates one by one after the local description",
    )
    return parser.parse_args(argv)


def main() -> int:
    """Run the peer from the command line."""
    return asyncio.run(run_peer(parse_arguments()))


if __name__ == "__main__":
    sys.exit(main())
