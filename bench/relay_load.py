"""A bounded load generator for TURN relays on loopback.

The generator opens N UDP client sockets and allocates on the relay from
each one (Allocate, the 401 challenge, Allocate with MESSAGE-INTEGRITY).
It binds one channel per allocation to a sink socket, then sends pre-built
ChannelData datagrams with ``send_repeated``, which calls sendmmsg in C
without the GIL. A thread at the sink counts what arrives with ``drain``. Each run
sends a fixed number of datagrams and stops at a time cap, paced at a
fixed rate or as fast as the sockets accept them. The same code drives
``rice-fast relay`` and coturn's ``turnserver``, which this module also
starts and stops by pid.

Addresses: the relays listen on 127.0.0.1, bind relay sockets on
127.0.0.2 and the sink binds 127.0.0.4. Each batch of clients binds its
own address from 127.0.1.1 on (``client_host``), because a new socket may
get the port of a closed one whose allocation the relay still keeps,
and would then draw 437 (Allocation Mismatch). So ten thousand relay and
client sockets do not use up the ports of 127.0.0.1 that other programs
bind.

Run one load against a relay that is already running:

    python -m bench.relay_load --server 127.0.0.1:3478 --user U:P \
        --allocations 100 --payload 100 --count 200000 --rate 100000

The peer address (the sink, 127.0.0.4) must be allowed by the relay.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rice_fast.io._relay import drain, send_repeated

from rice_fast.stun import (
    IntegrityKey,
    Message,
    MessageBuilder,
    MessageClass,
    Method,
    TransportProtocol,
    long_term_key,
    message_type,
    new_transaction_id,
    parse,
)
from rice_fast.stun.errors import StunParseError
from rice_fast.turn import encode_channel_data

Address = tuple[str, int]

LISTEN_HOST = "127.0.0.1"
RELAY_HOST = "127.0.0.2"
SINK_HOST = "127.0.0.4"
RELAY_PORTS = (10000, 59999)
USER = "bench"
PASSWORD = "bench-password"
REALM = "rice-fast.bench"
CHANNEL = 0x4000

_SOCKET_BUFFER = 4 * 1024 * 1024
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_RETRANSMIT = 0.5
_RETRIES = 4
# A sink that has seen nothing new for this long counts the run as over.
_QUIET = 0.3
_SETTLE_TIMEOUT = 3.0
_client_hosts = itertools.count()
_ALLOCATE = message_type(Method.ALLOCATE, MessageClass.REQUEST)
_CHANNEL_BIND = message_type(Method.CHANNEL_BIND, MessageClass.REQUEST)


# Relay processes.


@dataclass
class RelayProcess:
    """A relay subprocess, its pid file, log file and listening address."""

    name: str
    process: subprocess.Popen[bytes]
    pid_file: Path
    log_file: Path
    address: Address
    command: list[str]

    @property
    def pid(self) -> int:
        """The relay's pid."""
        return self.process.pid

    def running(self) -> bool:
        """Return whether the process has not exited."""
        return self.process.poll() is None

    def rss_kib(self) -> int:
        """Return the resident set size in KiB, from /proc/PID/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS line in /proc/{self.pid}/status")

    def cpu_seconds(self) -> float:
        """Return the CPU time of all the relay's threads, user plus system."""
        text = Path(f"/proc/{self.pid}/stat").read_text()
        # utime and stime are fields 14 and 15 of proc(5), in clock ticks.
        # They are counted after the command name, which may hold spaces.
        fields = text.rpartition(")")[2].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 20) -> str:
        """Return the end of the log, for error messages."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Send SIGTERM by pid, then SIGKILL after a grace time."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.process.wait(_STOP_TIMEOUT)
        self.pid_file.unlink(missing_ok=True)


def _port_free(host: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def free_port(host: str = LISTEN_HOST) -> int:
    """Return a port P where P and P + 1 are free on UDP and TCP."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        if _port_free(host, port) and _port_free(host, port + 1):
            return port
    raise RuntimeError(f"no free port pair on {host}")


def binding_probe(address: Address, timeout: float = 0.2) -> bool:
    """Return whether a Binding request to ``address`` gets a response."""
    transaction_id = new_transaction_id()
    request = MessageBuilder(0x0001, transaction_id).finish()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(request, address)
            data = sock.recv(2048)
        except OSError:
            return False
    try:
        return parse(data).transaction_id == transaction_id
    except StunParseError:
        return False


