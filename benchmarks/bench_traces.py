"""Trace loading and writing speed, against a bare ``json.loads`` loop on the same file.

For each bundled-style trace (text-heavy ``mixed`` and binary ``sensor``) in both ``.jsonl``
and ``.jsonl.zst``, the peer is the least work any reader must do: open the same file
(decompressing it the same way) and call ``json.loads`` on every line, building nothing and
checking nothing. wslab's :func:`read_trace` also validates every field, decodes base64 and
builds :class:`Message` objects. The target is an absolute one: at least 200,000 messages
per second loaded; the ratio shows what validation and object building cost. Reads are
the median of alternating runs (wslab, peer, wslab, peer, ...; 3 in quick mode, 5 in the
full run); the write figure, which has no peer, the median of as many runs.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import zstandard

from wslab.traces.generators import generate
from wslab.traces.io import read_trace, write_trace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating, main, row

TARGET_MSG_S = 200_000


def _bare_json_loop(path: Path) -> int:
    """Parse every line with the standard ``json.loads``; nothing else."""
    loads = json.loads
    n = 0
    with open(path, "rb") as raw:
        stream: Any = raw
        if path.name.endswith(".zst"):
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            stream = io.BufferedReader(reader, buffer_size=1 << 16)
        for line in stream:
            loads(line)
            n += 1
    return n


def run(quick: bool) -> list[dict[str, Any]]:
    """Measure load (and write) throughput; see the module docstring."""
    count = 20_000 if quick else 200_000
    repeats = 3 if quick else 5
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("mixed", "sensor"):
            trace = generate(kind, count, seed=0)
            for suffix in (".jsonl", ".jsonl.zst"):
                path = Path(tmp) / f"{kind}{suffix}"
                [write_s] = alternating([lambda p=path, tr=trace: write_trace(tr, p)],
                                        repeats)
                lines = _bare_json_loop(path)  # header + messages
                ours, bare = alternating([lambda p=path: read_trace(p),
                                          lambda p=path: _bare_json_loop(p)], repeats)
                ours_rate, bare_rate = count / ours, lines / bare
                rows.append(row(
                    "traces", f"load {kind}{suffix}", ours_rate, "msg/s",
                    peer="bare json.loads per line", peer_value=bare_rate,
                    target=f">= {TARGET_MSG_S} msg/s", ok=ours_rate >= TARGET_MSG_S,
                    messages=count, file_bytes=path.stat().st_size,
                ))
                rows.append(row(
                    "traces", f"write {kind}{suffix}", count / write_s, "msg/s",
                    messages=count,
                ))
    return rows


if __name__ == "__main__":
    main(run)
