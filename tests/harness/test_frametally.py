"""FrameTally against frames the websockets library serialises: data apart from control,
exact wire bytes, whatever way the stream is cut into chunks."""

from __future__ import annotations

import pytest
from websockets.frames import Close, CloseCode, Frame, Opcode

from wslab.harness.frametally import FrameTally

FRAMES = [
    Frame(Opcode.TEXT, b"hello"),
    Frame(Opcode.PING, b"p"),
    Frame(Opcode.BINARY, b"\x00" * 300),  # 16-bit length; sent with RSV1 (compressed)
    Frame(Opcode.PONG, b"p"),
    Frame(Opcode.TEXT, b"a" * 70_000, fin=False),  # 64-bit length
    Frame(Opcode.CONT, b"b" * 10),
    Frame(Opcode.CLOSE, Close(CloseCode.NORMAL_CLOSURE, "bye").serialize()),
]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("chunk", [1, 3, 7, 1000, 1 << 20])
def test_counts_match_the_librarys_frames(masked: bool, chunk: int) -> None:
    wire = [f.serialize(mask=masked) for f in FRAMES]
    wire[2] = bytes([wire[2][0] | 0x40]) + wire[2][1:]  # RSV1, as permessage-deflate sets it
    stream = b"".join(wire)
    tally = FrameTally()
    for start in range(0, len(stream), chunk):
        tally.feed(memoryview(stream)[start:start + chunk])
    data = [(f, w) for f, w in zip(FRAMES, wire, strict=True) if f.opcode.value < 8]
    control = [(f, w) for f, w in zip(FRAMES, wire, strict=True) if f.opcode.value >= 8]
    assert tally.as_dict() == {
        "data_frames": len(data), "data_bytes": sum(len(w) for _, w in data),
        "data_payload_bytes": sum(len(f.data) for f, _ in data),
        "compressed_frames": 1,
        "control_frames": len(control), "control_bytes": sum(len(w) for _, w in control),
    }
