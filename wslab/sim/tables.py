"""Stage 3 of a simulated stream, and the join: frames priced and delivered, then tables.

What lives here: :func:`stream_arrays`, which prices a stream's frames (``wire.py``),
delivers them over the link (``link.py``) behind a serial sender CPU and works out every
message's latency parts and integrity, all as numpy arrays (:class:`StreamArrays`); and
:func:`join_tables`, which lays every stream's arrays into the run's two tables at once:
the message table in trace order (each stream's rows scattered to their trace indices, no
concat and sort) and the frame table stream by stream.

What must not live here: running the pipeline or the codecs (``coding.py``), the summary
(``wslab/metrics.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from wslab.link import LinkModel, LinkProfile
from wslab.metrics import integrity_arrays
from wslab.pipeline import FrameColumns
from wslab.sim.coding import CodedFrames
from wslab.sim.inputs import PRIORITY_CODES, StreamInput, TraceColumns
from wslab.wire import ws_header_bytes_array

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

MESSAGE_FLOATS = ("t_sent", "batch_wait_ms", "compression_ms", "queue_ms",
                  "serialisation_ms", "propagation_ms", "decompression_ms", "latency_ms")
"""Float columns of the message table, in table order (after ``frame``)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a stream goes and how: its link, link seed, first frame number, and whether
    the peer checked what it read (integrity counted)."""

    profile: LinkProfile
    seed: int
    frame_base: int
    verify: bool


@dataclass(slots=True)
class StreamArrays:
    """One stream's rows as arrays: messages in stream order, frames in release order."""

    stream: StreamInput
    seq: Ints
    frame: Ints
    floats: dict[str, Floats]
    delivered: npt.NDArray[np.bool_]
    frames: FrameColumns
    frame_cols: dict[str, npt.NDArray[np.generic]]
    dropped: int
    integrity: dict[str, int]


def stream_arrays(stream: StreamInput, frames: FrameColumns, coded: CodedFrames,
                  delivery: Delivery) -> StreamArrays:
    """Price and deliver a stream's frames; every message's latency parts and integrity."""
    nf = len(frames)
    n = len(stream)
    direction = stream.direction
    profile = delivery.profile
    wire_len = coded.wire_len
    enc_us = coded.encode_ns.astype(np.float64) / 1e3
    dec_us = coded.decode_ns.astype(np.float64) / 1e3
    payload_len = coded.payload_len
    ws_bytes = wire_len + ws_header_bytes_array(wire_len, direction == "c2s")
    tcp = profile.tcp()
    segments = tcp.segments_array(ws_bytes)
    tcp_bytes = ws_bytes + segments * tcp.header_bytes
    flushed = np.asarray(frames.flushed_at, dtype=np.float64)
    # The sender's CPU is serial: ready_k = max(flushed_k, ready_{k-1}) + cpu_k.
    cpu_s = enc_us / 1e6
    cum = np.cumsum(cpu_s)
    ready = cum + np.maximum.accumulate(flushed - (cum - cpu_s)) if nf else flushed
    tx = LinkModel(profile, direction, delivery.seed).transmit(ready, tcp_bytes, segments)

    counts = np.asarray(frames.count, dtype=np.int64)
    where = np.searchsorted(stream.index, np.asarray(frames.index, dtype=np.int64))
    frame_of = np.full(n, -1, dtype=np.int64)
    frame_of[where] = np.repeat(np.arange(nf, dtype=np.int64), counts)
    sent = frame_of >= 0
    dropped = int(n - sent.sum())
    seq = np.empty(n, dtype=np.int64)
    seq[where] = np.asarray(frames.seq, dtype=np.int64)
    for pm in frames.dropped:
        seq[int(np.searchsorted(stream.index, pm.index))] = pm.seq
    prio_code = stream.prio_code
    intact = np.zeros(n, dtype=bool)
    intact[where] = coded.intact
    if delivery.verify:
        ok_rows = where[coded.intact]
        expected = np.bincount(prio_code, minlength=3)
        expected -= np.bincount(prio_code[~sent], minlength=3)
        integrity = integrity_arrays(prio_code[ok_rows], seq[ok_rows], expected)
    else:
        integrity = {"lost": 0, "duplicated": 0, "reordered": 0}
    fk = np.where(sent, frame_of, 0)
    t_sent = stream.t.copy()
    arrival = tx.arrival[fk] + dec_us[fk] / 1e6 if nf else np.zeros(n)
    nan = np.nan

    def per_msg(values: Floats) -> Floats:
        return np.where(sent, values[fk], nan) if nf else np.full(n, nan)

    floats = {
        "t_sent": t_sent,
        "batch_wait_ms": (per_msg(flushed) - t_sent) * 1e3,
        "compression_ms": per_msg(ready - flushed) * 1e3,
        "queue_ms": per_msg(tx.queue_wait) * 1e3,
        "serialisation_ms": per_msg(tx.serialisation) * 1e3,
        "propagation_ms": per_msg(tx.arrival - tx.start - tx.serialisation) * 1e3,
        "decompression_ms": per_msg(dec_us / 1e3),
        "latency_ms": (np.where(sent, arrival, nan) - t_sent) * 1e3,
    }
    frame_cols: dict[str, npt.NDArray[np.generic]] = {
        "messages": counts,
        "payload_bytes": payload_len,
        "wire_payload_bytes": wire_len,
        "ws_bytes": ws_bytes,
        "tcp_bytes": tcp_bytes,
        "tcp_segments": segments,
        "compressed": coded.compressed,
        "compress_us": enc_us,
        "decompress_us": dec_us,
        "t_flushed": flushed,
        "t_arrival": tx.arrival,
    }
    return StreamArrays(
        stream=stream, seq=seq,
        frame=np.where(sent, frame_of + delivery.frame_base, -1),
        floats=floats, delivered=intact if delivery.verify else sent,
        frames=frames, frame_cols=frame_cols, dropped=dropped, integrity=integrity)


