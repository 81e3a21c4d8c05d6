"""RFC 4571 framing of ICE-TCP packets (RFC 6544 §3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rice_fast.ice._framing4571 import (
    MAX_FRAME,
    FrameTooLargeError,
    Rfc4571Deframer,
    frame,
)


def test_frame_prefixes_the_length() -> None:
    assert frame(b"abc") == b"\x00\x03abc"
    assert frame(b"") == b"\x00\x00"
    assert len(frame(b"x" * MAX_FRAME)) == MAX_FRAME + 2
    with pytest.raises(FrameTooLargeError):
        frame(b"x" * (MAX_FRAME + 1))


def test_deframer_handles_partial_and_merged_reads() -> None:
    deframer = Rfc4571Deframer()
    stream = frame(b"first") + frame(b"") + frame(b"third packet")
    assert deframer.feed(stream[:1]) == []
    assert deframer.feed(stream[1:4]) == []
    assert deframer.buffered == 4
    assert deframer.feed(stream[4:9]) == [b"first", b""]
    assert deframer.feed(stream[9:]) == [b"third packet"]
    assert deframer.buffered == 0
    assert deframer.frames == 3


@given(st.lists(st.binary(max_size=300), max_size=20), st.data())
def test_deframer_round_trips_any_segmentation(
    packets: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(frame(p) for p in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    deframer = Rfc4571Deframer()
    out: list[bytes] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out.extend(deframer.feed(stream[start:cut]))
        start = cut
    assert out == packets
    assert deframer.buffered == 0