def _start(
    name: str, argv: list[str], directory: Path, pid_file: Path, address: Address
) -> RelayProcess:
    log_file = directory / f"{name}.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if not pid_file.exists():
        pid_file.write_text(f"{process.pid}\n")
    relay = RelayProcess(name, process, pid_file, log_file, address, argv)
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline and relay.running():
        if binding_probe(address):
            return relay
        time.sleep(0.05)
    relay.stop()
    raise RuntimeError(
        f"{name} did not respond to a Binding request on {address} within "
        f"{_START_TIMEOUT} s. End of its log:\n{relay.log_tail()}"
    )


def start_rice_relay(directory: Path, *, quota: int = 20_000) -> RelayProcess:
    """Start ``rice-fast relay`` with one worker; ``quota`` caps allocations."""
    script = Path(sys.executable).with_name("rice-fast")
    port = free_port()
    argv = [
        str(script),
        "relay",
        "--listen",
        f"{LISTEN_HOST}:{port}",
        "--no-tcp",
        "--realm",
        REALM,
        "--user",
        f"{USER}:{PASSWORD}",
        "--relay-ip",
        RELAY_HOST,
        "--min-port",
        str(RELAY_PORTS[0]),
        "--max-port",
        str(RELAY_PORTS[1]),
        "--allow-peer",
        f"{SINK_HOST}/32",
        "--max-allocations",
        str(quota),
        "--user-quota",
        str(quota),
        "--workers",
        "1",
    ]
    pid_file = directory / "rice-fast-relay.pid"
    return _start("rice-fast-relay", argv, directory, pid_file, (LISTEN_HOST, port))


def start_coturn(directory: Path) -> RelayProcess:
    """Start coturn's ``turnserver`` with one relay thread and no quotas."""
    binary = shutil.which("turnserver")
    if binary is None:
        raise RuntimeError("turnserver not found: install the Debian package coturn")
    port = free_port()
    pid_file = directory / "turnserver.pid"
    argv = [
        binary,
        "-n",
        f"--listening-ip={LISTEN_HOST}",
        f"--listening-port={port}",
        f"--relay-ip={RELAY_HOST}",
        f"--min-port={RELAY_PORTS[0]}",
        f"--max-port={RELAY_PORTS[1]}",
        "--relay-threads=1",
        "--lt-cred-mech",
        f"--user={USER}:{PASSWORD}",
        f"--realm={REALM}",
        "--no-tls",
        "--no-dtls",
        "--no-tcp",
        "--no-cli",
        "--allow-loopback-peers",
        f"--pidfile={pid_file}",
        "--log-file=stdout",
        "--simple-log",
    ]
    return _start("turnserver", argv, directory, pid_file, (LISTEN_HOST, port))


# TURN requests.


@dataclass
class Session:
    """One client socket with its allocation and, once bound, its channel."""

    sock: socket.socket
    relayed: Address
    user: str
    realm: str
    nonce: str
    key: IntegrityKey
    channel: int | None = None


def client_host() -> str:
    """Return a loopback address that no earlier batch of clients used."""
    index = next(_client_hosts)
    if index >= 254 * 254:
        raise RuntimeError("out of client addresses in 127.0.1.1..127.0.254.254")
    return f"127.0.{1 + index // 254}.{1 + index % 254}"


