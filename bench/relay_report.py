"""Compare ``rice-fast relay`` with coturn under the same ChannelData load.

Usage, from the repository root:

    python -m bench.relay_report [--count N] [--repeat N] [--json FILE]
        [--markdown FILE] [--plot FILE] [--no-memory]
    python -m bench.relay_report --from-json FILE [--markdown FILE] [--plot FILE]

Both relays run at once on loopback, each with one relay thread:
``rice-fast relay --workers 1`` and ``turnserver --relay-threads=1``. The
loads are 1 and 100 allocations, 100-byte and 1,200-byte payloads, and
offered rates of 50,000, 100,000 and 200,000 datagrams per second plus the
sender's maximum. For each load, ``bench.relay_load.blast`` sends
``--count`` ChannelData datagrams to one relay and then the same to the
other, alternating which goes first. Each row of the table is the run
with the median relayed rate of ``--repeat`` runs, so its numbers belong
together. Then each relay serves 1,000 allocations one at a time and
2,000 with 10 in flight. Unless ``--no-memory`` is given, a fresh process
of each serves 10,000 allocations while its resident set size is read
before and after.

The first form prints the markdown tables and writes FILE for each option
given; the second formats the JSON of an earlier run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import relay_load
from bench.relay_load import LoadResult, RelayProcess, Sink

IMPLEMENTATIONS = ("rice_fast", "coturn")
ALLOCATIONS = (1, 100)
PAYLOADS = (100, 1200)
RATES: tuple[float | None, ...] = (50_000, 100_000, 200_000, None)
SEQUENTIAL_ALLOCATIONS = 1_000
PARALLEL_ALLOCATIONS = 2_000
MEMORY_ALLOCATIONS = 10_000
MEMORY_WARMUP = 100
ALLOCATION_TIME_CAP = 30.0
MEMORY_TIME_CAP = 90.0


@dataclass(frozen=True, slots=True)
class LoadRow:
    """One blast of one relay, flattened for JSON."""

    implementation: str
    allocations: int
    payload: int
    target_rate: float | None
    repeat: int
    sent: int
    received: int
    send_seconds: float
    relay_cpu_seconds: float | None


@dataclass(frozen=True, slots=True)
class AllocationRow:
    """Allocations per second, or memory per allocation, of one relay."""

    implementation: str
    kind: str
    requested: int
    completed: int
    seconds: float
    failures: dict[str, int]
    rss_before_kib: int | None = None
    rss_after_kib: int | None = None


def start(implementation: str, directory: Path) -> RelayProcess:
    folder = directory / implementation
    folder.mkdir(exist_ok=True)
    if implementation == "rice_fast":
        return relay_load.start_rice_relay(folder)
    return relay_load.start_coturn(folder)


def run_load(
    relays: dict[str, RelayProcess], sink: Sink, count: int, repeat: int
) -> list[LoadRow]:
    rows: list[LoadRow] = []
    for allocations in ALLOCATIONS:
        sessions = {
            name: relay_load.open_channels(relay.address, sink, allocations)
            for name, relay in relays.items()
        }
        try:
            for payload in PAYLOADS:
                for rate in RATES:
                    for index in range(repeat):
                        order = list(relays)
                        if index % 2:
                            order.reverse()
                        for name in order:
                            result = relay_load.blast(
                                sessions[name],
                                relays[name].address,
                                sink,
                                payload=payload,
                                count=count,
                                rate=rate,
                                relay=relays[name],
                            )
                            rows.append(_load_row(name, index, result))
                            _progress(rows[-1])
        finally:
            for opened in sessions.values():
                relay_load.close_sessions(opened)
    return rows


def _load_row(name: str, repeat: int, result: LoadResult) -> LoadRow:
    return LoadRow(
        implementation=name,
        allocations=result.allocations,
        payload=result.payload,
        target_rate=result.target_rate,
        repeat=repeat,
        sent=result.sent,
        received=result.received,
        send_seconds=result.send_seconds,
        relay_cpu_seconds=result.relay_cpu_seconds,
    )


def _progress(row: LoadRow) -> None:
    rate = "max" if row.target_rate is None else f"{row.target_rate:,.0f}/s"
    relayed = row.received / row.send_seconds if row.send_seconds else 0.0
    loss = 1 - row.received / row.sent if row.sent else 0.0
    print(
        f"{row.implementation:9} {row.allocations:4} alloc {row.payload:5} B "
        f"{rate:>10}: {relayed:10,.0f}/s relayed, loss {loss:.2%}",
        file=sys.stderr,
    )


def run_allocation_rates(relays: dict[str, RelayProcess]) -> list[AllocationRow]:
    rows: list[AllocationRow] = []
    for name, relay in relays.items():
        for kind, count, in_flight in (
            ("sequential", SEQUENTIAL_ALLOCATIONS, 1),
            ("10 in flight", PARALLEL_ALLOCATIONS, 10),
        ):
            run = relay_load.allocate_many(
                relay.address, count, in_flight=in_flight, time_cap=ALLOCATION_TIME_CAP
            )
            relay_load.close_sessions(run.sessions)
            rows.append(
                AllocationRow(
                    name, kind, count, len(run.sessions), run.seconds, run.failures
                )
            )
            print(f"{name} {kind}: {run.per_second:,.0f}/s", file=sys.stderr)
    return rows


def run_memory(directory: Path) -> list[AllocationRow]:
    rows: list[AllocationRow] = []
    for name in IMPLEMENTATIONS:
        relay = start(name, directory / "memory")
        try:
            warmup = relay_load.allocate_many(
                relay.address, MEMORY_WARMUP, in_flight=10
            )
            before = relay.rss_kib()
            run = relay_load.allocate_many(
                relay.address,
                MEMORY_ALLOCATIONS,
                in_flight=10,
                time_cap=MEMORY_TIME_CAP,
            )
            after = relay.rss_kib()
            relay_load.close_sessions(warmup.sessions)
            relay_load.close_sessions(run.sessions)
        finally:
            relay.stop()
        rows.append(
            AllocationRow(
                name,
                "memory",
                MEMORY_ALLOCATIONS,
                len(run.sessions),
                run.seconds,
                run.failures,
                before,
                after,
            )
        )
        print(f"{name} memory: {before} KiB -> {after} KiB", file=sys.stderr)
    return rows


# Formatting.


def _rate_label(rate: float | None) -> str:
    return "max" if rate is None else f"{rate:,.0f}"


@dataclass(frozen=True, slots=True)
class Summary:
    """The median run of one relay at one load, by relayed rate."""

    relayed_rate: float
    sent_rate: float
    loss: float
    cpu_us_per_packet: float | None


def _summary(row: LoadRow) -> Summary:
    cpu = None
    if row.relay_cpu_seconds is not None and row.received:
        cpu = 1e6 * row.relay_cpu_seconds / row.received
    return Summary(
        relayed_rate=row.received / row.send_seconds,
        sent_rate=row.sent / row.send_seconds,
        loss=1 - row.received / row.sent if row.sent else 0.0,
        cpu_us_per_packet=cpu,
    )


def summarize(rows: Sequence[LoadRow]) -> dict[tuple[str, int, int, str], Summary]:
    """Pick the median run of each relay and load, so a row is one real run."""
    groups: dict[tuple[str, int, int, str], list[LoadRow]] = {}
    for row in rows:
        key = (
            row.implementation,
            row.allocations,
            row.payload,
            _rate_label(row.target_rate),
        )
        groups.setdefault(key, []).append(row)
    result: dict[tuple[str, int, int, str], Summary] = {}
    for key, group in groups.items():
        runs = sorted((_summary(row) for row in group), key=lambda s: s.relayed_rate)
        result[key] = runs[(len(runs) - 1) // 2]
    return result


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def load_table(rows: Sequence[LoadRow]) -> list[str]:
    summary = summarize(rows)
    lines = [
        "| allocations | payload (B) | offered (pkt/s) | rice_fast sent (pkt/s) "
        "| rice_fast relayed (pkt/s) | rice_fast loss | coturn sent (pkt/s) "
        "| coturn relayed (pkt/s) | coturn loss | relayed, rice_fast / coturn "
        "| relay CPU per packet, rice_fast / coturn (µs) | target |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | --- |",
    ]
    for allocations in ALLOCATIONS:
        for payload in PAYLOADS:
            for rate in RATES:
                label = _rate_label(rate)
                ours = summary.get(("rice_fast", allocations, payload, label))
                theirs = summary.get(("coturn", allocations, payload, label))
                if ours is None or theirs is None:
                    continue
                ratio = ours.relayed_rate / theirs.relayed_rate
                # The target compares the ratio as printed, to two decimals,
                # and counts loss within 0.01 percentage points as equal,
                # because below both relays' capacity the rates differ only
                # by the sender's timing.
                no_more_loss = ours.loss <= theirs.loss + 1e-4
                met = round(ratio, 2) >= 1.0 and no_more_loss
                target = "met" if met else "missed"
                if not met:
                    reasons = []
                    if ratio < 1.0:
                        reasons.append(f"{ratio:.2f}x")
                    if not no_more_loss:
                        reasons.append("more loss")
                    target += f" ({', '.join(reasons)})"
                cpu = (
                    f"{ours.cpu_us_per_packet:.2f} / {theirs.cpu_us_per_packet:.2f}"
                    if ours.cpu_us_per_packet and theirs.cpu_us_per_packet
                    else ""
                )
                lines.append(
                    f"| {allocations} | {payload:,} | {label} "
                    f"| {ours.sent_rate:,.0f} | {ours.relayed_rate:,.0f} "
                    f"| {_percent(ours.loss)} "
                    f"| {theirs.sent_rate:,.0f} | {theirs.relayed_rate:,.0f} "
                    f"| {_percent(theirs.loss)} "
                    f"| {ratio:.2f}x | {cpu} | {target} |"
                )
    return lines


def allocation_table(rows: Sequence[AllocationRow]) -> list[str]:
    by_key = {(row.implementation, row.kind): row for row in rows}
    lines = [
        "| measure | rice_fast | coturn | rice_fast / coturn |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind in ("sequential", "10 in flight"):
        ours, theirs = by_key.get(("rice_fast", kind)), by_key.get(("coturn", kind))
        if ours is None or theirs is None:
            continue
        ours_rate = ours.completed / ours.seconds
        theirs_rate = theirs.completed / theirs.seconds
        lines.append(
            f"| allocations per second, {kind} ({ours.requested:,}) "
            f"| {ours_rate:,.0f} | {theirs_rate:,.0f} "
            f"| {ours_rate / theirs_rate:.2f}x |"
        )
    ours, theirs = by_key.get(("rice_fast", "memory")), by_key.get(("coturn", "memory"))
    if ours is not None and theirs is not None:
        cells = []
        for row in (ours, theirs):
            assert row.rss_before_kib is not None and row.rss_after_kib is not None
            growth = (row.rss_after_kib - row.rss_before_kib) * 1024
            cells.append(growth / max(row.completed, 1) / 1024)
        lines.append(
            f"| RSS growth per allocation at {MEMORY_ALLOCATIONS:,} (KiB) "
            f"| {cells[0]:.1f} | {cells[1]:.1f} | {cells[0] / cells[1]:.2f}x |"
        )
        for row in (ours, theirs):
            if row.completed < row.requested or row.failures:
                lines.append(
                    f"| {row.implementation}: {row.completed:,} of "
                    f"{row.requested:,} allocations completed, failures "
                    f"{row.failures} | | | |"
                )
    return lines


def plot(rows: Sequence[LoadRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(rows)
    labels = [_rate_label(rate) for rate in RATES]
    figure, axes = plt.subplots(
        len(ALLOCATIONS), len(PAYLOADS), figsize=(11, 7), sharey=True
    )
    width = 0.38
    for i, allocations in enumerate(ALLOCATIONS):
        for j, payload in enumerate(PAYLOADS):
            ax = axes[i][j]
            for k, name in enumerate(IMPLEMENTATIONS):
                values = []
                losses = []
                for label in labels:
                    item = summary.get((name, allocations, payload, label))
                    values.append(item.relayed_rate / 1000 if item else 0.0)
                    losses.append(item.loss if item else 0.0)
                positions = [x + (k - 0.5) * width for x in range(len(labels))]
                bars = ax.bar(positions, values, width, label=name)
                for bar, loss in zip(bars, losses, strict=True):
                    ax.annotate(
                        f"{100 * loss:.1f}%",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
            ax.set_xticks(range(len(labels)), labels)
            ax.set_title(f"{allocations} allocation(s), {payload:,}-byte payload")
            ax.set_xlabel("offered load (packets/s)")
            if j == 0:
                ax.set_ylabel("relayed (thousand packets/s)")
            ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend()
    figure.suptitle(
        "ChannelData relayed to the peer on loopback, one relay thread (labels: loss)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _coturn_version() -> str:
    try:
        completed = subprocess.run(
            ["turnserver", "--version"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return completed.stdout.decode(errors="replace").strip() or "unknown"


def environment(argv: Sequence[str]) -> dict[str, str]:
    from bench.report import cpu_model

    return {
        "date": datetime.date.today().isoformat(),
        "command": "python -m bench.relay_report " + " ".join(argv),
        "cpu": cpu_model(),
        "cores": str(len(os.sched_getaffinity(0))),
        "python": platform.python_version(),
        "rice_fast": _version("rice_fast"),
        "coturn": _coturn_version(),
    }


def markdown(data: dict[str, Any]) -> str:
    env = data["environment"]
    load = [LoadRow(**row) for row in data["load"]]
    allocations = [AllocationRow(**row) for row in data["allocations"]]
    lines = [
        f"- date: {env['date']}",
        f"- command: `{env['command']}`",
        f"- CPU: {env['cpu']}, {env['cores']} cores",
        f"- Python {env['python']}, rice_fast {env['rice_fast']}, "
        f"coturn {env['coturn']}",
        f"- {data['count']:,} datagrams per run; each row is the run with the "
        f"median relayed rate of {data['repeat']}",
        "",
        *load_table(load),
        "",
        *allocation_table(allocations),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison, or format an earlier run; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200_000, help="datagrams per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per load")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    parser.add_argument("--plot", type=Path, help="write the PNG plot here")
    parser.add_argument("--no-memory", action="store_true", help="skip memory")
    parser.add_argument("--from-json", type=Path, help="format this earlier run")
    args = parser.parse_args(argv)
    if args.count < 1 or args.repeat < 1:
        parser.error("--count and --repeat must be at least 1")

    if args.from_json is not None:
        data = json.loads(args.from_json.read_text())
    else:
        data = collect(args, list(sys.argv[1:] if argv is None else argv))
        if args.json is not None:
            args.json.write_text(json.dumps(data, indent=1) + "\n")

    text = markdown(data)
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text)
    if args.plot is not None:
        plot([LoadRow(**row) for row in data["load"]], args.plot)
    return 0


def collect(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Run every measurement and return the raw results."""
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as name:
        directory = Path(name)
        (directory / "memory").mkdir()
        relays: dict[str, RelayProcess] = {}
        sink = Sink()
        try:
            for implementation in IMPLEMENTATIONS:
                relays[implementation] = start(implementation, directory)
            load = run_load(relays, sink, args.count, args.repeat)
            rates = run_allocation_rates(relays)
        finally:
            sink.close()
            for relay in relays.values():
                relay.stop()
        memory = [] if args.no_memory else run_memory(directory)
    return {
        "environment": environment(argv),
        "count": args.count,
        "repeat": args.repeat,
        "load": [asdict(row) for row in load],
        "allocations": [asdict(row) for row in [*rates, *memory]],
    }


if __name__ == "__main__":
    sys.exit(main())
