"""The simulator as it was before it was made fast, kept as a reference model for tests.

This is the per-message implementation of ``wslab.sim`` (object per frame, a pandas table
per stream joined with ``concat`` and a sort, the summary from pandas filters), frozen at
the commit that replaced it. ``tests/sim/test_fast_sim.py`` holds the fast simulator to it
value for value on every bundled trace. It shares the pipeline, the codecs, the link model
and the integrity counter with the simulator (each has its own tests); what it does *not*
share is the code that strings them together and builds the tables and the summary.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from wslab import envelopes
from wslab.codecs.base import MessageDecoder
from wslab.compressor import FrameCompressor
from wslab.config import TuningConfig
from wslab.link import LinkModel, LinkProfile, get_profile
from wslab.metrics import integrity_arrays, latency_summary
from wslab.pipeline import OutFrame, SendPipeline, resolve_envelope
from wslab.sim import default_codecs, selector_summary
from wslab.traces.model import Message, Trace
from wslab.wire import ws_header_bytes_array

_PRIORITY_CODES = {"critical": 0, "normal": 1, "background": 2}


@dataclass
class RefResult:
    messages: pd.DataFrame
    frames: pd.DataFrame
    summary: dict[str, Any]


@dataclass
class _Coded:
    wire_len: list[int] = field(default_factory=list)
    encode_ns: list[int] = field(default_factory=list)
    decode_ns: list[int] = field(default_factory=list)
    compressed: list[bool] = field(default_factory=list)
    got_index: list[int] = field(default_factory=list)
    got_frame: list[int] = field(default_factory=list)
    got_ok: list[bool] = field(default_factory=list)
    got_seq: list[int] = field(default_factory=list)
    got_prio: list[str] = field(default_factory=list)


def reference_simulate(trace: Trace, config: TuningConfig, *, link: str | None = None,
                       seed: int = 0, verify: bool = True) -> RefResult:
    """The old ``simulate`` for configs without zstd dictionaries."""
    profile = get_profile(link or config.link.profile)
    codecs = (None if config.compression.algorithm == "none" else default_codecs(config))
    groups: dict[tuple[str, str], list[int]] = {}
    for i, m in enumerate(trace.messages):
        groups.setdefault((m.conn or "", m.dir), []).append(i)
    envelope = resolve_envelope(config, trace)
    msg_parts: list[pd.DataFrame] = []
    frame_parts: list[pd.DataFrame] = []
    dropped = 0
    frame_base = 0
    integrity = {"lost": 0, "duplicated": 0, "reordered": 0}
    for n, ((conn, direction), indices) in enumerate(sorted(groups.items())):
        side = "server" if direction == "s2c" else "client"
        pipe = SendPipeline(config, envelope=envelope)
        encoder, decoder = codecs(side) if codecs is not None else (None, None)
        compressor = (FrameCompressor.from_config(config.compression, lambda e=encoder: e)
                      if encoder is not None else None)
        frames: list[OutFrame] = []
        for i in indices:
            m = trace.messages[i]
            frames += pipe.push(i, m.t, m.priority, m.type, m.payload, m.is_text)
        if indices:
            frames += pipe.finish(trace.messages[indices[-1]].t)
        coded = _code(frames, compressor, decoder, envelope, verify)
        mrows, frows, drop, integ = _tables(trace.messages, indices, frames, coded, pipe,
                                            (conn, direction, profile, seed + n, verify,
                                             frame_base))
        frame_base += len(frows)
        dropped += drop
        for key, value in integ.items():
            integrity[key] += value
        msg_parts.append(mrows)
        frame_parts.append(frows)
    messages = (pd.concat(msg_parts, ignore_index=True).sort_values("index", kind="stable")
                .reset_index(drop=True))
    frames_df = pd.concat(frame_parts, ignore_index=True)
    summary = _summarise(messages, frames_df, integrity, dropped)
    summary.update(selector_summary(frames_df, config.compression.algorithm != "none"))
    summary["envelope"] = envelope
    summary["link"] = profile.name
    return RefResult(messages, frames_df, summary)


def _code(frames: list[OutFrame], compressor: FrameCompressor | None,
          decoder: MessageDecoder | None, envelope: str | None, verify: bool) -> _Coded:
    out = _Coded()
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
            msgs = f.messages
            if envelope is None:
                pm = msgs[0]
                out.got_index.append(pm.index)
                out.got_frame.append(k)
                out.got_ok.append(body == pm.payload)
            else:
                parts = envelopes.decode(envelope, body)
                whole = len(parts) == len(msgs)
                for j, pm in enumerate(msgs):
                    out.got_index.append(pm.index)
                    out.got_frame.append(k)
                    out.got_ok.append(whole and parts[j] == (pm.payload, pm.is_text))
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


def _tables(messages: list[Message], indices: list[int], frames: list[OutFrame],
            coded: _Coded, pipe: SendPipeline,
            where_: tuple[str, str, LinkProfile, int, bool, int],
            ) -> tuple[pd.DataFrame, pd.DataFrame, int, dict[str, int]]:
    conn, direction, profile, seed, verify, frame_base = where_
    nf = len(frames)
    n = len(indices)
    wire_len = np.asarray(coded.wire_len, dtype=np.int64)
    enc_us = np.asarray(coded.encode_ns, dtype=np.float64) / 1e3
    dec_us = np.asarray(coded.decode_ns, dtype=np.float64) / 1e3
    payload_len = np.fromiter((len(f.payload) for f in frames), dtype=np.int64, count=nf)
    ws_bytes = wire_len + ws_header_bytes_array(wire_len, direction == "c2s")
    tcp = profile.tcp()
    segments = tcp.segments_array(ws_bytes)
    tcp_bytes = ws_bytes + segments * tcp.header_bytes
    flushed = np.fromiter((f.flushed_at for f in frames), dtype=np.float64, count=nf)
    cpu_s = enc_us / 1e6
    cum = np.cumsum(cpu_s)
    ready = cum + np.maximum.accumulate(flushed - (cum - cpu_s)) if nf else flushed
    tx = LinkModel(profile, direction, seed).transmit(ready, tcp_bytes, segments)

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
    if verify:
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

    mrows = pd.DataFrame({
        "index": index_arr, "conn": conn, "dir": direction,
        "type": [messages[i].type for i in indices],
        "priority": pd.Categorical.from_codes(prio_code, categories=pd.Index(list(codes))),
        "size": np.fromiter((len(messages[i].payload) for i in indices), dtype=np.int64,
                            count=n),
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
    })
    mrows["delivered"] = intact if verify else sent
    frows = pd.DataFrame({
        "frame": np.arange(nf, dtype=np.int64) + frame_base,
        "conn": conn, "dir": direction,
        "key": [f.key for f in frames],
        "messages": np.fromiter((len(f.messages) for f in frames), dtype=np.int64, count=nf),
        "payload_bytes": payload_len, "wire_payload_bytes": wire_len,
        "ws_bytes": ws_bytes, "tcp_bytes": tcp_bytes, "tcp_segments": segments,
        "compressed": np.asarray(coded.compressed, dtype=bool),
        "compress_us": enc_us, "decompress_us": dec_us,
        "t_flushed": flushed, "t_arrival": tx.arrival,
        "reason": [f.reason for f in frames],
        "opcode": np.fromiter((f.opcode for f in frames), dtype=np.int64, count=nf),
    })
    return mrows, frows, dropped, integrity


_TOTALS = ("frames", "compressed_bytes", "ws_bytes", "tcp_bytes", "tcp_segments",
           "compress_us", "decompress_us")


def _frame_totals(frames: pd.DataFrame) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for direction in ("s2c", "c2s"):
        f = frames[frames["dir"] == direction] if len(frames) else frames
        n = len(f)
        out[direction] = {
            "frames": n,
            "compressed_bytes": int(f["wire_payload_bytes"].sum()) if n else 0,
            "ws_bytes": int(f["ws_bytes"].sum()) if n else 0,
            "tcp_bytes": int(f["tcp_bytes"].sum()) if n else 0,
            "tcp_segments": int(f["tcp_segments"].sum()) if n else 0,
            "compress_us": float(f["compress_us"].sum()) if n else 0.0,
            "decompress_us": float(f["decompress_us"].sum()) if n else 0.0,
        }
    return out


def _block(messages: pd.DataFrame, wire: Mapping[str, float]) -> dict[str, Any]:
    n = len(messages)
    payload = int(messages["size"].sum()) if n else 0
    compressed = int(wire["compressed_bytes"])
    return {
        "messages": n, "frames": int(wire["frames"]), "payload_bytes": payload,
        "compressed_bytes": compressed, "ws_bytes": int(wire["ws_bytes"]),
        "tcp_bytes": int(wire["tcp_bytes"]), "tcp_segments": int(wire["tcp_segments"]),
        "compression_ratio": compressed / payload if payload else None,
        "cpu_us_per_msg": wire["compress_us"] / n if n else None,
        "decompress_us_per_msg": wire["decompress_us"] / n if n else None,
        "latency_ms": latency_summary(messages["latency_ms"]) if n
        else latency_summary(np.array([])),
    }


def _summarise(messages: pd.DataFrame, frames: pd.DataFrame, integrity: Mapping[str, int],
               dropped: int) -> dict[str, Any]:
    """The old pandas-filter summary (``wslab.metrics.summarise`` before it went numpy)."""
    per_dir = _frame_totals(frames)
    total = {key: sum(per_dir[d][key] for d in per_dir) for key in _TOTALS}
    out = _block(messages, total)
    out.update({k: int(v) for k, v in integrity.items()})
    out["dropped"] = dropped
    out["by_dir"] = {}
    for direction in ("s2c", "c2s"):
        m = messages[messages["dir"] == direction] if len(messages) else messages
        out["by_dir"][direction] = _block(m, per_dir[direction])
    out["by_priority"] = {}
    for prio in ("critical", "normal", "background"):
        m = messages[messages["priority"] == prio] if len(messages) else messages
        if len(m):
            out["by_priority"][prio] = {"messages": len(m),
                                        "latency_ms": latency_summary(m["latency_ms"])}
    out["control"] = {"frames": 0, "ws_bytes": 0,
                      "note": "the simulator models data frames only"}
    return out


class _StepClock:
    """``time.perf_counter_ns`` stand-in: every call is ``step`` ns after the previous."""

    def __init__(self, step: int) -> None:
        self.now = 0
        self.step = step

    def __call__(self) -> int:
        self.now += self.step
        return self.now


def repeatable_codec_times(monkeypatch: Any, step: int = 1500) -> None:
    """Make every codec CPU time the simulator measures exactly ``step`` ns.

    The simulator times each codec call by two readings of ``time.perf_counter_ns``
    around it; with this clock every such pair is ``step`` apart, so two simulations
    (or a simulation and the reference model) get the same times and every latency
    figure can be compared exactly.
    """
    monkeypatch.setattr(time, "perf_counter_ns", _StepClock(step))
