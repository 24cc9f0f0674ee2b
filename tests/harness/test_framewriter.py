"""FrameWriter: client frames that websockets' own parser reads back, written in bursts."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from wslab.harness.framewriter import FrameWriter

LENGTHS = (0, 1, 125, 126, 127, 65535, 65536, 70000)


class MarkRsv1:
    """A do-nothing extension for the parser: takes RSV1 off each frame and notes it."""

    name = "x-test-rsv1"

    def __init__(self) -> None:
        self.seen: list[bool] = []

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        self.seen.append(frame.rsv1)
        return dataclasses.replace(frame, rsv1=False)

    def encode(self, frame: Frame) -> Frame:  # pragma: no cover - never sends
        return frame


def parse_all(data: bytes, extension: Any = None) -> list[Frame]:
    """Every frame in ``data``, through websockets' parser as a server reads a client."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=True,
                             extensions=[extension] if extension is not None else None)
        try:
            while True:
                next(parser)
        except StopIteration as done:
            frames.append(done.value)
    return frames


def payload(n: int) -> bytes:
    return bytes((i * 7 + 3) % 256 for i in range(n))


@pytest.mark.parametrize("rsv1", [False, True])
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
@pytest.mark.parametrize("n", LENGTHS)
def test_a_frame_parses_back_with_the_librarys_parser(n: int, opcode: Opcode, rsv1: bool) -> None:
    writes: list[bytearray] = []
    writer = FrameWriter(writes.append, burst_bytes=1 << 30)
    body = payload(n)
    writer.add(int(opcode), body, rsv1)
    writer.flush()
    assert len(writes) == 1
    data = bytes(writes[0])
    header = 2 + (2 if 126 <= n < 65536 else 8 if n >= 65536 else 0) + 4
    assert len(data) == header + n  # the shortest length encoding, plus the mask
    assert data[1] & 0x80  # masked, as every client frame must be
    assert bool(data[0] & 0x40) == rsv1
    assert data[0] & 0x30 == 0  # RSV2 and RSV3 clear
    ext = MarkRsv1()
    (frame,) = parse_all(data, ext)
    assert ext.seen == [rsv1]
    assert frame.opcode is opcode
    assert frame.fin
    assert bytes(frame.data) == body


def test_a_plain_frame_needs_no_extension_to_parse() -> None:
    writes: list[bytearray] = []
    writer = FrameWriter(writes.append)
    writer.add(1, "héllo".encode())
    writer.flush()
    (frame,) = parse_all(writes[0])
    assert frame.opcode is Opcode.TEXT and bytes(frame.data) == "héllo".encode()


def test_every_frame_gets_its_own_masking_key() -> None:
    writes: list[bytearray] = []
    writer = FrameWriter(writes.append, burst_bytes=1 << 30)
    count = 3000  # more than one batch of keys fetched from the OS
    for _ in range(count):
        writer.add(2, b"\0" * 8)
    writer.flush()
    data = bytes(writes[0])
    frame_len = 2 + 4 + 8
    assert len(data) == count * frame_len
    keys = [data[i + 2:i + 6] for i in range(0, len(data), frame_len)]
    # Masking zeros leaves the key itself on the wire, twice.
    assert all(data[i + 6:i + 14] == k + k for i, k in zip(range(0, len(data), frame_len),
                                                          keys, strict=True))
    assert len(set(keys)) == count
    assert [bytes(f.data) for f in parse_all(data)] == [b"\0" * 8] * count


def test_a_burst_is_written_once_at_flush() -> None:
    writes: list[bytearray] = []
    writer = FrameWriter(writes.append, burst_bytes=1 << 20)
    messages = [payload(n) for n in (5, 200, 0, 1000)]
    for i, m in enumerate(messages):
        writer.add(1 if i % 2 else 2, m)
    assert writes == []
    assert writer.pending == sum(len(m) for m in messages) + 4 * 6 + 2 * 2
    writer.flush()
    assert len(writes) == 1
    assert writer.pending == 0
    assert [bytes(f.data) for f in parse_all(writes[0])] == messages
    writer.flush()  # nothing more to write
    assert len(writes) == 1
    # What was handed to the transport (which may hold it until the socket takes it) is
    # never touched again: the next burst is framed elsewhere.
    written = bytes(writes[0])
    writer.add(2, payload(300))
    writer.flush()
    assert bytes(writes[0]) == written
    assert [bytes(f.data) for f in parse_all(writes[1])] == [payload(300)]


def test_an_empty_flush_writes_nothing() -> None:
    writes: list[bytearray] = []
    writer = FrameWriter(writes.append)
    writer.flush()
    writer.flush()
    assert writes == []


def test_a_burst_is_written_as_soon_as_it_reaches_burst_bytes() -> None:
    writes: list[bytearray] = []
    frame_len = 2 + 4 + 100
    writer = FrameWriter(writes.append, burst_bytes=3 * frame_len)
    for _ in range(2):
        writer.add(2, b"a" * 100)
    assert writes == []  # below the threshold: held
    writer.add(2, b"a" * 100)
    assert [len(w) for w in writes] == [3 * frame_len]  # reached: written, once
    assert writer.pending == 0
    for _ in range(4):
        writer.add(2, b"b" * 100)
    assert [len(w) for w in writes] == [3 * frame_len] * 2
    assert writer.pending == frame_len
    writer.flush()
    assert [len(w) for w in writes] == [3 * frame_len] * 2 + [frame_len]
    frames = parse_all(b"".join(writes))
    assert [bytes(f.data) for f in frames] == [b"a" * 100] * 3 + [b"b" * 100] * 4


def test_one_large_frame_past_burst_bytes_is_written_at_once() -> None:
    writes: list[bytearray] = []
    writer = FrameWriter(writes.append, burst_bytes=1024)
    writer.add(2, payload(70000))
    assert len(writes) == 1 and writer.pending == 0
    (frame,) = parse_all(writes[0])
    assert bytes(frame.data) == payload(70000)
