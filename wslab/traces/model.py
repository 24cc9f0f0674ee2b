"""The in-memory trace: messages in time order, and their tidy pandas view.

What lives here: the :class:`Message` record and the :class:`Trace` container (the
message priority type is ``wslab.priority``'s, re-exported). Reading and
writing files lives in ``wslab.traces.io``; making traces lives in ``generate`` and ``har``.
Nothing here touches the file system.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast, overload

import numpy as np
import pandas as pd

from wslab.priority import PRIORITIES as PRIORITIES  # the one type, defined there
from wslab.priority import Priority as Priority

T = TypeVar("T")

Direction = Literal["s2c", "c2s"]

DIRECTIONS: tuple[Direction, ...] = ("s2c", "c2s")


@dataclass(frozen=True, slots=True)
class Message:
    """One application message as the trace records it.

    Attributes:
        t: Seconds since the trace start (non-decreasing along a trace).
        dir: ``"s2c"`` (server to client) or ``"c2s"``.
        type: Free label of the message kind; per-type statistics key on it.
        priority: ``"critical"``, ``"normal"`` or ``"background"``.
        payload: The application bytes (UTF-8 for a text message).
        is_text: True for a text message, False for a binary one.
        conn: Optional connection label (HAR imports with several sockets).
    """

    t: float
    dir: Direction
    type: str
    priority: Priority
    payload: bytes
    is_text: bool
    conn: str | None = None

    @property
    def size(self) -> int:
        """Payload size in bytes."""
        return len(self.payload)


@dataclass(frozen=True, slots=True)
class TraceMeta:
    """The optional header line of a trace file."""

    name: str = ""
    description: str = ""
    source: str = ""


@dataclass(slots=True)
class Trace:
    """A sequence of messages in time order, with optional metadata.

    The messages are kept as a list of :class:`Message`; :meth:`frame` gives the tidy
    view (one row per message) that analysis and plotting use.
    """

    messages: list[Message]
    meta: TraceMeta = field(default_factory=TraceMeta)
    _derived: dict[str, tuple[int, Any]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def derived(self, key: str, compute: Callable[[Trace], T]) -> T:
        """A value computed from the messages once and remembered (e.g. the envelope that
        fits them all), so repeated simulations of one trace do not redo it. The memory is
        dropped if the number of messages changes."""
        hit = self._derived.get(key)
        if hit is not None and hit[0] == len(self.messages):
            return cast(T, hit[1])
        value = compute(self)
        self._derived[key] = (len(self.messages), value)
        return value

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)

    @overload
    def __getitem__(self, index: int) -> Message: ...

    @overload
    def __getitem__(self, index: slice) -> Trace: ...

    def __getitem__(self, index: int | slice) -> Message | Trace:
        if isinstance(index, slice):
            return Trace(self.messages[index], self.meta)
        return self.messages[index]

    @property
    def duration(self) -> float:
        """Seconds from the first message to the last (0 for fewer than two)."""
        if len(self.messages) < 2:
            return 0.0
        return self.messages[-1].t - self.messages[0].t

    @property
    def payload_bytes(self) -> int:
        """Total application bytes over all messages."""
        return sum(len(m.payload) for m in self.messages)

    @property
    def payloads(self) -> list[bytes]:
        """The payloads, in trace order."""
        return [m.payload for m in self.messages]

    def select(
        self,
        *,
        dir: Direction | None = None,
        type: str | None = None,
        priority: Priority | None = None,
    ) -> Trace:
        """The messages that match every given filter, in order."""
        kept = [
            m
            for m in self.messages
            if (dir is None or m.dir == dir)
            and (type is None or m.type == type)
            and (priority is None or m.priority == priority)
        ]
        return Trace(kept, self.meta)

    def frame(self) -> pd.DataFrame:
        """One row per message: ``t, dir, type, priority, is_text, size, conn``."""
        msgs = self.messages
        return pd.DataFrame(
            {
                "t": np.fromiter((m.t for m in msgs), dtype=np.float64, count=len(msgs)),
                "dir": pd.Categorical([m.dir for m in msgs], categories=list(DIRECTIONS)),
                "type": pd.Series([m.type for m in msgs], dtype="str"),
                "priority": pd.Categorical(
                    [m.priority for m in msgs], categories=list(PRIORITIES)
                ),
                "is_text": np.fromiter((m.is_text for m in msgs), dtype=bool, count=len(msgs)),
                "size": np.fromiter((len(m.payload) for m in msgs), dtype=np.int64,
                                    count=len(msgs)),
                "conn": pd.Series([m.conn for m in msgs], dtype="object"),
            }
        )

    @classmethod
    def from_messages(cls, messages: Iterable[Message], meta: TraceMeta | None = None) -> Trace:
        """Build a trace from any iterable of messages (kept in the given order)."""
        return cls(list(messages), meta or TraceMeta())

    def types(self) -> Sequence[str]:
        """Distinct message types in order of first appearance."""
        return list(dict.fromkeys(m.type for m in self.messages))
