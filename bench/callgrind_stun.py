"""Count instructions per STUN message with valgrind's callgrind tool.

Usage, from the repository root:

    python -m bench.callgrind_stun [--iterations N] [PATH ...]

Each PATH (all of them by default) runs twice under
``valgrind --tool=callgrind``: once with a warm-up of ``--warmup``
iterations only, once with the warm-up plus N more. The difference of the
two instruction totals divided by N is the cost of one message, with
interpreter start-up, imports and the warm-up of the adaptive interpreter
cancelled out. It still includes the Python ``for`` loop and the call of
the path's function; the ``empty`` path measures that overhead alone, and
``parse_request`` is ``parse`` without any check or attribute read.

Valgrind 3.19 clears the SHA bit of CPUID leaf 7, so OpenSSL runs its SHA-1
code without SHA-NI here: the HMAC share of these counts is larger than
on a processor where OpenSSL uses SHA-NI natively.

The paths are the functions that bench/test_stun_codec.py times.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = [
    "empty",
    "parse_request",
    "receive_request",
    "receive_request_aioice",
    "build_request",
    "build_request_aioice",
    "receive_response",
    "receive_response_aioice",
]


def path_function(name: str) -> Callable[[], object]:
    """Return a no-argument callable that runs one message through ``name``."""
    from bench import stun_messages as m
    from rice_fast.stun import IntegrityKey, parse

    key = IntegrityKey(m.PASSWORD)
    request = m.build_request(key)
    response = m.build_response(key)

    def empty() -> object:
        return None

    calls: dict[str, Callable[[], object]] = {
        "empty": empty,
        "parse_request": lambda: parse(request),
        "receive_request": lambda: m.receive_request(request, key),
        "receive_request_aioice": lambda: m.receive_request_aioice(request, m.PASSWORD),
        "build_request": lambda: m.build_request(key),
        "build_request_aioice": lambda: m.build_request_aioice(m.PASSWORD),
        "receive_response": lambda: m.receive_response(response),
        "receive_response_aioice": lambda: m.receive_response_aioice(response),
    }
    return calls[name]


def run_worker(name: str, iterations: int) -> None:
    """Run ``iterations`` messages through one path (inside valgrind)."""
    call = path_function(name)
    for _ in range(iterations):
        call()


def count_instructions(name: str, iterations: int, out_dir: Path) -> int:
    """Run the worker under callgrind and return its total instruction count."""
    out_file = out_dir / f"callgrind.{name}.{iterations}"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_file}",
        "--dump-instr=no",
        sys.executable,
        "-m",
        "bench.callgrind_stun",
        "--worker",
        name,
        "--iterations",
        str(iterations),
    ]
    subprocess.run(
        command,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    match = re.search(r"^(?:summary|totals): (\d+)", out_file.read_text(), re.M)
    if match is None:
        raise RuntimeError(f"no instruction total in {out_file}")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help=f"any of {', '.join(PATHS)}"
    )
    parser.add_argument(
        "--iterations", type=int, default=10_000, help="measured messages (10000)"
    )
    parser.add_argument(
        "--warmup", type=int, default=1_000, help="messages before measuring (1000)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        run_worker(args.worker, args.iterations)
        return 0

    unknown = sorted(set(args.paths) - set(PATHS))
    if unknown:
        parser.error(f"unknown path {unknown[0]!r}; choose from {', '.join(PATHS)}")
    names = args.paths or PATHS
    print(f"instructions per message, {args.iterations} messages after a warm-up")
    print(f"of {args.warmup}, counted by valgrind --tool=callgrind:")
    print()
    print("| path | instructions per message |")
    print("| --- | ---: |")
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            base = count_instructions(name, args.warmup, Path(scratch))
            total = count_instructions(
                name, args.warmup + args.iterations, Path(scratch)
            )
            print(f"| {name} | {(total - base) / args.iterations:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
