"""What the load client saw, kept in columns: no object per message while it runs.

What lives here: :class:`ConnectionLog`, one connection's three logs (messages it sent,
messages it received, data frames it sent) as preallocated ``array.array`` columns, and
:class:`ColumnRecorder`, which holds every connection's log and gives back the very tables
of :class:`~wslab.harness.recorder.Recorder` (``sent_frame``, ``received_frame``,
``coded_frame``, ``save``), so ``join_stream`` and ``wslab bench`` read them unchanged.
What must not live here: sockets, the clock, frame parsing (``loadconn.py``).

Only what the connection alone knows is stored while it runs (per sent message: trace
index, sequence number, hand-off time, frame number, flush time; per received message:
receive time, content key, frame number). What the trace already knows (a sent message's
type, priority, size and content key) is looked up by index when the tables are built, one
CRC per trace message rather than one per send.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from wslab.harness.recorder import (
    CONTENT_HASH,
    FRAME_COLUMNS,
    LOW32,
    RECV_COLUMNS,
    SENT_COLUMNS,
)
from wslab.tables import write_table
from wslab.traces.model import Message

_COLUMN_TYPES = {"sent_index": "q", "sent_seq": "q", "sent_t": "d", "sent_frame": "q",
                 "sent_flushed": "d", "recv_t": "d", "recv_key": "q", "recv_frame": "q",
                 "coded_key": "i", "coded_payload": "q", "coded_wire": "q",
                 "coded_compressed": "b"}
"""Every column of a connection's log and its ``array`` type code."""


def _zeros(code: str, n: int) -> array[Any]:
    # Repeating a one-element array fills it with a few memcpy calls; building it from
    # bytes(n) zeroes a second buffer and copies it over, ~40x dearer at 50,000 rows.
    return array(code, [0]) * n


