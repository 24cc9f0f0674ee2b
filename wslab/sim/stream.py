"""One simulated stream: a (connection, direction) of the trace, in three stages.

What lives here: :func:`simulate_stream`, which runs one sending side of one connection
through

1. **the pipeline** (:func:`release_frames`): every message pushed at its trace time into
   the shared :class:`~wslab.pipeline.SendPipeline`, which also releases the batches due
   before it (the live session drives it the same way, on the event loop's clock);
2. **the codecs** (:func:`code_frames`): every frame, in release order, through a
   :class:`~wslab.compressor.FrameCompressor` (decide, compress, feed the size back, the
   live extensions' order too), then the real decoder and the envelope decoder, so
   integrity is checked rather than assumed;
3. **the tables** (:func:`stream_tables`): frames priced by ``wire.py``, delivered by
   ``link.py`` behind a serial sender CPU, and one row per message and per frame.

What must not live here: grouping the trace into streams and joining them (``__init__``),
choosing dictionaries (``dictionaries.py``), I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wslab import envelopes
from wslab.codecs.base import MessageDecoder, MessageEncoder
from wslab.compressor import FrameCompressor
from wslab.config import TuningConfig
from wslab.link import LinkModel, LinkProfile
from wslab.metrics import integrity_arrays
from wslab.pipeline import OutFrame, SendPipeline
from wslab.traces.model import Message
from wslab.wire import ws_header_bytes_array

CodecFactory = Callable[[str], tuple[MessageEncoder | None, MessageDecoder | None]]
"""Side ("server" or "client") -> the encoder it sends with and the decoder its peer uses."""

_PRIORITY_CODES = {"critical": 0, "normal": 1, "background": 2}


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Where one stream sits and how to run it.

    Attributes:
        conn: The trace's connection label ("" when the trace has one connection).
        direction: ``s2c`` or ``c2s``.
        profile: The link the frames cross.
        seed: Seed of this stream's link jitter and loss.
        verify: Decode every frame and count integrity (costs the decoder's CPU time).
        frame_base: Number of the stream's first frame in the run's frame table.
    """

    conn: str
    direction: str
    profile: LinkProfile
    seed: int
    verify: bool = True
    frame_base: int = 0


@dataclass(slots=True)
class StreamResult:
    """One stream's rows, the messages the batcher dropped and its integrity counts."""

    messages: pd.DataFrame
    frames: pd.DataFrame
    dropped: int
    integrity: dict[str, int]


@dataclass(slots=True)
class CodedFrames:
    """What the codec stage measured, per frame and per message as the peer read them."""

    wire_len: list[int] = field(default_factory=list)
    encode_ns: list[int] = field(default_factory=list)
    decode_ns: list[int] = field(default_factory=list)
    compressed: list[bool] = field(default_factory=list)
    got_index: list[int] = field(default_factory=list)  # trace index of each message read
    got_frame: list[int] = field(default_factory=list)  # its frame (within the stream)
    got_ok: list[bool] = field(default_factory=list)  # it came out intact
    got_seq: list[int] = field(default_factory=list)
    got_prio: list[str] = field(default_factory=list)


def release_frames(messages: list[Message], indices: list[int],
                   pipe: SendPipeline) -> list[OutFrame]:
    """Stage 1: the frames the pipeline releases for these messages, in release order."""
    frames: list[OutFrame] = []
    for i in indices:
        m = messages[i]
        frames += pipe.push(i, m.t, m.priority, m.type, m.payload, m.is_text)
    if indices:
        frames += pipe.finish(messages[indices[-1]].t)
    return frames


