"""Rows of the rice_fast interop matrix, and their table in ``docs/interop.md``.

Each matrix test takes the ``interop_result`` fixture (``conftest.py``),
names its scenario with ``describe`` and reports its time to connect with
``connected``. When the test ends, the fixture adds one ``ScenarioResult``
with the test's outcome to the session's ``ResultTable``. At the end of a
session run with ``RICE_WRITE_INTEROP_RESULTS=1``, the table replaces the
block between ``RESULTS_START`` and ``RESULTS_END`` in ``docs/interop.md``.
Rows of scenarios that did not run in the session are kept, so a run of
one peer's tests updates only that peer's rows.
"""

from __future__ import annotations

import datetime
import os
import platform
import textwrap
from dataclasses import dataclass
from pathlib import Path

RESULTS_START = "<!-- results -->"
RESULTS_END = "<!-- /results -->"
WRITE_RESULTS_ENV = "RICE_WRITE_INTEROP_RESULTS"
INTEROP_DOC = Path(__file__).resolve().parents[2] / "docs" / "interop.md"

# Rows are sorted by peer in this order, then by scenario, role and
# transport, ignoring case.
PEER_ORDER = ("libnice", "pion", "chromium", "firefox")

_COLUMNS = 6
_HEADER = (
    "| peer | scenario | rice_fast role | transport | time to connect | result |",
    "| --- | --- | --- | --- | --- | --- |",
)


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """One row of the matrix.

    ``role`` is rice_fast's role in the scenario: ``controlling`` or
    ``controlled`` for its ICE agent, ``TURN server`` for its relay.
    ``transport`` is what carried the selected pair (``udp``, ``tcp``,
    ``udp via TURN``). ``seconds`` is the time to connect, None when the
    test failed before connecting or has no connection to time. ``outcome``
    is pytest's ``passed`` or ``failed``.
    """

    peer: str
    scenario: str
    role: str
    transport: str
    seconds: float | None
    outcome: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The columns that name the scenario: peer, scenario, role, transport."""
        return (self.peer, self.scenario, self.role, self.transport)

    def markdown(self) -> str:
        """Return the row as a line of the Markdown table."""
        cells = [*self.key, format_seconds(self.seconds), self.outcome]
        return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |"


def format_seconds(seconds: float | None) -> str:
    """Format a time to connect: milliseconds below 1 s, else seconds."""
    if seconds is None:
        return "-"
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"


def _sort_key(key: tuple[str, str, str, str]) -> tuple[int, str, str, str, str]:
    peer = key[0]
    rank = PEER_ORDER.index(peer) if peer in PEER_ORDER else len(PEER_ORDER)
    scenario, role, transport = key[1].lower(), key[2].lower(), key[3].lower()
    return (rank, peer.lower(), scenario, role, transport)


def _existing_rows(block: str) -> dict[tuple[str, str, str, str], str]:
    """Read the table rows of an earlier results block, keyed by scenario."""
    rows: dict[tuple[str, str, str, str], str] = {}
    for line in block.splitlines():
        if not line.startswith("| ") or line in _HEADER:
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == _COLUMNS:
            rows[(cells[0], cells[1], cells[2], cells[3])] = line
    return rows


class ResultTable:
    """The matrix rows collected in one test session."""

    def __init__(self) -> None:
        self.rows: list[ScenarioResult] = []

    def add(self, row: ScenarioResult) -> None:
        """Add a row; a later row of the same scenario replaces an earlier one."""
        self.rows = [earlier for earlier in self.rows if earlier.key != row.key]
        self.rows.append(row)

    def render(self, earlier_block: str = "") -> str:
        """Return the results block, keeping the rows of ``earlier_block``.

        A row of this session replaces the earlier row of its scenario.
        """
        lines = _existing_rows(earlier_block)
        for row in self.rows:
            lines[row.key] = row.markdown()
        today = datetime.datetime.now(datetime.UTC).date().isoformat()
        cores = os.cpu_count() or 0
        intro = (
            f"Last written on {today} by `RICE_WRITE_INTEROP_RESULTS=1 pytest "
            f"tests/interop -k matrix`, one run, on {platform.machine()} Linux "
            f"with {cores} cores shared with other work. The time to connect runs "
            "from the moment the second side gets the first side's description "
            "until both sides report connected. A row shows the last run of its "
            "scenario."
        )
        table = [*_HEADER, *(lines[key] for key in sorted(lines, key=_sort_key))]
        paragraph = textwrap.fill(intro, width=72)
        return "\n".join([RESULTS_START, "", paragraph, "", *table, "", RESULTS_END])

    def write(self, path: Path = INTEROP_DOC) -> None:
        """Replace the results block in ``path``, or append one if it has none."""
        text = path.read_text()
        start = text.find(RESULTS_START)
        end = text.find(RESULTS_END, start + 1) if start >= 0 else -1
        if start >= 0 and end >= 0:
            earlier = text[start + len(RESULTS_START) : end]
            block = self.render(earlier)
            text = text[:start] + block + text[end + len(RESULTS_END) :]
        else:
            text = text.rstrip("\n") + "\n\n" + self.render() + "\n"
        path.write_text(text)


def write_requested() -> bool:
    """Return whether this run should write the table (the variable is ``1``)."""
    return os.environ.get(WRITE_RESULTS_ENV) == "1"
