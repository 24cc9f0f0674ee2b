"""The offline simulator: a trace replayed through the real send pipeline on a virtual clock.

What lives here: :func:`simulate`, which drives :class:`wslab.pipeline.SendPipeline` with
the trace's own timing, compresses every frame the selector picks with the real codec (its
CPU time measured), decodes every frame with the real decoder and envelope decoder (so
integrity is checked, not assumed), prices frames with ``wire.py`` and delivers them with
``link.py``. Results are tidy tables (one row per message, one per frame) and the summary
record of DESIGN.md section 4a. No I/O, no wall clock beyond measuring codec CPU time.

Assumptions (stated once, used everywhere):

- one connection per ``(conn, dir)`` group of the trace: each has its own pipeline, codec
  context and link queue; the two directions of a connection do not share bandwidth;
- the sender's CPU is one serial resource: a frame is handed to the kernel once it is
  compressed, and compression of one frame waits for the previous one;
- compression and decompression times are the measured CPU times of the real codec calls
  on this machine, so latency figures carry this machine's speed;
- latency of a message = batch wait + compression (incl. waiting for the CPU) + link
  queueing and serialisation + propagation (incl. jitter, retransmission, head-of-line
  blocking) + decompression.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from wslab import envelopes
from wslab.batching import Pending
from wslab.codecs.base import MessageDecoder, MessageEncoder
from wslab.codecs.deflate_params import Side
from wslab.config import TuningConfig
from wslab.link import LinkModel, LinkProfile, get_profile
from wslab.metrics import integrity_counts, summarise
from wslab.pipeline import OutFrame, SendPipeline
from wslab.traces.model import Message, Trace
from wslab.wire import ws_header_bytes_array

CodecFactory = Callable[[str], tuple[MessageEncoder | None, MessageDecoder | None]]


@dataclass(slots=True)
class SimResult:
    """What a simulation produced.

    Attributes:
        messages: One row per message: index, conn, dir, type, priority, size, frame,
            t_sent, t_flushed, t_ready, t_start, t_arrival, latency parts (ms), seq.
        frames: One row per frame: conn, dir, messages, payload, wire payload, ws bytes,
            tcp bytes, segments, compressed, compress/decompress CPU (us), reason.
        summary: The summary record (DESIGN.md section 4a).
        config: The config simulated.
        link: The link profile used.
    """

    messages: pd.DataFrame
    frames: pd.DataFrame
    summary: dict[str, Any]
    config: TuningConfig
    link: LinkProfile
    notes: list[str] = field(default_factory=list)


def default_codecs(
    config: TuningConfig, dictionaries: dict[str, bytes] | None = None
) -> CodecFactory:
    """Codec pairs as the config asks, per sending side ("server" or "client")."""
    from wslab.codecs.factory import make_decoder, make_encoder

    def factory(side: str) -> tuple[MessageEncoder | None, MessageDecoder | None]:
        sender: Side = "server" if side == "server" else "client"
        receiver: Side = "client" if sender == "server" else "server"
        dictionary = (dictionaries or {}).get(sender)
        enc = make_encoder(config.compression, sender, dictionary=dictionary)
        dec = make_decoder(config.compression, receiver, dictionary=dictionary)
        return enc, dec

    return factory


def simulate(
    trace: Trace,
    config: TuningConfig,
    *,
    link: LinkProfile | str | None = None,
    seed: int = 0,
    codecs: CodecFactory | None = None,
    verify: bool = True,
) -> SimResult:
    """Replay ``trace`` under ``config`` and return per-message, per-frame and summary results.

    Args:
        trace: The messages, with their times.
        config: Batching and compression to apply.
        link: Link profile or its name (default: ``config.link.profile``).
        seed: Seed for the link's jitter and loss draws.
        codecs: Override how codecs are built (tests, dictionaries).
        verify: Decode every frame and check integrity (costs the decoder's CPU time).
    """
    profile = link if isinstance(link, LinkProfile) else get_profile(link or config.link.profile)
    notes: list[str] = []
    if codecs is None and config.compression.algorithm == "zstd-dict":
        dictionaries, note = train_trace_dictionaries(trace, config)
        notes.append(note)
        codecs = default_codecs(config, dictionaries)
    codecs = codecs or (
        _no_codecs if config.compression.algorithm == "none" else default_codecs(config)
    )
    groups: dict[tuple[str, str], list[int]] = {}
    for i, m in enumerate(trace.messages):
        groups.setdefault((m.conn or "", m.dir), []).append(i)
    envelope = _resolve_envelope(config, trace)
    msg_parts: list[pd.DataFrame] = []
    frame_parts: list[pd.DataFrame] = []
    dropped = 0
    frame_base = 0
    integrity = {"lost": 0, "duplicated": 0, "reordered": 0}
    for n, ((conn, direction), indices) in enumerate(sorted(groups.items())):
        mrows, frows, dropped_here, counts = _simulate_stream(
            trace.messages,
            indices,
            conn,
            direction,
            config,
            envelope,
            profile,
            seed + n,
            codecs,
            verify,
            frame_base,
        )
        frame_base += len(frows)
        dropped += dropped_here
        for key, value in counts.items():
            integrity[key] += value
        msg_parts.append(mrows)
        frame_parts.append(frows)
    messages = (
        pd.concat(msg_parts, ignore_index=True)
        .sort_values("index", kind="stable")
        .reset_index(drop=True)
        if msg_parts
        else _empty_messages()
    )
    frames = pd.concat(frame_parts, ignore_index=True) if frame_parts else _empty_frames()
    if dropped:
        notes.append(f"{dropped} background message(s) dropped: background queue full")
    summary = summarise(messages, frames, integrity=integrity, dropped=dropped)
    summary["envelope"] = envelope
    summary["link"] = profile.name
    return SimResult(messages, frames, summary, config, profile, notes)


DICTIONARY_SAMPLE_SHARE = 0.2
DICTIONARY_SAMPLE_MAX = 2000


def train_trace_dictionaries(
    trace: Trace, config: TuningConfig
) -> tuple[dict[str, bytes], str]:
    """zstd dictionaries per sending side, trained on the first messages of its direction.

    Each side's dictionary learns from the first 20 % of that direction's messages (at most
    2,000), as a deployment would train on earlier traffic; a direction with too few
    messages borrows the other's samples.
    """
    from wslab.codecs.zstd import train_dictionary

    samples: dict[str, list[bytes]] = {}
    for side, direction in (("server", "s2c"), ("client", "c2s")):
        payloads = [m.payload for m in trace.messages if m.dir == direction]
        take = min(DICTIONARY_SAMPLE_MAX, max(8, int(len(payloads) * DICTIONARY_SAMPLE_SHARE)))
        samples[side] = payloads[:take]
    pooled = samples["server"] + samples["client"]
    out = {}
    for side, own in samples.items():
        out[side] = train_dictionary(own if len(own) >= 8 else pooled,
                                     config.compression.zstd_dict_bytes)
    note = (f"zstd dictionaries trained on the first {len(samples['server'])} s2c and "
            f"{len(samples['client'])} c2s messages of the trace")
    return out, note


def _resolve_envelope(config: TuningConfig, trace: Trace) -> str | None:
    if config.batching.strategy == "none":
        return None
    pairs = ((m.payload, m.is_text) for m in trace.messages)
    if config.batching.envelope == "auto":
        return envelopes.choose_envelope(pairs)
    envelopes.check_envelope(config.batching.envelope, pairs)
    return config.batching.envelope


def _simulate_stream(
    all_messages: list[Message],
    indices: list[int],
    conn: str,
    direction: str,
    config: TuningConfig,
    envelope: str | None,
    profile: LinkProfile,
    seed: int,
    codecs: CodecFactory,
    verify: bool,
    frame_base: int,
) -> tuple[pd.DataFrame, pd.DataFrame, int, dict[str, int]]:
    side = "server" if direction == "s2c" else "client"
    pipe = SendPipeline(config, envelope=envelope)
    encoder, decoder = codecs(side)
    if encoder is None:
        pipe.selector = None
    frames: list[OutFrame] = []
    for i in indices:
        m = all_messages[i]
        t = m.t
        deadline = pipe.next_deadline()
        while deadline is not None and deadline <= t:
            frames += pipe.poll(deadline)
            deadline = pipe.next_deadline()
        frames += pipe.push(i, t, m.priority, m.type, m.payload, m.is_text)
    deadline = pipe.next_deadline()
    while deadline is not None:
        frames += pipe.poll(deadline)
        deadline = pipe.next_deadline()
    if indices:
        frames += pipe.flush(all_messages[indices[-1]].t)

    nf = len(frames)
    wire_len = np.empty(nf, dtype=np.int64)
    payload_len = np.empty(nf, dtype=np.int64)
    enc_us = np.zeros(nf)
    dec_us = np.zeros(nf)
    compressed = np.zeros(nf, dtype=bool)
    receipts: list[tuple[Pending, bool]] = []  # in the order the peer reads them
    perf = time.perf_counter_ns
    for k, f in enumerate(frames):
        payload_len[k] = len(f.payload)
        wire = f.payload
        if f.compress and encoder is not None:
            t0 = perf()
            wire = encoder.encode(f.payload)
            enc_us[k] = (perf() - t0) / 1e3
            compressed[k] = True
            pipe.observe(f, len(wire))
        wire_len[k] = len(wire)
        if verify:
            body = wire
            if compressed[k] and decoder is not None:
                t0 = perf()
                body = decoder.decode(wire)
                dec_us[k] = (perf() - t0) / 1e3
            _check_frame(f, body, envelope, receipts)

    masked = direction == "c2s"
    ws_bytes = wire_len + ws_header_bytes_array(wire_len, masked)
    tcp = profile.tcp()
    segments = tcp.segments_array(ws_bytes)
    tcp_bytes = ws_bytes + segments * tcp.header_bytes
    flushed = np.fromiter((f.flushed_at for f in frames), dtype=np.float64, count=nf)
    # The sender's CPU is serial: ready_k = max(flushed_k, ready_{k-1}) + cpu_k.
    cpu_s = enc_us / 1e6
    cum = np.cumsum(cpu_s)
    ready = cum + np.maximum.accumulate(flushed - (cum - cpu_s)) if nf else flushed
    tx = LinkModel(profile, direction, seed).transmit(ready, tcp_bytes, segments)

    frame_of = np.empty(len(indices), dtype=np.int64)
    pos = {idx: j for j, idx in enumerate(indices)}
    seq = np.empty(len(indices), dtype=np.int64)
    sent = np.full(len(indices), False)
    for k, f in enumerate(frames):
        for pm in f.messages:
            j = pos[pm.index]
            frame_of[j] = k
            seq[j] = pm.seq
            sent[j] = True
    dropped = int((~sent).sum())
    for pm in pipe.dropped:
        j = pos[pm.index]
        frame_of[j] = -1
        seq[j] = pm.seq
    fk = np.where(sent, frame_of, 0)
    t_sent = np.fromiter((all_messages[i].t for i in indices), dtype=np.float64, count=len(indices))
    arrival = tx.arrival[fk] + dec_us[fk] / 1e6 if nf else np.zeros(len(indices))
    nan = np.nan

    def per_msg(values: np.ndarray) -> np.ndarray:
        return np.where(sent, values[fk], nan) if nf else np.full(len(indices), nan)

    mrows = pd.DataFrame(
        {
            "index": np.asarray(indices, dtype=np.int64),
            "conn": conn,
            "dir": direction,
            "type": [all_messages[i].type for i in indices],
            "priority": [all_messages[i].priority for i in indices],
            "size": np.fromiter(
                (len(all_messages[i].payload) for i in indices), dtype=np.int64, count=len(indices)
            ),
            "seq": seq,
            "frame": np.where(sent, frame_of + frame_base, -1),
            "t_sent": t_sent,
            "batch_wait_ms": (per_msg(flushed) - t_sent) * 1e3,
            "compression_ms": per_msg(ready - flushed) * 1e3,
            "queue_ms": per_msg(tx.queue_wait) * 1e3,
            "serialisation_ms": per_msg(tx.serialisation) * 1e3,
            "propagation_ms": per_msg(tx.arrival - tx.start - tx.serialisation) * 1e3,
            "decompression_ms": per_msg(dec_us / 1e3),
            "latency_ms": (np.where(sent, arrival, nan) - t_sent) * 1e3,
            "delivered": sent,
        }
    )
    if verify:
        intact = np.zeros(len(indices), dtype=bool)
        for pm, ok in receipts:
            intact[pos[pm.index]] |= ok
        mrows = mrows.assign(delivered=intact)
        expected: Counter[Hashable] = Counter(all_messages[i].priority for i in indices)
        for pm in pipe.dropped:
            expected[pm.priority] -= 1
        integrity = integrity_counts(((pm.priority, pm.seq) for pm, ok in receipts if ok), expected)
    else:
        integrity = {"lost": 0, "duplicated": 0, "reordered": 0}
    frows = pd.DataFrame(
        {
            "frame": np.arange(nf, dtype=np.int64) + frame_base,
            "conn": conn,
            "dir": direction,
            "messages": np.fromiter((len(f.messages) for f in frames), dtype=np.int64, count=nf),
            "payload_bytes": payload_len,
            "wire_payload_bytes": wire_len,
            "ws_bytes": ws_bytes,
            "tcp_bytes": tcp_bytes,
            "tcp_segments": segments,
            "compressed": compressed,
            "compress_us": enc_us,
            "decompress_us": dec_us,
            "t_flushed": flushed,
            "t_arrival": tx.arrival,
            "reason": [f.reason for f in frames],
            "opcode": np.fromiter((f.opcode for f in frames), dtype=np.int64, count=nf),
        }
    )
    return mrows, frows, dropped, integrity


def _check_frame(
    frame: OutFrame, body: bytes, envelope: str | None, receipts: list[tuple[Pending, bool]]
) -> None:
    """Unwrap a decoded frame as the peer would and record which messages came out intact."""
    parts = [(body, frame.opcode == 1)] if envelope is None else envelopes.decode(envelope, body)
    if len(parts) != len(frame.messages):
        receipts.extend((pm, False) for pm in frame.messages)
        return
    for (payload, is_text), pm in zip(parts, frame.messages, strict=True):
        receipts.append((pm, payload == pm.payload and is_text == pm.is_text))


def _empty_messages() -> pd.DataFrame:
    return pd.DataFrame({"index": pd.Series(dtype="int64"), "latency_ms": pd.Series(dtype=float)})


def _empty_frames() -> pd.DataFrame:
    return pd.DataFrame({"frame": pd.Series(dtype="int64")})


__all__ = ["SimResult", "default_codecs", "integrity_counts", "simulate"]


def _no_codecs(side: str) -> tuple[MessageEncoder | None, MessageDecoder | None]:
    return None, None
