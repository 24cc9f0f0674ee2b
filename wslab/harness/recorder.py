"""What each live process saw, and joining the two sides into the simulator's tables.

What lives here: :class:`Recorder`, the append-only logs a live server or client keeps
(every message handed to a send pipeline, every message taken out of a received frame, and
every data frame sent with its key, sizes and whether it was compressed: the live sequence
of compress/skip decisions, compared with the simulator's), their files, and
:func:`join_stream`, which pairs one direction's sent and received logs into per-message
rows with latency and integrity. Nothing here does I/O beyond writing and
reading those log files.

No tag is added to any message (so live byte counts stay comparable to the simulator's).
A received message is recognised by its content key (length, and the low 32 bits of its
xxh3 hash: twenty times cheaper than CRC-32 on a 64 KiB message) and matched to the
earliest unmatched message with that key on the same connection and direction; identical
messages are interchangeable, so matching them in order loses nothing. Both processes stamp
times with ``time.monotonic()``, one system-wide clock on Linux, so a latency is simply
receive time minus hand-off time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from xxhash import xxh3_64_intdigest

from wslab.metrics import integrity_counts
from wslab.tables import read_table, write_table

SENT_COLUMNS = ("conn", "dir", "index", "type", "priority", "seq", "t_handoff", "key", "size",
                "frame", "t_flushed")
RECV_COLUMNS = ("conn", "dir", "t_recv", "key", "size", "frame")
FRAME_COLUMNS = ("conn", "dir", "frame", "key", "payload_bytes", "wire_payload_bytes",
                 "compressed")


CONTENT_HASH = xxh3_64_intdigest
"""The content hash of message keys (inlined as ``(len << 32) | (CONTENT_HASH(p) & LOW32)``
where a call per message counts)."""
LOW32 = 0xFFFFFFFF


def message_key(payload: bytes) -> int:
    """A content key for matching: length in the high bits, a 32-bit hash in the low 32."""
    return (len(payload) << 32) | (xxh3_64_intdigest(payload) & LOW32)


def message_keys(parts: Sequence[tuple[bytes, bool]]) -> list[int]:
    """:func:`message_key` of each message of a batch frame (``(payload, is_text)``), with
    no call per message."""
    crc = CONTENT_HASH
    return [(len(p) << 32) | (crc(p) & LOW32) for p, _ in parts]


@dataclass(slots=True)
class Recorder:
    """Append-only logs of one process's sent and received messages."""

    sent: list[tuple[object, ...]] = field(default_factory=list)
    received: list[tuple[object, ...]] = field(default_factory=list)
    coded: list[tuple[object, ...]] = field(default_factory=list)
    keeps_frames: ClassVar[bool] = True

    def on_frame_coded(self, conn: str, direction: str, frame: int, key: str,
                       payload_bytes: int, wire_payload_bytes: int, compressed: bool) -> None:
        """A data frame left: its selector key, size before and after, compressed or not."""
        self.coded.append((conn, direction, frame, key, payload_bytes, wire_payload_bytes,
                           compressed))

    def on_sent(self, conn: str, direction: str, index: int, type: str, priority: str,
                seq: int, t_handoff: float, payload: bytes, frame: int,
                t_flushed: float) -> None:
        """A message left in a frame (hand-off time is when the app gave it over)."""
        self.sent.append((conn, direction, index, type, priority, seq, t_handoff,
                          message_key(payload), len(payload), frame, t_flushed))

    def on_sent_frame(self, conn: str, direction: str, messages: list[Any], frame: int,
                      t_flushed: float) -> None:
        """Every message of one frame that left (``messages`` are the pipeline's
        ``Pending`` records); the same rows as :meth:`on_sent`, in one pass."""
        crc = CONTENT_HASH
        if len(messages) == 1:
            m = messages[0]
            p = m.payload
            self.sent.append((conn, direction, m.index, m.type, m.priority, m.seq, m.t,
                              (len(p) << 32) | (crc(p) & LOW32), len(p), frame, t_flushed))
            return
        self.sent.extend(
            (conn, direction, m.index, m.type, m.priority, m.seq, m.t,
             (len(m.payload) << 32) | (crc(m.payload) & LOW32), len(m.payload), frame, t_flushed)
            for m in messages)

    def on_received_frame(self, conn: str, direction: str, t_recv: float,
                          payloads: list[tuple[bytes, bool]], frame: int) -> list[int]:
        """Every message taken out of one received frame; return their content keys."""
        crc = CONTENT_HASH
        if len(payloads) == 1:
            p = payloads[0][0]
            key = (len(p) << 32) | (crc(p) & LOW32)
            self.received.append((conn, direction, t_recv, key, len(p), frame))
            return [key]
        keys = message_keys(payloads)
        self.received.extend((conn, direction, t_recv, key, len(p), frame)
                             for key, (p, _) in zip(keys, payloads, strict=True))
        return keys

    def on_received(self, conn: str, direction: str, t_recv: float, payload: bytes,
                    frame: int) -> int:
        """A message came out of a received frame; return its content key."""
        key = message_key(payload)
        self.received.append((conn, direction, t_recv, key, len(payload), frame))
        return key

    def sent_frame(self) -> pd.DataFrame:
        """The sent log as a table."""
        return pd.DataFrame(self.sent, columns=list(SENT_COLUMNS))

    def received_frame(self) -> pd.DataFrame:
        """The received log as a table."""
        return pd.DataFrame(self.received, columns=list(RECV_COLUMNS))

    def coded_frame(self) -> pd.DataFrame:
        """The sent data frames, one row each, in the order they left per connection."""
        return pd.DataFrame(self.coded, columns=list(FRAME_COLUMNS))

    def save(self, directory: str | Path, prefix: str) -> None:
        """Write ``PREFIX-sent``, ``PREFIX-received`` and ``PREFIX-frames`` (``.parquet``)
        in ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        write_table(self.sent_frame(), d / f"{prefix}-sent.parquet")
        write_table(self.received_frame(), d / f"{prefix}-received.parquet")
        write_table(self.coded_frame(), d / f"{prefix}-frames.parquet")


@dataclass(slots=True)
class CountingRecorder(Recorder):
    """A recorder that keeps no rows, only how many messages went each way.

    For servers that run indefinitely or hold many connections (``wslab serve``, the scale
    workers): their integrity is checked at the clients, and a row per message would grow
    without bound (about 0.25 KiB per message: 2.5 MB per broadcast to 10,000 clients).
    Received messages still get their content keys, for hooks that match on them.
    """

    messages_sent: int = 0
    messages_received: int = 0
    keeps_frames: ClassVar[bool] = False

    def on_sent(self, conn: str, direction: str, index: int, type: str, priority: str,
                seq: int, t_handoff: float, payload: bytes, frame: int,
                t_flushed: float) -> None:
        """Count a message that left."""
        self.messages_sent += 1

    def on_sent_frame(self, conn: str, direction: str, messages: list[Any], frame: int,
                      t_flushed: float) -> None:
        """Count the messages of a frame that left."""
        self.messages_sent += len(messages)

    def on_received_frame(self, conn: str, direction: str, t_recv: float,
                          payloads: list[tuple[bytes, bool]], frame: int) -> list[int]:
        """Count the messages of a received frame; return their content keys."""
        self.messages_received += len(payloads)
        return message_keys(payloads)

    def on_received(self, conn: str, direction: str, t_recv: float, payload: bytes,
                    frame: int) -> int:
        """Count a received message; return its content key."""
        self.messages_received += 1
        return message_key(payload)


def load_logs(directory: str | Path, prefix: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the message logs :meth:`Recorder.save` wrote (sent, received)."""
    d = Path(directory)
    return (read_table(d / f"{prefix}-sent.parquet"),
            read_table(d / f"{prefix}-received.parquet"))


