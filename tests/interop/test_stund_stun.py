"""rice_fast.io and ``rice-fast stun`` against stund 0.97 (RFC 3489 server).

stund echoes the whole 16-byte transaction id, so our magic cookie comes
back in place and its responses parse as RFC 5389 messages. Besides the
RFC 3489 MAPPED-ADDRESS it sends an XOR-MAPPED-ADDRESS computed with the
magic cookie, and its SOFTWARE ends in a NUL byte.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

from rice_fast.io import binding_request

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import StundServer

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("legacy", [False, True], ids=["default", "legacy"])
async def test_stund_binding(stund: StundServer, legacy: bool) -> None:
    result = await binding_request(stund.address(), legacy=legacy, timeout=10)

    assert result.mapped_address == result.local_address
    assert result.server == stund.address()
    assert result.software == "Vovida.org 0.97"
    assert result.legacy is False


@pytest.mark.parametrize("flags", [[], ["--legacy"]], ids=["default", "legacy"])
def test_cli_stun_against_stund(
    stund: StundServer, rice_fast_command: Callable[..., list[str]], flags: list[str]
) -> None:
    host, port = stund.address()

    completed = subprocess.run(
        rice_fast_command("stun", f"{host}:{port}", "--timeout", "10", *flags),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert completed.returncode == 0, completed.stderr
    assert "Mapped address: 127.0.0.1:" in completed.stdout
    assert "Software:       Vovida.org 0.97\n" in completed.stdout
