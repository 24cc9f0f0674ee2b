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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from wslab import envelopes
from wslab.codecs.base import MessageDecoder, MessageEncoder
from wslab.codecs.deflate_params import Side
from wslab.config import TuningConfig
from wslab.link import LinkModel, LinkProfile, get_profile
from wslab.metrics import integrity_arrays, integrity_counts, summarise
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
        dec = make_decoder(config.compression, receiver, dictionary=dictionary,
                           zlib_sender=True)
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
    envelope = config.batching.envelope
    if config.batching.strategy == "none":
        return None

    def fits(t: Trace) -> str:
        pairs = ((m.payload, m.is_text) for m in t.messages)
        if envelope == "auto":
            return envelopes.choose_envelope(pairs)
        envelopes.check_envelope(envelope, pairs)
        return envelope

    return trace.derived(f"envelope:{envelope}", fits)


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
    n = len(indices)
    wire_lens: list[int] = []
    enc_ns: list[int] = []
    dec_ns: list[int] = []
    flags: list[bool] = []
    # Per message, in the order the peer reads them: position in the group, frame, intact.
    got_index: list[int] = []
    got_frame: list[int] = []
    got_ok: list[bool] = []
    got_seq: list[int] = []
    got_prio: list[str] = []
    perf = time.perf_counter_ns
    compressing = encoder is not None and pipe.selector is not None
    for k, f in enumerate(frames):
        payload = wire = f.payload
        took = back = 0
        squeezed = compressing and f.compress
        if squeezed:
            t0 = perf()
            wire = encoder.encode(payload)  # type: ignore[union-attr]
            took = perf() - t0
            pipe.observe(f, len(wire))
        wire_lens.append(len(wire))
        enc_ns.append(took)
        flags.append(squeezed)
        if verify:
            body = wire
            if squeezed and decoder is not None:
                t0 = perf()
                body = decoder.decode(wire)
                back = perf() - t0
            _unwrap(f, body, envelope, k, got_index, got_frame, got_ok)
        else:
            for pm in f.messages:
                got_index.append(pm.index)
                got_frame.append(k)
                got_ok.append(True)
        for pm in f.messages:
            got_seq.append(pm.seq)
            got_prio.append(pm.priority)
        dec_ns.append(back)

    wire_len = np.asarray(wire_lens, dtype=np.int64)
    enc_us = np.asarray(enc_ns, dtype=np.float64) / 1e3
    dec_us = np.asarray(dec_ns, dtype=np.float64) / 1e3
    compressed = np.asarray(flags, dtype=bool)
    payload_len = np.fromiter((len(f.payload) for f in frames), dtype=np.int64, count=nf)
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

    index_arr = np.asarray(indices, dtype=np.int64)
    where = np.searchsorted(index_arr, np.asarray(got_index, dtype=np.int64))
    frame_of = np.full(n, -1, dtype=np.int64)
    frame_of[where] = np.asarray(got_frame, dtype=np.int64)
    intact = np.zeros(n, dtype=bool)
    intact[where] = np.asarray(got_ok, dtype=bool)
    sent = frame_of >= 0
    dropped = int(n - sent.sum())
    codes = {"critical": 0, "normal": 1, "background": 2}
    seq = np.empty(n, dtype=np.int64)
    prio_code = np.empty(n, dtype=np.int64)
    seq[where] = np.asarray(got_seq, dtype=np.int64)
    prio_code[where] = np.fromiter((codes[p] for p in got_prio), dtype=np.int64,
                                   count=len(got_prio))
    for pm in pipe.dropped:
        j = int(np.searchsorted(index_arr, pm.index))
        seq[j] = pm.seq
        prio_code[j] = codes[pm.priority]
    if verify:
        ok_rows = where[np.asarray(got_ok, dtype=bool)]
        expected = np.bincount(prio_code, minlength=3)
        expected -= np.bincount(prio_code[~sent], minlength=3)
        integrity = integrity_arrays(prio_code[ok_rows], seq[ok_rows], expected)
    else:
        integrity = {"lost": 0, "duplicated": 0, "reordered": 0}
    fk = np.where(sent, frame_of, 0)
    t_sent = np.fromiter((all_messages[i].t for i in indices), dtype=np.float64, count=n)
    arrival = tx.arrival[fk] + dec_us[fk] / 1e6 if nf else np.zeros(n)
    nan = np.nan

    def per_msg(values: np.ndarray) -> np.ndarray:
        return np.where(sent, values[fk], nan) if nf else np.full(n, nan)

    mrows = pd.DataFrame(
        {
            "index": np.asarray(indices, dtype=np.int64),
            "conn": conn,
            "dir": direction,
            "type": [all_messages[i].type for i in indices],
            "priority": pd.Categorical.from_codes(prio_code, categories=pd.Index(list(codes))),
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
            }
    )
    mrows["delivered"] = intact if verify else sent
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


def _unwrap(
    frame: OutFrame, body: bytes, envelope: str | None, k: int,
    got_index: list[int], got_frame: list[int], got_ok: list[bool],
) -> None:
    """Unwrap a decoded frame as the peer would; record which messages came out intact."""
    msgs = frame.messages
    if envelope is None:
        pm = msgs[0]
        got_index.append(pm.index)
        got_frame.append(k)
        got_ok.append(body == pm.payload)
        return
    parts = envelopes.decode(envelope, body)
    whole = len(parts) == len(msgs)
    for j, pm in enumerate(msgs):
        got_index.append(pm.index)
        got_frame.append(k)
        got_ok.append(whole and parts[j] == (pm.payload, pm.is_text))


def _empty_messages() -> pd.DataFrame:
    return pd.DataFrame({"index": pd.Series(dtype="int64"), "latency_ms": pd.Series(dtype=float)})


def _empty_frames() -> pd.DataFrame:
    return pd.DataFrame({"frame": pd.Series(dtype="int64")})


__all__ = ["SimResult", "default_codecs", "integrity_counts", "simulate"]


def _no_codecs(side: str) -> tuple[MessageEncoder | None, MessageDecoder | None]:
    return None, None
