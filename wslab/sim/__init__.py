"""The offline simulator: a trace replayed through the real send pipeline on a virtual clock.

What lives here: :func:`simulate`, which takes the trace's streams (one per connection and
direction, ``inputs.py``), runs each through ``stream.py`` (pipeline, then codecs in
``coding.py``, then prices and delivery in ``tables.py``), joins them into tidy tables (one
row per message, one per frame, ``tables.join_tables``) and the summary record of DESIGN.md
section 4a. ``cache.py`` holds what ``simulate(..., reuse=True)`` reuses between
simulations of one trace; ``dictionaries.py`` the rule for which messages train zstd
dictionaries and which are scored. No I/O, no wall clock beyond measuring codec CPU time.
Nothing here builds an object per message: every stage works on columns.

Assumptions (stated once, used everywhere):

- one connection per ``(conn, dir)`` group of the trace: each has its own pipeline, codec
  context and link queue; the two directions of a connection do not share bandwidth;
- the sender's CPU is one serial resource: a frame is handed to the kernel once it is
  compressed, and compression of one frame waits for the previous one;
- compression and decompression times are the measured CPU times of the real codec calls
  on this machine, so latency figures carry this machine's speed (with ``reuse``, those of
  the first run that coded the same frames with the same codec);
- latency of a message = batch wait + compression (incl. waiting for the CPU) + link
  queueing and serialisation + propagation (incl. jitter, retransmission, head-of-line
  blocking) + decompression;
- ``zstd-dict``: the dictionaries train on a prefix of each type's messages and only the
  messages after it are simulated (``dictionaries.py``), as a deployment trains on earlier
  traffic; the summary's ``dictionary_training_messages`` says how many were set aside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from wslab.codecs.base import MessageDecoder, MessageEncoder
from wslab.codecs.deflate_params import Side
from wslab.config import TuningConfig
from wslab.link import LinkProfile, get_profile
from wslab.metrics import integrity_counts, summarise
from wslab.pipeline import resolve_envelope
from wslab.sim.cache import trace_cache
from wslab.sim.inputs import trace_streams, trace_text_columns
from wslab.sim.stream import CodecFactory, RunPlan, simulate_stream
from wslab.sim.tables import Delivery, StreamArrays, join_tables
from wslab.traces.model import Trace

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet


@dataclass(slots=True)
class SimResult:
    """What a simulation produced.

    Attributes:
        messages: One row per message: index, conn, dir, type, priority, size, frame,
            t_sent, latency parts (ms), latency, delivered, seq.
        frames: One row per frame: conn, dir, key, messages, payload, wire payload, ws
            bytes, tcp bytes, segments, compressed, compress/decompress CPU (us), reason.
        summary: The summary record (DESIGN.md section 4a) plus what the selector did
            (``frames_compressed``, ``frames_plain``, ``plain_by_key``).
        config: The config simulated.
        link: The link profile used.
        notes: Plain sentences about the run (dictionaries trained, messages dropped).
        dictionaries: The zstd dictionary set used (``zstd-dict`` only).
    """

    messages: pd.DataFrame
    frames: pd.DataFrame
    summary: dict[str, Any]
    config: TuningConfig
    link: LinkProfile
    notes: list[str] = field(default_factory=list)
    dictionaries: DictionarySet | None = None


def default_codecs(config: TuningConfig,
                   dictionaries: DictionarySet | None = None) -> CodecFactory:
    """Codec pairs as the config asks, per sending side ("server" or "client")."""
    from wslab.codecs.factory import make_decoder, make_encoder

    def factory(side: str) -> tuple[MessageEncoder | None, MessageDecoder | None]:
        sender: Side = "server" if side == "server" else "client"
        receiver: Side = "client" if sender == "server" else "server"
        enc = make_encoder(config.compression, sender, dictionaries)
        dec = make_decoder(config.compression, receiver, dictionaries, zlib_sender=True)
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
    dictionaries: DictionarySet | None = None,
    reuse: bool = False,
) -> SimResult:
    """Replay ``trace`` under ``config`` and return per-message, per-frame and summary results.

    Args:
        trace: The messages, with their times.
        config: Batching and compression to apply.
        link: Link profile or its name (default: ``config.link.profile``).
        seed: Seed for the link's jitter and loss draws.
        codecs: Override how codecs are built (tests).
        verify: Decode every frame and check integrity (costs the decoder's CPU time).
        dictionaries: For ``zstd-dict``: a set trained elsewhere, so the whole trace is
            scored. Without it, a set is trained on the trace's prefix per type and only
            the messages after it are simulated (see ``dictionaries.py``).
        reuse: Reuse the released and coded frames of earlier simulations of this trace
            that had the same inputs (``cache.py``; sweeps). Codec CPU times are then the
            ones measured when those frames were first coded.
    """
    profile = link if isinstance(link, LinkProfile) else get_profile(link or config.link.profile)
    notes: list[str] = []
    trained_on = 0
    if codecs is None and config.compression.algorithm == "zstd-dict" and dictionaries is None:
        from wslab.sim.dictionaries import dictionary_plan

        plan = dictionary_plan(trace, config.compression)
        trace, dictionaries, trained_on = plan.scored, plan.dictionaries, plan.trained_on
        notes.append(plan.note)
    codecs_id: str | None = None
    if codecs is None:
        codecs = (_no_codecs if config.compression.algorithm == "none"
                  else default_codecs(config, dictionaries))
        codecs_id = dictionaries.id if dictionaries is not None else ""
    envelope = resolve_envelope(config, trace)
    run = RunPlan(config, envelope, codecs, verify,
                  trace_cache(trace) if reuse else None, codecs_id)
    parts: list[StreamArrays] = []
    dropped = 0
    frame_base = 0
    integrity = {"lost": 0, "duplicated": 0, "reordered": 0}
    for n, stream in enumerate(trace_streams(trace)):
        part = simulate_stream(stream, run, Delivery(profile, seed + n, frame_base, verify))
        frame_base += len(part.frames)
        dropped += part.dropped
        for key, value in part.integrity.items():
            integrity[key] += value
        parts.append(part)
    if parts:
        messages, frames = join_tables(parts, len(trace), trace_text_columns(trace))
    else:
        messages, frames = _empty_messages(), _empty_frames()
    if dropped:
        notes.append(f"{dropped} background message(s) dropped: background queue full")
    summary = summarise(messages, frames, integrity=integrity, dropped=dropped)
    summary.update(selector_summary(frames, config.compression.algorithm != "none"))
    summary["envelope"] = envelope
    summary["link"] = profile.name
    if config.compression.algorithm == "zstd-dict" and dictionaries is not None:
        summary["dictionary_bytes"] = dictionaries.nbytes
        summary["dictionary_training_messages"] = trained_on
    return SimResult(messages, frames, summary, config, profile, notes, dictionaries)


def selector_summary(frames: pd.DataFrame, compressing: bool) -> dict[str, Any]:
    """What the selector did: frames compressed, frames sent plain, plain frames per key.

    ``frames`` needs ``compressed`` and ``key`` columns (the simulator's frame table and
    ``wslab bench``'s live frame log both have them). With compression off nothing counts
    as plain: no frame could have been compressed.
    """
    if not compressing or not len(frames):
        return {"frames_compressed": 0, "frames_plain": 0, "plain_by_key": {}}
    squeezed = frames["compressed"].to_numpy(dtype=bool)
    plain_keys = frames.loc[~squeezed, "key"].value_counts()
    return {"frames_compressed": int(squeezed.sum()),
            "frames_plain": int((~squeezed).sum()),
            "plain_by_key": {str(k): int(v) for k, v in plain_keys.items()}}


def _empty_messages() -> pd.DataFrame:
    return pd.DataFrame({"index": pd.Series(dtype="int64"), "latency_ms": pd.Series(dtype=float)})


def _empty_frames() -> pd.DataFrame:
    return pd.DataFrame({"frame": pd.Series(dtype="int64")})


def _no_codecs(side: str) -> tuple[MessageEncoder | None, MessageDecoder | None]:
    return None, None


__all__ = ["SimResult", "default_codecs", "integrity_counts", "selector_summary", "simulate"]
