"""The send pipeline: batcher + envelopes -> frames. Sans-I/O.

What lives here: :class:`SendPipeline`, the one object that decides what goes into which
frame and when, shared by the offline simulator and the live harness (only their I/O
differs; that is what makes "simulated vs measured" an honest comparison). It neither
compresses nor decides what to compress: each frame it releases goes, in release order, to
a :class:`wslab.compressor.FrameCompressor` (the simulator's, or the live extension's),
which asks the selector, compresses and feeds back the size in one step. No clocks: time is
passed in.

Flow for one message::

    push(message, now) -> [batches due by now] + Batcher -> Batch -> envelope -> OutFrame

- Without batching (strategy ``none``, or a peer that did not agree on a ``wslab.v1.*``
  subprotocol) every message is its own frame with its own opcode and no envelope.
- With batching every frame is an envelope, even for one message (see ``envelopes.py``).
- Time only moves forward through :meth:`SendPipeline.push` and :meth:`SendPipeline.poll`,
  and both first release every batch whose deadline has come, each at its own deadline.
  The simulator (virtual clock) and the live session (a timer that may fire late on a busy
  loop) therefore see the same grouping and the same release times for the same hand-off
  times: "poll whatever is due" exists once, here.
- A frame's key (what the selector learns by, and what picks a per-type dictionary) is its
  messages' type when they share one, else ``"(batch)"``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from wslab import envelopes
from wslab.batching import Batch, Batcher, Pending
from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.priority import PRIORITIES, Priority
from wslab.wire import Opcode

if TYPE_CHECKING:
    from wslab.traces.model import Trace

TEXT: Final = Opcode.TEXT  # bound once: an enum member costs a lookup per message
BINARY: Final = Opcode.BINARY
MIXED_KEY = "(batch)"
_PRIORITY_SLOT: dict[str, int] = {prio: slot for slot, prio in enumerate(PRIORITIES)}
_FOREVER = float("inf")


@dataclass(slots=True)
class OutFrame:
    """One data frame the pipeline wants sent.

    Attributes:
        payload: Frame payload before compression (the envelope when batching).
        opcode: ``Opcode.TEXT`` or ``Opcode.BINARY`` (an ``int``: 1 or 2).
        messages: The messages inside, in arrival order.
        flushed_at: When the batcher released it (the caller's clock).
        reason: Why it left then (``immediate``, ``interval``, ``bytes``, ...).
        key: The frame's message type, or ``"(batch)"`` for a batch of several types.
    """

    payload: bytes
    opcode: Opcode
    messages: list[Pending]
    flushed_at: float
    reason: str
    key: str


@dataclass(frozen=True, slots=True)
class MessageColumns:
    """Messages handed to one pipeline, as columns in hand-off order (see :meth:`replay`).

    Attributes:
        index: The caller's number of each message (the trace index in a replay).
        t: When each is handed over (non-decreasing).
        priority: ``critical``, ``normal`` or ``background``.
        type: The message type label.
        payload: The application bytes.
        is_text: Text (True) or binary message.
    """

    index: Sequence[int]
    t: Sequence[float]
    priority: Sequence[str]
    type: Sequence[str]
    payload: Sequence[bytes]
    is_text: Sequence[bool]


@dataclass(slots=True)
class FrameColumns:
    """The frames of a whole replay as columns, one entry per frame, then one per message.

    Per frame: ``payload``, ``key``, ``opcode``, ``flushed_at``, ``reason`` (as in
    :class:`OutFrame`) and ``count``, how many messages it carries. Per message, frame by
    frame in the order each frame lists them: ``index`` (the caller's number), ``seq``
    (within its priority class) and ``priority``. ``dropped``: the messages the batcher
    refused.
    """

    payload: list[bytes] = field(default_factory=list)
    key: list[str] = field(default_factory=list)
    opcode: list[int] = field(default_factory=list)
    flushed_at: list[float] = field(default_factory=list)
    reason: list[str] = field(default_factory=list)
    count: list[int] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    seq: list[int] = field(default_factory=list)
    priority: list[str] = field(default_factory=list)
    dropped: list[Pending] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.payload)

    def add(self, frames: list[OutFrame]) -> None:
        """Append released frames."""
        for f in frames:
            self.payload.append(f.payload)
            self.key.append(f.key)
            self.opcode.append(f.opcode)
            self.flushed_at.append(f.flushed_at)
            self.reason.append(f.reason)
            self.count.append(len(f.messages))
            for m in f.messages:
                self.index.append(m.index)
                self.seq.append(m.seq)
                self.priority.append(m.priority)


def resolve_envelope(config: TuningConfig, trace: Trace | None) -> str | None:
    """The envelope a batching config uses on a trace (None: no batching).

    ``auto`` picks the smallest envelope that carries every message of the trace
    (:func:`wslab.envelopes.choose_envelope`), or ``length-prefixed`` (which carries
    anything) when no trace is known; a named envelope is checked against the trace.
    The simulator, the live server and the load client all ask here, so they agree.
    The answer is remembered per trace.
    """
    envelope = config.batching.envelope
    if config.batching.strategy == "none":
        return None
    if trace is None:
        return "length-prefixed" if envelope == "auto" else envelope

    def fits(t: Trace) -> str:
        pairs = ((m.payload, m.is_text) for m in t.messages)
        if envelope == "auto":
            return envelopes.choose_envelope(pairs)
        envelopes.check_envelope(envelope, pairs)
        return envelope

    return trace.derived(f"envelope:{envelope}", fits)


Incoming = tuple[int, Priority, str, bytes, bool]
"""One message handed to :meth:`SendPipeline.push_many`: index, priority, type, payload,
is_text."""


class SendPipeline:
    """Batcher + envelope -> :class:`OutFrame`, for one sending side of one connection.

    Args:
        config: The whole tuning config (its ``batching`` and ``compression`` sections).
        envelope: The envelope agreed with the peer; required when batching with
            ``envelope: auto`` (resolve it with :func:`wslab.envelopes.choose_envelope`),
            ignored without batching.
        batching: False when the peer did not agree on an envelope subprotocol: every
            message then goes alone, whatever the config says.

    Without batching there is no batcher at all (``batcher`` is None): every message leaves
    at once, so a server holding 10,000 unbatched connections keeps one small object per
    connection here, and building it costs next to nothing.
    """

    __slots__ = ("_opcode", "_seq", "batcher", "config", "envelope")

    def __init__(
        self,
        config: TuningConfig,
        *,
        envelope: str | None = None,
        batching: bool = True,
    ) -> None:
        self.config = config
        bcfg = config.batching
        self.envelope: str | None = None
        if batching and bcfg.strategy != "none":
            chosen = envelope or (None if bcfg.envelope == "auto" else bcfg.envelope)
            if chosen is None:
                raise WslabError("batching with envelope auto needs the envelope resolved "
                                 "from the messages (wslab.envelopes.choose_envelope)")
            if chosen not in envelopes.ENVELOPES:
                raise WslabError(f"unknown envelope {chosen!r}; known: "
                                 f"{', '.join(envelopes.ENVELOPES)}")
            self.envelope = chosen
            self.batcher: Batcher | None = Batcher(bcfg, frame_limit=config.scaling.max_size)
        else:
            self.batcher = None
        self._opcode = TEXT if self.envelope in envelopes.TEXT_ENVELOPES else BINARY
        self._seq = [0] * len(PRIORITIES)  # per priority, numbered from 0 (see _PRIORITY_SLOT)

    @property
    def dropped(self) -> list[Pending]:
        """Messages the batcher refused (background queue full), never silently lost."""
        return self.batcher.dropped if self.batcher is not None else []

    @property
    def waiting(self) -> int:
        """Messages held by the batcher, not yet in a frame."""
        return self.batcher.waiting if self.batcher is not None else 0

    @property
    def waiting_bytes(self) -> int:
        """Payload bytes held by the batcher."""
        return self.batcher.waiting_bytes if self.batcher is not None else 0

    def push(self, index: int, now: float, priority: Priority, type: str, payload: bytes,
             is_text: bool) -> list[OutFrame]:
        """Hand over one application message; return the frames to send now, in order.

        Batches whose deadline came before ``now`` leave first (see :meth:`poll`).
        """
        slot = _PRIORITY_SLOT[priority]
        seq = self._seq[slot]
        self._seq[slot] = seq + 1
        pending = Pending(index, seq, now, priority, type, payload, is_text)
        batcher = self.batcher
        if batcher is None:  # every message is its own frame: no batch to build
            return [OutFrame(payload, TEXT if is_text else BINARY, [pending], now,
                             "immediate", type)]
        return self._release(batcher, now, (pending,))

    def push_many(self, now: float, messages: Sequence[Incoming]) -> list[OutFrame]:
        """Hand over several messages arriving together at ``now`` (each ``(index,
        priority, type, payload, is_text)``); return the frames to send now, in order: the
        frames :meth:`push` per message would return, in one call (an echoed batch)."""
        seqs = self._seq
        pendings = []
        for index, priority, type_, payload, is_text in messages:
            slot = _PRIORITY_SLOT[priority]
            seq = seqs[slot]
            seqs[slot] = seq + 1
            pendings.append(Pending(index, seq, now, priority, type_, payload, is_text))
        batcher = self.batcher
        if batcher is None:
            return [OutFrame(p.payload, TEXT if p.is_text else BINARY, [p], now, "immediate",
                             p.type) for p in pendings]
        return self._release(batcher, now, pendings)

    def _release(self, batcher: Batcher, now: float,
                 pendings: Sequence[Pending]) -> list[OutFrame]:
        """Batches due before ``now`` first (each at its deadline), then those the new
        messages release."""
        due = batcher.next_deadline()
        frames = self.poll(now) if due is not None and due <= now else []
        batches = batcher.push_many(pendings, now)
        if batches:
            frames += [self._frame(b) for b in batches]
        return frames

    def replay(self, messages: MessageColumns) -> FrameColumns:
        """Every message pushed at its time, then :meth:`finish` at the last one: the frames
        of a whole stream known in advance (the simulator), as columns.

        The same frames, in the same order, as calling :meth:`push` per message and
        :meth:`finish` (``tests/test_pipeline.py`` holds the two to each other). Without a
        batcher every message is its own frame, so the columns are the messages' own and no
        object is built per message.
        """
        out = FrameColumns()
        n = len(messages.index)
        if self.batcher is None:
            # numbered per class from where this pipeline's counters stand
            counters = {p: itertools.count(self._seq[s]) for p, s in _PRIORITY_SLOT.items()}
            out.seq = [next(counters[p]) for p in messages.priority]
            for p, s in _PRIORITY_SLOT.items():
                self._seq[s] = next(counters[p])
            out.payload = list(messages.payload)
            out.key = list(messages.type)
            out.opcode = [TEXT if text else BINARY for text in messages.is_text]
            out.flushed_at = list(messages.t)
            out.reason = ["immediate"] * n
            out.count = [1] * n
            out.index = list(messages.index)
            out.priority = list(messages.priority)
            return out
        push = self.push
        for index, t, priority, type_, payload, is_text in zip(
                messages.index, messages.t, messages.priority, messages.type,
                messages.payload, messages.is_text, strict=True):
            released = push(index, t, priority, type_, payload, is_text)
            if released:
                out.add(released)
        if n:
            out.add(self.finish(messages.t[-1]))
        out.dropped = list(self.dropped)
        return out

    def poll(self, now: float) -> list[OutFrame]:
        """Every batch whose deadline has come by ``now``, each released at its deadline.

        A caller that is late (a timer firing after a busy loop iteration) gets the same
        frames, with the same ``flushed_at``, as one that was on time.
        """
        batcher = self.batcher
        if batcher is None:
            return []
        frames: list[OutFrame] = []
        deadline = batcher.next_deadline()
        while deadline is not None and deadline <= now:
            frames += [self._frame(b) for b in batcher.poll(deadline)]
            deadline = batcher.next_deadline()
        return frames

    def next_deadline(self) -> float | None:
        """When to call :meth:`poll` next (None: nothing waits on a timer)."""
        return self.batcher.next_deadline() if self.batcher is not None else None

    def flush(self, now: float) -> list[OutFrame]:
        """Everything still waiting, at once (a connection closing)."""
        if self.batcher is None:
            return []
        return [self._frame(b) for b in self.batcher.flush(now)]

    def finish(self, now: float) -> list[OutFrame]:
        """End of a stream whose last message came at ``now``: every timer runs out (each
        batch at its deadline), then whatever has no deadline leaves at ``now``."""
        return self.poll(_FOREVER) + self.flush(now)

    def _frame(self, batch: Batch) -> OutFrame:
        """One batch as an envelope frame (batches exist only when batching)."""
        envelope = self.envelope
        assert envelope is not None
        msgs = batch.messages
        first = msgs[0]
        key = first.type
        if len(msgs) == 1:
            payload = envelopes.encode(envelope, (first.payload,), (first.is_text,))
        else:
            payload = envelopes.encode(envelope, [m.payload for m in msgs],
                                       [m.is_text for m in msgs])
            for m in msgs:
                if m.type != key:
                    key = MIXED_KEY
                    break
        return OutFrame(payload, self._opcode, msgs, batch.flushed_at, batch.reason, key)
