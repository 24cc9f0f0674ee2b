"""One simulated stream: a (connection, direction) of the trace, in three stages.

What lives here: :func:`simulate_stream`, which runs one sending side of one connection
through

1. **the pipeline**: every message pushed at its trace time into the shared
   :class:`~wslab.pipeline.SendPipeline` (``SendPipeline.replay``, the same frames as
   pushing them one by one, as the live session does on the event loop's clock);
2. **the codecs** (``coding.py``): every frame, in release order, through a
   :class:`~wslab.compressor.FrameCompressor` (decide, compress, feed the size back, the
   live extensions' order too), then the real decoder and the envelope decoder, so
   integrity is checked rather than assumed;
3. **the tables** (``tables.py``): frames priced by ``wire.py``, delivered by ``link.py``
   behind a serial sender CPU, every message's latency parts, as arrays.

With a :class:`~wslab.sim.cache.StreamCache` the first two stages are looked up by what
decides them (``cache.py``). :class:`RunPlan` is what every stream of a run shares.

What must not live here: splitting the trace and joining the streams (``__init__``,
``inputs.py``, ``tables.py``), choosing dictionaries (``dictionaries.py``), I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wslab.codecs.base import MessageDecoder, MessageEncoder
from wslab.compressor import FrameCompressor
from wslab.config import TuningConfig
from wslab.pipeline import SendPipeline
from wslab.sim.cache import Released, StreamCache, coded_key, frames_digest, release_key
from wslab.sim.coding import CodedFrames, StreamCodecs, code_frames, unwrap_checks
from wslab.sim.inputs import StreamInput
from wslab.sim.tables import Delivery, StreamArrays, stream_arrays

CodecFactory = Callable[[str], tuple[MessageEncoder | None, MessageDecoder | None]]
"""Side ("server" or "client") -> the encoder it sends with and the decoder its peer uses."""


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What every stream of one simulation shares.

    Attributes:
        config: The config simulated.
        envelope: The batching envelope (None: no batching).
        codecs: Builds each side's codec pair.
        verify: Decode every frame and count integrity.
        cache: Reuse released and coded frames (sweeps), or None.
        codecs_id: Names the codecs for reuse of coded frames (the zstd dictionary set's
            id, ``""`` without one); None when coded frames must not be reused (codecs
            given by the caller).
    """

    config: TuningConfig
    envelope: str | None
    codecs: CodecFactory
    verify: bool = True
    cache: StreamCache | None = None
    codecs_id: str | None = None


def simulate_stream(stream: StreamInput, plan: RunPlan, delivery: Delivery) -> StreamArrays:
    """One (connection, direction) of the trace through the three stages."""
    side = "server" if stream.direction == "s2c" else "client"
    cache = plan.cache
    if cache is None:
        released = _release(stream, plan, digest=False)
        coded = _code(stream, released, plan, side)
    else:
        released = cache.released(release_key(stream, plan.config, plan.envelope, plan.verify),
                                  lambda: _release(stream, plan, digest=True))
        if plan.codecs_id is None:
            coded = _code(stream, released, plan, side)
        else:
            key = coded_key(released, side, plan.config, plan.codecs_id, plan.verify)
            coded = cache.coded(key, lambda: _code(stream, released, plan, side))
    return stream_arrays(stream, released.frames, coded, delivery)


def _release(stream: StreamInput, plan: RunPlan, *, digest: bool) -> Released:
    frames = SendPipeline(plan.config, envelope=plan.envelope).replay(stream.messages)
    unwrapped = unwrap_checks(frames, stream, plan.envelope) if plan.verify else None
    return Released(frames, unwrapped,
                    frames_digest(frames, plan.envelope) if digest else "")


def _code(stream: StreamInput, released: Released, plan: RunPlan, side: str) -> CodedFrames:
    encoder, decoder = plan.codecs(side)
    compressor = (FrameCompressor.from_config(plan.config.compression, lambda: encoder)
                  if encoder is not None else None)
    return code_frames(released.frames, stream, StreamCodecs(compressor, decoder),
                       verify=plan.verify, unwrapped=released.unwrapped,
                       envelope=plan.envelope)
