"""The benchmark fields that bench/report.py reads from the JSON output."""

from __future__ import annotations

from pytest_benchmark.fixture import BenchmarkFixture


def describe(
    benchmark: BenchmarkFixture,
    group: str,
    implementation: str,
    *,
    messages: int = 1,
    target_ns: float | None = None,
    target_ratio: float | None = None,
) -> None:
    """Set the group, the implementation and the targets of one benchmark.

    ``messages`` is the number of messages or datagrams one call handles,
    so that the report can print time per message. ``target_ns`` is the
    time per message to stay under; ``target_ratio`` is how many times
    faster than the aioice entry of the same group the benchmark should be.
    """
    benchmark.group = group
    benchmark.extra_info["implementation"] = implementation
    benchmark.extra_info["messages"] = messages
    if target_ns is not None:
        benchmark.extra_info["target_ns"] = target_ns
    if target_ratio is not None:
        benchmark.extra_info["target_ratio"] = target_ratio
