"""What a frame costs on the wire: RFC 6455 framing and a TCP segmentation model.

What lives here: the frame opcodes by name (:class:`Opcode`, the same names and values as
websockets' own, for the sans-I/O layers that do not import websockets) and pure functions
from payload sizes to ws bytes, TCP segments and TCP bytes. Nothing here knows about time or
links (that is ``link.py``) or about which messages form a frame (that is ``batching.py``).
numpy is imported only by the vectorised functions, so the send pipeline can name opcodes
without it.

WebSocket framing (RFC 6455 section 5.2): a 2-byte base header; a 7-bit length holds sizes
up to 125, the value 126 adds a 2-byte length (126..65535) and 127 an 8-byte one; frames
from client to server carry a 4-byte masking key. Data frames are never fragmented by wslab
(one message or one batch = one frame), so one frame = one header.

TCP model, with its assumptions stated:

- every frame is handed to the kernel in its own write and leaves at once (``TCP_NODELAY``,
  which asyncio sets on TCP sockets), so frames are not coalesced into shared segments; a
  busy sender may coalesce in reality, which only lowers the segment count;
- a write of ``n`` bytes becomes ``ceil(n / mss)`` segments;
- each segment carries ``header_bytes`` of IPv4 + TCP headers: 20 + 20 + 12 bytes of the
  timestamp option Linux sends by default = 52; link-layer framing is not counted;
- the MSS is the link's: 1448 bytes on a 1500-byte MTU with timestamps, 65483 on Linux
  loopback (MTU 65536);
- ACK-only segments from the receiver are not counted in the sender's bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class Opcode(IntEnum):
    """RFC 6455 section 5.2 opcodes (``websockets.frames.Opcode`` has the same members)."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


# Tuples, as the library has them: an opcode read from a file may be unhashable.
DATA_OPCODES: Final = (Opcode.CONT, Opcode.TEXT, Opcode.BINARY)
CONTROL_OPCODES: Final = (Opcode.CLOSE, Opcode.PING, Opcode.PONG)
OPCODE_BITS: Final = 0x0F
"""The opcode's bits in a frame's first byte (FIN and RSV1-3 are the high four)."""

BASE_HEADER = 2
MASK_BYTES = 4
LEN16_LIMIT = 65535
LEN7_LIMIT = 125

ETHERNET_MSS = 1448
LOOPBACK_MSS = 65483
TCP_IP_HEADER_BYTES = 52


def ws_header_bytes(payload_len: int, masked: bool) -> int:
    """Header bytes of one RFC 6455 frame carrying ``payload_len`` bytes."""
    size = BASE_HEADER + (MASK_BYTES if masked else 0)
    if payload_len > LEN16_LIMIT:
        return size + 8
    if payload_len > LEN7_LIMIT:
        return size + 2
    return size


def ws_frame_bytes(payload_len: int, masked: bool) -> int:
    """Header plus payload of one frame."""
    return ws_header_bytes(payload_len, masked) + payload_len


def ws_header_bytes_array(
    payload_lens: npt.NDArray[np.int64], masked: bool
) -> npt.NDArray[np.int64]:
    """Vectorised :func:`ws_header_bytes` over many frames."""
    import numpy as np

    base = BASE_HEADER + (MASK_BYTES if masked else 0)
    extra = np.where(payload_lens > LEN16_LIMIT, 8, np.where(payload_lens > LEN7_LIMIT, 2, 0))
    return (base + extra).astype(np.int64)


@dataclass(frozen=True, slots=True)
class TcpModel:
    """Segmentation of writes into TCP segments.

    Attributes:
        mss: Largest TCP payload per segment.
        header_bytes: IP + TCP header bytes per segment.
    """

    mss: int = ETHERNET_MSS
    header_bytes: int = TCP_IP_HEADER_BYTES

    def segments(self, write_bytes: int) -> int:
        """Segments one write of ``write_bytes`` becomes (0 for an empty write)."""
        return -(-write_bytes // self.mss)

    def tcp_bytes(self, write_bytes: int) -> int:
        """Bytes on the wire (payload + per-segment headers) for one write."""
        return write_bytes + self.segments(write_bytes) * self.header_bytes

    def segments_array(self, write_bytes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Vectorised :meth:`segments`."""
        return -(-write_bytes // self.mss)
