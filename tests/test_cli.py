"""The ``rice-fast`` command: argument parsing, ``stun`` and ``stun-server``."""

from __future__ import annotations

import asyncio
import re
import resource
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rice_fast import io as rice_io
from rice_fast.cli import (
    EXIT_ERROR_RESPONSE,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    build_parser,
    main,
    printable,
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
        ["stun", "0.0.0.0:3478"],
        ["stun", "[::]:3478"],
        ["stun", "127.0.0.1:0"],
        ["stun-server", "--tcp-idle-timeout", "inf"],
        ["stun-server", "--max-tcp-connections", "0"],
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
    with pytest.raises(SystemExit) as caught:
        main(["stun", "127.0.0.1:3478", "--ipv6", "--timeout", "5"])

    assert caught.value.code == EXIT_USAGE
    error = capsys.readouterr().err
    assert "IPv6 was requested" in error
    assert error.startswith("usage: rice-fast stun ")


def test_stun_server_rejects_long_software(
    rice_fast_command: Callable[..., list[str]],
) -> None:
    argv = ["stun-server", "--listen", "127.0.0.1:0", "--software", "x" * 200]

    completed = _run(rice_fast_command(*argv))

    assert completed.returncode == EXIT_USAGE
    assert completed.stderr.startswith("usage: rice-fast stun-server ")
    assert "rice-fast stun-server: error: invalid --software" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert " ERROR " not in completed.stderr


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
    assert "not used" not in right.stderr
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


# Output of server text, invalid responses and unreachable servers


def _stun_message(
    message_type: int, transaction_id: bytes, attributes: list[tuple[int, bytes]]
) -> bytes:
    """Encode a STUN message by hand, whatever its attributes hold."""
    body = b"".join(
        struct.pack("!HH", kind, len(value)) + value + b"\x00" * (-len(value) % 4)
        for kind, value in attributes
    )
    return (
        struct.pack("!HHI", message_type, len(body), 0x2112A442) + transaction_id + body
    )


def _xor_mapped(address: tuple[str, int]) -> bytes:
    port = address[1] ^ 0x2112
    ip = bytes(
        a ^ b
        for a, b in zip(socket.inet_aton(address[0]), b"\x21\x12\xa4\x42", strict=True)
    )
    return struct.pack("!BBH", 0, 1, port) + ip


@pytest.fixture
def udp_responder() -> Iterator[
    Callable[[Callable[[bytes, tuple[str, int]], bytes]], tuple[str, int]]
]:
    """Start a UDP server on loopback that sends ``reply(data, source)`` back."""
    sockets: list[socket.socket] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(reply: Callable[[bytes, tuple[str, int]], bytes]) -> tuple[str, int]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.1)
        sockets.append(sock)

        def serve() -> None:
            while not stop.is_set():
                try:
                    data, source = sock.recvfrom(2048)
                except TimeoutError:
                    continue
                except OSError:
                    return
                sock.sendto(reply(data, source), source)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        host, port = sock.getsockname()
        return (str(host), int(port))

    yield start
    stop.set()
    for thread in threads:
        thread.join(5)
    for sock in sockets:
        sock.close()


def test_printable_escapes_control_characters() -> None:
    assert printable("rice 1.0") == "rice 1.0"
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("\r\nMapped address: 6.6.6.6:6") == (
        "\\x0d\\x0aMapped address: 6.6.6.6:6"
    )
    assert printable("bell\x07 del\x7f") == "bell\\x07 del\\x7f"
    assert printable("rtl\u202eoverride") == "rtl\\u202eoverride"
    assert printable("caf\u00e9") == "caf\u00e9"