class ConnectionLog:
    """One connection's logs, in columns sized up front and doubled when full.

    Args:
        sent: Messages it expects to send (room reserved; more still fit).
        received: Messages it expects to receive.
    """

    __slots__ = ("coded_n", "frame_keys", "recv_n", "sent_n", *_COLUMN_TYPES)

    sent_index: array[int]
    sent_seq: array[int]
    sent_t: array[float]
    sent_frame: array[int]
    sent_flushed: array[float]
    recv_t: array[float]
    recv_key: array[int]
    recv_frame: array[int]
    coded_key: array[int]
    coded_payload: array[int]
    coded_wire: array[int]
    coded_compressed: array[int]

    def __init__(self, sent: int = 0, received: int = 0) -> None:
        sizes = {"sent": max(16, sent), "recv": max(16, received), "coded": max(16, sent)}
        for name, code in _COLUMN_TYPES.items():
            setattr(self, name, _zeros(code, sizes[name.split("_")[0]]))
        self.sent_n = self.recv_n = self.coded_n = 0
        self.frame_keys: dict[str, int] = {}

    def _grow(self, prefix: str) -> None:
        for name in _COLUMN_TYPES:
            if name.startswith(prefix + "_"):
                col = getattr(self, name)
                col.extend(_zeros(col.typecode, len(col)))

    def on_sent(self, frames: Sequence[Any],
                wires: Sequence[int | None] | None = None) -> int:
        """Data frames that left, in order, logged in one call: each has ``messages``
        (pipeline ``Pending`` records), ``flushed_at`` (when it was released), ``key`` (its
        selector key) and ``payload``; ``wires`` gives each one's compressed size, None for
        a frame sent as it was (None alone: every frame was). A frame's number is its
        position in this log. Returns how many messages the frames carried."""
        frame = self.coded_n
        while frame + len(frames) > len(self.coded_wire):
            self._grow("coded")
        n = self.sent_n
        codes = self.frame_keys
        ck, cp, cw, cc = (self.coded_key, self.coded_payload, self.coded_wire,
                          self.coded_compressed)
        index, seq, t, fr, fl = (self.sent_index, self.sent_seq, self.sent_t,
                                 self.sent_frame, self.sent_flushed)
        room = len(t)
        sizes: Iterable[int | None] = itertools.repeat(None) if wires is None else wires
        for f, wire in zip(frames, sizes, strict=False):  # sizes may repeat None forever
            code = codes.get(f.key)
            if code is None:
                code = codes[f.key] = len(codes)
            ck[frame] = code
            cp[frame] = size = len(f.payload)
            if wire is None:
                cw[frame] = size  # coded_compressed stays 0
            else:
                cw[frame] = wire
                cc[frame] = 1
            messages = f.messages
            if n + len(messages) > room:
                self.sent_n = n
                while n + len(messages) > len(self.sent_t):
                    self._grow("sent")
                index, seq, t, fr, fl = (self.sent_index, self.sent_seq, self.sent_t,
                                         self.sent_frame, self.sent_flushed)
                room = len(t)
            flushed = f.flushed_at
            for m in messages:
                index[n] = m.index
                seq[n] = m.seq
                t[n] = m.t
                fr[n] = frame
                fl[n] = flushed
                n += 1
            frame += 1
        carried = n - self.sent_n
        self.coded_n = frame
        self.sent_n = n
        return carried

    def sent_frame_totals(self, masked: bool) -> dict[str, int]:
        """What the data frames sent so far came to: frames, bytes on the wire (headers
        included), payload bytes and compressed frames, as ``FrameTally`` names them."""
        wire = np.frombuffer(self.coded_wire, dtype=np.int64)[:self.coded_n]
        headers = (2 + 2 * (wire >= 126) + 6 * (wire >= 65536) + (4 if masked else 0))
        return {"data_frames": self.coded_n, "data_bytes": int((wire + headers).sum()),
                "data_payload_bytes": int(wire.sum()),
                "compressed_frames": int(np.count_nonzero(
                    np.frombuffer(self.coded_compressed, dtype=np.int8)[:self.coded_n]))}

    def on_received(self, t: float, key: int, frame: int) -> None:
        """One message taken out of a received frame."""
        n = self.recv_n
        if n == len(self.recv_t):
            self._grow("recv")
        self.recv_t[n] = t
        self.recv_key[n] = key
        self.recv_frame[n] = frame
        self.recv_n = n + 1

    def on_received_many(self, t: float, keys: list[int], frame: int) -> None:
        """The messages of one received batch frame, all at ``t``."""
        n, k = self.recv_n, len(keys)
        while n + k > len(self.recv_t):
            self._grow("recv")
        self.recv_t[n:n + k] = array("d", (t,)) * k
        self.recv_key[n:n + k] = array("q", keys)
        self.recv_frame[n:n + k] = array("q", (frame,)) * k
        self.recv_n = n + k

    def column(self, name: str) -> np.ndarray[Any, Any]:
        """A column's filled part as a numpy array (a copy: the log may still grow)."""
        used = {"sent": self.sent_n, "recv": self.recv_n, "coded": self.coded_n}
        col = getattr(self, name)
        return np.frombuffer(col, dtype=col.typecode)[:used[name.split("_")[0]]].copy()


