"""The ``rice-fast`` command: argument parsing, ``stun`` and ``stun-server``."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from rice_fast.cli import (
    EXIT_ERROR_RESPONSE,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    build_parser,
    main,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import RiceStunServer


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def _target(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@pytest.fixture
def silent_udp() -> Iterator[tuple[str, int]]:
    """The address of a bound UDP socket that never responds."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()


# Parsing


def test_parser_stun_options() -> None:
    args = build_parser().parse_args(
        ["stun", "[::1]:3478", "--tcp", "--ipv6", "--timeout", "2.5", "--legacy"]
    )

    assert args.command == "stun"
    assert args.server == "[::1]:3478"
    assert args.tcp is True
    assert args.ipv6 is True
    assert args.timeout == 2.5
    assert args.legacy is True
    assert args.verbose == 0


def test_parser_verbose_before_or_after_command() -> None:
    parser = build_parser()

    assert parser.parse_args(["-v", "stun", "h:1"]).verbose == 1
    assert parser.parse_args(["stun", "h:1", "-v"]).verbose == 1


def test_parser_stun_server_users() -> None:
    args = build_parser().parse_args(
        ["stun-server", "--realm", "r", "--user", "a:x", "--user", "b:y:z", "--no-tcp"]
    )

    assert args.user == [("a", "x"), ("b", "y:z")]
    assert args.realm == "r"
    assert args.no_tcp is True


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["stun"],
        ["stun", "127.0.0.1:70000"],
        ["stun", "127.0.0.1:1", "--timeout", "0"],
        ["stun", "127.0.0.1:1", "--user", "alice"],
        ["stun-server", "--user", "alice:x"],
        ["stun-server", "--realm", "r"],
        ["stun-server", "--realm", "r", "--user", "no-password"],
        ["stun-server", "--no-udp", "--no-tcp"],
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)

    assert caught.value.code == EXIT_USAGE
    assert "error:" in capsys.readouterr().err


# rice-fast stun, in process


def test_stun_timeout_in_process(
    silent_udp: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["stun", _target(silent_udp), "--timeout", "0.2"])

    captured = capsys.readouterr()
    assert status == EXIT_TIMEOUT
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "timed out" in lines[0]
    assert _target(silent_udp) in lines[0]


def test_stun_ipv6_flag_with_ipv4_address(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["stun", "127.0.0.1:3478", "--ipv6", "--timeout", "5"])

    assert status == EXIT_USAGE
    assert "IPv6 was requested" in capsys.readouterr().err


def test_stun_server_rejects_long_software(
    rice_fast_command: Callable[..., list[str]],
) -> None:
    argv = ["stun-server", "--listen", "127.0.0.1:0", "--software", "x" * 200]

    completed = _run(rice_fast_command(*argv))

    assert completed.returncode == EXIT_USAGE
    assert "invalid STUN server settings" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_stun_unresolvable_host(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["stun", "host.invalid:3478", "--timeout", "5"])

    assert status == EXIT_FAILURE
    assert "cannot resolve" in capsys.readouterr().err


# rice-fast stun against rice-fast stun-server, both as subprocesses


@pytest.mark.parametrize("flags", [[], ["--tcp"]], ids=["udp", "tcp"])
def test_stun_against_own_server(
    rice_stun_server: Callable[..., RiceStunServer],
    rice_fast_command: Callable[..., list[str]],
    flags: list[str],
) -> None:
    server = rice_stun_server("--software", "rice")
    assert server.udp is not None
    assert server.udp == server.tcp

    completed = _run(
        rice_fast_command("stun", _target(server.udp), "--timeout", "10", *flags)
    )

    assert completed.returncode == EXIT_OK, completed.stderr
    lines = completed.stdout.splitlines()
    mapped = lines[0].removeprefix("Mapped address:").strip()
    local = lines[1].removeprefix("Local address:").strip()
    assert mapped == local
    assert mapped.startswith("127.0.0.1:")
    transport = "tcp" if flags else "udp"
    assert f"Server:         {_target(server.udp)} over {transport}" in lines
    assert "Software:       rice" in lines
    assert server.stop() == 0, server.process.log_tail()


