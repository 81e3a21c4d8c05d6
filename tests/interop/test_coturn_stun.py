"""rice_fast.io and ``rice-fast stun`` against coturn 4.6 on loopback."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

from rice_fast.io import StunClient, StunErrorResponse, binding_request
from rice_fast.stun import Method
from rice_fast.stun.attributes import Lifetime, RequestedTransport
from rice_fast.stun.credentials import LongTermCredentials
from rice_fast.stun.transport import TransportType

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import CoturnServer

pytestmark = pytest.mark.interop

UDP_PROTOCOL = 17


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_coturn_binding(coturn: CoturnServer, transport: str, ipv6: bool) -> None:
    server = coturn.address(ipv6)

    result = await binding_request(server, transport=transport, ipv6=ipv6, timeout=10)

    assert result.mapped_address == result.local_address
    assert result.local_address[0] == server[0]
    assert result.server == server
    assert result.transport is TransportType(transport)
    assert result.software is not None
    assert result.software.startswith("Coturn")
    assert result.legacy is False


async def _open(coturn: CoturnServer, transport: str) -> StunClient:
    if transport == "tcp":
        return await StunClient.open_tcp(coturn.address())
    return await StunClient.open_udp(("127.0.0.1", 0))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_coturn_allocate_long_term_auth(
    coturn: CoturnServer, transport: str
) -> None:
    server = coturn.address()
    credentials = LongTermCredentials(coturn.user, coturn.password, coturn.realm)
    allocate_attributes = [RequestedTransport(UDP_PROTOCOL)]
    async with await _open(coturn, transport) as client:
        allocated = await client.request(
            Method.ALLOCATE,
            server,
            attributes=allocate_attributes,
            credentials=credentials,
            timeout=10,
        )
        relayed = allocated.response.xor_relayed_address()
        lifetime = allocated.response.lifetime()
        retries_after_allocate = client.agent.stats.auth_retries

        deleted = await client.request(
            Method.REFRESH,
            server,
            attributes=[Lifetime(0)],
            credentials=credentials,
            timeout=10,
        )

        again_ok: bool | None = None
        if transport == "udp":
            # With the allocation deleted, the same 5-tuple may allocate
            # again; a leftover allocation would draw 437 (Allocation
            # Mismatch). coturn 4.6 returns 437 on a TCP connection whose
            # allocation was deleted, so this runs over UDP only.
            again = await client.request(
                Method.ALLOCATE,
                server,
                attributes=allocate_attributes,
                credentials=credentials,
                timeout=10,
            )
            again_ok = again.response.is_success
            await client.request(
                Method.REFRESH,
                server,
                attributes=[Lifetime(0)],
                credentials=credentials,
                timeout=10,
            )

    assert relayed is not None
    assert relayed[0] == "127.0.0.1"
    assert coturn.relay_ports[0] <= relayed[1] <= coturn.relay_ports[1]
    assert lifetime is not None
    assert lifetime > 0
    # The first Allocate drew a 401, and the agent resent it with credentials.
    assert retries_after_allocate == 1
    assert deleted.response.lifetime() == 0
    assert again_ok is (True if transport == "udp" else None)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_coturn_allocate_wrong_password(
    coturn: CoturnServer, transport: str
) -> None:
    server = coturn.address()
    credentials = LongTermCredentials(coturn.user, "not-the-password", coturn.realm)
    async with await _open(coturn, transport) as client:
        with pytest.raises(StunErrorResponse) as caught:
            await client.request(
                Method.ALLOCATE,
                server,
                attributes=[RequestedTransport(UDP_PROTOCOL)],
                credentials=credentials,
                timeout=10,
            )
        retries = client.agent.stats.auth_retries

    assert caught.value.code == 401
    assert caught.value.server == server
    assert "401" in str(caught.value)
    # One resend with credentials, which coturn rejected, and no more.
    assert retries == 1


@pytest.mark.parametrize(
    ("flags", "ipv6"),
    [([], False), (["--tcp"], False), (["--ipv6"], True), (["--tcp", "--ipv6"], True)],
    ids=["udp", "tcp", "udp-ipv6", "tcp-ipv6"],
)
def test_cli_stun_against_coturn(
    coturn: CoturnServer,
    rice_fast_command: Callable[..., list[str]],
    flags: list[str],
    ipv6: bool,
) -> None:
    host, port = coturn.address(ipv6)
    target = f"[{host}]:{port}" if ipv6 else f"{host}:{port}"

    completed = subprocess.run(
        rice_fast_command("stun", target, "--timeout", "10", *flags),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    mapped = next(line for line in lines if line.startswith("Mapped address:"))
    local = next(line for line in lines if line.startswith("Local address:"))
    assert mapped.split(":", 1)[1].strip() == local.split(":", 1)[1].strip()
    assert (f"[{host}]:" if ipv6 else f"{host}:") in mapped
    assert any(line.startswith("Software:") and "Coturn" in line for line in lines)
    assert any(line.startswith("RTT:") and line.endswith(" ms") for line in lines)


def test_cli_stun_with_credentials_against_coturn(
    coturn: CoturnServer, rice_fast_command: Callable[..., list[str]]
) -> None:
    # coturn answers Binding without asking for credentials, so the agent's
    # first, unauthenticated request succeeds.
    host, port = coturn.address()
    argv = ["stun", f"{host}:{port}", "--user", coturn.user]
    argv += ["--password", coturn.password, "--timeout", "10"]

    completed = subprocess.run(
        rice_fast_command(*argv), capture_output=True, text=True, timeout=30
    )

    assert completed.returncode == 0, completed.stderr
    assert "Mapped address: 127.0.0.1:" in completed.stdout