def join_tables(parts: list[StreamArrays], n_messages: int,
                text: TraceColumns) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The run's message table (trace order) and frame table (stream by stream)."""
    n = n_messages
    size = np.empty(n, dtype=np.int64)
    prio = np.empty(n, dtype=np.int64)
    seq = np.empty(n, dtype=np.int64)
    frame = np.empty(n, dtype=np.int64)
    delivered = np.empty(n, dtype=bool)
    floats = {name: np.empty(n, dtype=np.float64) for name in MESSAGE_FLOATS}
    for part in parts:
        at = part.stream.index
        size[at] = part.stream.size
        prio[at] = part.stream.prio_code
        seq[at] = part.seq
        frame[at] = part.frame
        delivered[at] = part.delivered
        for name, values in part.floats.items():
            floats[name][at] = values
    messages = pd.DataFrame({
        "index": np.arange(n, dtype=np.int64),
        "conn": text.conn.copy(),
        "dir": text.dir.copy(),
        "type": text.type.copy(),
        "priority": pd.Categorical.from_codes(prio, categories=pd.Index(list(PRIORITY_CODES))),
        "size": size,
        "seq": seq,
        "frame": frame,
        **floats,
        "delivered": delivered,
    }, copy=False)
    return messages, _frame_table(parts, text.type)


def _keys(part: StreamArrays, types: pd.api.extensions.ExtensionArray,
          ) -> pd.api.extensions.ExtensionArray:
    """A stream's frame keys: its messages' types when every frame is one message in
    stream order (a frame's key is then its message's type), else from the keys."""
    frames, stream = part.frames, part.stream
    if len(frames) == len(stream) and frames.index == stream.messages.index:
        return types.take(stream.index)
    return _factorised(frames.key)


def _frame_table(parts: list[StreamArrays],
                 types: pd.api.extensions.ExtensionArray) -> pd.DataFrame:
    nf = sum(len(p.frames) for p in parts)
    streams = [(p.stream.conn, p.stream.direction) for p in parts]
    which = np.repeat(np.arange(len(parts)), [len(p.frames) for p in parts])
    keys: list[pd.api.extensions.ExtensionArray] = []
    reasons: list[str] = []
    for p in parts:
        keys.append(_keys(p, types))
        reasons += p.frames.reason
    names = list(parts[0].frame_cols)
    cols = {name: np.concatenate([p.frame_cols[name] for p in parts]) for name in names}
    return pd.DataFrame({
        "frame": np.arange(nf, dtype=np.int64),
        "conn": _strings([c for c, _ in streams], which),
        "dir": _strings([d for _, d in streams], which),
        "key": keys[0] if len(keys) == 1 else pd.concat(
            [pd.Series(k, copy=False) for k in keys], ignore_index=True).array,
        **cols,
        "reason": _factorised(reasons),
        "opcode": np.concatenate([np.asarray(p.frames.opcode, dtype=np.int64)
                                  for p in parts]),
    }, copy=False)


def _factorised(values: list[str]) -> pd.api.extensions.ExtensionArray:
    if values and values.count(values[0]) == len(values):  # one value throughout
        return _strings(values[:1], np.zeros(len(values), dtype=np.intp))
    code = {v: i for i, v in enumerate(dict.fromkeys(values))}
    codes = np.fromiter(map(code.__getitem__, values), dtype=np.intp, count=len(values))
    return _strings(list(code), codes)


def _strings(distinct: list[str], codes: npt.NDArray[np.intp]) -> pd.api.extensions.ExtensionArray:
    return pd.array(distinct, dtype="str").take(codes)
