"""Fixtures for the benchmarks: the key and the two STUN messages."""

from __future__ import annotations

import pytest

from bench.stun_messages import (
    PASSWORD,
    Credentials,
    build_request,
    build_request_aioice,
    build_response,
    build_response_aioice,
)
from rice_fast.stun import IntegrityKey


@pytest.fixture(scope="session")
def credentials() -> Credentials:
    return Credentials(PASSWORD, IntegrityKey(PASSWORD))


@pytest.fixture(scope="session")
def binding_request(credentials: Credentials) -> bytes:
    data = build_request(credentials.key)
    assert len(data) == 88
    assert data == build_request_aioice(credentials.password)
    return data


@pytest.fixture(scope="session")
def binding_response(credentials: Credentials) -> bytes:
    data = build_response(credentials.key)
    assert data == build_response_aioice(credentials.password)
    return data
