"""Run the benchmarks and print a markdown table of time per message.

Usage, from the repository root:

    python -m bench.report [--json FILE] [--min-time S] [--max-time S]
    python -m bench.report --from-json FILE

The first form runs ``pytest bench`` with pytest-benchmark writing FILE,
then prints the table; the second only formats a JSON file written before.
Each round of pytest-benchmark averages many calls; the table shows the
fastest round and the median round, divided by the number of messages one
call handles. The fastest round is the one least disturbed by other work
on a shared machine, so "vs aioice" (how many times faster than the
aioice row of the same group) and the target checks use it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Row:
    """One benchmark's result, per message."""

    group: str
    implementation: str
    median_ns: float
    min_ns: float
    rounds: int
    target_ns: float | None
    target_ratio: float | None


def cpu_model() -> str:
    """Return the first "model name" of /proc/cpuinfo, or the platform's name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def pytest_command(json_path: Path, min_time: float, max_time: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "bench/test_stun_codec.py",
        "bench/test_stun_batch.py",
        "bench/test_ice_checklist.py",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={json_path}",
        f"--benchmark-min-time={min_time}",
        f"--benchmark-max-time={max_time}",
        "--benchmark-warmup=on",
    ]


def load_rows(data: dict[str, Any]) -> list[Row]:
    rows = []
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        messages = info.get("messages", 1)
        stats = bench["stats"]
        rows.append(
            Row(
                group=bench["group"] or bench["name"],
                implementation=info.get("implementation", bench["name"]),
                median_ns=stats["median"] * 1e9 / messages,
                min_ns=stats["min"] * 1e9 / messages,
                rounds=stats["rounds"],
                target_ns=info.get("target_ns"),
                target_ratio=info.get("target_ratio"),
            )
        )
    return rows


def format_ns(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def verdict(row: Row, ratio: float | None) -> str:
    """Describe whether the row met its targets, and by how much it missed."""
    parts = []
    if row.target_ns is not None:
        if row.min_ns <= row.target_ns:
            parts.append(f"<= {row.target_ns:g} ns: met")
        else:
            over = row.min_ns / row.target_ns - 1
            parts.append(f"<= {row.target_ns:g} ns: missed by {over:.0%}")
    if row.target_ratio is not None:
        if ratio is None:
            parts.append(f">= {row.target_ratio:g}x: no aioice row")
        elif ratio >= row.target_ratio:
            parts.append(f">= {row.target_ratio:g}x: met")
        else:
            parts.append(f">= {row.target_ratio:g}x: missed ({ratio:.1f}x)")
    return "; ".join(parts)


def markdown_table(rows: list[Row]) -> str:
    """Format rows by group, in the order the groups first ran."""
    lines = [
        "| group | implementation | ns per message | median | vs aioice | target |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    for group, members in groups.items():
        members.sort(key=lambda r: r.min_ns)
        aioice = next(
            (r for r in members if r.implementation.startswith("aioice")), None
        )
        for row in members:
            ratio = None
            if aioice is not None and row is not aioice:
                ratio = aioice.min_ns / row.min_ns
            lines.append(
                f"| {group} | {row.implementation} | {format_ns(row.min_ns)} "
                f"| {format_ns(row.median_ns)} "
                f"| {'' if ratio is None else f'{ratio:.1f}x'} "
                f"| {verdict(row, ratio)} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="where pytest-benchmark writes")
    parser.add_argument("--from-json", type=Path, help="format this file, run nothing")
    parser.add_argument(
        "--min-time", type=float, default=0.05, help="seconds per round (0.05)"
    )
    parser.add_argument(
        "--max-time", type=float, default=0.5, help="seconds per benchmark (0.5)"
    )
    args = parser.parse_args(argv)

    command_text = ""
    if args.from_json is not None:
        json_path = args.from_json
    else:
        json_path = args.json or Path(tempfile.mkdtemp()) / "bench.json"
        command = pytest_command(json_path, args.min_time, args.max_time)
        command_text = " ".join(["python", *command[1:]])
        completed = subprocess.run(command, cwd=ROOT, check=False)
        if completed.returncode != 0:
            print(f"pytest exited with {completed.returncode}", file=sys.stderr)
            return completed.returncode

    data: dict[str, Any] = json.loads(json_path.read_text())
    started = data.get("datetime") or datetime.datetime.now(datetime.UTC).isoformat()
    print(f"- date: {started[:10]}")
    print(f"- CPU: {cpu_model()}")
    print(
        f"- Python {platform.python_version()}, numpy {version('numpy')}, "
        f"aioice {version('aioice')}, pytest-benchmark {version('pytest-benchmark')}"
    )
    if command_text:
        print(f"- command: `{command_text}`")
    print()
    print(markdown_table(load_rows(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
