"""Per-message STUN receive and build paths, rice_fast beside aioice.

Each group times the same work in both libraries on identical bytes. The
targets in ``extra_info`` are what ``bench/report.py`` checks.
"""

from __future__ import annotations

from pytest_benchmark.fixture import BenchmarkFixture

from bench.fields import describe
from bench.stun_messages import (
    MAPPED_HOST,
    MAPPED_PORT,
    PRIORITY,
    TIE_BREAKER,
    USERNAME,
    Credentials,
    RequestFields,
    build_request,
    build_request_aioice,
    receive_request,
    receive_request_aioice,
    receive_request_one_pass,
    receive_response,
    receive_response_aioice,
    receive_response_checked,
    receive_response_checked_aioice,
)

EXPECTED_REQUEST: RequestFields = (USERNAME, PRIORITY, TIE_BREAKER, False)
EXPECTED_ADDRESS = (MAPPED_HOST, MAPPED_PORT)

RECEIVE_REQUEST = "receive Binding request: parse, check MI and FP, read 4 attributes"
BUILD_REQUEST = "build Binding request with MI and FP"
RECEIVE_RESPONSE = "receive Binding response: parse, decode XOR-MAPPED-ADDRESS"
RECEIVE_RESPONSE_CHECKED = (
    "receive Binding response: parse, check MI and FP, decode XOR-MAPPED-ADDRESS"
)


def test_receive_request_rice_fast(
    benchmark: BenchmarkFixture, binding_request: bytes, credentials: Credentials
) -> None:
    describe(benchmark, RECEIVE_REQUEST, "rice_fast", target_ns=400, target_ratio=15)
    result = benchmark(receive_request, binding_request, credentials.key)
    assert result == EXPECTED_REQUEST


def test_receive_request_rice_fast_one_pass(
    benchmark: BenchmarkFixture, binding_request: bytes, credentials: Credentials
) -> None:
    describe(
        benchmark,
        RECEIVE_REQUEST,
        "rice_fast, parse_verified() + ice_attributes()",
        target_ns=400,
        target_ratio=15,
    )
    result = benchmark(receive_request_one_pass, binding_request, credentials.key)
    assert result == EXPECTED_REQUEST


def test_receive_request_aioice(
    benchmark: BenchmarkFixture, binding_request: bytes, credentials: Credentials
) -> None:
    describe(benchmark, RECEIVE_REQUEST, "aioice")
    result = benchmark(receive_request_aioice, binding_request, credentials.password)
    assert result == EXPECTED_REQUEST


def test_build_request_rice_fast(
    benchmark: BenchmarkFixture, binding_request: bytes, credentials: Credentials
) -> None:
    describe(benchmark, BUILD_REQUEST, "rice_fast", target_ns=450, target_ratio=18)
    assert benchmark(build_request, credentials.key) == binding_request


def test_build_request_aioice(
    benchmark: BenchmarkFixture, binding_request: bytes, credentials: Credentials
) -> None:
    describe(benchmark, BUILD_REQUEST, "aioice")
    assert benchmark(build_request_aioice, credentials.password) == binding_request


def test_receive_response_rice_fast(
    benchmark: BenchmarkFixture, binding_response: bytes
) -> None:
    describe(benchmark, RECEIVE_RESPONSE, "rice_fast", target_ns=250)
    assert benchmark(receive_response, binding_response) == EXPECTED_ADDRESS


def test_receive_response_aioice(
    benchmark: BenchmarkFixture, binding_response: bytes
) -> None:
    describe(benchmark, RECEIVE_RESPONSE, "aioice")
    assert benchmark(receive_response_aioice, binding_response) == EXPECTED_ADDRESS


def test_receive_response_checked_rice_fast(
    benchmark: BenchmarkFixture, binding_response: bytes, credentials: Credentials
) -> None:
    describe(benchmark, RECEIVE_RESPONSE_CHECKED, "rice_fast")
    result = benchmark(receive_response_checked, binding_response, credentials.key)
    assert result == EXPECTED_ADDRESS


def test_receive_response_checked_aioice(
    benchmark: BenchmarkFixture, binding_response: bytes, credentials: Credentials
) -> None:
    describe(benchmark, RECEIVE_RESPONSE_CHECKED, "aioice")
    result = benchmark(
        receive_response_checked_aioice, binding_response, credentials.password
    )
    assert result == EXPECTED_ADDRESS