def test_stun_escapes_server_software(
    udp_responder: Callable[..., tuple[str, int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    software = b"evil\x1b[2J\x1b]0;title\x07\r\nMapped address: 6.6.6.6:6"

    def reply(data: bytes, source: tuple[str, int]) -> bytes:
        return _stun_message(
            0x0101, data[8:20], [(0x0020, _xor_mapped(source)), (0x8022, software)]
        )

    server = udp_responder(reply)

    status = main(["stun", _target(server), "--timeout", "5"])

    out = capsys.readouterr().out
    assert status == EXIT_OK
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\r" not in out
    mapped = [line for line in out.splitlines() if line.startswith("Mapped address")]
    assert mapped == [mapped[0]]
    assert mapped[0].startswith("Mapped address: 127.0.0.1:")
    assert (
        "Software:       evil\\x1b[2J\\x1b]0;title\\x07\\x0d\\x0aMapped address: "
        "6.6.6.6:6" in out
    )


def test_stun_escapes_error_reason(
    udp_responder: Callable[..., tuple[str, int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def reply(data: bytes, source: tuple[str, int]) -> bytes:
        reason = b"Bad Request\x1b[31mRED\x07"
        return _stun_message(
            0x0111, data[8:20], [(0x0009, b"\x00\x00\x04\x00" + reason)]
        )

    server = udp_responder(reply)

    status = main(["stun", _target(server), "--timeout", "5"])

    err = capsys.readouterr().err
    assert status == EXIT_ERROR_RESPONSE
    assert "\x1b" not in err
    assert "Bad Request\\x1b[31mRED\\x07" in err
    assert len(err.strip().splitlines()) == 1


def test_stun_invalid_response_exits_1(
    udp_responder: Callable[..., tuple[str, int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def reply(data: bytes, source: tuple[str, int]) -> bytes:
        # XOR-MAPPED-ADDRESS of 3 bytes cannot hold an address.
        return _stun_message(0x0101, data[8:20], [(0x0020, b"\x00\x09\x00")])

    server = udp_responder(reply)

    status = main(["stun", _target(server), "--timeout", "5"])

    err = capsys.readouterr().err
    assert status == EXIT_FAILURE
    assert err.startswith("rice-fast stun: ")
    assert f"STUN server {_target(server)} over udp sent an invalid" in err
    assert "usage:" not in err
    assert len(err.strip().splitlines()) == 1


def test_stun_unreachable_port_fails_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()

    # Without the ICMP error the request would wait for this timeout.
    status = main(["stun", _target(closed), "--timeout", "20"])

    err = capsys.readouterr().err
    assert status == EXIT_FAILURE
    assert _target(closed) in err
    assert "ICMP port unreachable" in err
    assert "timed out" not in err


def test_stun_credentials_not_used_note(
    rice_stun_server: Callable[..., RiceStunServer],
    rice_fast_command: Callable[..., list[str]],
) -> None:
    server = rice_stun_server()
    assert server.udp is not None

    completed = _run(
        rice_fast_command(
            "stun",
            _target(server.udp),
            "--user",
            "alice",
            "--password",
            "wonderland",
            "--timeout",
            "10",
        )
    )

    assert completed.returncode == EXIT_OK, completed.stderr
    assert "Mapped address: 127.0.0.1:" in completed.stdout
    assert "note:" in completed.stderr
    assert "--user and --password were not used" in completed.stderr


@pytest.fixture
def junk_tcp_server() -> Iterator[tuple[str, int]]:
    """A TCP server on loopback that sends bytes that are not STUN."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                try:
                    connection.sendall(b"\x00\x01\xff\xfc" + b"\xaa" * 60)
                    connection.recv(1024)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()
    stop.set()
    thread.join(5)
    listener.close()


def test_stun_tcp_junk_one_line(
    junk_tcp_server: tuple[str, int],
    rice_fast_command: Callable[..., list[str]],
) -> None:
    completed = _run(
        rice_fast_command("stun", _target(junk_tcp_server), "--tcp", "--timeout", "10")
    )

    assert completed.returncode == EXIT_FAILURE
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("rice-fast stun: ")
    assert f"{_target(junk_tcp_server)} sent data over TCP that is not STUN" in lines[0]


def test_turn_escapes_error_reason(
    udp_responder: Callable[..., tuple[str, int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def reply(data: bytes, source: tuple[str, int]) -> bytes:
        method = struct.unpack_from("!H", data)[0] & 0x3EEF
        reason = b"Nope\x1b]0;pwned\x07"
        return _stun_message(
            method | 0x0110, data[8:20], [(0x0009, b"\x00\x00\x04\x00" + reason)]
        )

    server = udp_responder(reply)

    status = main(
        ["turn", _target(server), "--user", "u", "--password", "p", "--timeout", "5"]
    )

    err = capsys.readouterr().err
    assert status == EXIT_ERROR_RESPONSE
    assert "\x1b" not in err
    assert "\x07" not in err
    assert "Nope\\x1b]0;pwned\\x07" in err


# Usage errors after parsing, and interrupts


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["stun", "127.0.0.1:1", "--user", "alice"], "stun"),
        (["stun", "127.0.0.1:1", "--user", "a", "--password", "b\x07"], "stun"),
        (["stun-server", "--user", "alice:x"], "stun-server"),
        (["stun-server", "--listen", "127.0.0.1:99999"], "stun-server"),
        (
            ["turn", "127.0.0.1:1", "--user", "u", "--password", "p", "--tcp-relay"],
            "turn",
        ),
        (
            ["turn", "127.0.0.1:1", "--user", "u", "--password", "p", "--insecure"],
            "turn",
        ),
    ],
)
def test_late_usage_error_prints_command_usage(
    argv: list[str], command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)

    err = capsys.readouterr().err
    assert caught.value.code == EXIT_USAGE
    assert err.startswith(f"usage: rice-fast {command} ")
    assert f"rice-fast {command}: error: " in err


def test_stun_bad_password_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["stun", "127.0.0.1:1", "--user", "alice", "--password", "se\x07cret"])

    err = capsys.readouterr().err
    assert "invalid credentials: invalid password: " in err
    assert "position 2" in err
    assert "U+0007" not in err
    assert "cret" not in err


def _main_catching_interrupt(argv: list[str]) -> int:
    # A KeyboardInterrupt that escapes main would stop the whole test run.
    try:
        return main(argv)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped main")


def test_main_interrupted_while_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    import rice_fast.cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(rice_fast.cli, "build_parser", interrupted)

    assert _main_catching_interrupt(["stun", "127.0.0.1:1"]) == EXIT_INTERRUPTED


def test_stun_server_interrupted_during_startup(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def slow_start(*args: object, **kwargs: object) -> None:
        # The SIGINT that asyncio.run turns into KeyboardInterrupt.
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(10)

    monkeypatch.setattr(rice_io, "serve_stun", slow_start)

    status = _main_catching_interrupt(["stun-server", "--listen", "127.0.0.1:0"])

    assert status == EXIT_INTERRUPTED
    assert "Traceback" not in capsys.readouterr().err


def test_stun_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        signal.raise_signal(signal.SIGINT)
        time.sleep(10)

    monkeypatch.setattr(rice_io, "stun_binding", interrupted)

    assert _main_catching_interrupt(["stun", "127.0.0.1:3478"]) == EXIT_INTERRUPTED
    assert "Traceback" not in capsys.readouterr().err


def test_stun_server_help_warns_about_passwords(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["stun-server", "--help"])

    text = " ".join(capsys.readouterr().out.split())
    assert "visible to other local users in the process list" in text
    assert "--tcp-idle-timeout" in text
    assert "--max-tcp-connections" in text


# TCP limits of rice-fast stun-server


def test_stun_server_out_of_file_descriptors(
    rice_fast_command: Callable[..., list[str]], tmp_path: Path
) -> None:
    """EMFILE on accept is retried and logged once per second, not per try."""
    log_path = tmp_path / "stun-server.log"

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    argv = rice_fast_command("stun-server", "--listen", "127.0.0.1:0", "--no-udp")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit_files
        )
    clients: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        match = None
        while match is None and time.monotonic() < deadline:
            match = re.search(
                r"listening on tcp 127\.0\.0\.1:(\d+)", log_path.read_text()
            )
            time.sleep(0.05)
        assert match is not None, log_path.read_text()
        address = ("127.0.0.1", int(match.group(1)))

        started = time.monotonic()
        for _ in range(100):
            client = socket.create_connection(address, timeout=5)
            clients.append(client)
        time.sleep(2.5)
        elapsed = time.monotonic() - started
        text = log_path.read_text()
        failures = text.count("accepting a TCP connection")

        # Once the connections close, the server accepts and responds again.
        for client in clients:
            client.close()
        clients.clear()
        completed = _run(
            rice_fast_command("stun", _target(address), "--tcp", "--timeout", "10")
        )
    finally:
        for client in clients:
            client.close()
        process.send_signal(signal.SIGTERM)
        status = process.wait(10)

    assert "Traceback" not in text
    assert "Too many open files" in text
    assert 1 <= failures <= elapsed + 2
    assert completed.returncode == EXIT_OK, completed.stderr
    assert status == EXIT_OK
