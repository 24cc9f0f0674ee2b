"""Reuse between simulations of one trace: released frames and coded frames, by what
decides them. For sweeps (``simulate(..., reuse=True)``); a plain simulation reuses nothing.

What lives here: :class:`StreamCache` (two bounded LRU tables, kept on the trace, so it
lives and dies with it) and the two keys, each naming everything its value depends on:

| value                         | depends on (the key)                                       |
|-------------------------------|------------------------------------------------------------|
| a stream's released frames    | the stream; the ``batching`` and ``scaling`` sections (the |
| (pipeline stage) and how the  | pipeline reads ``batching`` and ``scaling.max_size``); the |
| peer unwraps them             | envelope; whether frames are decoded                       |
| a stream's coded frames       | the frames themselves (a digest of every payload, key,     |
| (codec stage)                 | frame boundary and member, and the envelope); the sending  |
|                               | side; the whole ``compression`` section; the zstd          |
|                               | dictionary set's id; whether frames are decoded            |

So sweep points that differ only in what cannot change a stream's frames (the link, the
link seed, ``scaling`` fields the pipeline does not read... and batching settings that
happen to release the very same frames) reuse its coded frames, and points that differ
only in compression reuse its released frames. Everything after the codecs (pricing,
link, latency, tables, summary) is computed afresh for every simulation.

Honest CPU times: a reused coded stream carries the compression and decompression CPU
times measured when it was first coded; they are not measured again. A reused result is
therefore the same simulation as a fresh one except that its codec times come from an
earlier, identical run of the codec on the same frames (``tests/sim/test_reuse.py`` holds
a reused result equal to a fresh one, with a clock that makes codec times repeatable).

What must not live here: simulating (``stream.py``), deciding what a sweep runs
(``wslab/tune/``).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from wslab.config import TuningConfig
from wslab.pipeline import FrameColumns
from wslab.sim.coding import CodedFrames
from wslab.sim.inputs import StreamInput
from wslab.traces.model import Trace

V = TypeVar("V")

RELEASED_ENTRIES = 64
CODED_ENTRIES = 512


@dataclass(frozen=True, slots=True)
class Released:
    """A stream's frames as the pipeline released them, and what the peer unwraps.

    Attributes:
        frames: The frames, as columns.
        unwrapped: Per message, whether the peer unwraps it intact from the released
            payload (None without an envelope; see ``coding.unwrap_checks``).
        digest: A digest of everything the codec stage reads or reports per message.
    """

    frames: FrameColumns
    unwrapped: npt.NDArray[np.bool_] | None
    digest: str


def frames_digest(frames: FrameColumns, envelope: str | None) -> str:
    """A digest of the frames' payloads, keys and boundaries, their members and envelope:
    two frame sequences with the same digest code alike byte for byte."""
    h = hashlib.blake2b(digest_size=20)
    h.update(repr(envelope).encode())
    h.update(np.asarray([len(p) for p in frames.payload], dtype=np.int64).tobytes())
    h.update(b"".join(frames.payload))
    h.update("\x00".join(frames.key).encode("utf-8", "surrogatepass"))
    h.update(np.asarray([len(k) for k in frames.key], dtype=np.int64).tobytes())
    h.update(np.asarray(frames.count, dtype=np.int64).tobytes())
    h.update(np.asarray(frames.index, dtype=np.int64).tobytes())
    return h.hexdigest()


def release_key(stream: StreamInput, config: TuningConfig, envelope: str | None,
                verify: bool) -> Hashable:
    """What a stream's released frames depend on (see the module's table; ``verify``:
    whether the peer's unwrapping was worked out)."""
    return (stream.conn, stream.direction, envelope,
            config.batching.model_dump_json(), config.scaling.model_dump_json(), verify)


def coded_key(released: Released, side: str, config: TuningConfig,
              dictionaries_id: str | None, verify: bool) -> Hashable:
    """What a stream's coded frames depend on (see the module's table)."""
    return (released.digest, side, config.compression.model_dump_json(), dictionaries_id,
            verify)


class StreamCache:
    """Released and coded frames of one trace's streams, least recently used dropped first.

    Attributes:
        hits / misses: Lookups answered from the tables / computed, per table
            (``released``, ``coded``).
    """

    def __init__(self, released_entries: int = RELEASED_ENTRIES,
                 coded_entries: int = CODED_ENTRIES) -> None:
        self._released: OrderedDict[Hashable, Released] = OrderedDict()
        self._coded: OrderedDict[Hashable, CodedFrames] = OrderedDict()
        self._limits = {"released": released_entries, "coded": coded_entries}
        self.hits = {"released": 0, "coded": 0}
        self.misses = {"released": 0, "coded": 0}

    def released(self, key: Hashable, build: Callable[[], Released]) -> Released:
        """The released frames under ``key``, built now if not held."""
        return self._get(self._released, "released", key, build)

    def coded(self, key: Hashable, build: Callable[[], CodedFrames]) -> CodedFrames:
        """The coded frames under ``key``, built now if not held."""
        return self._get(self._coded, "coded", key, build)

    def _get(self, table: OrderedDict[Hashable, V], name: str, key: Hashable,
             build: Callable[[], V]) -> V:
        if key in table:
            table.move_to_end(key)
            self.hits[name] += 1
            return table[key]
        self.misses[name] += 1
        value = build()
        table[key] = value
        if len(table) > self._limits[name]:
            table.popitem(last=False)
        return value


def trace_cache(trace: Trace) -> StreamCache:
    """The trace's own cache (made on first use, dropped with the trace)."""
    return trace.derived("sim:stream-cache", lambda _t: StreamCache())