def client_socket(host: str) -> socket.socket:
    """Return a non-blocking UDP socket on ``host`` with large buffers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def _allocate_request(
    transaction_id: bytes, user: str, signed: tuple[str, str, IntegrityKey] | None
) -> bytes:
    builder = MessageBuilder(_ALLOCATE, transaction_id)
    builder.add_requested_transport(TransportProtocol.UDP)
    if signed is None:
        return builder.finish()
    realm, nonce, key = signed
    builder.add_username(user)
    builder.add_realm(realm)
    builder.add_nonce(nonce)
    return builder.finish(key, fingerprint=True)


@dataclass
class _Pending:
    sock: socket.socket
    request: bytes
    transaction_id: bytes
    sent_at: float
    tries: int = 1
    signed: tuple[str, str, IntegrityKey] | None = None


@dataclass
class AllocationRun:
    """The result of ``allocate_many``: sessions made, failures, time taken."""

    sessions: list[Session]
    failures: dict[str, int]
    seconds: float

    @property
    def per_second(self) -> float:
        """Allocations completed per second of the run."""
        return len(self.sessions) / self.seconds if self.seconds else 0.0


def allocate_many(
    server: Address,
    count: int,
    *,
    in_flight: int = 1,
    time_cap: float = 30.0,
    user: str = USER,
    password: str = PASSWORD,
    host: str | None = None,
) -> AllocationRun:
    """Allocate ``count`` times from new sockets, ``in_flight`` at a time.

    Each allocation is the whole exchange of a new client: Allocate, the
    401 with REALM and NONCE, and Allocate with MESSAGE-INTEGRITY. A lost
    message is sent again after 0.5 s, four times at most. Stops after
    ``time_cap`` seconds with what it has. The sessions keep their
    sockets open; close them with ``close_sessions``. The sockets bind
    ``host``, by default a new ``client_host()``.
    """
    if host is None:
        host = client_host()
    selector = selectors.DefaultSelector()
    keys: dict[str, IntegrityKey] = {}
    sessions: list[Session] = []
    failures: dict[str, int] = {}
    pending: dict[socket.socket, _Pending] = {}
    started = 0
    begin = time.perf_counter()
    deadline = begin + time_cap

    def fail(item: _Pending, reason: str) -> None:
        failures[reason] = failures.get(reason, 0) + 1
        selector.unregister(item.sock)
        item.sock.close()
        del pending[item.sock]

    def send(item: _Pending, now: float) -> None:
        with contextlib.suppress(BlockingIOError):
            item.sock.sendto(item.request, server)
        item.sent_at = now

    try:
        while len(sessions) + sum(failures.values()) < count:
            now = time.perf_counter()
            if now > deadline:
                break
            while len(pending) < in_flight and started < count:
                sock = client_socket(host)
                transaction_id = new_transaction_id()
                item = _Pending(
                    sock,
                    _allocate_request(transaction_id, user, None),
                    transaction_id,
                    now,
                )
                pending[sock] = item
                selector.register(sock, selectors.EVENT_READ)
                send(item, now)
                started += 1
            for key, _ in selector.select(0.05):
                item = pending[key.fileobj]  # type: ignore[index]
                try:
                    response = parse(item.sock.recv(2048))
                except (BlockingIOError, StunParseError):
                    continue
                if response.transaction_id != item.transaction_id:
                    continue
                error = response.error_code()
                if error is not None and error[0] == 401 and item.signed is None:
                    realm, nonce = response.realm(), response.nonce()
                    if realm is None or nonce is None:
                        fail(item, "401 without REALM or NONCE")
                        continue
                    if realm not in keys:
                        keys[realm] = IntegrityKey(long_term_key(user, realm, password))
                    item.signed = (realm, nonce, keys[realm])
                    item.transaction_id = new_transaction_id()
                    item.request = _allocate_request(
                        item.transaction_id, user, item.signed
                    )
                    item.tries = 1
                    send(item, time.perf_counter())
                    continue
                relayed = response.xor_relayed_address()
                if error is not None or relayed is None or item.signed is None:
                    reason = f"error {error[0]}" if error else "no relayed address"
                    fail(item, reason)
                    continue
                realm, nonce, integrity = item.signed
                session = Session(item.sock, relayed, user, realm, nonce, integrity)
                sessions.append(session)
                selector.unregister(item.sock)
                del pending[item.sock]
            now = time.perf_counter()
            for item in list(pending.values()):
                if now - item.sent_at < _RETRANSMIT:
                    continue
                if item.tries > _RETRIES:
                    fail(item, "timeout")
                    continue
                item.tries += 1
                send(item, now)
    finally:
        seconds = time.perf_counter() - begin
        for item in list(pending.values()):
            item.sock.close()
        selector.close()
    return AllocationRun(sessions, failures, seconds)


def _transact(session: Session, server: Address, request: bytes) -> Message:
    transaction_id = request[8:20]
    selector = selectors.DefaultSelector()
    selector.register(session.sock, selectors.EVENT_READ)
    try:
        for _ in range(_RETRIES + 1):
            session.sock.sendto(request, server)
            deadline = time.perf_counter() + _RETRANSMIT
            while (remaining := deadline - time.perf_counter()) > 0:
                if not selector.select(remaining):
                    continue
                try:
                    response = parse(session.sock.recv(2048))
                except (BlockingIOError, StunParseError):
                    continue
                if response.transaction_id == transaction_id:
                    return response
    finally:
        selector.close()
    raise TimeoutError(f"no response from {server} to a request from {session}")


def bind_channel(
    session: Session, server: Address, peer: Address, channel: int = CHANNEL
) -> None:
    """Bind ``channel`` to ``peer`` on ``session``'s allocation, or raise."""
    builder = MessageBuilder(_CHANNEL_BIND, new_transaction_id())
    builder.add_channel_number(channel)
    builder.add_xor_peer_address(*peer)
    builder.add_username(session.user)
    builder.add_realm(session.realm)
    builder.add_nonce(session.nonce)
    response = _transact(session, server, builder.finish(session.key, fingerprint=True))
    error = response.error_code()
    if error is not None:
        raise RuntimeError(f"ChannelBind to {peer} failed: {error[0]} {error[1]}")
    session.channel = channel