class ColumnRecorder:
    """Every connection's :class:`ConnectionLog`, read back as the recorder's tables.

    Args:
        messages: The trace's messages, by the index the connections send them under.
        sent_dir: Direction of what this side sends (``c2s`` for a client).
        received_dir: Direction of what it receives.
    """

    keeps_frames: ClassVar[bool] = True

    def __init__(self, messages: Sequence[Message], sent_dir: str = "c2s",
                 received_dir: str = "s2c") -> None:
        self.messages = messages
        self.sent_dir = sent_dir
        self.received_dir = received_dir
        self.logs: list[tuple[str, ConnectionLog]] = []

    def new_log(self, conn: str, sent: int = 0, received: int = 0) -> ConnectionLog:
        """A log for connection ``conn``, kept here."""
        log = ConnectionLog(sent, received)
        self.logs.append((conn, log))
        return log

    def _conn_column(self, counts: list[int]) -> pd.Categorical:
        labels = [conn for conn, _ in self.logs]
        codes = np.repeat(np.arange(len(labels)), counts)
        return pd.Categorical.from_codes(codes, categories=pd.Index(labels, dtype=object))

    def sent_frame(self) -> pd.DataFrame:
        """The sent log as a table (the columns of ``Recorder.sent_frame``)."""
        index = self._concat("sent_index")
        messages = self.messages
        used = np.unique(index)
        sizes = np.zeros(len(messages) or 1, dtype=np.int64)
        keys = np.zeros(len(messages) or 1, dtype=np.int64)
        for i in used.tolist():
            payload = messages[i].payload
            sizes[i] = len(payload)
            keys[i] = (len(payload) << 32) | (CONTENT_HASH(payload) & LOW32)
        types = np.array([m.type for m in messages] or ["-"], dtype=object)
        prios = np.array([str(m.priority) for m in messages] or ["-"], dtype=object)
        table = {
            "conn": np.asarray(self._conn_column([log.sent_n for _, log in self.logs]),
                               dtype=object),
            "dir": self.sent_dir, "index": index, "type": types[index],
            "priority": prios[index], "seq": self._concat("sent_seq"),
            "t_handoff": self._concat("sent_t"), "key": keys[index], "size": sizes[index],
            "frame": self._concat("sent_frame"), "t_flushed": self._concat("sent_flushed"),
        }
        return pd.DataFrame(table, columns=list(SENT_COLUMNS))

    def received_frame(self) -> pd.DataFrame:
        """The received log as a table (the columns of ``Recorder.received_frame``)."""
        key = self._concat("recv_key")
        table = {
            "conn": np.asarray(self._conn_column([log.recv_n for _, log in self.logs]),
                               dtype=object),
            "dir": self.received_dir, "t_recv": self._concat("recv_t"), "key": key,
            "size": key >> 32, "frame": self._concat("recv_frame"),
        }
        return pd.DataFrame(table, columns=list(RECV_COLUMNS))

    def coded_frame(self) -> pd.DataFrame:
        """The sent data frames, one row each, in the order they left per connection."""
        keys: list[str] = []
        for _, log in self.logs:
            names = {code: key for key, code in log.frame_keys.items()}
            keys += [names[int(c)] for c in log.column("coded_key")]
        counts = [log.coded_n for _, log in self.logs]
        frame = np.concatenate([np.arange(n, dtype=np.int64) for n in counts] or
                               [np.zeros(0, dtype=np.int64)])
        table = {
            "conn": np.asarray(self._conn_column(counts), dtype=object),
            "dir": self.sent_dir, "frame": frame, "key": np.array(keys, dtype=object),
            "payload_bytes": self._concat("coded_payload"),
            "wire_payload_bytes": self._concat("coded_wire"),
            "compressed": self._concat("coded_compressed").astype(bool),
        }
        return pd.DataFrame(table, columns=list(FRAME_COLUMNS))

    def _concat(self, name: str) -> np.ndarray[Any, Any]:
        parts = [log.column(name) for _, log in self.logs]
        if not parts:
            return np.zeros(0, dtype=_COLUMN_TYPES[name])
        return np.concatenate(parts)

    def save(self, directory: str | Path, prefix: str) -> None:
        """Write ``PREFIX-sent``, ``PREFIX-received`` and ``PREFIX-frames`` (``.parquet``)
        in ``directory``, as :meth:`Recorder.save` does."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        write_table(self.sent_frame(), d / f"{prefix}-sent.parquet")
        write_table(self.received_frame(), d / f"{prefix}-received.parquet")
        write_table(self.coded_frame(), d / f"{prefix}-frames.parquet")
