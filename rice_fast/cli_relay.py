"""The ``rice-fast relay`` command: a TURN relay server on real sockets."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import secrets
import signal
import ssl
import sys
from dataclasses import replace

from rice_fast import __version__
from rice_fast.cli import _user_password
from rice_fast.io._address import format_address, parse_address
from rice_fast.io._relay_server import RelayConfig, RelayServer
from rice_fast.turn._peer_policy import PeerPolicy
from rice_fast.turn._server_config import TurnServerConfig

__all__ = ["add_parser", "run"]

logger = logging.getLogger("rice_fast.cli.relay")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 1..65535")
    return value


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``relay`` subcommand."""
    parser = commands.add_parser(
        "relay",
        help="run a TURN relay server over UDP, TCP and TLS",
        description=(
            "Run a TURN relay (RFC 8656, RFC 6062, RFC 6156) until SIGINT or "
            "SIGTERM. SIGUSR1 logs the counters, as does the stop. Peers in "
            "loopback, private, link-local and unspecified ranges are denied "
            "unless --allow-peer admits them."
        ),
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log more: -v for DEBUG",
    )
    parser.add_argument(
        "--listen",
        metavar="ADDR:PORT",
        action="append",
        default=[],
        help="UDP and TCP listening address; repeat for more (default: 127.0.0.1:3478)",
    )
    parser.add_argument(
        "--tls-listen",
        metavar="ADDR:PORT",
        action="append",
        default=[],
        help="TLS listening address (needs --cert and --key); repeat for more",
    )
    parser.add_argument("--cert", metavar="FILE", help="TLS certificate chain (PEM)")
    parser.add_argument("--key", metavar="FILE", help="TLS private key (PEM)")
    parser.add_argument("--no-udp", action="store_true", help="do not listen on UDP")
    parser.add_argument("--no-tcp", action="store_true", help="do not listen on TCP")
    parser.add_argument("--realm", required=True, metavar="R", help="the realm")
    parser.add_argument(
        "--user",
        metavar="U:P",
        action="append",
        type=_user_password,
        default=[],
        help="a long-term credential user and password; repeat for more users",
    )
    parser.add_argument(
        "--auth-secret",
        metavar="S",
        help="shared secret of the time-limited TURN REST API credentials "
        "(username EXPIRY:USER, password base64(HMAC-SHA1(S, username)))",
    )
    parser.add_argument(
        "--relay-ip",
        metavar="IP",
        action="append",
        default=[],
        help="address relay sockets bind to, one per family "
        "(default: the listening address)",
    )
    parser.add_argument(
        "--min-port",
        type=_port,
        default=49152,
        metavar="N",
        help="lowest relay port (default: %(default)s)",
    )
    parser.add_argument(
        "--max-port",
        type=_port,
        default=65535,
        metavar="M",
        help="highest relay port (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-peer",
        metavar="CIDR",
        action="append",
        default=[],
        help="admit peers in this network although a default rule denies it, "
        "such as 127.0.0.1/32 for tests on one machine; repeat for more",
    )
    parser.add_argument(
        "--max-allocations",
        type=int,
        default=10_000,
        metavar="N",
        help="total allocation quota of each worker (default: %(default)s)",
    )
    parser.add_argument(
        "--user-quota",
        type=int,
        default=100,
        metavar="N",
        help="allocations per user in each worker (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the listening ports with SO_REUSEPORT "
        "(default: %(default)s)",
    )
    parser.set_defaults(handler=run, log_level=logging.INFO)


