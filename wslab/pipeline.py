"""The send pipeline: batcher + compression selector -> frames. Sans-I/O.

What lives here: :class:`SendPipeline`, the one object that decides what goes on the wire,
shared by the offline simulator and the live harness (only their I/O differs; that is what
makes "simulated vs measured" an honest comparison). It does not compress: it says, per
frame, whether the frame should be compressed, and learns from the compressed size the
caller reports back through :meth:`SendPipeline.observe`. No clocks: time is passed in.

Flow for one message::

    push(message, now) -> Batcher -> Batch -> envelope (if batching) -> selector -> OutFrame

- Without batching (strategy ``none``, or a peer that did not agree on a ``wslab.v1.*``
  subprotocol) every message is its own frame with its own opcode and no envelope.
- With batching every frame is an envelope, even for one message (see ``envelopes.py``).
- The selector's key for a frame is its messages' type when they share one, else
  ``"(batch)"``; its input is the frame payload the codec would see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from wslab import envelopes
from wslab.batching import Batch, Batcher, Pending
from wslab.config import CompressionConfig, TuningConfig
from wslab.errors import WslabError

TEXT = 1
BINARY = 2
MIXED_KEY = "(batch)"
_PRIORITY_SLOT = {"critical": 0, "normal": 1, "background": 2}


class Selector(Protocol):
    """Decides per frame whether to compress; learns from real compressed sizes."""

    def decide(self, key: str, payload: bytes) -> bool:
        """True to compress this frame."""
        ...

    def observe(self, key: str, original: int, compressed: int) -> None:
        """Feed back the real compressed size of a frame that was compressed."""
        ...


@dataclass(slots=True)
class OutFrame:
    """One data frame the pipeline wants sent.

    Attributes:
        payload: Frame payload before compression (the envelope when batching).
        opcode: 1 (text) or 2 (binary).
        compress: The selector's decision (RSV1 set, payload deflated/zstd'ed).
        messages: The messages inside, in arrival order.
        flushed_at: When the batcher released it (the caller's clock).
        reason: Why it left then (``immediate``, ``interval``, ``bytes``, ...).
        key: The selector key used for the decision.
    """

    payload: bytes
    opcode: int
    compress: bool
    messages: list[Pending]
    flushed_at: float
    reason: str
    key: str


def make_selector(compression: CompressionConfig) -> Selector | None:
    """The selector a compression config asks for (None when nothing is compressed)."""
    if compression.algorithm == "none" or compression.policy == "never":
        return None
    from wslab.analysis.selector import CompressionSelector

    return CompressionSelector.from_config(compression)


class SendPipeline:
    """Selector + batcher -> :class:`OutFrame`, for one sending side of one connection.

    Args:
        config: The whole tuning config (its ``batching`` and ``compression`` sections).
        envelope: The envelope agreed with the peer; required when batching with
            ``envelope: auto`` (resolve it with :func:`wslab.envelopes.choose_envelope`),
            ignored without batching.
        batching: False when the peer did not agree on an envelope subprotocol: every
            message then goes alone, whatever the config says.
        selector: Override the selector built from the config (tests, oracles).

    Without batching there is no batcher at all (``batcher`` is None): every message leaves
    at once, so a server holding 10,000 unbatched connections keeps one small object per
    connection here, and building it costs next to nothing.
    """

    __slots__ = ("_opcode", "_seq", "batcher", "config", "envelope", "selector")

    def __init__(
        self,
        config: TuningConfig,
        *,
        envelope: str | None = None,
        batching: bool = True,
        selector: Selector | None = None,
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
            self.batcher: Batcher | None = Batcher(bcfg)
        else:
            self.batcher = None
        self._opcode = TEXT if self.envelope in envelopes.TEXT_ENVELOPES else BINARY
        self.selector = selector if selector is not None else make_selector(config.compression)
        self._seq = [0, 0, 0]  # per priority, numbered from 0 (see _PRIORITY_SLOT)

    @property
    def dropped(self) -> list[Pending]:
        """Messages the batcher refused (background queue full), never silently lost."""
        return self.batcher.dropped if self.batcher is not None else []

    @property
    def waiting(self) -> int:
        """Messages held by the batcher, not yet in a frame."""
        return self.batcher.waiting if self.batcher is not None else 0

    def push(self, index: int, now: float, priority: str, type: str, payload: bytes,
             is_text: bool) -> list[OutFrame]:
        """Hand over one application message; return the frames to send now."""
        slot = _PRIORITY_SLOT[priority]
        seq = self._seq[slot]
        self._seq[slot] = seq + 1
        pending = Pending(index, seq, now, priority, type, payload, is_text)
        batcher = self.batcher
        if batcher is None:  # every message is its own frame: no batch to build
            selector = self.selector
            compress = selector is not None and selector.decide(type, payload)
            return [OutFrame(payload, TEXT if is_text else BINARY, compress, [pending], now,
                             "immediate", type)]
        batches = batcher.push(pending, now)
        return [self._frame(b) for b in batches] if batches else []

    def poll(self, now: float) -> list[OutFrame]:
        """Frames whose batching deadline has come by ``now``."""
        if self.batcher is None:
            return []
        return self._frames(self.batcher.poll(now))

    def next_deadline(self) -> float | None:
        """When to call :meth:`poll` next (None: nothing waits on a timer)."""
        return self.batcher.next_deadline() if self.batcher is not None else None

    def flush(self, now: float) -> list[OutFrame]:
        """Everything still waiting (end of stream)."""
        if self.batcher is None:
            return []
        return self._frames(self.batcher.flush(now))

    def observe(self, frame: OutFrame, compressed_size: int) -> None:
        """Report the real compressed size of a frame that was compressed."""
        if self.selector is not None:
            self.selector.observe(frame.key, len(frame.payload), compressed_size)

    def _frames(self, batches: list[Batch]) -> list[OutFrame]:
        return [self._frame(b) for b in batches]

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
        compress = self.selector is not None and self.selector.decide(key, payload)
        return OutFrame(payload, self._opcode, compress, msgs, batch.flushed_at, batch.reason,
                        key)