def test_stun_against_own_server_ipv6(
    rice_stun_server: Callable[..., RiceStunServer],
    rice_fast_command: Callable[..., list[str]],
) -> None:
    server = rice_stun_server("--listen", "[::1]:0")
    assert server.udp is not None
    assert server.udp[0] == "::1"

    completed = _run(rice_fast_command("stun", _target(server.udp), "--timeout", "10"))

    assert completed.returncode == EXIT_OK, completed.stderr
    assert "Mapped address: [::1]:" in completed.stdout
    assert "Software:" not in completed.stdout


def test_stun_error_response_exit_code(
    rice_stun_server: Callable[..., RiceStunServer],
    rice_fast_command: Callable[..., list[str]],
) -> None:
    server = rice_stun_server("--realm", "rice-fast.test", "--user", "alice:wonderland")
    assert server.udp is not None
    target = _target(server.udp)

    anonymous = _run(rice_fast_command("stun", target, "--timeout", "10"))
    wrong = _run(
        rice_fast_command(
            "stun", target, "--user", "alice", "--password", "wrong", "--timeout", "10"
        )
    )
    right = _run(
        rice_fast_command(
            "stun",
            target,
            "--tcp",
            "--user",
            "alice",
            "--password",
            "wonderland",
            "--timeout",
            "10",
        )
    )

    assert anonymous.returncode == EXIT_ERROR_RESPONSE
    assert anonymous.stdout == ""
    assert len(anonymous.stderr.strip().splitlines()) == 1
    assert "401" in anonymous.stderr
    assert target in anonymous.stderr
    assert wrong.returncode == EXIT_ERROR_RESPONSE
    assert "401" in wrong.stderr
    assert right.returncode == EXIT_OK, right.stderr
    assert "Mapped address: 127.0.0.1:" in right.stdout
    # The server log has the realm and the user count, never a password.
    log = server.process.log()
    assert "rice-fast.test" in log
    assert "wonderland" not in log


def test_stun_timeout_subprocess(
    silent_udp: tuple[str, int], rice_fast_command: Callable[..., list[str]]
) -> None:
    completed = _run(rice_fast_command("stun", _target(silent_udp), "--timeout", "0.3"))

    assert completed.returncode == EXIT_TIMEOUT
    assert completed.stdout == ""
    assert len(completed.stderr.strip().splitlines()) == 1
    assert "timed out" in completed.stderr


# rice-fast stun-server lifecycle


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stun_server_stops_cleanly(
    rice_stun_server: Callable[..., RiceStunServer], signum: signal.Signals
) -> None:
    server = rice_stun_server("--no-tcp")
    assert server.udp is not None
    assert server.tcp is None

    server.process.process.send_signal(signum)
    status = server.process.process.wait(10)

    assert status == 0
    log = server.process.log()
    assert f"STUN server listening on udp 127.0.0.1:{server.udp[1]}" in log
    assert f"STUN server stopped on {signum.name}" in log
    assert "Traceback" not in log


def test_stun_server_port_in_use(rice_fast_command: Callable[..., list[str]]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]

        completed = _run(
            rice_fast_command("stun-server", "--listen", f"127.0.0.1:{port}")
        )

    assert completed.returncode == EXIT_FAILURE
    assert "cannot listen on 127.0.0.1:" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_stun_server_verbose_logs_requests(
    rice_stun_server: Callable[..., RiceStunServer],
    rice_fast_command: Callable[..., list[str]],
) -> None:
    server = rice_stun_server("-v")
    assert server.udp is not None

    completed = _run(rice_fast_command("stun", _target(server.udp), "--timeout", "10"))

    assert completed.returncode == EXIT_OK, completed.stderr
    assert server.stop() == 0
    log = server.process.log()
    assert " DEBUG " in log
    assert "Binding success response" in log
