"""A trace split into the streams the simulator replays, as columns, once per trace.

What lives here: :class:`StreamInput` (one connection and direction of a trace: its
messages as :class:`~wslab.pipeline.MessageColumns` plus the numpy arrays the tables need)
and :func:`trace_streams`, which splits a trace into them in the simulator's stream order
(sorted by connection label, then direction) and remembers the split on the trace
(``Trace.derived``), so simulating one trace under many configs splits it once, as the
envelope choice already is. Also the trace-wide text columns of the message table
(connection, direction, type), built once per trace.

What must not live here: anything that depends on a config (batching, codecs, link).
Nothing here is mutated after it is built: callers copy what they hand out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from wslab.pipeline import MessageColumns
from wslab.priority import PRIORITIES
from wslab.traces.model import Trace

PRIORITY_CODES: dict[str, int] = {prio: code for code, prio in enumerate(PRIORITIES)}
"""Priority class -> its code in the message table's categorical column."""


@dataclass(frozen=True, slots=True)
class StreamInput:
    """One (connection, direction) of a trace.

    Attributes:
        conn: The trace's connection label ("" when the trace has one connection).
        direction: ``s2c`` or ``c2s``.
        messages: Its messages in trace order, as columns (``index`` is the trace index).
        index: The trace indices as an array (increasing).
        t: Hand-off times as an array.
        size: Payload sizes as an array.
        prio_code: Priority codes (:data:`PRIORITY_CODES`) as an array.
    """

    conn: str
    direction: str
    messages: MessageColumns
    index: npt.NDArray[np.int64]
    t: npt.NDArray[np.float64]
    size: npt.NDArray[np.int64]
    prio_code: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.index)


@dataclass(frozen=True, slots=True)
class TraceColumns:
    """The message table's text columns for the whole trace, in trace order."""

    conn: pd.api.extensions.ExtensionArray
    dir: pd.api.extensions.ExtensionArray
    type: pd.api.extensions.ExtensionArray


def _split(trace: Trace) -> tuple[StreamInput, ...]:
    groups: dict[tuple[str, str], list[int]] = {}
    for i, m in enumerate(trace.messages):
        groups.setdefault((m.conn or "", m.dir), []).append(i)
    msgs = trace.messages
    codes = PRIORITY_CODES
    out: list[StreamInput] = []
    for (conn, direction), indices in sorted(groups.items()):
        chosen = [msgs[i] for i in indices]
        n = len(indices)
        columns = MessageColumns(
            index=indices,
            t=[m.t for m in chosen],
            priority=[m.priority for m in chosen],
            type=[m.type for m in chosen],
            payload=[m.payload for m in chosen],
            is_text=[m.is_text for m in chosen],
        )
        out.append(StreamInput(
            conn=conn,
            direction=direction,
            messages=columns,
            index=np.asarray(indices, dtype=np.int64),
            t=np.asarray(columns.t, dtype=np.float64),
            size=np.fromiter((len(p) for p in columns.payload), dtype=np.int64, count=n),
            prio_code=np.fromiter((codes[p] for p in columns.priority), dtype=np.int64,
                                  count=n),
        ))
    return tuple(out)


def trace_streams(trace: Trace) -> tuple[StreamInput, ...]:
    """The trace's streams in simulation order (remembered on the trace)."""
    return trace.derived("sim:streams", _split)


def _text_columns(trace: Trace) -> TraceColumns:
    msgs = trace.messages
    return TraceColumns(
        conn=pd.array([m.conn or "" for m in msgs], dtype="str"),
        dir=pd.array([m.dir for m in msgs], dtype="str"),
        type=pd.array([m.type for m in msgs], dtype="str"),
    )


def trace_text_columns(trace: Trace) -> TraceColumns:
    """Connection, direction and type of every message as string arrays (remembered)."""
    return trace.derived("sim:text-columns", _text_columns)
