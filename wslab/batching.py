"""Batchers: which messages share a frame, and when the frame leaves. Sans-I/O.

What lives here: the strategies of DESIGN.md section 4a as one :class:`Batcher`, driven by
the caller's clock (``now`` is always passed in), and nothing about bytes on the wire
(``envelopes.py`` lays messages into a frame, ``wire.py`` prices it).

Interface, in the spirit of sans-I/O protocols: ``push(message, now)`` (or
``push_many(messages, now)`` for several arriving together) and ``poll(now)`` return the
batches ready to go; ``next_deadline()`` says when to call ``poll`` next (it is
never None while a message waits, except with strategy ``none``, which holds nothing);
``flush(now)`` empties everything at the end of a stream.

Every strategy is the same machine with different limits. The hold is also the longest any
message waits in the batcher (its *maximum hold*): no strategy holds a message until the
connection closes.

| strategy | hold before sending (maximum hold)    | flush at ``max_bytes`` | ``max_messages`` |
|----------|---------------------------------------|------------------------|------------------|
| none     | 0 (every message alone)               | -                      | -                |
| time     | ``interval_ms``                       | -                      | -                |
| size     | until full, at most ``max_hold_ms``   | yes                    | -                |
| count    | until full, at most ``max_hold_ms``   | -                      | yes              |
| hybrid   | ``interval_ms``                       | yes                    | yes              |
| priority | per class: ``priority_interval_ms``   | yes                    | yes              |

- The hold runs from the oldest message waiting (of its class, with ``priority``), so a
  later message waits less; a size or count limit, or ``flush`` when a connection closes,
  can only send a batch sooner. With ``priority`` each class has its own
  queue and deadline; when any class is due, every class that is due by then leaves in the
  same frame (so a ``critical`` message, hold 0, carries along whatever is already due).
- A size or count limit flushes *everything* waiting. A message that would push the batch
  past ``max_bytes`` first flushes what is waiting, so frames stay within the limit unless
  a single message is larger. Sizes are payload bytes before the envelope.
- Whatever the strategy, a batch never grows past ``frame_limit`` (the peer's ``max_size``,
  which the pipeline passes): a message that would take the envelope past it first
  flushes what is waiting (reason ``frame-limit``), counting ``ENVELOPE_SLACK`` bytes of
  envelope per message, more than any envelope adds. A ``time`` batch on a busy connection
  would otherwise become one frame the peer must refuse (close 1009).
- Within a priority class messages leave in the order they came; a frame lists its messages
  in arrival order.
- The background queue is bounded (``background_queue_limit``): a background message that
  arrives when it is full is not queued; it is kept in :attr:`Batcher.dropped` and counted,
  never silently lost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from wslab.config import BatchingConfig
from wslab.priority import BACKGROUND, CRITICAL, PRIORITIES, Priority

INF = math.inf
ENVELOPE_SLACK = 8  # bytes per message at least as large as any envelope's own framing


@dataclass(slots=True)
class Pending:
    """A message handed to the send pipeline.

    Attributes:
        index: Position in the sender's stream (the trace index in a replay).
        seq: Sequence number within its priority class (integrity checks use it).
        t: When it was handed over (seconds, the caller's clock).
        priority: ``critical``, ``normal`` or ``background``.
        type: The message type label.
        payload: The application bytes.
        is_text: Text (True) or binary message.
        order: Arrival number, set by the batcher; a frame lists its messages in this
            order (the caller's ``index`` need not be unique, e.g. when one message is
            fanned out to a room).
    """

    index: int
    seq: int
    t: float
    priority: Priority
    type: str
    payload: bytes
    is_text: bool
    order: int = 0


@dataclass(slots=True)
class Batch:
    """Messages that leave together in one frame, and why they left when they did."""

    messages: list[Pending]
    flushed_at: float
    reason: str


@dataclass(frozen=True, slots=True)
class _Limits:
    hold_s: dict[str, float]
    max_bytes: float
    max_messages: float
    per_class: bool


# strategy -> (the field its hold comes from, size limit, count limit); the module table.
# Hold "zero": every message alone; "classes": ``priority_interval_ms`` per class.
_STRATEGY_TABLE: dict[str, tuple[str, bool, bool]] = {
    "none": ("zero", False, False),
    "time": ("interval_ms", False, False),
    "size": ("max_hold_ms", True, False),
    "count": ("max_hold_ms", False, True),
    "hybrid": ("interval_ms", True, True),
    "priority": ("classes", True, True),
}


def _limits(cfg: BatchingConfig) -> _Limits:
    held_by, sized, counted = _STRATEGY_TABLE[cfg.strategy]
    hold: dict[str, float]
    if held_by == "zero":
        hold = dict.fromkeys(PRIORITIES, 0.0)
    elif held_by == "classes":  # PriorityIntervals has one field per class, by its name
        p = cfg.priority_interval_ms
        hold = {prio: float(getattr(p, prio)) / 1e3 for prio in PRIORITIES}
    else:
        hold = dict.fromkeys(PRIORITIES, float(getattr(cfg, held_by)) / 1e3)
    return _Limits(
        hold_s=hold,
        max_bytes=float(cfg.max_bytes) if sized else INF,
        max_messages=float(cfg.max_messages) if counted else INF,
        per_class=cfg.strategy == "priority",
    )


@dataclass(slots=True)
class _Queue:
    items: list[Pending] = field(default_factory=list)
    deadline: float = INF


class Batcher:
    """Groups messages into batches by one of the strategies in the module table.

    Args:
        config: The ``batching`` section of a :class:`wslab.config.TuningConfig`.
        frame_limit: The largest frame payload the peer accepts (None: no limit).
    """

    def __init__(self, config: BatchingConfig, frame_limit: int | None = None) -> None:
        self.config = config
        self._frame_limit = INF if frame_limit is None else float(frame_limit)
        self.strategy = config.strategy
        self._limits = _limits(config)
        self._immediate = config.strategy == "none"
        keys = PRIORITIES if self._limits.per_class else ("all",)
        self._queues: dict[str, _Queue] = {k: _Queue() for k in keys}
        self._queue_list = list(self._queues.values())
        self._single = self._queue_list[0] if len(self._queue_list) == 1 else None
        self._bytes = 0
        self._count = 0
        self._background_waiting = 0
        self._background_limit = config.background_queue_limit
        self.dropped: list[Pending] = []
        self._arrivals = 0

    @property
    def waiting(self) -> int:
        """Messages held right now."""
        return self._count

    @property
    def waiting_bytes(self) -> int:
        """Payload bytes of the messages held right now."""
        return self._bytes

    def next_deadline(self) -> float | None:
        """When the next batch is due by time, or None if nothing waits (every strategy
        holds a message at most its maximum hold, so a waiting message always has one)."""
        if self._count == 0:
            return None
        deadline = self._soonest()
        return None if deadline == INF else deadline

    def _soonest(self) -> float:
        if self._single is not None:
            return self._single.deadline
        return min(q.deadline for q in self._queue_list)

    def push(self, message: Pending, now: float) -> list[Batch]:
        """Hand over one message; return the batches that must leave now."""
        return self.push_many((message,), now)

    def push_many(self, messages: Sequence[Pending], now: float) -> list[Batch]:
        """Hand over messages that arrive together at ``now``, in order; return the
        batches that must leave now. The same batches as :meth:`push` per message (one
        loop with the limits at hand instead of a call per message: a batch of a hundred
        messages echoed back is a hundred pushes)."""
        if self._immediate:
            return [Batch([m], now, "immediate") for m in messages]
        if self._single is not None:
            return self._push_one_queue(messages, now)
        out: list[Batch] = []
        lim = self._limits
        max_bytes, max_messages, frame_limit = lim.max_bytes, lim.max_messages, \
            self._frame_limit
        hold = lim.hold_s
        for message in messages:
            message.order = self._arrivals
            self._arrivals += 1
            background = message.priority == BACKGROUND
            if background and self._background_waiting >= self._background_limit:
                self.dropped.append(message)
                continue
            size = len(message.payload)
            if self._count and self._bytes + size > max_bytes:
                out.append(self._take_all(now, "bytes"))
            elif self._count and (self._bytes + size + (self._count + 1) * ENVELOPE_SLACK
                                  > frame_limit):
                out.append(self._take_all(now, "frame-limit"))
            queue = self._queues[message.priority]
            if not queue.items:
                queue.deadline = now + hold[message.priority]
            queue.items.append(message)
            self._bytes += size
            self._count += 1
            if background:  # counted once queued: a flush just above must not forget it
                self._background_waiting += 1
            if self._bytes >= max_bytes:
                out.append(self._take_all(now, "bytes"))
            elif self._count >= max_messages:
                out.append(self._take_all(now, "count"))
            elif queue.deadline <= now:
                out.append(self._take_due(now))
        return out

    def _push_one_queue(self, messages: Sequence[Pending], now: float) -> list[Batch]:
        """:meth:`push_many` for the strategies with one queue for every class (all but
        ``priority``): the same rules, the queue's state in locals while it runs (the hot
        loop of a batched echo); a flush empties the one queue, so it is a new list."""
        out: list[Batch] = []
        lim = self._limits
        max_bytes, max_messages, frame_limit = lim.max_bytes, lim.max_messages, \
            self._frame_limit
        hold = lim.hold_s
        queue = self._single
        assert queue is not None
        items, deadline = queue.items, queue.deadline
        count, nbytes, arrivals = self._count, self._bytes, self._arrivals
        background_waiting, background_limit = self._background_waiting, \
            self._background_limit
        for message in messages:
            message.order = arrivals
            arrivals += 1
            background = message.priority == BACKGROUND
            if background and background_waiting >= background_limit:
                self.dropped.append(message)
                continue
            size = len(message.payload)
            if count and (nbytes + size > max_bytes
                          or nbytes + size + (count + 1) * ENVELOPE_SLACK > frame_limit):
                out.append(Batch(items, now, "bytes" if nbytes + size > max_bytes
                                 else "frame-limit"))
                items, deadline = [], INF
                count = nbytes = background_waiting = 0
            if not items:
                deadline = now + hold[message.priority]
            items.append(message)
            nbytes += size
            count += 1
            if background:  # counted once queued: a flush just above must not forget it
                background_waiting += 1
            if nbytes >= max_bytes:
                reason = "bytes"
            elif count >= max_messages:
                reason = "count"
            elif deadline <= now:
                reason = "interval"
            else:
                continue
            out.append(Batch(items, now, reason))
            items, deadline = [], INF
            count = nbytes = background_waiting = 0
        queue.items, queue.deadline = items, deadline
        self._count, self._bytes, self._arrivals = count, nbytes, arrivals
        self._background_waiting = background_waiting
        return out

    def poll(self, now: float) -> list[Batch]:
        """Return the batch whose deadline has come by ``now``, if any."""
        if self._count == 0 or self._soonest() > now:
            return []
        return [self._take_due(now)]

    def flush(self, now: float) -> list[Batch]:
        """Everything still waiting, as one batch (end of stream)."""
        return [self._take_all(now, "end")] if self._count else []

    def _take_due(self, now: float) -> Batch:
        if self._single is not None:
            return self._take_all(now, "interval")
        due = [q for q in self._queue_list if q.items and q.deadline <= now]
        reason = "critical" if due[0] is self._queues[CRITICAL] else "interval"
        if len(due) == sum(1 for q in self._queue_list if q.items):
            return self._take_all(now, reason)
        taken = sorted((m for q in due for m in q.items), key=lambda m: m.order)
        for q in due:
            q.items = []
            q.deadline = INF
        self._count -= len(taken)
        self._bytes -= sum(len(m.payload) for m in taken)
        self._background_waiting -= sum(1 for m in taken if m.priority == BACKGROUND)
        return Batch(taken, now, reason)

    def _take_all(self, now: float, reason: str) -> Batch:
        if self._single is not None:
            taken = self._single.items
        else:
            taken = sorted((m for q in self._queue_list for m in q.items),
                           key=lambda m: m.order)
        for q in self._queue_list:
            q.items = []
            q.deadline = INF
        self._count = self._bytes = self._background_waiting = 0
        return Batch(taken, now, reason)