def code_frames(frames: list[OutFrame], compressor: FrameCompressor | None,
                decoder: MessageDecoder | None, envelope: str | None,
                verify: bool) -> CodedFrames:
    """Stage 2: compress (or not) and decode every frame in order; unwrap as the peer."""
    out = CodedFrames()
    perf = time.perf_counter_ns
    for k, f in enumerate(frames):
        payload = f.payload
        coded = compressor.encode(payload, f.key) if compressor is not None else None
        squeezed = coded is not None
        wire = coded if coded is not None else payload
        out.wire_len.append(len(wire))
        out.encode_ns.append(compressor.last_ns if compressor is not None else 0)
        out.compressed.append(squeezed)
        back = 0
        if verify:
            body = wire
            if squeezed and decoder is not None:
                t0 = perf()
                body = decoder.decode(wire)
                back = perf() - t0
            _unwrap(f, body, envelope, k, out)
        else:
            for pm in f.messages:
                out.got_index.append(pm.index)
                out.got_frame.append(k)
                out.got_ok.append(True)
        for pm in f.messages:
            out.got_seq.append(pm.seq)
            out.got_prio.append(pm.priority)
        out.decode_ns.append(back)
    return out


def _unwrap(frame: OutFrame, body: bytes, envelope: str | None, k: int,
            out: CodedFrames) -> None:
    """Unwrap a decoded frame as the peer would; record which messages came out intact."""
    msgs = frame.messages
    if envelope is None:
        pm = msgs[0]
        out.got_index.append(pm.index)
        out.got_frame.append(k)
        out.got_ok.append(body == pm.payload)
        return
    parts = envelopes.decode(envelope, body)
    whole = len(parts) == len(msgs)
    for j, pm in enumerate(msgs):
        out.got_index.append(pm.index)
        out.got_frame.append(k)
        out.got_ok.append(whole and parts[j] == (pm.payload, pm.is_text))


def simulate_stream(messages: list[Message], indices: list[int], config: TuningConfig,
                    envelope: str | None, codecs: CodecFactory,
                    opts: StreamOptions) -> StreamResult:
    """One (connection, direction) of the trace through the three stages."""
    side = "server" if opts.direction == "s2c" else "client"
    pipe = SendPipeline(config, envelope=envelope)
    encoder, decoder = codecs(side)
    compressor = (FrameCompressor.from_config(config.compression, lambda: encoder)
                  if encoder is not None else None)
    frames = release_frames(messages, indices, pipe)
    coded = code_frames(frames, compressor, decoder, envelope, opts.verify)
    return stream_tables(messages, indices, frames, coded, pipe, opts)


