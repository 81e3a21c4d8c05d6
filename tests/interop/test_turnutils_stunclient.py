"""coturn's ``turnutils_stunclient`` against ``rice-fast stun-server``."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import RiceStunServer

pytestmark = pytest.mark.interop


def test_turnutils_stunclient_gets_mapped_address(
    rice_stun_server: Callable[..., RiceStunServer],
) -> None:
    client = shutil.which("turnutils_stunclient")
    if client is None:
        pytest.fail(
            "turnutils_stunclient not found on PATH: install the Debian package "
            "coturn to run this interop test",
            pytrace=False,
        )
    server = rice_stun_server("--software", "rice-fast interop")
    assert server.udp is not None

    completed = subprocess.run(
        [client, "-p", str(server.udp[1]), "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    match = re.search(r"UDP reflexive addr: 127\.0\.0\.1:(\d+)", output)
    assert match is not None, output
    assert 0 < int(match.group(1)) < 65536
    assert server.stop() == 0, server.process.log_tail()