def _build_config(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> RelayConfig:
    if not args.user and not args.auth_secret:
        parser.error("the relay needs credentials: --user U:P or --auth-secret S")
    if not args.realm:
        parser.error("--realm must not be empty")
    for user, password in args.user:
        if not password:
            parser.error(f"--user {user!r} has an empty password")
    if args.min_port > args.max_port:
        parser.error(f"--min-port {args.min_port} is above --max-port {args.max_port}")
    if args.workers < 1:
        parser.error(f"--workers {args.workers} must be at least 1")
    try:
        listen = tuple(
            parse_address(text, default_port=3478)
            for text in (args.listen or ["127.0.0.1:3478"])
        )
        tls_listen = tuple(
            parse_address(text, default_port=5349) for text in args.tls_listen
        )
    except ValueError as exc:
        parser.error(str(exc))
    for text in args.relay_ip:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            parser.error(
                f"invalid --relay-ip {text!r}: expected an IPv4 or IPv6 address"
            )
    tls_context: ssl.SSLContext | None = None
    if tls_listen:
        if not args.cert or not args.key:
            parser.error("--tls-listen needs --cert and --key")
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls_context.load_cert_chain(args.cert, args.key)
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"cannot load the TLS certificate or key: {exc}")
    try:
        policy = PeerPolicy(allow=args.allow_peer)
        turn = TurnServerConfig(
            realm=args.realm,
            users=dict(args.user) if args.user else None,
            rest_api_secret=args.auth_secret,
            nonce_secret=secrets.token_bytes(32),
            peer_policy=policy,
            max_allocations=args.max_allocations,
            max_allocations_per_user=args.user_quota,
            software=f"rice_fast {__version__}",
        )
        return RelayConfig(
            turn=turn,
            listen=listen,
            udp=not args.no_udp,
            tcp=not args.no_tcp,
            tls_listen=tls_listen,
            tls_context=tls_context,
            relay_ips=tuple(args.relay_ip),
            min_port=args.min_port,
            max_port=args.max_port,
            reuse_port=args.workers > 1,
        )
    except ValueError as exc:
        parser.error(f"invalid relay settings: {exc}")


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run the relay until SIGINT or SIGTERM; return the exit status."""
    config = _build_config(parser, args)
    if args.workers == 1:
        return _run_worker(config, 0)
    if any(port == 0 for _, port in (*config.listen, *config.tls_listen)):
        parser.error("--workers above 1 needs fixed ports, not port 0")
    return _run_workers(config, args.workers)


def _run_worker(config: RelayConfig, worker: int) -> int:
    try:
        return asyncio.run(_serve_until_signal(config, worker))
    except KeyboardInterrupt:
        return EXIT_OK


def _run_workers(config: RelayConfig, count: int) -> int:
    # Every worker shares the nonce secret, so a nonce issued by one is
    # accepted by another when the kernel moves a client between them.
    config = replace(config, reuse_port=True)
    children: list[int] = []
    for worker in range(count):
        pid = os.fork()
        if pid == 0:
            status = EXIT_FAILURE
            try:
                status = _run_worker(config, worker)
            finally:
                os._exit(status)
        children.append(pid)
    logger.info("started %d relay workers: %s", count, children)

    def forward(signum: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, forward)
    status = EXIT_OK
    for pid in children:
        while True:
            try:
                _, code = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        if os.waitstatus_to_exitcode(code) != 0:
            status = EXIT_FAILURE
    logger.info("all relay workers stopped")
    return status


async def _serve_until_signal(config: RelayConfig, worker: int) -> int:
    try:
        relay = RelayServer(config)
    except ValueError as exc:
        logger.error("invalid relay settings: %s", exc)
        return EXIT_USAGE
    try:
        await relay.start()
    except OSError as exc:
        logger.error("worker %d cannot listen: %s", worker, exc)
        return EXIT_FAILURE
    listening = ", ".join(
        f"{kind.value} {format_address(address)}"
        for kind, addresses in relay.addresses.items()
        for address in addresses
    )
    logger.info("worker %d (pid %d) listening on %s", worker, os.getpid(), listening)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_stop(signum: signal.Signals) -> None:
        received.append(signum.name)
        stop.set()

    def on_usr1() -> None:
        logger.info("worker %d counters: %s", worker, _format_counters(relay))

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_stop, signum)
    loop.add_signal_handler(signal.SIGUSR1, on_usr1)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            loop.remove_signal_handler(signum)
        relay.close()
        await relay.wait_closed()
    logger.info(
        "worker %d stopped on %s; counters: %s",
        worker,
        received[0] if received else "request",
        _format_counters(relay),
    )
    return EXIT_OK


def _format_counters(relay: RelayServer) -> str:
    return ", ".join(f"{name}={value}" for name, value in relay.counters().items())


if __name__ == "__main__":
    sys.exit(EXIT_USAGE)