def stream_tables(messages: list[Message], indices: list[int], frames: list[OutFrame],
                  coded: CodedFrames, pipe: SendPipeline,
                  opts: StreamOptions) -> StreamResult:
    """Stage 3: price and deliver the frames; one row per message and per frame."""
    nf = len(frames)
    n = len(indices)
    direction = opts.direction
    profile = opts.profile
    wire_len = np.asarray(coded.wire_len, dtype=np.int64)
    enc_us = np.asarray(coded.encode_ns, dtype=np.float64) / 1e3
    dec_us = np.asarray(coded.decode_ns, dtype=np.float64) / 1e3
    payload_len = np.fromiter((len(f.payload) for f in frames), dtype=np.int64, count=nf)
    ws_bytes = wire_len + ws_header_bytes_array(wire_len, direction == "c2s")
    tcp = profile.tcp()
    segments = tcp.segments_array(ws_bytes)
    tcp_bytes = ws_bytes + segments * tcp.header_bytes
    flushed = np.fromiter((f.flushed_at for f in frames), dtype=np.float64, count=nf)
    # The sender's CPU is serial: ready_k = max(flushed_k, ready_{k-1}) + cpu_k.
    cpu_s = enc_us / 1e6
    cum = np.cumsum(cpu_s)
    ready = cum + np.maximum.accumulate(flushed - (cum - cpu_s)) if nf else flushed
    tx = LinkModel(profile, direction, opts.seed).transmit(ready, tcp_bytes, segments)

    index_arr = np.asarray(indices, dtype=np.int64)
    where = np.searchsorted(index_arr, np.asarray(coded.got_index, dtype=np.int64))
    frame_of = np.full(n, -1, dtype=np.int64)
    frame_of[where] = np.asarray(coded.got_frame, dtype=np.int64)
    intact = np.zeros(n, dtype=bool)
    intact[where] = np.asarray(coded.got_ok, dtype=bool)
    sent = frame_of >= 0
    dropped = int(n - sent.sum())
    codes = _PRIORITY_CODES
    seq = np.empty(n, dtype=np.int64)
    prio_code = np.empty(n, dtype=np.int64)
    seq[where] = np.asarray(coded.got_seq, dtype=np.int64)
    prio_code[where] = np.fromiter((codes[p] for p in coded.got_prio), dtype=np.int64,
                                   count=len(coded.got_prio))
    for pm in pipe.dropped:
        j = int(np.searchsorted(index_arr, pm.index))
        seq[j] = pm.seq
        prio_code[j] = codes[pm.priority]
    if opts.verify:
        ok_rows = where[np.asarray(coded.got_ok, dtype=bool)]
        expected = np.bincount(prio_code, minlength=3)
        expected -= np.bincount(prio_code[~sent], minlength=3)
        integrity = integrity_arrays(prio_code[ok_rows], seq[ok_rows], expected)
    else:
        integrity = {"lost": 0, "duplicated": 0, "reordered": 0}
    fk = np.where(sent, frame_of, 0)
    t_sent = np.fromiter((messages[i].t for i in indices), dtype=np.float64, count=n)
    arrival = tx.arrival[fk] + dec_us[fk] / 1e6 if nf else np.zeros(n)
    nan = np.nan

    def per_msg(values: np.ndarray) -> np.ndarray:
        return np.where(sent, values[fk], nan) if nf else np.full(n, nan)

    mrows = pd.DataFrame(
        {
            "index": index_arr,
            "conn": opts.conn,
            "dir": direction,
            "type": [messages[i].type for i in indices],
            "priority": pd.Categorical.from_codes(prio_code, categories=pd.Index(list(codes))),
            "size": np.fromiter((len(messages[i].payload) for i in indices), dtype=np.int64,
                                count=n),
            "seq": seq,
            "frame": np.where(sent, frame_of + opts.frame_base, -1),
            "t_sent": t_sent,
            "batch_wait_ms": (per_msg(flushed) - t_sent) * 1e3,
            "compression_ms": per_msg(ready - flushed) * 1e3,
            "queue_ms": per_msg(tx.queue_wait) * 1e3,
            "serialisation_ms": per_msg(tx.serialisation) * 1e3,
            "propagation_ms": per_msg(tx.arrival - tx.start - tx.serialisation) * 1e3,
            "decompression_ms": per_msg(dec_us / 1e3),
            "latency_ms": (np.where(sent, arrival, nan) - t_sent) * 1e3,
        }
    )
    mrows["delivered"] = intact if opts.verify else sent
    frows = pd.DataFrame(
        {
            "frame": np.arange(nf, dtype=np.int64) + opts.frame_base,
            "conn": opts.conn,
            "dir": direction,
            "key": [f.key for f in frames],
            "messages": np.fromiter((len(f.messages) for f in frames), dtype=np.int64, count=nf),
            "payload_bytes": payload_len,
            "wire_payload_bytes": wire_len,
            "ws_bytes": ws_bytes,
            "tcp_bytes": tcp_bytes,
            "tcp_segments": segments,
            "compressed": np.asarray(coded.compressed, dtype=bool),
            "compress_us": enc_us,
            "decompress_us": dec_us,
            "t_flushed": flushed,
            "t_arrival": tx.arrival,
            "reason": [f.reason for f in frames],
            "opcode": np.fromiter((f.opcode for f in frames), dtype=np.int64, count=nf),
        }
    )
    return StreamResult(mrows, frows, dropped, integrity)
