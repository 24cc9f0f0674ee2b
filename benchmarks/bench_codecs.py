"""Codec speed against peers: wslab's deflate vs python-websockets', wslab's zstd vs bare zstandard.

Each row times the same message stream through wslab's codec and through the peer, side by
side in this run, and reports microseconds per message: the median of alternating runs
(ours, peer, ours, peer, ...; 3 in quick mode, 5 in the full run). The targets bound what
wslab's extra work costs: deflate bomb checks and BFINAL history (on par with websockets), and zstd
block walking for bounded, exact decoding (a fixed 1-2 us per message over an unbounded
``decompressobj``, which on its own would lose output past 16 KiB or swallow a bomb).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import zstandard
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating, main, row

from wslab.codecs import DeflateDecoder, DeflateEncoder, ZstdDecoder, ZstdEncoder

MAX_SIZE = 1 << 20


def _stream(n: int) -> list[bytes]:
    rng = random.Random(1)
    users = ["ana", "bo", "chen", "dara"]
    return [json.dumps({"type": "chat.message", "seq": i, "user": rng.choice(users),
                        "text": "hello " * rng.randint(1, 30)}).encode() for i in range(n)]


def _deflate_rows(messages: list[bytes], repeats: int) -> list[dict[str, Any]]:
    n = len(messages)

    def ours_encode() -> list[bytes]:
        enc = DeflateEncoder(12, 5, 6)
        return [enc.encode(m) for m in messages]

    def theirs_encode() -> list[bytes]:
        ext = PerMessageDeflate(False, False, 15, 12, {"memLevel": 5, "level": 6})
        return [bytes(ext.encode(Frame(Opcode.TEXT, m)).data) for m in messages]

    payloads = ours_encode()
    assert payloads == theirs_encode()

    def ours_decode() -> None:
        dec = DeflateDecoder(12)
        for p in payloads:
            dec.decode(p, max_size=MAX_SIZE)

    def theirs_decode() -> None:
        ext = PerMessageDeflate(False, False, 12, 15)
        for p in payloads:
            ext.decode(Frame(Opcode.TEXT, p, rsv1=True), max_size=MAX_SIZE)

    rows = []
    for metric, ours, theirs, bound in [("encode", ours_encode, theirs_encode, 1.3),
                                        ("decode", ours_decode, theirs_decode, 1.5)]:
        us, peer = (s / n * 1e6 for s in alternating([ours, theirs], repeats))
        rows.append(row("codecs", f"deflate_{metric}_us_per_msg", us, "us",
                        peer="websockets PerMessageDeflate", peer_value=peer,
                        target=f"<= {bound}x peer", ok=us <= bound * peer,
                        note=f"median of {max(3, repeats)} alternating runs"))
    return rows


def _zstd_rows(messages: list[bytes], repeats: int) -> list[dict[str, Any]]:
    n = len(messages)
    enc = ZstdEncoder(3, stream=True)
    payloads = [enc.encode(m) for m in messages]

    def ours() -> None:
        dec = ZstdDecoder(stream=True)
        for p in payloads:
            dec.decode(p, max_size=MAX_SIZE)

    def bare() -> None:  # unbounded: no max_size check at all
        dobj = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)
        for p in payloads:
            dobj.decompress(p)

    us, peer = (s / n * 1e6 for s in alternating([ours, bare], repeats))
    return [row("codecs", "zstd_stream_decode_us_per_msg", us, "us",
                peer="zstandard decompressobj (unbounded)", peer_value=peer,
                target="block walking adds <= 3 us per message",
                ok=us - peer <= 3.0, note=f"median of {max(3, repeats)} alternating runs")]


def run(quick: bool) -> list[dict[str, Any]]:
    """Rows comparing wslab's codecs with their peers on a chat-like stream."""
    messages = _stream(500 if quick else 5000)
    repeats = 3 if quick else 5
    return _deflate_rows(messages, repeats) + _zstd_rows(messages, repeats)


if __name__ == "__main__":
    main(run)