def load_coded_frames(directory: str | Path, prefix: str) -> pd.DataFrame:
    """Read the sent-frame log :meth:`Recorder.save` wrote."""
    return read_table(Path(directory) / f"{prefix}-frames.parquet")


def join_stream(sent: pd.DataFrame, received: pd.DataFrame) -> tuple[pd.DataFrame,
                                                                      dict[str, int]]:
    """Pair sent and received logs of one direction into per-message rows.

    Args:
        sent: Sent-log rows (any number of connections), in the order they left.
        received: Received-log rows for the same direction, in the order they arrived.

    Returns:
        One row per sent message with ``t_recv``, ``latency_ms`` and ``delivered``, and
        the integrity counts (``lost``, ``duplicated``, ``reordered``; a received message
        that matches nothing sent counts as duplicated).
    """
    t_recv = np.full(len(sent), np.nan)
    pending: dict[tuple[object, int], deque[int]] = {}
    conns = sent["conn"].to_numpy()
    keys = sent["key"].to_numpy()
    for pos in range(len(sent)):
        pending.setdefault((conns[pos], int(keys[pos])), deque()).append(pos)
    prio = sent["priority"].to_numpy()
    seq = sent["seq"].to_numpy()
    order: list[tuple[Hashable, int]] = []
    unmatched = 0
    r_conn = received["conn"].to_numpy()
    r_key = received["key"].to_numpy()
    r_time = received["t_recv"].to_numpy()
    for j in range(len(received)):
        queue = pending.get((r_conn[j], int(r_key[j])))
        if not queue:
            unmatched += 1
            continue
        pos = queue.popleft()
        t_recv[pos] = r_time[j]
        order.append(((conns[pos], prio[pos]), int(seq[pos])))
    expected: dict[Hashable, int] = {}
    for c, p in zip(conns, prio, strict=True):
        expected[(c, p)] = expected.get((c, p), 0) + 1
    counts = integrity_counts(order, expected)
    counts["duplicated"] += unmatched
    rows = sent.assign(t_recv=t_recv, latency_ms=(t_recv - sent["t_handoff"]) * 1e3,
                       delivered=~np.isnan(t_recv))
    return rows, counts
