"""RFC 6455 header sizes against the websockets library's own serialiser; opcodes by the
library's names; TCP model."""

from __future__ import annotations

import numpy as np
import pytest
import websockets.frames
from websockets.frames import Frame, Opcode

from wslab import wire
from wslab.wire import TcpModel, ws_frame_bytes, ws_header_bytes, ws_header_bytes_array

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 100_000]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("masked", [False, True])
def test_frame_bytes_match_a_real_serialiser(size: int, masked: bool) -> None:
    real = Frame(Opcode.BINARY, b"x" * size).serialize(mask=masked)
    assert ws_frame_bytes(size, masked) == len(real)
    assert ws_header_bytes(size, masked) == len(real) - size


def test_vectorised_headers_agree() -> None:
    sizes = np.array(SIZES, dtype=np.int64)
    for masked in (False, True):
        assert list(ws_header_bytes_array(sizes, masked)) == [
            ws_header_bytes(s, masked) for s in SIZES
        ]


def test_tcp_segmentation() -> None:
    tcp = TcpModel(mss=1448, header_bytes=52)
    assert tcp.segments(0) == 0
    assert tcp.segments(1) == 1
    assert tcp.segments(1448) == 1
    assert tcp.segments(1449) == 2
    assert tcp.tcp_bytes(3000) == 3000 + 3 * 52
    assert list(tcp.segments_array(np.array([0, 1448, 1449, 2896]))) == [0, 1, 2, 2]


def test_opcodes_are_the_librarys() -> None:
    """wslab's table (for layers that do not import websockets) equals websockets' own."""
    assert {o.name: o.value for o in wire.Opcode} == {o.name: o.value for o in Opcode}
    assert wire.DATA_OPCODES == websockets.frames.DATA_OPCODES
    assert wire.CONTROL_OPCODES == websockets.frames.CTRL_OPCODES
    assert [*wire.DATA_OPCODES, *wire.CONTROL_OPCODES] == list(wire.Opcode)
    for o in Opcode:
        first_byte = Frame(o, b"").serialize(mask=False)[0]
        assert first_byte & wire.OPCODE_BITS == wire.Opcode[o.name]
