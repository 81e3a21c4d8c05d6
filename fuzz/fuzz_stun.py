"""Fuzz the STUN codec: only StunParseError may escape a parse or an accessor.

Every input is parsed as an RFC 5389/8489 message and as an RFC 3489 one,
every public method and property of the resulting ``Message`` is called, and
``frame_error`` must agree with ``parse``. Any other exception is a bug.

Run with atheris (``pip install atheris``)::

    python fuzz/fuzz_stun.py -max_total_time=60

Arguments go to libFuzzer. Without a corpus folder the harness uses
``fuzz/corpus``, written by ``fuzz/make_corpus.py`` when missing. With
``--plain``, or when atheris is not installed, a plain random-mutation loop
runs instead. It accepts ``-max_total_time=N``, ``-runs=N``, ``-seed=N``,
corpus folders and input files (run once each), and writes a failing input
to ``crash-<sha1>``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import struct
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

try:
    import atheris
except ImportError:
    atheris = None

if atheris is not None and __name__ == "__main__" and "--plain" not in sys.argv:
    # Instruments the pure-Python modules (rice_fast.stun.attributes and its
    # helpers) for coverage. The compiled codec is C and gets no coverage
    # feedback unless it is built with -fsanitize=fuzzer-no-link. Tests that
    # load this file as a module skip the instrumentation.
    with atheris.instrument_imports():
        import rice_fast.stun.attributes  # noqa: F401  (the codec imports it lazily)
        from rice_fast.stun import (
            IntegrityKey,
            Message,
            StunParseError,
            frame_error,
            is_stun,
            parse,
        )
else:
    from rice_fast.stun import (
        IntegrityKey,
        Message,
        StunParseError,
        frame_error,
        is_stun,
        parse,
    )

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE / "corpus"

KEY = IntegrityKey(b"fuzz-password")

# Attribute types passed to the accessors that take one, besides the types
# present in the message: the integrity attributes, XOR-MAPPED-ADDRESS,
# MAPPED-ADDRESS, ERROR-CODE and one unassigned type.
PROBE_TYPES = (0x0008, 0x001C, 0x8028, 0x0020, 0x0001, 0x0009, 0x7FFF)

# Methods of Message that take arguments, with the argument lists to try.
# ``(EACH_TYPE,)`` stands for one call per attribute type to probe. A new
# public method that needs arguments fails with TypeError until it is added
# here.
EACH_TYPE = object()
METHOD_ARGUMENTS: dict[str, list[tuple[Any, ...]]] = {
    "has": [(EACH_TYPE,)],
    "raw": [(EACH_TYPE,)],
    "raw_all": [(EACH_TYPE,)],
    "attribute_offset": [(EACH_TYPE,)],
    "get": [(EACH_TYPE,)],
    "xor_address": [(EACH_TYPE,)],
    "address": [(EACH_TYPE,)],
    "unknown_comprehension_required": [(), (frozenset(),), ({0x0006, 0x7FFF},)],
    "check_integrity": [(KEY,)],
    "check_message_integrity": [(KEY,)],
    "check_message_integrity_sha256": [(KEY,)],
    "check": [(), (KEY,), (KEY, False), (None, False)],
}


def public_names() -> list[str]:
    """Return the public attribute names of Message, methods and properties."""
    return sorted(name for name in dir(Message) if not name.startswith("_"))


def _argument_lists(name: str, types: Iterable[int]) -> list[tuple[Any, ...]]:
    result: list[tuple[Any, ...]] = []
    for arguments in METHOD_ARGUMENTS.get(name, [()]):
        if arguments == (EACH_TYPE,):
            result.extend((attr_type,) for attr_type in types)
        else:
            result.append(arguments)
    return result


def exercise_message(message: Message) -> None:
    """Read every property and call every public method of ``message``.

    A StunParseError from an accessor must point inside the message or at
    its end. Any other exception propagates.
    """
    types = sorted(set(message.attribute_types()) | set(PROBE_TYPES))
    len(message)
    repr(message)
    for name in public_names():
        member = getattr(message, name)
        if not callable(member):
            continue
        for arguments in _argument_lists(name, types):
            try:
                member(*arguments)
            except StunParseError as exc:
                # A value cut short at the end of the message may be reported
                # at the end itself, as parse reports a short message.
                assert 0 <= exc.offset <= message.size, (name, arguments, exc)


def exercise(data: bytes) -> None:
    """Feed ``data`` to parse, every accessor, frame_error and is_stun.

    Raises AssertionError when frame_error and parse disagree, and lets any
    exception other than StunParseError from the codec propagate.
    """
    error = frame_error(data)
    assert error is None or isinstance(error, StunParseError), repr(error)
    is_stun(data)

    try:
        message = parse(data)
    except StunParseError as exc:
        assert error is not None, "frame_error accepted what parse rejected"
        assert (exc.reason, exc.offset) == (error.reason, error.offset)
        assert 0 <= exc.offset <= len(data), exc
    else:
        assert error is None, f"frame_error rejected a valid message: {error}"
        assert message.size == len(data)
        exercise_message(message)

    for wrapped in (bytearray(data), memoryview(data)):
        try:
            message = parse(wrapped, legacy=True)
        except StunParseError:
            continue
        exercise_message(message)


# Mutations, shared by the plain loop and the atheris custom mutator.


def fix_length(data: bytearray) -> None:
    """Set the header length field to the real body size, when it fits."""
    if 20 <= len(data) <= 0xFFFF + 20:
        struct.pack_into("!H", data, 2, len(data) - 20)


def mutate(data: bytes, rng: random.Random, max_size: int = 4096) -> bytes:
    """Return ``data`` with one to four random edits of STUN-aware kinds."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(9)
        if choice == 0 and out:
            position = rng.randrange(len(out))
            out[position] ^= 1 << rng.randrange(8)
        elif choice == 1 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif choice == 2 and out:
            del out[rng.randrange(len(out)) :]
        elif choice == 3 and len(out) >= 4:
            struct.pack_into("!H", out, 2, rng.choice([0, 4, len(out), 0xFFFC]))
        elif choice == 4 and len(out) >= 24:
            # Rewrite one attribute length field at a 4-byte boundary.
            position = 20 + 4 * rng.randrange((len(out) - 20) // 4)
            if position + 4 <= len(out):
                struct.pack_into("!H", out, position + 2, rng.randrange(0x10000))
        elif choice == 5:
            chunk = rng.randbytes(rng.choice([1, 2, 4, 8]))
            position = rng.randrange(len(out) + 1)
            out[position:position] = chunk
        elif choice == 6 and len(out) > 20:
            start = rng.randrange(20, len(out))
            del out[start : start + rng.choice([1, 4, 8])]
        elif choice == 7:
            value = rng.randbytes(rng.randrange(0, 40))
            attr_type = rng.choice([0x0008, 0x001C, 0x8028, 0x0020, 0x0009])
            header = struct.pack("!HH", attr_type, len(value))
            out += header + value + bytes(-len(value) % 4)
        else:
            fix_length(out)
    if rng.random() < 0.5:
        fix_length(out)
    return bytes(out[:max_size])


def load_corpus(folders: Sequence[Path]) -> list[bytes]:
    """Read every file of the corpus folders."""
    inputs: list[bytes] = []
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                inputs.append(path.read_bytes())
    return inputs


def _make_corpus_module() -> ModuleType:
    # Loaded by path, so this works whatever sys.path contains. The tests load
    # this file the same way.
    spec = importlib.util.spec_from_file_location(
        "rice_fast_fuzz_make_corpus", HERE / "make_corpus.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed_messages() -> list[bytes]:
    """Return the valid messages that fuzz/make_corpus.py writes as seeds."""
    seeds: list[bytes] = _make_corpus_module().seed_messages()
    return seeds


def ensure_default_corpus() -> Path:
    """Write the seed corpus to fuzz/corpus unless it exists, and return it."""
    if not DEFAULT_CORPUS.is_dir():
        _make_corpus_module().write_corpus(DEFAULT_CORPUS)
    return DEFAULT_CORPUS


def _option(arguments: Sequence[str], name: str, default: int) -> int:
    prefix = f"-{name}="
    for argument in arguments:
        if argument.startswith(prefix):
            return int(argument[len(prefix) :])
    return default


def run_plain(arguments: Sequence[str]) -> int:
    """Run the random-mutation loop; return the process exit status."""
    max_time = _option(arguments, "max_total_time", 60)
    max_runs = _option(arguments, "runs", -1)
    seed = _option(arguments, "seed", int.from_bytes(os.urandom(4), "big"))
    paths = [Path(a) for a in arguments if not a.startswith("-")]
    files = [path for path in paths if path.is_file()]
    if files:
        # Like libFuzzer: files on the command line are run once each.
        for path in files:
            exercise(path.read_bytes())
            print(f"{path}: no failure")
        return 0
    folders = paths or [ensure_default_corpus()]
    corpus = load_corpus(folders) or [b""]
    rng = random.Random(seed)
    print(f"plain fuzzer: seed {seed}, {len(corpus)} inputs, {max_time} s max")

    deadline = time.monotonic() + max_time
    runs = 0
    while runs != max_runs and time.monotonic() < deadline:
        if rng.random() < 0.05:
            data = rng.randbytes(rng.randrange(0, 120))
        else:
            data = mutate(rng.choice(corpus), rng)
        try:
            exercise(data)
        except Exception:
            name = f"crash-{hashlib.sha1(data).hexdigest()}"
            Path(name).write_bytes(data)
            print(f"failing input written to {name}: {data.hex()}")
            raise
        runs += 1
    print(f"plain fuzzer: {runs} runs, no failure")
    return 0


def run_atheris(arguments: list[str]) -> None:
    """Hand over to libFuzzer through atheris; it exits the process."""
    assert atheris is not None
    if not any(not a.startswith("-") for a in arguments[1:]):
        arguments.append(str(ensure_default_corpus()))

    # Coverage of the harness itself shows libFuzzer which inputs parse and
    # which accessors raise. It is the only feedback from the C codec.
    atheris.instrument_func(exercise)
    atheris.instrument_func(exercise_message)

    def test_one_input(data: bytes) -> None:
        exercise(data)

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            return mutate(data, rng, max_size)
        mutated = bytearray(atheris.Mutate(data, max_size))
        if rng.random() < 0.5:
            fix_length(mutated)
        return bytes(mutated)

    mutator: Callable[[bytes, int, int], bytes] = custom_mutator
    atheris.Setup(arguments, test_one_input, custom_mutator=mutator)
    atheris.Fuzz()


def main() -> int:
    arguments = sys.argv[:]
    if atheris is None or "--plain" in arguments:
        if atheris is None:
            print("atheris is not installed: running the plain mutation loop")
        return run_plain([a for a in arguments[1:] if a != "--plain"])
    run_atheris(arguments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
