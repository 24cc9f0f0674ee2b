"""SinkConnection's flow control, driven byte by byte on a transport that only records.

A peer whose frames arrive before the handler attaches its sink (admission may hold the
handler back) is read no further once 16 frames wait; a peer that does not read our
answers is read no further while our write buffer is over its high-water mark. Both resume
when the cause goes away, and no frame is lost or reordered on the way.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.frames import Frame
from websockets.protocol import State
from websockets.server import ServerProtocol

from wslab.harness.framewriter import FrameWriter
from wslab.harness.wsadapter import EARLY_FRAMES, SinkConnection, write_frame


class RecordingTransport(asyncio.Transport):
    """Records what the connection asks of it; its write buffer size is set by the test."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.written = bytearray()
        self.buffered = 0
        self.limits = (0, 0)

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def write(self, data: Any) -> None:
        self.written += data

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.limits = (low or 0, high or 0)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.limits

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _frames(count: int) -> bytes:
    chunks: list[bytes] = []
    writer = FrameWriter(chunks.append, burst_bytes=1 << 30)
    for n in range(count):
        writer.add(1, f"message {n}".encode())
    writer.flush()
    return b"".join(chunks)


class IdleServer:
    """What ``connection_made`` asks of its server: a handler to start (here, one that
    does nothing; the test plays the handler's part)."""

    def __init__(self) -> None:
        self.handler_tasks: set[asyncio.Task[None]] = set()

    async def handler(self, connection: Any) -> None:
        return None


async def _open_connection() -> tuple[SinkConnection, RecordingTransport]:
    protocol = ServerProtocol(state=State.OPEN)
    conn = SinkConnection(protocol, IdleServer(), write_limit=1000)  # type: ignore[arg-type]
    transport = RecordingTransport()
    conn.connection_made(transport)
    return conn, transport


def test_frames_before_attach_are_kept_then_reading_pauses_until_attach() -> None:
    asyncio.run(_test_frames_before_attach_are_kept_then_reading_pauses_until_attach())


async def _test_frames_before_attach_are_kept_then_reading_pauses_until_attach() -> None:
    conn, transport = await _open_connection()
    conn.data_received(_frames(EARLY_FRAMES - 1))
    assert transport.calls == []  # under the limit: keep reading
    conn.data_received(_frames(5))
    assert transport.calls == ["pause"]
    got: list[bytes] = []
    conn.attach(lambda frame: got.append(bytes(frame.data)))
    assert transport.calls == ["pause", "resume"]
    expected = [f"message {n}".encode() for n in range(EARLY_FRAMES - 1)]
    expected += [f"message {n}".encode() for n in range(5)]
    assert got == expected  # every early frame, in order, none lost


def test_a_peer_that_does_not_read_our_answers_is_not_read_either() -> None:
    asyncio.run(_test_a_peer_that_does_not_read_our_answers_is_not_read_either())


async def _test_a_peer_that_does_not_read_our_answers_is_not_read_either() -> None:
    conn, transport = await _open_connection()

    def echo(frame: Frame) -> None:
        transport.buffered += 600  # what the kernel did not take of our answer
        write_frame(conn, bytes(frame.data), 1)

    conn.attach(echo)
    conn.data_received(_frames(1))
    assert transport.calls == []  # 600 bytes buffered: under the 1000-byte mark
    conn.data_received(_frames(1))
    assert transport.calls == ["pause"]  # 1200 > 1000: the peer is behind
    assert len(transport.written) > 0  # both answers went to the transport in order
    transport.buffered = 0
    conn.pause_writing()  # asyncio calls these as its buffer crosses the marks
    conn.resume_writing()
    assert transport.calls == ["pause", "resume"]


def test_answers_to_one_read_leave_in_one_write() -> None:
    asyncio.run(_test_answers_to_one_read_leave_in_one_write())


async def _test_answers_to_one_read_leave_in_one_write() -> None:
    conn, transport = await _open_connection()
    writes: list[int] = []
    original = transport.write

    def counting_write(data: Any) -> None:
        writes.append(len(data))
        original(data)

    transport.write = counting_write  # type: ignore[method-assign]
    conn.attach(lambda frame: write_frame(conn, bytes(frame.data), 1))
    conn.data_received(_frames(50))
    assert len(writes) == 1
    # fifty unmasked text frames of "message N": 2 header bytes each
    assert writes[0] == sum(2 + len(f"message {n}") for n in range(50))


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
