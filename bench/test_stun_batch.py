"""Batch classification and batched receive, per datagram.

Datagrams sit back to back in one uint8 buffer, as a recvmmsg loop that
copies each datagram to the end of the previous one would leave them.
``extra_info["messages"]`` is the batch size, so bench/report.py prints
time per datagram.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from aioice import stun as aioice_stun
from pytest_benchmark.fixture import BenchmarkFixture

from bench.fields import describe
from bench.stun_messages import Credentials
from rice_fast.stun import IntegrityKey, parse
from rice_fast.stun.batch import (
    Classification,
    check_fingerprint,
    check_integrity,
    classify,
)

CLASSIFY_SIZE = 100_000
RECEIVE_SIZES = [64, 1024]


@dataclass(frozen=True, slots=True)
class Datagrams:
    """A batch laid out in one buffer, with the datagrams also as bytes."""

    buffer: npt.NDArray[np.uint8]
    offsets: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]
    items: list[bytes]


def lay_out(items: list[bytes]) -> Datagrams:
    lengths = np.array([len(item) for item in items], np.int64)
    offsets = np.zeros(len(items), np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    buffer = np.frombuffer(b"".join(items), np.uint8)
    return Datagrams(buffer, offsets, lengths, items)


def relay_mix(request: bytes, response: bytes, count: int) -> Datagrams:
    """Mix ChannelData, STUN and other datagrams in a seeded random order.

    Shares: 50% ChannelData with a 100-byte payload, 25% Binding requests,
    10% Binding responses, 15% RTP-like and DTLS-like datagrams.
    """
    channel_data = b"\x40\x01\x00\x64" + bytes(range(100))
    rtp = b"\x80\x60\x12\x34" + bytes(116)
    dtls = b"\x17\xfe\xfd" + bytes(90)
    templates = [channel_data, request, response, rtp, dtls]
    shares = [0.50, 0.25, 0.10, 0.10, 0.05]
    choice = np.random.default_rng(8445).choice(len(templates), count, p=shares)
    return lay_out([templates[i] for i in choice])


@pytest.fixture(scope="module")
def mixed_batch(binding_request: bytes, binding_response: bytes) -> Datagrams:
    return relay_mix(binding_request, binding_response, CLASSIFY_SIZE)


@pytest.fixture(scope="module")
def request_batch(binding_request: bytes) -> Datagrams:
    return lay_out([binding_request] * CLASSIFY_SIZE)


CLASSIFY_MIX = f"batch classify: {CLASSIFY_SIZE:,} datagrams, relay mix"
CLASSIFY_STUN = f"batch classify: {CLASSIFY_SIZE:,} Binding requests"


def test_classify_mix(benchmark: BenchmarkFixture, mixed_batch: Datagrams) -> None:
    describe(
        benchmark,
        CLASSIFY_MIX,
        "rice_fast classify",
        messages=CLASSIFY_SIZE,
        target_ns=10,
    )
    batch = mixed_batch
    result = benchmark(classify, batch.buffer, batch.offsets, batch.lengths)
    assert result.valid[result.kind != 0].all()


def test_classify_mix_out(benchmark: BenchmarkFixture, mixed_batch: Datagrams) -> None:
    describe(
        benchmark,
        CLASSIFY_MIX,
        "rice_fast classify, out=",
        messages=CLASSIFY_SIZE,
        target_ns=10,
    )
    batch = mixed_batch
    out = Classification.empty(CLASSIFY_SIZE)
    result = benchmark(classify, batch.buffer, batch.offsets, batch.lengths, out=out)
    assert result is out


def test_classify_requests_out(
    benchmark: BenchmarkFixture, request_batch: Datagrams
) -> None:
    describe(
        benchmark,
        CLASSIFY_STUN,
        "rice_fast classify, out=",
        messages=CLASSIFY_SIZE,
        target_ns=10,
    )
    batch = request_batch
    out = Classification.empty(CLASSIFY_SIZE)
    result = benchmark(classify, batch.buffer, batch.offsets, batch.lengths, out=out)
    assert result.valid.all()


def receive_group(size: int) -> str:
    return f"batched receive: {size} Binding requests, check MI"


@pytest.mark.parametrize("size", RECEIVE_SIZES)
def test_receive_batch(
    benchmark: BenchmarkFixture,
    binding_request: bytes,
    credentials: Credentials,
    size: int,
) -> None:
    describe(
        benchmark,
        receive_group(size),
        "rice_fast classify + check_integrity",
        messages=size,
        target_ns=250,
    )
    batch = lay_out([binding_request] * size)
    classified = Classification.empty(size)
    verified = np.empty(size, np.bool_)
    key = credentials.key

    def receive() -> npt.NDArray[np.bool_]:
        classify(batch.buffer, batch.offsets, batch.lengths, out=classified)
        return check_integrity(
            batch.buffer, batch.offsets, batch.lengths, key, out=verified
        )

    assert benchmark(receive).all()


@pytest.mark.parametrize("size", RECEIVE_SIZES)
def test_receive_batch_fingerprint(
    benchmark: BenchmarkFixture,
    binding_request: bytes,
    credentials: Credentials,
    size: int,
) -> None:
    describe(
        benchmark,
        receive_group(size),
        "rice_fast classify + check_fingerprint + check_integrity",
        messages=size,
        target_ns=250,
    )
    batch = lay_out([binding_request] * size)
    classified = Classification.empty(size)
    fingerprinted = np.empty(size, np.bool_)
    verified = np.empty(size, np.bool_)
    key = credentials.key

    def receive() -> npt.NDArray[np.bool_]:
        classify(batch.buffer, batch.offsets, batch.lengths, out=classified)
        check_fingerprint(batch.buffer, batch.offsets, batch.lengths, out=fingerprinted)
        check_integrity(batch.buffer, batch.offsets, batch.lengths, key, out=verified)
        return verified & fingerprinted

    assert benchmark(receive).all()


@pytest.mark.parametrize("size", RECEIVE_SIZES)
def test_receive_batch_key_index(
    benchmark: BenchmarkFixture, binding_request: bytes, size: int
) -> None:
    describe(
        benchmark,
        receive_group(size),
        "rice_fast check_integrity, 16 keys by key_index",
        messages=size,
        target_ns=250,
    )
    keys = [IntegrityKey(b"wrong password %d" % n) for n in range(16)]
    batch = lay_out([binding_request] * size)
    key_index = (np.arange(size) % 16).astype(np.int32)
    verified = np.empty(size, np.bool_)

    def receive() -> npt.NDArray[np.bool_]:
        return check_integrity(
            batch.buffer, batch.offsets, batch.lengths, keys, key_index, out=verified
        )

    # Every key is wrong, so the HMAC runs and every check fails.
    assert not benchmark(receive).any()


@pytest.mark.parametrize("size", RECEIVE_SIZES)
def test_receive_loop_rice_fast(
    benchmark: BenchmarkFixture,
    binding_request: bytes,
    credentials: Credentials,
    size: int,
) -> None:
    describe(
        benchmark,
        receive_group(size),
        "rice_fast loop: parse().check_integrity()",
        messages=size,
    )
    items = [binding_request] * size
    key = credentials.key

    def receive() -> list[bool]:
        return [parse(item).check_integrity(key) for item in items]

    assert all(benchmark(receive))


@pytest.mark.parametrize("size", RECEIVE_SIZES)
def test_receive_loop_aioice(
    benchmark: BenchmarkFixture,
    binding_request: bytes,
    credentials: Credentials,
    size: int,
) -> None:
    describe(
        benchmark,
        receive_group(size),
        "aioice loop: parse_message().check_message_integrity()",
        messages=size,
    )
    items = [binding_request] * size
    password = credentials.password

    def receive() -> list[bool]:
        return [
            aioice_stun.parse_message(item).check_message_integrity(password)
            for item in items
        ]

    assert all(benchmark(receive))