def close_sessions(sessions: Sequence[Session]) -> None:
    """Close the client sockets; the relay keeps the allocations until expiry."""
    for session in sessions:
        session.sock.close()


# The sink and the sender.


class Sink:
    """A UDP socket at the peer address that counts datagrams in a thread."""

    def __init__(self, host: str = SINK_HOST) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        host, port = self.sock.getsockname()[:2]
        self.address: Address = (host, port)
        self.datagrams = 0
        self.bytes = 0
        self.last_arrival = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ)
        fd = self.sock.fileno()
        while not self._stop.is_set():
            if not selector.select(0.05):
                continue
            datagrams, size = drain(fd)
            if datagrams:
                self.datagrams += datagrams
                self.bytes += size
                self.last_arrival = time.perf_counter()
        selector.close()

    def settle(self) -> None:
        """Wait until nothing new has arrived for 0.3 s, at most 3 s."""
        deadline = time.perf_counter() + _SETTLE_TIMEOUT
        while time.perf_counter() < deadline:
            count = self.datagrams
            time.sleep(_QUIET)
            if self.datagrams == count:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(_STOP_TIMEOUT)
        self.sock.close()


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One bounded ChannelData run: what was sent, what the sink counted."""

    allocations: int
    payload: int
    target_rate: float | None
    sent: int
    received: int
    send_seconds: float
    relay_cpu_seconds: float | None = None

    @property
    def sent_rate(self) -> float:
        """Datagrams the sockets accepted per second of send time."""
        return self.sent / self.send_seconds if self.send_seconds else 0.0

    @property
    def relayed_rate(self) -> float:
        """Datagrams the sink received per second of send time."""
        return self.received / self.send_seconds if self.send_seconds else 0.0

    @property
    def loss(self) -> float:
        """The fraction of sent datagrams that did not reach the sink."""
        return 1.0 - self.received / self.sent if self.sent else 0.0


@dataclass
class _Stream:
    fd: int
    datagram: bytes
    sock: socket.socket = field(repr=False)


def blast(
    sessions: Sequence[Session],
    server: Address,
    sink: Sink,
    *,
    payload: int,
    count: int,
    rate: float | None = None,
    time_cap: float = 10.0,
    chunk: int = 64,
    relay: RelayProcess | None = None,
) -> LoadResult:
    """Send ``count`` ChannelData datagrams round-robin over ``sessions``.

    Each session sends ``chunk`` datagrams in turn. With ``rate`` (datagrams
    per second in total) the chunks follow a fixed schedule; without it the
    sender goes as fast as the sockets accept. The run stops after
    ``time_cap`` seconds of sending even if ``count`` is not reached, then
    waits for the sink to settle. ``relay`` adds its CPU time to the result.
    """
    if not sessions:
        raise ValueError("blast needs at least one session with a channel")
    streams = []
    for session in sessions:
        if session.channel is None:
            raise ValueError(f"session {session.relayed} has no channel bound")
        datagram = encode_channel_data(session.channel, bytes(payload))
        streams.append(_Stream(session.sock.fileno(), datagram, session.sock))
    sink.settle()
    before = sink.datagrams
    cpu_before = relay.cpu_seconds() if relay is not None else None
    selector = selectors.DefaultSelector()
    sent = 0
    index = 0
    start = time.perf_counter()
    deadline = start + time_cap
    try:
        while sent < count:
            now = time.perf_counter()
            if now > deadline:
                break
            if rate is not None:
                due = start + sent / rate
                if due > now:
                    time.sleep(due - now)
            stream = streams[index]
            index = (index + 1) % len(streams)
            done = send_repeated(
                stream.fd, stream.datagram, server, min(chunk, count - sent)
            )
            sent += done
            if done < chunk and sent < count:
                # The socket buffer is full: wait until it drains a little.
                selector.register(stream.sock, selectors.EVENT_WRITE)
                selector.select(0.001)
                selector.unregister(stream.sock)
        send_seconds = time.perf_counter() - start
    finally:
        selector.close()
    sink.settle()
    cpu = None
    if relay is not None and cpu_before is not None:
        cpu = relay.cpu_seconds() - cpu_before
    return LoadResult(
        allocations=len(sessions),
        payload=payload,
        target_rate=rate,
        sent=sent,
        received=sink.datagrams - before,
        send_seconds=send_seconds,
        relay_cpu_seconds=cpu,
    )


def burst(
    sessions: Sequence[Session],
    server: Address,
    sink: Sink,
    *,
    payload: int,
    count: int,
    timeout: float = 2.0,
) -> int:
    """Send ``count`` ChannelData datagrams at once; wait until the sink has them.

    For timing a burst small enough to fit the socket buffers: returns how
    many arrived, which is less than ``count`` only when some were lost
    and ``timeout`` seconds passed.
    """
    before = sink.datagrams
    per_session = -(-count // len(sessions))
    sent = 0
    for session in sessions:
        if session.channel is None:
            raise ValueError(f"session {session.relayed} has no channel bound")
        datagram = encode_channel_data(session.channel, bytes(payload))
        number = min(per_session, count - sent)
        sent += send_repeated(session.sock.fileno(), datagram, server, number)
    deadline = time.perf_counter() + timeout
    while sink.datagrams - before < sent and time.perf_counter() < deadline:
        time.sleep(0.0002)
    return sink.datagrams - before


def open_channels(
    server: Address,
    sink: Sink,
    allocations: int,
    *,
    time_cap: float = 30.0,
    user: str = USER,
    password: str = PASSWORD,
) -> list[Session]:
    """Allocate ``allocations`` times, 10 in flight, and bind one channel each."""
    run = allocate_many(
        server,
        allocations,
        in_flight=10,
        time_cap=time_cap,
        user=user,
        password=password,
    )
    if len(run.sessions) < allocations:
        close_sessions(run.sessions)
        raise RuntimeError(
            f"only {len(run.sessions)} of {allocations} allocations succeeded "
            f"on {server}: {run.failures}"
        )
    for session in run.sessions:
        bind_channel(session, server, sink.address)
    return run.sessions


# Command line.


def _address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return (host, int(port))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one bounded load against ``--server`` and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", type=_address, required=True, help="HOST:PORT")
    parser.add_argument("--user", default=f"{USER}:{PASSWORD}", help="USER:PASSWORD")
    parser.add_argument("--allocations", type=int, default=1)
    parser.add_argument("--payload", type=int, default=100, help="bytes per datagram")
    parser.add_argument("--count", type=int, default=200_000, help="datagrams to send")
    parser.add_argument(
        "--rate", type=float, default=None, help="datagrams per second (default: max)"
    )
    parser.add_argument("--time-cap", type=float, default=10.0, help="seconds")
    args = parser.parse_args(argv)
    user, _, password = args.user.partition(":")
    sink = Sink()
    try:
        sessions = open_channels(
            args.server, sink, args.allocations, user=user, password=password
        )
        try:
            result = blast(
                sessions,
                args.server,
                sink,
                payload=args.payload,
                count=args.count,
                rate=args.rate,
                time_cap=args.time_cap,
            )
        finally:
            close_sessions(sessions)
    finally:
        sink.close()
    print(
        f"sent {result.sent} in {result.send_seconds:.2f} s "
        f"({result.sent_rate:,.0f}/s), received {result.received} "
        f"({result.relayed_rate:,.0f}/s), loss {result.loss:.2%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
